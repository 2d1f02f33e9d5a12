"""``permdeal demo --cnn``, shortened (one epoch of training and of fine-tuning, a dozen test
images through both engines' RTL): their RTL outputs and cycles recomputed here from the folders
it wrote."""

import json

import numpy as np
import pytest

from permdeal.api import demo_cnn
from permdeal.cli import main
from permdeal.golden.conv_walk import conv_model_cycles
from permdeal.golden.cycles import EngineConfig
from permdeal.golden import smartdeal_engine_cycles as sec
from permdeal.golden.model import QuantModel
from permdeal.golden.smartdeal_model import SmartDealModel
from permdeal.golden.train import load_digits_split


@pytest.mark.sim
def test_cnn_demo_rtl_equals_golden(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo_cnn.run(out, epochs=1, finetune_epochs=1, images=12) == 0
    text = capsys.readouterr().out
    assert text.count("12 of 12 images equal to the golden model") == 2   # PD and SmartDeal
    _, _, X_te, y_te = load_digits_split(0)
    pd = QuantModel.read(out / "permdiag")
    assert [type(l).__name__ for l in pd.layers] == ["QuantConvLayer", "QuantConvLayer",
                                                     "QuantLayer"]
    codes, _ = pd.quantize_input(X_te[:12])
    rtl = np.load(out / "rtl" / "outputs.npy")
    np.testing.assert_array_equal(rtl, pd.forward(codes))
    rep = json.loads((out / "rtl" / "report.json").read_text())
    cfg = EngineConfig(4, 2)
    assert rep["cycles"] == [conv_model_cycles(pd, x, cfg).total for x in codes]
    f = json.loads((out / "figures.json").read_text())
    assert f["rtl"]["accuracy"] == pytest.approx(np.mean(np.argmax(rtl, axis=1) == y_te[:12]))
    man = json.loads((out / "smartdeal" / "manifest.json").read_text())
    assert man["method"] == "smartdeal" and man["layers"][0]["conv"]["kernel"] == [3, 3]
    sd = SmartDealModel.read(out / "smartdeal")
    codes, _ = sd.quantize_input(X_te[:12])
    rtl = np.load(out / "smartdeal_rtl" / "outputs.npy")
    np.testing.assert_array_equal(rtl, sd.forward(codes))
    rep = json.loads((out / "smartdeal_rtl" / "report.json").read_text())
    assert rep["cycles"] == [c.total for c in sec.model_cycles(sd, codes, 8)]
    assert f["smartdeal"]["rtl"]["images_equal_to_golden"] == 12


def test_cnn_demo_refuses_p(capsys):
    assert main(["demo", "--cnn", "--p", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--p does not apply to --cnn" in err
