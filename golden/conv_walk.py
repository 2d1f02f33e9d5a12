"""How the PermDNN engine walks a conv layer's input: the feature map in the banks, the output
pixels' order and each pixel's windows (docs/design.md 14.8, the one statement of them).

A conv layer runs as one matrix-vector product per output pixel: the weights (the patch-order
matrix of docs/design.md 14.6) stay in the lanes, and the window reader walks the pixel's patch
in the feature map that the layer before wrote into the banks. Each computed output pixel is one
pass of docs/design.md 9's layer schedule over the pixel's windows (:func:`conv_layer_cycles`).

Feature-map layout (``words`` ``C'`` a pixel in ``P = C'/q`` producer blocks of ``q`` words): pixel
``y*W + x``'s block ``J`` lies in bank ``J mod NL``, wide rows from ``(pixel * ceil(P/NL) + J div
NL) * S`` (``S = ceil(q/D)``), window ``s`` of the block in row ``+ s``. So a lane writes the
outputs of its block-rows into its own bank as for an FC layer, ``pixel * B * S`` rows further.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.errors import PermdealError

from .conv import ConvShape

__all__ = ["ConvWalk", "conv_layer_cycles"]


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
    """Cycles of one conv layer (or an FC layer walked as one) on the feature map ``fmap``:
    docs/design.md 9's layer schedule once for every computed output pixel over its windows,
    with one lane group; ``pool_latency`` more cycles a pixel on a pooled layer's write-back.
    A :class:`~.cycles.LayerCycles` whose ``issue`` and ``writeback`` are the sums over the
    pixels."""
    from .cycles import LayerCycles, drain_start
    if cfg.groups != 1 or cfg.layer_groups:
        raise PermdealError("a conv layer runs with one lane group (--groups 1)")
    b = cfg.slots(block_rows, 1)
    issue = nnz = 0
    pixels = walk.pixels()
    for i, j in pixels:
        z = walk.window_nnz(fmap, i, j, cfg.scan_width)
        issue += drain_start(z, b, cfg)
        nnz += int(z.sum())
    per_pixel = cfg.drain_cycles(block_rows, p, 1) + cfg.writeback_latency + pool_latency
    return LayerCycles(nnz=nnz, slots=b, issue=issue, writeback=per_pixel * len(pixels),
                       useful_lane_cycles=nnz * block_rows, total_lanes=cfg.total_lanes)
