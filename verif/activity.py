"""A design run for its switching activity: the RTL, or its gate-level netlist (docs/design.md
section 13).

:func:`record` runs ``permdeal sim``'s test (``verif/tb_engine.py`` ``test_cycles``: the inputs
back to back, outputs checked against the golden model, cycles against the cycle model) on
Verilator with a SAIF trace (``--trace-saif``) and returns the :class:`~.saif.Activity` with the
run's figures. With a ``netlist`` it runs the gate-level stand-in of :func:`.gates.wrapper`
instead of the RTL: the cells' simulation models from the library's Verilog, the memories as the
RTL has them. The same test on the same inputs drives both, so their activities compare.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from permdeal.errors import PermdealError
from permdeal.gen.design import RTL_DIR, Design
from permdeal.golden.cycles import model_cycles
from permdeal.golden.model import QuantModel

from . import gates, runner
from .saif import Activity, read_saif
from .sim import TEST_MODULE, TESTCASE

__all__ = ["GATE_WAIVERS", "Bench", "Recorded", "engine_bench", "record"]

#: The SAIF file Verilator writes (cocotb's Verilator main names it).
SAIF_FILE = "dump.saif"
#: Verilator warnings of the cells' simulation models (timing they ignore, implicit nets).
GATE_WAIVERS = ("MINTYPMAXDLY", "SPECIFYIGN", "IMPLICIT", "TIMESCALEMOD", "PINMISSING",
                "UNOPTFLAT", "WIDTHTRUNC", "WIDTHEXPAND", "MULTIDRIVEN", "COMBDLY")
#: The C++ optimization of a gate-level build: it is compiled once per run, and ``-O0``
#: compiles the many cell instances several times faster than Verilator's default ``-Os``.
GATE_OPT = "-O0"


@dataclass(frozen=True)
class Bench:
    """The cocotb test a recorded run drives: ``test_module`` and ``testcase``, the ``config``
    it reads (inputs, golden outputs, expected cycles), the ``golden`` outputs (one row per
    input) and the cycle model's ``cycles`` per input."""

    test_module: str
    testcase: str
    config: dict
    golden: np.ndarray
    cycles: list


def engine_bench(design: Design, model: QuantModel, x: np.ndarray) -> Bench:
    """``permdeal sim``'s test of a PermDNN engine design on input codes ``x``: the inputs
    back to back, outputs against the golden model, cycles against the cycle model."""
    x = np.asarray(x, dtype=np.int64)
    golden = model.forward(x)
    cycles = [model_cycles(model, xi, design.cfg).total for xi in x]
    config = {"in_bits": design.manifest["ports"]["in_bits"],
              "out_bits": design.manifest["ports"]["out_bits"], "inputs": x.tolist(),
              "expected": golden.tolist(), "cycles": cycles}
    return Bench(TEST_MODULE, TESTCASE, config, golden, cycles)


@dataclass(frozen=True)
class Recorded:
    """One recorded run: its ``activity``, the ``cycles`` the RTL took per input and the
    model's, whether the outputs matched the golden model, the tool's ``seconds`` (build,
    run) and the ``build`` folder."""

    activity: Activity
    cycles: list[int]
    model_cycles: list[int]
    golden_match: bool
    build_seconds: float
    run_seconds: float
    build: Path


def record(design: Any, bench: Bench, rom: Path, work: Path, *,
           netlist: str | None = None, memory_modules: Collection[str] = (),
           tied: Mapping[str, int] | None = None, seed: int | None = None) -> Recorded:
    """Run ``design`` (a design folder's object: ``folder``, ``top``, ``sources``,
    ``manifest``; the ROM images ``rom``) under the test ``bench`` in ``work`` (a fresh folder)
    on Verilator with a SAIF trace. ``netlist`` (Verilog text of the gate-level netlist, its
    cells given as logic, the memories cut to ports), with the RTL's ``memory_modules`` and the
    ``tied`` ports of :func:`.gates.wrapper`, runs the gate-level stand-in instead. A run whose
    outputs or cycles differ from the golden and cycle models is not an error here: the caller
    reports it."""
    golden, expected = bench.golden, bench.cycles
    work.mkdir(parents=True, exist_ok=True)
    sources: list[Path] = list(design.sources)
    # (Verilator leaves out of a trace the names that start with "_" unless asked)
    args = ["--trace-saif", "--trace-underscore"]
    make_vars = ""
    if netlist is not None:
        rtl_file = design.folder / RTL_DIR / f"{design.top}.v"
        rtl = rtl_file.read_text()
        wrap, renamed = gates.wrapper(netlist, rtl, design.top, memory_modules, tied)
        (work / "gates_top.v").write_text(wrap)
        (work / "gates.v").write_text(renamed)
        defined = gates.module_names(rtl)
        (work / "memories.v").write_text("".join(gates.module_text(rtl, m)
                                                 for m in memory_modules if m in defined))
        sources = [work / "gates_top.v", work / "gates.v", work / "memories.v",
                   *[s for s in design.sources if Path(s).resolve() != rtl_file.resolve()]]
        args += [f"-Wno-{w}" for w in GATE_WAIVERS]
        make_vars = f"OPT_FAST={GATE_OPT} OPT_SLOW={GATE_OPT}"
    build = work / "build"
    build.mkdir()
    os.symlink(os.path.relpath(rom.resolve(), build.resolve()), build / design.manifest["rom_dir"])
    env = ({"MAKEFLAGS": f"{os.environ.get('MAKEFLAGS', '')} {make_vars}".strip()}
           if make_vars else None)
    try:
        result = runner.run("verilator", sources=sources, toplevel=design.top,
                            test_module=bench.test_module, build_dir=build, config=bench.config,
                            seed=seed, waves=True, testcase=bench.testcase, build_args=args,
                            env=env)
    except runner.SimulationFailed as e:
        result = e.result
    rep = result.report.get(bench.testcase, {})
    observed = rep.get("observed", [])
    match = len(observed) == golden.size and bool(
        np.array_equal(np.array(observed, dtype=np.int64).reshape(golden.shape), golden))
    saif = build / SAIF_FILE
    if not saif.is_file():
        raise PermdealError(f"the simulation wrote no activity file {saif.name} "
                            f"(log: {result.log})")
    return Recorded(activity=read_saif(saif, design.top), cycles=rep.get("rtl_cycles", []),
                    model_cycles=expected, golden_match=match,
                    build_seconds=result.build_seconds, run_seconds=result.run_seconds,
                    build=build)
