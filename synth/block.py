# amaranth: UnusedElaboratable=no
"""``permdeal synth --block NAME``: one generated block synthesized on its own.

The engine has a design folder; a block that is not (yet) part of one, such as the SmartDeal
shift-add unit, is generated from its parameters (``--block-params KEY=V,...``), emitted as Verilog
and run through the same Yosys and nextpnr flows (:mod:`.flow`, :mod:`.scripts`), so its figures
are comparable with the engine's. The report adds the block's parameters and timing, and for the
shift-add unit and the SmartDeal engine's bit-parallel rebuild engine (``rebuild``) the throughput
in rebuilt weights per cycle.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from . import flow

if TYPE_CHECKING:
    from amaranth.lib import wiring

__all__ = ["BLOCKS", "make_block", "parse_params", "run", "synthesize"]

REPORT_KIND = "permdeal-synth-block"
BLOCK_FILE = "block.v"


def _shift_add(S=3, E=3, b_bits=8, weight_bits=16, shift=0, lanes=None):
    """The bit-serial shift-add unit (``hdl.shift_add``): ``S`` weights every ``P*T`` cycles."""
    from permdeal.hdl.shift_add import ShiftAdd
    dut = ShiftAdd(S, E, b_bits, weight_bits, shift, lanes)
    t = dut.timing
    return dut, {"cycles_per_row": t.cycles_per_row, "latency": t.latency,
                 "interval": t.interval, "acc_bits": t.acc_bits, "passes": t.passes,
                 "weights_per_cycle": round(dut.S / t.interval, 4)}, {
        "S": S, "E": E, "b_bits": b_bits, "weight_bits": weight_bits, "shift": shift,
        "lanes": dut.lanes}


def _rebuild(S=3, E=3, b_bits=8, weight_bits=16, shift=0):
    """The bit-parallel rebuild engine of the SmartDeal engine's lanes (``hdl.smartdeal_rebuild``)
    for one layer alignment: one weight a cycle."""
    from permdeal.hdl.smartdeal_rebuild import Rebuild
    dut = Rebuild(S, E, b_bits, [(shift, weight_bits)])
    return dut, {"latency": dut.latency, "interval": 1, "weights_per_cycle": 1.0}, {
        "S": S, "E": E, "b_bits": b_bits, "weight_bits": weight_bits, "shift": shift}


#: Block name -> its builder: keyword parameters (its signature: ``--block-params`` keys) to
#: ``(component, timing dict, the parameters in full)``.
BLOCKS = {"shift_add": _shift_add, "rebuild": _rebuild}


def parse_params(name: str, text: str | None) -> dict[str, int]:
    """``KEY=V,KEY=V`` (integers) -> the block's keyword parameters; every key must be one of its
    builder's."""
    if name not in BLOCKS:
        raise PermdealError(f"unknown block {name!r}: choose from {', '.join(BLOCKS)}")
    known = list(inspect.signature(BLOCKS[name]).parameters)
    out = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in known:
            raise PermdealError(f"--block-params: {item!r} is not KEY=VALUE with KEY one of "
                                f"{', '.join(known)}")
        try:
            out[key] = int(value)
        except ValueError:
            raise PermdealError(f"--block-params: {key} must be an integer, not "
                                f"{value.strip()!r}") from None
    return out


def make_block(name: str, params: dict[str, int]) -> tuple[wiring.Component, dict, dict]:
    """``(component, timing dict, the parameters in full)`` of block ``name``."""
    return BLOCKS[name](**params)


def synthesize(name: str, params: dict[str, int], targets: Sequence[str], opts: flow.SynthOptions,
               log_dir: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize block ``name`` with ``params`` for ``targets``; returns the report dict."""
    from permdeal.gen.verilog import emit
    dut, timing, full = make_block(name, params)
    flow.check_tools(targets, opts)
    report = {"kind": REPORT_KIND, "generator": f"permdeal {__version__}",
              "block": {"name": name, "params": full, "timing": timing},
              "hierarchical": not opts.flat, "targets": targets, "seconds": {}}

    def one(target, work):
        emit(dut, name, work / BLOCK_FILE)
        hier, took = flow._run_yosys(target, work / BLOCK_FILE, name, work, opts,
                                     what=f"{target} synthesis of block {name}")
        if target == "generic":
            rep = flow._generic(hier)
        elif target == "asic":
            rep = flow.asic_logic(hier, opts)
        else:
            if progress:
                progress(f"{target}: nextpnr on {opts.device.name}")
            rep = flow._ecp5(hier, work, opts)
        return {**rep, "yosys_seconds": round(took, 1)}
    flow.run_targets(targets, report, log_dir, f"permdeal-synth-{name}", one, progress)
    return report


def text(report: dict) -> str:
    """The block report as a few lines."""
    b = report["block"]
    t = b["timing"]
    out = [f"block {b['name']}: " + ", ".join(f"{k}={v}" for k, v in b["params"].items()),
           "  timing: " + ", ".join(f"{k} {v}" for k, v in t.items())]
    if "generic" in report:
        g = report["generic"]
        out.append(f"generic: {g['cells_total']:,} cells, {g['transistors']:,} transistors "
                   "(stat -tech cmos)")
    if "asic" in report:
        a = report["asic"]
        out.append(f"asic (OSU 0.18 um): logic area {a['logic_area_um2']:,.0f} um^2 "
                   f"({a['cells_total']:,} cells; sequential {a['sequential_area_um2']:,.0f} "
                   "um^2)")
    if "ecp5" in report:
        e = report["ecp5"]
        out.append(f"ecp5 ({e['device']}): " + ", ".join(f"{k} {v}" for k, v in
                                                       e["resources"].items())
                   + f"; Fmax {e['fmax_mhz']} MHz")
    out.append("time: " + ", ".join(f"{k} {v} s" for k, v in report["seconds"].items()))
    return "\n".join(out) + "\n"


def run(name: str, params: dict[str, int], targets: Sequence[str], opts: flow.SynthOptions,
        out: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """:func:`synthesize` into the new folder ``out`` (atomically): ``report.json``,
    ``report.txt`` and ``logs/``. Returns the report."""
    try:
        with atomic.output_dir(out) as tmp:
            report = synthesize(name, params, targets, opts, tmp / "logs", progress)
            atomic.write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
            atomic.write_text(tmp / "report.txt", text(report))
    except PermdealError as e:
        raise flow.keep_work(e, out) from None
    return report
