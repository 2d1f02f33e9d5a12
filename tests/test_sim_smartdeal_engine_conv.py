# amaranth: UnusedElaboratable=no
"""The SmartDeal engine running conv networks (docs/design.md 16) on Verilator and Icarus: every
output equal to the golden conv network's, value by value, every input's cycles equal to
``golden.smartdeal_engine_cycles``' (``golden.smartdeal_conv_walk``), with random idle and
back-pressure and a reset mid-inference; the conv walk's map and drain order against loops; the
ROM images and design folders of a SmartDeal CNN; and what the engine refuses."""

import json

import numpy as np
import pytest
from test_sim_engine_conv import conv_layer, fc_layer
from test_sim_smartdeal_engine import check, simulate

from permdeal.cli import main
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal_conv_walk as cw
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden import smartdeal_model as sdm
from permdeal.golden.compress import QuantSpec
from permdeal.golden.conv import ConvShape, Pool
from permdeal.golden.conv_model import ConvNet, compress_network
from permdeal.hdl.smartdeal_engine import SmartDealEngine
from permdeal.verif import runner

#: Densities of the input images: empty, full, and in between.
DENSITIES = (0.0, 1.0, 0.3, 0.6)


def net_max(r):
    """The digits CNN's shape, smaller: conv 3x3 1->4 pad 1 with max pool 2x2 (8x8 -> 4x4),
    conv 3x3 4->6 (to 2x2), FC 24 -> 5."""
    c1 = ConvShape((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((4, 4, 4), 6, (3, 3))
    return [conv_layer(r, "c1", c1, Pool("max", (2, 2), (2, 2))), conv_layer(r, "c2", c2),
            fc_layer(r, "fc", 5, 24)]


def net_strided(r):
    """Three input channels, a 2x3 kernel at stride 2 with asymmetric padding (7x9 -> 4x5), conv
    3x3 pad 1 with average pool 2x1 (4x5 -> 2x5), FC 40 -> 7."""
    c1 = ConvShape((3, 7, 9), 5, (2, 3), (2, 2), (1, 0, 0, 2))
    c2 = ConvShape((5, 4, 5), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    return [conv_layer(r, "c1", c1), conv_layer(r, "c2", c2, Pool("avg", (2, 1), (2, 1))),
            fc_layer(r, "fc", 7, 40)]


def net_conv_last(r):
    """A network that ends in a convolution (its feature map streams out channel by channel)."""
    return net_strided(r)[:2]


def build(seed, make, rows_per_block=None):
    r = np.random.default_rng(seed)
    print(f"seed {seed}")
    layers = make(r)
    c, h, w = layers[0].conv.in_shape
    net = compress_network(layers, "smartdeal", spec=QuantSpec(act=10, weight=10, bias=10),
                           calibration=r.uniform(0, 1, (16, c * h * w)),
                           rows_per_block=rows_per_block)
    fmt = net.input_format
    x = r.integers(fmt.min, fmt.max + 1, size=(len(DENSITIES), c * h * w))
    for v, dens in enumerate(DENSITIES):
        x[v, r.random(c * h * w) >= dens] = 0
    return net, x


#: name: (seed, network, lanes, rows_per_block)
CASES = {"max-4-lanes": (31, net_max, 4, None)}
#: Icarus only.
ICARUS_CASES = {"strided-avg-3-lanes": (32, net_strided, 3, 2),
                "conv-last-2-lanes": (33, net_conv_last, 2, None),
                "max-1-lane": (34, net_max, 1, 4)}


def run_case(sim, case, tmp_path):
    seed, make, lanes, rpb = case
    net, x = build(seed, make, rpb)
    result, config = simulate(sim, net, lanes, tmp_path, x=x)
    check(result, config)
    np.testing.assert_array_equal(np.array(config["expected"]), net.forward(x))
    assert len(set(config["vector_cycles"])) > 2        # the count follows the non-zero inputs


@pytest.mark.sim
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_conv_engine_matches_golden(sim, name, tmp_path):
    run_case(sim, CASES[name], tmp_path)


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CASES)
def test_conv_engine_more_shapes_on_icarus(name, tmp_path):
    run_case("icarus", ICARUS_CASES[name], tmp_path)


# -- the golden walk, against loops ------------------------------------------------------------

@pytest.mark.parametrize("make", [net_max, net_strided])
def test_pixel_map_scatters_to_the_convolution(make):
    """Every non-zero input times its column's weight, added into the pixel ``pixel_of`` gives it
    (by loops over channels, positions and kernel positions), is the golden layer's accumulator
    for every output pixel and channel."""
    net, x = build(40, make)
    xs = net.forward(x, trace=True)
    for layer, a in zip(net.layers, xs):
        if not cw.is_conv(layer):
            continue
        g = layer.conv
        c, h, w = g.in_shape
        kh, kw = g.kernel
        oh, ow = g.out_hw
        wts = np.asarray(layer.weights, np.int64)
        for v in range(len(x)):
            fmap = a[v].reshape(c, h, w)
            acc = np.zeros((g.out_channels, oh * ow), np.int64)
            for ch in range(c):
                for y in range(h):
                    for xx in range(w):
                        for u in range(kh):
                            for vv in range(kw):
                                pix, ok = cw.pixel_of(layer, y, xx, u, vv)
                                if ok:
                                    acc[:, pix] += wts[:, ch, u, vv] * fmap[ch, y, xx]
            want = layer.accumulate(a[v][None])[0].reshape(oh * ow, -1).T   # (OH, OW, O)
            np.testing.assert_array_equal(acc, want)


def test_drain_order_against_loops():
    layer = build(41, net_strided)[0].layers[1]           # 4x5 output, avg pool 2x1
    want = [(2 * a + r) * 5 + b for a in range(2) for b in range(5) for r in range(2)]
    assert cw.drain_order(layer) == want
    assert cw.drain_order(build(41, net_strided)[0].layers[0]) == list(range(20))
    c1 = build(42, net_max)[0].layers[0]                   # 8x8, max 2x2
    assert cw.drain_order(c1)[:8] == [0, 1, 8, 9, 2, 3, 10, 11]
    assert sorted(cw.drain_order(c1)) == list(range(64))


def test_conv_layer_cycles_by_counting():
    """The rule of a conv layer, counted here column by column: every tile walks every column
    (c, u, v), a column taking max(z_c, 1) cycles, padded to L x drain; the layer adds the last
    tile's drain, the overhead and the drain register."""
    net, x = build(43, net_max)
    layer, lanes = net.layers[0], 3
    for xi in x:
        z = (xi.reshape(1, 64) != 0).sum(axis=1)
        u = sum(max(int(zc), 1) for zc in z for _ in range(9))
        tiles = -(-4 // lanes)
        period = max(u, lanes * 64)
        want = tiles * period + (4 - (tiles - 1) * lanes) * 64 + ec.LAYER_OVERHEAD + 1
        assert cw.layer_cycles(layer, xi, lanes).compute == want


# -- ROM images, design folders and the command line -------------------------------------------

def test_rom_images_round_trip(tmp_path):
    net, x = build(44, net_max)
    man = sdm.write_rom(tmp_path, net)
    assert man["format_version"] == sdm.CONV_ROM_FORMAT_VERSION and man["flatten"] == "chw"
    assert man["layers"][0]["conv"]["output"] == [4, 4, 4]
    _, back = sdm.read_rom(tmp_path)
    assert isinstance(back, ConvNet)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    path = tmp_path / "manifest.json"
    edited = dict(man, format_version=sdm.ROM_FORMAT_VERSION)
    path.write_text(json.dumps(edited))
    with pytest.raises(PermdealError, match="layer 0 has a conv field, but format_version 1"):
        sdm.read_rom(tmp_path)
    path.write_text(json.dumps(dict(man, format_version=3)))
    with pytest.raises(PermdealError, match="written by a newer permdeal"):
        sdm.read_rom(tmp_path)


def test_cli_flow_on_icarus(tmp_path, capsys):
    """compress writes the images, gen the engine design, cycles counts, sim runs the design's
    Verilog: outputs and cycles as the golden model's."""
    net, x = build(45, net_max)
    folder = tmp_path / "m"
    folder.mkdir()
    net.write(folder)
    (folder / "rom").mkdir()
    sdm.write_rom(folder / "rom", net)
    np.save(tmp_path / "x.npy", net.input_format.to_float(x))
    assert main(["check", str(folder)]) == 0
    assert main(["gen", "--model", str(folder), "--pes", "2", "--lanes", "2", "-o",
                 str(tmp_path / "d")]) == 0
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["layers"][0]["conv"]["pool"]["kind"] == "max"
    assert main(["cycles", str(folder), "--pes", "2", "--lanes", "2", "--inputs",
                 str(tmp_path / "x.npy")]) == 0
    capsys.readouterr()
    assert main(["sim", "--design", str(tmp_path / "d"), "--inputs", str(tmp_path / "x.npy"),
                 "--sim", "icarus", "-o", str(tmp_path / "s")]) == 0
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    want = [c.total for c in ec.model_cycles(net, x, 4)]
    assert rep["golden_match"] and rep["cycles"] == want == rep["model_cycles"]
    np.testing.assert_array_equal(np.load(tmp_path / "s" / "outputs.npy"), net.forward(x))


def test_what_the_engine_refuses(tmp_path, capsys):
    net, x = build(46, net_max)
    with pytest.raises(PermdealError, match="batch 2: a conv network runs one input at a time"):
        SmartDealEngine(net.layers, 2, batch=2)
    with pytest.raises(PermdealError, match="batch 2: the SmartDeal engine runs a conv network "
                                            "one input at a time"):
        ec.model_cycles(net, x, 2, batch=2)
    hwc = ConvNet(net.layers[:2] + [net.layers[2]], "smartdeal", net.config, "hwc")
    with pytest.raises(PermdealError, match=r"layer fc: takes the feature map in \(hwc\) order; "
                                            r"the SmartDeal engine .* compress the network again"):
        ec.model_cycles(hwc, x, 2)
    r = np.random.default_rng(1)
    for shape, pool, message in [
            (ConvShape((1, 8, 8), 2, (3, 3), (3, 3)), None, r"stride \[3, 3\]; the SmartDeal "
             "engine takes strides that are powers of two"),
            (ConvShape((1, 8, 8), 2, (3, 3), (1, 1), (1, 1, 1, 1)), Pool("max", (2, 2), (1, 1)),
             r"max pool \[2, 2\] with stride \[1, 1\]; the SmartDeal engine pools windows that "
             r"do not overlap \(stride = window\)"),
            (ConvShape((1, 9, 9), 2, (3, 3), (1, 1), (1, 1, 1, 1)), Pool("avg", (3, 3), (3, 3)),
             "average pool of 9 values; the SmartDeal engine averages windows of a power of two"),
            (ConvShape((1, 17, 17), 2, (3, 3), (1, 1), (1, 1, 1, 1)), None,
             "289 output pixels; a lane of the SmartDeal engine keeps at most 256 sums")]:
        layers = [conv_layer(r, "c", shape, pool)]
        c, h, w = shape.in_shape
        small = compress_network(layers, "smartdeal", spec=QuantSpec(act=8, weight=8, bias=8),
                                 calibration=r.uniform(0, 1, (4, c * h * w)))
        with pytest.raises(PermdealError, match=f"layer c: {message}"):
            SmartDealEngine(small.layers, 2)
    folder = tmp_path / "m"
    folder.mkdir()
    net.write(folder)
    assert main(["gen", "--model", str(folder), "--arch", "units", "--lanes", "2", "-o",
                 str(tmp_path / "u")]) == 2
    assert "layer c1 is a convolution; --arch units takes fully connected layers only" in \
        capsys.readouterr().err


def test_the_worked_example_of_the_design_doc():
    """docs/design.md 16's example, counted by hand there: 105 and 185 cycles."""
    r = np.random.default_rng(0)
    for channels, nonzero, want in ((1, [3], 105), (2, [3, 5], 185)):
        shape = ConvShape((channels, 4, 4), 4, (3, 3), (1, 1), (1, 1, 1, 1))
        net = compress_network([conv_layer(r, "c", shape)], "smartdeal",
                               spec=QuantSpec(act=8, weight=8, bias=8),
                               calibration=r.uniform(0, 1, (4, channels * 16)))
        x = np.zeros((channels, 16), np.int64)
        for c, k in enumerate(nonzero):
            x[c, :k] = 1
        assert cw.layer_cycles(net.layers[0], x.ravel(), 2).compute == want
