"""EIE's compressed format (Han et al., ISCA 2016; docs/references.md, EIE): magnitude pruning, weight
sharing, interleaved CSC, and the bit-exact matrix-vector product.

Pruning (:func:`prune`). Of an ``m x n`` matrix ``W`` (``y = W x``) the ``k = round(density * m n)``
entries of largest ``|W|`` are kept (round half up, at least 1), every other is set to zero. Ties
at the threshold are broken by position: the first in row-major order are kept.

Weight sharing (:func:`share_weights`). A codebook of ``K = 2**codebook_bits`` entries; **index 0
is reserved for the weight zero** (the padding entries of the CSC format below carry index 0, and
EIE's 4-bit weight field has no other way to say "zero"), so the non-zero weights share the
``K - 1`` other entries (15 for EIE's 4 bits). These are the centroids of a 1-D k-means of the
non-zero weights (scikit-learn ``KMeans`` with Deep Compression's linear initialization,
``K - 1`` points evenly spaced between the smallest and the largest weight, ``n_init=1``, fixed
``random_state``), sorted ascending, then rounded to a ``weight_bits``-bit fixed-point format
fitted to their range (:meth:`Fixed.fit`). Every non-zero weight takes the index of the nearest
rounded centroid (ties to the smaller value). With no more distinct non-zero weights than
``K - 1`` the codebook is those values themselves (k-means would only find them again). A centroid
may round to zero; its weights are then stored but act as zeros.

Interleaved CSC (:func:`encode`). Row ``i`` lies on PE ``i mod N`` as its local row ``i div N``.
Every PE stores, column by column, the entries of its slice of each column, top to bottom: an
entry is ``(v, z)``, ``v`` the codebook index, ``z`` the number of zero rows of the slice since the
previous stored entry (or since the top). ``z`` has ``index_bits`` bits, so a gap ``g`` larger than
``R = 2**index_bits - 1`` is bridged by ``g div (R + 1)`` padding entries ``(0, R)``, each standing
for ``R`` zeros and a stored zero, before the non-zero's own entry ``(v, g mod (R + 1))``: entry
``e`` of a slice sits at local row ``sum_{e' <= e} (z_e' + 1) - 1``. Zeros after the last non-zero
of a slice cost nothing. PE ``k``'s pointers ``p_k[0..n]`` delimit its column slices: column ``j``
is its entries ``p_k[j] .. p_k[j+1] - 1``.

Arithmetic (:meth:`EieMatrix.matvec_int`). Activation codes (``act_bits``-bit integers) times the
codebook's integer weight codes, accumulated exactly in ``int64``: the result has
``act.frac + weight.frac`` fraction bits, as in golden.formats. Each PE computes its own rows from
its own entries, only for the columns whose activation is non-zero (EIE skips zero activations).
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .formats import Fixed
from .workloads import EIE

#: Activation width: EIE's arithmetic is 16-bit throughout (docs/references.md).
ACT_BITS = EIE["weight_bits"]
#: Widest codebook index and relative row index accepted (each stored in one byte here).
MAX_FIELD_BITS = 8


def nonzero_count(density: float, size: int) -> int:
    """``round(density * size)``, half up, at least 1: the non-zeros a density keeps."""
    return max(1, int(math.floor(density * size + 0.5)))


def _check_density(density, what="density"):
    if (isinstance(density, (bool, np.bool_)) or not isinstance(density, (int, float, np.number))
            or not (0 < float(density) <= 1)):
        raise PermdealError(f"{what} must be a number in (0, 1], not {density!r}")
    return float(density)


def _check_matrix(W, what="W"):
    W = np.asarray(W)
    if W.ndim != 2 or W.size == 0:
        raise PermdealError(f"{what} must be a non-empty 2-D matrix (outputs x inputs), "
                            f"not shape {W.shape}")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise PermdealError(f"{what} must be numeric, not {W.dtype}")
    if not np.all(np.isfinite(W)):
        raise PermdealError(f"{what} holds NaN or infinite values")
    return W


# -- pruning and weight sharing -------------------------------------------------------------------

def prune(W: npt.ArrayLike, density: float) -> np.ndarray:
    """Magnitude pruning of ``W`` (outputs x inputs) to ``density``: the ``round(density * size)``
    largest ``|W|`` kept (ties by row-major position), the rest zeroed. Returns a float64 copy.

    If ``W`` has fewer non-zero entries than that, the kept zeros stay zero.
    """
    W = _check_matrix(W)
    density = _check_density(density)
    a = np.abs(W.astype(np.float64)).ravel()
    k = nonzero_count(density, a.size)
    t = np.partition(a, a.size - k)[a.size - k]         # the k-th largest magnitude
    keep = a > t
    keep[np.flatnonzero(a == t)[:k - int(np.count_nonzero(keep))]] = True
    return np.where(keep.reshape(W.shape), W.astype(np.float64), 0.0)


@dataclass(frozen=True, eq=False)
class Codebook:
    """Shared weights: index ``i`` stands for ``codes[i] * 2**-fmt.frac``; ``codes[0] == 0``.

    ``codes`` has at most ``2**bits`` entries (fewer when the layer has fewer distinct weights).
    """

    codes: np.ndarray
    fmt: Fixed
    bits: int

    @property
    def values(self) -> np.ndarray:
        """The shared weights as floats."""
        return self.fmt.to_float(self.codes)


def share_weights(w: npt.ArrayLike, codebook_bits: int = EIE["codebook_bits"],
                  weight_bits: int = EIE["weight_bits"],
                  random_state: int = 0) -> tuple[Codebook, np.ndarray]:
    """Weight sharing of the non-zero weights ``w`` (any shape, float): ``(codebook, idx)``.

    ``idx`` (int64, the shape of ``w``) is each weight's codebook index, in ``1 .. K-1``; see the
    module docstring for the k-means and the rounding.
    """
    bits = integer(codebook_bits, "codebook bits (codebook_bits)", 1, MAX_FIELD_BITS)
    weight_bits = integer(weight_bits, "weight bits (weight_bits)", 2, 32)
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise PermdealError("weights to share hold NaN or infinite values")
    if np.any(w == 0):
        raise PermdealError("share_weights takes the non-zero weights only (index 0 is the zero)")
    flat = w.ravel()
    distinct = np.unique(flat)
    n_clusters = (1 << bits) - 1
    if distinct.size <= n_clusters:
        centroids = distinct
    else:
        from sklearn.cluster import KMeans
        init = np.linspace(flat.min(), flat.max(), n_clusters)[:, None]
        km = KMeans(n_clusters=n_clusters, init=init, n_init=1, random_state=random_state)
        centroids = np.sort(km.fit(flat[:, None]).cluster_centers_[:, 0])
    fmt = Fixed.fit(weight_bits, centroids)
    q = fmt.quantize(centroids)[0]
    book = Codebook(np.concatenate([[0], q]).astype(np.int64), fmt, bits)
    if q.size == 0:
        return book, np.zeros(w.shape, np.int64)
    qv = fmt.to_float(q)
    idx = np.searchsorted((qv[:-1] + qv[1:]) / 2, flat, side="left") + 1
    return book, idx.reshape(w.shape).astype(np.int64)


# -- interleaved CSC ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class InterleavedCSC:
    """The interleaved CSC form of an ``m x n`` index matrix on ``n_pe`` PEs (module docstring).

    ``v`` and ``z`` (uint8) hold every PE's entries, PE 0's first, each PE's column by column;
    ``ptr`` (int64, ``n_pe * n + 1``) is where slice ``(k, j)`` begins, at ``ptr[k * n + j]``:
    PE ``k``'s own pointers are :meth:`pointers` ``[k]``.
    """

    shape: tuple
    n_pe: int
    index_bits: int
    codebook_bits: int
    v: np.ndarray
    z: np.ndarray
    ptr: np.ndarray

    @property
    def entries(self) -> int:
        """Stored entries, padding included."""
        return int(self.v.size)

    @property
    def padding(self) -> int:
        """Padding entries (index 0; real entries never have it)."""
        return int(np.count_nonzero(self.v == 0))

    @property
    def slice_entries(self) -> np.ndarray:
        """``(n_pe, n)``: entries of every PE's slice of every column, padding included."""
        return np.diff(self.ptr).reshape(self.n_pe, self.shape[1])

    @property
    def slice_padding(self) -> np.ndarray:
        """``(n_pe, n)``: padding entries of every slice."""
        g = np.repeat(np.arange(self.ptr.size - 1), np.diff(self.ptr))
        return np.bincount(g[self.v == 0], minlength=self.ptr.size - 1).reshape(
            self.n_pe, self.shape[1])

    @property
    def pe_entries(self) -> np.ndarray:
        """``(n_pe,)``: entries each PE stores."""
        return self.slice_entries.sum(axis=1)

    def pointers(self) -> np.ndarray:
        """``(n_pe, n + 1)``: every PE's column pointers into its own entry memory."""
        n = self.shape[1]
        starts = self.ptr[np.arange(self.n_pe + 1) * n]
        p = np.empty((self.n_pe, n + 1), np.int64)
        p[:, :n] = self.ptr[:-1].reshape(self.n_pe, n)
        p[:, n] = starts[1:]
        return p - starts[:-1, None]

    def coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pe, row, col)`` of every entry: its PE, global row ``local * n_pe + pe``, column."""
        n = self.shape[1]
        g = np.repeat(np.arange(self.ptr.size - 1), np.diff(self.ptr))
        step = np.cumsum(self.z.astype(np.int64) + 1)
        before = np.concatenate([[0], step])[self.ptr[:-1]]      # steps before each slice
        local = step - 1 - before[g]
        pe = g // n
        return pe, local * self.n_pe + pe, g % n


def encode(shape: tuple[int, int], rows: npt.ArrayLike, cols: npt.ArrayLike, idx: npt.ArrayLike,
           n_pe: int = EIE["n_pe"], index_bits: int = EIE["index_bits"],
           codebook_bits: int = EIE["codebook_bits"]) -> InterleavedCSC:
    """Interleaved CSC of the ``shape = (m, n)`` index matrix whose non-zeros are ``idx`` at
    ``(rows, cols)`` (any order, no repeats; indices in ``1 .. 2**codebook_bits - 1``)."""
    try:
        m, n = (int(d) for d in shape)
    except (TypeError, ValueError):
        raise PermdealError(f"shape must be (m, n), not {shape!r}") from None
    if m < 1 or n < 1:
        raise PermdealError(f"shape must be positive, not {m} x {n}")
    n_pe = integer(n_pe, "PE count (n_pe)", 1)
    index_bits = integer(index_bits, "index bits (index_bits)", 1, MAX_FIELD_BITS)
    codebook_bits = integer(codebook_bits, "codebook bits (codebook_bits)", 1, MAX_FIELD_BITS)
    rows, cols, idx = (np.asarray(a).ravel() for a in (rows, cols, idx))
    if not rows.size == cols.size == idx.size:
        raise PermdealError(f"rows, cols and idx must have one length, not {rows.size}, "
                            f"{cols.size}, {idx.size}")
    for a, what, hi in ((rows, "rows", m - 1), (cols, "cols", n - 1),
                        (idx, "idx", (1 << codebook_bits) - 1)):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise PermdealError(f"{what} must be integers, not {a.dtype}")
        lo = 1 if what == "idx" else 0
        if a.size and (a.min() < lo or a.max() > hi):
            raise PermdealError(f"{what} must lie in [{lo}, {hi}], found {a.min()}..{a.max()}")
    per_pe = -(-m // n_pe)                                 # local rows of PE 0, the most
    key = ((rows.astype(np.int64) % n_pe) * n + cols) * per_pe + rows // n_pe
    order = np.argsort(key, kind="stable")
    key, idx = key[order], idx[order]
    if np.any(key[1:] == key[:-1]):
        raise PermdealError("rows and cols name one position twice")
    g, local = key // per_pe, key % per_pe                 # slice k*n + j, local row
    prev = np.concatenate([[-1], local[:-1]])
    prev[np.concatenate([[True], g[1:] != g[:-1]])] = -1
    gap = local - prev - 1                                 # zeros before each non-zero
    run = 1 << index_bits                                  # R + 1 rows per padding entry
    pos = np.cumsum(gap // run + 1) - 1                    # the non-zeros' own entries
    total = int(pos[-1]) + 1 if pos.size else 0
    v = np.zeros(total, np.uint8)
    z = np.full(total, run - 1, np.uint8)
    v[pos], z[pos] = idx, gap % run
    ptr = np.zeros(n_pe * n + 1, np.int64)
    last = np.concatenate([g[1:] != g[:-1], [True]]) if g.size else np.zeros(0, bool)
    ptr[g[last] + 1] = pos[last] + 1
    return InterleavedCSC((m, n), n_pe, index_bits, codebook_bits, v, z,
                          np.maximum.accumulate(ptr))


def encode_dense(idx: npt.ArrayLike, n_pe: int = EIE["n_pe"], index_bits: int = EIE["index_bits"],
                 codebook_bits: int = EIE["codebook_bits"]) -> InterleavedCSC:
    """Interleaved CSC of a dense index matrix ``idx`` (0 = zero weight)."""
    idx = _check_matrix(idx, "index matrix")
    rows, cols = np.nonzero(idx)
    return encode(idx.shape, rows, cols, idx[rows, cols], n_pe, index_bits, codebook_bits)


def decode(csc: InterleavedCSC) -> np.ndarray:
    """The dense index matrix (int64, 0 = zero weight) an :class:`InterleavedCSC` stores."""
    _, rows, cols = csc.coords()
    real = csc.v != 0
    if np.any(rows[real] >= csc.shape[0]):
        raise PermdealError(f"CSC entries lie beyond the matrix's {csc.shape[0]} rows")
    out = np.zeros(csc.shape, np.int64)
    out[rows[real], cols[real]] = csc.v[real]
    return out


# -- the compressed layer -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EieMatrix:
    """A layer in EIE's format: its interleaved CSC and its codebook."""

    csc: InterleavedCSC
    codebook: Codebook

    @property
    def shape(self) -> tuple[int, int]:
        return self.csc.shape

    def to_int(self) -> np.ndarray:
        """The dense integer weight codes (``codebook.fmt``) the format stands for."""
        return self.codebook.codes[decode(self.csc)]

    def to_float(self) -> np.ndarray:
        """The dense float weights the format stands for."""
        return self.codebook.fmt.to_float(self.to_int())

    def _products(self, x, weights):
        """Per-entry ``(row, weight[v] * x[col])`` over the columns with ``x != 0``."""
        _, rows, cols = self.csc.coords()
        use = (x[cols] != 0) & (self.csc.v != 0)
        return rows[use], weights[self.csc.v[use]] * x[cols[use]]

    def matvec_int(self, x: npt.ArrayLike, act_bits: int = ACT_BITS) -> np.ndarray:
        """``W x`` exactly (int64) for activation codes ``x`` of ``act_bits`` bits, PE by PE from
        the CSC entries; the result has ``act.frac + codebook.fmt.frac`` fraction bits."""
        act = Fixed(integer(act_bits, "activation bits (act_bits)", 2, 32), 0)
        x = self._check_x(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise PermdealError(f"x must be integer activation codes, not {x.dtype}")
        if x.size and (x.min() < act.min or x.max() > act.max):
            raise PermdealError(f"x codes must fit {act_bits} bits, [{act.min}, {act.max}]; "
                                f"found {x.min()}..{x.max()}")
        w = self.codebook.codes
        bound = int(np.abs(w).max()) * max(abs(act.min), act.max) * self.shape[1]
        if bound >= 1 << 63:
            raise PermdealError(f"a {self.shape[1]}-term sum of {act_bits}-bit activations and "
                                f"{self.codebook.fmt.bits}-bit weights may overflow int64")
        rows, prod = self._products(x.astype(np.int64), w)
        y = np.zeros(self.shape[0], np.int64)
        np.add.at(y, rows, prod)
        return y

    def matvec_float(self, x: npt.ArrayLike) -> np.ndarray:
        """``W x`` in float64 with the shared (rounded) weights, from the CSC entries."""
        x = self._check_x(x).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise PermdealError("x holds NaN or infinite values")
        rows, prod = self._products(x, self.codebook.values)
        return np.bincount(rows, weights=prod, minlength=self.shape[0])

    def _check_x(self, x):
        x = np.asarray(x)
        if x.shape != (self.shape[1],):
            raise PermdealError(f"x must be a vector of the layer's {self.shape[1]} inputs, "
                                f"not shape {x.shape}")
        return x

    def storage(self) -> dict[str, int]:
        """Storage in bits (dict): entries ``(codebook_bits + index_bits)`` each, padding
        included; ``n + 1`` pointers per PE, each wide enough for its largest PE's entry count;
        one copy of the codebook (every PE holds one). ``index_overhead`` is what is not a real
        weight's index: every ``z`` field, the padding entries' ``v`` fields and the pointers."""
        c = self.csc
        entry_bits = c.codebook_bits + c.index_bits
        ptr_width = max(1, int(c.pe_entries.max()).bit_length())
        ptr_bits = c.n_pe * (c.shape[1] + 1) * ptr_width
        book = (1 << c.codebook_bits) * self.codebook.fmt.bits
        entries = c.entries * entry_bits
        total = entries + ptr_bits + book
        dense = c.shape[0] * c.shape[1] * self.codebook.fmt.bits
        return {"entries": c.entries, "padding": c.padding, "entry_bits": entry_bits,
                "entry_storage_bits": entries, "pointer_width": ptr_width,
                "pointer_bits": ptr_bits, "codebook_storage_bits": book, "total_bits": total,
                "index_overhead_bits": c.entries * c.index_bits + c.padding * c.codebook_bits
                + ptr_bits,
                "dense_bits": dense, "compression": dense / total}


def compress(W: npt.ArrayLike, density: float, n_pe: int = EIE["n_pe"],
             codebook_bits: int = EIE["codebook_bits"], index_bits: int = EIE["index_bits"],
             weight_bits: int = EIE["weight_bits"], random_state: int = 0) -> EieMatrix:
    """EIE's whole pipeline on a float matrix ``W``: :func:`prune` to ``density``,
    :func:`share_weights`, :func:`encode` on ``n_pe`` PEs. Returns an :class:`EieMatrix`."""
    Wp = prune(W, density)
    rows, cols = np.nonzero(Wp)
    book, idx = share_weights(Wp[rows, cols], codebook_bits, weight_bits, random_state)
    return EieMatrix(encode(Wp.shape, rows, cols, idx, n_pe, index_bits, codebook_bits), book)
