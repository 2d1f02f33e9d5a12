"""ReRAM crossbar model (golden/crossbar.py) against references written here.

Exactness is checked against int64 ``W @ x``; the lossy ADC against a loop over every crossbar read
(row tile, polarity, cell slice, input slice, column) over Python integers; block-circulant and
permuted-diagonal mappings against matrices expanded here from their definitions; crossbar counts
against figures worked out by hand in the comments. Random cases use the seeds in the test ids.
"""

import math
import random
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.crossbar import (CrossbarConfig, circulant_mapping, circulant_matvec,
                                      crossbar_matvec, dense_mapping, lossless_adc_bits,
                                      permdiag_mapping, permdiag_matvec)
from permdeal.golden.permdiag import PermDiag


def exact(msg):
    return "^" + re.escape(msg) + "$"


def random_case(seed, signed_inputs=None):
    """A random configuration, weights and inputs, all drawn from ``seed``."""
    rng = random.Random(seed)
    m, n = rng.randint(1, 40), rng.randint(1, 70)
    wb, ib = rng.randint(2, 12), rng.randint(1, 10)
    cfg = dict(rows=rng.choice([1, 3, 8, 16, 32, 128]), cols=rng.choice([1, 5, 16, 64, 128]),
               cell_bits=rng.choice([1, 2, 3, 4, 8]), dac_bits=rng.choice([1, 2, 3, 8]),
               weight_bits=wb, input_bits=ib)
    wmax, xmax = 2 ** (wb - 1) - 1, 2 ** ib - 1
    signed = rng.random() < 0.5 if signed_inputs is None else signed_inputs
    batch = rng.randint(1, 3)
    W = [[rng.randint(-wmax, wmax) for _ in range(n)] for _ in range(m)]
    x = [[rng.randint(-xmax if signed else 0, xmax) for _ in range(n)] for _ in range(batch)]
    return cfg, W, x


def lossless(rows, w, v):
    """ceil(log2(R (2^w - 1)(2^v - 1) + 1)) by search over Python integers."""
    top = rows * (2 ** w - 1) * (2 ** v - 1)
    bits = 0
    while 2 ** bits < top + 1:
        bits += 1
    return bits


def ref_crossbar(W, xs, R, w, v, adc, wb, ib):
    """The crossbar by plain loops: ``(y, conversions, saturated)``.

    Signed weights: positive and negative arrays; magnitude cell ``s`` = bits [s*w, (s+1)*w);
    input slice ``d`` = bits [d*v, (d+1)*v); negative inputs (anywhere in the batch) mean two
    passes, x+ and x-. Every (pass, polarity, row tile, column, cell, slice) is one ADC
    conversion, clipped at 2^adc - 1, and shift-added. Returns ``(y, conversions, saturated,
    largest column sum)``.
    """
    m, n = len(W), len(W[0])
    S, D = math.ceil((wb - 1) / w), math.ceil(ib / v)
    two_pass = any(xi < 0 for x in xs for xi in x)
    top = 2 ** adc - 1
    ys, conv, sat, peak = [], 0, 0, 0
    for x in xs:
        y = [0] * m
        for xsign in ([1, -1] if two_pass else [1]):
            xp = [max(xsign * xi, 0) for xi in x]
            for wsign in (1, -1):
                for t0 in range(0, n, R):
                    for o in range(m):
                        for s in range(S):
                            for d in range(D):
                                total = 0
                                for i in range(t0, min(n, t0 + R)):
                                    cell = (max(wsign * W[o][i], 0) >> (s * w)) % 2 ** w
                                    total += cell * ((xp[i] >> (d * v)) % 2 ** v)
                                conv += 1
                                peak = max(peak, total)
                                sat += total > top
                                y[o] += xsign * wsign * min(total, top) * 2 ** (s * w + d * v)
        ys.append(y)
    return ys, conv, sat, peak


# -- the functional model ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(40), ids=lambda s: f"seed{s}")
def test_exact_with_lossless_adc(seed):
    cfg, W, x = random_case(seed)
    n = len(W[0])
    adc = lossless(min(cfg["rows"], n), cfg["cell_bits"], cfg["dac_bits"])
    c = CrossbarConfig(adc_bits=min(adc, 32), **cfg)
    Wa, xa = np.array(W, np.int64), np.array(x, np.int64)
    ref = xa @ Wa.T
    res = crossbar_matvec(Wa, xa, c)
    assert res.lossless_bits == adc
    np.testing.assert_array_equal(res.y, ref)
    np.testing.assert_array_equal(res.exact, ref)
    assert res.is_exact and res.max_abs_error == 0 and res.rel_error == 0.0
    assert res.saturated == 0
    assert res.cycles == math.ceil(cfg["input_bits"] / cfg["dac_bits"]) * (
        2 if (xa < 0).any() else 1)
    one = crossbar_matvec(Wa, xa[0], c)  # a single vector gives the first row
    np.testing.assert_array_equal(one.y, ref[0])


@pytest.mark.parametrize("seed", range(12), ids=lambda s: f"seed{s}")
def test_lossy_adc_matches_loop_count(seed):
    cfg, W, x = random_case(1000 + seed)
    rng = random.Random(seed)
    cfg["rows"] = rng.choice([4, 8, 64])
    # Push most weights and inputs to their largest magnitudes so that sums overflow the ADC.
    wmax, xmax = 2 ** (cfg["weight_bits"] - 1) - 1, 2 ** cfg["input_bits"] - 1
    W = [[wmax * (1 if v >= 0 else -1) if rng.random() < 0.7 else v for v in row] for row in W]
    x = [[xmax * (1 if v >= 0 else -1) if rng.random() < 0.7 else v for v in row] for row in x]
    args = (cfg["rows"], cfg["cell_bits"], cfg["dac_bits"])
    wide = ref_crossbar(W, x, *args, 40, cfg["weight_bits"], cfg["input_bits"])
    needed = wide[3].bit_length()  # ADC bits the largest column sum of this case needs
    narrow = max(1, needed - rng.randint(1, 3))
    ys, conv, sat, _ = ref_crossbar(W, x, *args, narrow, cfg["weight_bits"], cfg["input_bits"])
    assert (sat > 0) == (narrow < needed)
    res = crossbar_matvec(np.array(W), np.array(x), CrossbarConfig(adc_bits=narrow, **cfg))
    assert res.y.tolist() == ys
    assert (res.conversions, res.saturated) == (conv, sat)
    assert res.saturated_fraction == sat / conv
    exact_y = [[sum(a * b for a, b in zip(row, xv)) for row in W] for xv in x]
    assert res.exact.tolist() == exact_y
    err = [[abs(a - b) for a, b in zip(r1, r2)] for r1, r2 in zip(ys, exact_y)]
    assert res.max_abs_error == max(max(r) for r in err)
    ref_norm = math.sqrt(sum(v * v for r in exact_y for v in r))
    err_norm = math.sqrt(sum(v * v for r in err for v in r))
    if ref_norm:
        assert res.rel_error == pytest.approx(err_norm / ref_norm, rel=1e-12)


def test_lossy_error_is_nonzero_with_one_sided_weights():
    # All-positive weights and inputs: a clipped sum can only lower y, never cancel.
    W = np.full((3, 20), 127)
    x = np.full(20, 255)
    res = crossbar_matvec(W, x, CrossbarConfig(rows=16, adc_bits=5))  # sums up to 16*3 = 48
    assert res.max_abs_error > 0 and res.rel_error > 0
    assert res.saturated_fraction > 0
    assert (res.y < res.exact).all()


@pytest.mark.parametrize("rows,w,v", [(128, 2, 1), (16, 1, 1), (7, 3, 2), (1, 8, 8), (32, 4, 3)])
def test_lossless_bits_are_tight(rows, w, v):
    bits = lossless(rows, w, v)
    assert lossless_adc_bits(rows, w, v) == bits
    # Every cell and input slice at its largest value makes the column sum R (2^w-1)(2^v-1).
    wb, ib = 1 + 2 * w, 2 * v
    W = np.full((2, rows), 2 ** (wb - 1) - 1)
    x = np.full(rows, 2 ** ib - 1)
    cfg = dict(rows=rows, cols=8, cell_bits=w, dac_bits=v, weight_bits=wb, input_bits=ib)
    ok = crossbar_matvec(W, x, CrossbarConfig(adc_bits=bits, **cfg))
    assert ok.is_exact and ok.saturated == 0
    np.testing.assert_array_equal(ok.y, W @ x)
    if bits > 1:
        bad = crossbar_matvec(W, x, CrossbarConfig(adc_bits=bits - 1, **cfg))
        assert not bad.is_exact and bad.saturated > 0


def test_large_layer_exact():
    rng = np.random.default_rng(7)
    W = rng.integers(-127, 128, (1024, 1024))
    x = rng.integers(0, 256, (2, 1024))
    res = crossbar_matvec(W, x, CrossbarConfig(adc_bits=9))  # lossless for 128 rows, 2-bit cells
    np.testing.assert_array_equal(res.y, x @ W.T)
    # 8-bit ADC: 128 * 3 * 1 = 384 > 255 may saturate on extreme columns but is measured.
    res8 = crossbar_matvec(W, x, CrossbarConfig())
    assert res8.conversions == 2 * 4 * 8 * 1024 * 8 * 2


# -- block-circulant and permuted-diagonal mappings --------------------------------------------

def circulant_dense(c, m, n, k):
    """W[i][j] = c[I][J][(i - j) mod k] (first-column convention), truncated to m x n."""
    return [[c[i // k][j // k][(i % k - j % k) % k] for j in range(n)] for i in range(m)]


@pytest.mark.parametrize("seed", range(16), ids=lambda s: f"seed{s}")
def test_circulant_mapping_equals_dense(seed):
    rng = random.Random(50 + seed)
    k = rng.choice([1, 2, 3, 4, 5, 8])
    m, n = rng.randint(1, 5 * k + 3), rng.randint(1, 5 * k + 3)
    mb, nb = -(-m // k), -(-n // k)
    cfg = CrossbarConfig(rows=rng.choice([4, 16, 64]), cols=rng.choice([8, 32, 128]),
                         cell_bits=rng.choice([1, 2, 4]), weight_bits=8, input_bits=6,
                         dac_bits=rng.choice([1, 2]), adc_bits=16)
    c = [[[rng.randint(-127, 127) for _ in range(k)] for _ in range(nb)] for _ in range(mb)]
    x = np.array([[rng.randint(-63, 63) for _ in range(n)] for _ in range(2)])
    x[0, 0] = -1  # signed inputs: two passes
    W = np.array(circulant_dense(c, m, n, k))
    ref = x @ W.T
    for copies in sorted({1, max(1, k // 2), k, None} - {None}) + [None]:
        res = circulant_matvec(np.array(c), (m, n), x, cfg, copies)
        np.testing.assert_array_equal(res.y, ref, err_msg=f"copies={copies}")
        np.testing.assert_array_equal(res.exact, ref)
        mp = circulant_mapping((m, n), k, cfg, copies)
        d = mp.copies
        assert res.cycles == 2 * mp.cycles  # signed inputs: two passes
        rt = -(-(nb * k) // cfg.rows)
        S, D = cfg.cells_per_weight, cfg.input_slices
        assert res.conversions == 2 * S * rt * mb * d * D * -(-k // d) * 2 * 2


def pd_dense(k, q, m, n, p):
    """W[I*p + r][J*p + (r + k[I][J]) mod p] = q[I][J][r], inside the m x n matrix."""
    W = [[0] * n for _ in range(m)]
    for I in range(len(k)):
        for J in range(len(k[0])):
            for r in range(p):
                i, j = I * p + r, J * p + (r + k[I][J]) % p
                if i < m and j < n:
                    W[i][j] = q[I][J][r]
    return W


@pytest.mark.parametrize("seed", range(16), ids=lambda s: f"seed{s}")
def test_permdiag_mapping_equals_dense(seed):
    rng = random.Random(90 + seed)
    p = rng.choice([1, 2, 3, 4, 7, 8])
    m, n = rng.randint(1, 6 * p + 2), rng.randint(1, 6 * p + 2)
    mb, nb = -(-m // p), -(-n // p)
    k = [[rng.randrange(p) for _ in range(nb)] for _ in range(mb)]
    q = [[[rng.randint(-127, 127) if I * p + r < m and J * p + (r + k[I][J]) % p < n else 0
           for r in range(p)] for J in range(nb)] for I in range(mb)]
    cfg = CrossbarConfig(rows=rng.choice([2, 8, 64]), cols=rng.choice([4, 32]),
                         cell_bits=rng.choice([1, 2, 3]), adc_bits=16)
    pd = PermDiag((m, n), p, np.array(k), np.array(q, np.int64))
    x = np.array([[rng.randint(0, 255) for _ in range(n)] for _ in range(3)])
    ref = x @ np.array(pd_dense(k, q, m, n, p)).T
    for mode in ("compact", "dense"):
        res = permdiag_matvec(pd, x, cfg, mode)
        np.testing.assert_array_equal(res.y, ref, err_msg=mode)
        assert res.cycles == permdiag_mapping((m, n), p, cfg, mode).cycles
    res = permdiag_matvec(pd, x[1], cfg)
    np.testing.assert_array_equal(res.y, ref[1])


def test_mappings_lossy_adc_still_report():
    # A narrow ADC on the mapped forms gives an error against the exact (= dense) product.
    rng = np.random.default_rng(3)
    c = np.full((2, 3, 4), 127)
    x = np.full(12, 255)
    res = circulant_matvec(c, (8, 12), x, CrossbarConfig(adc_bits=4))
    W = np.array(circulant_dense(c.tolist(), 8, 12, 4))
    np.testing.assert_array_equal(res.exact, W @ x)
    assert res.saturated > 0 and res.max_abs_error > 0
    k = rng.integers(0, 4, (2, 3))
    pd = PermDiag((8, 12), 4, k, np.full((2, 3, 4), 127))
    res = permdiag_matvec(pd, x, CrossbarConfig(adc_bits=2))  # 3 rows: sums up to 3*3 = 9
    np.testing.assert_array_equal(res.exact, pd.to_dense() @ x)
    assert res.saturated > 0 and res.max_abs_error > 0


# -- crossbar counts -----------------------------------------------------------------------------

def test_dense_counts():
    # 100 outputs x 300 inputs, 128 x 128, 2-bit cells, 8-bit weights: S = ceil(7/2) = 4,
    # N = 2 * ceil(300/128) * ceil(100*4/128) = 2 * 3 * 4 = 24; used 2*300*100*4 = 240000 cells
    # of 24 * 16384 = 393216; 8 input slices.
    mp = dense_mapping((100, 300))
    assert (mp.crossbars, mp.row_tiles, mp.col_tiles) == (24, 3, 4)
    assert (mp.used_cells, mp.total_cells, mp.cycles) == (240000, 393216, 8)
    assert mp.utilization == 240000 / 393216
    # 1-bit cells, 4-bit weights (S = 3), 2-bit DAC on 4-bit inputs (D = 2), 16 x 8 crossbars,
    # 5 x 17 layer: N = 2 * ceil(17/16) * ceil(15/8) = 2 * 2 * 2 = 8.
    mp = dense_mapping((5, 17), CrossbarConfig(rows=16, cols=8, cell_bits=1, weight_bits=4,
                                               input_bits=4, dac_bits=2))
    assert (mp.crossbars, mp.cycles, mp.used_cells, mp.total_cells) == (8, 2, 2 * 17 * 5 * 3, 1024)


def test_circulant_counts():
    cfg = CrossbarConfig(rows=64, cols=128)  # S = 4, D = 8
    # 40 x 96, k = 8: M' = 5, N' = 12, stored rows 96; one copy takes 5*4 = 20 cell columns.
    one = circulant_mapping((40, 96), 8, cfg, copies=1)
    # N = 2 * ceil(96/64) * ceil(20/128) = 4; 8 cycles per slice; used 2*96*5*4 = 3840.
    assert (one.crossbars, one.cycles, one.used_cells, one.total_cells) == (4, 64, 3840, 32768)
    # Filling the spare columns: floor(128 / 20) = 6 copies, ceil(8/6) = 2 cycles per slice,
    # 6 * 20 = 120 columns, still 4 crossbars; used 2*96*30*4 = 23040.
    fill = circulant_mapping((40, 96), 8, cfg)
    assert (fill.copies, fill.crossbars, fill.cycles, fill.used_cells) == (6, 4, 16, 23040)
    assert fill.utilization == 23040 / 32768
    # All 8 rotations (the expanded matrix): 160 columns -> 2 column tiles, 8 crossbars, 1 cycle.
    full = circulant_mapping((40, 96), 8, cfg, copies=8)
    assert (full.crossbars, full.cycles) == (8, 8)
    assert full.crossbars == dense_mapping((40, 96), cfg).crossbars
    # 1024 x 1024, k = 8 on 128 x 128: M' S = 512 fills 4 crossbars exactly, so d = 1:
    # N = 2 * 8 * 4 = 64 against the dense 2 * 8 * 32 = 512.
    big = circulant_mapping((1024, 1024), 8)
    assert (big.copies, big.crossbars, big.cycles) == (1, 64, 64)


def test_permdiag_counts():
    cfg = CrossbarConfig(rows=32, cols=32)  # S = 4, D = 8
    # 64 x 48, p = 4: M' = 16, N' = 12. Compact: a block-row is 12 rows x 4 weights (16 cell
    # columns); min(32 // 12, 32 // 16) = 2 block-rows per crossbar: N = 2 * ceil(16/2) = 16,
    # 4 cycles per slice; used 2 * 16*12*4 * 4 = 6144 of 16 * 1024.
    c = permdiag_mapping((64, 48), 4, cfg)
    assert (c.crossbars, c.groups_per_crossbar, c.cycles) == (16, 2, 32)
    assert (c.used_cells, c.total_cells) == (6144, 16384)
    # Dense mapping of the expanded matrix: N = 2 * ceil(48/32) * ceil(64*4/32) = 32, 1 cycle per
    # slice; the same 6144 stored-weight cells of 32768.
    d = permdiag_mapping((64, 48), 4, cfg, mode="dense")
    assert (d.crossbars, d.cycles, d.used_cells, d.total_cells) == (32, 8, 6144, 32768)
    # 64 x 32, p = 8 on 128 x 128: M' = 8, a block-row is 4 rows x 8 weights = 32 cell columns;
    # the columns limit the packing: min(128 // 4, 128 // 32) = 4 per crossbar, N = 2 * 2 = 4.
    small = permdiag_mapping((64, 32), 8)
    assert (small.crossbars, small.groups_per_crossbar) == (4, 4)
    # 1024 x 1024, p = 8 on 128 x 128: a block-row is 128 rows x 32 cell columns, one per crossbar:
    # N = 2 * 128 = 256 (dense mapping: 512).
    big = permdiag_mapping((1024, 1024), 8)
    assert (big.crossbars, big.groups_per_crossbar, big.cycles) == (256, 1, 64)
    assert big.utilization == 0.25


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,msg", [
    ("rows", 0, "crossbar rows must be an integer >= 1, not 0"),
    ("cols", 2.0, "crossbar cols must be an integer >= 1, not 2.0"),
    ("cell_bits", 9, "cell bits must be an integer in [1, 8], not 9"),
    ("cell_bits", 0, "cell bits must be an integer in [1, 8], not 0"),
    ("dac_bits", 9, "DAC bits must be an integer in [1, 8], not 9"),
    ("adc_bits", 33, "ADC bits must be an integer in [1, 32], not 33"),
    ("adc_bits", 0, "ADC bits must be an integer in [1, 32], not 0"),
    ("weight_bits", 1, "weight bits must be an integer in [2, 32], not 1"),
    ("weight_bits", 33, "weight bits must be an integer in [2, 32], not 33"),
    ("input_bits", 0, "input bits must be an integer in [1, 32], not 0"),
    ("adc_bits", True, "ADC bits must be an integer in [1, 32], not True"),
])
def test_config_messages(field, value, msg):
    with pytest.raises(PermdealError, match=exact(msg)):
        CrossbarConfig(**{field: value})


def test_bad_inputs():
    W = np.zeros((3, 4), np.int64)
    cases = [
        (lambda: crossbar_matvec(W.astype(float), np.zeros(4, int)),
         "weight codes W must be integer codes, not float64"),
        (lambda: crossbar_matvec(np.zeros(4, int), np.zeros(4, int)),
         "weight codes W must be a non-empty 2-D array, not shape (4,)"),
        (lambda: crossbar_matvec(np.full((3, 4), -128), np.zeros(4, int)),
         "weight codes W must lie in [-127, 127] (weight_bits=8: sign and 7 magnitude bits), "
         "found -128..-128"),
        (lambda: crossbar_matvec(W, np.zeros(5, int)),
         "inputs x have 5 values, the matrix takes 4"),
        (lambda: crossbar_matvec(W, np.full(4, 256)),
         "input codes must lie in [-255, 255] (input_bits=8; negative inputs are sign-split), "
         "found 256..256"),
        (lambda: crossbar_matvec(W, np.zeros(4)), "inputs x must be integer codes, not float64"),
        (lambda: crossbar_matvec(W, np.zeros(4, int), cfg=(128, 128)),
         "cfg must be a CrossbarConfig, not tuple"),
        (lambda: crossbar_matvec(np.zeros((1, 4), int), np.zeros(4, int),
                                 CrossbarConfig(weight_bits=32, input_bits=32)),
         "products of 32-bit weights and 32-bit inputs summed over 4 inputs may not fit 63 bits; "
         "narrow them"),
        (lambda: circulant_matvec(np.zeros((2, 2, 4), int), (8, 12), np.zeros(12, int)),
         "c must have shape (2, 3, 4) for 8 x 12 with k=4, not (2, 2, 4)"),
        (lambda: circulant_matvec(np.zeros((2, 3, 4), int), (8, 12), np.zeros(12, int), copies=5),
         "circulant copies must be an integer in [1, 4], not 5"),
        (lambda: circulant_mapping((8, 12), 0), "block size k must be an integer >= 1, not 0"),
        (lambda: circulant_mapping((8, 12), 13),
         "block size k=13 is larger than both sides of the 8 x 12 matrix"),
        (lambda: circulant_mapping((0, 12), 4), "circulant shape must be an integer >= 1, not 0"),
        (lambda: circulant_mapping(8, 4), "circulant shape must be (m, n), not 8"),
        (lambda: permdiag_mapping((8, 12), 4, mode="sparse"),
         "permuted-diagonal mapping mode must be 'compact' or 'dense', not 'sparse'"),
        (lambda: permdiag_mapping((8, 12), 20),
         "block size p=20 is larger than both sides of the 8 x 12 matrix"),
        (lambda: permdiag_matvec(PermDiag((4, 4), 2, np.zeros((2, 2), int), np.zeros((2, 2, 2))),
                                 np.zeros(4, int)),
         "permdiag_matvec needs integer weight codes: quantize the matrix first"),
        (lambda: permdiag_matvec(W, np.zeros(4, int)), "pd must be a PermDiag, not ndarray"),
        (lambda: lossless_adc_bits(0, 2, 1), "active rows must be an integer >= 1, not 0"),
    ]
    for fn, msg in cases:
        with pytest.raises(PermdealError, match=exact(msg)):
            fn()
