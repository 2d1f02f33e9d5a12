"""Convolution and pooling in the golden model (docs/design.md section 14).

Activations are ``(batch, C, H, W)`` (NCHW, as ONNX and torch lay them out), weights
``(O, C, KH, KW)`` (OIHW). A convolution is a matrix product on patches::

    y[b, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] * xp[b, c, i*sh + u, j*sw + v]

with ``xp`` the input zero-padded by ``(top, left, bottom, right)``. :func:`patches` cuts ``xp``
into the ``(batch, OH, OW, C, KH, KW)`` windows (a strided view, no copy but the padding), so the
float convolution, the permuted-diagonal one and the integer one all share one gather.

Compressed weights:

- permuted-diagonal (:class:`ConvPermDiag`): one ``O x C`` :class:`~.permdiag.PermDiag` per kernel
  position ``(u, v)``, each with its own permutation values, as PermDNN does for convolutions;
- SmartDeal: the ``O x (C*KH*KW)`` matrix view of the weights (:func:`matrix_view`), whose chunks
  of ``S = KW`` consecutive inputs are the kernel rows, decomposed by :mod:`.smartdeal` as it is
  (one block ``Ce (C*KH x 3) @ B (3 x 3)`` per output channel by default, the authors' layout).

Pooling (:class:`Pool`): 2-D max or average over ``kh x kw`` windows, no padding, floor mode. On
integer codes the average rounds half up: ``floor((2*sum + n) / (2*n))`` for ``n`` values.

The patch order (docs/design.md 14.6; :func:`patch_order` is its one statement): the hardware runs
a conv layer as one matrix-vector product per output pixel, over the pixel's patch laid out
kernel position by kernel position, ``C' = patch_channels(C, p)`` channels each (``C`` padded with
zeros up to a multiple of ``p``): patch entry ``(u*KW + v)*C' + c`` is channel ``c`` at kernel
position ``(u, v)``. The weights are then one ``O x KH*KW*C'`` matrix (:meth:`ConvPermDiag.
to_matrix`), whose block-columns of ``p`` each lie within one kernel position, so that it is a
permuted-diagonal matrix holding exactly the per-position patterns. Output pixels go in row-major
order ``i*OW + j`` (:func:`im2col`).

The feature-map order (docs/design.md 14.3, 14.6; :func:`hwc_order` is its one statement): the
PermDNN engine keeps a feature map in its activation banks pixel by pixel, each pixel's channels
together (``(h*W + w)*C + c``, HWC), since a patch reads whole channel blocks of one pixel. So a
permuted-diagonal network's FC layer right after a convolution takes the (pooled) feature map
flattened in that order, its weight columns permuted from the float model's ``(C, H, W)`` order
before projection. The SmartDeal engine keeps a feature map channel by channel (docs/design.md
16), so a SmartDeal network's takes it in the float model's ``(C, H, W)`` order
(:data:`METHOD_FLATTEN`; float models keep ``(C, H, W)``, as ONNX and torch flatten).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from permdeal.errors import PermdealError

from .formats import Fixed
from .permdiag import PermDiag, index_bits

POOL_KINDS = ("max", "avg")
#: The orders a compressed conv network's FC layer may take a feature map flattened in:
#: ``"chw"`` (channel by channel, the float model's and format-2 folders') or ``"hwc"`` (pixel by
#: pixel, the engine's, docs/design.md 14.6).
FLATTEN_ORDERS = ("chw", "hwc")
#: The order compression gives the FC layer after a convolution (docs/design.md 14.3): the order
#: of the feature map in the method's engine (the PermDNN engine's banks hold it pixel by pixel,
#: the SmartDeal engine's lists channel by channel).
METHOD_FLATTEN = {"permdiag": "hwc", "smartdeal": "chw"}
#: The PermDNN engine's order, and ``ConvNet``'s default.
FLATTEN = METHOD_FLATTEN["permdiag"]


def _pair(v, what, lo):
    try:
        out = tuple(int(a) for a in v)
    except (TypeError, ValueError):
        raise PermdealError(f"{what} must be a pair of integers, not {v!r}") from None
    if len(out) != 2 or min(out) < lo:
        raise PermdealError(f"{what} must be two integers >= {lo}, not {list(out)}")
    return out


@dataclass(frozen=True)
class Pool:
    """2-D pooling: ``kind`` ``"max"`` or ``"avg"``, window ``size`` and ``stride`` (rows, cols)."""

    kind: str
    size: tuple
    stride: tuple

    def __post_init__(self):
        if self.kind not in POOL_KINDS:
            raise PermdealError(f"pool kind must be one of {', '.join(POOL_KINDS)}, not "
                                f"{self.kind!r}")
        object.__setattr__(self, "size", _pair(self.size, "pool size", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "pool stride", 1))

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output rows and columns for an ``h x w`` input (floor mode)."""
        (kh, kw), (sh, sw) = self.size, self.stride
        if kh > h or kw > w:
            raise PermdealError(f"{self.kind} pool {kh}x{kw} does not fit a {h}x{w} input")
        return (h - kh) // sh + 1, (w - kw) // sw + 1

    def _windows(self, x):
        (kh, kw), (sh, sw) = self.size, self.stride
        return sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]

    def __call__(self, x: npt.ArrayLike) -> np.ndarray:
        """Pool float activations ``(..., H, W)``."""
        win = self._windows(np.asarray(x, dtype=np.float64))
        return win.max(axis=(-2, -1)) if self.kind == "max" else win.mean(axis=(-2, -1))

    def codes(self, x: npt.ArrayLike) -> np.ndarray:
        """Pool integer codes ``(..., H, W)`` exactly: max, or the average rounded half up."""
        win = self._windows(np.asarray(x, dtype=np.int64))
        if self.kind == "max":
            return win.max(axis=(-2, -1))
        n = self.size[0] * self.size[1]
        return (2 * win.sum(axis=(-2, -1)) + n) // (2 * n)


@dataclass(frozen=True)
class ConvShape:
    """The geometry of one convolution: input ``(C, H, W)``, ``out_channels``, kernel
    ``(KH, KW)``, ``stride`` ``(sh, sw)``, ``padding`` ``(top, left, bottom, right)``."""

    in_shape: tuple
    out_channels: int
    kernel: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)

    def __post_init__(self):
        shape = tuple(int(v) for v in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise PermdealError(f"conv input shape must be (C, H, W) >= 1, not {list(shape)}")
        object.__setattr__(self, "in_shape", shape)
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "stride", 1))
        pad = tuple(int(v) for v in self.padding)
        if len(pad) != 4 or min(pad) < 0:
            raise PermdealError(f"padding must be (top, left, bottom, right) >= 0, not {list(pad)}")
        object.__setattr__(self, "padding", pad)
        _, h, w = shape
        (kh, kw), (t, l, b, r) = self.kernel, pad
        if kh > h + t + b or kw > w + l + r:
            raise PermdealError(f"kernel {kh}x{kw} does not fit the padded {h + t + b}x"
                                f"{w + l + r} input")

    @property
    def out_hw(self) -> tuple[int, int]:
        _, h, w = self.in_shape
        (kh, kw), (sh, sw), (t, l, b, r) = self.kernel, self.stride, self.padding
        return (h + t + b - kh) // sh + 1, (w + l + r - kw) // sw + 1

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, *self.out_hw)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_shape[0], *self.kernel)

    @property
    def positions(self) -> int:
        """Output pixels ``OH * OW``: how often every weight is used."""
        oh, ow = self.out_hw
        return oh * ow

    def patches(self, x: npt.ArrayLike) -> np.ndarray:
        """The ``(batch, OH, OW, C, KH, KW)`` input windows of ``x`` ``(batch, C, H, W)`` (or
        ``(batch, C*H*W)``), zero-padded, in ``x``'s dtype."""
        x = np.asarray(x)
        x = x.reshape(x.shape[0], *self.in_shape)
        t, l, b, r = self.padding
        if any(self.padding):
            x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
        (sh, sw) = self.stride
        win = sliding_window_view(x, self.kernel, axis=(2, 3))[:, :, ::sh, ::sw]
        return win.transpose(0, 2, 3, 1, 4, 5)  # (batch, OH, OW, C, KH, KW)


def patch_channels(c: int, p: int) -> int:
    """Channels per kernel position in the patch order: ``c`` padded up to a multiple of ``p``."""
    return -(-int(c) // int(p)) * int(p)


def patch_order(kernel: tuple, c: int, p: int = 1) -> np.ndarray:
    """The patch order, the one statement of it: entry ``j = (u*KW + v)*C' + c`` of a patch is
    entry ``patch_order[j] = (c*KH + u)*KW + v`` of the ``(C, KH, KW)`` window flattened (the
    order of :meth:`ConvShape.patches` and :func:`matrix_view`), or ``-1`` in the channel padding
    ``c >= C`` (``C' = patch_channels(C, p)``)."""
    kh, kw = _pair(kernel, "kernel", 1)
    u, v, ch = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(patch_channels(c, p)),
                           indexing="ij")
    return np.where(ch < c, (ch * kh + u) * kw + v, -1).ravel()


def hwc_order(shape: tuple) -> np.ndarray:
    """The feature-map order, the one statement of it: entry ``j = (h*W + w)*C + c`` of a
    ``(C, H, W)`` feature map flattened pixel by pixel (HWC) is entry ``hwc_order(shape)[j] =
    (c*H + h)*W + w`` of it flattened channel by channel (CHW). So ``x_chw[..., order]`` is the
    HWC vector, and ``weight[:, order]`` the weight columns of an FC layer taking it."""
    try:
        c, h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise PermdealError(f"a feature map's shape must be (C, H, W), not {shape!r}") from None
    if min(c, h, w) < 1:
        raise PermdealError(f"a feature map's shape must be (C, H, W) >= 1, not {[c, h, w]}")
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def im2col(shape: ConvShape, x: npt.ArrayLike, p: int = 1) -> np.ndarray:
    """The patches of ``x`` ``(batch, C*H*W)`` in the patch order (:func:`patch_order`):
    ``(batch, OH*OW, KH*KW*C')``, zeros in the channel padding, output pixels row by row."""
    win = shape.patches(x)
    win = win.reshape(len(win), shape.positions, -1)         # (batch, OH*OW, C*KH*KW)
    order = patch_order(shape.kernel, shape.in_shape[0], p)
    return np.where(order >= 0, win[..., np.maximum(order, 0)], 0)


def conv2d(x: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike,
           shape: ConvShape) -> np.ndarray:
    """Float convolution: ``(batch, C, H, W)`` in, ``(batch, O, OH, OW)`` out."""
    w = np.asarray(weight, dtype=np.float64)
    y = np.einsum("bijcuv,ocuv->boij", shape.patches(np.asarray(x, dtype=np.float64)), w,
                  optimize=True)
    return y + np.asarray(bias, dtype=np.float64)[:, None, None]


def matrix_view(weight: npt.ArrayLike) -> np.ndarray:
    """The ``O x (C*KH*KW)`` matrix of ``(O, C, KH, KW)`` weights: row ``o`` is output channel
    ``o``'s kernel, kernel rows of ``KW`` values one after another (SmartDeal's chunks)."""
    w = np.asarray(weight)
    return w.reshape(w.shape[0], -1)


class ConvPermDiag:
    """Permuted-diagonal conv weights: one ``O x C`` :class:`PermDiag` per kernel position.

    ``mats[u * KW + v]`` holds the weights ``W[:, :, u, v]``; all share the block size ``p``.
    """

    def __init__(self, kernel: tuple, mats: list[PermDiag]):
        self.kernel = _pair(kernel, "kernel", 1)
        if len(mats) != self.kernel[0] * self.kernel[1]:
            raise PermdealError(f"a {self.kernel[0]}x{self.kernel[1]} kernel needs "
                                f"{self.kernel[0] * self.kernel[1]} matrices, not {len(mats)}")
        if len({(m.shape, m.p) for m in mats}) != 1:
            raise PermdealError("every kernel position's matrix must have one shape and p")
        self.mats = list(mats)

    @property
    def p(self) -> int:
        return self.mats[0].p

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(O, C, KH, KW)``."""
        return (*self.mats[0].shape, *self.kernel)

    @classmethod
    def from_dense(cls, weight: npt.ArrayLike, p: int) -> ConvPermDiag:
        """Project ``(O, C, KH, KW)`` weights position by position (max-energy diagonals)."""
        w = np.asarray(weight)
        if w.ndim != 4 or 0 in w.shape:
            raise PermdealError(f"conv weights must be a non-empty (O, C, KH, KW) array, not "
                                f"shape {w.shape}")
        kh, kw = w.shape[2:]
        return cls((kh, kw), [PermDiag.from_dense(w[:, :, u, v], p)
                              for u in range(kh) for v in range(kw)])

    def to_dense(self) -> np.ndarray:
        """The ``(O, C, KH, KW)`` weights."""
        dense = np.stack([m.to_dense() for m in self.mats], axis=-1)
        return dense.reshape(self.shape)

    def quantize(self, fmt: Fixed) -> tuple[ConvPermDiag, int]:
        """Every position's weights to codes of ``fmt``: ``(ConvPermDiag, n_saturated)``."""
        out = [m.quantize(fmt) for m in self.mats]
        return ConvPermDiag(self.kernel, [m for m, _ in out]), sum(n for _, n in out)

    def with_q(self, qs: list) -> ConvPermDiag:
        return ConvPermDiag(self.kernel, [m.with_q(q) for m, q in zip(self.mats, qs)])

    @property
    def n_weights(self) -> int:
        """Stored weights inside the matrices (padding excluded)."""
        return sum(m.n_weights for m in self.mats)

    @property
    def max_terms(self) -> int:
        """The longest dot product: the most stored weights in one row of :meth:`to_matrix`
        (a kernel position's channel padding included, whose inputs are zeros)."""
        return self.to_matrix().max_terms

    @property
    def channels(self) -> int:
        """``C'``: channels per kernel position in the patch order."""
        return patch_channels(self.mats[0].shape[1], self.p)

    def to_matrix(self) -> PermDiag:
        """The ``O x KH*KW*C'`` permuted-diagonal matrix of the patch order (:func:`patch_order`:
        column ``j`` holds the weights of window entry ``patch_order[j]``): kernel position
        ``u*KW + v`` holds block-columns ``(u*KW + v)*N_c .. + N_c - 1``, ``N_c = C'/p``."""
        o, c = self.mats[0].shape
        n = len(self.mats) * self.channels
        return PermDiag((o, n), self.p, np.concatenate([m.k for m in self.mats], axis=1),
                        np.concatenate([m.q for m in self.mats], axis=1))

    @classmethod
    def from_matrix(cls, mat: PermDiag, kernel: tuple, c: int) -> ConvPermDiag:
        """Inverse of :meth:`to_matrix` for ``c`` input channels; refuses a matrix of another
        width or with weights in the channel padding."""
        kh, kw = _pair(kernel, "kernel", 1)
        nc = patch_channels(c, mat.p) // mat.p
        o, n = mat.shape
        if n != kh * kw * nc * mat.p:
            raise PermdealError(f"a {kh}x{kw} kernel over {c} channels at p = {mat.p} makes "
                                f"{kh * kw * nc * mat.p} patch entries, the matrix has {n} columns")
        mats = []
        for pos in range(kh * kw):
            cols = slice(pos * nc, (pos + 1) * nc)
            try:
                mats.append(PermDiag((o, c), mat.p, mat.k[:, cols], mat.q[:, cols]))
            except PermdealError as e:
                raise PermdealError(f"kernel position {divmod(pos, kw)}: {e} (the channel "
                                    "padding of the patch order)") from None
        return cls((kh, kw), mats)

    @property
    def index_bits_total(self) -> int:
        return sum(m.index_bits_total for m in self.mats)

    def stored_bits(self, weight_bits: int) -> int:
        """Weight storage: ``p`` weights of ``weight_bits`` and ``ceil(log2 p)`` index bits per
        block, padding blocks' weights included (as the ROMs hold them)."""
        mb, nb = self.mats[0].blocks
        return len(self.mats) * mb * nb * (self.p * weight_bits + index_bits(self.p))

    def apply(self, patches: np.ndarray, integer: bool = False) -> np.ndarray:
        """``sum_(u,v) W[:, :, u, v] @ patches[..., :, u, v]``: ``(..., O)`` from ``(..., C, KH,
        KW)`` patches; exact ``int64`` with ``integer`` (codes in, accumulator out)."""
        kh, kw = self.kernel
        out = None
        for u in range(kh):
            for v in range(kw):
                m = self.mats[u * kw + v]
                x = patches[..., u, v]
                y = m.int_matvec(x) if integer else m.matvec(x)
                out = y if out is None else out + y
        return out
