# amaranth: UnusedElaboratable=no
"""The output pixel an input meets in the SmartDeal engine's conv dataflow (docs/design.md 16).

Input position ``(y, x)`` of a conv layer's input meets, at kernel position ``(u, v)``, output
pixel ``(i, j)`` with ``i*sh = y + top - u`` and ``j*sw = x + left - v`` (``sh``, ``sw`` powers of
two); ``pixel = i*OW + j`` and ``ok`` when it is one (inside the output, on a stride). The one
statement in the golden model is ``golden.smartdeal_conv_walk.pixel_of``.

Timing: combinational.
"""

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError

from .lint import eq_const, select

__all__ = ["PixelMap"]


class PixelMap(wiring.Component):
    """Input position and kernel position to output pixel, per layer.

    Parameters
    ----------
    geoms : sequence of golden.conv.ConvShape or None
        Per layer, its convolution (None: an FC layer, ``ok`` low).

    Members
    -------
    y, x, u, v : ``In``
        The input position and the kernel position.
    sel : ``In(range(layers))``
        The layer.
    pixel : ``Out(range(pixels))``
        ``i*OW + j`` (0 when not ``ok``).
    ok : ``Out(1)``
        The input meets an output pixel there.
    """

    def __init__(self, geoms):
        self._geoms = list(geoms)
        convs = [g for g in self._geoms if g is not None]
        if not convs:
            raise PermdealError("a pixel map needs a conv layer")
        for g in convs:
            if any(s & (s - 1) for s in g.stride):
                raise PermdealError(f"strides must be powers of two, not {list(g.stride)}")
        self._hmax = max(max(g.in_shape[1:]) for g in convs)
        self._kmax = max(max(g.kernel) for g in convs)
        self._pix = max(g.positions for g in convs)
        super().__init__({"y": In(range(max(2, self._hmax))), "x": In(range(max(2, self._hmax))),
                          "u": In(range(max(2, self._kmax))), "v": In(range(max(2, self._kmax))),
                          "sel": In(range(max(2, len(self._geoms)))),
                          "pixel": Out(range(max(2, self._pix))), "ok": Out(1)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        width = (self._hmax + 2 * self._kmax).bit_length() + 1
        oks, pixels = [], []
        for n, g in enumerate(self._geoms):
            if g is None:
                oks.append(Const(0, 1))
                pixels.append(Const(0, self.pixel.shape()))
                continue
            (sh, sw), (top, left, _, _) = g.stride, g.padding
            oh, ow = g.out_hw
            i_num, j_num = Signal(signed(width), name=f"i_num{n}"), Signal(signed(width),
                                                                           name=f"j_num{n}")
            m.d.comb += [i_num.eq(self.y + top - self.u), j_num.eq(self.x + left - self.v)]
            ls, lw = sh.bit_length() - 1, sw.bit_length() - 1
            i, j = i_num >> ls, j_num >> lw
            ok = (i_num >= 0) & (j_num >= 0) & (i < oh) & (j < ow)
            if ls:
                ok = ok & eq_const(i_num[:ls], 0)
            if lw:
                ok = ok & eq_const(j_num[:lw], 0)
            oks.append(ok)
            pixels.append(Mux(ok, (i * ow + j)[:len(self.pixel)], 0))
        m.d.comb += [self.ok.eq(select(self.sel, oks)), self.pixel.eq(select(self.sel, pixels))]
        return m
