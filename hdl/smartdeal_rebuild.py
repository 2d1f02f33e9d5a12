"""The bit-parallel rebuild engine: one SmartDeal weight a cycle from a Ce row and a basis column.

For weight ``j`` of a Ce row (docs/design.md 5.2)::

    acc = sum over k with nz_k = 1 of  s_k * (B_int[k][j] << e_idx_k)

then aligned to the layer's weight format by its ``align_shift`` (round half up on a right shift)
and saturated, exactly as ``golden.smartdeal.rebuild_int``. The engine of ``hdl.smartdeal_engine``
gives every MAC lane one of these beside it: where the bit-serial unit of ``hdl.shift_add`` spends
``T`` cycles on a row of ``S`` weights, this one spends ``S`` shifters and an ``S``-input adder on
one weight per cycle. One unit serves every layer of a network: ``sel`` picks the layer's
alignment and weight width.
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.shift_add import acc_bits
from permdeal.golden.smartdeal import B_BITS_RANGE, E_RANGE, MAX_ALIGN, MAX_S

from .lint import select

__all__ = ["Rebuild"]


class Rebuild(wiring.Component):
    """A pipelined bit-parallel rebuild of one weight a cycle.

    Parameters
    ----------
    S : int
        Entries per Ce row (1 to 16).
    E : int
        Exponent bits of a Ce code (1 to 5); codes are ``E + 2`` bits ``{nz, sign, e_idx}``.
    b_bits : int
        Width of a basis code (2 to 16).
    aligns : sequence of (int, int)
        Per layer (``sel``): ``(align_shift, weight_bits)``, the layer's right shift from the
        rebuild sum to its weight format (``golden.smartdeal.align_shift``, at most 62 either
        way) and its weight width (2 to 32).

    Members
    -------
    codes : ``In(ArrayLayout(unsigned(E + 2), S))``
        The Ce row.
    b : ``In(ArrayLayout(signed(b_bits), S))``
        Column ``j`` of the block's basis: ``b[k] = B_int[k][j]``.
    sel : ``In(range(layers))``
        The layer.
    w : ``Out(signed(weight_bits))``
        The weight, in the layer's format, sign-extended to the widest.

    Timing
    ------
    Two register stages (:attr:`latency`): inputs in cycle ``c``, ``w`` valid in ``c + 2``; a new
    weight every cycle, no stalls.
    """

    def __init__(self, S, E, b_bits, aligns):
        self._S = integer(S, "rebuild chunk width S", 1, MAX_S)
        self._E = integer(E, "rebuild exponent bits E", *E_RANGE)
        self._b_bits = integer(b_bits, "rebuild B bits b_B", *B_BITS_RANGE)
        aligns = list(aligns) if isinstance(aligns, (list, tuple)) else None
        if not aligns:
            raise PermdealError("rebuild aligns must be a non-empty list of "
                                "(align_shift, weight_bits) pairs")
        checked = []
        for n, pair in enumerate(aligns):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise PermdealError(f"rebuild aligns[{n}] must be an (align_shift, weight_bits) "
                                    f"pair, not {pair!r}")
            checked.append((integer(pair[0], f"rebuild aligns[{n}] align_shift", -MAX_ALIGN,
                                    MAX_ALIGN),
                            integer(pair[1], f"rebuild aligns[{n}] weight_bits", 2, MAX_BITS)))
        self._aligns = tuple(checked)
        self._weight_bits = max(wb for _, wb in checked)
        super().__init__({
            "codes": In(data.ArrayLayout(unsigned(self._E + 2), self._S)),
            "b": In(data.ArrayLayout(signed(self._b_bits), self._S)),
            "sel": In(range(max(2, len(checked)))),
            "w": Out(signed(self._weight_bits)),
        })

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``w``."""
        return 2

    @property
    def acc_bits(self) -> int:
        """Width of the exact rebuild sum (``golden.shift_add.acc_bits``)."""
        return acc_bits(self._S, self._E, self._b_bits)

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def aligns(self) -> tuple[tuple[int, int], ...]:
        return self._aligns

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        S, E = self._S, self._E
        # Stage 1: the exact sum of the S shifted, signed terms.
        acc = Signal(signed(self.acc_bits))
        sel1 = Signal.like(self.sel)
        total = 0
        for k in range(S):
            code = self.codes[k]
            mag = Signal(signed(self._b_bits + (1 << E)), name=f"term_{k}")
            m.d.comb += mag.eq(self.b[k] << code[:E])
            term = Mux(code[E + 1], Mux(code[E], -mag, mag), 0)
            total = total + term
        m.d.sync += [acc.eq(total), sel1.eq(self.sel)]
        # Stage 2: per layer the alignment (round half up) and saturation; sel picks one.
        choices = []
        for s, wb in self._aligns:
            if s > 0:
                v = (acc + (1 << (s - 1))) >> s
            else:
                v = acc << -s
            lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
            choices.append(Mux(v > hi, hi, Mux(v < lo, lo, v)))
        m.d.sync += self.w.eq(select(sel1, choices))
        return m
