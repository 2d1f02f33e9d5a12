# amaranth: UnusedElaboratable=no
"""The SmartDeal engine's memories as modules, its synthesis (``synth.smartdeal_engine``) and its
power subject (``permdeal.methods.smartdeal_engine``)."""

import json
import re
import shutil
import types

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.gen.smartdeal_engine_design import write_engine_design
from permdeal.gen.verilog import emit
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.compress import QuantSpec, compress_smartdeal
from permdeal.golden.model import FloatLayer
from permdeal.hdl.smartdeal_engine import SmartDealEngine
from permdeal.hdl.smartdeal_memories import BakedRom, RegFile
from permdeal.synth import designs, flow, memory
from permdeal.synth import smartdeal_engine as se

LANES = 2


def tiny(seed=5, sizes=(7, 5, 3), S=2, E=2, b_bits=5):
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i}", rng.standard_normal((o, n)) * 0.4, rng.standard_normal(o) * 0.1)
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    return compress_smartdeal(layers, spec=QuantSpec(act=8, weight=8, bias=8),
                              calibration=rng.standard_normal((32, sizes[0])), S=S, E=E,
                              b_bits=b_bits)


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """``(model, design folder)``: the tiny model's engine on 2 lanes."""
    model = tiny()
    folder = tmp_path_factory.mktemp("sde") / "d"
    write_engine_design(folder, model, LANES, name="sde")
    return model, folder


def test_every_memory_is_a_module_with_its_bits(tmp_path):
    """The lists and every lane's two ROMs are Verilog modules of their own, with the widths
    and depths the layers imply; the top module holds no memory but its register files."""
    model = tiny()
    S, E, bb = 2, 2, 5
    engine = SmartDealEngine(model.layers, LANES, name="sde")
    mems = engine.memories
    assert list(mems) == ["sde_nz", *(f"sde_lane{l}_{p}" for l in range(LANES)
                                      for p in ("ce", "b"))]
    geo = [(l.shape[0], -(-l.shape[1] // S), l.codes.rows_per_block) for l in model.layers]
    ce_words = sum(-(-m // LANES) * r for m, r, _ in geo)
    b_words = sum(-(-m // LANES) * -(-r // h) for m, r, h in geo)
    for l in range(LANES):
        assert mems[f"sde_lane{l}_ce"] == {"kind": "Ce ROM", "width": S * (E + 2),
                                           "depth": ce_words, "rom": True}
        assert mems[f"sde_lane{l}_b"] == {"kind": "basis ROM", "width": S * S * bb,
                                          "depth": b_words, "rom": True}
    n_max = max(l.shape[1] for l in model.layers)
    entry = 8 + 1 + 2 + 1 + 1 + 1            # x, jj (S = 2), c (r <= 4: 2 bits), k (1 block),
    #                                          v (batch 1: one bit), first
    assert mems["sde_nz"] == {"kind": "nz list", "width": entry,
                              "depth": 2 << (n_max - 1).bit_length(), "rom": False}
    rf = engine.register_files
    # the chunk starts only where some tile skips chunks (docs/design.md 11.1)
    skips = any(runs != [(0, -(-l.shape[1] // S))] for l in model.layers
                for runs in ec.tile_runs(l, LANES))
    assert set(rf) == {"out_mem", "run_rom", "bias_mem"} | ({"cstart"} if skips else set())
    assert rf["bias_mem"]["depth"] == sum(l.shape[0] for l in model.layers)
    assert rf["out_mem"] == {"width": 8, "depth": 3, "rom": False}
    text = emit(engine, "sde", tmp_path / "sde.v")
    for module in mems:
        assert len(re.findall(rf"^module {module}\(", text, re.M)) == 1
    top = text[:text.index("endmodule")]
    assert not re.search(r"^\s*reg \[.*\] \w+ \[", top, re.M)   # no memory array in the top
    # the priced figures: SRAM for the ROMs, the small list a register file
    mm = se.memories(engine, memory.sram_model(), {"um2_per_bit": 100.0})
    k = mm["kinds"]
    assert (k["Ce ROM"]["instances"], k["Ce ROM"]["model"]) == (LANES, "sram")
    assert k["nz list"]["model"] == "register file"
    assert mm["total"]["bits"] == sum(m["width"] * m["depth"] for m in mems.values())
    assert mm["total"]["area_um2"] == pytest.approx(
        (mm["total"]["bits"] - k["nz list"]["bits"]) * memory.SRAM_UM2_PER_BIT
        + k["nz list"]["bits"] * 100.0, abs=0.5)


def test_memory_components_refuse_bad_parameters():
    with pytest.raises(PermdealError, match="at least one word"):
        BakedRom(4, [])
    with pytest.raises(PermdealError, match=r"each of 0 \.\. 2\*\*4 - 1"):
        BakedRom(4, [16])
    with pytest.raises(PermdealError, match="register file depth"):
        RegFile(4, 1)
    assert (BakedRom(3, [5]).depth, BakedRom(3, [5]).bits) == (2, 6)   # padded to 2 words


def test_design_refuses_images_of_another_model(design, tmp_path):
    _, folder = design
    copy = tmp_path / "d"
    shutil.copytree(folder, copy)
    other = tmp_path / "other"
    write_engine_design(other, tiny(sizes=(6, 5, 3)), LANES, name="sde")
    shutil.rmtree(copy / "rom")
    shutil.copytree(other / "rom", copy / "rom")
    with pytest.raises(PermdealError, match="sha256 does not match .* \\(the images are not the "
                                            "codes the Verilog was generated with"):
        se.EngineDesign(copy).load_model()


@pytest.mark.synth
def test_synth_generic_and_asic_split_by_block(design, tmp_path):
    model, folder = design
    rep = designs.run(folder, ["generic", "asic"], flow.SynthOptions(asic_mhz=100),
                      tmp_path / "s")
    assert rep["kind"] == se.REPORT_KIND and rep["design"]["lanes"] == LANES
    engine = SmartDealEngine(model.layers, LANES, name="sde")
    g, a = rep["generic"], rep["asic"]
    assert g["ram_instances"] == {m: 1 for m in sorted(engine.memories)}   # black boxes
    names = [b for b, _ in se.BLOCKS]
    for split, total in ((g["blocks_transistors"], g["transistors"]),
                         (a["blocks_um2"], a["logic_area_um2"])):
        assert list(split["blocks"]) == names
        conv = split["blocks"].pop("conv pixel map and pooling")   # (an FC engine has none)
        assert conv == 0 and all(v > 0 for v in split["blocks"].values()), split
        split["blocks"]["conv pixel map and pooling"] = conv
        assert sum(split["blocks"].values()) == pytest.approx(total, abs=LANES + 1)
        assert split["per_lane"]["rebuild"] == pytest.approx(
            split["blocks"]["rebuild"] / LANES, abs=1)
    assert 0 < a["rebuild_share"] < 1
    assert a["rebuild_share"] == pytest.approx(
        a["blocks_um2"]["blocks"]["rebuild"] / a["logic_area_um2"], abs=1e-4)
    assert sum(r["synthesized"] for r in a["register_files"].values()) == pytest.approx(
        a["blocks_um2"]["blocks"]["register files"], abs=1)
    bits = sum(m["width"] * m["depth"] for m in engine.memories.values())
    assert a["memories"]["total"]["bits"] == bits
    assert a["total_area_um2"] == pytest.approx(
        a["logic_area_um2"] + a["memories"]["total"]["area_um2"], abs=0.2)
    assert a["timing"]["fmax_mhz"] > 0 and a["fmax_mhz"] == a["timing"]["fmax_mhz"]
    assert rep["throughput"]["asic_peak_gops"] == round(2 * LANES * a["fmax_mhz"] / 1000, 2)
    text = (tmp_path / "s" / "report.txt").read_text()
    assert "rebuild engines:" in text and "Ce ROM" in text and "register files" in text


@pytest.mark.synth
@pytest.mark.sim
def test_power_subject_runs_the_engine(design, tmp_path):
    """``permdeal power``'s path with the engine's subject: outputs and cycles as the models
    say, every block of :data:`BLOCKS` spends energy, the memories are charged from their
    enables (the ROMs never written, read only for issued inputs); the gate-level netlist, its
    memories put back, gives the golden outputs too (about 50 s)."""
    import permdeal.api.power as ap
    from permdeal.methods.smartdeal_engine import power_subject
    model, folder = design
    rng = np.random.default_rng(2)
    x = rng.integers(-60, 60, (2, 7))
    x[0, :3] = 0
    sub = power_subject(folder)
    assert sub.blocks == se.BLOCKS and set(sub.ram_modules) == set(
        SmartDealEngine(model.layers, LANES, name="sde").memories)
    macs = float(np.mean([c.macs for c in ec.model_cycles(model, x, LANES)]))
    assert sub.macs(x) == macs > 0
    real = ap.design_method
    try:
        ap.design_method = lambda d: types.SimpleNamespace(power_subject=power_subject)
        rep = ap.run(folder, x, tmp_path / "p", clock_mhz=100, gate_check=1)
    finally:
        ap.design_method = real
    assert rep["golden_match"] and rep["cycles_match_model"]
    check = rep["gate_check"]
    assert check["gates_golden_match"] and 0.5 < check["logic_ratio"] < 2, check
    assert check["gates"]["blocks_pj"]["memory: Ce ROM"] == pytest.approx(
        check["rtl"]["blocks_pj"]["memory: Ce ROM"], rel=0.05)
    names = [b for b, _ in se.BLOCKS]
    assert list(rep["energy"]["blocks_pj"])[:len(names)] == names
    fc = [b for b in names if b != "conv pixel map and pooling"]    # (an FC engine has none)
    assert rep["energy"]["blocks_pj"]["conv pixel map and pooling"] == 0
    assert all(rep["energy"]["blocks_pj"][b] > 0 for b in fc), rep["energy"]["blocks_pj"]
    m = rep["memories"]
    assert set(m) == {"nz list", "Ce ROM", "basis ROM"}
    assert m["Ce ROM"]["instances"] == m["basis ROM"]["instances"] == LANES
    runs = ec.model_cycles(model, x, LANES)
    issued = sum(sum(l.ops) for c in runs for l in c.layers)
    for kind in ("Ce ROM", "basis ROM"):
        assert m[kind]["writes"] == 0
        assert m[kind]["reads"] == pytest.approx(LANES * issued, abs=LANES)
    assert m["nz list"]["reads"] == pytest.approx(issued, abs=1)
    # every layer's non-zero inputs are written to a list once
    assert m["nz list"]["writes"] == pytest.approx(sum(l.nnz for c in runs for l in c.layers),
                                                   abs=1)


@pytest.mark.synth
def test_ecp5_synthesizes_the_memories(design, tmp_path):
    """On ecp5 nothing is a black box: the ROMs come from the Verilog's own words, the lists
    and register files are synthesized too; one DSP multiplier a lane."""
    _, folder = design
    rep = designs.run(folder, ["ecp5"], flow.SynthOptions(device="LFE5U-25F"), tmp_path / "e")
    e = rep["ecp5"]
    assert e["rom_contents"] == "the contents baked into the Verilog" and e["fmax_mhz"] > 10
    assert e["resources"]["MULT18X18D"] == LANES
    assert rep["throughput"]["ecp5_peak_gops"] == round(2 * LANES * e["fmax_mhz"] / 1000, 2)


@pytest.mark.synth
def test_cli_synthesizes_an_engine_design(design, tmp_path, capsys):
    from permdeal.cli import main
    _, folder = design
    assert main(["synth", "--design", str(folder), "--target", "generic", "-o",
                 str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "SmartDeal engine, 2 lanes" in out and "logic by block (transistors" in out
    rep = json.loads((tmp_path / "g" / "report.json").read_text())
    assert rep["kind"] == se.REPORT_KIND
    assert rep["generic"]["memory_bits"] == {
        m: r["width"] * r["depth"] for m, r in se.EngineDesign(folder).engine(
            se.EngineDesign(folder).load_model()[0]).memories.items()}
