"""Static timing of the ASIC netlist with OpenSTA (docs/design.md section 8).

After the asic script has mapped the design onto the OSU 0.18 um cells module by module,
:func:`export_lines` adds the Yosys commands that write a flat gate-level netlist,
:data:`NETLIST_FILE`, that OpenSTA links against the liberty alone: the generic design the asic
script saved is flattened and mapped again (:func:`.scripts.asic_mapping`), so that ABC buffers
and sizes the whole netlist at once, nets that cross a module boundary included; its area goes to
:data:`NETLIST_STAT`. The black-box memories are cut out (``expose -evert``), each of their pins
becoming a top-level port named ``<instance>__mem__<pin>`` (:data:`MEMORY_SEP`), an input of the
netlist for a memory output and an output for a memory input. :func:`run_sta` writes the
constraints (:func:`sta_script`), runs ``sta`` and reads its report.

Constraints: one ideal clock on port ``clk`` with the given period; the other inputs (``rst``
too) arrive 0 ns after the clock edge and the outputs are required 0 ns before it (a register at
each side of the boundary, wires free). A memory's outputs arrive :attr:`MemoryTiming.access_ns`
after the edge (its clock-to-data access time) and its inputs are required
:attr:`MemoryTiming.setup_ns` before the edge (its setup time); a memory pin driven by the clock
itself gets no constraint. The memory figures are a model (:data:`DEFAULT_MEMORY`), not a
measurement.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from permdeal.checks import positive
from permdeal.errors import PermdealError

from .scripts import GENERIC_DESIGN, LIBERTY_FILE, asic_mapping
from .tools import find_tool, run_tool

__all__ = ["DEFAULT_MEMORY", "MEMORY_SEP", "NETLIST_FILE", "NETLIST_STAT", "MemoryTiming",
           "export_lines", "memory_timing", "parse_report", "run_sta", "sta_script"]

#: File names inside the work folder: the gate-level netlist Yosys writes and its ``stat -json``,
#: the Tcl script and the log of ``sta``.
NETLIST_FILE, NETLIST_STAT = "netlist_sta.v", "netlist_stat.json"
STA_SCRIPT, STA_LOG = "sta.tcl", "sta.log"
#: Separator of a memory-boundary port's name: ``<memory instance>__mem__<memory pin>``.
MEMORY_SEP = "__mem__"
#: The name under which :func:`export_lines` keeps the design it writes with ``keep_names``.
KEPT_DESIGN = "mapped"
#: The clock port of the design (and the name of the clock).
CLOCK = "clk"
#: Suffix of a flip-flop's instance name (Yosys ``rename -wire``: named after the wire it drives).
REG_SUFFIX = "_reg"
#: Yosys pattern of the flip-flop cells of the OSU library (DFFPOSX1, DFFNEGX1, DFFSR).
FLIP_FLOPS = "DFF*"
#: Rows of the critical path kept in the report (the first and last half of a longer path).
PATH_ROWS = 40
#: A line ``sta`` prints after the last report (a cut-off log lacks it).
DONE = "permdeal-sta-done"
#: The Debian package of OpenSTA.
STA_PACKAGE = "opensta"


@dataclass(frozen=True)
class MemoryTiming:
    """Timing of a black-box memory at its pins: ``access_ns`` from the clock edge to valid read
    data, ``setup_ns`` before the edge for address, data and enables; ``source`` says where the
    figures come from."""

    access_ns: float
    setup_ns: float
    source: str


#: The assumed memory timing: no memory compiler is installed, so the OSU 0.18 um design has no
#: memory macros to measure. 2 ns from clock to read data and 0.3 ns of setup are figures of the
#: order of a small synchronous SRAM or register-file macro in 0.18 um; they are a model, not a
#: measurement, and :func:`memory_timing` sets others.
DEFAULT_MEMORY = MemoryTiming(
    access_ns=2.0, setup_ns=0.3,
    source="assumed for a small 0.18 um synchronous SRAM / register-file macro: 2 ns clock to "
           "read data, 0.3 ns setup (a model, not a measurement)")


def memory_timing(access_ns: float | None = None, setup_ns: float | None = None) -> MemoryTiming:
    """:data:`DEFAULT_MEMORY` with the figures given (``--mem-access-ns``, ``--mem-setup-ns``)
    in its place, each checked to be a positive number."""
    if access_ns is None and setup_ns is None:
        return DEFAULT_MEMORY
    given = []
    access, setup = DEFAULT_MEMORY.access_ns, DEFAULT_MEMORY.setup_ns
    if access_ns is not None:
        access = positive(access_ns, "--mem-access-ns")
        given.append(f"access {access:g} ns")
    if setup_ns is not None:
        setup = positive(setup_ns, "--mem-setup-ns")
        given.append(f"setup {setup:g} ns")
    return MemoryTiming(access, setup, f"given by the user ({', '.join(given)}); the rest "
                                       f"{DEFAULT_MEMORY.source}")


def _type_selection(module):
    """Yosys selection of the instances of module ``module``, parameterized or not."""
    return f"t:{module} t:$paramod\\{module}\\* t:$paramod$*\\{module}"


def export_lines(memory_modules: Sequence[str], period_ns: float, *, flat: bool = False,
                 liberty_file: str = LIBERTY_FILE, netlist: str = NETLIST_FILE,
                 stat: str = NETLIST_STAT, keep_names: bool = False) -> list[str]:
    """Yosys commands, run after the asic script, that write ``netlist`` (:data:`NETLIST_FILE`):
    the saved generic design flattened and mapped for a clock of ``period_ns`` (``flat``: the
    design the script mapped, as it is, flattened), its ``stat -json`` to ``stat``, the
    instances of the black-box ``memory_modules`` replaced by top-level ports
    ``<instance>__mem__<pin>``, undefined bits 0, every port one bit, flip-flops named after
    their output wire with :data:`REG_SUFFIX`, and no attributes or expressions.
    ``keep_names`` writes Yosys' internal names as they are (a flattened cell's name then starts
    with the path of the instance it came from: the power report's blocks) and leaves the
    design as it found it."""
    lines = ([] if flat else [f"design -load {GENERIC_DESIGN}"]) + (
        [f"design -save {KEPT_DESIGN}"] if keep_names else [])
    for module in memory_modules:
        # A black box is never derived, so its ports keep the default parameters' widths;
        # derived without the attribute (the derived module is a black box again) they fit.
        lines.append(f"setattr -mod -unset blackbox ={module}")
    if memory_modules:
        # A memory without parameters is not derived: a black box again before `flatten`,
        # which would inline it as an empty module. (Yosys warns of a module `hierarchy` has
        # removed, unused after the derivation.)
        lines.append("hierarchy")
        lines += [f"setattr -mod -set blackbox 1 ={m}" for m in memory_modules]
    lines += ["flatten", *([] if flat else asic_mapping(period_ns, liberty_file)),
              f"tee -q -o {stat} stat -json -liberty {liberty_file}"]
    lines += [
        # The liberty cells' pin directions, so that `rename -wire` knows their outputs; named
        # before the memories' ports exist, a flip-flop is named after its own wire.
        f"read_liberty -lib {liberty_file}",
        f"rename -wire -suffix {REG_SUFFIX} t:{FLIP_FLOPS}",
    ]
    if memory_modules:
        sel = " ".join(_type_selection(m) for m in memory_modules)
        lines.append(f"expose -evert -sep {MEMORY_SEP} {sel}")
    lines += [
        "setundef -zero",    # no undefined bits; the OSU library has no tie cells, and
        "splitnets -ports",  # OpenSTA reads the constants 1'b0 and 1'b1 as they are
        "opt_clean -purge",
        f"write_verilog -noattr -noexpr -nohex -nodec{' -norename' if keep_names else ''} "
        f"{netlist}",
    ]
    return lines + ([f"design -load {KEPT_DESIGN}"] if keep_names else [])


_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s+)?(\\\S+|\w+)\s*;", re.M)
_ASSIGN = re.compile(r"^\s*assign\s+(\\\S+|\w+)\s*=\s*(\\\S+|\w+)\s*;", re.M)


def _sta_name(name):
    """OpenSTA's name of a Verilog identifier (an escaped one loses its backslash)."""
    return name[1:] if name.startswith("\\") else name


def netlist_ports(text: str) -> dict[str, list[str]]:
    """The ports of a netlist (Verilog text of one module), in OpenSTA's names:
    ``{"inputs", "outputs", "memory_outputs", "memory_inputs", "clock_driven"}``. Memory
    outputs are the netlist's inputs named with :data:`MEMORY_SEP`, memory inputs its outputs;
    ``clock_driven`` are the memory inputs driven by the clock port itself."""
    out = {"inputs": [], "outputs": [], "memory_outputs": [], "memory_inputs": [],
           "clock_driven": []}
    for direction, msb, lsb, name in _PORT.findall(text):
        name = _sta_name(name)
        if msb:
            lo, hi = sorted((int(msb), int(lsb)))
            bits = [f"{name}[{i}]" for i in range(lo, hi + 1)]
        else:
            bits = [name]
        memory = MEMORY_SEP in name
        if direction == "inout":
            raise PermdealError(f"the netlist has an inout port {name}: not timed")
        key = ("memory_" if memory else "") + ("outputs" if (direction == "input") == memory
                                               else "inputs")
        out[key] += bits
    clock_driven = {_sta_name(dst) for dst, src in _ASSIGN.findall(text) if src == CLOCK}
    out["clock_driven"] = [p for p in out["memory_inputs"] if p in clock_driven]
    return out


def _tcl_ports(names):
    """``[get_ports {...}]`` of port ``names`` (brackets of escaped names quoted)."""
    quoted = " ".join(n.replace("[", "\\[").replace("]", "\\]") for n in names)
    return f"[get_ports {{{quoted}}}]"


def sta_script(netlist: str, top: str, period_ns: float, memory: MemoryTiming,
               liberty_file: str = LIBERTY_FILE) -> str:
    """The OpenSTA Tcl script for netlist text ``netlist`` (read from :data:`NETLIST_FILE`),
    top module ``top``, a clock of ``period_ns`` and memory pins timed by ``memory``."""
    period = positive(period_ns, "the clock period (ns)")
    ports = netlist_ports(netlist)
    if CLOCK not in ports["inputs"]:
        raise PermdealError(f"the netlist of {top} has no clock input {CLOCK!r}")
    inputs = [p for p in ports["inputs"] if p != CLOCK]
    mem_inputs = [p for p in ports["memory_inputs"] if p not in ports["clock_driven"]]
    lines = [f"read_liberty {liberty_file}", f"read_verilog {NETLIST_FILE}", f"link_design {top}",
             f"create_clock -name {CLOCK} -period {period:g} [get_ports {CLOCK}]"]
    for delay, cmd, names in ((0, "set_input_delay", inputs),
                              (0, "set_output_delay", ports["outputs"]),
                              (memory.access_ns, "set_input_delay", ports["memory_outputs"]),
                              (memory.setup_ns, "set_output_delay", mem_inputs)):
        if names:
            lines.append(f"{cmd} {delay:g} -clock {CLOCK} {_tcl_ports(names)}")
    lines += ["report_checks -path_delay max -digits 3",
              "report_wns -digits 3", "report_tns -digits 3", f"puts {DONE}"]
    return "\n".join(lines) + "\n"


_ROW = re.compile(r"^\s*(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+[\^v]\s+(\S+)\s+\(([^)]*)\)\s*$")


def _memory_port(point, kind):
    """Whether a path's start or end ``point`` of ``kind`` is a memory-boundary port."""
    return MEMORY_SEP in point and kind.startswith(("input port", "output port"))


def _instance(pin):
    return pin.rsplit("/", 1)[0] if "/" in pin else None


def parse_report(text: str, period_ns: float, log: str | Path) -> dict:
    """The figures of an OpenSTA log ``text`` (of :func:`sta_script`'s reports). Raises
    :class:`PermdealError` naming ``log`` when the log holds an error or is not such a report."""
    name = Path(log).name
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("Error")]
    if errors:
        raise PermdealError(f"OpenSTA failed: {errors[0][:240]} ({name})")
    if DONE not in text:
        raise PermdealError(f"OpenSTA's report is cut off: no line {DONE!r} ({name})")
    if "No paths found." in text and "Startpoint:" not in text:
        raise PermdealError(f"OpenSTA found no timed path in the netlist ({name})")
    # (a long name puts the kind on the next line)
    start = re.search(r"^Startpoint: (\S+)\s+\(([^)]*)\)", text, re.M)
    end = re.search(r"^Endpoint: (\S+)\s+\(([^)]*)\)", text, re.M)
    slack = re.search(r"^\s*(-?\d+\.\d+)\s+slack \((MET|VIOLATED)\)", text, re.M)
    arrival = re.search(r"^\s*(-?\d+\.\d+)\s+data arrival time", text, re.M)
    wns = re.search(r"^wns (-?\d+\.\d+)", text, re.M)
    tns = re.search(r"^tns (-?\d+\.\d+)", text, re.M)
    if not (start and end and slack and arrival and wns and tns):
        raise PermdealError(f"cannot read OpenSTA's report: no startpoint, endpoint, slack, "
                            f"wns or tns ({name})")
    body = text[start.start():arrival.start()]
    rows = [(m[3], m[4], float(m[1]), float(m[2])) for m in map(_ROW.match, body.splitlines())
            if m]
    if not rows:
        raise PermdealError(f"cannot read OpenSTA's report: the worst path has no rows ({name})")
    startpoint, endpoint = start[1], end[1]
    instances = []
    for pin, *_ in rows:
        inst = _instance(pin)
        if inst is not None and inst not in instances:
            instances.append(inst)
    levels = [i for i in instances if i not in (startpoint, endpoint)]
    worst = float(slack[1])
    required = period_ns - worst
    path = rows if len(rows) <= PATH_ROWS else rows[:PATH_ROWS // 2] + rows[-PATH_ROWS // 2:]
    return {
        "period_ns": period_ns,
        "worst_slack_ns": worst,
        "met": slack[2] == "MET",
        "critical_path_ns": round(required, 3),
        "fmax_mhz": round(1000 / required, 2) if required > 0 else None,
        "data_arrival_ns": float(arrival[1]),
        "startpoint": startpoint, "startpoint_kind": start[2],
        "endpoint": endpoint, "endpoint_kind": end[2],
        "logic_levels": len(levels),
        "path": [list(r) for r in path],
        "path_rows": len(rows),
        "wns_ns": float(wns[1]), "tns_ns": float(tns[1]),
        "through_memory": (_memory_port(startpoint, start[2])
                           or _memory_port(endpoint, end[2])),
    }


def sta_version() -> str:
    """``OpenSTA <version>`` of the installed ``sta``."""
    out = subprocess.run([str(find_tool("sta")), "-version"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=False)
    return f"OpenSTA {out.stdout.strip() or 'unknown version'}"


def run_sta(work: Path, top: str, period_ns: float, memory: MemoryTiming = DEFAULT_MEMORY, *,
            liberty_file: str = LIBERTY_FILE) -> dict:
    """Time :data:`NETLIST_FILE` in ``work`` (top module ``top``, the liberty there as
    ``liberty_file``) at a clock of ``period_ns``: writes :data:`STA_SCRIPT`, runs ``sta`` (log
    :data:`STA_LOG`) and returns :func:`parse_report`'s figures with the memory model, the tool
    and the run time. Negative slack is a result, not an error."""
    work = Path(work)
    netlist = work / NETLIST_FILE
    if not netlist.is_file():
        raise PermdealError(f"{netlist}: no netlist to time (export_lines writes it)")
    script = sta_script(netlist.read_text(), top, period_ns, memory, liberty_file)
    (work / STA_SCRIPT).write_text(script)
    log = work / STA_LOG
    took = run_tool("sta", ["-no_splash", "-exit", STA_SCRIPT], work, log, "OpenSTA")
    report = parse_report(log.read_text(errors="replace"), float(period_ns), log)
    return {**report, "memory_timing": asdict(memory), "tool": sta_version(),
            "seconds": round(took, 2)}
