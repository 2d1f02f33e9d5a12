# amaranth: UnusedElaboratable=no
"""The SmartDeal engine's memories, each a module of its own (docs/design.md 8).

Two kinds, by their read port:

* synchronous (the word a cycle after its address): the non-zero lists (an :class:`~.ram.Ram`)
  and every lane's Ce and basis ROMs (:class:`BakedRom`, ``comb=False``). The engine emits each
  as a Verilog module of its own (:class:`~.blackbox.Blackbox`), which synthesis keeps as a black
  box and prices per bit (``synth.memory``'s SRAM and register-file models).
* asynchronous (the word in the cycle of its address): the chunk starts and the output memory
  (:class:`RegFile`), the run ROM and the biases (:class:`BakedRom`, ``comb=True``). A few words
  each; the engine's cycle rule (docs/design.md 11.1) reads them combinationally, which no SRAM
  does, so they stay logic: submodules of the engine that synthesis builds as register files
  (flip-flops and read multiplexers; a ROM's constants become gates) and reports apart.

The ROMs' words are baked into the Verilog (no image files).
"""

from typing import Any

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .ram import MemoryShape
from .rom import addr_bits

__all__ = ["BakedRom", "RegFile"]


class BakedRom(MemoryShape, wiring.Component):
    """A ROM of ``words`` (unsigned ``width``-bit integers, padded with zeros to 2 words), its
    contents in the Verilog.

    Members
    -------
    r_addr : ``In``
        The address.
    r_en : ``In(1)``
        With ``comb=False`` only: the word ``r_addr`` is read at the rising edge; ``r_data``
        holds it from the next cycle until the next enabled read.
    r_data : ``Out(unsigned(width))``
        The word (``comb=True``: word ``r_addr`` in the same cycle).
    """

    def __init__(self, width, words, *, comb=False):
        self._width = integer(width, "ROM width", 1)
        words = [int(w) for w in words]
        if not words or any(not 0 <= w < (1 << self._width) for w in words):
            raise PermdealError(f"a ROM needs at least one word, each of 0 .. "
                                f"2**{self._width} - 1")
        self._words = words + [0] * max(0, 2 - len(words))
        self._depth = len(self._words)
        self._comb = bool(comb)
        members = {"r_addr": In(addr_bits(self.depth)), "r_data": Out(self._width)}
        if not self._comb:
            members["r_en"] = In(1)
        super().__init__(members)

    @property
    def comb(self) -> bool:
        return self._comb

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self._width), depth=self.depth,
                                        init=self._words)
        rd = mem.read_port(domain="comb" if self._comb else "sync")
        m.d.comb += [rd.addr.eq(self.r_addr), self.r_data.eq(rd.data)]
        if not self._comb:
            m.d.comb += rd.en.eq(self.r_en)
        return m


class RegFile(MemoryShape, wiring.Component):
    """``depth`` words of ``width`` bits, zero at first: one synchronous write port, ``reads``
    asynchronous read ports (a register file).

    Members
    -------
    w_addr, w_data, w_en : ``In``
        With ``w_en``, word ``w_addr`` becomes ``w_data`` at the rising edge.
    r<i>_addr : ``In``, r<i>_data : ``Out(unsigned(width))``
        Read port ``i``: word ``r<i>_addr`` in the same cycle (a write is seen from the next).
    """

    def __init__(self, width, depth, reads=1):
        self._width = integer(width, "register file width", 1)
        self._depth = integer(depth, "register file depth", 2)
        self._reads = integer(reads, "register file read ports", 1)
        a = addr_bits(self._depth)
        members = {"w_addr": In(a), "w_data": In(self._width), "w_en": In(1)}
        for i in range(self._reads):
            members[f"r{i}_addr"] = In(a)
            members[f"r{i}_data"] = Out(self._width)
        super().__init__(members)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self._width), depth=self._depth, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en)]
        for i in range(self._reads):
            rd = mem.read_port(domain="comb")
            m.d.comb += [rd.addr.eq(getattr(self, f"r{i}_addr")),
                         getattr(self, f"r{i}_data").eq(rd.data)]
        return m
