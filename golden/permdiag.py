"""Permuted-diagonal matrices (docs/design.md section 4.1).

An ``m x n`` matrix ``W`` (``y = W x``) is tiled into ``M' = ceil(m/p)`` block-rows and
``N' = ceil(n/p)`` block-columns of ``p x p`` blocks (``m`` and ``n`` zero-padded up to multiples of
``p``). Block ``(I, J)`` has one permutation value ``k[I, J]`` in ``[0, p)`` and ``p`` stored weights
``q[I, J, 0..p-1]``::

    W[I*p + r, J*p + c] = q[I, J, r]   if c == (r + k[I, J]) mod p,   else 0

The hardware takes the column view: in input column ``c`` of a block the one non-zero sits in row
``r = (c - k) mod p``. :func:`diag_col` and :func:`diag_row` are the one statement of this
convention; everything else derives from them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .formats import Fixed

#: Elements of the temporaries the vectorized loops work on at once (about 1-2 MB).
_CHUNK = 1 << 18
#: Padded matrices up to this many elements are always accepted (beyond, only up to 4x the matrix).
_MAX_PADDED = 1 << 24


def diag_col(r: int | np.ndarray, k: int | np.ndarray, p: int) -> int | np.ndarray:
    """Column (within its block) of the stored weight of row ``r`` in a block with value ``k``."""
    return (r + k) % p


def diag_row(c: int | np.ndarray, k: int | np.ndarray, p: int) -> int | np.ndarray:
    """Row (within its block) of the one non-zero of column ``c`` in a block with value ``k``."""
    return (c - k) % p


def index_bits(p: int) -> int:
    """Bits of one permutation value: ``ceil(log2 p)`` (0 for ``p = 1``, which is dense)."""
    return (int(p) - 1).bit_length()



def check_block_fit(m: int, n: int, b: int, name: str = "p", what: str | None = None,
                    longer_side: bool = True) -> None:
    """Refuse a block size ``b`` (``p`` or ``k``, ``name``) that does not fit an ``m x n`` matrix:
    with ``longer_side``, one longer than the matrix's longer side; always, one whose zero padding
    makes the matrix more than 4 times (and more than ``2**24`` entries) larger. ``what`` names
    the matrix in the message. (A PD matrix may have one block larger than the matrix: a small
    layer of a network compressed with one ``p``; the comparisons refuse it.)"""
    what = what or f"the {m} x {n} matrix"
    size = f"{name} {b}" if name.startswith("--") else f"block size {name}={b}"
    if longer_side and b > max(m, n):
        raise PermdealError(f"{size} does not fit {what}: a block may not exceed its longer "
                            f"side, {max(m, n)}")
    mb, nb = -(-m // b), -(-n // b)
    if mb * nb * b * b > max(4 * m * n, _MAX_PADDED):
        raise PermdealError(f"{size} pads {what} to {mb * b} x {nb * b}, more "
                            "than 4 times its size; choose a block size near or below the "
                            "matrix's shorter side")

class PermDiag:
    """An ``m x n`` permuted-diagonal matrix of block size ``p``.

    Parameters
    ----------
    shape : (m, n)
        Rows (outputs) and columns (inputs).
    p : int
        Block size, any integer >= 1; ``p = 1`` is a dense matrix.
    k : array (M', N') of int
        Permutation value of every block, in ``[0, p)``.
    q : array (M', N', p)
        Stored weights, float or integer codes. Weights that fall into the zero padding (row
        ``>= m`` or column ``>= n``) must be zero.
    """

    def __init__(self, shape, p, k, q):
        try:
            m, n = (int(d) for d in shape)
        except (TypeError, ValueError):
            raise PermdealError(f"shape must be (m, n), not {shape!r}") from None
        if m < 1 or n < 1:
            raise PermdealError(f"shape must be positive, not {m} x {n}")
        p = integer(p, "block size p", 1)
        self._shape, self._p = (m, n), p
        mb, nb = self.blocks
        k = np.asarray(k)
        q = np.asarray(q)
        if k.shape != (mb, nb):
            raise PermdealError(f"k must have shape {(mb, nb)} for {m} x {n} with p={p}, not {k.shape}")
        if q.shape != (mb, nb, p):
            raise PermdealError(f"q must have shape {(mb, nb, p)} for {m} x {n} with p={p}, not {q.shape}")
        if not np.issubdtype(k.dtype, np.integer):
            raise PermdealError(f"k must be integers, not {k.dtype}")
        if k.size and (k.min() < 0 or k.max() >= p):
            raise PermdealError(f"k values must lie in [0, {p}), found {k.min()}..{k.max()}")
        if not (np.issubdtype(q.dtype, np.integer) or np.issubdtype(q.dtype, np.floating)):
            raise PermdealError(f"q must be integer or float, not {q.dtype}")
        if np.issubdtype(q.dtype, np.floating) and not np.all(np.isfinite(q)):
            raise PermdealError("q holds NaN or infinite weights")
        self.k = k.astype(np.int64)
        self.q = q
        # Padding lies only in the last block-row and the last block-column.
        pad_rows = q[-1, :, m - (mb - 1) * p:]
        last_cols = diag_col(np.arange(p), self.k[:, -1:], p) >= n - (nb - 1) * p  # (M', p)
        if np.any(pad_rows) or np.any(q[:, -1, :][last_cols]):
            raise PermdealError("q has non-zero weights in the zero padding beyond the matrix")

    # -- shape ---------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: outputs and inputs."""
        return self._shape

    @property
    def p(self) -> int:
        """Block size."""
        return self._p

    @property
    def blocks(self) -> tuple[int, int]:
        """``(M', N')``: block-rows and block-columns."""
        m, n = self._shape
        return -(-m // self._p), -(-n // self._p)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(M' p, N' p)``."""
        mb, nb = self.blocks
        return mb * self._p, nb * self._p

    @property
    def cols(self) -> np.ndarray:
        """``(M', N', p)``: column within its block of every stored weight."""
        return diag_col(np.arange(self._p), self.k[..., None], self._p)

    @property
    def stored_mask(self) -> np.ndarray:
        """``(M', N', p)`` bool: which stored weights lie inside the ``m x n`` matrix."""
        m, n = self._shape
        mb, nb = self.blocks
        p = self._p
        rows = np.arange(mb)[:, None, None] * p + np.arange(p)
        cols = np.arange(nb)[None, :, None] * p + self.cols
        return (rows < m) & (cols < n)

    @property
    def n_weights(self) -> int:
        """Stored weights inside the matrix (padding excluded)."""
        return int(np.count_nonzero(self.stored_mask))

    @property
    def max_terms(self) -> int:
        """Most stored weights in one row: the longest dot product (``N'`` or one less)."""
        return int(self.stored_mask.sum(axis=1).max())

    @property
    def index_bits_total(self) -> int:
        """Index storage: ``ceil(log2 p)`` bits per block."""
        mb, nb = self.blocks
        return mb * nb * index_bits(self._p)

    def __repr__(self):
        m, n = self._shape
        return f"PermDiag({m} x {n}, p={self._p}, q.dtype={self.q.dtype})"

    # -- conversion ----------------------------------------------------------------------------

    @classmethod
    def from_dense(cls, W: npt.ArrayLike, p: int) -> PermDiag:
        """Project a dense ``m x n`` matrix onto the permuted-diagonal structure.

        Each block keeps the wrapped diagonal ``k`` of largest energy
        ``sum_r W[r, (r + k) mod p]**2`` (the Frobenius-nearest PD block); ties go to the smaller
        ``k``. Float input keeps its float dtype; anything else becomes ``float64``.
        """
        p = integer(p, "block size p", 1)
        W = np.asarray(W)
        if W.ndim != 2 or 0 in W.shape:
            raise PermdealError(f"from_dense needs a non-empty 2-D matrix, not shape {W.shape}")
        if not np.issubdtype(W.dtype, np.floating):
            W = W.astype(np.float64)
        if not np.all(np.isfinite(W)):
            raise PermdealError("matrix holds NaN or infinite weights")
        m, n = W.shape
        check_block_fit(m, n, p, longer_side=False)
        mb, nb = -(-m // p), -(-n // p)
        if (mb * p, nb * p) != (m, n):
            W = np.pad(W, ((0, mb * p - m), (0, nb * p - n)))
        if p == 1:  # 1 x 1 blocks: the only diagonal is k = 0
            return cls((m, n), 1, np.zeros((m, n), np.int64), W[..., None].copy())
        rows4 = W.reshape(mb, p, nb, p)  # [I, r, J, c], a view
        k = np.empty((mb, nb), np.int64)
        q = np.empty((mb, nb, p), W.dtype)
        step = max(1, _CHUNK // (nb * p * p))  # block-rows per chunk: temporaries stay in cache
        for i in range(0, mb, step):
            rows = rows4[i:i + step]
            # Row r of every block, shifted left by r, puts W[r, (r + k) mod p] at position k.
            energy = np.zeros(rows.shape[:1] + (nb, p), dtype=W.dtype)
            with np.errstate(over="ignore"):  # huge weights: inf energy; quantization refuses them
                for r in range(p):
                    energy += np.roll(np.square(rows[:, r]), -r, axis=-1)
            kc = k[i:i + step] = np.argmax(energy, axis=-1)
            for r in range(p):
                q[i:i + step, :, r] = np.take_along_axis(
                    rows[:, r], diag_col(r, kc, p)[..., None], axis=-1)[..., 0]
        return cls((m, n), p, k, q)

    def to_dense(self) -> np.ndarray:
        """The ``m x n`` matrix, in ``q``'s dtype."""
        mb, nb = self.blocks
        p = self._p
        out = np.zeros((mb, p, nb, p), dtype=self.q.dtype)
        out[np.arange(mb)[:, None, None], np.arange(p), np.arange(nb)[None, :, None],
            self.cols] = self.q
        m, n = self._shape
        return out.reshape(mb * p, nb * p)[:m, :n]

    def with_q(self, q: npt.ArrayLike) -> PermDiag:
        """The same structure (shape, p, k) with other stored weights."""
        return PermDiag(self._shape, self._p, self.k, q)

    def quantize(self, fmt: Fixed) -> tuple[PermDiag, int]:
        """Quantize the stored weights to a :class:`~permdeal.golden.formats.Fixed` format.

        Returns ``(PermDiag of int64 codes, n_saturated)``.
        """
        codes, n_sat = fmt.quantize(self.q)
        return self.with_q(codes), n_sat

    # -- arithmetic ----------------------------------------------------------------------------

    def _product(self, x, dtype):
        """``W @ x`` for ``x`` of shape ``(..., n)``, computed in ``dtype``.

        Each input block is doubled (``[x_J, x_J]``) so that the inputs met by block ``(I, J)``,
        ``x_J[(r + k) mod p]`` for ``r = 0..p-1``, are the window starting at ``k``; block-rows go
        in chunks so that the gathered windows stay in cache.
        """
        x = np.asarray(x)
        m, n = self._shape
        if x.shape[-1:] != (n,):
            raise PermdealError(f"input has {x.shape[-1] if x.ndim else 0} values, the matrix takes {n}")
        mb, nb = self.blocks
        p = self._p
        if x.size == 0:
            return np.zeros(x.shape[:-1] + (m,), dtype)
        x = x.astype(dtype, copy=False)
        if nb * p != n:
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (nb * p - n,), dtype)], axis=-1)
        xr = x.reshape(x.shape[:-1] + (nb, p))
        windows = sliding_window_view(np.concatenate([xr, xr], axis=-1), p, axis=-1)
        q = self.q.astype(dtype, copy=False)
        y = np.empty(x.shape[:-1] + (mb, p), dtype)
        cols = np.arange(nb)
        step = max(1, _CHUNK // (max(1, x[..., 0].size) * nb * p))
        for i in range(0, mb, step):
            met = windows[..., cols, self.k[i:i + step], :]  # (..., chunk, N', p)
            y[..., i:i + step, :] = np.einsum("...ijr,ijr->...ir", met, q[i:i + step])
        return y.reshape(y.shape[:-2] + (-1,))[..., :m]

    def matvec(self, x: npt.ArrayLike) -> np.ndarray:
        """Float ``W @ x`` for ``x`` of shape ``(n,)`` or ``(batch, n)``."""
        return self._product(x, np.float64)

    def int_matvec(self, x: npt.ArrayLike) -> np.ndarray:
        """Exact integer ``W @ x`` of integer codes (``int64``), without write-back.

        ``q`` must hold integer codes (see :meth:`quantize`); ``x`` integer activation codes of
        shape ``(n,)`` or ``(batch, n)``. The result has ``acc_frac = act.frac + weight.frac``
        fraction bits.
        """
        if not np.issubdtype(self.q.dtype, np.integer):
            raise PermdealError("int_matvec needs integer weight codes: quantize the matrix first")
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise PermdealError(f"int_matvec needs integer activation codes, not {x.dtype}")
        return self._product(x, np.int64)
