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

__all__ = ["Multiplier"]


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
        The product of the operands of two cycles before (``latency = 2``: a product register,
        then an output register, as a DSP block's pipeline has them); no reset, no enable.
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
    def latency(self) -> int:
        """Cycles from the operands to their product on ``p``."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        prod = Signal(signed(self.product_bits), reset_less=True)
        p = Signal(signed(self.product_bits), reset_less=True)
        m.d.sync += [prod.eq(self.a * self.b), p.eq(prod)]
        m.d.comb += self.p.eq(p)
        return m
