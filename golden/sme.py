"""SME-style bit sparsity on crossbars (Liu et al., arXiv 2103.01705; docs/references.md "SME").

1. **Sign-magnitude quantization** of a float matrix to ``b`` bits: one sign bit and ``b - 1``
   magnitude bits with one scale per layer, ``w ~= sign * mag * scale``,
   ``scale = max|W| / (2^(b-1) - 1)``, ``mag = round(|W| / scale)`` (nearest, ties to even).
2. **Orchestration**: every magnitude is replaced by the nearest value in ``[0, 2^(b-1) - 1]``
   with at most ``K`` set bits (:func:`cap_bits`; ties go to the smaller magnitude).
3. **Bit-slice crossbars**: magnitude bit ``j`` of every weight forms a binary matrix, mapped on
   its own grid of ``R x C`` crossbars of 1-bit cells (inputs on rows, outputs on columns, as in
   :mod:`~permdeal.golden.crossbar`), the sign as polarity: positive weights' bits in one array,
   negative weights' in the other. A layer ``m x n`` has ``(b - 1) * P * ceil(n/R) * ceil(m/C)``
   tiles.
4. **Squeeze-out**: a tile holding no set bit is removed; a tile holding fewer than ``threshold``
   set bits is squeezed out too and its bits are **dropped** (zeroed in the weights), so the
   accuracy effect of squeezing is measured, not assumed away.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.crossbar import LIMITS, CrossbarConfig
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.train import MLP, accuracy, init_mlp, load_digits_split, train


def _bits(bits):
    _, lo, hi = LIMITS["weight_bits"]
    return integer(bits, "sign-magnitude bits", lo, hi)


@dataclass(frozen=True)
class SignMagnitude:
    """Sign-magnitude codes of a matrix: ``sign`` in {-1, 0, 1}, ``mag`` in
    ``[0, 2^(bits-1) - 1]`` (``int64``), one float ``scale``."""

    sign: np.ndarray
    mag: np.ndarray
    scale: float
    bits: int

    @property
    def codes(self) -> np.ndarray:
        """Signed integer codes ``sign * mag``."""
        return self.sign * self.mag

    def to_float(self) -> np.ndarray:
        """The weights the codes stand for: ``sign * mag * scale``."""
        return self.codes * self.scale

    def with_mag(self, mag: npt.ArrayLike) -> SignMagnitude:
        """The same signs and scale with other magnitudes (a zero magnitude gets sign 0)."""
        mag = np.asarray(mag, np.int64)
        return SignMagnitude(np.where(mag > 0, self.sign, 0), mag, self.scale, self.bits)


def sign_magnitude(W: npt.ArrayLike, bits: int = 8) -> SignMagnitude:
    """Quantize float ``W`` to ``bits``-bit sign-magnitude codes with a per-layer scale.

    ``scale = max|W| / (2^(bits-1) - 1)`` (1.0 for an all-zero ``W``), so the largest weight maps
    to the largest magnitude and nothing saturates; magnitudes round to nearest, ties to even.
    """
    bits = _bits(bits)
    W = np.asarray(W)
    if W.ndim != 2 or W.size == 0:
        raise PermdealError(f"weights must be a non-empty 2-D matrix, not shape {W.shape}")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise PermdealError(f"weights must be numbers, not {W.dtype}")
    W = W.astype(np.float64)
    if not np.all(np.isfinite(W)):
        raise PermdealError("weights hold NaN or infinite values")
    top = (1 << (bits - 1)) - 1
    peak = float(np.abs(W).max())
    scale = peak / top if peak else 1.0
    mag = np.minimum(np.rint(np.abs(W) / scale), top).astype(np.int64)
    return SignMagnitude(np.where(mag > 0, np.sign(W), 0).astype(np.int64), mag, scale, bits)


def popcount(v: npt.ArrayLike) -> np.ndarray:
    """Set bits of every non-negative integer of ``v``."""
    return np.bitwise_count(np.asarray(v, np.int64)).astype(np.int64)


def cap_bits(mag: npt.ArrayLike, K: int | None, bits: int) -> np.ndarray:
    """Round every magnitude to the nearest value in ``[0, 2^(bits-1) - 1]`` with at most ``K``
    set bits (SME's orchestration); ``K=None`` leaves them unchanged.

    ``lo`` keeps the ``K`` highest set bits of ``v`` (the largest such value ``<= v``);
    ``hi = lo + lowbit(lo)`` is the smallest such value ``> v``. The nearer wins; a tie, or a
    ``hi`` beyond the magnitude range, gives ``lo``.
    """
    bits = _bits(bits)
    mag = np.asarray(mag)
    if not np.issubdtype(mag.dtype, np.integer):
        raise PermdealError(f"magnitudes must be integers, not {mag.dtype}")
    mag = mag.astype(np.int64)
    top = (1 << (bits - 1)) - 1
    if mag.size and (mag.min() < 0 or mag.max() > top):
        raise PermdealError(f"magnitudes must lie in [0, {top}] for {bits}-bit sign-magnitude, "
                            f"found {mag.min()}..{mag.max()}")
    if K is None:
        return mag.copy()
    K = integer(K, "bit cap K", 1)
    lo = np.zeros_like(mag)
    seen = np.zeros_like(mag)
    for j in reversed(range(bits - 1)):  # highest bit first: keep the first K set bits
        bit = (mag >> j) & 1
        keep = bit & (seen < K)
        lo |= keep << j
        seen += bit
    hi = lo + (lo & -lo)
    up = (seen > K) & (hi - mag < mag - lo) & (hi <= top)
    return np.where(up, hi, lo)


def bit_slices(mag: npt.ArrayLike, bits: int) -> np.ndarray:
    """``(bits - 1, m, n)`` 0/1 ``uint8`` array: magnitude bit ``j`` of every weight (LSB first)."""
    bits = _bits(bits)
    mag = np.asarray(mag, np.int64)
    return ((mag[None] >> np.arange(bits - 1)[:, None, None]) & 1).astype(np.uint8)


def _tile_index(m, n, rows, cols):
    """``(t, u)``: the row tile of every input and the column tile of every output."""
    return np.arange(n) // rows, np.arange(m) // cols


def tile_counts(sm: SignMagnitude, rows: int, cols: int) -> np.ndarray:
    """Set bits of every crossbar tile: ``(bits - 1, P, ceil(n/rows), ceil(m/cols))``.

    Tile ``(j, pol, t, u)`` holds bit ``j`` of the weights of sign ``+`` (``pol = 0``) or ``-``
    (``pol = 1``) for inputs ``[t*rows, (t+1)*rows)`` and outputs ``[u*cols, (u+1)*cols)``.
    """
    m, n = sm.mag.shape
    T, U = -(-n // rows), -(-m // cols)
    sl = np.pad(bit_slices(sm.mag, sm.bits), ((0, 0), (0, U * cols - m), (0, T * rows - n)))
    sign = np.pad(sm.sign, ((0, U * cols - m), (0, T * rows - n)))
    counts = [(sl * (sign * s > 0)).reshape(sm.bits - 1, U, cols, T, rows).sum(
        axis=(2, 4), dtype=np.int64).transpose(0, 2, 1) for s in (1, -1)]
    return np.stack(counts, axis=1)


def squeeze(sm: SignMagnitude, rows: int, cols: int,
            threshold: int) -> tuple[np.ndarray, SignMagnitude]:
    """Squeeze out the tiles holding fewer than ``max(1, threshold)`` set bits.

    Returns ``(kept, codes)``: ``kept`` is the boolean tile grid of :func:`tile_counts`, ``codes``
    the :class:`SignMagnitude` with the bits of every removed tile zeroed.
    """
    threshold = integer(threshold, "squeeze threshold", 0)
    kept = tile_counts(sm, rows, cols) >= max(1, threshold)
    m, n = sm.mag.shape
    t, u = _tile_index(m, n, rows, cols)
    # Bit j of weight (o, i) survives iff tile (j, polarity of w[o, i], i // rows, o // cols)
    # is kept.
    keep = kept[:, (sm.sign < 0).astype(np.int64), t[None, :], u[:, None]]  # (j, m, n)
    mag = ((bit_slices(sm.mag, sm.bits) * keep).astype(np.int64)
           << np.arange(sm.bits - 1)[:, None, None]).sum(axis=0)
    return kept, sm.with_mag(mag)


@dataclass(frozen=True)
class SMELayer:
    """One layer through SME: the codes after orchestration and squeeze-out, and the counts.

    ``crossbars_total`` is every tile of the bit-slice grids, ``crossbars_quantized`` the non-empty
    ones of the plain quantized weights, ``crossbars_capped`` after orchestration,
    ``crossbars_squeezed`` after squeeze-out; ``bits_dropped`` set bits lost to squeezing;
    ``density_*`` the fraction of weights with magnitude bit ``j`` set, per slice (LSB first).
    """

    codes: SignMagnitude
    crossbars_total: int
    crossbars_quantized: int
    crossbars_capped: int
    crossbars_squeezed: int
    bits_dropped: int
    density_quantized: tuple
    density_final: tuple


def _density(sm):
    return tuple(float(d) for d in bit_slices(sm.mag, sm.bits).mean(axis=(1, 2)))


def sme_layer(W: npt.ArrayLike, bits: int = 8, cap: int | None = None, threshold: int = 1,
              rows: int = 128, cols: int = 128) -> SMELayer:
    """Quantize float ``W`` (``out x in``) to sign-magnitude, cap its bits at ``cap`` (``None``:
    no cap), map its bit-slices on ``rows x cols`` crossbars of 1-bit cells and squeeze out
    tiles with fewer than ``threshold`` set bits. Returns an :class:`SMELayer`."""
    cfg = CrossbarConfig(rows=rows, cols=cols, cell_bits=1, weight_bits=_bits(bits))
    quant = sign_magnitude(W, bits)
    capped = quant.with_mag(cap_bits(quant.mag, cap, bits))
    kept, final = squeeze(capped, cfg.rows, cfg.cols, threshold)
    nonempty = lambda sm: int(np.count_nonzero(tile_counts(sm, cfg.rows, cfg.cols)))
    return SMELayer(final, kept.size, nonempty(quant), nonempty(capped), int(kept.sum()),
                    int(popcount(capped.mag).sum() - popcount(final.mag).sum()),
                    _density(quant), _density(final))


def sme_model(model: MLP, bits: int = 8, cap: int | None = None, threshold: int = 1,
              rows: int = 128, cols: int = 128) -> tuple[MLP, list[SMELayer]]:
    """SME applied to every layer of an :class:`~permdeal.golden.train.MLP`.

    Returns ``(model with the resulting float weights, [SMELayer per layer])``; biases are kept.
    """
    layers = [sme_layer(W, bits, cap, threshold, rows, cols) for _, W, _ in model.dense_weights()]
    weights = tuple(PermDiag.from_dense(l.codes.to_float(), 1) for l in layers)
    return MLP(weights, model.biases), layers


def sme_digits_study(caps: Sequence[int | None] = (None, 3, 2, 1),
                     thresholds: Sequence[int] = (1, 8, 16, 32),
                     xbars: Sequence[tuple[int, int]] = ((32, 32), (128, 128)), bits: int = 8,
                     hidden: Sequence[int] = (128, 64), seed: int = 0,
                     epochs: int = 40) -> tuple[list[dict], dict]:
    """Test accuracy and crossbar counts of the digits MLP under SME, one row per
    (crossbar size, cap, threshold).

    Trains the dense MLP (:mod:`~permdeal.golden.train`), quantizes it to ``bits``-bit
    sign-magnitude and evaluates the float forward pass with the weights left after orchestration
    and squeeze-out. Returns ``(rows, info)``: each row a dict ``{rows, cols, cap, threshold,
    accuracy, total, quantized, capped, squeezed, bits_dropped}`` (crossbar counts summed over
    layers), ``info`` the float accuracy, the bit densities and the time taken.
    """
    t0 = time.perf_counter()
    X_tr, y_tr, X_te, y_te = load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    model = train(init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, seed=seed)
    out = []
    density = {}
    for R, C in xbars:
        for cap in caps:
            for th in thresholds:
                sme, layers = sme_model(model, bits, cap, th, R, C)
                out.append(dict(rows=R, cols=C, cap=cap, threshold=th,
                                accuracy=accuracy(sme, X_te, y_te),
                                total=sum(l.crossbars_total for l in layers),
                                quantized=sum(l.crossbars_quantized for l in layers),
                                capped=sum(l.crossbars_capped for l in layers),
                                squeezed=sum(l.crossbars_squeezed for l in layers),
                                bits_dropped=sum(l.bits_dropped for l in layers)))
                if th == thresholds[0] and (R, C) == tuple(xbars[0]):
                    density[cap] = [l.density_final for l in layers]
    info = dict(float_accuracy=accuracy(model, X_te, y_te), density=density,
                seconds=time.perf_counter() - t0)
    return out, info
