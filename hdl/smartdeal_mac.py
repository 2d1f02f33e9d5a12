"""The MAC of the SmartDeal layer unit: rebuilt weight rows times activation chunks, summed.

Each beat is one row of ``S`` rebuilt weights (from the shift-add unit) and the ``S`` activations
of its chunk with a ``last`` flag (from the unit's queue): ``acc += sum_j w_j * x_j``; on ``last``
the sum is handed on and ``acc`` restarts at 0. Products are exact and registered, the sum is
formed the cycle after.
"""

from typing import Any

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.golden.formats import MAX_ACC_BITS, MAX_BITS
from permdeal.golden.smartdeal import MAX_S
from permdeal.golden.smartdeal_cycles import MAC_LATENCY

from .mac_widths import MacWidths

__all__ = ["SmartDealMac"]


class SmartDealMac(MacWidths, wiring.Component):
    """``S`` multipliers and an accumulator, one row a cycle.

    Parameters
    ----------
    S : int
        Weights (and activations) per row, 1 to 16.
    act_bits, weight_bits : int
        Widths of the signed activations and weights, 2 to 32.
    acc_bits : int
        Width of the signed accumulator; it must hold every partial sum of an output (the layer
        unit passes ``golden.formats.LayerFormats.acc_bits``, which no dot product of the layer
        can overflow). Partial sums are formed exactly, wider, and kept in ``acc_bits``.

    Members
    -------
    w : ``In(stream.Signature(ArrayLayout(signed(weight_bits), S)))``
        One row of rebuilt weights (the shift-add unit's ``o``).
    x : ``In(stream.Signature(x_layout))``
        ``{x: ArrayLayout(signed(act_bits), S), last}``: the row's activations, and whether it is
        the last row of its output.
    o : ``Out(stream.Signature(signed(acc_bits)))``
        The sum of an output, after its last row.

    Timing
    ------
    A beat moves when ``w`` and ``x`` are both valid and the pipeline can advance (``w.ready =
    x.ready``); the sum of an output whose last row moved in cycle ``d`` is valid on ``o`` from
    cycle ``d + 2`` (:attr:`latency`). The two stages advance together; while ``o`` holds a sum
    that is not taken, nothing moves (a stall only adds its own cycles). ``rst`` clears the
    accumulator and drops what is in flight.
    """

    def __init__(self, S, act_bits, weight_bits, acc_bits):
        self._S = integer(S, "MAC row width S", 1, MAX_S)
        self._act_bits = integer(act_bits, "MAC act_bits", 2, MAX_BITS)
        self._weight_bits = integer(weight_bits, "MAC weight_bits", 2, MAX_BITS)
        self._acc_bits = integer(acc_bits, "MAC acc_bits", 2, MAX_ACC_BITS)
        super().__init__({
            "w": In(stream.Signature(data.ArrayLayout(signed(self._weight_bits), self._S))),
            "x": In(stream.Signature(self.x_layout)),
            "o": Out(stream.Signature(signed(self._acc_bits))),
        })

    @property
    def S(self) -> int:
        return self._S

    @property
    def latency(self) -> int:
        """Cycles from an output's last row moving in to its sum on ``o``."""
        return MAC_LATENCY

    @property
    def x_layout(self) -> data.StructLayout:
        """Payload of ``x``: the activations from bit 0, then ``last``."""
        return data.StructLayout({"x": data.ArrayLayout(signed(self._act_bits), self._S),
                                  "last": 1})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        S, prod_bits = self._S, self._act_bits + self._weight_bits
        en = Signal()
        take = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            take.eq(en & self.w.valid & self.x.valid),
            self.w.ready.eq(take),
            self.x.ready.eq(take),
        ]
        # Stage 1: the products.
        prods = [Signal(signed(prod_bits), name=f"prod_{j}") for j in range(S)]
        valid1, last1 = Signal(), Signal()
        with m.If(en):
            m.d.sync += [valid1.eq(take), last1.eq(self.x.p.last)]
            m.d.sync += [prods[j].eq(self.w.p[j] * self.x.p.x[j]) for j in range(S)]
        # Stage 2: the sum, exact in a wide adder, kept in acc_bits (it fits).
        acc = Signal(signed(self._acc_bits))
        total = acc
        for p in prods:
            total = total + p
        with m.If(en):
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(valid1):
                with m.If(last1):
                    m.d.sync += [self.o.valid.eq(1), self.o.p.eq(total), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(total)
        return m
