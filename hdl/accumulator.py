# amaranth: UnusedElaboratable=no
"""The accumulator memory of a lane: read-modify-write adds and read-and-clear drains
(docs/design.md 4.2).

A block of its own so that synthesis reports its area apart (``permdeal synth``'s per-PE
breakdown). Its words live in a :class:`~.ram.Ram`, elaborated in place or, with ``ram_module``,
emitted once as a Verilog module of its own (the engine's way: synthesis then counts it as a
memory, docs/design.md 8).
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_ACC_BITS

from .ram import RamUser
from .rom import addr_bits

__all__ = ["Accumulator"]


class Accumulator(RamUser, wiring.Component):
    """``depth`` signed accumulators of ``acc_bits`` in one memory with one read and one write
    port.

    Parameters
    ----------
    acc_bits : int
        Width of an accumulator, ``value_bits`` to 63; sums wrap to it (the generator sizes it so
        that they never do).
    value_bits : int
        Width of the signed values added, 2 to ``acc_bits``.
    depth : int
        Number of accumulators, >= 1.
    ram_module : str, optional
        Emit the memory (a :class:`~.ram.Ram` of ``max(2, depth)`` words of ``acc_bits``, one
        enable a word) as the Verilog module of this name and instantiate it (:attr:`blackboxes`);
        by default it is elaborated in place. The behaviour is the same.

    Members
    -------
    add : ``In({valid, addr, value})``
        Add ``value`` to accumulator ``addr``: presented in cycle ``n`` (the address goes to the
        read port then), written at the end of cycle ``n + 1``.
    drain : ``In({valid, addr})``
        Read-and-clear accumulator ``addr``: presented in cycle ``d``, its value is on ``acc`` in
        cycle ``d + 1`` (``drain_latency = 1``) and the accumulator is zero after that cycle.
    acc : ``Out({valid, value})``
        Drained value; ``value`` is meaningful only while ``valid``.

    An add or drain whose address the write port wrote in the cycle before sees that write
    through a forwarding register (the read port is not transparent), so back-to-back adds to one
    accumulator sum exactly and a drain right after a clear reads 0. Adds and drains share the
    read port: ``add.valid`` and ``drain.valid`` must not be high in the same cycle (the lane's
    controller guarantees it). The accumulators are zero at initialisation, not at ``rst``;
    ``rst`` (synchronous) drops a pending add and the drain output.
    """

    def __init__(self, acc_bits, value_bits, depth, *, ram_module=None):
        self._value_bits = integer(value_bits, "accumulator value_bits", 2)
        try:
            self._acc_bits = integer(acc_bits, "accumulator acc_bits", self._value_bits,
                                     MAX_ACC_BITS)
        except PermdealError:
            raise PermdealError(f"accumulator acc_bits must be an integer in "
                                f"[{self._value_bits}, {MAX_ACC_BITS}] (at least value_bits), "
                                f"not {acc_bits!r}") from None
        self._depth = integer(depth, "accumulator depth", 1)
        self._use_ram(ram_module)
        super().__init__({"add": In(self.add_layout), "drain": In(self.drain_layout),
                          "acc": Out(self.acc_layout)})

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def value_bits(self) -> int:
        return self._value_bits

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def addr_bits(self) -> int:
        return addr_bits(self._depth)

    @property
    def ram_shape(self) -> tuple[int, int, int]:
        """``(width, depth, granularity)`` of the memory (:class:`~.ram.Ram`; at least 2 words:
        a 1-word memory has a 0-bit address)."""
        return self._acc_bits, max(2, self._depth), self._acc_bits

    @property
    def drain_latency(self) -> int:
        """Cycles from a drain request to its value on ``acc``."""
        return 1

    @property
    def add_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "addr": unsigned(self.addr_bits),
                                  "value": signed(self._value_bits)})

    @property
    def drain_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "addr": unsigned(self.addr_bits)})

    @property
    def acc_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "value": signed(self._acc_bits)})

    def _old_value(self, read, fwd_valid, fwd_addr, fwd_data, addr):
        """The value of accumulator ``addr`` read in the cycle before: the previous cycle's
        write when it went to ``addr`` (the read port, not transparent, missed it), else what the
        read port read."""
        return Mux(fwd_valid & (fwd_addr == addr), fwd_data, read)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ram = self._ram()
        m.submodules.mem = ram
        # the read port is not transparent: the forwarding register covers the last write
        m.d.comb += [ram.r_addr.eq(Mux(self.drain.valid, self.drain.addr, self.add.addr)),
                     ram.r_en.eq(1)]

        # Second cycle of an add or a drain: the old value, then the sum or the clear.
        add1 = Signal()
        add_addr1 = Signal(self.addr_bits, reset_less=True)
        value1 = Signal(signed(self._value_bits), reset_less=True)
        drain1 = Signal()
        drain_addr1 = Signal(self.addr_bits, reset_less=True)
        m.d.sync += [add1.eq(self.add.valid), add_addr1.eq(self.add.addr),
                     value1.eq(self.add.value), drain1.eq(self.drain.valid),
                     drain_addr1.eq(self.drain.addr)]

        fwd_valid = Signal()
        fwd_addr = Signal(self.addr_bits, reset_less=True)
        fwd_data = Signal(signed(self._acc_bits), reset_less=True)
        wr_addr = Signal(self.addr_bits)
        wr_en = Signal()
        wr_data = Signal(signed(self._acc_bits))
        old = Signal(signed(self._acc_bits))
        m.d.comb += [
            wr_addr.eq(Mux(add1, add_addr1, drain_addr1)),
            old.eq(self._old_value(ram.r_data.as_signed(), fwd_valid, fwd_addr, fwd_data,
                                   wr_addr)),
            wr_en.eq(add1 | drain1),
            wr_data.eq(Mux(add1, old + value1, 0)),  # wraps to acc_bits
            ram.w_en.eq(wr_en),
            ram.w_addr.eq(wr_addr),
            ram.w_data.eq(wr_data),
            self.acc.valid.eq(drain1),
            self.acc.value.eq(old),
        ]
        m.d.sync += [fwd_valid.eq(wr_en), fwd_addr.eq(wr_addr), fwd_data.eq(wr_data)]
        return m
