"""``permdeal bench``: the EIE comparison against independent arithmetic, the RTL validation on a
tiny layer, the JSON output and the checks of its flags."""

import argparse
import json
import math

import numpy as np
import pytest

from permdeal.errors import PermdealError, ToolMissing
from permdeal.api import bench
from permdeal.cli import bench_flags
from permdeal.golden.cycles import EngineConfig, layer_cycles
from permdeal.golden.workloads import EIE_LAYERS, eie_layer

#: The paper's design and EIE's clock, as the issue states them (not read from the code).
PAPER_PES, PAPER_LANES, PAPER_MHZ, EIE_MHZ = 32, 8, 1200, 800


def parser():
    """A parser of ``permdeal bench``'s flags alone (the command line's)."""
    p = argparse.ArgumentParser(prog="permdeal bench")
    bench_flags(p)
    return p


def run(argv):
    return bench.run(**vars(parser().parse_args([str(a) for a in argv])))


def test_block_sizes_and_the_scaled_engine_keep_b():
    # p = round(1 / weight density), the list.
    assert [bench.block_size(l) for l in EIE_LAYERS] == [11, 11, 4, 25, 25, 4, 10, 9, 10]
    cfg = bench.scaled_engine(16)
    assert (cfg.n_pe, cfg.lanes) == (2, 8)
    for l in EIE_LAYERS:  # B = ceil(ceil(m / p) / lanes) on the full and the scaled layer
        p = bench.block_size(l)
        m = math.ceil(l.n_out / 16)
        assert math.ceil(math.ceil(l.n_out / p) / 256) == math.ceil(math.ceil(m / p) / 16), l.name
    assert (bench.scaled_engine(64).n_pe, bench.scaled_engine(64).lanes) == (1, 4)
    assert bench.scaled_shape(eie_layer("NT-LSTM"), 16) == (150, 76)


def test_layer_figures_are_the_cycle_model_on_the_same_draws():
    rng = np.random.default_rng(7)
    cfg = EngineConfig(PAPER_PES, PAPER_LANES)
    layer = eie_layer("Alex-7")  # its inputs are Alex-6's outputs, in blocks of Alex-6's p = 11
    x = (rng.random((4, layer.n_in)) < layer.act_density).astype(np.int64)
    r = bench.eie_layer_figures(layer, cfg, x)
    direct = [layer_cycles(xi, math.ceil(4096 / 11), 11, cfg, in_block=11).total for xi in x]
    assert r["cycles"] == direct and r["p"] == 11 and r["input_from"] == "Alex-6"
    mean = np.mean(direct)
    assert r["cycles_mean"] == pytest.approx(mean)
    assert r["cycles_std"] == pytest.approx(np.std(direct))
    assert r["us"] == pytest.approx(mean / PAPER_MHZ)
    assert r["speedup"] == pytest.approx(12.2 / (mean / PAPER_MHZ))       # EIE's actual 12.2 us
    assert r["speedup_at_eie_clock"] == pytest.approx(12.2 / (mean / EIE_MHZ))
    # at equal multipliers too: EIE's 64 PEs of one multiplier against our 32 x 8 lanes
    assert r["speedup_per_multiplier"] == pytest.approx(12.2 / (mean / EIE_MHZ) * 64 / 256)
    assert r["eie_ideal_over_actual"] == pytest.approx(11.7 / 12.2)
    assert r["nnz_mean"] == pytest.approx(x.astype(bool).sum(axis=1).mean())


def test_dense_layers_follow_the_documented_timing():
    # Every input non-zero: pairs go back to back, B cycles apart, from cycle 6 (reader 5: the
    # request's register, the 256 banks' read and two registers of their select tree of 8
    # levels, then its buffer; detector 1), their ops 3 cycles after them, the last in
    # 6 + (n-1)*B + 3 + B-1 = n*B + 8; draining starts L = 2 + 5 cycles after the last
    # operation (32 PEs: two broadcast stages) and takes B*p + 4 more.
    cfg = EngineConfig(PAPER_PES, PAPER_LANES)
    for name in ("NT-We", "NT-Wd", "NT-LSTM"):
        layer = eie_layer(name)
        p = bench.block_size(layer)
        b = math.ceil(math.ceil(layer.n_out / p) / 256)
        r = bench.eie_layer_figures(layer, cfg, np.ones((2, layer.n_in), np.int8))
        assert r["cycles"] == [layer.n_in * b + 8 + 7 + b * p + 4] * 2, name


def test_comparison_storage_and_geomean(capsys):
    layers = [eie_layer("NT-LSTM"), eie_layer("VGG-7")]
    res = bench.eie_comparison(layers, draws=3, seed=5, eie_draws=0)
    rows = res["layers"]
    for r, l in zip(rows, layers):
        p = bench.block_size(l)
        mb, nb = math.ceil(l.n_out / p), math.ceil(l.n_in / p)
        want = mb * nb * p * 16 + mb * nb * math.ceil(math.log2(p))
        assert r["storage_bits"]["total_bits"] == want
        assert r["eie_model"] is None                      # eie_draws=0
        nnz = round(l.weight_density * l.n_in * l.n_out)
        es = r["eie_storage_bits"]
        # every non-zero is one 8-bit entry at least, plus pointers and the codebook
        assert es["entries"] >= nnz and es["total_bits"] > 8 * nnz
        x = bench.activation_draws(l, 3, 5)
        assert x.shape == (3, l.n_in)
        cfg = EngineConfig(32, 8, groups=r["groups"])
        assert r["cycles"] == [layer_cycles(xi, mb, p, cfg, bench.producer_block(l, cfg)).total
                               for xi in x]
        # --groups auto: no other group count is faster on the draws it weighs
        def cycles_with(k, l=l, mb=mb, p=p, x=x):
            c = EngineConfig(32, 8, groups=k)
            return sum(layer_cycles(xi, mb, p, c, bench.producer_block(l, c)).total
                       for xi in x[:bench.AUTO_DRAWS])
        assert all(cycles_with(r["groups"]) <= cycles_with(k) for k in (1, 2, 4, 8, 16, 32)), \
            l.name
    speedups = [l.actual_us / (np.mean(r["cycles"]) / EIE_MHZ) for l, r in zip(layers, rows)]
    assert res["geomean_speedup_at_eie_clock"] == pytest.approx(math.sqrt(np.prod(speedups)))
    text = bench.eie_tables(res)
    assert "geometric-mean speed-up" in text and "3.3-4.8x" in text and "VGG-7" in text


def test_without_the_eie_models_the_columns_say_so(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "permdeal.golden.eie", None)
    monkeypatch.setitem(sys.modules, "permdeal.golden.eie_cycles", None)
    res = bench.eie_comparison([eie_layer("NT-LSTM")], draws=1, seed=0, eie_draws=1)
    (row,) = res["layers"]
    assert row["eie_model"] is None and row["eie_storage_bits"] is None
    text = bench.eie_tables(res)
    second = [l for l in text.splitlines() if l.startswith("NT-LSTM")][1]
    assert second.split()[-4:] == ["-", "581", "-", "-"]  # 581 KB: 240 x 121 x 10 x 16 + idx
    assert "golden/eie_cycles.py is not there" in text


def test_json_is_written_and_not_overwritten(tmp_path, capsys):
    out = tmp_path / "b.json"
    argv = ["--parts", "eie,golden", "--layers", "nt-lstm", "--draws", 2, "--eie-draws", 0,
            "--m", 48, "--n", 72, "--p", "3,8", "--repeat", 1, "--json", out]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "speed-up @800" in text and "project + matvec" in text and f"wrote {out}" in text
    res = json.loads(out.read_text())
    assert res["parts"] == ["eie", "golden"]
    assert [r["name"] for r in res["eie"]["layers"]] == ["NT-LSTM"]
    # No padding at 48 x 72: every row keeps one weight per block-column.
    assert [r["stored_weights"] for r in res["golden"]["rows"]] == [48 * 72 // 3, 48 * 72 // 8]
    before = out.read_text()
    with pytest.raises(PermdealError, match="exists; pass --force"):
        run(argv)
    assert out.read_text() == before
    assert run(["--parts", "golden", "--m", 48, "--n", 72, "--p", 8, "--repeat", 1,
                "--json", out, "--force"]) == 0
    assert json.loads(out.read_text())["parts"] == ["golden"]


def test_no_rtl_and_a_missing_simulator_skip(tmp_path, capsys, monkeypatch):
    assert run(["--parts", "rtl,flow", "--no-rtl", "--json", tmp_path / "a.json"]) == 0
    res = json.loads((tmp_path / "a.json").read_text())
    assert res["parts"] == [] and res["skipped"] == {"rtl": "--no-rtl", "flow": "--no-rtl"}
    assert "--no-rtl" in capsys.readouterr().out

    from permdeal.verif import runner

    def missing(sim):
        raise ToolMissing(f"{sim}: `iverilog` not found on PATH")
    monkeypatch.setattr(runner, "check_tools", missing)
    assert run(["--parts", "rtl", "--sim", "icarus", "--workdir", tmp_path / "w",
                "--json", tmp_path / "b.json"]) == 0
    assert "skipped icarus: icarus: `iverilog` not found" in capsys.readouterr().out
    res = json.loads((tmp_path / "b.json").read_text())
    assert "rtl" not in res and res["skipped"] == {"rtl": "no simulator installed"}
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("argv, message", [
    (["--layers", "Alex-6,Alex-9"], "--layers: unknown EIE layer 'Alex-9'; the layers are "
                                    "Alex-6, Alex-7"),
    (["--layers", "VGG-7,vgg-7"], "--layers: VGG-7 is named twice"),
    (["--parts", "eie,speed"], "--parts: 'speed' is not one of eie, rtl, power, flow, golden"),
    (["--parts", "flow", "--flow-density", "1.5"], "--flow-density must lie in (0, 1], not 1.5"),
    (["--parts", "flow", "--flow-shape", "12x"], "layer shape must be OUTxIN"),
    (["--parts", "eie", "--eie-draws", "-1"], "--eie-draws must be an integer >= 0, not -1"),
    (["--parts", "eie", "--scale", 32], "--scale applies to the rtl part, and --parts eie "
                                        "does not run it"),
    (["--layers", ""], "--layers names no layer"),
    (["--layers", " , "], "--layers names no layer"),
    (["--parts", "golden", "--m", 10, "--n", 12, "--p", "4,13"],
     "--golden-p 13 does not fit the golden part's 12 in x 10 out layer: a block may not exceed "
     "its longer side, 12"),
])
def test_bad_input_is_named(argv, message):
    with pytest.raises(PermdealError) as e:
        run(argv)
    assert message in str(e.value)


def test_the_power_part_reads_the_rtl_parts_scale():
    # --scale and --inputs serve the rtl and the power part: either one running takes them
    o, parts, _ = bench._options({"parts": "power", "scale": 32, "inputs": 2})
    assert parts == ["power"] and o["scale"] == 32
    o, parts, _ = bench._options({"parts": "rtl", "scale": 8})
    assert parts == ["rtl"] and o["scale"] == 8


def test_scale_factor_zero_is_refused(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--scale", "0"])
    assert "argument --scale: value must be an integer >= 1, not 0" in capsys.readouterr().err
    args = parser().parse_args([])
    args.scale = 0  # as an API caller might
    with pytest.raises(PermdealError, match="--scale must be an integer >= 1, not 0"):
        bench.run(**vars(args))


@pytest.mark.sim
def test_rtl_validation_of_a_tiny_layer(tmp_path, capsys):
    # NT-LSTM / 64: 19 inputs x 38 outputs at p = 10 on 1 PE x 4 lanes, and a tiny flow run.
    out = tmp_path / "r.json"
    assert run(["--parts", "rtl,flow", "--layers", "NT-LSTM", "--scale", 64, "--inputs", 2,
                "--sim", "icarus", "--workdir", tmp_path / "w", "--flow-pes", 1,
                "--flow-lanes", 1, "--flow-shape", "12x16", "--flow-p", 4, "--flow-batch", 2,
                "--json", out]) == 0
    text = capsys.readouterr().out
    assert "1 of 1 runs exact" in text and "the RTL flow" in text
    res = json.loads(out.read_text())
    (row,) = res["rtl"]["layers"]
    assert (row["in"], row["out"], row["p"]) == (19, 38, 10)
    assert res["rtl"]["engine"]["n_pe"] == 1 and res["rtl"]["engine"]["lanes"] == 4
    s = row["sims"]["icarus"]
    # load 19 inputs, the layer, then the output phase: the banks' read (3 cycles at 4 lanes: the
    # request's register, the read, the select tree) and the output buffer before the first of
    # 38 outputs
    assert s["cycles"] == [19 + c + 4 + 38 for c in row["layer_cycles"]] == s["model_cycles"]
    # outputs image by image against the golden model of the same random layer and inputs
    from permdeal.api import engine_bench
    model = engine_bench.random_layer_model(38, 19, 10, row["seed"])
    x = engine_bench.random_inputs(model, 2, eie_layer("NT-LSTM").act_density, row["seed"])
    y = np.load(tmp_path / "w" / "rtl" / "NT-LSTM" / "res-icarus" / "outputs.npy")
    assert np.array_equal(y, model.forward(x)) and s["images_equal"] == [True, True]
    (eng,) = res["flow"]["engines"]
    assert eng["sims"]["icarus"]["cycles"] == eng["sims"]["icarus"]["model_cycles"]


def test_scan_width_reaches_the_engine():
    """--scan-width: the eie part's cycles are the cycle model's at that width (VGG-6 with one
    group, B = 1, reads the network input in windows of 8 or 16: with the empty windows dropped
    before the detector the reader, a window a cycle, is what bounds it at 18% density, and the
    wider windows take its inputs in half the reads, docs/design.md 9)."""
    layer = eie_layer("VGG-6")
    res = bench.eie_comparison([layer], draws=2, seed=3, eie_draws=0, groups=1, scan_width=16)
    (r,) = res["layers"]
    cfg = EngineConfig(32, 8, scan_width=16)
    x = bench.activation_draws(layer, 2, 3)
    assert r["cycles"] == [layer_cycles(xi, 164, 25, cfg).total for xi in x]
    narrow = bench.eie_comparison([layer], draws=2, seed=3, eie_draws=0, groups=1)
    assert narrow["layers"][0]["cycles_mean"] > r["cycles_mean"]
