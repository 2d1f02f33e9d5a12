"""How the PermDNN engine walks a conv layer's input: the feature map in the banks, the output
pixels' order and each pixel's windows (docs/design.md 14.8, the one statement of them).

A conv layer runs as one matrix-vector product per output pixel: the weights (the patch-order
matrix of docs/design.md 14.6) stay in the lanes, and the window reader walks the pixel's patch
in the feature map that the layer before wrote into the banks. Each computed output pixel is one
pass of docs/design.md 9's layer schedule over the pixel's windows, the passes overlapped: the
next starts once the issue path is done with one, into the lanes' other accumulator set
(:func:`conv_layer_cycles`, docs/design.md 15).

Feature-map layout (``words`` ``C'`` a pixel in ``P = C'/q`` producer blocks of ``q`` words): pixel
``y*W + x``'s block ``J`` lies in bank ``J mod NL``, wide rows from ``(pixel * ceil(P/NL) + J div
NL) * S`` (``S = ceil(q/D)``), window ``s`` of the block in row ``+ s``. So a lane writes the
outputs of its block-rows into its own bank as for an FC layer, ``pixel * B * S`` rows further.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.errors import PermdealError

from .conv import ConvShape, patch_channels

__all__ = ["ConvWalk", "POOL_LATENCY", "conv_layer_cycles", "conv_model_cycles", "engine_input",
           "engine_cycles", "engine_pools", "engine_walks"]


@dataclass(frozen=True)
class ConvWalk:
    """One conv layer's walk: ``shape`` (input ``(C, H, W)``, kernel, stride, padding), its
    patch channels ``words`` (``C'``, a multiple of ``block``), the producer block ``block``
    (``q``) and the pooling window ``pool`` (``(ph, pw)``, window equal to stride; ``None``)."""

    shape: ConvShape
    words: int
    block: int
    pool: tuple | None = None

    def __post_init__(self):
        if self.words < self.shape.in_shape[0] or self.words % self.block:
            raise PermdealError(f"a pixel of {self.words} words for {self.shape.in_shape[0]} "
                                f"channels is no whole number of blocks of {self.block}")

    def to_json(self) -> dict:
        """The walk as a design manifest records it (:meth:`from_json` reads it back)."""
        g = self.shape
        return {"input": list(g.in_shape), "out_channels": g.out_channels,
                "kernel": list(g.kernel), "stride": list(g.stride), "padding": list(g.padding),
                "words": self.words, "block": self.block,
                "pool": None if self.pool is None else list(self.pool)}

    @classmethod
    def from_json(cls, d, where: str) -> "ConvWalk":
        """A walk of :meth:`to_json`; any field missing or wrong is refused naming ``where``."""
        from .manifest import json_field
        try:
            shape = ConvShape(json_field(d, "input", list, where),
                              json_field(d, "out_channels", int, where),
                              json_field(d, "kernel", list, where),
                              json_field(d, "stride", list, where),
                              json_field(d, "padding", list, where))
            if "pool" not in d:
                raise PermdealError(f"{where}: missing field 'pool'")
            pool = d["pool"]
            if pool is not None and (not isinstance(pool, list) or len(pool) != 2 or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pool)):
                raise PermdealError(f"pool must be [ph, pw] >= 1 or null, not {pool}")
            return cls(shape, json_field(d, "words", int, where),
                       json_field(d, "block", int, where), None if pool is None else tuple(pool))
        except PermdealError as e:
            msg = str(e)
            raise PermdealError(msg if msg.startswith(where) else f"{where}: {msg}") from None

    @property
    def blocks(self) -> int:
        """``P``: producer blocks a pixel."""
        return self.words // self.block

    def pixel_rows(self, banks: int, width: int) -> int:
        """Wide rows a pixel takes in every bank: ``ceil(P/NL) * S``."""
        return -(-self.blocks // banks) * -(-self.block // width)

    def pixels(self) -> list[tuple[int, int]]:
        """The output pixels ``(i, j)`` the engine computes, in order: row by row without
        pooling; with pooling pooled pixel by pooled pixel (row by row), each its ``ph x pw``
        conv pixels row by row, the pixels past the last whole pooling window left out."""
        oh, ow = self.shape.out_hw
        if self.pool is None:
            return [(i, j) for i in range(oh) for j in range(ow)]
        ph, pw = self.pool
        return [(a * ph + di, b * pw + dj) for a in range(oh // ph) for b in range(ow // pw)
                for di in range(ph) for dj in range(pw)]

    def _steps(self, i: int, j: int, width: int):
        """Output pixel ``(i, j)``'s windows in order, as ``(first, y, x, blk, lo, size)``: the
        kernel position's first patch index, the input pixel (``None`` in the padding), the block,
        the window's first word in the pixel and its size."""
        _, h, w = self.shape.in_shape
        (kh, kw), (sh, sw), (top, left, _, _) = (self.shape.kernel, self.shape.stride,
                                                 self.shape.padding)
        q, d = self.block, width
        for u in range(kh):
            for v in range(kw):
                y, x = i * sh + u - top, j * sw + v - left
                first = (u * kw + v) * self.words
                if not (0 <= y < h and 0 <= x < w):
                    yield first, None, None, 0, 0, 0
                    continue
                for blk in range(self.blocks):
                    for lo in range(0, q, d):
                        yield first, y, x, blk, blk * q + lo, min(d, q - lo)

    def windows(self, i: int, j: int, banks: int,
                width: int) -> list[tuple[int, int, int, int]]:
        """Output pixel ``(i, j)``'s windows ``(bank, row, base, mask)`` in order: kernel
        positions ``(u, v)`` row by row; a position on an input pixel gives its ``P`` blocks'
        ``S`` windows (``base`` the patch index of the window's first word, ``mask`` its words
        inside the block), a position in the padding one empty window ``(0, 0, base, 0)``."""
        w, q, d = self.shape.in_shape[2], self.block, width
        s_count, nb = -(-q // d), -(-self.blocks // banks)
        out = []
        for first, y, x, blk, lo, size in self._steps(i, j, width):
            if y is None:
                out.append((0, 0, first, 0))
            else:
                row = ((y * w + x) * nb + blk // banks) * s_count + (lo - blk * q) // d
                out.append((blk % banks, row, first + lo, (1 << size) - 1))
        return out

    def window_nnz(self, fmap: npt.ArrayLike, i: int, j: int, width: int) -> np.ndarray:
        """``z_w`` of :meth:`windows` for the feature map ``fmap`` ``(C, H, W)`` (codes; only
        zero or non-zero matters; channels past ``C`` are zeros)."""
        fmap = np.asarray(fmap)
        c, h, w = self.shape.in_shape
        if fmap.shape != (c, h, w):
            raise PermdealError(f"feature map of shape {fmap.shape}, the walk takes {(c, h, w)}")
        nz = np.zeros((h, w, self.words), bool)
        nz[:, :, :c] = fmap.transpose(1, 2, 0) != 0
        return np.asarray([0 if y is None else int(nz[y, x, lo:lo + size].sum())
                           for _, y, x, _, lo, size in self._steps(i, j, width)], dtype=np.int64)


def conv_layer_cycles(fmap: npt.ArrayLike, walk: ConvWalk, block_rows: int, p: int, cfg,
                      pool_latency: int = 0):
    """Cycles of one conv layer (or an FC layer walked as one) on the feature map ``fmap``, with
    one lane group and the passes overlapped (docs/design.md 15, "Cycles"): pass ``k`` (output
    pixel ``k``) starts in cycle ``S_k`` (``S_0 = 0``); section 9 on the pixel's windows gives
    ``F_k`` (its issue done, :func:`~.cycles.pass_times`) and ``D0_k``. The next pass starts once
    this one is issued and the drain before has made its ``B*p`` requests (the next pass takes
    that drain's accumulator set): ``S_{k+1} = max(S_k + F_k, DS_{k-1} + B*p)``; this pass's
    drain starts in ``DS_k = max(S_k + D0_k, S_{k+1})``. The layer takes ``DS_last + B*p +
    WRITEBACK_LATENCY`` cycles, ``pool_latency`` more on a pooled engine's write-back. A
    :class:`~.cycles.LayerCycles` whose ``issue`` is ``DS_last`` and ``writeback`` the rest."""
    from .cycles import LayerCycles, pass_times
    if cfg.groups != 1 or cfg.layer_groups:
        raise PermdealError("a conv layer runs with one lane group (--groups 1)")
    b = cfg.slots(block_rows, 1)
    drain = cfg.drain_cycles(block_rows, p, 1)
    nnz, start, ds = 0, 0, None
    for i, j in walk.pixels():
        z = walk.window_nnz(fmap, i, j, cfg.scan_width)
        free, ready = pass_times(z, b, cfg)
        nxt = start + free if ds is None else max(start + free, ds + drain)
        ds, start = max(start + ready, nxt), nxt
        nnz += int(z.sum())
    return LayerCycles(nnz=nnz, slots=b, issue=ds,
                       writeback=drain + cfg.writeback_latency + pool_latency,
                       useful_lane_cycles=nnz * block_rows, total_lanes=cfg.total_lanes)


#: Cycles the write-back's pool stage adds to a pooled conv layer's pixel (docs/design.md 15).
POOL_LATENCY = 1


def engine_walks(net) -> list:
    """The engine's walk of every layer of a conv network ``net`` (``golden.conv_model.ConvNet``,
    PD): a :class:`ConvWalk` for a conv layer and for the FC layer after the last conv (the
    whole-map walk), ``None`` for an FC layer after an FC layer; refuses, naming the layer, what
    docs/design.md 15 does not run (pooling whose window is not its stride, a pixel whose words
    are not the layer's patch channels, a network ending in a convolution)."""
    from .conv_model import QuantConvLayer
    walks, words, block, fmap = [], None, None, None
    for i, l in enumerate(net.layers):
        conv = isinstance(l, QuantConvLayer)
        p = l.weights.p if conv else l.matrix.p
        if conv:
            shape = l.conv
            c = shape.in_shape[0]
            need = patch_channels(c, p)
            if i == 0:
                words, block = need, need
            if words != need:
                raise PermdealError(f"layer {l.name}: its input pixels hold {words} words (the "
                                    f"previous layer's block-rows), its patch {need} channels "
                                    f"a position (p = {p}); the engine needs them equal")
            pool = None
            if l.pool is not None:
                if l.pool.size != l.pool.stride:
                    raise PermdealError(f"layer {l.name}: pooling window {list(l.pool.size)} "
                                        f"with stride {list(l.pool.stride)}; the engine pools "
                                        "windows equal to their stride")
                pool = l.pool.size
            walks.append(ConvWalk(shape, words, block, pool))
            m_rows = -(-shape.out_channels // p)
            words, block, fmap = m_rows * p, p, (shape.out_channels, *l.out_shape[1:])
        elif fmap is not None:
            c, h, w = fmap
            if h * w > 1 and getattr(net, "flatten", "hwc") != "hwc":
                raise PermdealError(f"layer {l.name}: takes the {c}x{h}x{w} map in "
                                    f"({net.flatten}) order (a folder of an older permdeal); the "
                                    "engine reads it in (H, W, C) order: compress the model again")
            if words != c or l.shape[1] != h * w * c:
                raise PermdealError(f"layer {l.name}: the engine walks its input as the "
                                    f"{c}x{h}x{w} map of {words} words a pixel (the previous "
                                    f"layer's block-rows); its {l.shape[1]} inputs need "
                                    f"{c} words a pixel")
            shape = ConvShape((c, h, w), l.shape[0], (h, w))
            walks.append(ConvWalk(shape, words, block))
            fmap = None
        else:
            walks.append(None)
    if isinstance(net.layers[-1], QuantConvLayer):
        raise PermdealError(f"layer {net.layers[-1].name}: the engine's network ends in a fully "
                            "connected layer, not a convolution")
    return walks


def engine_pools(net) -> list:
    """Every layer's pooling for the engine's write-back (docs/design.md 15): ``(kind, n)``,
    ``"max"`` or ``"avg"`` over ``n = ph*pw`` conv pixels, or ``None``."""
    return [None if getattr(l, "pool", None) is None
            else (l.pool.kind, l.pool.size[0] * l.pool.size[1]) for l in net.layers]


def engine_input(net, x: npt.ArrayLike) -> np.ndarray:
    """The engine's input stream for input codes ``x`` (``(C*H*W,)`` or ``(batch, C*H*W)``, CHW
    as ``ConvNet.forward`` takes them) of a network that starts with a convolution: pixel by
    pixel, row by row, each its ``C'`` channel codes, zeros past ``C`` (docs/design.md 15);
    ``x`` as it is for an FC network."""
    from .conv_model import QuantConvLayer
    x = np.asarray(x, dtype=np.int64)
    first = net.layers[0]
    if not isinstance(first, QuantConvLayer):
        return x
    c, h, w = first.conv.in_shape
    words = patch_channels(c, first.weights.p)
    batch = x.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
    out = np.zeros((batch.shape[0], h, w, words), np.int64)
    out[..., :c] = batch
    out = out.reshape(batch.shape[0], -1)
    return out[0] if x.ndim == 1 else out


def conv_model_cycles(net, x: npt.ArrayLike, cfg):
    """Cycles of one inference of the conv network ``net`` on input codes ``x`` (one CHW
    vector) on engine ``cfg``: docs/design.md 9 with every walked layer per
    :func:`conv_layer_cycles` (the input stream of :func:`engine_input`); a network with a
    pooled layer has the pool stage in every pass's write-back (:data:`POOL_LATENCY`)."""
    from dataclasses import replace

    from .conv_model import QuantConvLayer
    from .cycles import InferenceCycles, layer_cycles
    walks = engine_walks(net)
    pool = POOL_LATENCY if any(p is not None for p in engine_pools(net)) else 0
    acts = net.forward(np.asarray(x), trace=True)
    if acts[0].ndim != 1:
        raise PermdealError("conv_model_cycles takes one input vector; loop over a batch")
    layers, prev = [], None
    for l, walk, a in zip(net.layers, walks, acts):
        conv = isinstance(l, QuantConvLayer)
        p = l.weights.p if conv else l.matrix.p
        rows = -(-(l.conv.out_channels if conv else l.shape[0]) // p)
        if walk is None:
            c = layer_cycles(a, rows, p, cfg, prev)
            layers.append(replace(c, writeback=c.writeback + pool))
        else:
            c, h, w = walk.shape.in_shape
            # (the FC layer after a convolution takes the map in (H, W, C) order)
            fmap = np.asarray(a).reshape(c, h, w) if conv else \
                np.asarray(a).reshape(h, w, c).transpose(2, 0, 1)
            layers.append(conv_layer_cycles(fmap, walk, rows, p, cfg, pool))
        prev = p
    return InferenceCycles(load=engine_input(net, acts[0]).size, layers=tuple(layers),
                           unload=net.layers[-1].shape[0] + cfg.output_latency)


def engine_cycles(model, x: npt.ArrayLike, cfg):
    """The cycle model of one inference of ``model`` on the engine ``cfg``:
    ``golden.cycles.model_cycles``, or for a conv network :func:`conv_model_cycles`."""
    from .cycles import model_cycles
    if hasattr(model, "matrix_layers"):
        return conv_model_cycles(model, x, cfg)
    return model_cycles(model, x, cfg)
