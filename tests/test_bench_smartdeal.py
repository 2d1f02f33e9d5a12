"""``permdeal bench-smartdeal``: its figures against independent arithmetic, its CLI checks."""

import json

import numpy as np
import pytest

from permdeal.api import bench_smartdeal as bs
from permdeal.cli import main
from permdeal.golden import smartdeal as sd


def test_unit_timing_is_the_documented_formula():
    # T = b_B + 2^E + floor(log2 S) accumulator bits per pass, P = ceil(S / lanes) passes.
    for S, E, b, lanes in [(3, 3, 8, 3), (3, 3, 8, 1), (4, 2, 6, 2), (5, 1, 4, 2)]:
        u = bs.unit_figures(S, E, b, lanes, synth=False)
        T = b + 2 ** E + int(np.floor(np.log2(S)))
        P = -(-S // lanes)
        assert (u["acc_bits"], u["passes"], u["cycles_per_row"]) == (T, P, P * T)
        assert u["cycles_per_weight"] == pytest.approx(P * T / S)


def test_layer_figures_match_a_fresh_decomposition():
    m, n, seed = 48, 60, 3
    r = bs.layer_figures(m, n, S=3, E=3, b_bits=8, p=4, seed=seed)
    W = np.random.default_rng(seed).standard_normal((m, n)) / np.sqrt(n)
    dec = sd.decompose(W, S=3, E=3)
    assert r["rel_error"] == pytest.approx(np.linalg.norm(W - dec.to_dense()) / np.linalg.norm(W))
    assert r["ce_density"] == pytest.approx(np.mean(dec.ce != 0))
    # Fixed-code storage: E + 2 bits per Ce element, b_B bits per B element.
    fixed = dec.ce.size * 5 + dec.b.size * 8
    assert r["storage_ratio"]["dense/fixed"] == pytest.approx(m * n * 16 / fixed)
    assert r["decompose_seconds"] >= 0


def test_cli_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "sd.json"
    assert main(["bench-smartdeal", "--parts", "unit,layer", "--m", "30", "--n", "33",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cycles per rebuilt weight" in text and "random 30 x 33 layer" in text
    res = json.loads(out.read_text())
    assert set(res) == {"unit", "layer"} and res["layer"]["shape"] == [30, 33]
    assert main(["bench-smartdeal", "--parts", "unit", "--json", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_cli_rejects_an_unknown_part(capsys):
    assert main(["bench-smartdeal", "--parts", "unit,speed"]) == 2
    assert "--parts: 'speed' is not one of layer, digits, unit, engine" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--E", "9"], "--E must be an integer in [1, 5], not 9"),
    (["--b-bits", "1"], "--b-bits must be an integer in [2, 16], not 1"),
    (["--S", "17"], "--S must be an integer in [1, 16], not 17"),
    (["--lanes", "7"], "--lanes must be an integer in [1, 3], not 7 (the shift-add unit has at "
                       "most S = 3 lanes)"),
    (["--S", "5", "--lanes", "6"], "--lanes must be an integer in [1, 5], not 6 (the shift-add "
                                   "unit has at most S = 5 lanes)"),
    (["--m", "40", "--n", "64", "--p", "65"], "--p 65 does not fit the 40 x 64 layer: a block "
                                              "may not exceed its longer side, 64"),
    (["--parts", ","], "--parts names no part (choose from layer, digits, unit, engine, hardware)"),
])
def test_cli_names_the_bad_flag_before_any_part_runs(capsys, monkeypatch, argv, message):
    def never(*args, **kwargs):
        raise AssertionError("a part ran before the flags were checked")
    for part in ("layer_figures", "digits_figures", "unit_figures"):
        monkeypatch.setattr(bs, part, never)
    argv = ["--parts", "digits,layer,unit", *argv] if "--parts" not in argv else argv
    assert main(["bench-smartdeal", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"permdeal bench-smartdeal: error: {message}"
