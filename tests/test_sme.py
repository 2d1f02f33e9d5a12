"""SME bit sparsity (golden/sme.py) against references written here.

Quantization is checked against Python's ``round`` (ties to even) per value, the bit cap against a
brute-force search over every magnitude with at most K set bits, tile counts and squeeze-out
against loops over weights and bits. Random cases use the seeds in the test ids.
"""

import random
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.sme import (cap_bits, sign_magnitude, sme_digits_study, sme_layer,
                                 squeeze, tile_counts)
from permdeal.golden.train import MLP, accuracy, init_mlp, load_digits_split, train
from permdeal.golden.permdiag import PermDiag


def exact(msg):
    return "^" + re.escape(msg) + "$"


def ref_nearest(v, K, bits):
    """Nearest value in [0, 2^(bits-1) - 1] with <= K set bits, the smaller on a tie."""
    best = None
    for c in range(2 ** (bits - 1)):  # ascending: on a tie the smaller is kept
        if bin(c).count("1") <= K and (best is None or abs(c - v) < abs(best - v)):
            best = c
    return best


@pytest.mark.parametrize("bits", range(2, 9))
def test_cap_is_nearest_with_at_most_k_bits(bits):
    mags = np.arange(2 ** (bits - 1))
    for K in range(1, bits):
        got = cap_bits(mags, K, bits)
        want = [ref_nearest(int(v), K, bits) for v in mags]
        assert got.tolist() == want, f"bits={bits} K={K}"
        assert all(bin(int(g)).count("1") <= K for g in got)
    assert cap_bits(mags, None, bits).tolist() == mags.tolist()


def test_cap_ties_and_range():
    # 3 = 0b11 with K = 1: 2 and 4 are both 1 away -> the smaller, 2. 127 with K = 1 at 8 bits:
    # 128 is out of range -> 64. 5 = 0b101, K = 1: 4 (1 away) beats 8 (3 away).
    assert cap_bits(np.array([3, 127, 5, 6, 0]), 1, 8).tolist() == [2, 64, 4, 4, 0]
    # 0b1011011 (91), K = 2: lo = 0b1000000 + 0b10000 = 80, hi = 96; 91 is 11 from 80, 5 from 96.
    assert cap_bits(np.array([91]), 2, 8).tolist() == [96]


@pytest.mark.parametrize("seed", range(4), ids=lambda s: f"seed{s}")
def test_cap_wide_random(seed):
    rng = np.random.default_rng(seed)
    bits = [12, 16, 24, 32][seed]
    mags = rng.integers(0, 2 ** (bits - 1), 2000)
    for K in (1, 2, 3, 5):
        got = cap_bits(mags, K, bits)
        assert max(bin(int(g)).count("1") for g in got) <= K
        for v, g in zip(mags[:200].tolist(), got[:200].tolist()):
            # Nearest: no value with <= K bits lies strictly closer. Candidates are the truncation
            # to K bits and the next such value; check both against the result by hand.
            ones = [j for j in range(bits - 1) if v >> j & 1][::-1]
            lo = sum(1 << j for j in ones[:K])
            hi = lo + (1 << ones[K - 1]) if len(ones) > K else lo
            best = min([c for c in (lo, hi) if c < 2 ** (bits - 1)], key=lambda c: (abs(c - v), c))
            assert g == best


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_sign_magnitude_matches_round(seed):
    rng = random.Random(seed)
    bits = rng.choice([2, 4, 8, 12])
    m, n = rng.randint(1, 9), rng.randint(1, 9)
    W = [[rng.uniform(-3, 3) for _ in range(n)] for _ in range(m)]
    if seed == 0:
        W[0][0] = 0.0
    sm = sign_magnitude(np.array(W), bits)
    top = 2 ** (bits - 1) - 1
    scale = max(abs(v) for r in W for v in r) / top
    assert sm.scale == scale
    for i in range(m):
        for j in range(n):
            mag = round(abs(W[i][j]) / scale)
            assert sm.mag[i, j] == mag
            assert sm.sign[i, j] == (0 if mag == 0 else (1 if W[i][j] > 0 else -1))
            assert abs(sm.to_float()[i, j] - W[i][j]) <= scale / 2 + 1e-12
    assert sign_magnitude(np.zeros((2, 2)), 8).mag.tolist() == [[0, 0], [0, 0]]
    # Exact ties go to the even magnitude: scale 1, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0 (sign 0).
    tie = sign_magnitude(np.array([[3.0, 1.5, 2.5, -0.5]]), 3)
    assert (tie.scale, tie.mag.tolist(), tie.sign.tolist()) == (1.0, [[3, 2, 2, 0]], [[1, 1, 1, 0]])


def random_codes(seed, bits=8, density=0.3):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(1, 40, 2)
    W = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
    return sign_magnitude(W, bits)


def ref_tiles(sm, R, C):
    """{(j, pol, t, u): set bits} by loops; pol 0 holds positive weights, 1 negative."""
    m, n = sm.mag.shape
    counts = {}
    for j in range(sm.bits - 1):
        for pol in (0, 1):
            for t in range(-(-n // R)):
                for u in range(-(-m // C)):
                    counts[j, pol, t, u] = 0
    for o in range(m):
        for i in range(n):
            s = int(sm.sign[o, i])
            for j in range(sm.bits - 1):
                if int(sm.mag[o, i]) >> j & 1:
                    counts[j, 0 if s > 0 else 1, i // R, o // C] += 1
    return counts


@pytest.mark.parametrize("seed", range(8), ids=lambda s: f"seed{s}")
def test_squeeze_removes_exactly_tiles_below_threshold(seed):
    rng = random.Random(seed)
    sm = random_codes(seed, bits=rng.choice([4, 8]))
    R, C = rng.choice([3, 8, 16]), rng.choice([4, 8, 32])
    counts = ref_tiles(sm, R, C)
    tc = tile_counts(sm, R, C)
    assert {key: int(tc[key]) for key in counts} == counts
    assert tc.size == len(counts) == (sm.bits - 1) * 2 * -(-sm.mag.shape[1] // R) * -(
        -sm.mag.shape[0] // C)
    for th in (0, 1, 2, 5, 12):
        kept, out = squeeze(sm, R, C, th)
        removed = {key for key, c in counts.items() if c < max(1, th)}
        assert {key for key in counts if not kept[key]} == removed
        m, n = sm.mag.shape
        for o in range(m):
            for i in range(n):
                s, v = int(sm.sign[o, i]), int(sm.mag[o, i])
                want = sum(1 << j for j in range(sm.bits - 1)
                           if v >> j & 1 and (j, 0 if s > 0 else 1, i // R, o // C) not in removed)
                assert out.mag[o, i] == want
                assert out.sign[o, i] == (s if want else 0)


def test_sme_layer_counts():
    sm_seed = 11
    rng = np.random.default_rng(sm_seed)
    W = rng.normal(size=(20, 50)) * (rng.random((20, 50)) < 0.2)
    lay = sme_layer(W, bits=8, cap=2, threshold=3, rows=16, cols=8)
    quant = sign_magnitude(W, 8)
    capped = quant.with_mag(cap_bits(quant.mag, 2, 8))
    # 7 slices x 2 polarities x ceil(50/16) = 4 x ceil(20/8) = 3 tiles.
    assert lay.crossbars_total == 7 * 2 * 4 * 3
    assert lay.crossbars_quantized == sum(c > 0 for c in ref_tiles(quant, 16, 8).values())
    assert lay.crossbars_capped == sum(c > 0 for c in ref_tiles(capped, 16, 8).values())
    assert lay.crossbars_squeezed == sum(c >= 3 for c in ref_tiles(capped, 16, 8).values())
    dropped = sum(c for c in ref_tiles(capped, 16, 8).values() if c < 3)
    assert lay.bits_dropped == dropped
    assert np.array_equal(lay.codes.mag, squeeze(capped, 16, 8, 3)[1].mag)
    for j, d in enumerate(lay.density_quantized):
        assert d == np.mean([(int(v) >> j) & 1 for v in quant.mag.ravel()])


def test_digits_study_small():
    rows, info = sme_digits_study(caps=(None, 1), thresholds=(1, 64), xbars=((32, 32),),
                                  hidden=(32,), epochs=3)
    assert [(r["cap"], r["threshold"]) for r in rows] == [(None, 1), (None, 64), (1, 1), (1, 64)]
    # 64-32-10 on 32 x 32: fc1 7*2*ceil(64/32)*ceil(32/32) = 28, fc2 7*2*1*1 = 14.
    assert all(r["total"] == 42 for r in rows)
    # The plain 8-bit model, rebuilt here from the same seeds, gives the first row's accuracy.
    X_tr, y_tr, X_te, y_te = load_digits_split(0)
    model = train(init_mlp([64, 32, 10], seed=0), X_tr, y_tr, epochs=3, seed=0)
    assert info["float_accuracy"] == accuracy(model, X_te, y_te)
    qs = []
    for _, W, _ in model.dense_weights():
        top = float(np.abs(W).max())
        qs.append(PermDiag.from_dense(np.round(W / (top / 127)) * (top / 127), 1))
    assert rows[0]["accuracy"] == accuracy(MLP(tuple(qs), model.biases), X_te, y_te)
    assert rows[0]["bits_dropped"] == 0 and rows[0]["squeezed"] == rows[0]["quantized"]
    assert rows[1]["squeezed"] < rows[0]["squeezed"] and rows[1]["bits_dropped"] > 0


def test_bad_inputs():
    cases = [
        (lambda: sign_magnitude(np.ones((2, 2)), 1),
         "sign-magnitude bits must be an integer in [2, 32], not 1"),
        (lambda: sign_magnitude(np.array([[np.nan]]), 8), "weights hold NaN or infinite values"),
        (lambda: sign_magnitude(np.ones(3), 8),
         "weights must be a non-empty 2-D matrix, not shape (3,)"),
        (lambda: cap_bits(np.array([3]), 0, 8), "bit cap K must be an integer >= 1, not 0"),
        (lambda: cap_bits(np.array([128]), 1, 8),
         "magnitudes must lie in [0, 127] for 8-bit sign-magnitude, found 128..128"),
        (lambda: cap_bits(np.array([1.5]), 1, 8), "magnitudes must be integers, not float64"),
        (lambda: squeeze(sign_magnitude(np.ones((2, 2))), 4, 4, -1),
         "squeeze threshold must be an integer >= 0, not -1"),
        (lambda: sme_layer(np.ones((2, 2)), rows=0),
         "crossbar rows must be an integer >= 1, not 0"),
    ]
    for fn, msg in cases:
        with pytest.raises(PermdealError, match=exact(msg)):
            fn()
