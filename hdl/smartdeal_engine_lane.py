# amaranth: UnusedElaboratable=no
"""One MAC lane of the SmartDeal engine: its ROMs, its rebuild engine, a multiplier, an accumulator.

::

    ce_addr --> ce_rom (a Ce row a word) -----------------+
    b_addr  --> b_rom (a basis a word) --> column jj ------+--> rebuild --> mult --> acc[v] --> result
    jj, x, v, first, valid, close, sel -----(delayed to match)------------------^

The lane owns output rows of every layer (``hdl.smartdeal_engine``: row ``t*L + l`` of tile ``t``);
its ROMs hold those rows' Ce codes (``S`` codes a word) and the bases of their blocks (``S*S``
codes a word), the basis resident: a weight reads one basis word and picks column ``jj``. Every
cycle it may take one non-zero input ``x`` with the address of its Ce row and basis: it rebuilds
the weight (``hdl.smartdeal_rebuild``), multiplies and accumulates into the sum of the input's
vector ``v`` (one sum per vector of the batch). ``close`` ends the outputs: the sums (with this
cycle's product, if ``valid``) go to ``result`` and the sums restart. The ROMs are read only for an
input marked ``first`` (the first of its column): the inputs of the column's other vectors meet the
weight already rebuilt, the ROMs' words held, so the rebuild's registers do not toggle.

Its blocks are submodules (``rebuild``, ``mult``, ``acc``; the lane's own logic is the ROM
addressing, the basis column's selection and the delays), its ROMs instances of the Verilog
modules it is given (:class:`~.smartdeal_memories.BakedRom` behind a
:class:`~.blackbox.Blackbox`, :attr:`EngineLane.blackboxes`), which synthesis prices as memories.
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_ACC_BITS, MAX_BITS
from permdeal.golden.smartdeal_conv_walk import MAX_SUMS

from .blackbox import Blackbox
from .lint import eq_const, select
from .smartdeal_memories import BakedRom
from .smartdeal_rebuild import Rebuild
from .smartdeal_sums import LaneSums

__all__ = ["EngineLane", "LaneAccumulator", "LaneMultiplier", "pack_b", "pack_ce"]


def _check_sums(sums):
    return integer(sums, "lane sums", 1, MAX_SUMS)


def pack_ce(codes, E: int) -> int:
    """A Ce ROM word: code ``k`` of the row in bits ``[k*(E+2), (k+1)*(E+2))``."""
    word = 0
    for k, code in enumerate(codes):
        word |= (int(code) & ((1 << (E + 2)) - 1)) << (k * (E + 2))
    return word


def pack_b(b, b_bits: int) -> int:
    """A basis ROM word: ``B_int[k][j]`` (two's complement) in bits from ``(k*S + j)*b_bits``."""
    word = 0
    S = len(b)
    for k in range(S):
        for j in range(S):
            word |= (int(b[k][j]) & ((1 << b_bits) - 1)) << ((k * S + j) * b_bits)
    return word


class EngineLane(wiring.Component):
    """A MAC lane with its own rebuild engine and ROMs.

    Parameters
    ----------
    S, E, b_bits, aligns
        As for :class:`~.smartdeal_rebuild.Rebuild`.
    act_bits : int
        Width of the signed activations (2 to 32).
    batch : int
        The sums ``V`` the lane keeps: one per vector in flight, or per output pixel of a conv
        layer (1 to ``golden.smartdeal_conv_walk.MAX_SUMS``).
    acc_bits : int
        Width of the signed accumulator; no output's sum may overflow it (the engine passes the
        widest ``LayerFormats.acc_bits``).
    ce_words, b_words : sequence of int
        The ROM contents (:func:`pack_ce`, :func:`pack_b`), at least one word each.
    rom_modules : (str, str)
        The Verilog module names of the Ce and the basis ROM.
    sum_modules : (str, str), optional
        Keep the sums in two memories of these Verilog module names
        (:class:`~.smartdeal_sums.LaneSums`, a conv network's engine) instead of flip-flops:
        the lane then has the drain port ``d_addr``/``d_en``/``d_data`` instead of ``result``.

    Members
    -------
    ce_addr, b_addr : ``In``
        The Ce row's and the basis's ROM addresses.
    jj : ``In(range(S))``
        The input's column in its chunk (the basis column).
    x : ``In(signed(act_bits))``
        The input.
    v : ``In(range(V))``
        The input's vector.
    first : ``In(1)``
        The input is the first of its column (the ROMs are read); else the last read words stay.
    valid, close : ``In(1)``
        ``x`` is an input to accumulate; the outputs end with this cycle.
    sel : ``In``
        The layer (its alignment, :class:`~.smartdeal_rebuild.Rebuild`).
    result : ``Out(ArrayLayout(signed(acc_bits), V))``
        The last closed outputs' sums, one per vector (sums in flip-flops).
    d_addr, d_en : ``In``; d_data : ``Out(signed(acc_bits))``
        With ``sum_modules``: a read of the last closed sum ``d_addr``, its value the cycle
        after (:class:`~.smartdeal_sums.LaneSums`).

    Timing
    ------
    Inputs in cycle ``a``: the ROMs are read (``a + 1``), the Ce row and the basis column
    registered (``a + 2``), the weight rebuilt (``a + 4``), the product registered (``a + 5``),
    and accumulated in cycle ``a + 5`` (:attr:`latency` ``= 5`` to the accumulate stage); a
    closing input's sums are on ``result`` from ``a + 6`` until the next close (with
    ``sum_modules``: readable from ``a + 5`` on, until the close after next). One input a cycle,
    no stalls.
    """

    def __init__(self, S, E, b_bits, aligns, act_bits, acc_bits, ce_words, b_words,
                 rom_modules, batch=1, sum_modules=None):
        self._rebuild = Rebuild(S, E, b_bits, aligns)
        self._S, self._E, self._b_bits = int(S), int(E), int(b_bits)
        self._act_bits = integer(act_bits, "lane act_bits", 2, MAX_BITS)
        self._acc_bits = integer(acc_bits, "lane acc_bits", 2, MAX_ACC_BITS)
        self._batch = _check_sums(batch)
        if not list(ce_words) or not list(b_words):
            raise PermdealError("lane ROMs need at least one word each")
        ce_module, b_module = rom_modules
        self._ce_rom = Blackbox(BakedRom(self._S * (self._E + 2), ce_words), ce_module)
        self._b_rom = Blackbox(BakedRom(self._S * self._S * self._b_bits, b_words), b_module)
        self._mult = LaneMultiplier(self._rebuild.weight_bits, self._act_bits)
        self._memory = sum_modules is not None
        if self._memory:
            self._acc = LaneSums(self._mult.prod_bits, self._acc_bits, max(2, self._batch),
                                 sum_modules)
            drain = {"d_addr": In(range(max(2, self._batch))), "d_en": In(1),
                     "d_data": Out(signed(self._acc_bits))}
        else:
            self._acc = LaneAccumulator(self._mult.prod_bits, self._acc_bits, self._batch)
            drain = {"result": Out(data.ArrayLayout(signed(self._acc_bits), self._batch))}
        super().__init__({
            "ce_addr": In(range(self.ce_depth)),
            "b_addr": In(range(self.b_depth)),
            "jj": In(range(max(2, self._S))),
            "x": In(signed(self._act_bits)),
            "v": In(range(max(2, self._batch))),
            "first": In(1),
            "valid": In(1),
            "close": In(1),
            "sel": In(self._rebuild.sel.shape()),
            **drain,
        })

    @property
    def ce_depth(self) -> int:
        """Words of the Ce ROM."""
        return self._ce_rom.inner.depth

    @property
    def b_depth(self) -> int:
        """Words of the basis ROM."""
        return self._b_rom.inner.depth

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The Ce and the basis ROM (:class:`~.smartdeal_memories.BakedRom` modules), then with
        ``sum_modules`` the two sets of sums (:class:`~.ram.Ram` modules)."""
        sums = self._acc.blackboxes if self._memory else ()
        return self._ce_rom, self._b_rom, *sums

    @property
    def batch(self) -> int:
        """Vectors in flight: sums kept."""
        return self._batch

    @property
    def latency(self) -> int:
        """Cycles from the inputs to the accumulate stage."""
        return 2 + self._rebuild.latency + 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        S, E, bb = self._S, self._E, self._b_bits
        rb = self._rebuild
        m.submodules.rebuild = rb
        m.submodules.ce_rom, m.submodules.b_rom = ce_rom, b_rom = self._ce_rom, self._b_rom
        m.submodules.mult, m.submodules.acc = mult, acc = self._mult, self._acc
        fetch = Signal()                     # a new column: read its words (else they are held)
        m.d.comb += [fetch.eq(self.valid & self.first),
                     ce_rom.r_addr.eq(self.ce_addr), ce_rom.r_en.eq(fetch),
                     b_rom.r_addr.eq(self.b_addr), b_rom.r_en.eq(fetch)]

        def delay(sig, n, name):
            regs = [sig]
            for i in range(n):
                r = Signal.like(sig, name=f"{name}_{i + 1}")
                m.d.sync += r.eq(regs[-1])
                regs.append(r)
            return regs

        jj_1 = Signal.like(self.jj, name="jj_1")
        with m.If(fetch):
            m.d.sync += jj_1.eq(self.jj)
        jj = [self.jj, jj_1]
        sel = delay(self.sel, 2, "sel")
        vec = delay(self.v, 5, "v")
        x = delay(self.x, 4, "x")
        valid = delay(self.valid, 5, "valid")
        close = delay(self.close, 5, "close")
        # Cycle a + 1: the words are out; pick column jj of the basis into the operand registers
        # (the ROMs' access time and the rebuild's adder tree in different cycles).
        codes = data.View(data.ArrayLayout(unsigned(E + 2), S), ce_rom.r_data)
        for k in range(S):
            col = b_rom.r_data.word_select(k * S, bb)
            for j in range(1, S):
                col = Mux(jj[1] == j, b_rom.r_data.word_select(k * S + j, bb), col)
            m.d.sync += [rb.codes[k].eq(codes[k]), rb.b[k].eq(col.as_signed())]
        m.d.comb += rb.sel.eq(sel[2])
        # Cycle a + 4: the weight; the product (a + 5). Cycle a + 5: accumulate; close.
        m.d.comb += [mult.w.eq(rb.w), mult.x.eq(x[4]),
                     acc.prod.eq(mult.p), acc.valid.eq(valid[5]), acc.v.eq(vec[5]),
                     acc.close.eq(close[5])]
        if self._memory:   # the add's read a cycle early; the drain's port
            m.d.comb += [acc.rd_v.eq(vec[4]), acc.d_addr.eq(self.d_addr), acc.d_en.eq(self.d_en),
                         self.d_data.eq(acc.d_data)]
        else:
            m.d.comb += self.result.eq(acc.result)
        return m


class LaneMultiplier(wiring.Component):
    """A lane's multiplier: ``p`` is ``w * x`` of the cycle before (one register stage)."""

    def __init__(self, weight_bits, act_bits):
        self._w_bits, self._x_bits = int(weight_bits), int(act_bits)
        super().__init__({"w": In(signed(self._w_bits)), "x": In(signed(self._x_bits)),
                          "p": Out(signed(self.prod_bits))})

    @property
    def prod_bits(self) -> int:
        return self._w_bits + self._x_bits

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.d.sync += self.p.eq(self.w * self.x)
        return m


class LaneAccumulator(wiring.Component):
    """A lane's ``V`` sums (one per vector of the batch, or per output pixel): adds ``prod`` to sum ``v`` when
    ``valid`` (one adder, its operand picked by ``v``); with ``close`` the sums (this cycle's
    product included) go to ``result`` (from the next cycle) and restart."""

    def __init__(self, prod_bits, acc_bits, batch=1):
        self._acc_bits = int(acc_bits)
        self._batch = _check_sums(batch)
        super().__init__({"prod": In(signed(int(prod_bits))), "valid": In(1),
                          "v": In(range(max(2, self._batch))), "close": In(1),
                          "result": Out(data.ArrayLayout(signed(self._acc_bits), self._batch))})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        V = self._batch
        acc = Signal(data.ArrayLayout(signed(self._acc_bits), V))
        total = Signal(signed(self._acc_bits))
        m.d.comb += total.eq(select(self.v, [acc[i] for i in range(V)]) + self.prod)
        for i in range(V):
            mine = self.valid & eq_const(self.v, i) if V > 1 else self.valid
            new = Mux(mine, total, acc[i])
            with m.If(self.close):
                m.d.sync += [self.result[i].eq(new), acc[i].eq(0)]
            with m.Else():
                m.d.sync += acc[i].eq(new)
        return m
