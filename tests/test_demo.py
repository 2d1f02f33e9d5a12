"""``permdeal demo`` end to end (what ``make demo`` runs), without synthesis: its RTL outputs are
recomputed here from the folders it wrote, image by image."""

import json

import numpy as np
import pytest

from permdeal.cli import main
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden import train as tr
from permdeal.golden.model import QuantModel
from permdeal.golden.smartdeal_model import SmartDealModel

pytestmark = pytest.mark.sim


def test_demo_rtl_equals_golden_image_by_image(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--no-synth"]) == 0
    text = capsys.readouterr().out
    assert "450 of 450 images equal to the golden model" in text
    _, _, X_te, y_te = tr.load_digits_split(0)

    pd = QuantModel.read(out / "compressed")
    codes, _ = pd.quantize_input(X_te)
    rtl = np.load(out / "rtl" / "outputs.npy")
    assert rtl.shape == (len(X_te), 10)
    np.testing.assert_array_equal(rtl, pd.forward(codes))

    # the SmartDeal engine at the PD engine's 4 x 2 multipliers, on every test image
    sd = SmartDealModel.read(out / "smartdeal")
    codes, _ = sd.quantize_input(X_te)
    rtl = np.load(out / "smartdeal_rtl" / "outputs.npy")
    assert rtl.shape == (len(X_te), 10)
    np.testing.assert_array_equal(rtl, sd.forward(codes))
    assert "SmartDeal engine RTL on verilator: 450 of 450 images equal to the golden model" in text
    runs = ec.model_cycles(sd, codes, 8)
    rep = json.loads((out / "smartdeal_rtl" / "report.json").read_text())
    assert rep["cycles"] == [r.total for r in runs] and rep["lanes"] == 8

    f = json.loads((out / "figures.json").read_text())
    acc = float(np.mean(np.argmax(pd.forward(pd.quantize_input(X_te)[0]), axis=1) == y_te))
    assert f["rtl"]["accuracy"] == pytest.approx(acc)
    assert f["rtl"]["cycles_match_model"] and f["smartdeal"]["rtl"]["cycles_match_model"]
    e = f["smartdeal"]["engine"]
    assert e["cycles_per_image"] == pytest.approx(np.mean([r.total for r in runs]))
    assert e["vs_pd"] == pytest.approx(e["cycles_per_image"] / f["cycles_per_image"])
    assert f["smartdeal"]["rtl"]["accuracy"] == pytest.approx(
        np.mean(np.argmax(sd.forward(codes), axis=1) == y_te))
    # the SmartDeal model is pruned in whole tiles of the engine (which skips them), and the
    # batch figures are the cycle model's at batch 8 over the whole batches of the test set
    assert f["smartdeal"]["prune"] == 0.55 and f["smartdeal"]["prune_group"] == 8
    assert any(runs != [(0, -(-l.shape[1] // 3))] for l in sd.layers
               for runs in ec.tile_runs(l, 8))
    b = e["batch"]
    batched = ec.model_cycles(sd, codes[:448], 8, batch=8)
    assert b["images"] == 448 and b["cycles_per_image"] == pytest.approx(
        np.mean([r.total for r in batched]) / 8)
    assert b["utilization"] == pytest.approx(np.mean([r.utilization for r in batched]))
    report = (out / "REPORT.md").read_text()
    for png in ("accuracy_vs_p.png", "cycles_vs_pes.png", "lane_utilization.png"):
        assert f"]({png})" in report and (out / png).read_bytes()[:4] == b"\x89PNG"
