# amaranth: UnusedElaboratable=no
"""The bit-serial shift-add SmartDeal unit: Ce codes and B in, rebuilt weights out (docs/design.md 5.3).

For one row of a SmartDeal block, weight ``j`` is (``golden.smartdeal.rebuild_int``)::

    acc_j = sum over k with nz_k of  s_k * (B_int[k][j] << e_idx_k)
    w_j   = saturate(round_half_up(acc_j >> s))        s > 0
            saturate(acc_j << -s)                      s <= 0

Multiplier-free and bit-serial, LSB first. Every term ``k`` of every lane has a parallel-load shift
register holding ``B_int[k][j]``; it shifts right arithmetically (so the MSB repeats: serial sign
extension) once per cycle after a delay of ``e_idx_k`` cycles, during which the term's bit is 0
(the shift left by ``e_idx_k``). A negative term adds the two's complement: its bits are inverted
(the zeros of the delay too) and the carry flip-flop of its adder starts at 1. A lane is a chain of
``S`` bit-serial adders (a full adder and a carry flip-flop per term), one sum bit per cycle into
an ``acc_bits`` shift register; after ``acc_bits`` cycles the exact accumulator sits in it
(``golden.shift_add``: no row can overflow it) and a bit-parallel stage aligns it (round-half-up
right shift or clip-then-left shift, then saturation, adders and comparators only).

Cost: ``lanes * S`` ``b_B``-bit shift registers, full adders and carry flip-flops, ``S`` ``E``-bit
delay counters with the sign and ``nz`` flags (shared by the lanes: a row's codes are the same for
every column), ``lanes`` ``acc_bits``-bit accumulators and alignment stages, the ``o`` register,
and with ``P > 1`` passes a copy of the input row and ``(P - 1) * lanes`` weights of the earlier
passes.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_BITS, Fixed
from permdeal.golden.shift_add import ShiftAddTiming
from permdeal.golden.smartdeal import MAX_ALIGN, SmartDealCodes, align_shift

from .lint import eq_const

__all__ = ["ShiftAdd"]


class ShiftAdd(wiring.Component):
    """Rebuilds the ``S`` weights of one SmartDeal row by bit-serial shifts and adds.

    Parameters
    ----------
    S : int
        Chunk width: Ce codes per row, and ``B`` is ``S x S``; 1 to 16.
    E : int
        Exponent bits of a Ce code (``E + 2``-bit codes ``nz << (E+1) | sign << E | e_idx``,
        ``golden.smartdeal``); 1 to 5.
    b_bits : int
        ``b_B``, the width of a signed basis code ``B_int``; 2 to 16.
    weight_bits : int
        Width of a rebuilt (signed) weight, the MAC's weight format; 2 to 32. Its ``frac`` only
        enters through ``shift``.
    shift : int
        The alignment ``s = b_frac - e_min - weight_frac`` (``golden.smartdeal.align_shift``); -62
        to 62. ``s > 0``: round-half-up right shift; ``s <= 0``: left shift by ``-s``.
    lanes : int or None
        Output columns rebuilt in parallel, 1 to ``S`` (default ``S``): a row takes ``P =
        ceil(S / lanes)`` passes, pass ``p`` rebuilding columns ``p*lanes .. p*lanes + lanes - 1``.

    Members
    -------
    i : ``In(stream.Signature(input_layout))``
        One row: ``codes`` (``ArrayLayout(unsigned(E + 2), S)``, code ``k`` from bit ``k*(E+2)``)
        then ``b`` (``ArrayLayout(ArrayLayout(signed(b_bits), S), S)``, ``b[k][j] = B_int[k][j]``
        from bit ``S*(E+2) + (k*S + j)*b_bits``), the whole block's basis with every row.
    o : ``Out(stream.Signature(output_layout))``
        The row's weights, ``ArrayLayout(signed(weight_bits), S)``, weight ``j`` from bit
        ``j*weight_bits``. A stalled beat stays valid and unchanged.

    Timing
    ------
    ``T = acc_bits`` cycles per pass, :attr:`cycles_per_row` ``= P*T``, :attr:`latency` ``= P*T +
    1`` (from the cycle a row is accepted to the first cycle its weights are valid on ``o``),
    :attr:`interval` ``= P*T``: the next row is accepted in the cycle of the last bit of the
    current one, so rows offered back to back to a ready output cost ``P*T`` cycles each, no
    bubble. ``o`` is a register; when the row being finished finds ``o`` still full and not taken,
    the whole serial datapath freezes in that last cycle (nothing is lost or repeated) and
    ``i.ready`` stays low::

        done    = busy & (cnt == T-1) & (pas == P-1)
        i.ready = ~busy | (done & ~(o.valid & ~o.ready))

    so ``i.ready`` depends combinationally on ``o.ready``, not on ``i``. The exact behaviour for
    any stall pattern is ``golden.shift_add.schedule``. The first pass loads its shift registers
    straight from ``i.payload``; with ``P > 1`` the row is kept in a register for the later passes
    and the weights of the earlier passes wait in a result register. The last pass's weights are
    aligned combinationally from the assembled accumulator as its last bit arrives and written to
    ``o`` with the earlier ones. ``rst`` (synchronous) drops the row in progress and ``o``.
    """

    def __init__(self, S=3, E=3, b_bits=8, weight_bits=16, shift=0, lanes=None):
        self._timing = ShiftAddTiming(S, E, b_bits, S if lanes is None else lanes)
        self._weight_bits = integer(weight_bits, "shift-add weight_bits", 2, MAX_BITS)
        self._shift = integer(shift, "shift-add alignment shift", -MAX_ALIGN, MAX_ALIGN)
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(self.output_layout)),
        })

    @classmethod
    def for_codes(cls, enc: SmartDealCodes, weight_fmt: Fixed,
                  lanes: int | None = None) -> ShiftAdd:
        """The unit for the layer ``enc`` (``golden.smartdeal.SmartDealCodes``) and weight format
        ``weight_fmt``: ``S``, ``E``, ``b_B`` from the codes, ``shift = align_shift(enc,
        weight_fmt)``."""
        s = align_shift(enc, weight_fmt)
        if abs(s) > MAX_ALIGN:
            raise PermdealError(f"weight format {weight_fmt} is {s:+d} bits from the rebuilt "
                                f"weights' binary point; at most {MAX_ALIGN} bits can be shifted")
        return cls(enc.S, enc.E, enc.b_bits, weight_fmt.bits, s, lanes)

    # -- parameters --------------------------------------------------------------------------

    @property
    def S(self) -> int:
        return self._timing.S

    @property
    def E(self) -> int:
        return self._timing.E

    @property
    def b_bits(self) -> int:
        return self._timing.b_bits

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def shift(self) -> int:
        return self._shift

    @property
    def lanes(self) -> int:
        return self._timing.lanes

    # -- derived -----------------------------------------------------------------------------

    @property
    def timing(self) -> ShiftAddTiming:
        """The cycle model (``golden.shift_add.ShiftAddTiming``) of this unit."""
        return self._timing

    @property
    def code_bits(self) -> int:
        """Width of a Ce code, ``E + 2``."""
        return self.E + 2

    @property
    def acc_bits(self) -> int:
        """Serial accumulator width ``T``: ``b_B + 2**E + floor(log2 S)``, exact
        (``golden.shift_add.acc_bits``)."""
        return self._timing.acc_bits

    @property
    def passes(self) -> int:
        """``P = ceil(S / lanes)``."""
        return self._timing.passes

    @property
    def cycles_per_pass(self) -> int:
        return self._timing.cycles_per_pass

    @property
    def cycles_per_row(self) -> int:
        return self._timing.cycles_per_row

    @property
    def latency(self) -> int:
        return self._timing.latency

    @property
    def interval(self) -> int:
        return self._timing.interval

    @property
    def input_layout(self) -> data.StructLayout:
        """Payload of ``i``: ``{codes, b}`` (class docstring)."""
        S = self.S
        return data.StructLayout({
            "codes": data.ArrayLayout(unsigned(self.code_bits), S),
            "b": data.ArrayLayout(data.ArrayLayout(signed(self.b_bits), S), S),
        })

    @property
    def output_layout(self) -> data.ArrayLayout:
        """Payload of ``o``: the ``S`` weights."""
        return data.ArrayLayout(signed(self._weight_bits), self.S)

    # -- hardware ----------------------------------------------------------------------------

    def _carry_in(self, nz, sign):
        """Initial carry of a term's adder: 1 for a negative term (two's complement)."""
        return nz & sign

    def _term_bit(self, nz, sign, raw):
        """A term's serial bit: 0 when ``nz = 0``, the B bit inverted for a negative term."""
        return nz & (raw ^ sign)

    def _align(self, v):
        """``v`` (the signed accumulator) aligned to the weight format and saturated."""
        wb, s = self._weight_bits, self._shift
        w_max, w_min = (1 << (wb - 1)) - 1, -(1 << (wb - 1))
        top, bot = Const(w_max, signed(wb)), Const(w_min, signed(wb))
        if s > 0:
            r = (v + Const(1 << (s - 1), unsigned(s))) >> s
            return Mux(r > top, top, Mux(r < bot, bot, r))
        n = -s
        hi, lo = w_max >> n, -((-w_min) >> n)
        return Mux(v > Const(hi, signed(wb)), top,
                   Mux(v < Const(lo, signed(wb)), bot, v << n))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        S, E, L, P, T = self.S, self.E, self.lanes, self.passes, self.cycles_per_pass
        wb = self._weight_bits

        busy = Signal()
        cnt = Signal(range(T))
        pas = Signal(range(P)) if P > 1 else None
        nz = [Signal(name=f"nz_{k}") for k in range(S)]
        sign = [Signal(name=f"sign_{k}") for k in range(S)]
        delay = [Signal(E, name=f"delay_{k}") for k in range(S)]
        sreg = [[Signal(signed(self.b_bits), name=f"b_{l}_{k}") for k in range(S)]
                for l in range(L)]
        carry = [[Signal(name=f"carry_{l}_{k}") for k in range(S)] for l in range(L)]
        acc = [Signal(T, name=f"acc_{l}") for l in range(L)]
        held = Signal(self.input_layout) if P > 1 else None
        res = [Signal(signed(wb), name=f"res_{j}") for j in range((P - 1) * L)]

        last_bit = Signal()
        last_pass = Signal()
        done = Signal()
        stall = Signal()
        adv = Signal()
        accept = Signal()
        m.d.comb += [
            last_bit.eq(eq_const(cnt, T - 1)),
            last_pass.eq(eq_const(pas, P - 1) if P > 1 else 1),
            done.eq(busy & last_bit & last_pass),
            stall.eq(done & self.o.valid & ~self.o.ready),
            adv.eq(busy & ~stall),
            self.i.ready.eq(~busy | (done & ~stall)),
            accept.eq(self.i.valid & self.i.ready),
        ]

        # The serial datapath: one chain of S bit-serial adders per lane.
        idle = [Signal(name=f"delay_done_{k}") for k in range(S)]
        m.d.comb += [idle[k].eq(eq_const(delay[k], 0)) for k in range(S)]
        aligned = []
        for l in range(L):
            r = Const(0, 1)
            for k in range(S):
                raw = Mux(idle[k], sreg[l][k][0], 0)
                x = Signal(name=f"term_{l}_{k}")
                s_bit = Signal(name=f"sum_{l}_{k}")
                m.d.comb += [x.eq(self._term_bit(nz[k], sign[k], raw)),
                             s_bit.eq(r ^ x ^ carry[l][k])]
                with m.If(adv):
                    m.d.sync += carry[l][k].eq((r & x) | (r & carry[l][k]) | (x & carry[l][k]))
                r = s_bit
            value = Signal(signed(T), name=f"value_{l}")  # the whole sum in the last bit's cycle
            m.d.comb += value.eq(Cat(acc[l][1:], r))
            w = Signal(signed(wb), name=f"aligned_{l}")
            m.d.comb += w.eq(self._align(value))
            aligned.append(w)
            with m.If(adv):
                m.d.sync += acc[l].eq(Cat(acc[l][1:], r))

        with m.If(adv):
            for k in range(S):
                with m.If(idle[k]):
                    m.d.sync += [sreg[l][k].eq(sreg[l][k] >> 1) for l in range(L)]
                with m.Else():
                    m.d.sync += delay[k].eq(delay[k] - 1)
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(last_bit):
                m.d.sync += cnt.eq(0)
                with m.If(last_pass):
                    m.d.sync += busy.eq(0)
                if P > 1:
                    for p in range(P - 1):
                        with m.If(eq_const(pas, p)):
                            m.d.sync += [res[p * L + l].eq(aligned[l]) for l in range(L)]
                            self._load(m, held, (p + 1) * L, sreg, carry, delay, nz, sign,
                                       codes=False)
                    with m.If(~last_pass):
                        m.d.sync += pas.eq(pas + 1)

        # The output register.
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(done & ~stall):
            m.d.sync += self.o.valid.eq(1)
            m.d.sync += [self.o.p[j].eq(res[j]) for j in range((P - 1) * L)]
            for l in range(L):
                j = (P - 1) * L + l
                if j < S:
                    m.d.sync += self.o.p[j].eq(aligned[l])

        # A new row wins over everything above.
        with m.If(accept):
            m.d.sync += [busy.eq(1), cnt.eq(0)]
            if P > 1:
                m.d.sync += [pas.eq(0), held.eq(self.i.p)]
            self._load(m, self.i.p, 0, sreg, carry, delay, nz, sign, codes=True)
        return m

    def _load(self, m, row, first, sreg, carry, delay, nz, sign, codes):
        """Parallel load of the shift registers, delays and carries for columns ``first ..``."""
        E = self.E
        for k in range(self.S):
            code = row.codes[k]
            c_nz, c_sign = (code[E + 1], code[E]) if codes else (nz[k], sign[k])
            if codes:
                m.d.sync += [nz[k].eq(c_nz), sign[k].eq(c_sign)]
            m.d.sync += delay[k].eq(code[:E])
            for l in range(self.lanes):
                j = first + l
                m.d.sync += [sreg[l][k].eq(row.b[k][j] if j < self.S else 0),
                             carry[l][k].eq(self._carry_in(c_nz, c_sign))]
