"""The output reader: the last layer's outputs from the activation banks, in row order (DESIGN 4.2).

Output ``i`` of a layer of block size ``p`` is row ``r = i mod p`` of block-row ``I = i div p``,
which lane ``g = I mod NL`` wrote as its slot ``t = I div NL`` into its bank at wide row
``t*S + r div D``, position ``r mod D`` (``S = ceil(p / D)``; the layout of ``golden.cycles``).
The reader walks ``i = 0 .. m-1`` with counters (no divider), reads one wide word per cycle and
offers its activation on a stream.
"""

from typing import Any

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.golden.cycles import bank_read_latency
from permdeal.golden.formats import MAX_BITS
from permdeal.hdl.rom import addr_bits

from .act_banks import read_layout, word_layout
from .lint import eq_const
from .pipeline import delay, mux_tree
from .read_ahead import read_ahead

__all__ = ["OutputReader", "output_layout"]


def output_layout(out_bits: int) -> data.StructLayout:
    """A beat of the engine's output stream: ``data`` from bit 0, then ``last``."""
    return data.StructLayout({"data": signed(out_bits), "last": unsigned(1)})



class OutputReader(wiring.Component):
    """Streams the ``m`` outputs of a layer of block size ``p`` out of the activation banks.

    Parameters
    ----------
    banks, width, act_bits, rows : int
        Those of the ``ActBanks`` it reads (``NL``, ``D``, the bank's activation width, wide rows).
    out_bits : int
        Width of an output code, 2 to ``act_bits``: the bank word, which holds a code of the
        layer's output format sign-extended, is cut to it.
    groups : int
        The read ports of the ``ActBanks`` (default 1): its latency is that of ``banks / groups``
        banks. ``bank_rd.bank`` is the bank of all ``banks``; the engine sends the request to
        port ``bank mod groups``.
    m : int
        Outputs per inference, at least 1; the banks must hold them
        (``ceil(ceil(m / p) / NL) * S <= rows``).
    p : int
        The layer's block size, at least 1.

    Members
    -------
    start : ``In(1)``
        Pulse: stream the outputs once. Only while the reader is idle (before the first start, or
        from the cycle after the last output was handed off).
    bank_rd : ``Out(ActBanks.read_layout)``, bank_window : ``In(ActBanks.window_layout)``
        Read request to the banks and their read word (``valid`` ignored).
    o : ``Out(stream.Signature(output_layout(out_bits)))``
        ``{data: signed(out_bits), last: 1 bit}``: the outputs in order, ``last`` on output
        ``m - 1``.

    Timing
    ------
    ``latency = golden.cycles.bank_read_latency(banks / groups) + 1`` (``OL``): with ``start`` in cycle
    ``k`` output 0 is valid in cycle ``k + OL`` and, with ``o.ready`` high every cycle, output
    ``i`` in ``k + OL + i``. The output buffer is :func:`.read_ahead.read_ahead`'s: the read
    enables come from registers and ``start`` (not from ``o.ready``); under back-pressure no
    output is lost, repeated or reordered. ``rst`` (synchronous) abandons the stream.
    """

    def __init__(self, banks, width, act_bits, rows, out_bits, m, p, groups=1):
        self._banks = integer(banks, "output reader banks", 1)
        self._groups = integer(groups, "output reader groups", 1)
        self._width = integer(width, "output reader width", 1)
        self._act_bits = integer(act_bits, "output reader act_bits", 2, MAX_BITS)
        self._rows = integer(rows, "output reader rows", 1)
        self._out_bits = integer(out_bits, "output reader out_bits", 2, self._act_bits)
        self._m = integer(m, "output reader m", 1)
        self._p = integer(p, "output reader p", 1)
        super().__init__({
            "start": In(1),
            "bank_rd": Out(read_layout(self._banks, self._rows)),
            "bank_window": In(word_layout(self._width, self._act_bits)),
            "o": Out(stream.Signature(output_layout(self._out_bits))),
        })

    @property
    def m(self) -> int:
        return self._m

    @property
    def p(self) -> int:
        return self._p

    @property
    def out_bits(self) -> int:
        return self._out_bits

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first output on ``o``: the banks' read, then the output
        buffer."""
        return bank_read_latency(self._banks // self._groups) + 1

    def address(self, i: int) -> tuple[int, int, int]:
        """``(bank, row, pos)`` of output ``i`` (the layout in the module docstring)."""
        big_i, r = divmod(i, self._p)
        t, g = divmod(big_i, self._banks)
        return g, t * -(-self._p // self._width) + r // self._width, r % self._width

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d, nl, p = self._width, self._banks, self._p
        s_step = -(-p // d)
        row_bits = addr_bits(self._rows)
        pos_bits = addr_bits(d)

        # The next output to read: counters (registers), back at output 0 whenever the reader is
        # idle, so ``start`` reaches no address path.
        active = Signal()
        i, r, pos, rhi = Signal(addr_bits(self._m)), Signal(addr_bits(p)), Signal(pos_bits), \
            Signal(addr_bits(s_step))
        g, tbase = Signal(addr_bits(nl)), Signal(row_bits + 1)
        going = Signal()
        last = Signal()
        m.d.comb += [going.eq(self.start | active), last.eq(eq_const(i, self._m - 1))]

        # the output's position and ``last`` travel beside its read
        read_latency = self.latency - 1
        f_pos_reg, f_last_reg = Signal(pos_bits), Signal()
        f_pos = delay(m, f_pos_reg, read_latency - 1, "f_pos")
        f_last = delay(m, f_last_reg, read_latency - 1, "f_last")
        # (kept: synthesis forms the arriving output from registers, and the buffer's select by
        # the handoff comes after it, not inside the 8-way pick)
        arriving = Signal(output_layout(self._out_bits), attrs={"keep": 1})
        m.d.comb += [
            arriving.data.eq(mux_tree(f_pos, list(self.bank_window.data))[:self._out_bits]),
            arriving.last.eq(f_last),
        ]
        issue, _, _ = read_ahead(m, output_layout(self._out_bits), going, arriving, self.o,
                                 read_latency)
        m.d.comb += [
            self.bank_rd.valid.eq(issue),
            self.bank_rd.bank.eq(g),
            self.bank_rd.row.eq((tbase + rhi)[:row_bits]),
        ]
        with m.If(issue):
            m.d.sync += [f_pos_reg.eq(pos), f_last_reg.eq(last), active.eq(~last)]
            with m.If(last):
                m.d.sync += [i.eq(0), r.eq(0), pos.eq(0), rhi.eq(0), g.eq(0), tbase.eq(0)]
            with m.Elif(eq_const(r, p - 1)):
                m.d.sync += [i.eq((i + 1)[:len(i)]), r.eq(0), pos.eq(0), rhi.eq(0)]
                with m.If(eq_const(g, nl - 1)):
                    m.d.sync += [g.eq(0), tbase.eq((tbase + s_step)[:len(tbase)])]
                with m.Else():
                    m.d.sync += g.eq((g + 1)[:len(g)])
            with m.Else():
                m.d.sync += [i.eq((i + 1)[:len(i)]), r.eq((r + 1)[:len(r)])]
                with m.If(eq_const(pos, d - 1)):
                    m.d.sync += [pos.eq(0), rhi.eq((rhi + 1)[:len(rhi)])]
                with m.Else():
                    m.d.sync += pos.eq((pos + 1)[:len(pos)])
        with m.Elif(self.start):
            m.d.sync += active.eq(1)
        return m
