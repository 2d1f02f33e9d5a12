"""The signed multiplier of a lane: the exact product, in two register stages (docs/design.md 4.2).

A block of its own so that synthesis reports its area apart (``permdeal synth``'s per-PE
breakdown) and an FPGA flow maps it onto one DSP block when both operands fit.
"""

from typing import Any

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.golden.formats import MAX_BITS

__all__ = ["SPLIT_ABOVE", "Multiplier"]

#: Widest ``b`` multiplied in one stage; a wider one is split in two halves (see Multiplier).
SPLIT_ABOVE = 8


class Multiplier(wiring.Component):
    """``p = a * b`` for signed ``a`` and ``b``, exact and registered.

    Parameters
    ----------
    a_bits, b_bits : int
        Widths of the signed operands, 2 to 32.

    Members
    -------
    a : ``In(signed(a_bits))``
    b : ``In(signed(b_bits))``
    p : ``Out(signed(a_bits + b_bits))``
        The product of the operands of two cycles before (``latency = 2``); no reset, no enable.

    Timing
    ------
    With ``b_bits`` above :data:`SPLIT_ABOVE` the multiply is cut in two stages of about half its
    depth each: the first registers ``a * b_lo`` and ``a * b_hi`` (``b``'s low :attr:`split`
    bits, unsigned, and the rest, signed), the second adds ``a * b_lo + (a * b_hi << split)``
    into the output register. A narrower ``b`` is multiplied whole into a product register,
    then registered again (as a DSP block's pipeline has them).
    """

    def __init__(self, a_bits, b_bits):
        self._a_bits = integer(a_bits, "multiplier a_bits", 2, MAX_BITS)
        self._b_bits = integer(b_bits, "multiplier b_bits", 2, MAX_BITS)
        super().__init__({"a": In(signed(self._a_bits)), "b": In(signed(self._b_bits)),
                          "p": Out(signed(self.product_bits))})

    @property
    def a_bits(self) -> int:
        return self._a_bits

    @property
    def b_bits(self) -> int:
        return self._b_bits

    @property
    def product_bits(self) -> int:
        """Width of the exact product, ``a_bits + b_bits``."""
        return self._a_bits + self._b_bits

    @property
    def split(self) -> int:
        """Bits of ``b``'s low half when the multiply is cut in two, else 0."""
        return self._b_bits // 2 if self._b_bits > SPLIT_ABOVE else 0

    @property
    def latency(self) -> int:
        """Cycles from the operands to their product on ``p``."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Signal(signed(self.product_bits), reset_less=True)
        h = self.split
        if h:
            lo = Signal(signed(self._a_bits + h + 1), reset_less=True)
            hi = Signal(signed(self._a_bits + self._b_bits - h), reset_less=True)
            m.d.sync += [lo.eq(self.a * self.b[:h]), hi.eq(self.a * self.b[h:].as_signed()),
                         p.eq(lo + (hi << h))]
        else:
            prod = Signal(signed(self.product_bits), reset_less=True)
            m.d.sync += [prod.eq(self.a * self.b), p.eq(prod)]
        m.d.comb += self.p.eq(p)
        return m
