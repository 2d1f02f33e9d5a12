"""ReRAM crossbar mapping: a functional matrix-vector product and crossbar counts (ISAAC, PUMA,
NeuroSim and MNSIM conventions; docs/references.md "Crossbar mapping" and "ReBoc").

A layer ``y = W x`` (``W`` is ``m x n``: ``m`` outputs, ``n`` inputs) is stored with inputs on the
rows (wordlines) and outputs on the columns (bitlines) of ``R x C`` crossbars:

- **Weights** are signed integer codes in sign-magnitude range ``|w| <= 2^(b-1) - 1`` for
  ``b = weight_bits`` (the ``b - 1`` magnitude bits are what the cells hold). Positive and negative
  weights go to separate arrays (polarity ``P = 2``, as MNSIM): ``W = W+ - W-``. Each magnitude is
  bit-sliced over ``S = ceil((b - 1) / cell_bits)`` cells, cell ``s`` holding bits
  ``[s*cell_bits, (s+1)*cell_bits)``; the ``S`` cells of a weight sit in ``S`` columns.
- **Inputs** are unsigned integers below ``2^input_bits``, fed bit-serially ``dac_bits`` at a time
  (``D = ceil(input_bits / dac_bits)`` input slices, one crossbar read each). Signed inputs are
  sign-split: ``x = x+ - x-`` in two passes, subtracted digitally.
- **ADC**: every read of a column (one input slice, one cell slice, one polarity, one crossbar's
  rows) is digitized by an ideal integer ADC: the code is the column sum (an integer count of unit
  currents) clipped at ``2^adc_bits - 1``; no offset, noise or non-linearity. A column sum is at
  most ``R_active * (2^w - 1) * (2^v - 1)`` (``w`` cell bits, ``v`` DAC bits), so the ADC is
  lossless when ``adc_bits >= lossless_adc_bits(R_active, w, v)``, and then the product is exact.
- **Shift-add**: the ADC codes are recombined digitally,
  ``y = sum_(polarity, row tile, s, d) sign * code * 2^(s*cell_bits) * 2^(d*dac_bits)``.

One crossbar tile covers ``R`` consecutive inputs and ``C`` consecutive cell columns; its read
cycles are what the input slices (and sign-split passes) take, each crossbar reading all its
columns at once (ADC sharing across columns is not modelled). Crossbars of one layer
(docs/references.md): ``N = P * ceil(rows / R) * ceil(cols * S / C)``, ``rows`` and ``cols`` being the
logical inputs and outputs of the stored matrix.
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.permdiag import PermDiag, diag_col

#: Positive and negative arrays for signed weights (MNSIM's polarity 2).
POLARITY = 2
#: The configuration fields: ``(what messages call it, lo, hi)``, ``hi = None`` for unbounded.
LIMITS = {"rows": ("crossbar rows", 1, None), "cols": ("crossbar cols", 1, None),
          "cell_bits": ("cell bits", 1, 8), "dac_bits": ("DAC bits", 1, 8),
          "adc_bits": ("ADC bits", 1, 32), "weight_bits": ("weight bits", 2, 32),
          "input_bits": ("input bits", 1, 32)}
#: Elements of the column-sum temporaries handled at once (about 32 MB of float64).
_CHUNK = 1 << 22


@dataclass(frozen=True)
class CrossbarConfig:
    """Crossbar geometry and converter resolutions (defaults: ISAAC/PUMA's 128 x 128, 2-bit
    cells, 1-bit DAC, 8-bit ADC; 8-bit weights and inputs)."""

    rows: int = 128
    cols: int = 128
    cell_bits: int = 2
    dac_bits: int = 1
    adc_bits: int = 8
    weight_bits: int = 8
    input_bits: int = 8

    def __post_init__(self):
        for name, (what, lo, hi) in LIMITS.items():
            integer(getattr(self, name), what, lo, hi)

    @property
    def mag_bits(self) -> int:
        """Magnitude bits of a weight: ``weight_bits - 1`` (the sign is the polarity)."""
        return self.weight_bits - 1

    @property
    def cells_per_weight(self) -> int:
        """``S = ceil(mag_bits / cell_bits)``."""
        return -(-self.mag_bits // self.cell_bits)

    @property
    def input_slices(self) -> int:
        """``D = ceil(input_bits / dac_bits)``: crossbar reads per input vector and pass."""
        return -(-self.input_bits // self.dac_bits)

    @property
    def weight_max(self) -> int:
        """Largest weight magnitude: ``2^(weight_bits-1) - 1``."""
        return (1 << self.mag_bits) - 1

    @property
    def input_max(self) -> int:
        """Largest input magnitude: ``2^input_bits - 1``."""
        return (1 << self.input_bits) - 1

    @property
    def adc_max(self) -> int:
        """Largest ADC code: ``2^adc_bits - 1``; larger column sums saturate to it."""
        return (1 << self.adc_bits) - 1

    def lossless_bits(self, active_rows: int | None = None) -> int:
        """:func:`lossless_adc_bits` for ``active_rows`` (default: all ``rows``) and this config."""
        return lossless_adc_bits(self.rows if active_rows is None else active_rows,
                                 self.cell_bits, self.dac_bits)

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in LIMITS}


def lossless_adc_bits(rows: int, cell_bits: int, dac_bits: int) -> int:
    """ADC bits that digitize every column sum exactly: ``ceil(log2(R (2^w - 1)(2^v - 1) + 1))``.

    ``rows`` is ``R``, the active rows of one crossbar read; ``w`` cell bits, ``v`` DAC bits.
    """
    rows = integer(rows, "active rows", 1)
    top = rows * ((1 << integer(cell_bits, "cell bits", 1)) - 1) * (
        (1 << integer(dac_bits, "DAC bits", 1)) - 1)
    return top.bit_length()  # = ceil(log2(top + 1)) for top >= 0


# -- the functional model --------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossbarResult:
    """A crossbar product against the exact one.

    ``y`` is what the crossbars and shift-add give, ``exact`` the exact integer product of the
    same stored matrix and inputs (``int64``); ``max_abs_error = max |y - exact|`` and
    ``rel_error = ||y - exact||_2 / ||exact||_2`` (0 when both are zero, ``inf`` when only
    ``exact`` is). ``conversions`` counts the ADC conversions made (every used column of every
    crossbar read), ``saturated`` those whose column sum exceeded the ADC's range. ``cycles`` are
    the crossbar read cycles per input vector; ``lossless_bits`` the ADC bits that would make the
    product exact for the largest row tile.
    """

    y: np.ndarray
    exact: np.ndarray
    conversions: int
    saturated: int
    cycles: int
    lossless_bits: int

    @property
    def is_exact(self) -> bool:
        return bool(np.array_equal(self.y, self.exact))

    @property
    def max_abs_error(self) -> int:
        return int(np.max(np.abs(self.y - self.exact))) if self.y.size else 0

    @property
    def rel_error(self) -> float:
        err = float(np.linalg.norm((self.y - self.exact).astype(np.float64)))
        ref = float(np.linalg.norm(self.exact.astype(np.float64)))
        return err / ref if ref else (0.0 if err == 0 else math.inf)

    @property
    def saturated_fraction(self) -> float:
        return self.saturated / self.conversions if self.conversions else 0.0

    def to_json(self) -> dict:
        return {"exact": self.is_exact, "max_abs_error": self.max_abs_error,
                "rel_error": self.rel_error, "conversions": self.conversions,
                "saturated": self.saturated, "saturated_fraction": self.saturated_fraction,
                "cycles": self.cycles, "lossless_bits": self.lossless_bits}


def _check_config(cfg):
    if not isinstance(cfg, CrossbarConfig):
        raise PermdealError(f"cfg must be a CrossbarConfig, not {type(cfg).__name__}")
    return cfg


def _int_array(a, what, ndims):
    """``a`` as an ``int64`` array of one of the dimension counts ``ndims``."""
    a = np.asarray(a)
    if a.ndim not in ndims or a.size == 0:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise PermdealError(f"{what} must be a non-empty {want} array, not shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise PermdealError(f"{what} must be integer codes, not {a.dtype}")
    return a.astype(np.int64)


def _check_range(a, hi, what, why):
    if a.size and np.abs(a).max() > hi:
        raise PermdealError(f"{what} must lie in [-{hi}, {hi}] ({why}), found "
                            f"{a.min()}..{a.max()}")


def _product(W, x, cfg):
    """The crossbar product of a stack of stored matrices: ``y[g] = W[g] @ x[g]``.

    ``W`` is ``(G, out, in)`` signed weight codes, ``x`` is ``(G, batch, in)`` signed input codes
    (checked by the caller); every group ``g`` has its own crossbars, their rows tiled by ``R``.
    Returns ``(y, exact, conversions, saturated, passes)`` with ``y`` and ``exact`` of shape
    ``(G, batch, out)``.
    """
    G, m, n = W.shape
    R, w, v = cfg.rows, cfg.cell_bits, cfg.dac_bits
    S, D, T = cfg.cells_per_weight, cfg.input_slices, -(-n // R)
    if (cfg.weight_max * cfg.input_max).bit_length() + n.bit_length() > 63:
        raise PermdealError(f"products of {cfg.weight_bits}-bit weights and {cfg.input_bits}-bit "
                            f"inputs summed over {n} inputs may not fit 63 bits; narrow them")
    exact = np.einsum("goi,gbi->gbo", W, x)
    passes = 2 if np.any(x < 0) else 1
    xs = np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=1) if passes == 2 else x
    pad = ((0, 0), (0, 0), (0, T * R - n))
    # Cells: [g, t, (polarity, s, out), r], the s-th w-bit slice of the magnitude of each sign.
    narrow = np.min_scalar_type(cfg.weight_max)  # cells extracted in the narrowest dtype
    mags = np.stack([np.maximum(W, 0), np.maximum(-W, 0)]).astype(narrow)[:, None]  # (P,1,G,m,n)
    shifts = (np.arange(S) * w).astype(narrow)[None, :, None, None, None]
    cells = (mags >> shifts) & narrow.type((1 << w) - 1)  # (P, S, G, out, in)
    top = R * ((1 << w) - 1) * ((1 << v) - 1)  # largest column sum: exact in float below 2^53
    dtype = np.float32 if top < 1 << 24 else np.float64 if top < 1 << 53 else np.int64
    cells = np.pad(cells.reshape(POLARITY * S, G, m, n), ((0, 0),) + pad).astype(dtype)
    cells = cells.reshape(POLARITY * S, G, m, T, R).transpose(1, 3, 0, 2, 4).reshape(
        G, T, POLARITY * S * m, R)
    # Inputs: [g, t, r, (d, batch)], the d-th v-bit slice.
    B = xs.shape[1]
    xpad = np.pad(xs, pad).reshape(G, B, T, R)
    dshift = (np.arange(D, dtype=np.int64) * v)[:, None, None, None, None]
    # Digital recombination weights of (polarity, s) and of d.
    pol_s = (np.array([1, -1], np.int64)[:, None] << (np.arange(S, dtype=np.int64) * w)).reshape(-1)
    d_w = np.int64(1) << (np.arange(D, dtype=np.int64) * v)
    y = np.zeros((G, B, m), np.int64)
    saturated = 0
    step = max(1, _CHUNK // max(1, G * T * POLARITY * S * m * D))
    for b0 in range(0, B, step):
        xb = xpad[:, b0:b0 + step]  # (G, b, T, R)
        b = xb.shape[1]
        sl = ((xb[None] >> dshift) & ((1 << v) - 1)).astype(dtype)  # (D, G, b, T, R)
        sl = sl.transpose(1, 3, 4, 0, 2).reshape(G, T, R, D * b)
        sums = np.matmul(cells, sl)  # (G, T, P*S*m, D*b): every column read
        saturated += int(np.count_nonzero(sums > cfg.adc_max))
        codes = np.minimum(sums, cfg.adc_max).astype(np.int64).reshape(G, T, POLARITY * S, m, D, b)
        y[:, b0:b0 + b] = np.einsum("gtkmdb,k,d->gbm", codes, pol_s, d_w)
    if passes == 2:
        y = y[:, :B // 2] - y[:, B // 2:]
    conversions = POLARITY * S * G * T * m * D * B
    return y, exact, conversions, saturated, passes


def _inputs(x, n, cfg):
    """Input codes as ``(batch, n)`` int64 and whether ``x`` was one vector."""
    x = _int_array(x, "inputs x", (1, 2))
    if x.shape[-1] != n:
        raise PermdealError(f"inputs x have {x.shape[-1]} values, the matrix takes {n}")
    _check_range(x, cfg.input_max, "input codes",
                 f"input_bits={cfg.input_bits}; negative inputs are sign-split")
    return x.reshape(-1, n), x.ndim == 1


def _weights(W, cfg, what="weight codes W"):
    _check_range(W, cfg.weight_max, what,
                 f"weight_bits={cfg.weight_bits}: sign and {cfg.mag_bits} magnitude bits")
    return W


def _result(y, exact, conv, sat, passes, cycles, rows, cfg, vector):
    """A :class:`CrossbarResult` of ``(batch, out)`` arrays (the batch dropped for one vector)."""
    if vector:
        y, exact = y[0], exact[0]
    return CrossbarResult(y, exact, conv, sat, cycles * passes * cfg.input_slices,
                          cfg.lossless_bits(min(rows, cfg.rows)))


def crossbar_matvec(W: npt.ArrayLike, x: npt.ArrayLike,
                    cfg: CrossbarConfig = CrossbarConfig()) -> CrossbarResult:
    """``W @ x`` on crossbars with the dense mapping (:func:`dense_mapping`).

    ``W`` is ``(m, n)`` signed integer weight codes, ``x`` integer input codes of shape ``(n,)``
    or ``(batch, n)``. Returns a :class:`CrossbarResult`; it is exact when ``cfg.adc_bits`` is at
    least ``cfg.lossless_bits(min(rows, n))``.
    """
    cfg = _check_config(cfg)
    W = _weights(_int_array(W, "weight codes W", (2,)), cfg)
    x, vector = _inputs(x, W.shape[1], cfg)
    y, exact, conv, sat, passes = _product(W[None], x[None], cfg)
    return _result(y[0], exact[0], conv, sat, passes, 1, W.shape[1], cfg, vector)


def _blocks(shape, k, what):
    """``(m, n, M', N')`` of an ``m x n`` matrix in ``k x k`` blocks."""
    try:
        m, n = (integer(d, f"{what} shape", 1) for d in shape)
    except (TypeError, ValueError):
        raise PermdealError(f"{what} shape must be (m, n), not {shape!r}") from None
    return m, n, -(-m // k), -(-n // k)


def _copies(copies, k, mb, cfg):
    """Rotated copies ``d`` of each stored circulant vector (``None``: as many as fit the spare
    columns of the crossbars one copy needs, at most ``k``)."""
    if copies is None:
        cols = mb * cfg.cells_per_weight
        return min(k, (-(-cols // cfg.cols) * cfg.cols) // cols)
    return integer(copies, "circulant copies", 1, k)


def circulant_matvec(c: npt.ArrayLike, shape: tuple[int, int], x: npt.ArrayLike,
                     cfg: CrossbarConfig = CrossbarConfig(),
                     copies: int | None = None) -> CrossbarResult:
    """Block-circulant ``W @ x`` on crossbars with ReBoc-style storage (:func:`circulant_mapping`).

    ``c`` is ``(M', N', k)`` integer codes, the first column of every ``k x k`` block:
    ``W[I*k + i, J*k + j] = c[I, J, (i - j) mod k]``, truncated to ``shape = (m, n)``. ``x`` as
    :func:`crossbar_matvec`. The crossbars hold the stored matrix ``Wc``; cycle ``a`` feeds row
    ``(J, t)`` the rotated input ``x[J*k + (a - t) mod k]`` (zero beyond ``n``) and column
    ``(I, delta)`` gives ``y[I*k + a + delta]``.
    """
    cfg = _check_config(cfg)
    c = _weights(_int_array(c, "circulant codes c", (3,)), cfg, "circulant codes c")
    mb, nb, k = c.shape
    m, n, *blocks = _blocks(shape, k, "circulant")
    if tuple(blocks) != (mb, nb):
        raise PermdealError(f"c must have shape {(*blocks, k)} for {m} x {n} with k={k}, "
                            f"not {c.shape}")
    d = _copies(copies, k, mb, cfg)
    x, vector = _inputs(x, n, cfg)
    t = np.arange(k)
    # Wc[(I, delta), (J, t)] = c[I, J, (t + delta) mod k]
    Wc = c[:, :, (t[None, :] + np.arange(d)[:, None]) % k]  # (I, J, delta, t)
    Wc = Wc.transpose(0, 2, 1, 3).reshape(mb * d, nb * k)
    starts = np.arange(0, k, d)  # a = g*d for the ceil(k/d) cycles
    xp = np.pad(x, ((0, 0), (0, nb * k - n))).reshape(-1, nb, k)
    rot = xp[:, :, (starts[:, None] - t[None, :]) % k]  # (batch, J, cycle, t)
    rot = rot.transpose(2, 0, 1, 3).reshape(len(starts) * len(x), nb * k)
    y, exact, conv, sat, passes = _product(Wc[None], rot[None], cfg)

    def assemble(v):  # (cycle*batch, I*d + delta) -> (batch, m): output I*k + a + delta
        v = v[0].reshape(len(starts), len(x), mb, d)
        out = np.zeros((len(x), mb, k), np.int64)
        for g, a in enumerate(starts):  # ceil(k/d) cycles; copies past k wrap and are dropped
            out[:, :, a:a + d] = v[g, :, :, :min(d, k - a)]
        return out.reshape(len(x), mb * k)[:, :m]

    return _result(assemble(y), assemble(exact), conv, sat, passes, len(starts), nb * k, cfg,
                   vector)


def permdiag_matvec(pd: PermDiag, x: npt.ArrayLike, cfg: CrossbarConfig = CrossbarConfig(),
                    mode: str = "compact") -> CrossbarResult:
    """Permuted-diagonal ``W @ x`` on crossbars (:func:`permdiag_mapping`).

    ``pd`` is a :class:`~permdeal.golden.permdiag.PermDiag` of integer codes; ``x`` as
    :func:`crossbar_matvec`. ``mode="dense"`` maps the expanded matrix; ``mode="compact"``
    gives every block-row ``I`` its own crossbars holding ``Q_I[r, J] = q[I, J, r]`` and in cycle
    ``r`` feeds row ``J`` the input ``x[J*p + (r + k[I, J]) mod p]``, reading column ``r``.
    """
    cfg = _check_config(cfg)
    if not isinstance(pd, PermDiag):
        raise PermdealError(f"pd must be a PermDiag, not {type(pd).__name__}")
    if not np.issubdtype(pd.q.dtype, np.integer):
        raise PermdealError("permdiag_matvec needs integer weight codes: quantize the matrix first")
    mode = _mode(mode)
    if mode == "dense":
        return crossbar_matvec(pd.to_dense(), x, cfg)
    (m, n), (mb, nb), p = pd.shape, pd.blocks, pd.p
    q = _weights(pd.q.astype(np.int64), cfg)
    x, vector = _inputs(x, n, cfg)
    xp = np.pad(x, ((0, 0), (0, nb * p - n))).reshape(-1, nb, p)
    # Group (I, r): a one-column stored matrix q[I, :, r] and inputs x[J*p + (r + k[I, J]) mod p].
    cols = diag_col(np.arange(p)[None, None, :], pd.k[:, :, None], p)  # (I, J, r)
    gathered = xp[:, np.arange(nb)[None, :, None], cols]  # (batch, I, J, r)
    Wg = q.transpose(0, 2, 1).reshape(mb * p, 1, nb)
    xg = gathered.transpose(1, 3, 0, 2).reshape(mb * p, len(x), nb)
    y, exact, conv, sat, passes = _product(Wg, xg, cfg)

    def assemble(v):  # (I*p + r, batch, 1) -> (batch, m)
        return v[:, :, 0].T[:, :m]

    return _result(assemble(y), assemble(exact), conv, sat, passes, p, nb, cfg, vector)


# -- crossbar counts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    """How one layer sits on crossbars.

    ``groups`` sets of crossbars (groups cannot share rows: their inputs differ), each a grid of
    ``row_tiles x col_tiles`` tiles per polarity holding a logical ``rows x cols`` matrix of
    weights (``cols`` counts weights; each takes ``S`` cell columns); ``groups_per_crossbar > 1``
    when small groups are packed on a crossbar's diagonal. ``used_cells`` counts the cells
    holding a stored parameter (padding and copies included), ``cycles`` the crossbar read cycles
    per unsigned input vector (twice that for sign-split inputs).
    """

    kind: str
    crossbars: int
    rows: int
    cols: int
    groups: int
    groups_per_crossbar: int
    row_tiles: int
    col_tiles: int
    used_cells: int
    total_cells: int
    cycles: int
    copies: int = 1

    @property
    def utilization(self) -> float:
        """Used cells over the cells of the allocated crossbars."""
        return self.used_cells / self.total_cells

    def to_json(self) -> dict:
        return {"kind": self.kind, "crossbars": self.crossbars, "rows": self.rows,
                "cols": self.cols, "groups": self.groups,
                "groups_per_crossbar": self.groups_per_crossbar, "row_tiles": self.row_tiles,
                "col_tiles": self.col_tiles, "used_cells": self.used_cells,
                "total_cells": self.total_cells, "utilization": self.utilization,
                "cycles": self.cycles, "copies": self.copies}


def _grid(kind, rows, cols, cfg, groups=1, pack=False, cycles=1, copies=1, params=None):
    """The :class:`Mapping` of ``groups`` logical ``rows x cols`` matrices (weights) on ``cfg``'s
    crossbars; ``pack`` places several groups on one crossbar's diagonal when they fit."""
    S = cfg.cells_per_weight
    rt, ct = -(-rows // cfg.rows), -(-cols * S // cfg.cols)
    per = max(1, min(cfg.rows // rows, cfg.cols // (cols * S))) if pack and rt == ct == 1 else 1
    n = POLARITY * -(-groups // per) * rt * ct
    params = groups * rows * cols if params is None else params
    return Mapping(kind, n, rows, cols, groups, per, rt, ct, POLARITY * params * S,
                   n * cfg.rows * cfg.cols, cycles * cfg.input_slices, copies)


def dense_mapping(shape: tuple[int, int], cfg: CrossbarConfig = CrossbarConfig()) -> Mapping:
    """Dense ``m x n`` layer: rows ``n``, columns ``m * S``, one read per input slice.

    ``N = P * ceil(n / R) * ceil(m * S / C)``.
    """
    m, n, _, _ = _blocks(shape, 1, "dense")
    return _grid("dense", n, m, _check_config(cfg))


def circulant_mapping(shape: tuple[int, int], k: int, cfg: CrossbarConfig = CrossbarConfig(),
                      copies: int | None = None) -> Mapping:
    """Block-circulant ``m x n`` layer of ``k x k`` blocks with ReBoc-style storage.

    Per block ``(I, J)`` one circulant vector is stored: column ``(I, delta)`` holds on row
    ``(J, t)`` the value ``c[I, J, (t + delta) mod k]``. In cycle ``a`` every row ``(J, t)`` gets
    the rotated input ``x[J*k + (a - t) mod k]``, and column ``(I, delta)`` yields output
    ``I*k + a + delta``. ``copies = d`` rotated copies (``delta = 0..d-1``, intra-crossbar
    duplication) serve ``d`` outputs per block a cycle: ``ceil(k / d)`` cycles per input slice.
    ``d = 1`` is one stored vector per block over ``k`` cycles, ``d = k`` stores every rotation
    (the expanded matrix) and needs one cycle; ``copies=None`` fills the spare columns of the
    crossbars one copy needs: ``d = min(k, floor(ceil(M' S / C) C / (M' S)))``.

    ``N = P * ceil(N' k / R) * ceil(M' d S / C)`` for ``M' = ceil(m/k)``, ``N' = ceil(n/k)``.
    """
    k = integer(k, "block size k", 1)
    cfg = _check_config(cfg)
    m, n, mb, nb = _blocks(shape, k, "circulant")
    if k > max(m, n):
        raise PermdealError(f"block size k={k} is larger than both sides of the {m} x {n} matrix")
    d = _copies(copies, k, mb, cfg)
    return _grid("circulant", nb * k, mb * d, cfg, cycles=-(-k // d), copies=d)


def _mode(mode):
    if mode not in ("compact", "dense"):
        raise PermdealError(f"permuted-diagonal mapping mode must be 'compact' or 'dense', "
                            f"not {mode!r}")
    return mode


def permdiag_mapping(shape: tuple[int, int], p: int, cfg: CrossbarConfig = CrossbarConfig(),
                     mode: str = "compact") -> Mapping:
    """Permuted-diagonal ``m x n`` layer of block size ``p``.

    ``mode="dense"``: the expanded matrix as :func:`dense_mapping` (one read per input slice);
    only the ``M' N' p`` stored weights count as used cells, so utilization is at most ``1/p``.

    ``mode="compact"``: each block-row ``I`` is a group with its own crossbar rows, since its
    inputs depend on its permutation values: ``N'`` rows (block-column ``J``) by ``p`` weight
    columns (offset ``r``), column ``r`` holding ``q[I, J, r]``. In cycle ``r`` row ``J`` is fed
    ``x[J*p + (r + k[I, J]) mod p]`` (the input block rotated by ``k[I, J]``) and column ``r``
    gives ``y[I*p + r]``: ``p`` cycles per input slice. Groups that fit one crossbar are packed on
    its diagonal, ``g = min(floor(R / N'), floor(C / (p S)))`` per crossbar;
    ``N = P * ceil(M' / g) * ceil(N' / R) * ceil(p S / C)``.
    """
    p = integer(p, "block size p", 1)
    cfg = _check_config(cfg)
    m, n, mb, nb = _blocks(shape, p, "permuted-diagonal")
    if p > max(m, n):
        raise PermdealError(f"block size p={p} is larger than both sides of the {m} x {n} matrix")
    if _mode(mode) == "dense":
        return _grid("permdiag-dense", n, m, cfg, params=mb * nb * p)
    return _grid("permdiag-compact", nb, p, cfg, groups=mb, pack=True, cycles=p)
