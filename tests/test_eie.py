"""EIE's format and cycle model (golden/eie.py, golden/eie_cycles.py) against plain-Python
references."""

import logging

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.eie import compress, decode, encode, encode_dense, prune, share_weights
from permdeal.golden.eie_cycles import eie_layer_run, fifo_schedule, layer_cycles
from permdeal.golden.workloads import EIE, EIE_LAYERS

log = logging.getLogger(__name__)

SEEDS = [0, 1, 2, 3, 4]


# -- references ----------------------------------------------------------------------------------

def ref_keep(W, k):
    """Positions (row-major flat) of the k largest |W|, ties to the earlier position."""
    order = sorted(range(W.size), key=lambda i: (-abs(W.flat[i]), i))
    return set(order[:k])


def ref_encode(idx, n_pe, index_bits):
    """EIE's interleaved CSC by walking every PE's column slice row by row: (v, z, pointers)."""
    m, n = idx.shape
    limit = (1 << index_bits) - 1
    v, z, ptrs = [], [], []
    for k in range(n_pe):
        pv, pz, p = [], [], [0]
        for j in range(n):
            zeros = 0
            for r in range(k, m, n_pe):
                if idx[r, j] == 0:
                    zeros += 1
                    continue
                while zeros > limit:             # a padding zero: `limit` zeros and itself
                    pv.append(0)
                    pz.append(limit)
                    zeros -= limit + 1
                pv.append(int(idx[r, j]))
                pz.append(zeros)
                zeros = 0
            p.append(len(pv))
        v += pv
        z += pz
        ptrs.append(p)
    return v, z, ptrs


def brute_schedule(work, depth):
    """Cycle-by-cycle simulation of the broadcast and the FIFOs: (t, s, f) as lists.

    Every cycle: each PE drops the finished activations at the head of its FIFO; the detector
    broadcasts the next activation if every FIFO holds fewer than `depth`; the PEs drop what is
    finished at once (empty slices); each PE works one cycle on its head.
    """
    n_act, n_pe = len(work), len(work[0]) if len(work) else 0
    fifo = [[] for _ in range(n_pe)]           # [activation, cycles left]
    t = [None] * n_act
    s, f = ([[None] * n_pe for _ in range(n_act)] for _ in range(2))
    nxt, cyc = 0, 0

    def settle(k):
        while fifo[k] and fifo[k][0][1] == 0:
            j = fifo[k].pop(0)[0]
            if s[j][k] is None:
                s[j][k] = cyc
            f[j][k] = cyc
        if fifo[k] and s[fifo[k][0][0]][k] is None:
            s[fifo[k][0][0]][k] = cyc

    while nxt < n_act or any(fifo):
        for k in range(n_pe):
            settle(k)
        if nxt < n_act and all(len(q) < depth for q in fifo):
            t[nxt] = cyc
            for k in range(n_pe):
                fifo[k].append([nxt, int(work[nxt][k])])
                settle(k)
            nxt += 1
        for k in range(n_pe):
            if fifo[k]:
                fifo[k][0][1] -= 1
        cyc += 1
        assert cyc < 10 ** 6
    return t, s, f


# -- pruning --------------------------------------------------------------------------------------

@pytest.mark.parametrize("density, kept", [(0.1, 20), (0.5, 100), (1.0, 200), (0.001, 1),
                                           (0.0025, 1), (0.0075, 2), (0.37, 74)])
def test_prune_keeps_the_largest(density, kept):
    rng = np.random.default_rng(7)
    W = rng.standard_normal((10, 20))
    P = prune(W, density)
    keep = ref_keep(W, kept)
    for i in range(W.size):
        assert P.flat[i] == (W.flat[i] if i in keep else 0.0), i
    assert np.count_nonzero(P) == kept


def test_prune_ties_by_position():
    W = np.array([[1.0, -1.0, 1.0], [1.0, 2.0, -1.0]])
    assert prune(W, 0.5).tolist() == [[1.0, -1.0, 0.0], [0.0, 2.0, 0.0]]
    assert prune(np.ones((3, 3)), 0.3).tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]


# -- weight sharing -------------------------------------------------------------------------------

def test_codebook_deterministic_nearest_and_means():
    rng = np.random.default_rng(11)
    w = rng.standard_normal(3000)
    book, idx = share_weights(w)
    book2, idx2 = share_weights(w.copy())
    assert np.array_equal(book.codes, book2.codes) and book.fmt == book2.fmt
    assert np.array_equal(idx, idx2)
    vals = book.values
    assert book.codes[0] == 0 and book.codes.size == 16 and book.fmt.bits == EIE["weight_bits"]
    assert np.all(np.diff(book.codes[1:]) >= 0)
    assert idx.min() >= 1 and idx.max() <= 15
    for i in range(w.size):                         # every weight on its nearest shared value
        d = [abs(w[i] - vals[c]) for c in range(1, 16)]
        assert abs(w[i] - vals[idx[i]]) == min(d), i
    # k-means: each value the mean of its weights, to within sklearn's stopping tolerance (the
    # linear initialization alone is off by 0.125 on these data)
    for c in range(1, 16):
        members = w[idx == c]
        assert members.size
        assert abs(members.mean() - vals[c]) < 0.01, (c, members.mean(), vals[c])
    assert vals[1] >= w.min() - book.fmt.step and vals[-1] <= w.max() + book.fmt.step


def test_codebook_few_distinct_values_and_bits():
    levels = np.array([-0.75, -0.125, 0.25, 0.5, 1.5])
    rng = np.random.default_rng(3)
    w = rng.choice(levels, 500)
    book, idx = share_weights(w, codebook_bits=3)
    assert book.values.tolist() == [0.0] + levels.tolist()
    assert np.array_equal(book.values[idx], w)
    book, idx = share_weights(rng.standard_normal(200), codebook_bits=2)
    assert book.codes.size == 4 and idx.max() <= 3


# -- interleaved CSC ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_csc_matches_reference_and_decodes(seed):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 90)), int(rng.integers(1, 30))
    n_pe = int(rng.choice([1, 2, 3, 4, 8, 100]))
    index_bits = int(rng.choice([1, 2, 4]))
    density = float(rng.choice([0.02, 0.1, 0.5, 1.0]))
    log.info("seed %d: %d x %d, %d PEs, %d index bits, density %g", seed, m, n, n_pe,
             index_bits, density)
    W = rng.standard_normal((m, n))
    enc = compress(W, density, n_pe=n_pe, index_bits=index_bits)
    # independent dense reference: prune, then every kept weight on its shared value
    Wp = prune(W, density)
    vals = enc.codebook.values
    ref_idx = np.zeros((m, n), np.int64)
    for r, c in zip(*np.nonzero(Wp)):
        d = np.abs(vals[1:] - Wp[r, c])
        ref_idx[r, c] = 1 + int(np.flatnonzero(d == d.min())[0])
    assert np.array_equal(decode(enc.csc), ref_idx)
    assert np.array_equal(enc.to_float(), vals[ref_idx])
    v, z, ptrs = ref_encode(ref_idx, n_pe, index_bits)
    assert enc.csc.v.tolist() == v and enc.csc.z.tolist() == z
    assert enc.csc.pointers().tolist() == ptrs
    assert enc.csc.padding == v.count(0)


def test_padding_exactly_beyond_15_zeros():
    m = 60
    idx = np.zeros((m, 5), np.int64)
    idx[15, 0] = 7                    # 15 zeros before: no padding
    idx[16, 1] = 7                    # 16: one padding entry
    idx[[2, 3, 22], 2] = [1, 2, 3]    # EIE's example column: v = [1, 2, 0, 3], z = [2, 0, 15, 2]
    idx[[0, 32, 33], 3] = [5, 6, 9]   # 31 zeros, then none
    idx[48, 4] = 4                    # 48 zeros: three paddings
    csc = encode_dense(idx, n_pe=1)
    p = csc.pointers()[0]
    col = lambda j: (csc.v[p[j]:p[j + 1]].tolist(), csc.z[p[j]:p[j + 1]].tolist())
    assert col(0) == ([7], [15])
    assert col(1) == ([0, 7], [15, 0])
    assert col(2) == ([1, 2, 0, 3], [2, 0, 15, 2])
    assert col(3) == ([5, 0, 6, 9], [0, 15, 15, 0])
    assert col(4) == ([0, 0, 0, 4], [15, 15, 15, 0])
    assert csc.padding == 6 and csc.entries == 15
    assert np.array_equal(decode(csc), idx)
    # on 2 PEs the slices halve the gaps: row 16 is PE 0's local row 8 (no padding), row 33 PE 1's
    # local 16 (one), row 48 PE 0's local 24 (one)
    csc2 = encode_dense(idx, n_pe=2)
    assert csc2.padding == 2 and np.array_equal(decode(csc2), idx)


def test_storage_counts():
    idx = np.zeros((40, 3), np.int64)
    idx[[0, 20, 39], 0] = [1, 2, 3]
    idx[35, 2] = 4
    rng = np.random.default_rng(0)
    enc = compress(np.where(idx, rng.standard_normal(idx.shape) + 3, 0), 4 / 120, n_pe=2)
    st = enc.storage()
    # PE 0 holds rows 0, 20 (local 0, 10); PE 1 rows 39 and, in column 2, 35 (local 19 and 17):
    # both gaps exceed 15, one padding entry each; PE 1 stores 4 entries, so pointers are 3 bits
    assert (st["entries"], st["padding"]) == (6, 2)
    assert st["entry_storage_bits"] == 6 * 8
    assert st["pointer_width"] == 3 and st["pointer_bits"] == 2 * 4 * 3
    assert st["codebook_storage_bits"] == 16 * 16
    assert st["total_bits"] == 48 + 24 + 256
    assert st["index_overhead_bits"] == 6 * 4 + 2 * 4 + 24
    assert st["dense_bits"] == 40 * 3 * 16


# -- arithmetic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_int_matvec_equals_dense_product(seed):
    rng = np.random.default_rng(100 + seed)
    m, n = int(rng.integers(1, 120)), int(rng.integers(1, 80))
    n_pe, density = int(rng.choice([1, 3, 8, 64])), float(rng.uniform(0.01, 1.0))
    log.info("seed %d: %d x %d, %d PEs, density %.3f", 100 + seed, m, n, n_pe, density)
    enc = compress(rng.standard_normal((m, n)) * 4, density, n_pe=n_pe)
    Wi = enc.to_int()
    x = rng.integers(-(1 << 15), 1 << 15, n)
    x[rng.random(n) < 0.5] = 0
    x[:1] = -(1 << 15)
    ref = [sum(int(Wi[r, c]) * int(x[c]) for c in range(n)) for r in range(m)]
    assert enc.matvec_int(x).tolist() == ref
    xf = rng.standard_normal(n)
    np.testing.assert_allclose(enc.matvec_float(xf), enc.to_float() @ xf, rtol=1e-12, atol=1e-12)


# -- cycle model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_schedule_equals_brute_force(seed):
    rng = np.random.default_rng(200 + seed)
    n_act, n_pe = int(rng.integers(1, 40)), int(rng.integers(1, 7))
    work = rng.integers(0, 5, (n_act, n_pe))
    work[rng.random(work.shape) < 0.3] = 0
    log.info("seed %d: %d activations, %d PEs", 200 + seed, n_act, n_pe)
    for depth in (1, 2, 3, 8, 100):
        t, s, f = fifo_schedule(work, depth)
        bt, bs, bf = brute_schedule(work.tolist(), depth)
        assert t.tolist() == bt, depth
        assert s.tolist() == bs and f.tolist() == bf, depth


def test_schedule_limits():
    rng = np.random.default_rng(5)
    work = rng.integers(1, 9, (50, 6))
    _, _, f = fifo_schedule(work, 50)
    assert f[-1].max() == max(sum(int(work[j, k]) for j in range(50)) for k in range(6))
    _, _, f = fifo_schedule(work, 1)
    assert f[-1].max() == sum(max(int(w) for w in row) for row in work)
    t, _, f = fifo_schedule(np.zeros((7, 3), np.int64), 2)     # broadcast-bound: nothing to do
    assert t.tolist() == list(range(7)) and f[-1].max() == 6


def test_layer_cycles_on_a_small_layer():
    rng = np.random.default_rng(9)
    enc = compress(rng.standard_normal((50, 40)), 0.2, n_pe=4)
    x = np.where(rng.random(40) < 0.5, 1, 0)
    lc = layer_cycles(enc.csc, x, fifo_depth=2)
    _, _, ptrs = ref_encode(decode(enc.csc), 4, EIE["index_bits"])     # entries per slice
    per = np.array([[ptrs[k][j + 1] - ptrs[k][j] for j in np.flatnonzero(x)] for k in range(4)])
    bt, _, bf = brute_schedule(per.T.tolist(), 2)
    assert lc.actual == max(bt[-1] + 1, max(max(row) for row in bf))
    assert lc.entries == per.sum() and lc.ideal == per.sum() / 4 and lc.nnz_x == x.sum()
    assert lc.max_pe == per.sum(axis=1).max()
    assert lc.imbalance == per.sum(axis=1).max() / per.sum(axis=1).mean()
    assert lc.utilization == per.sum() / (4 * lc.actual)


def test_eie_layer_run_shows_the_gap():
    layer = next(l for l in EIE_LAYERS if l.name == "NT-LSTM")
    run = eie_layer_run(layer)
    c = run.cycles
    log.info("NT-LSTM: ideal %.0f, actual %d, imbalance %.3f, padding %.3f", c.ideal, c.actual,
             c.imbalance, c.padding_share)
    assert run.weights == round(layer.weight_density * layer.n_in * layer.n_out)
    assert c.nnz_x == layer.n_in                    # 100% activation density
    assert c.actual > c.ideal and c.imbalance > 1 and c.utilization < 1
    assert run.actual_us == c.actual / EIE["clock_mhz"]
    assert eie_layer_run("nt-lstm").cycles == c     # seeded: the same layer again


# -- bad input ------------------------------------------------------------------------------------

def test_bad_input_messages():
    W = np.ones((4, 4))
    for d in (0, 1.5, -0.1, float("nan"), True):
        with pytest.raises(PermdealError, match="density must be a number in \\(0, 1\\]"):
            prune(W, d)
    for b in (0, 9):
        with pytest.raises(PermdealError, match="codebook bits"):
            share_weights(np.ones(3), codebook_bits=b)
    with pytest.raises(PermdealError, match="PE count \\(n_pe\\) must be an integer >= 1, not 0"):
        compress(W, 0.5, n_pe=0)
    with pytest.raises(PermdealError, match="FIFO depth \\(fifo_depth\\) must be an integer >= 1"):
        fifo_schedule(np.ones((2, 2), np.int64), 0)
    enc = compress(W, 0.5, n_pe=2)
    with pytest.raises(PermdealError, match="FIFO depth"):
        layer_cycles(enc.csc, np.ones(4), fifo_depth=0)
    for bad in (np.ones(3, np.int64), np.ones((4, 1), np.int64)):
        with pytest.raises(PermdealError, match="x must be a vector of the layer's 4 inputs"):
            enc.matvec_int(bad)
        with pytest.raises(PermdealError, match="x must be a vector of the layer's 4 inputs"):
            layer_cycles(enc.csc, bad)
    with pytest.raises(PermdealError, match="x must be a vector"):
        enc.matvec_float(np.ones(5))
    with pytest.raises(PermdealError, match="x codes must fit 16 bits"):
        enc.matvec_int(np.array([1 << 15, 0, 0, 0]))
    with pytest.raises(PermdealError, match="x must be integer activation codes"):
        enc.matvec_int(np.ones(4))
    with pytest.raises(PermdealError, match="W must be a non-empty 2-D matrix"):
        prune(np.ones(4), 0.5)
    with pytest.raises(PermdealError, match="W holds NaN"):
        prune(np.array([[1.0, np.nan]]), 0.5)
    with pytest.raises(PermdealError, match="rows and cols name one position twice"):
        encode((4, 4), [1, 1], [2, 2], [3, 3])
    with pytest.raises(PermdealError, match="idx must lie in \\[1, 15\\]"):
        encode((4, 4), [1], [2], [16])
    with pytest.raises(PermdealError, match="index bits"):
        encode((4, 4), [1], [2], [3], index_bits=0)
    with pytest.raises(PermdealError, match="FIFO depth \\(fifo_depth\\) must be an integer >= 1"):
        eie_layer_run("NT-We", fifo_depth=0)
    with pytest.raises(PermdealError, match="PE count \\(n_pe\\) must be an integer >= 1"):
        eie_layer_run("NT-We", n_pe=0)
    with pytest.raises(PermdealError, match="unknown EIE layer 'Alex-9'"):
        eie_layer_run("Alex-9")
