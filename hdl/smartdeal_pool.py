# amaranth: UnusedElaboratable=no
"""Pooling on the SmartDeal engine's write-back output (docs/design.md 16).

The drain gives a conv layer's outputs a pooling window after another (``golden.smartdeal_conv_walk
.drain_order``), so pooling is a running reduction over ``n`` consecutive codes: the largest, or
the sum rounded half up and divided by ``n`` (a power of two: ``(sum + n/2) >> log2 n``, the golden
``floor((2*sum + n) / (2*n))``). A layer without pooling passes every code (``n = 1``).

Timing: combinational. The ``n``-th code of a window is on ``data`` with ``valid``; the pooled
code leaves in the same cycle on ``o_data`` with ``o_valid`` (one register holds the running
value).
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError

from .lint import eq_const, select

__all__ = ["PoolStage"]


class PoolStage(wiring.Component):
    """Max or average pooling of consecutive codes, per layer.

    Parameters
    ----------
    bits : int
        Width of the signed codes.
    pools : sequence of (str, int) or None
        Per layer, ``(kind, n)``: ``"max"`` or ``"avg"`` over ``n`` codes (``avg``: a power of
        two), or None (no pooling).

    Members
    -------
    valid, data : ``In``
        A code of the write-back.
    sel : ``In(range(layers))``
        The layer.
    o_valid, o_data : ``Out``
        A pooled code (a window's last code in), in the same cycle.
    """

    def __init__(self, bits: int, pools):
        self._bits = int(bits)
        self._pools = [None if p is None else (str(p[0]), int(p[1])) for p in pools]
        if not self._pools:
            raise PermdealError("a pool stage needs at least one layer")
        for i, p in enumerate(self._pools):
            if p is None:
                continue
            kind, n = p
            if kind not in ("max", "avg") or n < 1 or (kind == "avg" and n & (n - 1)):
                raise PermdealError(f"layer {i}: pooling must be max over n >= 1 or avg over a "
                                    f"power of two, not {kind} over {n}")
        super().__init__({"valid": In(1), "data": In(signed(self._bits)),
                          "sel": In(range(max(2, len(self._pools)))),
                          "o_valid": Out(1), "o_data": Out(signed(self._bits))})

    @property
    def window_bits(self) -> int:
        """Bits of the window counter and the extra bits of a sum."""
        return max(1, (max([1] + [p[1] for p in self._pools if p]) - 1).bit_length())

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        pools, wb = self._pools, self.window_bits
        n_of = [1 if p is None else p[1] for p in pools]
        cnt = Signal(wb)
        run = Signal(signed(self._bits + wb))
        new = Signal(signed(self._bits + wb))
        last = Signal()
        m.d.comb += last.eq(select(self.sel, [eq_const(cnt, n - 1) for n in n_of]))
        first = eq_const(cnt, 0)
        m.d.comb += new.eq(select(self.sel, [
            self.data if p is None else
            Mux(first | (run < self.data), self.data, run) if p[0] == "max" else
            Mux(first, self.data, run + self.data) for p in pools]))
        out = [new if p is None or p[0] == "max" else
               (new + (p[1] // 2)) >> (p[1].bit_length() - 1) for p in pools]
        m.d.comb += [self.o_valid.eq(self.valid & last), self.o_data.eq(select(self.sel, out))]
        with m.If(self.valid):
            m.d.sync += [run.eq(new), cnt.eq(Mux(last, 0, cnt + 1))]
        return m
