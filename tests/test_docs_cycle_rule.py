"""The cycle rules of docs/design.md, written again from the text, against the golden models.

Section 9 (the PermDNN engine) and section 11 (the SmartDeal layer unit, and the direction of
``align_shift``) are implemented here from scratch, with plain Python loops over the documented
events; none of ``golden.cycles``' or ``golden.smartdeal_cycles``' helpers is used. Only the
public results are compared: ``layer_cycles`` / ``model_cycles`` of both models and
``golden.smartdeal.rebuild_int``. A mismatch names the case and its seed.

If one of these tests fails, either the code or docs/design.md changed: fix the one that is wrong.
"""

import math
import types

import numpy as np
import pytest

from permdeal.golden import smartdeal as sd
from permdeal.golden import smartdeal_cycles as sdc
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, layer_cycles, model_cycles
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer


# -- docs/design.md section 9, from the text --------------------------------------------------------

def doc_windows(x, q, D):
    """Non-zero count of every window, in order: ceil(n/q) producer blocks of q positions, each
    cut into ceil(q/D) windows of D positions; a window holds only positions inside its block and
    below n (it may hold none and still counts as a window)."""
    n = len(x)
    z = []
    for b in range(math.ceil(n / q)):
        for s in range(math.ceil(q / D)):
            lo = b * q + s * D
            hi = min(lo + D, (b + 1) * q, n)
            z.append(sum(1 for v in x[lo:hi] if v != 0) if lo < hi else 0)
    return z


def doc_settle(n_pe):
    """Section 9: L = S + 5, S the broadcast stages: 1 up to 8 PEs, 2 up to 64, 3 up to 512."""
    S = 1
    while 8 ** S < n_pe:
        S += 1
    return S + 5


def doc_rl(nl):
    """Section 9: RL = 1 (the request's register) + 1 (the banks' read) + one register per 4
    levels of the bank-select tree (ceil(log2 NL) levels, at least 1) + 1 (the buffer): 4 up to 16
    lanes, 5 up to 256, 6 up to 4096."""
    levels = max(1, math.ceil(math.log2(nl)))
    return 1 + 1 + math.ceil(levels / 4) + 1


def doc_layer(x, m_blocks, p, n_pe, lanes, D, q=None, behind=False, issued=False):
    """Section 9, one layer: returns (nnz, B, D0, T). ``behind``: the layer starts with the
    previous layer's drain ("Hidden drain": window w of block J = w div ceil(q/D) is read no
    earlier than (J div NL + 1)*q + 4)."""
    q = D if q is None else q
    B = math.ceil(m_blocks / (n_pe * lanes))
    RL = doc_rl(n_pe * lanes)
    z = doc_windows(list(x), q, D)
    reads = []           # I_w: the cycle the reader reads window w
    leaves = []          # the cycle each window read so far left the reader
    ready = 0            # R: the first cycle the detector can take the next window with pairs
    issuer_free = None   # the first cycle the issuer can take another pair
    last_op = None
    for w, zw in enumerate(z):
        read = 0 if w == 0 else reads[-1] + 1
        if w >= RL + 1:  # the buffer holds RL + 1 windows: wait for the (w - RL)-th leave
            read = max(read, sorted(leaves)[w - RL - 1] + 1)
        if behind:       # the block is in the bank 5 cycles after its slot's last drain request
            J = w // math.ceil(q / D)
            read = max(read, (J // (n_pe * lanes) + 1) * q + 4)
        reads.append(read)
        if zw == 0:
            leaves.append(read + RL - 1)     # an empty window is dropped as its word arrives
            continue
        taken = max(read + RL, ready)        # A_w
        leaves.append(taken)
        pair = taken + 1 if issuer_free is None else max(taken + 1, issuer_free)
        for _ in range(zw - 1):
            pair += B                    # the next pair of the window goes with the last op
        ready = pair                     # the detector is free when its last pair is taken
        issuer_free = pair + B
        last_op = pair + B + 2           # ops of a pair taken in P: P+3 .. P+B+2
    last_leave = max(leaves)             # E
    d0 = last_leave + 2 if last_op is None else max(last_op + doc_settle(n_pe), last_leave + 2)
    last_drain = d0 + B * p - 1
    next_start = last_drain + 5          # read, its register, two write-back stages, bank write
    if issued:   # section 15: F = max(op_last + 2, E + 2), E + 2 without an operation
        return last_leave + 2 if last_op is None else max(last_op + 2, last_leave + 2), d0
    return sum(z), B, d0, next_start


def doc_conv_passes(times, Bp):
    """Section 15, "Cycles": passes of (F_k, D0_k); S_{k+1} = max(S_k + F_k, DS_{k-1} + B*p),
    DS_k = max(S_k + D0_k, S_{k+1}); the layer takes DS_last + B*p + 4."""
    S, DS = 0, None
    for F, D0 in times:
        nxt = S + F if DS is None else max(S + F, DS + Bp)
        DS, S = max(S + D0, nxt), nxt
    return DS + Bp + 4


def doc_grouped_layer(x, m_blocks, p, n_pe, lanes, D, K):
    """Section 9, "Lane groups": returns (nnz, B, D0, T). Each group runs the one-layer rule on
    its own blocks, with G = NL/K lanes, RL of G banks and S of the group's n_pe/K PEs."""
    G = n_pe * lanes // K
    B = math.ceil(m_blocks / G)
    blocks = [list(x[j:j + p]) for j in range(0, len(x), p)]
    d0s, nnz = [], 0
    for k in range(K):
        share = [v for blk in blocks[k::K] for v in blk]
        # the one-layer rule on the group's input: q = p, G lanes of n_pe/K PEs
        z, b, d0, _ = doc_layer(share, m_blocks, p, n_pe // K, lanes, D, q=p)
        assert b == B
        nnz += z
        d0s.append(d0)
    d0 = max(d0s)
    return nnz, B, d0, d0 + B * p - 1 + 5 + int(math.log2(K))


def doc_layer_groups(x, m_blocks, p, n_pe, lanes, D, K, K_l, q=None):
    """Section 9, "Per-layer group counts": returns (nnz, B, D0, T) of a layer of K_l groups on
    an engine of K. Group j takes blocks j, j + K_l, ... of q (= p when K_l > 1) and runs the
    one-layer rule with B = ceil(M'/(m*G)), RL of G banks and S of the n_pe/K PEs; the drain
    takes B*p requests and the next START comes 5 + log2 K cycles after the last."""
    m, G = K // K_l, n_pe * lanes // K
    B = math.ceil(m_blocks / (m * G))
    q = p if K_l > 1 else (D if q is None else q)
    blocks = [list(x[j:j + q]) for j in range(0, len(x), q)]
    d0s, nnz = [], 0
    for j in range(K_l):
        share = [v for blk in blocks[j::K_l] for v in blk]
        # the one-layer rule on n_pe/K PEs (G lanes: RL and S) for B slots: ceil(M'/m) block-rows
        # over G lanes make ceil(M'/(m*G)) slots
        z, b, d0, _ = doc_layer(share, math.ceil(m_blocks / m), p, n_pe // K, lanes, D, q=q)
        assert b == B
        nnz += z
        d0s.append(d0)
    d0 = max(d0s)
    return nnz, B, d0, d0 + B * p - 1 + 5 + int(math.log2(K))


def doc_inference(acts, layers, n_pe, lanes, D):
    """Section 9, a whole inference: load n, every layer, then m outputs from RL cycles on. One
    lane group and a layer but the last with B > 1: "Hidden drain", every layer but the first
    starts with the drain before (per layer (nnz, B, DS, T))."""
    per_layer, q, prev_drain = [], None, None
    # hidden when a layer but the last has B > 1
    hidden = any(math.ceil(mb / (n_pe * lanes)) > 1 for mb, _ in layers[:-1])
    for i, (x, (m_blocks, p)) in enumerate(zip(acts, layers)):
        nnz, B, d0, t = doc_layer(x, m_blocks, p, n_pe, lanes, D, q, behind=hidden and i > 0)
        if not hidden:
            per_layer.append((nnz, B, d0, t))
            q = p
            continue
        ds = d0 if prev_drain is None else max(d0, prev_drain)
        last = i == len(layers) - 1
        per_layer.append((nnz, B, ds, ds + B * p + 4 if last else ds))
        q, prev_drain = p, B * p
    n, m = len(acts[0]), len(acts[-1])
    return per_layer, n + sum(t for *_, t in per_layer) + m + doc_rl(n_pe * lanes)


def doc_forward(layer, x):
    """One PD layer on integer codes (README "Compressed model" and section 3 of the docs)."""
    mat, f = layer.matrix, layer.fmts
    m, n = mat.shape
    p = mat.p
    mb, nb = mat.k.shape
    W = np.zeros((mb * p, nb * p), dtype=np.int64)
    for I in range(mb):
        for J in range(nb):
            for r in range(p):
                W[I * p + r, J * p + (r + int(mat.k[I, J])) % p] = int(mat.q[I, J, r])
    xp = np.zeros(nb * p, dtype=np.int64)
    xp[:n] = x
    acc = (W @ xp)[:m]
    acc_frac = f.act.frac + f.weight.frac
    out = []
    for a, b in zip(acc.tolist(), layer.bias.tolist()):
        v = a + (b << (acc_frac - f.bias.frac))
        s = acc_frac - f.out.frac
        v = (v + (1 << (s - 1))) >> s if s > 0 else v << -s
        v = min(max(v, -(1 << (f.out.bits - 1))), (1 << (f.out.bits - 1)) - 1)
        out.append(max(v, 0) if layer.relu else v)
    return np.array(out, dtype=np.int64)


# -- one layer --------------------------------------------------------------------------------------

def _vector(rng, n, density, holes=()):
    x = rng.integers(1, 100, size=n) * rng.choice([-1, 1], size=n)
    x[rng.random(n) >= density] = 0
    for lo, hi in holes:
        x[lo:hi] = 0
    return x


LAYER_CASES = [
    # (seed, n, M', p, PEs, lanes, D, producer block q (None: network input), density, holes)
    (1, 64, 128, 8, 8, 4, 8, None, 0.35, ()),
    (2, 37, 13, 5, 2, 3, 4, None, 0.5, ((8, 20),)),      # B = 3, three empty windows in a row
    (3, 50, 7, 3, 1, 1, 8, None, 0.3, ((0, 24),)),       # B = 7; leading empty windows
    (4, 21, 60, 10, 32, 8, 8, 20, 0.6, ()),              # q = 20 > D: windows past n in block 1
    (5, 40, 4, 4, 4, 1, 3, 4, 1.0, ()),                  # B = 1, q = 4 > D = 3: short windows
    (6, 30, 9, 3, 3, 3, 16, 3, 0.2, ()),                 # q = 3 < D: one 3-word window per block
    (7, 17, 2, 2, 1, 2, 1, None, 0.5, ((5, 12),)),       # D = 1, B = 1: the empty windows cost reads
    (8, 33, 11, 6, 1, 4, 5, 7, 0.0, ()),                 # all-zero input
    (9, 9, 5, 3, 2, 2, 8, None, 0.0, ()),                # all-zero input, one window
    (10, 48, 25, 4, 2, 2, 4, None, 0.15, ((16, 40),)),   # B = 7, six empty windows in a row
    (11, 1, 1, 1, 1, 1, 8, None, 1.0, ()),               # the smallest layer
    # B = 2, six windows of 4 pairs fill the reader's buffer, then 66 empty windows: the reads
    # wait for room, and the reader falls behind the detector
    (12, 300, 2, 2, 1, 1, 4, None, 1.0, ((24, 290),)),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=[f"seed{c[0]}" for c in LAYER_CASES])
def test_layer_rule_matches_golden(case):
    seed, n, mb, p, n_pe, lanes, D, q, density, holes = case
    rng = np.random.default_rng(seed)
    x = _vector(rng, n, density, holes)
    nnz, B, d0, total = doc_layer(x.tolist(), mb, p, n_pe, lanes, D, q)
    got = layer_cycles(x, mb, p, EngineConfig(n_pe, lanes, scan_width=D), in_block=q)
    where = f"case {case} (seed {seed}), x = {x.tolist()}"
    assert (got.nnz, got.slots) == (nnz, B), where
    assert got.issue == d0, f"{where}: first drain request {got.issue}, the docs say {d0}"
    assert got.writeback == B * p + 4, where
    assert got.total == total, f"{where}: {got.total} cycles, the docs say {total}"
    assert got.ideal == nnz * B, where
    assert got.utilization == pytest.approx(nnz * mb / (n_pe * lanes * total)), where


GROUP_CASES = [
    # (seed, n, M', p, PEs, lanes, D, K, density)
    (20, 7, 2, 2, 2, 1, 4, 2, 0.6),
    (21, 64, 40, 8, 8, 4, 8, 4, 0.35),     # B = 5 over G = 8 lanes
    (22, 93, 11, 5, 4, 2, 3, 2, 0.5),      # p = 5 in windows of 3; the last block short
    (23, 120, 3, 6, 8, 1, 8, 8, 1.0),      # one lane a group: R = 3
    (24, 50, 9, 5, 4, 1, 2, 4, 0.0),       # all-zero input
]


@pytest.mark.parametrize("case", GROUP_CASES, ids=[f"seed{c[0]}" for c in GROUP_CASES])
def test_lane_group_rule_matches_golden(case):
    seed, n, mb, p, n_pe, lanes, D, K, density = case
    x = _vector(np.random.default_rng(seed), n, density)
    nnz, B, d0, total = doc_grouped_layer(x.tolist(), mb, p, n_pe, lanes, D, K)
    got = layer_cycles(x, mb, p, EngineConfig(n_pe, lanes, scan_width=D, groups=K))
    where = f"case {case}, x = {x.tolist()}"
    assert (got.nnz, got.slots, got.issue, got.total) == (nnz, B, d0, total), where
    assert got.ideal == math.ceil(nnz * B / K), where


LAYER_GROUP_CASES = [
    # (seed, n, M', p, PEs, lanes, D, K, K_l, producer block q, density)
    (30, 7, 3, 2, 4, 1, 4, 4, 2, None, 0.6),
    (31, 64, 40, 8, 8, 4, 8, 4, 1, None, 0.35),    # K_l = 1: windows of D on the network input
    (32, 93, 11, 5, 8, 2, 3, 8, 2, 5, 0.5),        # m = 4, p = 5 in windows of 3
    (33, 120, 21, 6, 8, 1, 8, 8, 4, 6, 1.0),       # R = 3, m = 2
    (34, 50, 9, 5, 4, 1, 2, 4, 1, 3, 0.4),         # K_l = 1 reads its producer's blocks of 3
    (35, 50, 9, 5, 4, 2, 2, 2, 1, 7, 0.0),         # all-zero input
]


@pytest.mark.parametrize("case", LAYER_GROUP_CASES, ids=[f"seed{c[0]}" for c in LAYER_GROUP_CASES])
def test_per_layer_group_rule_matches_golden(case):
    seed, n, mb, p, n_pe, lanes, D, K, K_l, q, density = case
    x = _vector(np.random.default_rng(seed), n, density)
    nnz, B, d0, total = doc_layer_groups(x.tolist(), mb, p, n_pe, lanes, D, K, K_l, q)
    cfg = EngineConfig(n_pe, lanes, scan_width=D, groups=K)
    got = layer_cycles(x, mb, p, cfg, in_block=q, groups=K_l)
    where = f"case {case}, x = {x.tolist()}"
    assert (got.nnz, got.slots, got.issue, got.total) == (nnz, B, d0, total), where
    assert got.ideal == math.ceil(nnz * B / K_l), where


def test_per_layer_group_example_of_section_9():
    assert doc_layer_groups([5, 0, 0, 0, 3, 7, 1], 3, 2, 4, 1, 4, 4, 2) == (4, 2, 19, 29)
    cfg = EngineConfig(4, 1, scan_width=4, groups=4)
    got = layer_cycles(np.array([5, 0, 0, 0, 3, 7, 1]), 3, 2, cfg, groups=2)
    assert (got.nnz, got.slots, got.issue, got.total) == (4, 2, 19, 29)


def test_lane_group_example_of_section_9():
    assert doc_grouped_layer([5, 0, 0, 0, 3, 7, 1], 2, 2, 2, 1, 4, 2) == (4, 2, 19, 28)


@pytest.mark.parametrize("n, D, q, B_rows, p", [(9, 8, None, 5, 3), (21, 8, 20, 3, 2),
                                                  (40, 3, 4, 7, 5)])
def test_all_zero_layer_closed_form(n, D, q, B_rows, p):
    """Section 9: an all-zero input costs W + RL cycles to the first drain request (one window
    read a cycle from cycle 0, each dropped RL - 1 = 3 cycles later, draining 2 cycles after the
    last drop), then B*p + 4."""
    cfg = EngineConfig(1, 2, scan_width=D)
    qq = D if q is None else q
    windows = math.ceil(n / qq) * math.ceil(qq / D)
    B = math.ceil(B_rows / 2)
    got = layer_cycles(np.zeros(n, np.int64), B_rows, p, cfg, in_block=q)
    assert got.issue == windows + 4, (n, D, q)
    assert got.total == windows + 4 + B * p + 4, (n, D, q)


def test_next_layer_starts_five_cycles_after_the_last_drain_request():
    """The corrected README sentence, on one worked case: B = 2, p = 3, one non-zero input."""
    cfg = EngineConfig(1, 1, scan_width=4)
    got = layer_cycles(np.array([0, 7, 0, 0]), 2, 3, cfg)
    # window 0 taken in cycle 4, its pair in 5, ops in 8 and 9, draining from 15 (9 + 6),
    # drain requests 15 .. 20 (B*p = 6), the next START in 25 = 20 + 5
    assert got.issue == 15
    assert got.total == 25


def test_empty_window_example_of_section_9():
    """Section 9's example of empty windows behind a busy detector: D0 = 18, T = 23."""
    x = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert doc_layer(x, 1, 1, 1, 1, 4) == (5, 1, 18, 23)
    got = layer_cycles(np.array(x), 1, 1, EngineConfig(1, 1, scan_width=4))
    assert (got.nnz, got.slots, got.issue, got.total) == (5, 1, 18, 23)


def test_conv_example_of_section_15():
    """Section 15's example: (F, D0) = (15, 20), (4, 9), (25, 30), B*p = 12: T_layer = 78."""
    assert doc_conv_passes([(15, 20), (4, 9), (25, 30)], 12) == 78


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_conv_rule_matches_golden(seed):
    """Section 15 from the text on a conv layer whose patches are whole windows (q = C' = D, no
    padding: each pixel's windows are an FC input's in blocks of D), against conv_layer_cycles."""
    from permdeal.golden.conv import ConvShape, im2col
    from permdeal.golden.conv_walk import ConvWalk, conv_layer_cycles
    rng = np.random.default_rng(seed)
    n_pe, lanes, D, m_blocks, p = [(2, 2, 8, 3, 4), (1, 1, 4, 2, 1), (3, 1, 4, 5, 2)][seed - 31]
    shape = ConvShape((D, 4, 4), m_blocks * p, (2, 2), (1, 1))
    fmap = rng.integers(1, 3, (D, 4, 4)) * (rng.random((D, 4, 4)) < [0.4, 0.1, 0.7][seed - 31])
    patches = im2col(shape, fmap.reshape(1, -1), p)[0]
    times = [doc_layer(list(x), m_blocks, p, n_pe, lanes, D, issued=True) for x in patches]
    B = math.ceil(m_blocks / (n_pe * lanes))
    got = conv_layer_cycles(fmap, ConvWalk(shape, D, D), m_blocks, p,
                            EngineConfig(n_pe, lanes, scan_width=D))
    assert got.total == doc_conv_passes(times, B * p), f"seed {seed}"


def test_hidden_drain_example_of_section_9():
    """Section 9's "Hidden drain" example: layer 0 D0 = 19, layer 1 reads in 6 and 8, DS = 23,
    compute 19 + 29 = 48 (49 without)."""
    cfg = EngineConfig(1, 1, scan_width=4)
    assert doc_layer([1, 2, 0, 3], 2, 2, 1, 1, 4)[2] == 19
    assert doc_layer([5, 0, 6, 7], 1, 2, 1, 1, 4, q=2, behind=True)[2] == 23
    first = layer_cycles(np.array([1, 2, 0, 3]), 2, 2, cfg, last=False)
    second = layer_cycles(np.array([5, 0, 6, 7]), 1, 2, cfg, 2, behind=4)
    assert (first.issue, first.total, second.issue, second.total) == (19, 19, 23, 29)
    assert layer_cycles(np.array([1, 2, 0, 3]), 2, 2, cfg).total + \
        layer_cycles(np.array([5, 0, 6, 7]), 1, 2, cfg, 2).total == 49


def test_worked_example_of_section_9():
    cfg = EngineConfig(2, 2, scan_width=4)
    got = layer_cycles(np.array([0, 3, 0, 0, 0, 0, 0, 0, 5, -1, 0]), 10, 5, cfg)
    assert (got.slots, got.nnz, got.issue, got.total, got.ideal) == (3, 3, 22, 41, 9)
    assert doc_layer([0, 3, 0, 0, 0, 0, 0, 0, 5, -1, 0], 10, 5, 2, 2, 4) == (3, 3, 22, 41)


@pytest.mark.parametrize("n, D, m_blocks, lanes, p", [(16, 4, 8, 4, 3), (7, 8, 3, 1, 2),
                                                      (24, 3, 9, 2, 4)])
def test_no_empty_window_closed_form(n, D, m_blocks, lanes, p):
    """Section 9: every window holds a non-zero: D0 = nnz*B + RL + 3 + L, T = nnz*B + RL + 7 +
    L + B*p (RL = 4 up to 8 lanes, L = 6 up to 8 PEs)."""
    x = np.arange(1, n + 1)
    B = math.ceil(m_blocks / lanes)
    got = layer_cycles(x, m_blocks, p, EngineConfig(1, lanes, scan_width=D))
    assert (got.issue, got.total) == (n * B + 13, n * B + 17 + B * p), (n, D, m_blocks, lanes, p)


# -- a network --------------------------------------------------------------------------------------

NET_CASES = [
    # (seed, sizes, ps, PEs, lanes, D, input density)
    (21, (20, 13, 11, 7), (3, 4, 2), 2, 1, 4, 0.6),
    (22, (24, 30, 10), (5, 2), 1, 3, 2, 0.4),
    (23, (16, 16, 16, 5), (4, 1, 8), 3, 2, 8, 1.0),
    (24, (12, 9, 6), (3, 3), 1, 1, 3, 0.0),               # all-zero network input
]


@pytest.mark.parametrize("case", NET_CASES, ids=[f"seed{c[0]}" for c in NET_CASES])
def test_network_rule_matches_golden(case):
    seed, sizes, ps, n_pe, lanes, D, density = case
    rng = np.random.default_rng(seed)
    floats = [FloatLayer(f"fc{i}", rng.normal(0, 0.6, (sizes[i + 1], sizes[i])),
                         rng.normal(0, 0.3, sizes[i + 1])) for i in range(len(ps))]
    model = compress_permdiag(floats, list(ps), QuantSpec(act=Fixed(12, 6)))
    cfg = EngineConfig(n_pe, lanes, scan_width=D)
    for v in range(3):
        x = _vector(rng, sizes[0], density)
        x[0] = 0 if v == 1 else x[0]
        acts = [x]
        for layer in model.layers:
            acts.append(doc_forward(layer, acts[-1]))
        where = f"case {case} (seed {seed}), vector {v}"
        assert np.array_equal(acts[-1], model.forward(x)), f"{where}: forward differs"
        per_layer, total = doc_inference(acts, [(l.matrix.blocks[0], l.matrix.p)
                                                for l in model.layers], n_pe, lanes, D)
        got = model_cycles(model, x, cfg)
        assert got.load == sizes[0] and got.unload == sizes[-1] + doc_rl(n_pe * lanes), where
        for i, (lc, (nnz, B, d0, t)) in enumerate(zip(got.layers, per_layer)):
            assert (lc.nnz, lc.slots, lc.issue, lc.total) == (nnz, B, d0, t), \
                f"{where}, layer {i}: golden {lc}, docs (nnz, B, D0, T) = {(nnz, B, d0, t)}"
        assert got.total == total, f"{where}: golden {got.total}, docs {total}"


# -- docs/design.md section 11: the SmartDeal layer unit ------------------------------------------

def doc_cycles_per_row(S, E, b_bits, lanes):
    """T = b_B + 2^E + floor(log2 S) bits per pass, P = ceil(S / lanes) passes."""
    return math.ceil(S / lanes) * (b_bits + 2 ** E + int(math.floor(math.log2(S))))


def doc_smartdeal_layer(codes, m, n, S, h, E, b_bits, lanes):
    """Section 11, one layer: returns (slots, active, compute)."""
    r = math.ceil(n / S)
    bpr = math.ceil(r / h)
    PT = doc_cycles_per_row(S, E, b_bits, lanes)
    fetch = 0             # the cycle the current slot's fetch starts
    accepted = None       # a_j of the last active slot
    active = 0
    for i in range(m):
        for c in range(r):
            blk, row = i * bpr + c // h, c % h
            nonzero = any((int(code) >> (E + 1)) & 1 for code in codes[blk, row])
            words = S + (S * S if c % h == 0 else 0)
            decision = fetch + words + 1          # K reads, the last word lands, the decision
            if nonzero or c == r - 1:             # the last chunk of a row always goes through
                active += 1
                accepted = decision if accepted is None else max(decision, accepted + PT)
                fetch = accepted + 1
            else:
                fetch = decision + 1              # skipped: dropped in its decision cycle
    return m * r, active, accepted + PT + 1 + 4 + 1


def _random_codes(rng, m, n, S, h, E, zero_rows):
    r = math.ceil(n / S)
    bpr = math.ceil(r / h)
    nz = rng.random((m * bpr, h, S)) < 0.6
    codes = np.where(nz, (1 << (E + 1)) | (rng.integers(0, 2, nz.shape) << E)
                     | rng.integers(0, 1 << E, nz.shape), 0)
    rows = rng.random((m * bpr, h)) < zero_rows
    codes[rows] = 0
    return codes.astype(np.int64)


SD_CASES = [
    # (seed, m, n, S, h (None: whole row), E, b_bits, lanes, share of all-zero Ce rows)
    (31, 6, 20, 3, None, 3, 8, 3, 0.3),
    (32, 5, 17, 4, 2, 2, 6, 1, 0.5),
    (33, 4, 9, 3, 1, 3, 8, 2, 1.0),            # every Ce row zero: only the last chunks run
    (34, 7, 10, 2, 3, 1, 4, 2, 0.0),
    (35, 3, 30, 5, 4, 4, 10, 3, 0.7),
    (36, 8, 5, 1, None, 2, 3, 1, 0.4),         # S = 1
]


def _sd_codes(case):
    seed, m, n, S, h, E, b_bits, lanes, zero = case
    rng = np.random.default_rng(seed)
    hh = math.ceil(n / S) if h is None else h
    codes = _random_codes(rng, m, n, S, hh, E, zero)
    b_int = rng.integers(-(1 << (b_bits - 1)), 1 << (b_bits - 1), (codes.shape[0], S, S))
    enc = sd.SmartDealCodes((m, n), S, E, hh, -2, b_bits, b_bits - 2, codes, b_int)
    return enc, hh


@pytest.mark.parametrize("case", SD_CASES, ids=[f"seed{c[0]}" for c in SD_CASES])
def test_smartdeal_layer_rule_matches_golden(case):
    seed, m, n, S, h, E, b_bits, lanes, zero = case
    enc, hh = _sd_codes(case)
    slots, active, compute = doc_smartdeal_layer(enc.codes, m, n, S, hh, E, b_bits, lanes)
    got = sdc.layer_cycles(types.SimpleNamespace(codes=enc), lanes)
    where = f"case {case} (seed {seed})"
    assert got.PT == doc_cycles_per_row(S, E, b_bits, lanes), where
    assert (got.slots, got.active) == (slots, active), where
    assert got.compute == compute, f"{where}: golden {got.compute}, docs {compute}"


def test_smartdeal_chain_rule_matches_golden():
    """Section 11: a chain with one vector in flight takes n + the sum of the layers' compute."""
    a, _ = _sd_codes((41, 7, 12, 3, None, 3, 8, 3, 0.4))
    b, _ = _sd_codes((42, 5, 7, 3, 2, 3, 8, 1, 0.6))
    layers = [types.SimpleNamespace(codes=a), types.SimpleNamespace(codes=b)]
    want = 12 + sum(doc_smartdeal_layer(e.codes, *e.shape, e.S, e.rows_per_block, e.E, e.b_bits,
                                        lanes)[2]
                    for e, lanes in ((a, 2), (b, 2)))
    assert sdc.model_cycles(types.SimpleNamespace(layers=layers), 2).total == want, "seeds 41, 42"


# -- docs/design.md section 11: the direction of align_shift ---------------------------------------

def doc_align(acc, s, bits):
    """s > 0: shift right by s, round half up; s <= 0: shift left by -s; then saturate."""
    v = (acc + (1 << (s - 1))) >> s if s > 0 else acc << -s
    return min(max(v, -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


@pytest.mark.parametrize("seed, b_frac, e_min, w_frac, bits", [
    (51, 6, -3, 5, 12),     # s = 6 + 3 - 5 = +4: right shift, round half up
    (52, 2, 0, 6, 16),      # s = -4: left shift
    (53, 4, -1, 5, 6),      # s = 0, narrow weights: saturation
    (54, 7, -4, 4, 8),      # s = +7
])
def test_align_shift_direction(seed, b_frac, e_min, w_frac, bits):
    rng = np.random.default_rng(seed)
    S, E, b_bits, m, n = 3, 3, 8, 4, 9
    codes = _random_codes(rng, m, n, S, 3, E, 0.2)
    b_int = rng.integers(-128, 128, (codes.shape[0], S, S))
    enc = sd.SmartDealCodes((m, n), S, E, 3, e_min, b_bits, b_frac, codes, b_int)
    fmt = Fixed(bits, w_frac)
    s = b_frac - e_min - w_frac
    assert sd.align_shift(enc, fmt) == s, f"seed {seed}"
    got, _ = sd.rebuild_int(enc, fmt)
    for i in range(m):
        for j in range(n):
            c, jj = divmod(j, S)
            acc = 0
            for k in range(S):
                code = int(codes[i, c, k])   # h = r = 3: block i, row c
                if (code >> (E + 1)) & 1:
                    term = int(b_int[i, k, jj]) << (code & ((1 << E) - 1))
                    acc += -term if (code >> E) & 1 else term
            assert got[i, j] == doc_align(acc, s, bits), \
                f"seed {seed}, weight ({i}, {j}): acc {acc}, s {s}"
