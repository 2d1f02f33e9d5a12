# amaranth: UnusedElaboratable=no
"""The engine running conv networks (docs/design.md 15) on Verilator and Icarus: outputs equal to
the golden conv network's, value by value, and cycles equal to ``golden.conv_walk``'s model."""

import json

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.compress import QuantSpec
from permdeal.golden.conv import ConvShape, Pool
from permdeal.golden.conv_model import compress_network
from permdeal.golden.conv_walk import conv_model_cycles, engine_input, engine_pools, engine_walks
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.float_model import FloatLayer
from permdeal.golden.rom import lane_contents
from permdeal.hdl.engine import Engine
from permdeal.hdl.rom import rom_sources
from permdeal.verif import runner

#: Densities of the input images: empty, full, and in between.
DENSITIES = (0.0, 1.0, 0.3, 0.6)


def conv_layer(r, name, shape, pool=None):
    return FloatLayer(name, r.normal(0, 0.6, shape.weight_shape),
                      r.normal(0, 0.1, shape.out_channels), shape, pool)


def fc_layer(r, name, n_out, n_in):
    return FloatLayer(name, r.normal(0, 0.4, (n_out, n_in)), r.normal(0, 0.1, n_out))


def net_cnn_max(r):
    """conv 3x3 1->4 pad 1 (p = 1, one word a pixel) + max pool 2x2 (6x6 -> 3x3), conv 2x2 4->4
    (p = 2, to 2x2), FC 16 -> 5 (p = 2, the whole-map walk over the map in (H, W, C) order)."""
    c1 = ConvShape((1, 6, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((4, 3, 3), 4, (2, 2))
    return ([conv_layer(r, "c1", c1, Pool("max", (2, 2), (2, 2))), conv_layer(r, "c2", c2),
             fc_layer(r, "fc", 5, 16)], [1, 2, 2])


def net_cnn_avg(r):
    """three input channels (C' = 4 at p = 2: a channel of padding; windows of 3 words, S = 2
    a block of 4), stride 2 with asymmetric padding, average pool 2x1, conv 2x2 to 1x1, an FC
    after the walked FC."""
    c1 = ConvShape((3, 7, 6), 4, (3, 2), (2, 1), (1, 0, 1, 1))     # -> 4 x 4 x 6
    c2 = ConvShape((4, 2, 6), 4, (2, 6))                            # pooled 2 x 6 -> 1 x 1
    return ([conv_layer(r, "c1", c1, Pool("avg", (2, 1), (2, 1))), conv_layer(r, "c2", c2),
             fc_layer(r, "fc1", 7, 4), fc_layer(r, "fc2", 3, 7)], [2, 2, 2, 3])


def net_cnn_1x1(r):
    """conv 1x1 1->4 (p = 1, one word a pixel: one window a pass) + max pool 2x2 (6x6 -> 3x3),
    FC 36 -> 5: on 2 PEs x 2 lanes B*p = 1, so the overlapped passes drain as close as a cycle
    apart (a pass of one op, then one of an all-zero pixel) and the pool stage forwards its
    codes (docs/design.md 15)."""
    c1 = ConvShape((1, 6, 6), 4, (1, 1))
    return [conv_layer(r, "c1", c1, Pool("max", (2, 2), (2, 2))), fc_layer(r, "fc", 5, 36)], [1, 2]


#: name: (seed, network, n_pe, lanes, scan width)
CASES = {"cnn-max-2x2": (21, net_cnn_max, 2, 2, 4), "cnn-1x1-pool": (23, net_cnn_1x1, 2, 2, 4)}
#: Icarus only.
ICARUS_CASES = {"cnn-avg-1x3": (22, net_cnn_avg, 1, 3, 3)}


def build(seed, make):
    r = np.random.default_rng(seed)
    print(f"seed {seed}")
    layers, ps = make(r)
    c, h, w = layers[0].conv.in_shape
    net = compress_network(layers, "permdiag", p=ps, spec=QuantSpec(act=10, weight=8, bias=10),
                           calibration=r.normal(0, 1, (16, c * h * w)))
    fmt = net.input_format
    x = r.integers(fmt.min, fmt.max + 1, size=(len(DENSITIES), c * h * w))
    for v, dens in enumerate(DENSITIES):
        x[v, r.random(c * h * w) >= dens] = 0
    return net, x


def run_case(sim, name, case, tmp_path):
    seed, make, n_pe, lanes, sw = case
    net, x = build(seed, make)
    cfg = EngineConfig(n_pe, lanes, scan_width=sw)
    dut = Engine(cfg, net.matrix_layers(), walks=engine_walks(net), pools=engine_pools(net),
                 contents=lane_contents(net, cfg))
    source = tmp_path / "engine.v"
    text = emit(dut, dut.name, source)
    y = net.forward(x)
    cycles = [conv_model_cycles(net, xi, cfg).total for xi in x]
    inputs = engine_input(net, x)
    assert inputs.shape[1] == dut.n_inputs
    result = runner.run(
        sim, sources=[source, *rom_sources(text)], toplevel=dut.name,
        test_module="permdeal.verif.tb_engine", build_dir=tmp_path / sim,
        config={"in_bits": dut.in_bits, "out_bits": dut.out_bits, "inputs": inputs.tolist(),
                "expected": y.tolist(), "cycles": cycles})
    for test in result.tests:
        rep = result.report[test]
        assert rep["checked"] == y.size and rep["mismatches"] == 0, (name, test, rep)
    assert result.passed and set(result.tests) == {"test_streams", "test_cycles"}
    assert result.report["test_cycles"]["rtl_cycles"] == cycles
    return result


@pytest.mark.sim
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_conv_engine_matches_golden(sim, name, tmp_path):
    run_case(sim, name, CASES[name], tmp_path)


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CASES)
def test_conv_engine_more_shapes_on_icarus(name, tmp_path):
    run_case("icarus", name, ICARUS_CASES[name], tmp_path)


def test_conv_engine_refuses_what_it_does_not_run():
    net, _ = build(21, net_cnn_max)
    cfg = EngineConfig(2, 2, scan_width=4)
    layers, walks = net.matrix_layers(), engine_walks(net)
    with pytest.raises(PermdealError, match="engine has 3 layers and 2 pool settings"):
        Engine(cfg, layers, walks=walks, pools=[None, None], contents=lane_contents(net, cfg))
    with pytest.raises(PermdealError, match="c2: pooling on a layer without a pooled conv walk"):
        Engine(cfg, layers, walks=walks, pools=[("max", 4), ("max", 4), None],
               contents=lane_contents(net, cfg))
    with pytest.raises(PermdealError, match="c1: the engine pools max over any window or avg "
                                            "over a power-of-two window, not avg over 3"):
        Engine(cfg, layers, walks=walks, pools=[("avg", 3), None, None],
               contents=lane_contents(net, cfg))
    grouped = EngineConfig.with_layer_groups(EngineConfig(2, 2, scan_width=4), (1, 1, 2))
    with pytest.raises(PermdealError, match="walked layers run with one lane group"):
        Engine(grouped, layers, walks=walks, contents=lane_contents(net, grouped))


def test_cli_refuses_what_a_conv_network_does_not_have(tmp_path, capsys):
    """Lane groups, and power (its activity bench), are refused for a conv network in one line
    naming the flag or the layer; gen and cycles take it."""
    from permdeal.cli import main
    net, x = build(21, net_cnn_max)
    (tmp_path / "m").mkdir()
    net.write(tmp_path / "m")
    np.save(tmp_path / "x.npy", x)
    base = ["--pes", "2", "--lanes", "2"]
    for argv, message in [
        (["gen", "--model", str(tmp_path / "m"), *base, "--groups", "2", "-o",
          str(tmp_path / "d2")], "--groups 2: a conv network runs on an engine of one lane group"),
        (["rom", str(tmp_path / "m"), *base, "--groups", "auto", "-o", str(tmp_path / "r")],
         "layer c1 is a convolution; --groups auto takes fully connected layers only so far (a "
         "conv network runs with one lane group"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["gen", "--model", str(tmp_path / "m"), *base, "-o", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["power", "--design", str(tmp_path / "d"), "--inputs", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "layer c1 is a convolution; power takes fully connected layers only so far (its " \
        "activity bench does not run a conv network yet)" in err, err
    assert not (tmp_path / "p").exists() and not (tmp_path / "d2").exists()
    # a conv design is format 4 (a reader of FC designs refuses it as newer); edited to 3 it is
    # refused naming the field
    man_path = tmp_path / "d" / "manifest.json"
    man = json.loads(man_path.read_text())
    assert man["format_version"] == 4
    man["format_version"] = 3
    man_path.write_text(json.dumps(man))
    assert main(["check", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json: format_version 3 takes no conv entry" in err
