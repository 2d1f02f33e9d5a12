"""cocotb testbench: ``hdl.pe.PE`` as the engine's controller drives it, against the golden model.

Run it through :func:`permdeal.verif.runner.run` with the ``config`` of :func:`pe_config` (the
case parameters of :func:`build_case` plus the DUT's widths, latencies and op layout). The bench
recomputes the golden data from the case's ``seed``: a random two-layer float model compressed
with ``golden.compress.compress_permdiag`` (block size ``layer_ps[i]``, one of the design's
``ps``), laid out for an engine of ``n_pe`` PEs x ``lanes`` lanes by ``golden.rom`` (the DUT is PE
``pe``, so its lane ``l`` is global lane ``g = pe*lanes + l``; the memories' contents baked into
the DUT come from the same function). A DUT whose lanes load their memories from image files
(``PE(..., images=...)``) has the files in its ``config`` (``images``); the bench first checks that
they hold what it recomputed (``golden.rom.decode_hex``), so a pass cannot come from other data,
and reports ``memories`` (``"images"`` or ``"baked"``) with every test.

A *pass* runs one layer on a random input vector of activation codes of a given density: for
every non-zero ``x_j`` in ascending ``j`` and every slot ``t`` the bench drives one op (addresses
from the layer's placement, ``c = j mod p``, ``sel``, ``x_j``, ``acc_addr = t*p``), waits out the
latency, drains all ``B*p`` accumulators (every lane at once) and compares every lane's value with
the golden accumulator ``acc[g][t*p + r] = (W x)[(t*NL + g)*p + r]`` (zero past ``m``). Passes
of both layers alternate, so each drain's read-and-clear is what gives the next pass its zeros.
``test_back_to_back`` drives ops without idle, drains exactly ``latency`` cycles after the last op
in ascending order and starts the next pass right after the last drain; ``test_idle`` adds random
idle cycles between ops, before and between drain requests, and drains in random order. In every
cycle without an op the op's fields other than ``valid`` are random (the lanes must ignore them).
Every cycle the bench also checks that ``acc.valid`` is high exactly ``drain_latency`` cycles
after a drain request, and nowhere else.

The bench drives on the falling clock edge and samples in the read-only phase after it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cocotb
import numpy as np
import numpy.typing as npt
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer
from permdeal.golden.rom import SIGNED, decode_hex, lane_contents, memory_widths, placements
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, cycle

if TYPE_CHECKING:
    from permdeal.hdl.pe import PE

#: (layer, density of the input vector) of every pass of each test.
PASSES = {
    "test_back_to_back": [(0, 0.35), (1, 1.0), (0, 0.0), (1, 0.35), (0, 1.0)],
    "test_idle": [(1, 0.35), (0, 1.0), (1, 0.0), (0, 0.35)],
}
#: The parameters of a case (see :func:`build_case`).
CASE_KEYS = ("seed", "ps", "layer_ps", "sizes", "n_pe", "lanes", "pe", "act_bits",
             "weight_bits", "bias_bits")


class Case:
    """The golden data of one configuration, recomputed from its parameters.

    ``model`` (a two-layer ``QuantModel``), ``cfg`` (``EngineConfig``), ``places`` (the layers'
    placements), ``contents`` (``{memory: (NL, depth)}``) and the lane parameters of the PE:
    ``ps``, ``act_bits``, ``weight_bits``, ``acc_bits`` (the widest layer's), ``w_depth``,
    ``k_depth``, ``acc_depth`` (the largest ``B*p``).
    """

    def __init__(self, seed, ps, layer_ps, sizes, n_pe, lanes, pe, act_bits, weight_bits,
                 bias_bits):
        self.params = {"seed": seed, "ps": list(ps), "layer_ps": list(layer_ps),
                       "sizes": list(sizes), "n_pe": n_pe, "lanes": lanes, "pe": pe,
                       "act_bits": act_bits, "weight_bits": weight_bits, "bias_bits": bias_bits}
        assert all(p in ps for p in layer_ps) and len(sizes) == len(layer_ps) + 1
        rng = np.random.default_rng(seed)
        floats = [FloatLayer(f"fc{i}", rng.normal(0, 0.7, (sizes[i + 1], sizes[i])),
                             rng.normal(0, 0.3, sizes[i + 1])) for i in range(len(layer_ps))]
        spec = QuantSpec(act=Fixed(act_bits, act_bits // 2), weight=weight_bits, bias=bias_bits)
        self.model = compress_permdiag(floats, list(layer_ps), spec)
        self.cfg = EngineConfig(n_pe, lanes)
        self.pe, self.lanes = pe, lanes
        self.places = placements(self.model, self.cfg)
        self.contents = lane_contents(self.model, self.cfg)
        self.ps = tuple(ps)
        self.act_bits = act_bits
        self.weight_bits = weight_bits
        self.acc_bits = max(l.fmts.acc_bits for l in self.model.layers)
        self.w_depth = int(self.contents["weight"].shape[1])
        self.k_depth = int(self.contents["k"].shape[1])
        self.acc_depth = max(pl.slots * l.matrix.p for pl, l in zip(self.places, self.model.layers))

    @property
    def lane_params(self) -> tuple[tuple[int, ...], int, int, int, int, int, int]:
        """Positional parameters of ``Lane`` / ``PE`` after ``lanes``."""
        return (self.ps, self.act_bits, self.weight_bits, self.acc_bits, self.w_depth,
                self.k_depth, self.acc_depth)

    def global_lane(self, l: int) -> int:
        return self.pe * self.lanes + l

    def accumulators(self, layer: int) -> int:
        """``B*p``: the accumulators a pass of ``layer`` drains in every lane."""
        return self.places[layer].slots * self.model.layers[layer].matrix.p

    def golden(self, layer: int, x: npt.ArrayLike) -> list[list[int]]:
        """Golden accumulators of this PE for ``layer`` on ``x``: ``[lane][t*p + r]``."""
        mat = self.model.layers[layer].matrix
        p, b, nl = mat.p, self.places[layer].slots, self.cfg.total_lanes
        y = np.zeros(b * nl * p, np.int64)
        y[:mat.shape[0]] = mat.int_matvec(np.asarray(x, dtype=np.int64))
        return [[int(y[(t * nl + self.global_lane(l)) * p + r]) for t in range(b)
                 for r in range(p)] for l in range(self.lanes)]


def build_case(params: dict) -> Case:
    """The :class:`Case` of a dict holding :data:`CASE_KEYS`."""
    return Case(**{k: params[k] for k in CASE_KEYS})


def _fields(layout):
    return [[name, f.offset, f.width] for name, f in layout]


def pe_config(case: Case, dut: PE) -> dict:
    """The bench's ``config`` for ``dut`` (a ``PE`` built from ``case``)."""
    images = ([{mem: str(path) for mem, path in lane.images.items()} for lane in dut.lane]
              if dut.uses_images else None)
    return {**case.params, "images": images, "acc_bits": dut.acc_bits, "w_depth": dut.w_depth,
            "k_depth": dut.k_depth, "acc_depth": dut.acc_depth, "latency": dut.latency,
            "drain_latency": dut.drain_latency, "op_fields": _fields(dut.op_layout),
            "drain_fields": _fields(dut.drain_layout), "acc_fields": _fields(dut.acc_layout)}


def pack(fields: Iterable[Sequence[Any]], **values: int) -> int:
    """A struct word from ``{name: value}`` (two's complement for negative values)."""
    word = 0
    for name, offset, width in fields:
        v = values.get(name, 0)
        assert -(1 << width) < v < 1 << width, (name, v, width)
        word |= (v & ((1 << width) - 1)) << offset
    return word


def unpack(bits: str, offset: int, width: int, signed: bool = False) -> int | None:
    """Field of a little-end-first bit string (``str(LogicArray)`` reversed); None if not 0/1."""
    part = bits[offset:offset + width][::-1]
    if not part or set(part) - {"0", "1"}:
        return None
    v = int(part, 2)
    return v - (1 << width) if signed and v >> (width - 1) else v


class TB:
    """Clock, reset, the controller's schedule and the drain checker around one PE."""

    def __init__(self, dut):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.case = build_case(cfg)
        c = self.case
        for key in ("acc_bits", "w_depth", "k_depth", "acc_depth"):
            assert cfg[key] == getattr(c, key), f"DUT {key} {cfg[key]}, golden {getattr(c, key)}"
        self.latency, self.drain_latency = int(cfg["latency"]), int(cfg["drain_latency"])
        self.op_fields, self.drain_fields = cfg["op_fields"], cfg["drain_fields"]
        acc = {name: (offset, width) for name, offset, width in cfg["acc_fields"]}
        self.acc_stride = sum(w for _, w in acc.values())
        self.acc_valid, self.acc_value = acc["valid"], acc["value"]
        self.has_sel = any(name == "sel" for name, _, _ in self.op_fields)
        self.op_width = sum(width for _, _, width in self.op_fields)
        self.op_valid_bit = next(1 << off for name, off, _ in self.op_fields if name == "valid")
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.errors, self.checked, self.expected_checks = [], 0, 0
        self.valid_errors = 0
        self.ops = 0
        self.memories = "baked"
        if cfg.get("images") is not None:
            self.check_images(cfg["images"])
            self.memories = "images"
        self.log.info("PE %d of %d x %d lanes, ps %s, layers p %s, sizes %s; data seed %d, test "
                      "seed %d", c.pe, c.cfg.n_pe, c.lanes, list(c.ps), cfg["layer_ps"],
                      cfg["sizes"], cfg["seed"], cocotb.RANDOM_SEED)
        dut.op.value = 0
        dut.drain.value = 0
        dut.rst.value = 1
        Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)  # first rising edge at 5 ns

    def check_images(self, images: Sequence[dict[str, str]]) -> None:
        """The DUT's image files hold the golden contents of its lanes."""
        c = self.case
        assert len(images) == c.lanes, images
        widths = memory_widths(c.model)
        for l, files in enumerate(images):
            for mem, path in files.items():
                want = c.contents[mem][c.global_lane(l)]
                got = decode_hex(Path(path).read_bytes(), widths[mem], want.size, mem in SIGNED,
                                 path)
                assert np.array_equal(got, want), f"{path}: not the golden {mem} words of lane {l}"
        self.log.info("the %d image files the DUT loads by $readmemh hold the golden words",
                      sum(len(f) for f in images))

    async def reset(self) -> None:
        """Reset with all-zero ops, so that the first layer's ``sel`` (0) is constant from time 0
        inside the lanes' registers: a design whose ``sel`` logic waits for a change of ``sel``
        (an ``always @*`` case block under Icarus) fails then. Random invalid ops follow."""
        self.dut.rst.value = 1
        self.dut.op.value = 0
        await RisingEdge(self.dut.clk)  # (the clock's first edge, at time 0, is a falling one)
        for _ in range(3):
            await FallingEdge(self.dut.clk)
            self.dut.op.value = self.idle_op()
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    # --- stimulus -------------------------------------------------------------------------------

    def activation(self, density: float) -> int:
        if self.rng.random() >= density:
            return 0
        lo, hi = -(1 << (self.case.act_bits - 1)), (1 << (self.case.act_bits - 1)) - 1
        if self.rng.random() < 0.3:
            return self.rng.choice((lo, hi, -1, 1))
        return self.rng.choice((self.rng.randint(lo, -1), self.rng.randint(1, hi)))

    def op_word(self, layer: int, j: int, t: int, x_j: int) -> int:
        """The broadcast op for input ``j`` (value ``x_j``) of ``layer``, slot ``t``."""
        c = self.case
        p, place = c.model.layers[layer].matrix.p, c.places[layer]
        b = place.slots
        n_blocks = place.k_depth // b  # N'
        values = {"valid": 1, "w_addr": place.weight_base + t * n_blocks * p + j,
                  "k_addr": place.k_base + t * n_blocks + j // p, "c": j % p, "x": x_j,
                  "acc_addr": t * p}
        if self.has_sel:
            values["sel"] = c.ps.index(p)
        return pack(self.op_fields, **values)

    def idle_op(self) -> int:
        """An op without ``valid``: random fields, which the lanes must ignore."""
        return self.rng.getrandbits(self.op_width) & ~self.op_valid_bit

    def nothing(self, n: int = 1) -> list[tuple[int, int, None]]:
        """``n`` cycles with neither an op nor a drain request."""
        return [(self.idle_op(), 0, None) for _ in range(n)]

    def gap(self, idle: float, most: int = 3) -> list[tuple[int, int, None]]:
        return self.nothing(self.rng.randint(1, most) if self.rng.random() < idle else 0)

    def pass_steps(self, k: int, layer: int, density: float, idle: float
                   ) -> tuple[list[tuple[int, int, tuple[int, int, int] | None]], list[list[int]],
                              int]:
        """The per-cycle ``(op, drain, tag)`` of one pass and its golden accumulators."""
        c = self.case
        n = c.model.layers[layer].shape[1]
        b = c.places[layer].slots
        x = [self.activation(density) for _ in range(n)]
        steps = []
        for j, x_j in enumerate(x):
            if x_j:
                for t in range(b):
                    steps += self.gap(idle)
                    steps.append((self.op_word(layer, j, t, x_j), 0, None))
                    self.ops += 1
        if any(x):  # the first drain exactly `latency` cycles after the last op (or later)
            steps += self.nothing(self.latency - 1)
            steps += self.gap(idle)
        addrs = list(range(c.accumulators(layer)))
        if idle:
            self.rng.shuffle(addrs)
        for a in addrs:
            steps += self.gap(idle)
            steps.append((self.idle_op(), pack(self.drain_fields, valid=1, addr=a), (k, layer, a)))
        self.expected_checks += c.lanes * len(addrs)
        return steps, c.golden(layer, x), sum(v != 0 for v in x)

    # --- checks ---------------------------------------------------------------------------------

    def check(self, bits: str, tag: tuple[int, int, int] | None,
              golden: Sequence[list[list[int]]]) -> None:
        """Check ``acc`` of every lane at one cycle: ``tag`` is the drain due now, or None."""
        c = self.case
        for l in range(c.lanes):
            base = l * self.acc_stride
            valid = unpack(bits, base + self.acc_valid[0], self.acc_valid[1])
            if valid != (tag is not None):
                self.valid_errors += 1
                self.error(f"lane {l}: acc.valid is {valid}, expected {int(tag is not None)} "
                           f"(cycle {cycle()})")
                continue
            if tag is None:
                continue
            k, layer, a = tag
            p = c.model.layers[layer].matrix.p
            t, r = divmod(a, p)
            want = golden[k][l][a]
            got = unpack(bits, base + self.acc_value[0], self.acc_value[1], signed=True)
            self.checked += 1
            if got != want:
                g = c.global_lane(l)
                row = (t * c.cfg.total_lanes + g) * p + r
                self.error(f"layer {layer} ({c.model.layers[layer].name}, pass {k}): lane {l} "
                           f"(global lane {g}) slot t={t} r={r} (output row {row}): expected "
                           f"{want}, observed {got} (cycle {cycle()})")

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    async def run(self, name: str, idle: float) -> None:
        await self.reset()
        steps, golden, nnz = [], [], []
        for k, (layer, density) in enumerate(PASSES[name]):
            s, gold, z = self.pass_steps(k, layer, density, idle)
            steps += s
            golden.append(gold)
            nnz.append(z)
        steps += self.nothing(self.drain_latency + 2)  # the last values, then silence
        due = {}  # step -> tag of the drain whose value is on acc then
        first = None
        for i, (op, drain, tag) in enumerate(steps):
            await FallingEdge(self.dut.clk)
            if first is None:
                first = cycle()
            self.dut.op.value = op
            self.dut.drain.value = drain
            if tag is not None:
                due[i + self.drain_latency] = tag
            await ReadOnly()
            self.check(str(self.dut.acc.value)[::-1], due.pop(i, None), golden)
        c = self.case
        tb_report(name, memories=self.memories, checked=self.checked,
                  accumulators=self.expected_checks, mismatches=len(self.errors),
                  valid_errors=self.valid_errors, ops=self.ops,
                  nnz=nnz, passes=PASSES[name], cycles=cycle() - first + 1,
                  lanes=c.lanes, slots=[pl.slots for pl in c.places])
        assert not self.errors, f"{len(self.errors)} error(s); first: {self.errors[0]}"
        assert self.checked == self.expected_checks > 0, \
            f"checked {self.checked} of {self.expected_checks} accumulators"


@cocotb.test()
async def test_back_to_back(dut: Any) -> None:
    """Ops every cycle, drains at exactly the latency, the next layer right after the drains."""
    await TB(dut).run("test_back_to_back", idle=0.0)


@cocotb.test()
async def test_idle(dut: Any) -> None:
    """Random idle cycles between ops and drain requests, drains in random address order."""
    await TB(dut).run("test_idle", idle=0.4)
