"""Block-circulant matrices (CirCNN, Ding et al. MICRO 2017; ReBoc; docs/references.md, CirCNN).

An ``m x n`` matrix ``W`` (``y = W x``) is tiled into ``M' = ceil(m/k)`` block-rows and
``N' = ceil(n/k)`` block-columns of ``k x k`` blocks. Every block is circulant and is stored as its
first column ``c[I, J, 0..k-1]``::

    W[I*k + r, J*k + s] = c[I, J, (r - s) mod k]

so each stored value fills one wrapped diagonal of its block, and ``C_IJ x_J`` is the circular
convolution ``c_IJ * x_J = irfft(rfft(c_IJ) * rfft(x_J))``. :func:`diag_index` is the one statement
of this convention; everything else derives from it.

Non-divisible sides: ``W`` is the top-left ``m x n`` part of the padded ``M'k x N'k``
block-circulant matrix. Padded inputs are zero and padded outputs are dropped, so a stored value
counts only where its diagonal meets the matrix; a value whose whole diagonal lies in the padding
(possible only in a last block with at most ``k`` rows plus columns inside) must be zero.

Fit rule (as :class:`~permdeal.golden.permdiag.PermDiag`): ``k`` may not exceed the longer side
of the matrix, and the padded matrix may not have more than ``max(4 m n, 2**24)`` elements.

The Frobenius-nearest block-circulant matrix (:meth:`BlockCirculant.from_dense`) takes on every
wrapped diagonal the mean of the entries of ``W`` on it: ``c[d] = (1/k) sum_t B[(t+d) mod k][t]``
for a whole block; in a block cut by the padding the mean is over the entries inside the matrix
(the padded zeros are not part of ``W``). :func:`diagonal_sums` (the adjoint of the expansion) is
both the numerator of that mean and the training gradient ``dL/dc`` of ``dL/dW``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import Fixed
from permdeal.golden.permdiag import check_block_fit


def diag_index(r: int | np.ndarray, s: int | np.ndarray, k: int) -> int | np.ndarray:
    """Index into the first column of the value at row ``r``, column ``s`` of a circulant block."""
    return (r - s) % k


def _check_shape(shape):
    try:
        m, n = (int(d) for d in shape)
    except (TypeError, ValueError):
        raise PermdealError(f"shape must be (m, n), not {shape!r}") from None
    if m < 1 or n < 1:
        raise PermdealError(f"shape must be positive, not {m} x {n}")
    return m, n


def _check_fit(m, n, k):
    """Refuse a block size ``k`` that does not fit an ``m x n`` matrix (module docstring)."""
    check_block_fit(m, n, k, "k")


def _pad(W, mb, nb, k):
    m, n = W.shape
    if (mb * k, nb * k) == (m, n):
        return W
    return np.pad(W, ((0, mb * k - m), (0, nb * k - n)))


def diagonal_sums(W: npt.ArrayLike, k: int) -> np.ndarray:
    """Sum of every wrapped diagonal of every ``k x k`` block of ``W`` (zero-padded).

    Returns ``S`` of shape ``(M', N', k)`` with ``S[I, J, d] = sum_t B_IJ[(t + d) mod k][t]``: the
    adjoint of the expansion ``c -> W`` (``<expand(c), W> = <c, S>``), so it is also ``dL/dc`` for
    ``dL/dW``. Float ``W`` keeps its dtype, anything else sums in ``int64``. Loops only over the
    ``k`` columns ``t`` of a block.
    """
    k = integer(k, "block size k", 1)
    W = np.asarray(W)
    if W.ndim != 2:
        raise PermdealError(f"diagonal_sums needs a 2-D matrix, not shape {W.shape}")
    m, n = W.shape
    mb, nb = -(-m // k), -(-n // k)
    B = _pad(W, mb, nb, k).reshape(mb, k, nb, k)  # [I, r, J, s], a view
    S = np.zeros((mb, k, nb), W.dtype if np.issubdtype(W.dtype, np.floating) else np.int64)
    for t in range(k):
        # Column t of every block, rolled up by t, puts B[(t + d) mod k][t] at position d.
        S += np.roll(B[..., t], -t, axis=1)
    return S.transpose(0, 2, 1)


def diagonal_counts(shape: tuple[int, int], k: int) -> np.ndarray:
    """``(M', N', k)`` int64: how many entries of the ``m x n`` matrix lie on each diagonal.

    ``k`` in a whole block. A block with ``a`` rows and ``b`` columns inside the matrix has
    ``f(d) + f(d - k)`` entries on diagonal ``d``, where ``f(delta) = max(0, min(a, b + delta) -
    max(0, delta))`` counts the pairs ``r < a``, ``s < b`` with ``r - s = delta``.
    """
    m, n = _check_shape(shape)
    k = integer(k, "block size k", 1)
    mb, nb = -(-m // k), -(-n // k)
    a = np.minimum(k, m - k * np.arange(mb))[:, None, None]
    b = np.minimum(k, n - k * np.arange(nb))[None, :, None]
    d = np.arange(k)

    def f(delta):
        return np.maximum(0, np.minimum(a, b + delta) - np.maximum(0, delta))

    return (f(d) + f(d - k)).astype(np.int64)


def used_mask(shape: tuple[int, int], k: int) -> np.ndarray:
    """``(M', N', k)`` bool: which first-column values have a diagonal that meets the matrix."""
    return diagonal_counts(shape, k) > 0


class BlockCirculant:
    """An ``m x n`` block-circulant matrix of block size ``k`` (module docstring).

    Parameters
    ----------
    shape : (m, n)
        Rows (outputs) and columns (inputs).
    k : int
        Block size, any integer >= 1 that fits (module docstring); ``k = 1`` is a dense matrix.
    c : array (M', N', k)
        First column of every block, float or integer codes. Values whose diagonal lies wholly in
        the zero padding must be zero.
    """

    def __init__(self, shape, k, c):
        m, n = _check_shape(shape)
        k = integer(k, "block size k", 1)
        _check_fit(m, n, k)
        self._shape, self._k = (m, n), k
        c = np.asarray(c)
        if c.shape != self.blocks + (k,):
            raise PermdealError(f"c must have shape {self.blocks + (k,)} for {m} x {n} with k={k}, "
                                f"not {c.shape}")
        if not (np.issubdtype(c.dtype, np.integer) or np.issubdtype(c.dtype, np.floating)):
            raise PermdealError(f"c must be integer or float, not {c.dtype}")
        if np.issubdtype(c.dtype, np.floating) and not np.all(np.isfinite(c)):
            raise PermdealError("c holds NaN or infinite weights")
        if np.any(c[~used_mask((m, n), k)]):
            raise PermdealError("c has non-zero weights whose diagonal lies wholly in the zero "
                                "padding beyond the matrix")
        self.c = c

    # -- shape ---------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: outputs and inputs."""
        return self._shape

    @property
    def k(self) -> int:
        """Block size."""
        return self._k

    @property
    def blocks(self) -> tuple[int, int]:
        """``(M', N')``: block-rows and block-columns."""
        m, n = self._shape
        return -(-m // self._k), -(-n // self._k)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(M' k, N' k)``."""
        mb, nb = self.blocks
        return mb * self._k, nb * self._k

    @property
    def n_stored(self) -> int:
        """First-column values stored: ``M' N' k`` (docs/references.md's parameter count)."""
        return self.c.size

    @property
    def n_weights(self) -> int:
        """First-column values that reach the matrix (``n_stored`` less those wholly in padding)."""
        return int(np.count_nonzero(used_mask(self._shape, self._k)))

    @property
    def compression(self) -> float:
        """Dense weights per stored weight, ``m n / n_weights`` (``k`` when ``k`` divides both
        sides)."""
        m, n = self._shape
        return m * n / self.n_weights

    def storage_bits(self, weight_bits: int) -> int:
        """Weight storage in bits at ``weight_bits`` per value: ``n_weights * weight_bits``.

        No index is stored: the structure is implicit. (CirCNN keeps ``rfft(c)`` instead, which by
        Hermitian symmetry is again ``k`` real numbers per block.)
        """
        return self.n_weights * integer(weight_bits, "weight_bits", 1, 64)

    def __repr__(self):
        m, n = self._shape
        return f"BlockCirculant({m} x {n}, k={self._k}, c.dtype={self.c.dtype})"

    # -- conversion ----------------------------------------------------------------------------

    @classmethod
    def from_dense(cls, W: npt.ArrayLike, k: int) -> BlockCirculant:
        """The Frobenius-nearest block-circulant matrix of block size ``k`` to the dense ``W``.

        Every stored value is the mean of ``W`` over the entries of its wrapped diagonal that lie
        inside the matrix (0 when none do). Float input keeps its float dtype; anything else
        becomes ``float64``.
        """
        k = integer(k, "block size k", 1)
        W = np.asarray(W)
        if W.ndim != 2 or 0 in W.shape:
            raise PermdealError(f"from_dense needs a non-empty 2-D matrix, not shape {W.shape}")
        if not np.issubdtype(W.dtype, np.floating):
            if not np.issubdtype(W.dtype, np.number) or np.issubdtype(W.dtype, np.complexfloating):
                raise PermdealError(f"from_dense needs a real matrix, not {W.dtype}")
            W = W.astype(np.float64)
        if not np.all(np.isfinite(W)):
            raise PermdealError("matrix holds NaN or infinite weights")
        m, n = W.shape
        _check_fit(m, n, k)
        counts = diagonal_counts((m, n), k)
        with np.errstate(over="ignore"):  # huge weights: inf sums, refused by the constructor
            sums = diagonal_sums(W, k)
        c = np.where(counts > 0, sums / np.maximum(counts, 1), 0).astype(W.dtype, copy=False)
        return cls((m, n), k, c)

    def to_dense(self) -> np.ndarray:
        """The ``m x n`` matrix, in ``c``'s dtype."""
        mb, nb = self.blocks
        k = self._k
        idx = diag_index(np.arange(k)[:, None], np.arange(k)[None, :], k)  # (r, s)
        full = self.c[:, :, idx]  # [I, J, r, s]
        m, n = self._shape
        return full.transpose(0, 2, 1, 3).reshape(mb * k, nb * k)[:m, :n]

    def with_c(self, c: npt.ArrayLike) -> BlockCirculant:
        """The same shape and block size with other first columns."""
        return BlockCirculant(self._shape, self._k, c)

    def quantize(self, fmt: Fixed) -> tuple[BlockCirculant, int]:
        """Quantize the first columns to a :class:`~permdeal.golden.formats.Fixed` format.

        Returns ``(BlockCirculant of int64 codes, n_saturated)``.
        """
        codes, n_sat = fmt.quantize(self.c)
        return self.with_c(codes), n_sat

    # -- arithmetic ----------------------------------------------------------------------------

    def _input(self, x, integer_codes=False):
        """``x`` checked: shape ``(n,)`` or ``(batch, n)``, numbers, finite."""
        x = np.asarray(x)
        n = self._shape[1]
        if x.ndim not in (1, 2):
            raise PermdealError(f"x must have shape ({n},) or (batch, {n}), not {x.shape}")
        if x.shape[-1] != n:
            raise PermdealError(f"x has {x.shape[-1]} values, the matrix takes {n}")
        if integer_codes:
            if not np.issubdtype(x.dtype, np.integer):
                raise PermdealError(f"int_matvec needs integer activation codes x, not {x.dtype}")
        else:
            if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
                raise PermdealError(f"x must be real numbers, not {x.dtype}")
            if not np.all(np.isfinite(x)):
                raise PermdealError("x holds NaN or infinite values")
        return x

    def matvec(self, x: npt.ArrayLike) -> np.ndarray:
        """Float ``W @ x`` by FFT, for ``x`` of shape ``(n,)`` or ``(batch, n)``.

        Per block-row ``I``: ``y_I = irfft(sum_J rfft(c_IJ) * rfft(x_J))`` (one complex matrix
        product per frequency), then padded outputs are dropped.
        """
        x = self._input(x).astype(np.float64, copy=False)
        m, n = self._shape
        mb, nb = self.blocks
        k = self._k
        batch = x.reshape(-1, n)
        xb = np.pad(batch, ((0, 0), (0, nb * k - n))).reshape(len(batch), nb, k)
        X = np.fft.rfft(xb, axis=-1)                          # (batch, N', f)
        Cf = np.fft.rfft(self.c.astype(np.float64), axis=-1)  # (M', N', f)
        Y = Cf.transpose(2, 0, 1) @ X.transpose(2, 1, 0)      # (f, M', N') @ (f, N', batch)
        y = np.fft.irfft(Y.transpose(2, 1, 0), n=k, axis=-1)  # (batch, M', k)
        return y.reshape(len(batch), mb * k)[:, :m].reshape(x.shape[:-1] + (m,))

    def expanded_matvec(self, x: npt.ArrayLike) -> np.ndarray:
        """Float ``W @ x`` with the expanded matrix :meth:`to_dense` (the reference for the FFT)."""
        x = self._input(x).astype(np.float64, copy=False)
        return x @ self.to_dense().astype(np.float64).T

    def int_matvec(self, x: npt.ArrayLike) -> np.ndarray:
        """Exact integer ``W @ x`` of integer codes (``int64``) on the expanded matrix.

        ``c`` must hold integer codes (see :meth:`quantize`); ``x`` integer activation codes of
        shape ``(n,)`` or ``(batch, n)``. Refused if a sum could exceed ``int64``. The result has
        ``act.frac + weight.frac`` fraction bits, as :meth:`PermDiag.int_matvec`.
        """
        if not np.issubdtype(self.c.dtype, np.integer):
            raise PermdealError("int_matvec needs integer weight codes c: quantize the matrix first")
        x = self._input(x, integer_codes=True)
        if x.size and self.c.size:
            bound = (max(abs(int(self.c.min())), abs(int(self.c.max())))
                     * max(abs(int(x.min())), abs(int(x.max()))) * self._shape[1])
            if bound > np.iinfo(np.int64).max:
                raise PermdealError(f"int_matvec: sums of up to {bound} do not fit int64; use "
                                    "narrower weight or activation codes")
        return x.astype(np.int64) @ self.to_dense().astype(np.int64).T
