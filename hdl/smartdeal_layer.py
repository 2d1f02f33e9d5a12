# amaranth: UnusedElaboratable=no
"""The SmartDeal layer unit: one layer ``y = act(W x + b)`` with ``W`` rebuilt on the fly.

Data path::

    i --> x0 .. x{S-1} (input buffer) --> queue (the row's activations) --+
                                                                          v
    ce_rom, b_rom --> fetcher --> shift_add (the row's weights) --------> mac --> writeback --> o
                                                                  bias_rom -----^

The unit loads the layer's ``n`` input codes (``LOAD``), then walks its slots, one per chunk
``c`` of every output row ``i`` (``golden.smartdeal_cycles``): the fetcher reads the block's
``S x S`` basis at a block start and the slot's ``S`` Ce codes, one ROM word a cycle, from the
layer's ROM images (``golden.smartdeal_model``: ``L<i>_ce.hex``, ``L<i>_b.hex``, one code a word,
loaded by ``$readmemh``); a slot whose codes are all zero (a pruned or empty Ce row) is skipped
unless it closes its output row. Every other slot goes to the bit-serial shift-add unit
(``hdl.shift_add``), which rebuilds its ``S`` weights bit for bit as
``golden.smartdeal.rebuild_int`` does (alignment to the weight format with round-half-up and
saturation); the chunk's activations wait in ``queue``. The MAC multiplies the rebuilt row by the
activations and accumulates; after an output's last row its sum and bias (``L<i>_bias.hex``) go
through the section-3 write-back (``hdl.writeback``: bias alignment, round half up, saturation,
ReLU) to ``o``. The outputs are exactly ``golden.smartdeal_model.SmartDealLayer.forward``'s, in
index order; ``golden.smartdeal_cycles.layer_cycles`` is the exact cycle count.

Input positions past ``n`` in the last chunk are never written and read as zero (the memories start
at zero), so the padding columns of the rebuilt matrix, which the golden model drops, add nothing.
"""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal_cycles as sc
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.shift_add import ShiftAddTiming
from permdeal.golden.smartdeal_model import SmartDealLayer, SmartDealLayerSpec, _spec_of, image_name

from .lint import eq_const
from .output_reader import output_layout
from .rom import ImageRom, check_image, verilog_path
from .shift_add import ShiftAdd
from .smartdeal_mac import SmartDealMac
from .writeback import Writeback

__all__ = ["SmartDealLayerUnit", "State", "check_ce_words", "check_layer_images", "layer_spec"]

#: Rows (with their activations) that can be between the fetcher and the MAC: the one in the
#: shift-add unit, the one in its output register, and one accepted as that one leaves.
QUEUE_DEPTH = 3


class State(enum.Enum, shape=3):
    """The unit's states (module docstring); no state is 0 (Yosys writes ``!state``)."""

    LOAD = 1
    FETCH = 2
    LAND = 3
    READY = 4
    DRAIN = 5


def _counter(n):
    """A counter of ``0 .. n-1`` (at least one bit, so that no signal is empty)."""
    return Signal(range(max(2, n)))


def layer_spec(layer: SmartDealLayer | SmartDealLayerSpec) -> SmartDealLayerSpec:
    """The ``golden.smartdeal_model.SmartDealLayerSpec`` of a ``SmartDealLayer`` (or the spec itself)."""
    if isinstance(layer, SmartDealLayerSpec):
        return layer
    if isinstance(layer, SmartDealLayer):
        return _spec_of(layer)
    raise PermdealError(f"SmartDeal layer unit: a SmartDealLayer or its SmartDealLayerSpec is needed, not "
                        f"{type(layer).__name__}")


def check_ce_words(words: npt.ArrayLike, code_bits: int, path: str | Path) -> None:
    """Refuse a Ce image's words (``code_bits``-bit codes ``{nz, sign, e_idx}``) holding a code
    with ``nz = 0`` and other bits set, naming the file ``path`` and the line."""
    words = np.asarray(words, dtype=np.int64)
    bad = ((words >> (code_bits - 1)) == 0) & (words != 0)
    if np.any(bad):
        line = int(np.argmax(bad)) + 1
        raise PermdealError(f"{path}: line {line}: Ce code {int(words[line - 1])} has nz = 0 but "
                            f"other bits set; outside the {code_bits}-bit codes {{nz, sign, "
                            "e_idx} (a zero entry is code 0)")


def check_layer_images(spec: SmartDealLayerSpec, folder: str | Path, index: int,
                       rom_dir: str | None = None) -> dict[str, Path]:
    """Check layer ``index``'s three images in ``folder`` against ``spec`` (width, depth, the
    manifest beside them, every Ce code a valid ``{nz, sign, e_idx}``); returns their paths."""
    folder = Path(folder)
    mems = spec.memories()
    paths = {}
    for part, (width, depth, signed_) in mems.items():
        path = folder / image_name(index, part)
        words = check_image(path, path.stem, width, depth, signed_)
        if part == "ce":
            check_ce_words(words, width, path)
        verilog_path(path, rom_dir)
        paths[part] = path
    return paths


class SmartDealLayerUnit(wiring.Component):
    """One SmartDeal layer in RTL, its codes in ROMs loaded from the layer's ROM images.

    Parameters
    ----------
    layer : golden.smartdeal_model.SmartDealLayer or SmartDealLayerSpec
        The layer: shape, ``S``, ``E``, ``b_B``, rows per block, formats, ReLU, alignment.
    images : path
        The folder of the model's ROM images (``golden.smartdeal_model.write_rom``); the unit
        reads ``L<index>_ce.hex``, ``L<index>_b.hex`` and ``L<index>_bias.hex``.
    index : int
        The layer's index in its model (the images' names).
    lanes : int, optional
        Lanes of the shift-add unit, 1 to ``S`` (default ``S``): ``P = ceil(S / lanes)`` passes
        per row.
    rom_dir : str, optional
        How the Verilog names the image files (``hdl.rom.verilog_path``; default: absolute).
    check_images : bool
        Check the images now (default): width, depth, sha256 against the manifest beside them,
        every Ce code valid; a mismatch is a ``PermdealError`` naming the file (and line).

    Members
    -------
    i : ``In(stream.Signature(signed(in_bits)))``
        The layer's ``n`` input codes (its activation format) in index order; taken while the
        unit loads (``i.ready``).
    o : ``Out(stream.Signature(output_layout(out_bits)))``
        ``{data, last}``: the ``m`` output codes (output format) in index order, ``last`` on the
        final one. After it the unit loads the next input vector.

    Timing
    ------
    Inputs are taken one a cycle while loading; :func:`golden.smartdeal_cycles.layer_cycles` is
    the exact count from the cycle after the last input through the last output accepted, with
    the output always ready; back-pressure on ``o`` (or idle on ``i``) only adds its own cycles.
    The read-only figures :attr:`cycles_per_row`, :attr:`slot_overhead`, :attr:`fetch_words` and
    :attr:`output_latency` are the terms of that model. ``rst`` (synchronous) abandons the input
    vector and returns to loading.
    """

    def __init__(self, layer, images, *, index=0, lanes=None, rom_dir=None, check_images=True):
        self._spec = spec = layer_spec(layer)
        self._geo = g = sc.geometry(spec)
        self._index = integer(index, "layer index", 0)
        self._align = spec.header()["align_shift"]
        f = spec.fmts
        if max(f.act.bits, f.out.bits, f.weight.bits) > MAX_BITS:
            raise PermdealError(f"layer {spec.name}: formats wider than {MAX_BITS} bits")
        self._shift_add = ShiftAdd(g.S, g.E, g.b_bits, f.weight.bits, self._align,
                                   g.S if lanes is None else lanes)
        self._rom_dir = rom_dir
        folder = Path(images)
        if check_images:
            self._images = check_layer_images(spec, folder, self._index, rom_dir)
        else:
            self._images = {part: folder / image_name(self._index, part)
                            for part in spec.memories()}
            for path in self._images.values():
                verilog_path(path, rom_dir)
        super().__init__({
            "i": In(stream.Signature(signed(f.act.bits))),
            "o": Out(stream.Signature(output_layout(f.out.bits))),
        })

    # -- parameters and figures ----------------------------------------------------------------

    @property
    def spec(self) -> SmartDealLayerSpec:
        """The layer's ``golden.smartdeal_model.SmartDealLayerSpec``."""
        return self._spec

    @property
    def geometry(self) -> sc.Geometry:
        """``golden.smartdeal_cycles.Geometry``: ``m``, ``n``, ``S``, ``h``, ``r``, blocks."""
        return self._geo

    @property
    def index(self) -> int:
        return self._index

    @property
    def lanes(self) -> int:
        return self._shift_add.lanes

    @property
    def align_shift(self) -> int:
        """The shift-add unit's alignment to the weight format
        (``golden.smartdeal.align_shift``)."""
        return self._align

    @property
    def in_bits(self) -> int:
        return self._spec.fmts.act.bits

    @property
    def out_bits(self) -> int:
        return self._spec.fmts.out.bits

    @property
    def n_inputs(self) -> int:
        return self._geo.n

    @property
    def n_outputs(self) -> int:
        return self._geo.m

    @property
    def images(self) -> dict[str, Path]:
        """``{part: path}`` of the three ROM images (``ce``, ``b``, ``bias``)."""
        return dict(self._images)

    @property
    def memories(self) -> dict[str, tuple[int, int, bool]]:
        """``{part: (width, depth, signed)}`` of the ROMs."""
        return self._spec.memories()

    @property
    def shift_add_timing(self) -> ShiftAddTiming:
        """``golden.shift_add.ShiftAddTiming`` of the shift-add unit."""
        return self._shift_add.timing

    @property
    def cycles_per_row(self) -> int:
        """``PT``: cycles the shift-add unit spends on one row (its initiation interval)."""
        return self._shift_add.cycles_per_row

    @property
    def fetch_words(self) -> tuple[int, int]:
        """ROM words read for a slot: ``(S, S*S + S)`` (inside a block, at a block start)."""
        S = self._geo.S
        return sc.fetch_words(S, False), sc.fetch_words(S, True)

    @property
    def slot_overhead(self) -> int:
        """Cycles of a slot beyond its ROM reads (the last word landing, the decision)."""
        return sc.SLOT_OVERHEAD

    @property
    def output_latency(self) -> int:
        """Cycles from the MAC taking an output's last row to the output accepted."""
        return sc.MAC_LATENCY + sc.WRITEBACK_LATENCY

    # -- hardware ------------------------------------------------------------------------------

    def _active(self, nonzero, last_slot):
        """Whether a slot goes through the shift-add unit: its codes are not all zero, or it
        closes its output row."""
        return nonzero | last_slot

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g, spec = self._geo, self._spec
        S, E, f = g.S, g.E, spec.fmts
        mems = spec.memories()

        sa = self._shift_add
        mac = SmartDealMac(S, f.act.bits, f.weight.bits, f.acc_bits)
        wb = Writeback(f, relu=spec.relu)
        queue = SyncFIFO(width=mac.x_layout.size, depth=QUEUE_DEPTH)
        roms = {part: ImageRom(signed(w) if sg else unsigned(w), d, self._images[part],
                               rom_dir=self._rom_dir)
                for part, (w, d, sg) in mems.items()}
        m.submodules.shift_add = sa
        m.submodules.mac = mac
        m.submodules.queue = queue
        m.submodules.writeback = wb
        for part, rom in roms.items():
            m.submodules[f"{part}_rom"] = rom
        xbuf = [Memory(shape=signed(f.act.bits), depth=max(2, g.r), init=[])
                for _ in range(S)]
        for j, mem in enumerate(xbuf):
            m.submodules[f"x{j}"] = mem
        x_wr = [mem.write_port() for mem in xbuf]
        x_rd = [mem.read_port() for mem in xbuf]

        state = Signal(State, init=State.LOAD)

        # -- loading: input t = c*S + j goes to memory j, word c ----------------------------------
        l_chunk, l_col = _counter(g.r), _counter(S)
        last_in = Signal()
        m.d.comb += last_in.eq(eq_const(l_chunk, (g.n - 1) // S) & eq_const(l_col, (g.n - 1) % S))
        for j, port in enumerate(x_wr):
            m.d.comb += [port.addr.eq(l_chunk), port.data.eq(self.i.payload),
                         port.en.eq((state == State.LOAD) & self.i.valid & eq_const(l_col, j))]

        # -- the fetcher --------------------------------------------------------------------------
        row = _counter(g.m)
        chunk = _counter(g.r)
        cb = _counter(g.h)                             # chunk mod h: the row in its block
        q = _counter(S * S)                            # the word being read
        phase_b = Signal()                             # reading the basis (a block start)
        ce_ptr = Signal(g.ce_depth.bit_length() + 1)
        b_ptr = Signal(g.b_depth.bit_length() + 1)
        land_c, land_b = Signal(), Signal()            # a word lands in the cycle after its read
        codes = [Signal(unsigned(E + 2), name=f"code_{k}") for k in range(S)]
        basis = [Signal(signed(g.b_bits), name=f"basis_{k}") for k in range(S * S)]
        m.d.comb += [roms["ce"].addr.eq(ce_ptr), roms["b"].addr.eq(b_ptr)]
        for port in x_rd:
            m.d.comb += port.addr.eq(chunk)
        m.d.sync += [land_c.eq(0), land_b.eq(0)]
        with m.If(land_c):                             # shift registers: word k ends in slot k
            m.d.sync += [a.eq(b) for a, b in zip(codes, codes[1:] + [roms["ce"].data])]
        with m.If(land_b):
            m.d.sync += [a.eq(b) for a, b in zip(basis, basis[1:] + [roms["b"].data])]

        nonzero = Signal()
        last_slot = Signal()
        active = Signal()
        m.d.comb += [
            nonzero.eq(Cat(c[E + 1] for c in codes).any()),
            last_slot.eq(eq_const(chunk, g.r - 1)),
            active.eq(self._active(nonzero, last_slot)),
        ]
        for k in range(S):
            m.d.comb += sa.i.p.codes[k].eq(codes[k])
            for j in range(S):
                m.d.comb += sa.i.p.b[k][j].eq(basis[k * S + j])
        entry = Signal(mac.x_layout)
        m.d.comb += [entry.x[j].eq(port.data) for j, port in enumerate(x_rd)]
        m.d.comb += [entry.last.eq(last_slot), queue.w_data.eq(entry)]
        offered = Signal()
        m.d.comb += [
            offered.eq((state == State.READY) & active & queue.w_rdy),
            sa.i.valid.eq(offered),
            queue.w_en.eq(offered & sa.i.ready),
        ]

        # (an If chain, not a Switch: Yosys writes a Switch as an ``always @*`` block, which Icarus
        # does not evaluate until an input changes, leaving i.ready undefined after reset)
        with m.If(state == State.LOAD):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                with m.If(last_in):
                    m.d.sync += [l_chunk.eq(0), l_col.eq(0), state.eq(State.FETCH),
                                 row.eq(0), chunk.eq(0), cb.eq(0), q.eq(0),
                                 phase_b.eq(1), ce_ptr.eq(0), b_ptr.eq(0)]
                with m.Elif(eq_const(l_col, S - 1)):
                    m.d.sync += [l_col.eq(0), l_chunk.eq(l_chunk + 1)]
                with m.Else():
                    m.d.sync += l_col.eq(l_col + 1)
        with m.Elif(state == State.FETCH):
            m.d.sync += q.eq(q + 1)
            with m.If(phase_b):
                m.d.sync += [land_b.eq(1), b_ptr.eq(b_ptr + 1)]
                with m.If(eq_const(q, S * S - 1)):
                    m.d.sync += [phase_b.eq(0), q.eq(0)]
            with m.Else():
                m.d.sync += [land_c.eq(1), ce_ptr.eq(ce_ptr + 1)]
                with m.If(eq_const(q, S - 1)):
                    m.d.sync += [q.eq(0), state.eq(State.LAND)]
        with m.Elif(state == State.LAND):
            m.d.sync += state.eq(State.READY)
        with m.Elif(state == State.READY):
            with m.If(~active | (offered & sa.i.ready)):   # the slot is done: the next one
                m.d.sync += state.eq(State.FETCH)
                with m.If(last_slot):
                    m.d.sync += [chunk.eq(0), cb.eq(0), phase_b.eq(1),
                                 ce_ptr.eq(ce_ptr + g.row_pad), row.eq(row + 1)]
                    with m.If(eq_const(row, g.m - 1)):
                        m.d.sync += state.eq(State.DRAIN)
                with m.Else():
                    m.d.sync += chunk.eq(chunk + 1)
                    with m.If(eq_const(cb, g.h - 1)):
                        m.d.sync += [cb.eq(0), phase_b.eq(1)]
                    with m.Else():
                        m.d.sync += [cb.eq(cb + 1), phase_b.eq(0)]
        with m.Elif(state == State.DRAIN):
            pass
        with m.Else():   # no other encoding is reachable; recover by loading
            m.d.sync += state.eq(State.LOAD)

        # -- shift-add -> MAC -> write-back -> o -----------------------------------------------
        wiring.connect(m, sa.o, mac.w)
        m.d.comb += [
            mac.x.valid.eq(queue.r_rdy),
            mac.x.p.eq(queue.r_data),
            queue.r_en.eq(mac.x.ready),
        ]
        done_sum = Signal()
        w_idx = _counter(g.m)                          # the output whose sum is on mac.o
        w_next = _counter(g.m)
        m.d.comb += [
            done_sum.eq(mac.o.valid & mac.o.ready),
            w_next.eq(w_idx),
        ]
        with m.If(done_sum):
            m.d.comb += w_next.eq(w_idx + 1)
            with m.If(eq_const(w_idx, g.m - 1)):
                m.d.comb += w_next.eq(0)
        m.d.sync += w_idx.eq(w_next)
        m.d.comb += [
            roms["bias"].addr.eq(w_next),              # bias[w_idx] is on the ROM's output
            wb.i.valid.eq(mac.o.valid),
            wb.i.p.acc.eq(mac.o.p),
            wb.i.p.bias.eq(roms["bias"].data),
            mac.o.ready.eq(wb.i.ready),
        ]
        o_idx = _counter(g.m)
        last_out = Signal()
        m.d.comb += [
            last_out.eq(eq_const(o_idx, g.m - 1)),
            self.o.valid.eq(wb.o.valid),
            self.o.p.data.eq(wb.o.payload),
            self.o.p.last.eq(last_out),
            wb.o.ready.eq(self.o.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += o_idx.eq(o_idx + 1)
            with m.If(last_out):
                m.d.sync += [o_idx.eq(0), state.eq(State.LOAD)]
        return m
