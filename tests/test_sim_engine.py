# amaranth: UnusedElaboratable=no
"""The whole engine on Verilator and Icarus: bit-exact with the golden model and cycle-exact with
the cycle model, on single- and multi-layer networks, several sizes, block sizes, formats and
input densities."""

import os
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.cycles import EngineConfig, model_cycles
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.golden.model import QuantLayer, QuantModel
from permdeal.golden.permdiag import PermDiag, diag_col
from permdeal.golden.rom import lane_contents, write_images
from permdeal.hdl.engine import Engine
from permdeal.hdl.rom import rom_sources
from permdeal.verif import runner

#: Densities of the input vectors of every case: empty, full, and in between.
DENSITIES = (0.0, 1.0, 0.1, 0.35, 0.7, 0.5)


def random_model(rng, sizes, ps, act_bits=(12, 6), weight=Fixed(10, 8), bias=Fixed(12, 6),
                 outs=None, relu_last=False):
    """A model of random integer codes: layer ``i`` maps ``sizes[i]`` to ``sizes[i+1]`` inputs
    with block size ``ps[i]``; ``outs[i]`` is its output format (default the input format)."""
    act = Fixed(*act_bits)
    outs = outs or [act] * (len(sizes) - 1)
    layers = []
    for i, p in enumerate(ps):
        m, n = sizes[i + 1], sizes[i]
        mb, nb = -(-m // p), -(-n // p)
        k = rng.integers(0, p, size=(mb, nb))
        q = rng.integers(weight.min, weight.max + 1, size=(mb, nb, p))
        q[-1, :, m - (mb - 1) * p:] = 0                        # padded rows
        cols = diag_col(np.arange(p), k[:, -1:], p)            # (M', p): column of row r
        q[:, -1, :][cols >= n - (nb - 1) * p] = 0              # padded columns
        fmts = LayerFormats(act, weight, bias, outs[i], nb)
        b = rng.integers(bias.min, bias.max + 1, size=m)
        layers.append(QuantLayer(f"fc{i}", PermDiag((m, n), p, k, q), b, fmts,
                                 relu=i < len(ps) - 1 or relu_last))
        act = outs[i]
    return QuantModel(layers)


def random_inputs(rng, model, count=None):
    count = len(DENSITIES) if count is None else count
    fmt = model.input_format
    x = rng.integers(fmt.min, fmt.max + 1, size=(count, model.n_inputs))
    for v in range(count):
        x[v, rng.random(model.n_inputs) >= DENSITIES[v % len(DENSITIES)]] = 0
    return x


#: name: (seed, sizes, ps, n_pe, lanes, scan_width, model options)
CASES = {
    # three layers, mixed block sizes (non-powers of two), 2 PEs x 2 lanes
    "mlp3": (1, [20, 17, 12, 9], [3, 2, 4], 2, 2, 4, {}),
    # one dense layer (p = 1) on a single lane
    "dense-1x1": (2, [7, 5], [1], 1, 1, 8, {"relu_last": True}),
    # p = 8 with 8-wide windows; M' = 6 not a multiple of the 8 lanes
    "p8-4x2": (3, [40, 48], [8], 4, 2, 8, {}),
    # narrow outputs that saturate, p = 5 read in windows of 3 (S = 2 per producer block),
    # M' < NL in the last layer
    "sat-p5": (4, [13, 11, 6], [5, 3], 3, 2, 3,
               {"outs": [Fixed(6, 2), Fixed(8, 1)], "act_bits": (10, 4)}),
    # the lanes' multipliers in gates (radix-4 Booth rows, a Dadda tree): the same products at
    # the same time, so the same outputs and cycles
    "booth-2x2": (10, [20, 17, 9], [3, 2], 2, 2, 4, {"multiplier": "booth"}),
    # the FPGA multipliers (operands registered, then the whole product: a DSP block with its
    # input and output registers): the same products at the same time
    "dsp-2x2": (14, [20, 17, 9], [3, 2], 2, 2, 4, {"multiplier": "dsp"}),
    # two lane groups of 2 PEs x 2 lanes: every layer's input blocks split between two issue
    # paths, the groups' sums added while draining; the network input in blocks of p = 4
    # (windows of 3: S = 2), M' = 8 and 5 over G = 4 lanes, the last input block short
    "groups2-4x2": (11, [30, 29, 18], [4, 4], 4, 2, 3, {"groups": 2}),
    # four groups of one single-lane PE (G = 1: a bank per read port, two adder stages),
    # three layers of p = 3, M' = 1 in the last
    "groups4-4x1": (12, [26, 13, 10, 3], [3, 3, 3], 4, 1, 2, {"groups": 4}),
    # per-layer group counts on a 4-group engine of single-lane PEs (docs/design.md 4.2): K_l =
    # 1, 2, 4; a layer's group spans 4, 2, 1 hardware groups (its reader reads that many
    # ports, its issuer feeds them all; the adder tree sums each turn's groups into the turn's
    # write-back: four write-backs, all writing at once)
    "layer-groups-124": (15, [26, 25, 20, 13], [3, 3, 3], 4, 1, 2, {"groups": (1, 2, 4)}),
    # K_l = 4, 1, 2 on 4 PEs x 2 lanes (G = 2): the one-group layer may change p (4 to 2)
    "layer-groups-412": (16, [30, 29, 18, 11], [4, 2, 2], 4, 2, 3, {"groups": (4, 1, 2)}),
}
#: Cases on Icarus only (a Verilator build of an engine costs ~10 s).
ICARUS_CASES = {
    "p7-1x3": (5, [30, 22], [7], 1, 3, 5, {}),
    "four-layers": (6, [16, 16, 12, 10, 8], [2, 4, 3, 1], 2, 1, 2,
                    {"outs": [Fixed(16, 8), Fixed(9, 3), Fixed(12, 6), Fixed(14, 4)],
                     "act_bits": (11, 5)}),
    # the last output format is the widest: the lanes' accumulators are wider than the
    # write-back's (2 lanes per PE)
    "wide-out": (8, [8, 4], [2], 1, 2, 4, {"outs": [Fixed(16, 8)], "act_bits": (8, 4)}),
    # p = 1 with M' > NL: the padded-row test of the drain counter at t = 1
    "p1-pad": (9, [1, 9], [1], 2, 4, 2, {}),
    # two groups with the scan width past p (one 3-word window a block) and slots past K (B = 3
    # and 2 on G = 2 lanes: slots 2 and 3 write the banks of groups 0 and 1 again)
    "groups2-d8": (13, [24, 16, 11], [3, 3], 2, 2, 8, {"groups": 2}),
    # per-layer counts 2, 1 with the scan width past p (B = 3, then 2 slots in two turns)
    "layer-groups-21-d8": (17, [24, 16, 11], [3, 3], 2, 2, 8, {"groups": (2, 1)}),
    # inputs 28 .. 111 zero in every vector: 21 empty windows after the windows with pairs that
    # fill the reader's buffer (B = 3): the reads wait for room and, at density 0.35, the reader
    # falls behind the detector (docs/design.md 9, step 1; 4 cycles more than reads that never
    # wait would give on that vector)
    "reader-behind": (18, [120, 6], [2], 1, 1, 4, {"holes": (28, 112)}),
    "wide-formats": (7, [12, 10], [2], 1, 2, 4,
                     {"act_bits": (16, 8), "weight": Fixed(16, 14), "bias": Fixed(24, 16),
                      "outs": [Fixed(16, 4)]}),
}


def run_case(sim, name, case, tmp_path, images=False):
    seed, sizes, ps, n_pe, lanes, sw, opts = case
    opts = dict(opts)
    multiplier = opts.pop("multiplier", "native")
    groups = opts.pop("groups", 1)
    holes = opts.pop("holes", None)
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, ps, **opts)
    cfg = EngineConfig.with_layer_groups(
        EngineConfig(n_pe, lanes, scan_width=sw, multiplier=multiplier), groups)
    if images:
        folder = tmp_path / "images"
        folder.mkdir()
        write_images(folder, model, cfg)
        dut = Engine(cfg, model.layers, images=folder)
    else:
        dut = Engine(cfg, model.layers, contents=lane_contents(model, cfg))
    source = tmp_path / "engine.v"
    text = emit(dut, dut.name, source)
    x = random_inputs(rng, model)
    if holes is not None:
        x[:, holes[0]:holes[1]] = 0
    y = model.forward(x)
    cycles = [model_cycles(model, xi, cfg).total for xi in x]
    result = runner.run(
        sim, sources=[source, *rom_sources(text)], toplevel=dut.name,
        test_module="permdeal.verif.tb_engine", build_dir=tmp_path / sim,
        config={"in_bits": dut.in_bits, "out_bits": dut.out_bits, "inputs": x.tolist(),
                "expected": y.tolist(), "cycles": cycles})
    assert result.passed and set(result.tests) == {"test_streams", "test_cycles"}
    for test in result.tests:
        rep = result.report[test]
        assert rep["checked"] == y.size and rep["mismatches"] == 0, (name, test, rep)
    assert result.report["test_cycles"]["rtl_cycles"] == cycles
    return result


@pytest.mark.sim
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_engine_matches_golden(sim, name, tmp_path):
    run_case(sim, name, CASES[name], tmp_path)


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CASES)
def test_engine_more_shapes_on_icarus(name, tmp_path):
    run_case("icarus", name, ICARUS_CASES[name], tmp_path)


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_engine_from_images(sim, tmp_path):
    """The memories load the ROM images by $readmemh; the Verilog holds no weight."""
    result = run_case(sim, "mlp3", CASES["mlp3"], tmp_path, images=True)
    assert result.passed
    text = (tmp_path / "engine.v").read_text()
    assert "permdeal_rom" in text and "_weight.hex" in text


@pytest.mark.skipif(not os.environ.get("PERMDEAL_NIGHTLY"), reason="nightly sweep: set "
                    "PERMDEAL_NIGHTLY=1")
@pytest.mark.sim
@pytest.mark.parametrize("seed", range(40))
def test_engine_random_sweep(seed, tmp_path):
    """Random networks and engine sizes on Icarus (a nightly-style run)."""
    rng = np.random.default_rng(10_000 + seed)
    n_layers = int(rng.integers(1, 4))
    sizes = [int(s) for s in rng.integers(1, 40, size=n_layers + 1)]
    ps = [int(p) for p in rng.integers(1, 9, size=n_layers)]
    act = (int(rng.integers(4, 17)), 0)
    act = (act[0], int(rng.integers(0, act[0])))
    outs = []
    for _ in range(n_layers):
        bits = int(rng.integers(4, 17))
        outs.append(Fixed(bits, int(rng.integers(0, bits))))
    opts = {"act_bits": act, "outs": outs,
            "weight": Fixed(int(rng.integers(4, 17)), int(rng.integers(0, 4))),
            "bias": Fixed(int(rng.integers(4, 17)), 0)}
    case = (10_000 + seed, sizes, ps, int(rng.integers(1, 5)), int(rng.integers(1, 4)),
            int(rng.integers(1, 9)), opts)
    run_case("icarus", f"random-{seed}", case, tmp_path)


def test_engine_verilog_is_deterministic(tmp_path):
    seed, sizes, ps, n_pe, lanes, sw, opts = CASES["mlp3"]
    texts = []
    for _ in range(2):
        model = random_model(np.random.default_rng(seed), sizes, ps, **opts)
        cfg = EngineConfig(n_pe, lanes, scan_width=sw)
        texts.append(emit(Engine(cfg, model.layers, contents=lane_contents(model, cfg)),
                          "permdeal_engine"))
    assert texts[0] == texts[1]


def test_engine_parameters_are_checked():
    rng = np.random.default_rng(0)
    model = random_model(rng, [6, 5, 4], [2, 3])
    cfg = EngineConfig(1, 2)
    contents = lane_contents(model, cfg)
    with pytest.raises(PermdealError, match="exactly one of contents"):
        Engine(cfg, model.layers)
    with pytest.raises(PermdealError, match="must be an EngineConfig"):
        Engine((1, 2), model.layers, contents=contents)
    with pytest.raises(PermdealError, match="at least one layer"):
        Engine(cfg, [], contents=contents)
    with pytest.raises(PermdealError, match="do not chain: fc0 gives 5 outputs, fc0 takes 6"):
        Engine(cfg, [model.layers[0], model.layers[0]], contents=contents)
    bad = dict(contents, weight=contents["weight"][:1])
    with pytest.raises(PermdealError, match=r"contents\['weight'\] must have one row per lane"):
        Engine(cfg, model.layers, contents=bad)
    bad = dict(contents, k=contents["k"][:, :-1])
    with pytest.raises(PermdealError, match=r"contents\['k'\] rows must hold"):
        Engine(cfg, model.layers, contents=bad)


def test_engine_pes_are_one_module():
    """The PEs, their write-back, the bank sets and a bank are emitted once each and instantiated;
    every lane's memories are in the top, named after the images."""
    seed, sizes, ps, n_pe, lanes, sw, opts = CASES["p8-4x2"]
    model = random_model(np.random.default_rng(seed), sizes, ps, **opts)
    cfg = EngineConfig(n_pe, lanes, scan_width=sw)
    dut = Engine(cfg, model.layers, contents=lane_contents(model, cfg), name="eng")
    text = emit(dut, "eng")
    for module, count in (("eng_pe", n_pe), ("eng_lane", lanes),  # (lanes in the PE module)
                          ("eng_pe_wb", n_pe), ("eng_act_banks", 2),
                          ("eng_act_bank", n_pe * lanes)):  # (in the bank-set module)
        assert len(re.findall(rf"^module {module}\(", text, re.M)) == 1, module
        assert len(re.findall(rf"^\s*{module} \w+ \(", text, re.M)) == count, module
    for pe in range(n_pe):
        for lane in range(lanes):
            for mem in ("weight", "k", "bias"):
                assert f"pe{pe}_lane{lane}_{mem}" in text
    with pytest.raises(PermdealError, match="must be a Verilog identifier"):
        Engine(cfg, model.layers, contents=lane_contents(model, cfg), name="9eng")
