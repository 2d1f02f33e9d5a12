"""SmartDeal decomposition and its bit-exact weight rebuild (docs/design.md 5.1 and 5.2).

Blocks. Each row ``i`` of an ``m x n`` weight matrix ``W`` (rows are outputs) is zero-padded to
``r * S`` values, ``r = ceil(n / S)``, and read as ``r`` chunks of ``S`` consecutive inputs. ``h``
consecutive chunks of one output row (``rows_per_block``; by default ``h = r``: the whole output row
is one block, as in the authors' code for FC rows) form a block ``A`` (``h x S``); a row needing
``ceil(r / h)`` blocks has its last one padded with zero chunks. Block ``b = i * bpr + c // h``
(``bpr = ceil(r / h)`` blocks per output row), row ``c % h`` of it, column ``j`` holds
``W[i, c * S + j]``.

Decomposition. Every block ``A ~= Ce @ B``: ``B`` dense ``S x S``, ``Ce`` ``h x S`` with every entry
0 or ``+-2**e``, ``e`` in ``[e_min, e_max]``, ``e_max = e_min + 2**E - 1``. :func:`project_pow2`
is the grid: a magnitude at or below ``threshold`` becomes 0, any other the nearest power of two in
the linear domain (between ``2**(t-1)`` and ``2**t`` the boundary is ``0.75 * 2**t``; a value
exactly on it goes to the smaller power, as ``nearestpow2`` of the authors' code does), its exponent
clipped to ``[e_min, e_max]``. The default threshold ``2**(e_min - 1)`` is the linear-nearest
boundary between 0 and the smallest level, so by default the projection is the nearest point of the
grid ``{0, +-2**e_min, ..., +-2**e_max}`` (ties to the smaller magnitude). The default ``e_min``
puts the top level at the projection of the layer's largest ``|W|`` (the first ``Ce`` is ``W``).

:func:`decompose` runs, for all blocks at once::

    B = I, Ce = A
    repeat at most max_iter times:
        Q = project(Ce)                        # the block stops when Q equals the previous Q
        B = least squares of A ~= Q @ B        # the solution nearest the previous B
        Ce = least squares of A ~= Ce @ B      # the solution nearest Q
        Ce[|Ce| <= threshold] = 0
    Ce = project(Ce); B = minimum-norm least squares of A ~= Ce @ B

Singular bases: the least-squares steps use pseudo-inverses (eigenvalues of the ``S x S`` Gram
matrix at or below ``1e-10`` of its largest, i.e. singular values below ``1e-5`` of the largest,
count as zero) and, inside the loop, keep the previous iterate's
component in the null space (``B + pinv(Q'Q) (Q'A - Q'Q B)``), so an unused basis row keeps its old
value instead of dying or becoming NaN. The final refit is minimum-norm: basis rows no ``Ce`` entry
uses are 0, and a block whose ``Ce`` is all zero (the threshold or the exponent range leaves nothing)
has ``B = 0``, rebuilds to zero and is counted in the report (``zero_blocks``; ``lost_blocks`` when its
``A`` was not zero). Nothing here can produce NaN from finite input.

Encoding (:func:`quantize`). A ``Ce`` entry is the ``E + 2``-bit code ``nz << (E + 1) | sign << E |
e_idx`` (bit ``E+1`` = non-zero, bit ``E`` = sign, 1 for negative, bits ``E-1..0`` = ``e_idx``, with
``e = e_min + e_idx``); a zero entry is code 0, and a code with ``nz = 0`` means zero whatever its
other bits. ``B`` becomes ``b_B``-bit codes ``B_int`` with ``B = B_int * 2**-b_frac`` for one
``b_frac`` per layer. :func:`rebuild_int` is the shift-add unit's arithmetic (see there).

This module is longer than most (about 590 lines) on purpose: the decomposition, the encoding and
the bit-exact rebuild follow one derivation (docs/design.md 5.1 and 5.2) and are read together.
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .formats import Fixed, round_shift
from .permdiag import index_bits

#: Elements of a block chunk the vectorized loops work on at once (512 kB of float64, so that the
#: temporaries of the 30 rounds stay in cache).
_CHUNK = 1 << 16
#: Relative eigenvalue cut-off of the ``S x S`` Gram matrices in the least-squares steps.
_RCOND = 1e-10
#: Largest chunk width ``S`` and exponent bits ``E`` accepted, and the range of b_B.
MAX_S = 16
E_RANGE = (1, 5)
B_BITS_RANGE = (2, 16)
#: Weights at or above this magnitude are refused (their Gram matrices could overflow).
MAX_WEIGHT = 2.0 ** 200
#: Largest right or left shift :func:`rebuild_int` may need to align to the weight format.
MAX_ALIGN = 62


# -- the power-of-two grid ------------------------------------------------------------------------

def _nearest_exp(a):
    """Exponent of the power of two nearest ``a >= 0`` in the linear domain, ties to the smaller.

    ``a = f * 2**k`` with ``f`` in ``[0.5, 1)`` (exact, by ``frexp``) lies in ``[2**(k-1), 2**k)``,
    whose boundary ``0.75 * 2**k`` is ``f = 0.75``.
    """
    f, k = np.frexp(a)
    return k.astype(np.int64) - 1 + (f > 0.75)


def project_pow2(c: npt.ArrayLike, e_min: int, E: int = 3,
                 threshold: float | None = None) -> np.ndarray:
    """Project ``c`` onto ``{0} U {+-2**e : e_min <= e <= e_min + 2**E - 1}`` (module docstring).

    ``threshold`` (default ``2**(e_min - 1)``): magnitudes at or below it become 0.
    """
    e_min, E = _check_e(e_min), _check_E(E)
    threshold = _check_threshold(threshold, e_min)
    return _project(np.asarray(c, dtype=np.float64), e_min, e_min + (1 << E) - 1, threshold)


def _project(c, e_min, e_max, threshold):
    a = np.abs(c)
    f, k = np.frexp(a)  # a = f * 2**k: the nearest power is 2**k if f > 0.75, else 2**(k-1)
    k += f > 0.75
    np.clip(k, e_min + 1, e_max + 1, out=k)
    q = np.ldexp(0.5, k)
    np.copysign(q, c, out=q)
    q *= a > threshold
    q += 0.0  # -0.0 -> 0.0
    return q


# -- parameter checks -----------------------------------------------------------------------------

def _check_E(E):
    return integer(E, "exponent bits E", *E_RANGE)


def _check_b_bits(b_bits):
    return integer(b_bits, "B bits b_B", *B_BITS_RANGE)


def _check_e(e_min):
    return integer(e_min, "e_min", -1000, 1000)


def _check_threshold(threshold, e_min):
    if threshold is None:
        return 2.0 ** (e_min - 1)
    if (isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.number))
            or not math.isfinite(threshold) or threshold < 0):
        raise PermdealError(f"threshold must be a finite number >= 0, not {threshold!r}")
    return float(threshold)


def _check_fraction(fraction):
    if (isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, (int, float, np.number))
            or not 0 <= fraction < 1):
        raise PermdealError(f"prune fraction must be a number in [0, 1), not {fraction!r}")
    return float(fraction)


def _check_matrix(W):
    W = np.asarray(W)
    if W.ndim != 2 or 0 in W.shape:
        raise PermdealError(f"SmartDeal needs a non-empty 2-D weight matrix, not shape {W.shape}")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise PermdealError(f"weight matrix must be float or integer, not {W.dtype}")
    W = W.astype(np.float64)
    if not np.all(np.isfinite(W)):
        raise PermdealError(f"weight matrix holds {np.count_nonzero(~np.isfinite(W))} NaN or "
                            "infinite value(s)")
    peak = float(np.max(np.abs(W)))
    if peak >= MAX_WEIGHT:
        raise PermdealError(f"weights up to {peak:g} are too large for SmartDeal (limit 2**200)")
    return W


# -- blocks ---------------------------------------------------------------------------------------

def block_layout(shape: tuple[int, int], S: int = 3,
                 rows_per_block: int | None = None) -> tuple[int, int, int]:
    """``(r, h, bpr)``: chunks per output row, chunks per block, blocks per output row."""
    m, n = shape
    S = integer(S, "chunk width S", 1, MAX_S)
    r = -(-n // S)
    h = r if rows_per_block is None else integer(rows_per_block, "rows_per_block", 1)
    return r, h, -(-r // h)


def to_blocks(W: npt.ArrayLike, S: int = 3, rows_per_block: int | None = None) -> np.ndarray:
    """The blocks ``A`` of ``W``: an array ``(m * bpr, h, S)`` (module docstring)."""
    W = np.asarray(W)
    m, n = W.shape
    r, h, bpr = block_layout(W.shape, S, rows_per_block)
    Wp = np.zeros((m, bpr * h * S), dtype=W.dtype)
    Wp[:, :n] = W
    return Wp.reshape(m * bpr, h, S)


def from_blocks(X: npt.ArrayLike, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_blocks` (any ``S`` and ``h``): the ``m x n`` matrix of blocks ``X``."""
    m, n = shape
    return np.asarray(X).reshape(m, -1)[:, :n]


def prune_mask(W: npt.ArrayLike, fraction: float, group: int = 1, S: int = 3) -> np.ndarray:
    """Structured sparsity: ``(m, r)`` bool, the chunks whose ``Ce`` rows are pruned.

    Outputs go in groups of ``group`` consecutive rows (the last may be smaller). In each group the
    ``floor(fraction * r)`` chunks (``S`` consecutive inputs) of least energy, summed over the
    group's outputs, are pruned for every output of the group (ties: the lower chunk index first),
    so that hardware can skip those inputs for the whole group.
    """
    W = _check_matrix(W)
    fraction = _check_fraction(fraction)
    group = integer(group, "prune group", 1)
    m, n = W.shape
    r, _, _ = block_layout(W.shape, S, None)
    energy = np.square(to_blocks(W, S)).sum(axis=-1)  # (m, r)
    n_groups = -(-m // group)
    per_group = np.zeros((n_groups, r))
    np.add.at(per_group, np.arange(m) // group, energy)
    k = math.floor(fraction * r)
    order = np.argsort(per_group, axis=1, kind="stable")[:, :k]
    pruned = np.zeros((n_groups, r), dtype=bool)
    np.put_along_axis(pruned, order, True, axis=1)
    return pruned[np.arange(m) // group]


# -- least squares --------------------------------------------------------------------------------

def _pinv_sym(G):
    """Pseudo-inverses of stacked symmetric ``S x S`` matrices (eigenvalues <= 1e-10 max: zero)."""
    w, V = np.linalg.eigh(G)
    cut = _RCOND * np.max(np.abs(w), axis=-1, keepdims=True)
    inv = np.where(w > cut, 1.0 / np.where(w > cut, w, 1.0), 0.0)
    return np.einsum("bik,bk,bjk->bij", V, inv, V)


def _gram(X, Y):
    """``X' Y`` for every block."""
    return np.swapaxes(X, 1, 2) @ Y


def _basis_lsq(Q, A, B_prev=None):
    """``B`` minimizing ``||A - Q B||``: the one nearest ``B_prev``, or of minimum norm."""
    G, R = _gram(Q, Q), _gram(Q, A)
    P = _pinv_sym(G)
    if B_prev is None:
        return P @ R
    return B_prev + P @ (R - G @ B_prev)


def _coef_lsq(B, A, C_prev):
    """``Ce`` minimizing ``||A - Ce B||``, the one nearest ``C_prev``."""
    Bt = np.swapaxes(B, 1, 2)
    pinv_B = Bt @ _pinv_sym(B @ Bt)
    return C_prev + (A - C_prev @ B) @ pinv_B


# -- decomposition --------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Decomposition:
    """The SmartDeal form of an ``m x n`` matrix (module docstring for the layout).

    ``ce`` ``(blocks, h, S)`` holds 0 or ``+-2**e`` (float64), ``b`` ``(blocks, S, S)`` the bases;
    ``iterations`` and ``converged`` are per block; ``pruned`` ``(m, r)`` marks chunks pruned by
    structured sparsity (``None`` without pruning).
    """

    shape: tuple
    S: int
    E: int
    rows_per_block: int
    e_min: int
    threshold: float
    ce: np.ndarray
    b: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    pruned: np.ndarray | None = None

    @property
    def e_max(self) -> int:
        return self.e_min + (1 << self.E) - 1

    @property
    def n_blocks(self) -> int:
        return self.ce.shape[0]

    def to_dense(self) -> np.ndarray:
        """The float ``m x n`` rebuild ``Ce @ B``."""
        return from_blocks(self.ce @ self.b, self.shape)


def _top_exponent(W):
    peak = float(np.max(np.abs(W)))
    return int(_nearest_exp(np.float64(peak))) if peak > 0 else 0


def decompose(W: npt.ArrayLike, S: int = 3, E: int = 3, rows_per_block: int | None = None,
              e_min: int | None = None, threshold: float | None = None, max_iter: int = 30,
              prune: float = 0.0, prune_group: int = 1) -> Decomposition:
    """SmartDeal decomposition of the ``m x n`` matrix ``W`` (module docstring).

    ``S`` chunk width, ``E`` exponent bits (``2**E`` levels), ``rows_per_block`` chunks per block
    (default: a whole output row), ``e_min`` the lowest exponent (default: the top level
    ``e_min + 2**E - 1`` is the nearest power of two of ``max |W|``), ``threshold`` the zeroing
    threshold (default ``2**(e_min - 1)``), ``max_iter`` the most alternating rounds. ``prune > 0``
    first prunes ``Ce`` rows in groups of ``prune_group`` outputs (:func:`prune_mask`): their chunks
    of ``A`` are zeroed, so those ``Ce`` rows stay exactly zero.

    The result records per block the rounds run (``iterations``) and whether the projection
    stopped changing (``converged``). Blocks are independent of each other, and the result is
    deterministic: the same input gives the same bits. Vectorized over blocks, in chunks of
    about 64k elements; a random 4096 x 4096 layer takes a few seconds.
    """
    W = _check_matrix(W)
    E = _check_E(E)
    S = integer(S, "chunk width S", 1, MAX_S)
    max_iter = integer(max_iter, "max_iter", 1, 1000)
    r, h, bpr = block_layout(W.shape, S, rows_per_block)
    prune_group = integer(prune_group, "prune group", 1)
    pruned = prune_mask(W, prune, prune_group, S) if _check_fraction(prune) else None
    A = _pruned_blocks(W, S, h, pruned)
    e_min = _top_exponent(A) - (1 << E) + 1 if e_min is None else _check_e(e_min)
    threshold = _check_threshold(threshold, e_min)
    e_max = e_min + (1 << E) - 1

    nb = A.shape[0]
    ce = np.empty_like(A)
    b = np.empty((nb, S, S))
    iters = np.zeros(nb, dtype=np.int64)
    conv = np.zeros(nb, dtype=bool)
    step = max(1, _CHUNK // (h * S))
    for lo in range(0, nb, step):
        sl = slice(lo, lo + step)
        ce[sl], b[sl], iters[sl], conv[sl] = _decompose_chunk(A[sl], e_min, e_max, threshold,
                                                              max_iter)
    return Decomposition((int(W.shape[0]), int(W.shape[1])), S, E, h, e_min, threshold, ce, b,
                         iters, conv, pruned)


def _pruned_blocks(W, S, h, pruned):
    """The blocks of ``W`` with the chunks marked in ``pruned`` (or none) zeroed."""
    A = to_blocks(W, S, h)
    if pruned is None:
        return A
    r, h, bpr = block_layout(W.shape, S, h)
    keep = np.zeros((W.shape[0], bpr * h), dtype=bool)
    keep[:, :r] = ~pruned
    return A * keep.reshape(-1, h, 1)


def _decompose_chunk(A, e_min, e_max, threshold, max_iter):
    nb, h, S = A.shape
    B = np.broadcast_to(np.eye(S), (nb, S, S)).copy()
    C = A.copy()
    Q_prev = np.empty_like(A)
    iters = np.zeros(nb, dtype=np.int64)
    conv = np.zeros(nb, dtype=bool)
    act = np.arange(nb)
    for it in range(max_iter):
        Q = _project(C[act], e_min, e_max, threshold)
        if it:
            moved = np.any(Q != Q_prev[act], axis=(1, 2))
            conv[act[~moved]] = True
            act, Q = act[moved], Q[moved]
            if not act.size:
                break
        Q_prev[act] = Q
        a = A[act]
        Bn = _basis_lsq(Q, a, B[act])
        Cn = _coef_lsq(Bn, a, Q)
        Cn[np.abs(Cn) <= threshold] = 0.0
        B[act], C[act] = Bn, Cn
        iters[act] += 1
    Q = _project(C, e_min, e_max, threshold)
    if act.size:  # blocks still moving after max_iter rounds: did the last round settle them?
        conv[act] = np.all(Q[act] == Q_prev[act], axis=(1, 2))
    return Q, _basis_lsq(Q, A), iters, conv


# -- Ce codes -------------------------------------------------------------------------------------

def encode_ce(ce: npt.ArrayLike, e_min: int, E: int = 3) -> np.ndarray:
    """Codes ``nz << (E+1) | sign << E | e_idx`` (int64) of values 0 or ``+-2**(e_min + e_idx)``."""
    E, e_min = _check_E(E), _check_e(e_min)
    ce = np.asarray(ce, dtype=np.float64)
    nz = ce != 0
    f, k = np.frexp(np.abs(ce))
    e_idx = k.astype(np.int64) - 1 - e_min
    bad = nz & ((f != 0.5) | (e_idx < 0) | (e_idx >= 1 << E))
    if np.any(bad):
        raise PermdealError(f"{np.count_nonzero(bad)} Ce value(s) are not 0 or +-2**e with e in "
                            f"[{e_min}, {e_min + (1 << E) - 1}], e.g. {float(ce[bad][0])!r}")
    code = (1 << (E + 1)) | ((ce < 0).astype(np.int64) << E) | np.where(nz, e_idx, 0)
    return np.where(nz, code, 0).astype(np.int64)


def _fields(codes, E):
    codes = np.asarray(codes, dtype=np.int64)
    return (codes >> (E + 1)) & 1, (codes >> E) & 1, codes & ((1 << E) - 1)


def decode_ce(codes: npt.ArrayLike, e_min: int, E: int = 3) -> np.ndarray:
    """Float values of Ce codes (inverse of :func:`encode_ce`; ``nz = 0`` is zero)."""
    E, e_min = _check_E(E), _check_e(e_min)
    nz, sign, e_idx = _fields(codes, E)
    return np.where(nz == 1, np.where(sign == 1, -1.0, 1.0) * np.ldexp(1.0, e_min + e_idx), 0.0)


# -- quantized form -------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SmartDealCodes:
    """The quantized SmartDeal form of one layer: Ce codes, B codes and the per-layer header.

    ``codes`` ``(blocks, h, S)`` are Ce codes (module docstring), ``b_int`` ``(blocks, S, S)``
    ``b_bits``-bit codes with ``B = b_int * 2**-b_frac``; ``b_saturated`` counts B values that did
    not fit.
    """

    shape: tuple
    S: int
    E: int
    rows_per_block: int
    e_min: int
    b_bits: int
    b_frac: int
    codes: np.ndarray
    b_int: np.ndarray
    b_saturated: int = 0

    def __post_init__(self):
        E, b_bits = _check_E(self.E), _check_b_bits(self.b_bits)
        _check_e(self.e_min)
        integer(self.b_frac, "B scale b_frac", -64, 64)
        m, n = self.shape
        r, h, bpr = block_layout(self.shape, self.S, self.rows_per_block)
        want = (m * bpr, h, self.S)
        codes, b_int = np.asarray(self.codes), np.asarray(self.b_int)
        if codes.shape != want or b_int.shape != (want[0], self.S, self.S):
            raise PermdealError(f"Ce codes must have shape {want} and B codes "
                                f"{(want[0], self.S, self.S)}, not {codes.shape} and {b_int.shape}")
        if not (np.issubdtype(codes.dtype, np.integer) and np.issubdtype(b_int.dtype, np.integer)):
            raise PermdealError("Ce and B codes must be integers")
        if codes.size and (codes.min() < 0 or codes.max() >= 1 << (E + 2)):
            raise PermdealError(f"Ce codes must lie in [0, {1 << (E + 2)}) for E = {E}")
        lo, hi = -(1 << (b_bits - 1)), (1 << (b_bits - 1)) - 1
        if b_int.size and (b_int.min() < lo or b_int.max() > hi):
            raise PermdealError(f"B codes must lie in [{lo}, {hi}] for b_B = {b_bits}")

    @property
    def header(self) -> dict:
        """The per-layer header fields of the manifest."""
        m, n = self.shape
        return {"shape": [m, n], "S": self.S, "rows_per_block": self.rows_per_block,
                "blocks": int(self.codes.shape[0]), "E": self.E, "code_bits": self.E + 2,
                "e_min": self.e_min, "b_bits": self.b_bits, "b_frac": self.b_frac}

    def b_float(self) -> np.ndarray:
        return np.asarray(self.b_int, dtype=np.float64) * 2.0 ** -self.b_frac


def quantize(dec: Decomposition, b_bits: int = 8, b_frac: int | None = None) -> SmartDealCodes:
    """Quantize a :class:`Decomposition`: Ce to codes, B to ``b_bits``-bit codes.

    ``b_frac`` (``B = B_int * 2**-b_frac``) defaults to the most fraction bits with which no B value
    saturates (:meth:`Fixed.fit`); B rounds to nearest (ties up) and saturates, and
    ``b_saturated`` counts the values that did not fit.
    """
    b_bits = _check_b_bits(b_bits)
    if b_frac is None:
        fmt = Fixed.fit(b_bits, dec.b)
    else:
        fmt = Fixed(b_bits, integer(b_frac, "B scale b_frac", -64, 64))
    b_int, n_sat = fmt.quantize(dec.b)
    return SmartDealCodes(dec.shape, dec.S, dec.E, dec.rows_per_block, dec.e_min, b_bits, fmt.frac,
                          encode_ce(dec.ce, dec.e_min, dec.E), b_int, n_sat)


def rebuild_float(enc: SmartDealCodes) -> np.ndarray:
    """Float reference rebuild ``decode(Ce codes) @ (B_int * 2**-b_frac)`` (``m x n``, float64)."""
    return from_blocks(decode_ce(enc.codes, enc.e_min, enc.E) @ enc.b_float(), enc.shape)


def align_shift(enc: SmartDealCodes, weight_fmt: Fixed) -> int:
    """Right shift from the rebuild accumulator (LSB ``2**(e_min - b_frac)``) to ``weight_fmt``."""
    return enc.b_frac - enc.e_min - weight_fmt.frac


def rebuild_int(enc: SmartDealCodes, weight_fmt: Fixed) -> tuple[np.ndarray, int]:
    """Bit-exact rebuild of the weights as codes of ``weight_fmt`` (a :class:`Fixed`).

    For weight ``j`` of row ``c`` of a block: ``acc = sum_k s_k * (B_int[k][j] << e_idx_k)`` over the
    entries ``k`` of the row with ``nz = 1`` (``s_k = -1`` when the sign bit is set; ``e_idx_k =
    e_k - e_min``), in int64: ``acc * 2**(e_min - b_frac)`` is the weight. It is aligned to the weight
    format by ``s = b_frac - e_min - weight_fmt.frac`` (:func:`align_shift`): for ``s > 0`` an
    arithmetic right shift with round-half-up, ``(acc + 2**(s-1)) >> s``; for ``s <= 0`` a left shift
    by ``-s``; then saturation to ``weight_fmt``'s width. Returns ``(codes (m, n) int64,
    n_saturated)``; saturation counts weights inside the matrix only.
    """
    if not isinstance(weight_fmt, Fixed):
        raise PermdealError(f"weight format must be a Fixed(bits, frac), not {weight_fmt!r}")
    s = align_shift(enc, weight_fmt)
    if abs(s) > MAX_ALIGN:
        raise PermdealError(
            f"weight format {weight_fmt} is {s:+d} bits from the rebuilt weights' binary point "
            f"(b_frac {enc.b_frac} - e_min {enc.e_min}); at most {MAX_ALIGN} bits can be shifted")
    nb, h, S = enc.codes.shape
    out = np.empty((nb, h, S), dtype=np.int64)
    n_sat = 0
    step = max(1, _CHUNK // (h * S * S))
    valid = to_blocks(np.ones(enc.shape, dtype=bool), enc.S, enc.rows_per_block)
    for lo in range(0, nb, step):
        sl = slice(lo, lo + step)
        nz, sign, e_idx = _fields(enc.codes[sl], enc.E)
        b_int = np.asarray(enc.b_int[sl], dtype=np.int64)
        # terms[b, c, k, j] = s_k * (B_int[b, k, j] << e_idx[b, c, k]), zero where nz = 0
        terms = b_int[:, None, :, :] << e_idx[..., None]
        terms = np.where(sign[..., None] == 1, -terms, terms) * nz[..., None]
        acc = terms.sum(axis=2)
        w, sat = _align(acc, s, weight_fmt)
        out[sl] = w
        n_sat += int(np.count_nonzero(sat & valid[sl]))
    return from_blocks(out, enc.shape), n_sat


def _align(acc, s, fmt):
    """Shift ``acc`` right by ``s`` (round-half-up) or left by ``-s`` and saturate to ``fmt``."""
    if s > 0:
        v = round_shift(acc, s)
        sat = (v > fmt.max) | (v < fmt.min)
        return np.clip(v, fmt.min, fmt.max), sat
    # Left shift: clip first (to the codes whose shift fits), so nothing can wrap.
    lo, hi = -((-fmt.min) >> -s), fmt.max >> -s
    sat = (acc > hi) | (acc < lo)
    v = np.clip(acc, lo, hi) << np.int64(-s)
    return np.where(acc > hi, fmt.max, np.where(acc < lo, fmt.min, v)), sat


# -- report ---------------------------------------------------------------------------------------

def storage_bits(dec: Decomposition, b_bits: int = 8, p: int = 8,
                 dense_bits: int = 16) -> dict[str, int]:
    """Storage of one layer in bits: dense, permuted-diagonal and the two SmartDeal accountings.

    ``dense``: ``dense_bits`` per weight. ``permdiag``: per ``p x p`` block ``p`` weights of
    ``dense_bits`` plus ``ceil(log2 p)`` index bits. ``smartdeal_authors`` (the authors' code): a
    1-bit occupancy map over every stored Ce element, sign + ``E`` bits per non-zero, ``b_bits`` per
    B element. ``smartdeal_fixed`` (docs/design.md 5.2): ``E + 2`` bits per Ce element plus B.
    """
    b_bits = _check_b_bits(b_bits)
    p = integer(p, "block size p", 1)
    m, n = dec.shape
    n_ce = dec.ce.size
    nnz = int(np.count_nonzero(dec.ce))
    b_total = dec.b.size * b_bits
    pd_blocks = -(-m // p) * -(-n // p)
    return {"dense": m * n * dense_bits,
            "permdiag": pd_blocks * (p * dense_bits + index_bits(p)),
            "smartdeal_authors": n_ce + nnz * (1 + dec.E) + b_total,
            "smartdeal_fixed": n_ce * (dec.E + 2) + b_total}


def report(dec: Decomposition, W: npt.ArrayLike, b_bits: int = 8, p: int = 8,
           enc: SmartDealCodes | None = None) -> dict:
    """Per-layer report of a :class:`Decomposition` of ``W`` (a dict fit for JSON).

    ``rel_error`` is ``||W - Ce @ B||_F / ||W||_F`` (0 for an all-zero ``W``); with ``enc`` (the
    :func:`quantize` of ``dec``) also ``rel_error_quantized`` of :func:`rebuild_float` and the B
    saturations. Storage follows :func:`storage_bits`, ratios are dense (or PD) bits over SmartDeal
    bits.
    """
    W = _check_matrix(W)
    if W.shape != dec.shape:
        raise PermdealError(f"matrix is {W.shape[0]} x {W.shape[1]}, the decomposition "
                            f"{dec.shape[0]} x {dec.shape[1]}")

    def rel(Wr):
        norm = np.linalg.norm(W)
        return float(np.linalg.norm(W - Wr) / norm) if norm else float(np.linalg.norm(Wr))

    nz = dec.ce != 0
    exps = np.frexp(np.abs(dec.ce[nz]))[1].astype(np.int64) - 1
    hist = np.bincount(exps - dec.e_min, minlength=1 << dec.E)
    zero = ~nz.any(axis=(1, 2))
    a_nonzero = _pruned_blocks(W, dec.S, dec.rows_per_block, dec.pruned).any(axis=(1, 2))
    bits = storage_bits(dec, b_bits, p)
    out = {
        "shape": list(dec.shape), "S": dec.S, "E": dec.E, "rows_per_block": dec.rows_per_block,
        "blocks": dec.n_blocks, "e_min": dec.e_min, "e_max": dec.e_max,
        "threshold": dec.threshold,
        "rel_error": rel(dec.to_dense()),
        "ce_elements": int(dec.ce.size), "ce_nonzeros": int(nz.sum()),
        "ce_density": float(nz.mean()),
        "exponents": {"min": int(exps.min()) if exps.size else None,
                      "max": int(exps.max()) if exps.size else None,
                      "histogram": [int(v) for v in hist]},
        "zero_blocks": int(zero.sum()), "lost_blocks": int((zero & a_nonzero).sum()),
        "iterations": {"max": int(dec.iterations.max()), "mean": float(dec.iterations.mean()),
                       "converged_blocks": int(dec.converged.sum())},
        "pruned_chunks": 0 if dec.pruned is None else int(dec.pruned.sum()),
        "b_bits": b_bits, "permdiag_p": p,
        "storage_bits": bits,
        "storage_ratio": {f"{ref}/{sd}": bits[ref] / bits[f"smartdeal_{sd}"]
                          for ref in ("dense", "permdiag") for sd in ("authors", "fixed")},
    }
    if enc is not None:
        out["rel_error_quantized"] = rel(rebuild_float(enc))
        out["b_frac"] = enc.b_frac
        out["b_saturated"] = enc.b_saturated
    return out
