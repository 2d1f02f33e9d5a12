"""The Yosys scripts of the three targets (docs/design.md section 8): one statement of each flow.

Every script reads the engine's Verilog (``read_verilog -sv``: Amaranth writes immediate
``assert`` statements, which synthesis drops with ``-noassert``; their messages become ``$print``
cells, deleted too) and synthesizes it *hierarchically*: each Verilog module once, however many
times it is instantiated, so the n_pe identical PEs cost one PE's synthesis time. ``stat -json``
then gives every module's own cells and the instance counts from which :mod:`.stats` composes the
totals. ``flat=True`` flattens first instead (the check that the hierarchy loses nothing).

Weight memories: on ``generic`` and ``asic`` the ROM module (``hdl/permdeal_rom.v``) is read as a
black box (:func:`rom_blackbox`: its ports only; its bits are counted by :mod:`.memory` instead,
apart from the logic); on ``ecp5`` it is read whole, with its image files, and Yosys maps each memory onto block RAM (DP16KD) or LUTs as it sees fit. The RAM modules (``hdl/ram.py``: the
accumulators and activation banks) are likewise made black boxes on ``generic`` and ``asic``
(``blackbox`` after ``hierarchy``; :mod:`.memory` prices them) and synthesized on ``ecp5``.

The asic mapping (:func:`asic_mapping`, docs/design.md section 8) maps for delay at the clock
period, then buffers high fanout and sizes gates (ABC's ``buffer``, ``upsize``, ``dnsize``, which
need the driving cell and output load of :func:`abc_constraints`). ``synth`` runs without its own
area-oriented ABC pass (``-noabc``); the multipliers are Yosys' array multipliers, not Booth
(``-booth``): on the lanes' two-stage multipliers (``hdl/multiplier.py``) Booth made the
critical stage slower (246 against 262 MHz on the demo) for 1% less area. The generic design is
saved (``design -save``) so that :func:`.sta.export_lines` can map it again, flattened, for timing.
"""

import re
from collections.abc import Sequence
from pathlib import Path

from permdeal.errors import PermdealError

__all__ = ["TARGETS", "abc_constraints", "asic_mapping", "check_liberty", "rom_blackbox",
           "yosys_script"]

#: Target -> what it reports (the CLI's help).
TARGETS = {
    "generic": "Yosys generic gates: cell counts and a transistor estimate",
    "asic": "OSU 0.18 um standard cells: logic area (um^2) per module, memories priced per bit, "
            "Fmax from OpenSTA (PermDNN engine)",
    "ecp5": "Lattice ECP5: LUT4, FF, MULT18X18D, DP16KD and Fmax from nextpnr-ecp5",
}

def rom_blackbox(source: str) -> str:
    """The ROM module of Verilog text ``source`` (``hdl/permdeal_rom.v``) as a black box: its
    parameters and ports, no body. (``read_verilog -lib`` would still run its ``$readmemh``.)"""
    m = re.search(r"^module\s+\w+\s*#\(.*?\)\s*\(.*?\);", source, re.S | re.M)
    if m is None:
        raise PermdealError("the ROM module's source has no `module NAME #(...) (...);` header")
    return "(* blackbox *)\n" + m[0].replace("output reg ", "output wire") + "\nendmodule\n"


#: File names inside the work folder (the tools see nothing else).
STAT_JSON, NETLIST_JSON, LIBERTY_FILE = "stat.json", "netlist.json", "cells.lib"
#: ABC's timing constraints of the asic mapping (a file the Yosys script writes).
ABC_CONSTR_FILE = "abc.constr"
#: The name under which the asic script saves the generic design before mapping it.
GENERIC_DESIGN = "generic"

#: What ABC assumes at the edges of every netlist it maps on the asic target (a flip-flop output
#: or a module input in, a flip-flop input or a module output out): inputs driven by BUFX2, the
#: OSU buffer whose drive matches the DFFPOSX1 flip-flop's output (both rated for about 0.97 pF),
#: outputs loaded by one flip-flop D pin (DFFPOSX1: 8.83 fF). Both from the OSU 0.18 um liberty.
ABC_DRIVING_CELL, ABC_LOAD_FF = "BUFX2", 8.83
#: ABC's script of the asic mapping (Yosys puts ``-D <period in ps>`` for ``{D}``). Yosys' own
#: script for ``-constr`` runs ``dc2`` before mapping, an area rewriting that (like the generic
#: ABC pass of ``synth``) turns the adders' Brent-Kung carry trees into ripple chains; this one
#: balances (``&b``) instead, maps for delay on structural choices (``&dch``, ``&nf``), then
#: buffers every net of high fanout or load (flip-flop outputs too: they drive the netlist's
#: inputs) and sizes the gates (docs/design.md section 8).
ASIC_ABC_SCRIPT = ("strash", "&get -n", "&b", "&dch -f", "&nf {D}", "&put",
                   "buffer", "upsize {D}", "dnsize {D}")


def abc_constraints() -> str:
    """The text of :data:`ABC_CONSTR_FILE`: :data:`ABC_DRIVING_CELL` and :data:`ABC_LOAD_FF`."""
    return f"set_driving_cell {ABC_DRIVING_CELL}\nset_load {ABC_LOAD_FF:g}\n"


def check_liberty(path: Path) -> Path:
    """``path``, a liberty file, when it has the cell :data:`ABC_DRIVING_CELL` (without it ABC
    would skip the buffering of the netlists' inputs, silently); else :class:`PermdealError`."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise PermdealError(f"cannot read the liberty file {path}: {e}") from None
    if not re.search(rf'\bcell\s*\(\s*"?{ABC_DRIVING_CELL}"?\s*\)', text):
        raise PermdealError(f"the liberty file {path} has no cell {ABC_DRIVING_CELL}, the driving "
                            "cell the asic mapping assumes (docs/design.md section 8)")
    return Path(path)


def asic_mapping(period_ns: float, liberty_file: str = LIBERTY_FILE) -> list[str]:
    """The Yosys commands that map a generic design onto the cells of ``liberty_file`` for a
    clock of ``period_ns``: flip-flops, then logic by ABC (:data:`ASIC_ABC_SCRIPT`, constraints
    in :data:`ABC_CONSTR_FILE`, which the asic script writes first)."""
    script = "+" + ";".join(c.replace(" ", ",") for c in ASIC_ABC_SCRIPT)
    return [f"dfflibmap -liberty {liberty_file}",
            f"abc -liberty {liberty_file} -constr {ABC_CONSTR_FILE} "
            f"-D {round(period_ns * 1000)} -script {script}",
            "opt_clean"]


def yosys_script(target: str, top: str, engine_file: str, rom_file: str, *,
                 flat: bool = False, ram_modules: Sequence[str] = (),
                 asic_period_ns: float = 4.0) -> str:
    """The Yosys script of ``target`` for top module ``top`` in ``engine_file``.

    ``rom_file`` is the ROM module's source (``hdl/permdeal_rom.v``): a black box for ``generic``
    and ``asic``, the real module for ``ecp5``. The script writes :data:`STAT_JSON`, and for ``ecp5``
    the flattened netlist :data:`NETLIST_JSON` for nextpnr; ``asic`` reads the liberty file as
    :data:`LIBERTY_FILE`. ``ram_modules`` (modules of ``engine_file``) become black boxes on
    ``generic`` and ``asic`` (memories priced apart from logic); ``ecp5`` synthesizes them.
    ``asic_period_ns`` is the clock period the asic mapping aims at.
    """
    if target not in TARGETS:
        raise PermdealError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    hier = " -flatten" if flat else ""
    lines = [
        # -defer: the real ROM module is elaborated only with its instances' parameters.
        f"read_verilog -defer {rom_file}" if target == "ecp5" else f"read_verilog {rom_file}",
        f"read_verilog -sv -noassert {engine_file}",
        f"hierarchy -check -top {top}",
        "delete t:$print",
    ]
    if ram_modules and target != "ecp5":
        lines.append("blackbox " + " ".join(ram_modules))
    # Registers a design duplicates on purpose (a fan-out tree; their wires carry ``keep``) stay
    # apart: opt_merge would make them one flip-flop that drives every load.
    lines += ["proc", "setattr -set keep 1 a:keep %ci1 t:$dff %i"]
    if target == "ecp5":
        # splitnets (after proc) first: without it ABC9's reintegration can assert on Amaranth's
        # net names (Yosys issue #4349, "count_id(wire->name) == 0"; the shift-add unit hits it).
        # synth_ecp5's own options: -dff, -nowidelut, abc9 -W 1000 and a flat synthesis were
        # measured on the demo engine (README "ECP5, tool options"), none clearly faster.
        lines += ["splitnets", f"synth_ecp5 -top {top}{'' if flat else ' -noflatten'}",
                  f"tee -q -o {STAT_JSON} stat -json",
                  "flatten", f"write_json {NETLIST_JSON}"]
    elif target == "generic":
        lines += [f"synth -top {top}{hier}", f"tee -q -o {STAT_JSON} stat -json -tech cmos"]
    else:
        # Mapped per module for the area; .sta maps the saved design again, flattened, so that
        # nets crossing a module boundary are buffered too (docs/design.md section 8).
        lines += [f"write_file {ABC_CONSTR_FILE} <<EOT", *abc_constraints().splitlines(), "EOT",
                  f"synth -top {top}{hier} -noabc",
                  f"design -save {GENERIC_DESIGN}",
                  *asic_mapping(asic_period_ns),
                  f"tee -q -o {STAT_JSON} stat -json -liberty {LIBERTY_FILE}"]
    return "\n".join(lines) + "\n"
