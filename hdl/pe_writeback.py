# amaranth: UnusedElaboratable=no
"""One PE's write-back: its lanes' bias memories and write-back units (docs/design.md 3 and 4.2).

While the engine drains a layer, every lane's accumulator ``t*p + r`` leaves the lane
``DRAIN_LATENCY`` cycles after its drain request; the lane's bias memory (``golden.rom``'s
``bias`` image, address ``bias_base + t*p + r``) is read in the cycle of the request and its word
waits for the accumulator, and the pair goes through a :class:`~.writeback.Writeback` that knows
every layer's formats.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .lane import _words
from .rom import ImageRom, addr_bits, check_image
from .accumulator import DRAIN_LATENCY
from .pipeline import delay
from .writeback import Writeback

__all__ = ["PEWriteback"]


class PEWriteback(wiring.Component):
    """``lanes`` bias memories and write-back units (submodules ``bias0``, ``wb0``, ...).

    Parameters
    ----------
    lanes : int
        ``L``, at least 1.
    layers : sequence of ``(LayerFormats, relu)``
        Every layer's formats and ReLU, in order (``sel = l`` selects layer ``l``).
    bias_depth : int
        Words of each bias memory (``golden.rom`` placements: all layers' depths), at least 1.
    contents : sequence of ``lanes`` sequences of int
        Lane ``l``'s bias words (a row of ``golden.rom.lane_contents(...)["bias"]``), baked into
        the Verilog. Not with ``images``.
    images : sequence of ``lanes`` paths, optional
        Lane ``l``'s bias image file, loaded by ``$readmemh`` (:class:`~.rom.ImageRom`; build the
        Verilog with ``hdl.rom.ROM_SOURCE``), checked here like the lanes' images.
    rom_dir : str, optional
        With ``images``: how the Verilog names the files (:func:`.rom.verilog_path`).
    external : bool
        The bias memories live outside (the engine's): a ``bias`` port instead, and no
        ``contents`` or ``images``.

    Members
    -------
    drain : ``In({valid: 1, addr: addr_bits(bias_depth), sel: sel_bits})``
        In the cycle of the lanes' drain request: the bias address and the layer (no ``sel``
        field with a single layer).
    bias : ``In(ArrayLayout(signed(bias_bits), lanes))`` (external memories only)
        Lane ``l``'s bias word at the ``drain.addr`` of the cycle before.
    acc : ``In(ArrayLayout(acc_layout, lanes))``
        The PE's drain output (``PE.acc``), ``DRAIN_LATENCY`` cycles after the request.
    out : ``Out(ArrayLayout({valid: 1, value: signed(out_bits)}, lanes))``
        Lane ``l``'s output activation (``golden.formats.writeback`` of its accumulator and bias
        in the layer's formats, sign-extended to ``out_bits``, the widest output format).

    Timing
    ------
    ``latency = 4`` from the drain request to ``out``: the lane's drain read
    (``accumulator.DRAIN_LATENCY = 2`` cycles; the bias word, read in the cycle after the
    request, and the layer are registered to meet it, the word with its layer's rounding
    constant added, :meth:`.writeback.Writeback.prealign`, so that the write-back unit's adder
    stage holds the alignment and one adder), then the write-back unit's two stages.
    One value per lane per cycle; no back-pressure.
    """

    def __init__(self, lanes, layers, bias_depth, *, contents=None, images=None, rom_dir=None,
                 external=False):
        self._lanes = integer(lanes, "PE write-back lanes", 1)
        layers = tuple(layers)
        if not layers:
            raise PermdealError("PE write-back needs at least one layer")
        self._layers = layers
        self._depth = integer(bias_depth, "PE write-back bias_depth", 1)
        fmts = [f for f, _ in layers]
        relus = [r for _, r in layers]
        self._units = [Writeback(fmts if len(fmts) > 1 else fmts[0],
                                 relu=relus if len(relus) > 1 else relus[0], prealigned=True)
                       for _ in range(self._lanes)]
        self._bias_bits = max(f.bias.bits for f in fmts)
        self._images, self._rom_dir = None, rom_dir
        self._external = bool(external)
        self._contents = None
        if self._external:
            if contents is not None or images is not None:
                raise PermdealError("an external-memory PE write-back takes no contents or images")
        elif images is not None:
            if contents is not None:
                raise PermdealError("PE write-back contents must be left out when images are given")
            if isinstance(images, (str, bytes, Mapping, Path)) or not hasattr(images, "__len__") \
                    or len(images) != self._lanes:
                raise PermdealError(f"PE write-back images must be a sequence of {self._lanes} "
                                    f"paths, one per lane")
            self._images = [Path(path) for path in images]
            contents = [check_image(path, "bias", self._bias_bits, self._depth, signed=True)
                        .tolist() for path in self._images]
        if not self._external:
            if isinstance(contents, (str, bytes, Mapping)) or not hasattr(contents, "__len__") \
                    or len(contents) != self._lanes:
                raise PermdealError(f"PE write-back contents must be a sequence of "
                                    f"{self._lanes} bias word sequences, one per lane")
            lo, hi = -(1 << (self._bias_bits - 1)), (1 << (self._bias_bits - 1)) - 1
            self._contents = [_words(words, f"PE write-back bias[{l}]", self._depth, lo, hi,
                                     f"signed {self._bias_bits}-bit")
                              for l, words in enumerate(contents)]
        unit = self._units[0]
        drain = {"valid": unsigned(1), "addr": unsigned(addr_bits(self._depth))}
        if unit.sel_bits:
            drain["sel"] = unsigned(unit.sel_bits)
        ports = {"drain": In(data.StructLayout(drain))}
        if self._external:
            ports["bias"] = In(data.ArrayLayout(signed(self._bias_bits), self._lanes))
        super().__init__({
            **ports,
            "acc": In(data.ArrayLayout(self.acc_layout, self._lanes)),
            "out": Out(data.ArrayLayout(data.StructLayout(
                {"valid": unsigned(1), "value": signed(unit.out_bits)}), self._lanes)),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Cycles from a drain request to its value on ``out``."""
        return DRAIN_LATENCY + self._units[0].latency

    @property
    def acc_layout(self) -> data.StructLayout:
        """One lane's element of ``acc``: ``{valid, value: signed(acc_bits)}``."""
        return data.StructLayout({"valid": unsigned(1), "value": signed(self.acc_bits)})

    @property
    def bias_bits(self) -> int:
        return self._bias_bits

    @property
    def acc_bits(self) -> int:
        return self._units[0].acc_bits

    @property
    def out_bits(self) -> int:
        return self._units[0].out_bits

    @property
    def sel_bits(self) -> int:
        return self._units[0].sel_bits

    @property
    def contents(self) -> tuple[tuple[int, ...], ...] | None:
        """Every lane's bias words (tuples; None with external memories)."""
        return None if self._contents is None else tuple(self._contents)

    @property
    def external(self) -> bool:
        return self._external

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        # The layer and (below) the bias words wait for the lanes' drain output. The bias word
        # comes in the cycle after the request; the rounding constant of its layer is added to
        # it then (``Writeback.prealign``: that carry chain stays out of the write-back's adder
        # stage) into the register that holds it until the accumulator comes (docs/design.md 3
        # and 4.2).
        sel_r = delay(m, self.drain.sel, 1, "sel") if self.sel_bits else None  # with the word
        sel1 = delay(m, sel_r, DRAIN_LATENCY - 1, "sel_w") if self.sel_bits else None
        for l, unit in enumerate(self._units):
            if self._external:
                bias = self.bias[l]
            else:
                if self._images is not None:
                    mem = ImageRom(signed(self._bias_bits), self._depth, self._images[l],
                                   rom_dir=self._rom_dir)
                else:
                    mem = Memory(shape=signed(self._bias_bits), depth=self._depth,
                                 init=self._contents[l])
                m.submodules[f"bias{l}"] = mem
                rd = mem.read_port()
                m.d.comb += rd.addr.eq(self.drain.addr)
                bias = rd.data
            rounded = Signal(signed(unit.prealigned_bits), name=f"bias{l}_rounded",
                             reset_less=True)
            m.d.sync += rounded.eq(unit.prealign(bias, sel_r))
            bias = delay(m, rounded, DRAIN_LATENCY - 2, f"bias{l}")
            m.submodules[f"wb{l}"] = unit
            m.d.comb += [
                unit.i.valid.eq(self.acc[l].valid),
                unit.i.p.acc.eq(self.acc[l].value),
                unit.i.p.bias.eq(bias),
                unit.o.ready.eq(1),
                self.out[l].valid.eq(unit.o.valid),
                self.out[l].value.eq(unit.o.payload),
            ]
            if sel1 is not None:
                m.d.comb += unit.i.p.sel.eq(sel1)
        return m
