"""The engine's cycle model (docs/design.md 4.2 and the contract in golden/cycles.py's docstring)."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, layer_cycles, model_cycles, window_nnz
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer


def ref_slots(block_rows, total_lanes):
    b = 0
    while b * total_lanes < block_rows:
        b += 1
    return b


def ref_op_to_drain(n_pe):
    """Broadcast registers (one per level of a tree of fan-out 8) plus the lane's 5 stages."""
    levels, reach = 1, 8
    while reach < n_pe:
        levels, reach = levels + 1, reach * 8
    return levels + 5


def ref_bank_latency(total_lanes):
    """The request's register, the banks' read, then a register after every 4 levels of the
    bank-select tree."""
    levels = max(1, math.ceil(math.log2(total_lanes)))
    return 2 + math.ceil(levels / 4)


def ref_drain_start(z, b, settle, read_latency=4, avail=None):
    """D0 by stepping the engine's handshakes cycle by cycle (golden/cycles.py's steps 1-3):
    the reader reads a window a cycle while its buffer (``read_latency + 1`` windows, the reads
    in flight counted) has room; a read's word arrives ``read_latency - 1`` cycles later, where an
    empty window is dropped (its place free from the next cycle) and one with pairs enters the
    buffer, offered from the next cycle; the issuer's slot counter shows slot t of a pair taken
    in P in cycle P + 1 + t, its op goes out 2 cycles later, and draining starts ``settle``
    cycles after the last op, or 2 cycles after the last window left the reader. ``avail``: the
    first cycle each window may be read (its block written by the drain before), or None."""
    w_count, room = len(z), read_latency + 1
    reads, held, arrivals = 0, 0, {}    # windows read; held + in flight; cycle -> window
    fifo = []                           # windows with pairs in the buffer: (offered from, z)
    remaining, last_leave, left = 0, None, 0
    slots = {}          # cycle -> True when the slot counted then is the last of its pair
    cyc = 0
    while True:
        shown = slots.get(cyc)
        issuer_ready = shown is None or shown
        pair = remaining > 0 and issuer_ready
        det_ready = remaining == 0 or (pair and remaining == 1)
        offered = bool(fifo) and fifo[0][0] <= cyc
        ops = {c + 2 for c in slots}
        quiet = (left == w_count and last_leave < cyc and remaining == 0
                 and all(c not in slots and c not in ops for c in range(cyc - settle + 2, cyc + 1))
                 and not any(c > cyc for c in slots))
        if quiet:
            return cyc + 1
        change = 0
        if pair:
            remaining -= 1
            for t in range(b):
                slots[cyc + 1 + t] = t == b - 1
        if offered and det_ready:
            remaining = fifo.pop(0)[1]
            last_leave, left, change = cyc, left + 1, change - 1
        if cyc in arrivals:
            w = arrivals.pop(cyc)
            if z[w]:
                fifo.append((cyc + 1, z[w]))
            else:
                last_leave, left, change = cyc, left + 1, change - 1
        if reads < w_count and held < room and (avail is None or cyc >= avail[reads]):
            arrivals[cyc + read_latency - 1] = reads
            reads, change = reads + 1, change + 1
        held += change
        cyc += 1


def ref_layer(x, block_rows, p, n_pe, lanes, sw, in_block=None, behind=None, last=True):
    """The model by hand: windows cut by loops, D0 by stepping; returns every figure.
    ``behind``: the B*p of the layer before whose drain this layer starts with (docs/design.md
    9, "Hidden drain"); ``last``: whether the output phase follows (else the next layer starts
    with this layer's drain)."""
    nl = n_pe * lanes
    b = ref_slots(block_rows, nl)
    in_block = in_block or sw
    z = []
    for blk in range(0, len(x), in_block):
        for w0 in range(blk, blk + in_block, sw):
            z.append(sum(1 for v in x[w0:min(w0 + sw, blk + in_block)] if v != 0))
    nnz = sum(z)
    avail = None
    if behind is not None:   # window w's block J is in the bank from (J div NL + 1)*q + 4 on
        per_block = -(-in_block // sw)
        avail = [((w // per_block) // nl + 1) * in_block + 4 for w in range(len(z))]
    issue = ref_drain_start(z, b, ref_op_to_drain(n_pe), ref_bank_latency(nl) + 1, avail)
    if behind is not None:
        issue = max(issue, behind)   # the drain before has the write-back until then
    wb = b * p + 4  # drain read and register, the write-back's two stages, the bank write
    wb = wb if last else 0
    total = issue + wb
    return dict(nnz=nnz, slots=b, issue=issue, writeback=wb, total=total, ideal=nnz * b,
                utilization=Fraction(nnz * block_rows, nl * total))


def check(lc, want, msg):
    for f in ("nnz", "slots", "issue", "writeback", "total", "ideal"):
        assert getattr(lc, f) == want[f], f"{msg}: {f} = {getattr(lc, f)}, want {want[f]}"
    assert math.isclose(lc.utilization, float(want["utilization"]), rel_tol=1e-12), msg


def random_cfg(rng):
    return dict(n_pe=rng.randint(1, 6), lanes=rng.randint(1, 4), sw=rng.choice([1, 2, 3, 4, 5, 8, 16]))


def engine(c):
    return EngineConfig(c["n_pe"], c["lanes"], scan_width=c["sw"])


@pytest.mark.parametrize("seed", range(40))
def test_layer_cycles_random(seed):
    rng = random.Random(seed)
    c = random_cfg(rng)
    n = rng.randint(1, 70)
    density = rng.choice([0.0, 0.05, 0.3, 0.7, 1.0])
    x = [rng.randint(-100, 100) or 1 if rng.random() < density else 0 for _ in range(n)]
    block_rows, p = rng.randint(1, 40), rng.randint(1, 9)
    lc = layer_cycles(np.array(x), block_rows, p, engine(c))
    check(lc, ref_layer(x, block_rows, p, **c), f"seed {seed}: {c}, n={n}, M'={block_rows}, p={p}")


@pytest.mark.parametrize("n, sw", [(1, 8), (8, 8), (9, 8), (17, 8), (5, 1), (7, 3), (64, 16)])
def test_all_zero_input_costs_one_read_per_window(n, sw):
    cfg = EngineConfig(2, 2, scan_width=sw)
    lc = layer_cycles(np.zeros(n, np.int64), 5, 3, cfg)
    windows = -(-n // sw)
    # Window w is read in cycle w (nothing is held, so the buffer always has room) and dropped
    # as it arrives, in cycle w + 3 (4 lanes: RL = 4); draining starts 2 cycles after the last
    # drop, in (windows - 1) + 3 + 2 = windows + 4. B = ceil(5 / 4) = 2; write-back 2*3 + 4
    assert (lc.nnz, lc.slots, lc.issue, lc.writeback) == (0, 2, windows + 4, 10)
    assert lc.total == windows + 4 + 10
    assert lc.ideal == 0 and lc.utilization == 0.0


@pytest.mark.parametrize("n, sw, block_rows, nl", [(16, 8, 7, 4), (10, 4, 8, 8), (3, 8, 33, 8),
                                                    (12, 5, 1, 6)])
def test_dense_input(n, sw, block_rows, nl):
    cfg = EngineConfig(nl, 1, scan_width=sw)
    lc = layer_cycles(np.arange(1, n + 1), block_rows, 4, cfg)
    b = -(-block_rows // nl)
    # Pairs back to back from cycle 5, B cycles each, their ops 3 cycles after them: the last op
    # in 5 + (n-1)*B + 3 + B-1 = n*B + 7, draining 6 later (one broadcast stage, 5 lane stages).
    assert lc.ideal == n * b and lc.issue == n * b + 13
    assert lc.total == n * b + 13 + b * 4 + 4


def test_hand_worked_example():
    # 2 PEs x 2 lanes, M' = 10 -> B = 3; scan width 4 over 11 inputs: windows read in 0, 1, 2;
    # [0 3 0 0] accepted in 4, its pair in 5 (ops 8-10); [0 0 0 0] dropped as it arrives in 4;
    # [5 -1 0] offered from 6 and accepted then (the detector is free from 5), its pairs in 8
    # (the issuer is busy until then) and 11; ops come 3 cycles after their pair: 8-10, 11-13,
    # 14-16. Draining from 16 + 1 + 5 = 22.
    cfg = EngineConfig(2, 2, scan_width=4)
    x = np.array([0, 3, 0, 0, 0, 0, 0, 0, 5, -1, 0])
    lc = layer_cycles(x, 10, 5, cfg)
    assert (lc.nnz, lc.slots, lc.issue, lc.writeback) == (3, 3, 22, 3 * 5 + 4)
    assert lc.total == 22 + 19 == 41
    assert lc.ideal == 9
    assert lc.utilization == pytest.approx(3 * 10 / (4 * 41))


def test_empty_windows_cost_reads_not_detector_cycles():
    # One non-zero per window of 1 then four empty windows, read one a cycle (window w in cycle
    # w, offered in w + 4): the windows with pairs, 0, 5, 10 and 15, come 5 cycles apart
    # whatever B. B = 1: pairs 5, 10, 15, 20, the last op 20 + 1 + 2 = 23, draining 23 + 6;
    # B = 5: pairs 5, 10, 15, 20 (the issuer free again just then), the last op 20 + 5 + 2 = 27,
    # draining 27 + 6. (The last window, 19, is dropped in 22: 22 + 2 is earlier.)
    x = np.array([1, 0, 0, 0, 0] * 4)
    slow = layer_cycles(x, 1, 1, EngineConfig(1, 1, scan_width=1))
    fast = layer_cycles(x, 5, 1, EngineConfig(1, 1, scan_width=1))
    assert slow.issue == 29
    assert fast.issue == 33


def test_empty_windows_behind_a_busy_detector_cost_nothing():
    # B = 1 (M' = 1), D = 4, x = [1 1 1 1 | 0 0 0 0 | 0 0 0 0 | 1]: windows read in 0..3 (the
    # buffer of RL + 1 = 5 never fills). Window 0 accepted in 4, its pairs in 5, 6, 7, 8; windows
    # 1 and 2 dropped as they arrive (4 and 5); window 3 offered from 3 + 4 = 7 and accepted in 8,
    # with window 0's last pair; its pair in 9, its op in 9 + 1 + 2 = 12, draining from 12 + 6 =
    # 18. With a detector cycle for each empty window (before issue 15) it was 20: windows 1, 2, 3
    # taken in 8, 9, 10.
    x = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    lc = layer_cycles(x, 1, 1, EngineConfig(1, 1, scan_width=4))
    assert (lc.nnz, lc.issue, lc.total) == (5, 18, 18 + 1 + 4)


def test_float_activations_only_zero_matters():
    cfg = EngineConfig(1, 1, scan_width=2)
    lc = layer_cycles(np.array([0.0, 1e-300, -0.0, 2.5]), 1, 1, cfg)
    assert (lc.nnz, lc.issue) == (2, 15)  # pairs in 5 and 6, the last op in 9, drain in 15


@pytest.mark.parametrize("x", [np.zeros((2, 3)), np.array([]), np.float64(1.0)])
def test_layer_cycles_refuses_bad_vector(x):
    with pytest.raises(PermdealError) as e:
        layer_cycles(x, 2, 2, EngineConfig(1, 1))
    assert "activation vector" in str(e.value)


@pytest.mark.parametrize("seed", range(10))
def test_utilization_in_unit_interval(seed):
    rng = random.Random(seed)
    c = random_cfg(rng)
    cfg = engine(c)
    for _ in range(20):
        n = rng.randint(1, 50)
        x = np.array([rng.choice([0, 0, 1, -3]) for _ in range(n)])
        x[rng.randrange(n)] = 7  # at least one non-zero
        lc = layer_cycles(x, rng.randint(1, 30), rng.randint(1, 8), cfg)
        assert 0 < lc.utilization <= 1, f"seed {seed}: {lc}"
    # M' a multiple of NL: useful 8*8 = 64; pairs in 5, 7, .., 19, the last op 23, drain from
    # 29, write-back 2*1 + 4: total 35 on 4 lanes
    lc = layer_cycles(np.ones(8), 8, 1, EngineConfig(2, 2, scan_width=64))
    assert lc.total == 35 and lc.utilization == pytest.approx(64 / (4 * 35))


# -- EngineConfig ----------------------------------------------------------------------------------

def test_engine_defaults_and_json():
    cfg = EngineConfig(3, 2)
    assert cfg.total_lanes == 6
    assert cfg.to_json() == {"n_pe": 3, "lanes": 2, "scan_width": 8, "multiplier": "native"}
    assert EngineConfig(**cfg.to_json()) == cfg
    booth = EngineConfig(3, 2, multiplier="booth")
    assert EngineConfig(**booth.to_json()) == booth != cfg


@pytest.mark.parametrize("kwargs, word", [
    (dict(n_pe=0, lanes=1), "PE count"), (dict(n_pe=-2, lanes=1), "PE count"),
    (dict(n_pe=1.0, lanes=1), "PE count"), (dict(n_pe="4", lanes=1), "PE count"),
    (dict(n_pe=True, lanes=1), "PE count"), (dict(n_pe=None, lanes=1), "PE count"),
    (dict(n_pe=1, lanes=0), "lanes per PE"), (dict(n_pe=1, lanes=2.5), "lanes per PE"),
    (dict(n_pe=1, lanes=1, scan_width=0), "scan width"),
    (dict(n_pe=1, lanes=1, multiplier="wallace"), "multiplier (--multiplier) must be one of "
                                                  "native, booth, dsp"),
    (dict(n_pe=1, lanes=1, scan_width=False), "scan width"),
])
def test_engine_config_validation(kwargs, word):
    with pytest.raises(PermdealError) as e:
        EngineConfig(**kwargs)
    assert word in str(e.value)


def test_engine_numpy_integers_accepted():
    cfg = EngineConfig(np.int64(2), 1, scan_width=np.int32(1))
    assert cfg.total_lanes == 2


@pytest.mark.parametrize("n_pe, lanes", [(1, 1), (1, 8), (4, 1), (3, 5), (32, 8)])
def test_slots(n_pe, lanes):
    cfg = EngineConfig(n_pe, lanes)
    for mb in range(1, 600):
        assert cfg.slots(mb) == ref_slots(mb, n_pe * lanes), f"M'={mb}"


@pytest.mark.parametrize("n_pe, lanes", [(1, 1), (1, 3), (2, 1), (2, 3), (4, 2)])
def test_lane_of(n_pe, lanes):
    """Block-row I = t*NL + g goes to slot t of lane g = pe*lanes + lane: filled round-robin."""
    cfg = EngineConfig(n_pe, lanes)
    block_rows = 3 * n_pe * lanes + 2
    want, I = {}, 0
    for t in range(ref_slots(block_rows, n_pe * lanes)):
        for pe in range(n_pe):
            for lane in range(lanes):
                if I < block_rows:
                    want[I] = (pe, lane, t)
                I += 1
    got = {I: tuple(cfg.lane_of(I)) for I in range(block_rows)}
    assert got == want
    # every (pe, lane) gets B or B-1 block-rows: balanced
    counts = {}
    for pe, lane, _ in got.values():
        counts[pe, lane] = counts.get((pe, lane), 0) + 1
    assert max(counts.values()) == ref_slots(block_rows, n_pe * lanes)


# -- a whole inference -----------------------------------------------------------------------------

def ref_forward_layer(layer, x):
    """y = writeback(W x) on Python ints: W from k/q by the docs/design.md 4.1 formula."""
    mat, f = layer.matrix, layer.fmts
    m, n = mat.shape
    p = mat.p
    acc_frac = f.act.frac + f.weight.frac
    y = []
    for i in range(m):
        I, r = divmod(i, p)
        acc = 0
        for j in range(n):
            J, c = divmod(j, p)
            if c == (r + int(mat.k[I, J])) % p:
                acc += int(mat.q[I, J, r]) * int(x[j])
        v = acc + int(layer.bias[i]) * 2 ** (acc_frac - f.bias.frac)
        s = acc_frac - f.out.frac
        v = math.floor(Fraction(v, 2 ** s) + Fraction(1, 2)) if s > 0 else v * 2 ** (-s)
        v = min(max(v, f.out.min), f.out.max)
        y.append(max(v, 0) if layer.relu else v)
    return y


@pytest.mark.parametrize("seed", range(4))
def test_model_cycles(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(3, 20, size=4)]
    layers = [FloatLayer(f"fc{i}", rng.normal(0, 0.5, (sizes[i + 1], sizes[i])),
                         rng.normal(0, 0.2, sizes[i + 1])) for i in range(3)]
    ps = [int(rng.integers(1, 6)) for _ in range(3)]
    model = compress_permdiag(layers, ps, QuantSpec(act=Fixed(12, 6)))
    cfg = EngineConfig(int(rng.integers(1, 4)), int(rng.integers(1, 3)), scan_width=4)
    x = [int(v) if rng.random() < 0.6 else 0 for v in rng.integers(-200, 200, size=sizes[0])]
    ic = model_cycles(model, np.array(x), cfg)
    acts = [x]
    for layer in model.layers:
        acts.append(ref_forward_layer(layer, acts[-1]))
    out_latency = ref_bank_latency(cfg.n_pe * cfg.lanes) + 1
    assert ic.load == sizes[0] and ic.unload == sizes[-1] + out_latency, f"seed {seed}"
    assert len(ic.layers) == 3
    for i, (a, layer, lc) in enumerate(zip(acts, model.layers, ic.layers)):
        mb = -(-layer.shape[0] // ps[i])
        # one lane group and a layer but the last with B > 1: every layer but the first starts
        # with the drain before
        nl = cfg.n_pe * cfg.lanes
        hidden = any(ref_slots(-(-l.shape[0] // q), nl) > 1
                     for l, q in zip(model.layers[:-1], ps))
        behind = None
        if i > 0 and hidden:
            mb_prev = -(-model.layers[i - 1].shape[0] // ps[i - 1])
            behind = ref_slots(mb_prev, cfg.n_pe * cfg.lanes) * ps[i - 1]
        want = ref_layer(a, mb, ps[i], cfg.n_pe, cfg.lanes, 4,
                         in_block=4 if i == 0 else ps[i - 1], behind=behind,
                         last=i == 2 or not hidden)
        check(lc, want, f"seed {seed}: layer {i}")
    assert ic.compute == sum(lc.total for lc in ic.layers)
    assert ic.total == sizes[0] + ic.compute + sizes[-1] + out_latency


@pytest.mark.parametrize("seed", range(30))
def test_layer_cycles_producer_blocks(seed):
    rng = random.Random(3000 + seed)
    c = random_cfg(rng)
    n, in_block = rng.randint(1, 60), rng.randint(1, 20)
    x = [rng.choice([0, 0, rng.randint(-9, 9)]) for _ in range(n)]
    block_rows, p = rng.randint(1, 40), rng.randint(1, 7)
    lc = layer_cycles(np.array(x), block_rows, p, engine(c), in_block=in_block)
    want = ref_layer(x, block_rows, p, c["n_pe"], c["lanes"], c["sw"], in_block=in_block)
    check(lc, want, f"seed {3000 + seed}, cfg {c}, n {n}, in_block {in_block}")


def test_producer_blocks_by_hand():
    # Producer block 3, scan width 2: windows [x0 x1] [x2] [x3 x4] [x5] [x6 -] [- -]: the last
    # block holds only x6; its second window is all padding and still passes the detector.
    x = np.array([0, 5, 0, 0, 0, 7, 1])
    lc = layer_cycles(x, 3, 1, EngineConfig(1, 1, scan_width=2), in_block=3)  # B = 3 slots
    # windows read in 0..5; 0, 3 and 4 accepted in 4, 7 and 8, 1, 2 and 5 dropped as they
    # arrive (4, 5, 8); pairs in 5, 8, 11 (B apart): the last op in 11 + 3 + 2 = 16, drain in
    # 16 + 6 = 22
    assert lc.issue == 22
    assert lc.nnz == 3


@pytest.mark.parametrize("seed", range(20))
def test_window_schedule_is_what_layer_cycles_counts(seed):
    from permdeal.golden.cycles import window_schedule

    rng = random.Random(5000 + seed)
    c = random_cfg(rng)
    cfg = engine(c)
    n, in_block = rng.randint(1, 60), rng.randint(1, 20)
    x = [rng.choice([0, 0, rng.randint(-9, 9)]) for _ in range(n)]
    rng.randint(1, 40)  # drawn, unused: keeps every seed's stream as it was
    sched = window_schedule(n, in_block, cfg.scan_width, cfg.total_lanes)
    z = [sum(1 for k in range(cfg.scan_width) if mask >> k & 1 and x[base + k] != 0)
         for _, _, base, mask in sched]
    assert window_nnz(np.array(x), in_block, cfg.scan_width).tolist() == z, f"seed {5000 + seed}"
    # Every real input lies in exactly one window.
    covered = sorted(base + k for _, _, base, mask in sched for k in range(cfg.scan_width)
                     if mask >> k & 1)
    assert covered == list(range(n)), f"seed {5000 + seed}"


# -- lane groups (docs/design.md 4.2 and 9) ---------------------------------------------------------

@pytest.mark.parametrize("groups, n_pe", [(3, 6), (8, 4), (2, 3), (0, 2)])
def test_lane_groups_validated(groups, n_pe):
    with pytest.raises(PermdealError, match=r"lane groups \(--groups\)"):
        EngineConfig(n_pe, 2, groups=groups)


def test_lane_group_figures():
    cfg = EngineConfig(32, 8, groups=4)
    # 8 PEs a group: G = 64 lanes hold every block-row, one broadcast register level, the bank
    # select over 64 banks; two adder stages sum the four groups' partial sums
    assert (cfg.group_pes, cfg.group_lanes, cfg.reduce_stages) == (8, 64, 2)
    assert cfg.slots(373) == 6 and cfg.broadcast_stages == 1
    assert cfg.bank_read_latency == ref_bank_latency(64) and cfg.writeback_latency == 6
    assert cfg.to_json()["groups"] == 4 and EngineConfig(**cfg.to_json()) == cfg
    assert "groups" not in EngineConfig(32, 8).to_json()      # one group: as before groups
    assert cfg.lane_of(70, group=3) == (3 * 8 + 0, 6, 1)      # h = 6, t = 1 of lane 3*64 + 6


def test_group_inputs_split_by_block():
    from permdeal.golden.cycles import group_inputs, group_n
    x = np.arange(1, 8)                         # 7 inputs, blocks of 2: J = 0, 1, 2, 3 (short)
    a, b = group_inputs(x, 2, 2)
    assert a.tolist() == [1, 2, 5, 6] and b.tolist() == [3, 4, 7]
    assert group_n(7, 2, 2) == [4, 3] and group_n(9, 3, 4) == [3, 3, 3, 0]


def test_lane_groups_hand_worked():
    # 2 PEs x 1 lane in two groups (G = 1, B = M' = 2), p = 2, D = 4, n = 7: the input in blocks
    # of p, group 0 takes blocks 0 and 2 (words 0 1 4 5), group 1 blocks 1 and 3 (words 2 3 6).
    # One bank a group: RL = 4; one PE a group: L = 6.
    # group 0: windows [5 0] (taken 4, pair 5, ops 8-9) and [3 7] (taken 5, pairs 7 and 9:
    #   the issuer is busy until 7), last op 9 + 2 + 2 = 13, D0 = 19;
    # group 1: [0 0] (read in 0, dropped in 3) and [1] (read in 1, taken in 5, pair 6), last op
    # 10, D0 = 16. Draining waits for both: 19; write-back B*p + 4 + 1 adder stage = 9.
    cfg = EngineConfig(2, 1, scan_width=4, groups=2)
    lc = layer_cycles(np.array([5, 0, 0, 0, 3, 7, 1]), 2, 2, cfg)
    assert (lc.nnz, lc.slots, lc.issue, lc.writeback, lc.total) == (4, 2, 19, 9, 28)
    assert lc.utilization == pytest.approx(4 * 2 / (2 * 28))
    # all zero: two windows a group, read in 0 and 1, dropped in 3 and 4: D0 = W + RL = 6
    assert layer_cycles(np.zeros(7), 2, 2, cfg).total == 6 + 9


def test_lane_groups_fill_lanes_that_one_group_leaves_idle():
    # M' = 1 on 4 lanes: one group keeps 3 of the 4 lanes idle; four groups of one lane each
    # take a quarter of the 64 dense inputs: a quarter of the pairs each, in parallel
    x = np.ones(64)
    one = layer_cycles(x, 1, 4, EngineConfig(4, 1))
    four = layer_cycles(x, 1, 4, EngineConfig(4, 1, groups=4))
    assert one.issue > 64 and four.issue < 64 // 4 + 16
    assert four.utilization > 2 * one.utilization     # (the fixed latencies stay)


def test_lane_groups_need_equal_block_sizes_and_enough_blocks():
    from permdeal.golden.cycles import auto_groups
    cfg = EngineConfig(4, 1, groups=2)
    with pytest.raises(PermdealError, match=r"p = 3 after p = 2; use 1 group for this layer"):
        layer_cycles(np.ones(8), 2, 3, cfg, in_block=2)
    with pytest.raises(PermdealError, match="leaves lane groups without input"):
        layer_cycles(np.ones(3), 2, 3, cfg)       # one block of 3 for two groups
    # auto: the count with the fewest cycles among those the layers allow
    assert auto_groups([(64, 1, 4)], EngineConfig(4, 1)) == 4
    assert auto_groups([(64, 1, 4), (4, 1, 2)], EngineConfig(4, 1)) == 1   # p differs
    assert auto_groups([(64, 16, 4)], EngineConfig(4, 1)) == 1              # M' fills 4 lanes


def test_per_layer_group_counts():
    """Per-layer counts (docs/design.md 4.2): the engine has the largest; equal counts are stored
    as none; a layer of K_l groups spans m = K / K_l hardware groups (B over m*G lanes, B*p
    drain requests, W = K / min K_l write-back groups), its group j's lane h' in hardware group
    j + (h' div G) * K_l."""
    cfg = EngineConfig.with_layer_groups(EngineConfig(8, 2), (1, 4, 2))
    assert (cfg.groups, cfg.layer_groups, cfg.group_lanes) == (4, (1, 4, 2), 4)
    assert [cfg.groups_of(i) for i in range(3)] == [1, 4, 2]
    assert EngineConfig.with_layer_groups(EngineConfig(8, 2), (4, 4)).layer_groups == ()
    assert (cfg.span(1), cfg.slots(13, 1), cfg.drain_cycles(13, 3, 1)) == (4, 1, 3)
    assert (cfg.span(2), cfg.slots(13, 2), cfg.drain_cycles(13, 3, 2)) == (2, 2, 6)
    assert (cfg.slots(13), cfg.drain_cycles(13, 3)) == (4, 12)
    assert cfg.writeback_groups == 4 and EngineConfig(8, 2, groups=4).writeback_groups == 1
    assert EngineConfig.with_layer_groups(EngineConfig(8, 2), (2, 8)).writeback_groups == 4
    # K_l = 2: group 1's lane h' = 5 is lane 1 of hardware group 1 + 1*2 = 3: engine lane 13
    assert cfg.hardware_lane(1, 5, 2) == 13 and cfg.lane_of(5 + 8, 1, 2) == (6, 1, 1)
    # K_l = 1 on the network input: blocks of D, any producer's p after it
    assert cfg.in_block(4, None, 1) == 8 and cfg.in_block(4, 3, 1) == 3
    for counts, message in (((1, 3), "of layer 1 must be a power of two that divides the PE"),
                            ((1, 16), "of layer 1 must be a power of two that divides the PE"),
                            ((0, 2), "lane groups of layer 0")):
        with pytest.raises(PermdealError, match=message):
            EngineConfig.with_layer_groups(EngineConfig(8, 2), counts)
    with pytest.raises(PermdealError, match="engine's count 4 must be the largest layer's, not 2"):
        EngineConfig(8, 2, groups=4, layer_groups=(1, 2))
    with pytest.raises(PermdealError, match="name 3 layers' counts for a network of 2"):
        cfg.check_layers(2)


def test_auto_layer_groups_picks_each_layers_fastest():
    from permdeal.golden.cycles import auto_layer_groups
    # one layer: the single-count choice
    assert auto_layer_groups([(64, 1, 4)], EngineConfig(4, 1)) == (4,)
    # a layer whose p differs from its producer's keeps one group, the first may take more
    got = auto_layer_groups([(64, 1, 4), (4, 1, 2)], EngineConfig(4, 1))
    assert got[1] == 1
    # no other counts are faster (on the stand-in inputs), checked by brute force
    from itertools import product
    layers = [(64, 1, 4), (4, 4, 4), (16, 1, 4)]
    x = [np.resize(np.array([1, 0], np.int8), n) for n, _, _ in layers]

    def total(counts):
        cfg = EngineConfig.with_layer_groups(EngineConfig(4, 1), counts)
        try:
            return sum(layer_cycles(xi, mb, p, cfg, None if i == 0 else 4, counts[i]).total
                       for i, (xi, (_, mb, p)) in enumerate(zip(x, layers)))
        except PermdealError:   # counts the layers do not allow
            return float("inf")
    best = min(total(c) for c in product((1, 2, 4), repeat=3))
    assert total(auto_layer_groups(layers, EngineConfig(4, 1))) == best
