# amaranth: UnusedElaboratable=no
"""The RAM block (hdl/ram.py) in Amaranth's simulator, its use by the accumulator and the banks as
a Verilog module of its own, and the storage figures of the geometry."""

import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.rom import lane_contents
from permdeal.hdl.accumulator import Accumulator
from permdeal.hdl.act_bank import ActBank
from permdeal.hdl.act_banks import ActBanks
from permdeal.hdl.blackbox import Blackbox, leaf_modules
from permdeal.hdl.engine import Engine
from permdeal.hdl.pe import PE
from permdeal.hdl.ram import Ram
from permdeal.verif import runner

from test_sim_engine import CASES, random_model


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_ram_writes_granules_and_reads_the_old_word():
    dut = Ram(8, 4, 4)
    assert (dut.addr_bits, dut.en_bits, dut.bits) == (2, 2, 32)
    seen = []

    async def bench(ctx):
        async def tick(**ports):
            for name, value in ports.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            for name in ports:
                ctx.set(getattr(dut, name), 0)
            return ctx.get(dut.r_data)

        # zero at start; a write and a read of the same word in one cycle: the old word
        seen.append(await tick(r_addr=1, r_en=1, w_addr=1, w_data=0xAB, w_en=0b11))
        seen.append(await tick(r_addr=1, r_en=1))                 # the write, a cycle later
        seen.append(await tick(w_addr=1, w_data=0x5C, w_en=0b01))  # low granule only; r_en 0
        seen.append(ctx.get(dut.r_data))                           # held without r_en
        seen.append(await tick(r_addr=1, r_en=1))
        seen.append(await tick(w_addr=2, w_data=0x3F, w_en=0b10, r_addr=2, r_en=1))
        seen.append(await tick(r_addr=2, r_en=1))
        seen.append(await tick(r_addr=3, r_en=1))
    _run(dut, bench)
    assert seen == [0x00, 0xAB, 0xAB, 0xAB, 0xAC, 0x00, 0x30, 0x00]


def test_ram_parameters_are_checked():
    for args, message in (((0, 4, 1), "RAM width must be an integer >= 1, not 0"),
                          ((8, 1, 8), "RAM depth must be an integer >= 2, not 1"),
                          ((8, 4, 0), "RAM granularity must be an integer >= 1, not 0"),
                          ((8, 4, 3), "RAM granularity must divide the width 8, not 3"),
                          ((8.0, 4, 8), "RAM width must be an integer >= 1, not 8.0")):
        with pytest.raises(PermdealError, match=re.escape(message)):
            Ram(*args)
    with pytest.raises(AttributeError):
        Ram(8, 4, 8).depth = 5


def test_accumulator_and_bank_as_modules():
    acc = Accumulator(20, 10, 1, ram_module="a_ram")
    (box,) = acc.blackboxes
    assert box.module == "a_ram" and acc.ram_shape == (20, 2, 20) == box.inner.blackbox_key[1:]
    assert Accumulator(20, 10, 5).blackboxes == ()
    bank = ActBank(4, 12, 3, ram_module="b_ram")
    # (each activation stored with its non-zero flag: granules of 12 + 1 bits)
    assert bank.ram_shape == (52, 3, 13) and bank.blackboxes[0].module == "b_ram"
    # the same shape may share a name; a different one may not
    leaf_modules(type("T", (), {"blackboxes": (Blackbox(Ram(8, 4, 8), "r"),
                                               Blackbox(Ram(8, 4, 8), "r"))})())
    with pytest.raises(ValueError, match="two different components claim the module name 'r'"):
        leaf_modules(type("T", (), {"blackboxes": (Blackbox(Ram(8, 4, 8), "r"),
                                                   Blackbox(Ram(8, 8, 8), "r"))})())
    with pytest.raises(PermdealError, match="ram_module needs bank_module"):
        ActBanks(2, 4, 8, 3, ram_module="x")
    with pytest.raises(PermdealError, match="acc_ram_module needs lane_module"):
        PE(2, [4], 8, 8, 20, 8, 4, 8, external=True, acc_ram_module="x")


def test_engine_emits_each_ram_shape_once():
    seed, sizes, ps, n_pe, lanes, sw, opts = CASES["p8-4x2"]
    model = random_model(np.random.default_rng(seed), sizes, ps, **opts)
    cfg = EngineConfig(n_pe, lanes, scan_width=sw)
    dut = Engine(cfg, model.layers, contents=lane_contents(model, cfg), name="eng")
    text = emit(dut, "eng")
    geom = dut.geometry
    assert dut.ram_memories == {
        "eng_acc_ram": {"kind": "accumulator", "width": geom.acc_bits,
                        "depth": max(2, geom.acc_depth), "granularity": geom.acc_bits,
                        "instances": n_pe * lanes},
        "eng_act_ram": {"kind": "activation bank", "width": sw * (geom.act_bits + 1),
                        "depth": max(2, geom.bank_rows), "granularity": geom.act_bits + 1,
                        "instances": 2 * n_pe * lanes}}
    modules = re.findall(r"^module \\?([\w.]+) ?\(", text, re.M)
    assert modules.count("eng_acc_ram") == 1 and modules.count("eng_act_ram") == 1
    # the lane's accumulator instantiates the accumulator RAM, the bank its RAM; the only memory
    # arrays besides the top's ROMs (baked contents here) are the two RAM modules' own
    body = {m: re.split(r"^module \\?", text, flags=re.M)[1 + modules.index(m)] for m in modules}
    assert re.search(r"^\s*eng_acc_ram \S+ \(", body["eng_lane.accumulator"], re.M)
    assert re.search(r"^\s*eng_act_ram \S+ \(", body["eng_act_bank"], re.M)
    arrays = {m for m in modules if m != "eng" and re.search(r"^\s*reg .*\] \S+ \[", body[m], re.M)}
    assert arrays == {"eng_acc_ram", "eng_act_ram"}


def test_geometry_storage_counts_every_bit():
    """Useful and stored bits of each memory kind, computed here from the layer shapes."""
    seed, sizes, ps, n_pe, lanes, sw, opts = CASES["mlp3"]   # 20 -> 17 -> 12 -> 9, p 3, 2, 4
    model = random_model(np.random.default_rng(seed), sizes, ps, **opts)
    cfg = EngineConfig(n_pe, lanes, scan_width=sw)
    dut = Engine(cfg, model.layers, contents=lane_contents(model, cfg))
    geom, nl = dut.geometry, n_pe * lanes
    store = geom.storage()
    blocks = [(-(-m // p), -(-n // p)) for n, m, p in zip(sizes, sizes[1:], ps)]
    slots = [-(-mb // nl) for mb, _ in blocks]
    widths = geom.widths
    assert store["weight"] == {
        "useful_bits": sum(mb * nb * p for (mb, nb), p in zip(blocks, ps)) * widths["weight"],
        "stored_bits": sum(b * nb * p for b, (_, nb), p in zip(slots, blocks, ps)) * nl
        * widths["weight"], "what": store["weight"]["what"]}
    assert store["k"]["stored_bits"] == sum(b * nb for b, (_, nb) in zip(slots, blocks)) * nl \
        * widths["k"]
    assert store["bias"]["useful_bits"] == (17 + 12 + 9) * widths["bias"]
    assert store["bias"]["stored_bits"] == sum(b * p for b, p in zip(slots, ps)) * nl \
        * widths["bias"]
    acc_depth = max(b * p for b, p in zip(slots, ps))
    # two sets (one lane group, three layers: the drain hidden, docs/design.md 9): two
    # consecutive layers' sums at once, 17 + 12
    # (the sets by the layers' parity: set 0 the largest B*p of layers 0 and 2, set 1 layer 1's)
    assert geom.acc_sets == 2
    sizes_bp = [b * p for b, p in zip(slots, ps)]
    assert geom.acc_set_depths == (max(sizes_bp[0::2]), sizes_bp[1]) == (acc_depth, 4)
    assert store["accumulator"]["useful_bits"] == (17 + 12) * geom.acc_bits
    assert store["accumulator"]["stored_bits"] == (acc_depth + 4) * nl * geom.acc_bits
    in_blocks = -(-20 // sw)
    rows = max([-(-in_blocks // nl)] + [b * -(-p // sw) for b, p in zip(slots, ps)])
    # set 0 holds the input (20) and layer 2's outputs (12), set 1 layers 1 and 3's (17, 9)
    assert store["activation bank"]["useful_bits"] == (20 + 17) * geom.act_bits
    # (each activation stored with its non-zero flag)
    assert store["activation bank"]["stored_bits"] == (2 * nl * max(2, rows) * sw
                                                       * (geom.act_bits + 1))
    bits = {}
    for r in dut.ram_memories.values():   # (the accumulator: two modules, the sets' depths)
        bits[r["kind"]] = bits.get(r["kind"], 0) + r["width"] * r["depth"] * r["instances"]
    assert set(bits) == {"accumulator", "activation bank"}
    for kind, n in bits.items():
        assert store[kind]["stored_bits"] == n, kind


@pytest.mark.sim
def test_act_banks_with_ram_modules_match_model(tmp_path):
    """The bank set with its banks and their RAMs as modules of their own (the engine's way)."""
    dut = ActBanks(3, 5, 12, 7, bank_module="ab_bank", ram_module="ab_ram")
    source = tmp_path / "act_banks.v"
    text = emit(dut, "act_banks", source)
    assert re.findall(r"^module (\w+)\(", text, re.M) == ["act_banks", "ab_bank", "ab_ram"]
    result = runner.run("icarus", sources=[source], toplevel="act_banks",
                        test_module="permdeal.verif.tb_act_banks", build_dir=tmp_path,
                        config={"banks": 3, "width": 5, "act_bits": 12, "rows": 7,
                                "latency": dut.latency, "cycles": 1500})
    assert result.passed and result.report["test_random"]["mismatches"] == 0
