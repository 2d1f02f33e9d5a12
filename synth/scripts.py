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
"""

import re
from collections.abc import Sequence

from permdeal.errors import PermdealError

__all__ = ["TARGETS", "rom_blackbox", "yosys_script"]

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
    if target == "ecp5":
        # proc; splitnets first: without them ABC9's reintegration can assert on Amaranth's net
        # names (Yosys issue #4349, "count_id(wire->name) == 0"; the shift-add unit hits it).
        lines += ["proc", "splitnets", f"synth_ecp5 -top {top}{'' if flat else ' -noflatten'}",
                  f"tee -q -o {STAT_JSON} stat -json",
                  "flatten", f"write_json {NETLIST_JSON}"]
    elif target == "generic":
        lines += [f"synth -top {top}{hier}", f"tee -q -o {STAT_JSON} stat -json -tech cmos"]
    else:
        # -D: ABC maps for delay at the clock period (nets that cross a module boundary, or
        # that the mapping leaves with a high fanout, are not buffered: docs/design.md 8).
        lines += [f"synth -top {top}{hier}",
                  f"dfflibmap -liberty {LIBERTY_FILE}",
                  f"abc -liberty {LIBERTY_FILE} -D {round(asic_period_ns * 1000)}",
                  "opt_clean",
                  f"tee -q -o {STAT_JSON} stat -json -liberty {LIBERTY_FILE}"]
    return "\n".join(lines) + "\n"
