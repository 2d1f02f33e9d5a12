# amaranth: UnusedElaboratable=no
"""The window reader, wired to real activation banks, on Verilator and Icarus against the window
spec of ``golden.cycles``; its parameter checks and its generator."""

import random
import re

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.hdl.act_banks import ActBanks
from permdeal.hdl.nz_detect import NonZeroDetector
from permdeal.hdl.window_reader import WindowReader
from permdeal.verif import runner

#: name -> (banks, width, act_bits, rows, index_bits, p_prevs) on both simulators: D = 4 with
#: p_prev = D, < D, and > D not a multiple of D (4, 3, 6, 9).
CONFIGS = {"nl3-d4-p4369": (3, 4, 8, 9, 6, (4, 3, 6, 9))}
#: Icarus only: D = 3 with p_prev < D, > D and 1; one bank with D = 1 and a single p_prev.
ICARUS_CONFIGS = {"nl2-d3-p35": (2, 3, 5, 8, 5, (3, 5, 1)),
                  "nl1-d1-p2": (1, 1, 4, 12, 4, 2)}


class Harness(wiring.Component):
    """A WindowReader wired to an ActBanks of the same size; exposes the banks' write port ``w``
    and the reader's ``start``, ``sel``, ``n``, ``o``, ``done`` (and with walks ``conv``,
    ``walk_sel``, ``last``)."""

    def __init__(self, reader):
        self.reader = reader
        self.banks = ActBanks(reader.banks, reader.width, reader.act_bits, reader.rows)
        ports = {"w": In(data.ArrayLayout(self.banks.write_layout, reader.banks)),
                 "start": In(1)}
        if reader.sel_bits:
            ports["sel"] = In(reader.sel_bits)
        ports.update({"n": In(reader.index_bits),
                      "o": Out(stream.Signature(reader.window_stream_layout)),
                      "done": Out(1)})
        if reader.walks:
            ports["conv"] = In(1)
            if reader.walk_sel_bits:
                ports["walk_sel"] = In(reader.walk_sel_bits)
            ports["last"] = Out(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        r, b = self.reader, self.banks
        m.submodules.reader, m.submodules.banks = r, b
        m.d.comb += [b.w.eq(self.w), b.rd.eq(r.bank_rd), r.bank_window.eq(b.window),
                     r.start.eq(self.start), r.n.eq(self.n), self.done.eq(r.done)]
        if r.sel_bits:
            m.d.comb += r.sel.eq(self.sel)
        if r.walks:
            m.d.comb += [r.conv.eq(self.conv), self.last.eq(r.last)]
            if r.walk_sel_bits:
                m.d.comb += r.walk_sel.eq(self.walk_sel)
        wiring.connect(m, wiring.flipped(self.o), r.o)
        return m


def _simulate(sim, params, build_dir, layers=12, reader=None, **kwargs):
    reader = WindowReader(*params) if reader is None else reader
    source = build_dir / "window_reader_harness.v"
    emit(Harness(reader), "window_reader_harness", source)
    config = {"banks": reader.banks, "width": reader.width, "act_bits": reader.act_bits,
              "rows": reader.rows, "index_bits": reader.index_bits,
              "p_prevs": list(reader.p_prevs), "sel_bits": reader.sel_bits,
              "latency": reader.latency, "buffer": reader.buffer, "layers": layers}
    return runner.run(sim, sources=[source], toplevel="window_reader_harness",
                      test_module="permdeal.verif.tb_window_reader", build_dir=build_dir,
                      config=config, **kwargs)


def _check_result(result, width):
    assert result.passed and result.tests == ("test_layers",)
    rep = result.report["test_layers"]
    assert rep["mismatches"] == 0, rep
    assert rep["checked"] == rep["expected"] > 0, rep
    assert rep["layers"] >= 12 and rep["runs"] >= 4 and rep["dones"] == rep["layers"], rep
    assert rep["empty"] >= 1 and (rep["partial"] >= 1 or width == 1), rep


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_window_reader_matches_spec(sim, name, tmp_path):
    _check_result(_simulate(sim, CONFIGS[name], tmp_path, layers=16), CONFIGS[name][1])


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CONFIGS)
def test_window_reader_matches_spec_icarus(name, tmp_path):
    _check_result(_simulate("icarus", ICARUS_CONFIGS[name], tmp_path, layers=16),
                  ICARUS_CONFIGS[name][1])


@pytest.mark.sim
def test_bench_catches_a_wrong_last_window(tmp_path):
    # The last window of a p_prev = 6 block (D = 4) taken as 3 words instead of 2: one mask bit
    # too many, and every later base of the layer off by one.
    reader = WindowReader(*CONFIGS["nl3-d4-p4369"])
    reader._tables = tuple((s, ls + 1) if p == 6 else (s, ls)
                           for p, (s, ls) in zip(reader.p_prevs, reader.tables))
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", None, tmp_path, layers=16, reader=reader, seed=7)
    assert e.value.result.failures.keys() == {"test_layers"}
    msg = str(e.value)
    assert re.search(r"layer \d+ window \d+: expected \(base, mask\)", msg), msg
    assert e.value.result.report["test_layers"]["mismatches"] > 0


def test_window_reader_properties():
    r = WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9))
    assert (r.banks, r.width, r.act_bits, r.rows, r.index_bits, r.p_prevs, r.latency) == (
        3, 4, 8, 9, 6, (4, 3, 6, 9), 4)
    assert r.tables == ((1, 4), (1, 3), (2, 2), (3, 1))
    assert (r.sel_bits, r.row_bits, r.bank_bits) == (2, 4, 2)
    assert set(r.signature.members) == {"start", "sel", "n", "bank_rd", "bank_window", "o",
                                        "done"}
    banks = ActBanks(3, 4, 8, 9)
    assert r.read_layout == banks.read_layout and r.window_layout == banks.window_layout
    assert r.window_stream_layout == NonZeroDetector(4, 8, 6).input_layout
    one = WindowReader(1, 1, 4, 12, 4, 2)
    assert (one.p_prevs, one.sel_bits, one.tables) == ((2,), 0, ((2, 1),))
    assert set(one.signature.members) == {"start", "n", "bank_rd", "bank_window", "o", "done"}
    for attr in ("banks", "width", "act_bits", "rows", "index_bits", "p_prevs", "latency"):
        with pytest.raises(AttributeError):
            setattr(r, attr, 2)


def test_window_spec():
    r = WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9))
    # p = 9, n = 10: blocks 0 (words 0..8) and 1 (9..17, only 9 real), 3 windows each.
    assert r.windows(10, 3) == [(0, 0, 0, 0xF), (0, 1, 4, 0xF), (0, 2, 8, 0x1),
                                (1, 0, 9, 0x1), (1, 1, 13, 0x0), (1, 2, 17, 0x0)]
    # p = 3, n = 10: four blocks, the fourth in bank 0 again, row 1.
    assert r.windows(10, 1) == [(0, 0, 0, 0x7), (1, 0, 3, 0x7), (2, 0, 6, 0x7), (0, 1, 9, 0x1)]
    for n in range(1, 64):
        for sel, p in enumerate(r.p_prevs):
            assert len(r.windows(n, sel)) == -(-n // p) * -(-p // 4)


@pytest.mark.parametrize("args, message", [
    ((0, 4, 8, 9, 6, 4), "window reader banks must be an integer >= 1, not 0"),
    ((3, 0, 8, 9, 6, 4), "window reader width must be an integer >= 1, not 0"),
    ((3, 4.0, 8, 9, 6, 4), "window reader width must be an integer >= 1, not 4.0"),
    ((3, 4, 1, 9, 6, 4), "window reader act_bits must be an integer in [2, 32], not 1"),
    ((3, 4, 33, 9, 6, 4), "window reader act_bits must be an integer in [2, 32], not 33"),
    ((3, 4, 8, 0, 6, 4), "window reader rows must be an integer >= 1, not 0"),
    ((3, 4, 8, 9, True, 4), "window reader index_bits must be an integer >= 1, not True"),
    ((3, 4, 8, 9, 6, ()), "window reader needs at least one block size p_prev"),
    ((3, 4, 8, 9, 6, (4, 0)), "window reader block size p_prev must be an integer >= 1, not 0"),
    ((3, 4, 8, 9, 6, "4"), "window reader block size p_prev must be an integer >= 1, not '4'"),
    ((3, 4, 8, 9, 6, (4, 3, 4)),
     "window reader block sizes must be distinct, not (4, 3, 4) (repeated: 4)"),
])
def test_window_reader_rejects_bad_parameters(args, message):
    with pytest.raises(PermdealError) as e:
        WindowReader(*args)
    assert str(e.value) == message


def test_emit_is_deterministic(tmp_path):
    first = emit(WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9)), "window_reader", tmp_path / "a.v")
    second = emit(WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9)), "window_reader", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module window_reader(" in first
    assert emit(WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 10)), "window_reader") != first
    assert emit(WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9)), "window_reader") == first


def test_amaranth_simulation_random_backpressure():
    """Amaranth's own simulator, no build: the harness against the spec (the mask is the live
    words: real and non-zero; half the words are 0; a window without one is dropped), one layer
    per block size, with and without back-pressure. Without back-pressure window ``w`` is read
    in cycle ``w`` (counted from ``start``): offered in ``RL + w`` when it has a live word,
    dropped in ``RL - 1 + w`` when not, and ``done`` comes the cycle after the last of
    these (docs/design.md 9, step 1)."""
    from amaranth.sim import Simulator

    reader = WindowReader(3, 4, 8, 9, 6, (4, 3, 6, 9))
    dut = Harness(reader)
    rng = random.Random(1)
    mem = [[[rng.choice((0, rng.randint(-128, 127))) for _ in range(4)] for _ in range(9)]
           for _ in range(3)]
    log = []

    async def bench(ctx):
        for row in range(9):
            for k in range(4):
                ctx.set(dut.w, [{"valid": 1, "row": row, "pos": k, "value": mem[g][row][k]}
                                for g in range(3)])
                await ctx.tick()
        ctx.set(dut.w, [{"valid": 0, "row": 0, "pos": 0, "value": 0}] * 3)
        for sel, n, bp in ((0, 35, 0.0), (1, 26, 0.0), (2, 31, 0.5), (3, 25, 0.5), (3, 10, 0.0)):
            windows = reader.windows(n, sel)
            lives = [sum(1 << k for k in range(4) if mask >> k & 1 and mem[bank][row][k])
                     for bank, row, _, mask in windows]
            want = [(w, lv) for w, lv in zip(windows, lives) if lv]
            got, cycles, dones = [], [], []
            ctx.set(dut.sel, sel)
            ctx.set(dut.n, n)
            await ctx.tick()  # the descriptor a cycle before start
            ctx.set(dut.start, 1)
            for t in range(3 * len(windows) + 10):
                ready = rng.random() >= bp
                ctx.set(dut.o.ready, ready)
                if ctx.get(dut.o.valid) and ready:
                    p = ctx.get(dut.o.payload)
                    got.append((p.base, p.mask, [p.data[k] for k in range(4)]))
                    cycles.append(t)
                if ctx.get(dut.done):
                    dones.append(t)
                await ctx.tick()
                ctx.set(dut.start, 0)
            assert len(got) == len(want), (sel, n)
            for ((bank, row, base, mask), live), (gb, gm, gd) in zip(want, got):
                assert (gb, gm) == (base, live)
                assert all(gd[k] == mem[bank][row][k] for k in range(4) if mask >> k & 1)
            rl = dut.reader.latency
            if bp == 0:
                assert cycles == [rl + w for w, lv in enumerate(lives) if lv], (sel, n)
                leaves = [rl + w - (0 if lv else 1) for w, lv in enumerate(lives)]
                assert dones == [max(leaves) + 1], (sel, n)
            else:   # the last window's leave is after every other's
                assert len(dones) == 1 and dones[0] >= cycles[-1] + 1, (sel, n)
            log.append((len(got), len(windows)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # every layer's windows (9, 9, 12, 9, 6 by the schedule), and some of them dropped
    assert [w for _, w in log] == [9, 9, 12, 9, 6]
    assert sum(g for g, _ in log) < sum(w for _, w in log)


@pytest.mark.parametrize("banks, spans, span", [(2, (1, 2, 4), 4), (3, (1, 2), 2), (1, (2, 1), 1)])
def test_window_reader_spreads_blocks_over_ports(banks, spans, span):
    """With spans (per-layer lane groups, docs/design.md 4.2) the reader's block ``b`` is read
    behind port ``b mod m``, bank ``(b div m) mod NL``, row ``(b div (m*NL)) * S + s``: its
    requests, in Amaranth's simulator, against that statement."""
    from amaranth.sim import Simulator
    d, p_prev, n = 2, 3, 23                       # S = 2 windows a block, 8 blocks
    reader = WindowReader(banks, d, 8, 16, 6, p_prev, spans)
    s_count = -(-p_prev // d)
    want = [((b % span) if reader.port_bits else 0, (b // span) % banks,
             (b // (span * banks)) * s_count + s)
            for b in range(-(-n // p_prev)) for s in range(s_count)]
    seen = []

    async def bench(ctx):
        ctx.set(reader.n, n)
        ctx.set(reader.span_sel, spans.index(span))
        ctx.set(reader.o.ready, 1)
        await ctx.tick()
        ctx.set(reader.start, 1)
        for _ in range(3 * len(want) + 10):
            if ctx.get(reader.bank_rd.valid):
                seen.append((ctx.get(reader.port), ctx.get(reader.bank_rd.bank),
                             ctx.get(reader.bank_rd.row)))
            await ctx.tick()
            ctx.set(reader.start, 0)

    sim = Simulator(reader)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == want
