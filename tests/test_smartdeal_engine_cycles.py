"""The SmartDeal engine's cycle rule (docs/design.md 11.1), written again from the text, against
``golden.smartdeal_engine_cycles``; ``permdeal bench-smartdeal --parts engine`` against it and
against the PermDNN cycle model. None of the model's helpers is used to compute the expectation."""

import math

import numpy as np
import pytest

from permdeal.api import bench_smartdeal as bs
from permdeal.cli import main
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.compress import QuantSpec, compress_smartdeal
from permdeal.golden.model import FloatLayer


def doc_live(layer, i, c):
    """Section 11.1: whether chunk ``c`` of output row ``i`` has a non-zero Ce code (row ``c mod
    h`` of block ``i * bpr + c div h``; a code is non-zero when its top bit nz is set)."""
    codes = layer.codes
    r = math.ceil(layer.shape[1] / codes.S)
    h = codes.rows_per_block
    bpr = math.ceil(r / h)
    row = codes.codes[i * bpr + c // h, c % h]
    return any((int(code) >> (codes.E + 1)) & 1 for code in row)


def doc_total(model, x, L, V=1):
    """Section 11.1 from the text: per layer T = ceil(m/L) tiles, q = m - (T-1)*L; tile t walks
    the runs of consecutive chunks live for it (some row of the tile non-zero there; a tile with no
    live chunk walks one empty run); a run costs max(z, 1) cycles, z its non-zero inputs over the
    batch; U_t the sum, P_t = max(U_t, L*V), T_layer = sum P_t + q*V + 8; total = n_first*V + sum
    T_layer + m_last*V. ``x``: one vector, or V vectors. nnz from a forward pass of plain integer
    arithmetic. Returns (total, utilization)."""
    a = np.asarray(x, dtype=np.int64).reshape(V, -1)
    total = V * (a.shape[1] + model.layers[-1].shape[0])
    macs = lane_cycles = 0
    for layer in model.layers:
        m, n = layer.shape
        S = layer.codes.S
        r = math.ceil(n / S)
        T = math.ceil(m / L)
        t_layer = (m - (T - 1) * L) * V + 8
        for t in range(T):
            rows = range(t * L, min(m, (t + 1) * L))
            live = [any(doc_live(layer, i, c) for i in rows) for c in range(r)]
            runs, run = [], None
            for c in range(r):
                if live[c]:
                    run = [c, c + 1] if run is None else [run[0], c + 1]
                elif run is not None:
                    runs.append(run)
                    run = None
            runs += [run] if run is not None else []
            z = [sum(1 for v in range(V) for j in range(ra * S, min(n, rb * S)) if a[v, j] != 0)
                 for ra, rb in runs]
            u = sum(max(v, 1) for v in z) if runs else 1
            t_layer += max(u, L * V)
            macs += sum(z) * len(rows)
        total += t_layer
        lane_cycles += L * t_layer
        a = layer.forward(a)
    return total, macs / lane_cycles


def model(seed, sizes, relu_last=False):
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i}", rng.standard_normal((o, n)) * 0.5, rng.standard_normal(o) * 0.2)
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    return compress_smartdeal(layers, QuantSpec(act=10, weight=10, bias=10),
                              calibration=rng.standard_normal((32, sizes[0])), relu_last=relu_last)


@pytest.mark.parametrize("seed, sizes, lanes", [(0, (12, 9, 5), 4), (1, (7, 16, 3), 1),
                                                (2, (20, 30, 8, 2), 8), (3, (5, 3), 16)])
def test_model_is_the_documented_rule(seed, sizes, lanes):
    md = model(seed, sizes)
    rng = np.random.default_rng(seed + 100)
    x = rng.integers(-200, 200, (12, sizes[0]))
    x[rng.random(x.shape) < 0.4] = 0
    x[0] = 0                                    # no non-zero input at all
    x[1] = 0
    x[1, -1] = 5                                # one
    runs = ec.model_cycles(md, x, lanes)
    for v, run in enumerate(runs):
        total, util = doc_total(md, x[v], lanes)
        assert run.total == total, (seed, v)
        assert run.utilization == pytest.approx(util)
        assert 0 <= run.total_utilization <= run.utilization <= 1


@pytest.mark.parametrize("seed, sizes, lanes, V", [(4, (12, 9, 5), 4, 2), (5, (7, 16, 3), 1, 3),
                                                   (6, (20, 30, 8, 2), 8, 4)])
def test_batch_is_the_documented_rule(seed, sizes, lanes, V):
    """Batches of V vectors: the rule's count per batch, and one rebuilt weight per lane and
    column with a non-zero input in some vector of the batch (no pruning here: every tile walks
    every column)."""
    md = model(seed, sizes)
    rng = np.random.default_rng(seed + 100)
    x = rng.integers(-200, 200, (4 * V, sizes[0]))
    x[rng.random(x.shape) < 0.5] = 0
    x[:V] = 0                                   # a batch with no non-zero input
    runs = ec.model_cycles(md, x, lanes, batch=V)
    assert len(runs) == 4
    for b, run in enumerate(runs):
        total, util = doc_total(md, x[b * V:(b + 1) * V], lanes, V)
        assert run.total == total and run.batch == V and run.per_vector == total / V, (seed, b)
        assert run.utilization == pytest.approx(util)
        a = x[b * V:(b + 1) * V]
        for layer, lc in zip(md.layers, run.layers):
            if not any(len(t) > 1 or t[0] != (0, math.ceil(layer.shape[1] / layer.codes.S))
                       for t in ec.tile_runs(layer, lanes)):
                cols = int((a != 0).any(axis=0).sum())
                assert lc.rebuilt_weights == cols * lc.tiles * lanes
            a = layer.forward(a)
    with pytest.raises(Exception, match=rf"{4 * V + 1} input vectors do not fill batches of {V}"):
        ec.model_cycles(md, np.zeros((4 * V + 1, sizes[0]), dtype=np.int64), lanes, batch=V)


def test_bad_lanes():
    from permdeal.errors import PermdealError
    with pytest.raises(PermdealError, match=r"SmartDeal engine lanes must be an integer in "
                                            r"\[1, 256\], not 257"):
        ec.layer_cycles(4, 2, 257)
    with pytest.raises(PermdealError, match=r"layer outputs m must be an integer >= 1, not 0"):
        ec.layer_cycles(0, 2, 4)
    with pytest.raises(PermdealError, match=r"SmartDeal engine batch must be an integer in "
                                            r"\[1, 64\], not 65"):
        ec.layer_cycles(4, 2, 4, batch=65)


def test_engine_part_figures():
    """A small digits MLP (few epochs): the SmartDeal figures are the documented rule's means, the
    PermDNN figures the PermDNN cycle model's, the ratio and targets follow from them."""
    from permdeal.golden import train as tr
    from permdeal.golden.compress import compress_permdiag
    from permdeal.golden.cycles import EngineConfig, model_cycles
    e = bs.engine_figures(3, 3, 8, seed=1, hidden=(24,), epochs=3, finetune_epochs=2,
                          prunes=(0.5,))
    # rebuild the same models independently of engine_figures
    X_tr, y_tr, X_te, y_te = tr.load_digits_split(1)
    dense = tr.train(tr.init_mlp([64, 24, 10], seed=1), X_tr, y_tr, epochs=3, seed=1)
    sdm = compress_smartdeal([FloatLayer(n, W, b) for n, W, b in dense.dense_weights()],
                             QuantSpec(act=16, weight=16, bias=16), calibration=X_tr)
    codes, _ = sdm.quantize_input(X_te)
    want = [doc_total(sdm, x, bs.ENGINE_LANES) for x in codes]
    assert e["smartdeal"]["cycles"] == pytest.approx(np.mean([t for t, _ in want]))
    assert e["smartdeal"]["utilization"] == pytest.approx(np.mean([u for _, u in want]))
    assert e["images"] == len(X_te) == 450
    pd = tr.train(tr.project(dense, [4, 4]), X_tr, y_tr, epochs=2, seed=1)
    pdm = compress_permdiag([FloatLayer(n, W, b) for n, W, b in pd.dense_weights()], [4, 4],
                            QuantSpec(act=16, weight=16, bias=16), calibration=X_tr)
    pcodes, _ = pdm.quantize_input(X_te)
    pd_mean = np.mean([model_cycles(pdm, x, EngineConfig(n_pe=4, lanes=2)).total for x in pcodes])
    assert e["permdiag"]["cycles"] == pytest.approx(pd_mean)
    assert e["ratio"] == pytest.approx(e["smartdeal"]["cycles"] / pd_mean)
    assert e["targets"]["ratio_met"] == (e["ratio"] <= 1.5)
    # the pruned variant: pruned in groups of 8 outputs, fine-tuned, compressed; its chunks are
    # dead for whole tiles, so it takes fewer cycles than the dense-row model
    from permdeal.golden import smartdeal_train as st
    tuned = st.finetune(st.smartdeal_mlp(dense, 3, 3, prune=0.5, prune_group=8), X_tr, y_tr,
                        epochs=2, seed=1)
    pm = compress_smartdeal([FloatLayer(n, W, b) for n, W, b in tuned.to_mlp().dense_weights()],
                            QuantSpec(act=16, weight=16, bias=16), calibration=X_tr, prune=0.5,
                            prune_group=8)
    pcodes_sd, _ = pm.quantize_input(X_te)
    want = [doc_total(pm, x, 8) for x in pcodes_sd]
    (v,) = e["pruned"]
    assert v["cycles"] == pytest.approx(np.mean([t for t, _ in want]))
    assert v["utilization"] == pytest.approx(np.mean([u for _, u in want]))
    assert v["ratio"] == pytest.approx(v["cycles"] / pd_mean)
    assert v["cycles"] < e["smartdeal"]["cycles"]
    assert e["targets"]["utilization_met"] == (e["smartdeal"]["utilization"] >= 0.85)
    # batch 8 over the first 448 images (whole batches): the rule per batch, over 8 images each
    b = e["smartdeal_batch"]
    assert b["batch"] == 8 and b["images"] == 448
    want = [doc_total(sdm, codes[i:i + 8], 8, 8) for i in range(0, 448, 8)]
    assert b["cycles"] == pytest.approx(np.mean([t for t, _ in want]) / 8)
    assert b["utilization"] == pytest.approx(np.mean([u for _, u in want]))
    assert e["targets"]["batch_utilization_met"] == (b["utilization"] >= 0.95)
    assert b["rebuilt_weights"] < e["smartdeal"]["rebuilt_weights"]


def test_cli_engine_part(capsys, monkeypatch):
    real = bs.engine_figures
    monkeypatch.setattr(bs, "engine_figures", lambda S, E, b, seed: real(
        S, E, b, seed, hidden=(16,), epochs=2, finetune_epochs=1, prunes=(0.6,)))
    assert main(["bench-smartdeal", "--parts", "engine"]) == 0
    text = capsys.readouterr().out
    assert "SmartDeal engine (8 lanes, one rebuild engine each)" in text
    assert "PermDNN engine (4 PE x 2 lanes, p=4)" in text and "cycles SmartDeal / PermDNN" in text
    assert "SmartDeal engine, 60% of Ce rows pruned in groups of 8, fine-tuned" in text
