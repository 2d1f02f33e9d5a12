# amaranth: UnusedElaboratable=no
"""One set of activation banks on Verilator and Icarus against a model of its memories, and its
generator."""

import re

import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.hdl.act_banks import ActBanks
from permdeal.verif import runner

#: name -> (banks, width, act_bits, rows) on both simulators: one Verilator build (~15 s of CPU)
#: with power-of-two banks, a wide word and positions and rows that do not fill their fields.
CONFIGS = {"b4-d8-a16-r6": (4, 8, 16, 6)}
#: Icarus only: the smallest (1-bit ports, no bank select to speak of) and an odd mix (a bank
#: select that can name a missing bank, a position field that can name a missing position).
ICARUS_CONFIGS = {"b1-d1-a8-r1": (1, 1, 8, 1), "b3-d5-a12-r7": (3, 5, 12, 7)}


def _simulate(sim, params, build_dir, cycles=1500, **kwargs):
    dut = ActBanks(*params)
    source = build_dir / "act_banks.v"
    emit(dut, "act_banks", source)
    config = {"banks": dut.banks, "width": dut.width, "act_bits": dut.act_bits, "rows": dut.rows,
              "latency": dut.latency, "cycles": cycles}
    return runner.run(sim, sources=[source], toplevel="act_banks",
                      test_module="permdeal.verif.tb_act_banks", build_dir=build_dir,
                      config=config, **kwargs)


def _check_result(result, params):
    banks, width, _, rows = params
    assert result.passed and result.tests == ("test_random",)
    rep = result.report["test_random"]
    assert rep["mismatches"] == 0, rep
    assert rep["checked"] == rep["reads"] > banks * rows, rep  # the sweep and the random reads
    assert rep["values"] == rep["checked"] * width, rep
    assert rep["writes"] > 0 and rep["collisions"] > 0, rep


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_act_banks_match_model(sim, name, tmp_path):
    _check_result(_simulate(sim, CONFIGS[name], tmp_path), CONFIGS[name])


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CONFIGS)
def test_act_banks_match_model_icarus(name, tmp_path):
    _check_result(_simulate("icarus", ICARUS_CONFIGS[name], tmp_path), ICARUS_CONFIGS[name])


@pytest.mark.sim
def test_bench_catches_an_ignored_bank_select(tmp_path, monkeypatch):
    # Read bank 0 whatever the select: the zero sweep passes, the first read of a written word of
    # another bank must not.
    monkeypatch.setattr(ActBanks, "_tree_level", lambda self, bit, level: level[0::2])
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", (3, 5, 12, 7), tmp_path, cycles=300, seed=7)
    assert e.value.result.failures.keys() == {"test_random"}
    msg = str(e.value)
    assert re.search(r"bank [12] row \d position \d: expected -?\d+, observed -?\d+ \(cycle \d+\)",
                     msg), msg
    assert e.value.result.report["test_random"]["mismatches"] > 0


@pytest.mark.sim
def test_bench_catches_a_transparent_read(tmp_path, monkeypatch):
    # A read port that sees the same cycle's write returns the new word, not the old one.
    from amaranth.lib.memory import Memory

    read_port = Memory.read_port

    def transparent(self, **kwargs):
        return read_port(self, transparent_for=self.write_ports, **kwargs)

    monkeypatch.setattr(Memory, "read_port", transparent)
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", (3, 5, 12, 7), tmp_path, cycles=300, seed=7)
    assert re.search(r"bank \d row \d position \d: expected", str(e.value)), str(e.value)


def test_act_banks_properties():
    dut = ActBanks(3, 5, 12, 7)
    assert (dut.banks, dut.width, dut.act_bits, dut.rows, dut.latency) == (3, 5, 12, 7, 3)
    assert (dut.bank_bits, dut.pos_bits, dut.row_bits) == (2, 3, 3)
    assert set(dut.signature.members) == {"w", "rd", "window"}
    assert dut.w.shape().size == 3 * (1 + 3 + 3 + 12)
    assert list(dut.w.shape().elem_shape) == [
        ("valid", dut.write_layout["valid"]), ("row", dut.write_layout["row"]),
        ("pos", dut.write_layout["pos"]), ("value", dut.write_layout["value"])]
    assert dut.rd.shape().size == 1 + 2 + 3
    assert dut.window.shape().size == 1 + 5 * 12 + 5
    small = ActBanks(1, 1, 2, 1)
    assert (small.bank_bits, small.pos_bits, small.row_bits, small.latency) == (1, 1, 1, 3)
    assert small.w.shape().size == 1 + 1 + 1 + 2
    assert (ActBanks(4, 8, 16, 6).bank_bits, ActBanks(4, 8, 16, 6).pos_bits,
            ActBanks(4, 8, 16, 6).row_bits) == (2, 3, 3)
    for attr in ("banks", "width", "act_bits", "rows", "latency"):
        with pytest.raises(AttributeError):
            setattr(dut, attr, 2)


@pytest.mark.parametrize("args, message", [
    ((0, 8, 16, 6), "activation banks must be an integer >= 1, not 0"),
    ((True, 8, 16, 6), "activation banks must be an integer >= 1, not True"),
    ((4, 0, 16, 6), "activation bank width must be an integer >= 1, not 0"),
    ((4, 2.0, 16, 6), "activation bank width must be an integer >= 1, not 2.0"),
    ((4, 8, 1, 6), "activation bank act_bits must be an integer in [2, 32], not 1"),
    ((4, 8, 33, 6), "activation bank act_bits must be an integer in [2, 32], not 33"),
    ((4, 8, "16", 6), "activation bank act_bits must be an integer in [2, 32], not '16'"),
    ((4, 8, 16, 0), "activation bank rows must be an integer >= 1, not 0"),
    ((4, 8, 16, None), "activation bank rows must be an integer >= 1, not None"),
])
def test_act_banks_reject_bad_parameters(args, message):
    with pytest.raises(PermdealError) as e:
        ActBanks(*args)
    assert str(e.value) == message


def test_emit_is_deterministic(tmp_path):
    first = emit(ActBanks(3, 5, 12, 7), "act_banks", tmp_path / "a.v")
    second = emit(ActBanks(3, 5, 12, 7), "act_banks", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module act_banks(" in first
    assert emit(ActBanks(3, 5, 12, 8), "act_banks") != first
    assert emit(ActBanks(4, 5, 12, 7), "act_banks") != first


def test_amaranth_simulation_reads_and_parallel_writes():
    """Amaranth's own simulator, no build: parallel writes; a read sees the writes of its own
    cycle but not those of the cycle after it; a position past the word writes nothing."""
    from amaranth.sim import Simulator

    dut = ActBanks(3, 5, 12, 7)
    seen = []

    async def bench(ctx):
        ctx.set(dut.w[0], {"valid": 1, "row": 2, "pos": 4, "value": -2048})
        ctx.set(dut.w[2], {"valid": 1, "row": 2, "pos": 0, "value": 2047})
        ctx.set(dut.w[1], {"valid": 1, "row": 2, "pos": 6, "value": 5})  # past the word
        # the first read in the cycle of the writes, then one a cycle, then none; bank 0's word
        # is written again in the cycle after the first read
        for k, bank in enumerate((0, 2, 0, 1, None, None, None, None)):
            ctx.set(dut.rd, {"valid": int(bank is not None), "bank": bank or 0, "row": 2})
            await ctx.tick()
            if k == 0:
                ctx.set(dut.w.as_value(), 0)
                ctx.set(dut.w[0], {"valid": 1, "row": 2, "pos": 4, "value": 9})
            elif k == 1:
                ctx.set(dut.w.as_value(), 0)
            seen.append((ctx.get(dut.window.valid), list(ctx.get(dut.window.data))))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    lat = dut.latency
    assert lat == 3
    valid = [v for v, _ in seen]
    assert valid == [0] * (lat - 1) + [1, 1, 1, 1] + [0] * (len(seen) - lat - 3)
    words = [w for v, w in seen if v]
    assert words == [[0, 0, 0, 0, -2048], [2047, 0, 0, 0, 0], [0, 0, 0, 0, 9], [0] * 5]


def test_a_thousand_banks_elaborate():
    """The window's bank select is a tree, not a chain: 1024 banks (a 128 PE x 8 lane engine)
    emit without overflowing Python's recursion limit."""
    text = emit(ActBanks(1024, 1, 4, 2, bank_module="bank"), "act_banks")
    assert len(re.findall(r"^\s*bank \w+ \(", text, re.M)) == 1024
