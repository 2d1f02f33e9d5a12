"""The SmartDeal engine's conv dataflow (docs/design.md 16): the feature map as channel lists, the
walk of a conv layer's columns, the drain order with pooling, and the layer's cycle count.

A conv layer runs weight-stationary over its output pixels: for every tile of ``L`` output
channels and every column ``(c, u, v)`` of its ``O x C*KH*KW`` matrix view (channel ``c``, kernel
row ``u``, kernel column ``v``; chunk ``c*KH + u``, column ``v`` of it, as SmartDeal decomposes a
conv layer, docs/design.md 14.3) a lane rebuilds its channel's weight once and the engine walks the
non-zero inputs of channel ``c`` (the layer's input list holds them channel by channel, each with
its position ``(y, x)``): input ``(y, x)`` meets output pixel ``(i, j)`` with ``i*sh = y + top - u``
and ``j*sw = x + left - v``; an input whose pixel falls outside the output (the padding's edge) or
between strides is issued with the input taken as zero. Each lane keeps a sum per output pixel
(:func:`sums`); the drain reads them in :func:`drain_order` (pooling windows one after another),
and the write-back's outputs are pooled ``kh*kw`` at a time on their way into the next layer's
list, which is in channel order again (``(C, H, W)``), so the next convolution, or the FC layer
after the last one (a SmartDeal network's ``flatten`` is ``"chw"``), reads it as it comes.

:func:`check_net` states what the engine takes (and refuses, naming the layer); :func:`pixel_of`
is the one statement of the input-to-output map; :func:`layer_cycles` the rule of a conv layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.errors import PermdealError

__all__ = ["DRAIN_REGISTER", "MAX_SUMS", "ConvLayerCycles", "Tiles", "check_layers", "check_net", "drain_order", "is_conv", "layer_cycles",
           "pixel_of", "sums"]

#: Most output pixels of a conv layer on the engine: every lane keeps one sum per pixel.
MAX_SUMS = 256
#: The register between the lanes' sums (memories) and the write-back in an engine with a conv
#: layer: every layer of such an engine takes a cycle more.
DRAIN_REGISTER = 1


def is_conv(layer) -> bool:
    """Whether ``layer`` is a conv layer (a ``golden.conv_model.QuantConvLayer``)."""
    return getattr(layer, "conv", None) is not None


def _pow2(v: int) -> bool:
    return v >= 1 and v & (v - 1) == 0


def check_layers(layers) -> list:
    """``layers`` checked for the engine's conv dataflow; refuses, naming the layer, what it does
    not run: a convolution after an FC layer, a stride that is no power of two, a pooling whose
    window is not its stride, an average pooling over a window of a size that is no power of two,
    and more than :data:`MAX_SUMS` output pixels."""
    layers = list(layers)
    for prev, l in zip([None, *layers], layers):
        if not is_conv(l):
            continue
        if prev is not None and not is_conv(prev):
            raise PermdealError(f"layer {l.name}: a convolution after the FC layer {prev.name}")
        g = l.conv
        if not all(_pow2(s) for s in g.stride):
            raise PermdealError(f"layer {l.name}: stride {list(g.stride)}; the SmartDeal engine "
                                "takes strides that are powers of two")
        if l.pool is not None:
            if tuple(l.pool.size) != tuple(l.pool.stride):
                raise PermdealError(f"layer {l.name}: {l.pool.kind} pool {list(l.pool.size)} with "
                                    f"stride {list(l.pool.stride)}; the SmartDeal engine pools "
                                    "windows that do not overlap (stride = window)")
            n = l.pool.size[0] * l.pool.size[1]
            if l.pool.kind == "avg" and not _pow2(n):
                raise PermdealError(f"layer {l.name}: average pool of {n} values; the SmartDeal "
                                    "engine averages windows of a power of two")
        if g.positions > MAX_SUMS:
            raise PermdealError(f"layer {l.name}: {g.positions} output pixels; a lane of the "
                                f"SmartDeal engine keeps at most {MAX_SUMS} sums")
    return layers


def check_net(model) -> list:
    """The layers of ``model`` (a ``SmartDealModel`` or a SmartDeal ``ConvNet``) checked for the
    engine (:func:`check_layers`), and its ``flatten``: the FC layer after a convolution must
    take a feature map of more than one pixel in ``(C, H, W)`` order (a folder compressed for the
    PermDNN engine's order is refused, naming the layer)."""
    layers = check_layers(model.layers)
    for prev, l in zip(layers, layers[1:]):
        if is_conv(prev) and not is_conv(l) and getattr(model, "flatten", "chw") != "chw":
            _, h, w = prev.out_shape
            if h * w > 1:
                raise PermdealError(
                    f"layer {l.name}: takes the feature map in ({model.flatten}) order; the "
                    "SmartDeal engine holds it channel by channel and needs (C, H, W) order "
                    "(flatten \"chw\": compress the network again with this permdeal)")
    return layers


def sums(layers) -> int:
    """The sums a lane keeps: the most output pixels of a conv layer (1 without one)."""
    return max([l.conv.positions for l in layers if is_conv(l)], default=1)


def pixel_of(layer, y: npt.ArrayLike, x: npt.ArrayLike, u: int, v: int) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """``(pixel, ok)``: the output pixel ``i*OW + j`` that input position ``(y, x)`` of conv
    ``layer`` meets at kernel position ``(u, v)`` (``i*sh = y + top - u``, ``j*sw = x + left -
    v``), and whether it is one (inside the output, on a stride); ``pixel`` is 0 where not."""
    g = layer.conv
    (sh, sw), (top, left, _, _) = g.stride, g.padding
    oh, ow = g.out_hw
    i_num = np.asarray(y) + top - u
    j_num = np.asarray(x) + left - v
    ok = ((i_num >= 0) & (j_num >= 0) & (i_num % sh == 0) & (j_num % sw == 0)
          & (i_num // sh < oh) & (j_num // sw < ow))
    return np.where(ok, (i_num // sh) * ow + j_num // sw, 0), ok


def drain_order(layer) -> list[int]:
    """The output pixels of conv ``layer`` in the order a lane drains them: without pooling every
    pixel row by row; with it the pooling windows row by row, each window's pixels row by row
    (the pixels no window covers are not drained)."""
    oh, ow = layer.conv.out_hw
    if layer.pool is None:
        return list(range(oh * ow))
    (kh, kw) = layer.pool.size
    ph, pw = layer.pool.out_hw(oh, ow)
    return [(a * kh + r) * ow + b * kw + s for a in range(ph) for b in range(pw)
            for r in range(kh) for s in range(kw)]


class Tiles:
    """The tiles of a layer's ``m`` outputs (a conv layer's channels) on ``lanes`` lanes (a
    mixin of the layers' cycle counts)."""

    m: int
    lanes: int

    @property
    def tiles(self) -> int:
        """``T = ceil(m / L)``."""
        return -(-self.m // self.lanes)

    @property
    def last_tile_rows(self) -> int:
        """``q = m - (T-1)*L``: the real rows of the last tile."""
        return self.m - (self.tiles - 1) * self.lanes


@dataclass(frozen=True)
class ConvLayerCycles(Tiles):
    """A conv layer on the engine (docs/design.md 16): ``m`` output channels on ``lanes`` lanes,
    ``nnz`` non-zero inputs, ``slots`` issue cycles of a tile (``U``), ``issued`` inputs issued
    per tile, ``pairs`` of them meeting an output pixel, ``columns`` rebuilt weights per lane
    and tile, ``drain`` sums drained per lane."""

    m: int
    lanes: int
    nnz: int
    slots: int
    issued: int
    pairs: int
    columns: int
    drain: int
    batch: int = 1
    extra: int = DRAIN_REGISTER

    @property
    def ops(self) -> tuple[int, ...]:
        """Inputs issued per tile."""
        return (self.issued,) * self.tiles

    @property
    def periods(self) -> tuple[int, ...]:
        """``P = max(U, L*drain)`` issue cycles of every tile."""
        return (max(self.slots, self.lanes * self.drain),) * self.tiles

    @property
    def compute(self) -> int:
        """``T_layer = T*P + q*drain + LAYER_OVERHEAD + DRAIN_REGISTER``."""
        from .smartdeal_engine_cycles import LAYER_OVERHEAD
        return sum(self.periods) + self.last_tile_rows * self.drain + LAYER_OVERHEAD + self.extra

    @property
    def macs(self) -> int:
        """Useful multiplies: the pairs of an input and an output pixel, times the real output
        channels."""
        return self.pairs * self.m

    @property
    def rebuilt_weights(self) -> int:
        return self.columns * self.lanes * self.tiles

    @property
    def utilization(self) -> float:
        return self.macs / (self.lanes * self.compute)

    def to_json(self) -> dict[str, int | float]:
        return {"m": self.m, "nnz": self.nnz, "tiles": self.tiles,
                "issued": self.issued * self.tiles, "compute": self.compute, "macs": self.macs,
                "rebuilt_weights": self.rebuilt_weights,
                "utilization": round(self.utilization, 4)}


def layer_cycles(layer, x: npt.ArrayLike, lanes: int) -> ConvLayerCycles:
    """The cycles of conv ``layer`` on ``lanes`` lanes for its input codes ``x`` (``(C, H, W)``
    flattened, one inference): each tile walks every column ``(c, u, v)`` in that order, a column
    taking ``max(z_c, 1)`` cycles (``z_c`` the non-zero inputs of channel ``c``)."""
    g = layer.conv
    c, h, w = g.in_shape
    kh, kw = g.kernel
    nz = np.asarray(x).reshape(c, h, w) != 0
    z = nz.sum(axis=(1, 2))
    ys, xs = np.divmod(np.arange(h * w), w)             # every position, row by row
    per_pos = nz.reshape(c, -1).sum(axis=0)            # non-zero inputs at each position
    pairs = sum(int(per_pos[pixel_of(layer, ys, xs, u, v)[1]].sum())
                for u in range(kh) for v in range(kw))
    drain = len(drain_order(layer))
    return ConvLayerCycles(g.out_channels, lanes, int(z.sum()),
                           kh * kw * int(np.maximum(z, 1).sum()), kh * kw * int(z.sum()), pairs,
                           kh * kw * int((z > 0).sum()), drain)
