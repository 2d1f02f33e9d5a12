"""The counted energy model of ``permdeal compare`` (docs/design.md section 13.1).

Where a format has no hardware here (EIE's CSC engine, block-circulant FFTs), or to set every
format on one axis, ``compare`` counts what an inference does and prices each event by one
table (:mod:`permdeal.synth.energy`: Horowitz's 45 nm figures), the same for every format:

- **Arithmetic**: integer multiplies and adds by width (16-bit operands, 32-bit accumulators).
- **Memory accesses** by what they hold: ``weights`` (the stored weights, EIE's codebook,
  SmartDeal's Ce, B and rebuilt-weight buffer), ``index`` (PD's permutation indices, EIE's
  column pointers), ``activations`` (the layer's input and output buffers, EIE's FIFOs,
  block-circulant's input spectra) and ``accumulators``. Each access is priced as an SRAM
  access of its width to the memory (bank) it goes to, by that memory's size.
- **Banks**: a format's stored weights and its accumulators are split evenly over one bank per
  multiplier of the budget (EIE: per PE), as the engines do; activation buffers are one memory.
- **Weights in DRAM** (``--weight-memory dram``): the stored weight and index memories are
  streamed from DRAM once an inference instead (the bits an inference reads, at most the whole
  memory), priced by :func:`~permdeal.synth.energy.dram_pj`; on-chip buffers stay SRAM.

Figures are at 45 nm (the table's node), in pJ per inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from permdeal.synth import energy as prices

__all__ = ["ACC_BITS", "ACT_BITS", "PARTS", "WEIGHT_MEMORIES", "Access", "Count"]

#: Widths of the counted model: activations (and stored weights, :data:`figures.WEIGHT_BITS`)
#: 16 bits, accumulators 32 bits.
ACT_BITS, ACC_BITS = 16, 32
#: The parts an inference's energy is split into, in report order.
PARTS = ("arithmetic", "weights", "index", "activations", "accumulators")
#: Where the stored weights live (``--weight-memory``).
WEIGHT_MEMORIES = ("sram", "dram")
NODE = prices.NODE_45NM


@dataclass(frozen=True)
class Access:
    """``count`` accesses (per inference) of ``width`` bits to a memory of ``bank_bits`` bits
    (one of ``banks``, ``total_bits`` in all) that holds ``part``; ``stored``: the memory holds
    the format's stored weights or indices, which ``--weight-memory dram`` streams from DRAM."""

    part: str
    width: int
    bank_bits: float
    count: float
    total_bits: float
    banks: int = 1
    stored: bool = False

    def pj(self, weight_memory: str) -> float:
        if self.count <= 0:
            return 0.0
        if self.stored and weight_memory == "dram":
            return prices.dram_pj(min(self.count * self.width, self.total_bits))
        depth = max(1, math.ceil(self.bank_bits / self.width))
        return self.count * prices.access_pj(self.width, depth, NODE)


@dataclass
class Count:
    """The events of one layer's inference: ``ops[(op, bits)]`` counts and the ``accesses``."""

    ops: dict = field(default_factory=dict)
    accesses: list = field(default_factory=list)

    def op(self, op: str, bits: int, n: float) -> None:
        self.ops[(op, bits)] = self.ops.get((op, bits), 0.0) + float(n)

    def access(self, part: str, width: int, memory_bits: float, count: float, *,
               banks: int = 1, stored: bool = False) -> None:
        """``count`` accesses of ``width`` bits to a memory of ``memory_bits`` in all, split
        over ``banks`` equal banks."""
        if part not in PARTS[1:]:
            raise ValueError(f"memory part must be one of {PARTS[1:]}, not {part!r}")
        bank = max(width, math.ceil(memory_bits / banks))
        self.accesses.append(Access(part, int(width), bank, float(count), float(memory_bits),
                                    banks, stored))

    # -- the pieces every format shares ---------------------------------------------------------

    def layer_io(self, n: int, m: int, input_reads: float) -> None:
        """``input_reads`` reads of the ``n`` inputs' buffer, the ``m`` outputs written once."""
        self.access("activations", ACT_BITS, n * ACT_BITS, input_reads)
        self.access("activations", ACT_BITS, m * ACT_BITS, m)

    def macs(self, macs: float, m: int, banks: int) -> None:
        """``macs`` multiply-accumulates into ``m`` accumulators over ``banks`` banks: a 16-bit
        multiply, a 32-bit add, an accumulator read and write each."""
        self.op("mult", ACT_BITS, macs)
        self.op("add", ACC_BITS, macs)
        self.access("accumulators", ACC_BITS, m * ACC_BITS, 2 * macs, banks=banks)

    # -- pricing --------------------------------------------------------------------------------

    def energy(self, weight_memory: str) -> dict:
        """pJ per inference by :data:`PARTS` and in ``total`` (45 nm)."""
        if weight_memory not in WEIGHT_MEMORIES:
            raise ValueError(f"weight memory must be one of {WEIGHT_MEMORIES}")
        out = dict.fromkeys(PARTS, 0.0)
        out["arithmetic"] = sum(n * prices.op_pj(op, bits, NODE)
                                for (op, bits), n in self.ops.items())
        for a in self.accesses:
            out[a.part] += a.pj(weight_memory)
        out = {k: round(v, 3) for k, v in out.items()}
        out["total"] = round(sum(out[k] for k in PARTS), 3)
        return out

    def to_json(self) -> dict:
        return {"ops": [{"op": op, "bits": bits, "count": round(n, 3)}
                        for (op, bits), n in sorted(self.ops.items())],
                "accesses": [{"part": a.part, "width": a.width, "bank_bits": a.bank_bits,
                              "banks": a.banks, "total_bits": a.total_bits,
                              "count": round(a.count, 3),
                              "stored": a.stored} for a in self.accesses]}
