# amaranth: UnusedElaboratable=no
"""A plain RAM: one write port with per-granule enables, one synchronous read port (docs/design.md 8).

The accumulators (:mod:`.accumulator`) and the activation banks (:mod:`.act_bank`) keep their
words in it. Emitted as a Verilog module of its own (through :class:`~.blackbox.Blackbox`), it is
what synthesis treats as a memory: a black box priced per bit on ``generic`` and ``asic``, block
RAM or LUT RAM on ``ecp5``.
"""

from typing import Any

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .blackbox import Blackbox
from .rom import addr_bits

__all__ = ["MemoryShape", "Ram", "RamUser"]


class MemoryShape:
    """``width``, ``depth`` and ``bits`` of a memory component that sets ``_width`` and
    ``_depth``."""

    _width: int
    _depth: int

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def bits(self) -> int:
        """Stored bits: ``width * depth``."""
        return self._width * self._depth


class RamUser:
    """A block that keeps its words in one :class:`Ram` of :attr:`ram_shape` (which the block
    defines): elaborated in place, or, with a ``ram_module`` name, as an instance of that Verilog
    module (:attr:`blackboxes`), emitted once for every block of the same shape."""

    ram_shape: tuple[int, int, int]

    def _use_ram(self, ram_module: str | None) -> None:
        """Call in the constructor, once the parameters :attr:`ram_shape` needs are set."""
        self._ram_box = None if ram_module is None else Blackbox(Ram(*self.ram_shape), ram_module)

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The memory's :class:`~.blackbox.Blackbox` with ``ram_module``, else none."""
        return () if self._ram_box is None else (self._ram_box,)

    def _ram(self) -> wiring.Component:
        """The memory to elaborate: the module instance, or a new :class:`Ram` in place."""
        return Ram(*self.ram_shape) if self._ram_box is None else self._ram_box


class Ram(MemoryShape, wiring.Component):
    """``depth`` words of ``width`` bits, all zero at first, written ``granularity`` bits at a
    time.

    Parameters
    ----------
    width : int
        Bits of a word, at least 1.
    depth : int
        Words, at least 2 (a 1-word memory has a 0-bit address, which Verilator refuses).
    granularity : int
        Bits of one write enable, at least 1, dividing ``width`` (``width``: one enable a word).

    Members
    -------
    w_addr, w_data, w_en : ``In``
        Write port: with bit ``i`` of ``w_en`` (``en_bits`` wide) set, granule ``i`` (bits
        ``[i * granularity, (i + 1) * granularity)``) of word ``w_addr`` becomes that granule of
        ``w_data`` at the rising edge; the other granules keep theirs.
    r_addr, r_en : ``In``
        Read port: with ``r_en`` set, word ``r_addr`` is read at the rising edge.
    r_data : ``Out(unsigned(width))``
        The word of the last enabled read, from the cycle after the request until the next
        enabled read.

    Timing
    ------
    The read is synchronous and not transparent: a request in cycle ``n`` has its word on
    ``r_data`` in cycle ``n + 1``, as it was *before* any write of cycle ``n`` (a write is seen by
    reads from cycle ``n + 1``). The contents are zero at initialisation; ``rst`` clears neither
    them nor ``r_data``.
    """

    def __init__(self, width, depth, granularity):
        self._width = integer(width, "RAM width", 1)
        self._depth = integer(depth, "RAM depth", 2)
        self._granularity = integer(granularity, "RAM granularity", 1)
        if self._width % self._granularity:
            raise PermdealError(f"RAM granularity must divide the width {self._width}, not "
                                f"{granularity!r}")
        super().__init__({
            "w_addr": In(self.addr_bits), "w_data": In(self._width), "w_en": In(self.en_bits),
            "r_addr": In(self.addr_bits), "r_en": In(1), "r_data": Out(self._width),
        })

    @property
    def granularity(self) -> int:
        return self._granularity

    @property
    def addr_bits(self) -> int:
        """Width of an address (``ceil(log2 depth)``)."""
        return addr_bits(self._depth)

    @property
    def en_bits(self) -> int:
        """Write enables: ``width / granularity``."""
        return self._width // self._granularity

    @property
    def blackbox_key(self) -> tuple:
        """What determines the module's Verilog: two RAMs with the same key may share one module
        name (:func:`~.blackbox.leaf_modules`)."""
        return ("Ram", self._width, self._depth, self._granularity)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self._width), depth=self._depth, init=[])
        wr = mem.write_port(granularity=self._granularity)
        rd = mem.read_port()  # not transparent: a same-cycle write is not seen
        m.d.comb += [
            wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
            rd.addr.eq(self.r_addr), rd.en.eq(self.r_en), self.r_data.eq(rd.data),
        ]
        return m
