# amaranth: UnusedElaboratable=no
"""A lane's sums kept in memories: two sets, one accumulating while the other drains
(docs/design.md 16).

A lane of the SmartDeal engine's conv dataflow keeps a sum per output pixel (up to
``golden.smartdeal_conv_walk.MAX_SUMS``); as flip-flops they would be most of the engine. Here they
are two memories of ``V`` words (:class:`~.ram.Ram`, one read and one write port, emitted as
modules of their own so that synthesis prices them as memories): the tile being computed adds into
one set, the tile before drains from the other, and a close swaps them. A set's sums are not
cleared by writes: a bit per word says whether the tile has written it (``V`` flip-flops a set,
cleared at the close that starts a tile in that set); a word without it reads as zero.

The add is a read-modify-write: its word is read the cycle before (``rd_v``), added to ``prod`` and
written back. The memories' reads are not transparent, so the word read in the cycle of the
previous add's write misses it: one register forwards the previous add's sum (to the next add,
and to a drain read in the cycle of a tile's last add).
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .blackbox import Blackbox
from .lint import eq_const, select
from .ram import Ram

__all__ = ["LaneSums"]


class LaneSums(wiring.Component):
    """``V`` signed sums of ``acc_bits`` in two sets of memories.

    Parameters
    ----------
    prod_bits, acc_bits : int
        Widths of the products added and of a sum (sums wrap to it; the engine sizes it so that
        they never do).
    sums : int
        ``V``, at least 2.
    ram_modules : (str, str)
        The Verilog module names of the two sets' memories.

    Members
    -------
    rd_v : ``In(range(V))``
        The sum the add of the next cycle adds to (its read, a cycle early).
    prod, valid, v, close : ``In``
        The add: ``prod`` into sum ``v`` of the set being accumulated when ``valid``; ``close``
        ends the tile with this cycle (its add included): the sets swap.
    d_addr, d_en : ``In``
        A drain read of sum ``d_addr`` of the last closed set.
    d_data : ``Out(signed(acc_bits))``
        That sum, the cycle after the read (zero for a sum the tile did not write).

    Timing
    ------
    An add's ``rd_v`` in cycle ``a - 1``, its ``prod``/``valid``/``v`` in ``a``: written at the
    end of ``a``; any number of adds in a row, to any sums. A close in cycle ``c``: a drain read
    from cycle ``c`` on sees every add up to ``c``, and the next adds (from ``c + 1``) start from
    zero in the other set; the reads of the closed set must end before the close after next.
    """

    def __init__(self, prod_bits, acc_bits, sums, ram_modules):
        self._prod_bits = integer(prod_bits, "sum products' width", 1)
        self._acc_bits = integer(acc_bits, "sum width", 2)
        self._sums = integer(sums, "lane sums", 2)
        if len(ram_modules) != 2:
            raise PermdealError(f"lane sums need two memory module names, not {ram_modules!r}")
        self._rams = [Blackbox(Ram(self._acc_bits, self._sums, self._acc_bits), name)
                      for name in ram_modules]
        super().__init__({
            "rd_v": In(range(self._sums)),
            "prod": In(signed(self._prod_bits)), "valid": In(1),
            "v": In(range(self._sums)), "close": In(1),
            "d_addr": In(range(self._sums)), "d_en": In(1),
            "d_data": Out(signed(self._acc_bits)),
        })

    @property
    def blackboxes(self) -> tuple[Blackbox, Blackbox]:
        """The two sets' memories."""
        return tuple(self._rams)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        V = self._sums
        ram0, ram1 = self._rams
        m.submodules.set0, m.submodules.set1 = ram0, ram1
        cur = Signal()                          # the set being accumulated
        written = [Signal(V, name="written0"), Signal(V, name="written1")]
        rd_set = Signal()                       # the set of the next add (a close swaps them)
        d_set = Signal()                        # the set a drain reads: the other one
        m.d.comb += [rd_set.eq(cur ^ self.close), d_set.eq(~rd_set)]
        for i, ram in enumerate(self._rams):
            mine = rd_set if i else ~rd_set
            m.d.comb += [ram.r_addr.eq(Mux(mine, self.rd_v, self.d_addr)),
                         ram.r_en.eq(mine | self.d_en)]
        # The add: the word read the cycle before, unless the previous add wrote it then.
        last = Signal(signed(self._acc_bits))   # the previous add's sum
        fwd = Signal()                          # ... which this add's read missed
        m.d.sync += fwd.eq(self.valid & ~self.close & (self.v == self.rd_v))
        word = Mux(cur, ram1.r_data, ram0.r_data).as_signed()
        def bit(s, at):
            return select(at, [written[s][j] for j in range(V)])
        was = Mux(cur, bit(1, self.v), bit(0, self.v))
        base = Mux(fwd, last, Mux(was, word, 0))
        total = Signal(signed(self._acc_bits))
        m.d.comb += total.eq(base + self.prod)
        for i, ram in enumerate(self._rams):
            m.d.comb += [ram.w_addr.eq(self.v), ram.w_data.eq(total),
                         ram.w_en.eq(self.valid & (cur if i else ~cur))]
        with m.If(self.valid):
            m.d.sync += last.eq(total)
        for s in range(2):
            with m.If(self.close & (cur == s)):   # the next tile starts in the other set, empty
                m.d.sync += written[1 - s].eq(0)
            for j in range(V):
                with m.If(self.valid & (cur == s) & eq_const(self.v, j)):
                    m.d.sync += written[s][j].eq(1)
        with m.If(self.close):
            m.d.sync += cur.eq(~cur)
        # The drain: the closed set's word, or the tile's last add if the read missed it.
        d_fwd, d_was, d_set1 = Signal(), Signal(), Signal()
        m.d.sync += [d_fwd.eq(self.close & self.valid & (self.v == self.d_addr)),
                     d_was.eq(Mux(d_set, bit(1, self.d_addr), bit(0, self.d_addr))),
                     d_set1.eq(d_set)]
        d_word = Mux(d_set1, ram1.r_data, ram0.r_data).as_signed()
        m.d.comb += self.d_data.eq(Mux(d_fwd, last, Mux(d_was, d_word, 0)))
        return m
