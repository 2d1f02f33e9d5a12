"""``permdeal power``: the energy a generated design (a PermDNN engine or a SmartDeal design)
spends on real inputs (docs/design.md section 13). What differs between the two, the method's
:meth:`~permdeal.methods.Method.power_subject` says: its test bench, memories, blocks and MACs.

1. Yosys maps the design onto the OSU 0.18 um cells (the asic flow) and writes the power netlist;
   OpenSTA measures its Fmax, the clock of the figures unless ``clock_mhz`` is given.
2. The RTL runs every input on Verilator with a SAIF trace: every register, port and named net's
   transitions and time at 1 (:mod:`permdeal.verif.activity`); outputs and cycles are checked
   against the golden and cycle models.
3. Logic: OpenSTA ``report_power`` on the netlist, every cell pin on a net the RTL names annotated
   with its activity, the rest propagated by OpenSTA (the *RTL-activity* path).
4. Memories: every memory's reads and writes counted from the same trace (its enables' time at
   1), times the per-access energy of :mod:`permdeal.synth.energy`.
5. With ``gate_check`` inputs, the gate-level netlist itself runs the first of them (every net's
   activity simulated, nothing propagated: the *gate-level* path) and the RTL path is measured on
   the same inputs, so the two compare.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import atomic, checks
from permdeal.errors import PermdealError
from permdeal.gen.design import RTL_DIR
from permdeal.hdl.rom import ROM_MODULE
from permdeal.methods import PowerSubject
from permdeal.synth import energy as energy_model
from permdeal.synth import flow, power, sta
from permdeal.synth.flow import SynthOptions
from permdeal.verif import activity, gates
from permdeal.verif.saif import Activity

from .designs import design_method
from .models import fresh, input_codes

__all__ = ["REPORT_KIND", "energy", "run"]

REPORT_KIND = "permdeal-power"
Progress = Callable[[str], None] | None


def _say(progress, text):
    if progress:
        progress(text)


def _lookup(act: Activity, scope: tuple[str, ...] = ()) -> Callable[[str], Any]:
    """The activity of a netlist net (or memory port ``inst__mem__pin``) in the trace ``act``:
    the RTL's trace below the top (``scope`` empty, names found through the hierarchy), or the
    gate-level trace, whose netlist nets are all in the instance ``scope``."""
    cycles = act.clock_cycles(gates.CLOCK)

    def lookup(net: str):
        if scope:
            hit = act.net(scope, net)
        elif gates.MEMORY_SEP in net:
            inst, pin = net.split(gates.MEMORY_SEP, 1)
            hit = act.find(pin, tuple(inst.split(".")))
        else:
            hit = act.find(net)
        if hit is None:
            return None
        return power.PinActivity(hit[1] / cycles, hit[0] / act.duration_ps)
    return lookup


def memory_energy(act: Activity, instances: dict[str, tuple[str, str]], subject: PowerSubject,
                  scope_of: Callable[[str], tuple[str, ...]]) -> dict:
    """Accesses and energy (pJ, at 0.18 um) of every memory kind in the trace ``act`` (a memory
    instance's nets under ``scope_of(instance)``; its kind and shape from ``subject``): the ROMs
    read every cycle (they have no read enable), a RAM once per cycle its read enable is high
    and, per write enable bit, its share of a word per cycle that bit is high; a memory module
    whose ``ram_modules`` entry says ``rom`` (a ROM with a read enable) is read as a RAM and
    never written."""
    cycles = act.clock_cycles(gates.CLOCK)
    kinds: dict[str, dict] = {}
    for inst, (module, _params) in sorted(instances.items()):
        if module == ROM_MODULE:
            kind, width, depth = subject.rom_kind(inst)
            reads, writes = cycles, 0.0
        else:
            r = subject.ram_modules[module]
            kind, width, depth = r["kind"], r["width"], r["depth"]
            path = scope_of(inst)
            reads = act.high_cycles(path, "r_en", gates.CLOCK)
            en_bits = max(1, width // r["granularity"]) if not r.get("rom") else 0
            writes = sum(act.high_cycles(path, f"w_en[{b}]" if en_bits > 1 else "w_en",
                                         gates.CLOCK) for b in range(en_bits)) / max(1, en_bits)
        pj = round(energy_model.access_pj(width, depth), 4)
        k = kinds.setdefault(kind, {"width": width, "depth": depth, "instances": 0,
                                    "reads": 0.0, "writes": 0.0, "pj_per_access": pj,
                                    "energy_pj": 0.0})
        if k["width"] != width:
            raise PermdealError(f"memory kind {kind!r}: instances of {k['width']} x "
                                f"{k['depth']} and {width} x {depth} bits")
        if k["depth"] != depth:
            # a lane's accumulator sets of two depths (docs/design.md 15): each instance's
            # accesses at its own price; the kind shows the deepest and the mean price
            k["depth"], k["mixed"] = max(k["depth"], depth), True
        k["instances"] += 1
        k["reads"] += reads
        k["writes"] += writes
        k["energy_pj"] += (reads + writes) * pj
    for k in kinds.values():
        if k.pop("mixed", False) and k["reads"] + k["writes"]:
            k["pj_per_access"] = round(k["energy_pj"] / (k["reads"] + k["writes"]), 4)
    return kinds


def _path(work: Path, top: str, period_ns: float, act: Activity, gate_level: bool,
          instances: dict, subject: PowerSubject, n: int, macs: float,
          progress: Progress) -> tuple[dict, dict, dict]:
    """One path's figures from the trace ``act`` of ``n`` inputs, the RTL's or (``gate_level``)
    the netlist's: ``(logic power, memories, energies)``."""
    _say(progress, f"OpenSTA report_power ({'gate level' if gate_level else 'RTL activity'})")
    logic = power.run_power(work, top, period_ns, _lookup(act, ("gates",) if gate_level else ()),
                            rules=subject.blocks)
    mems = memory_energy(act, instances, subject,
                         (lambda i: (i,)) if gate_level else (lambda i: tuple(i.split("."))))
    return logic, mems, _energies(logic, mems, act.clock_cycles(gates.CLOCK), period_ns, n, macs)


def _energies(logic: dict, mems: dict, cycles: float, period_ns: float, n: int,
              macs: float) -> dict:
    """Energy per inference (pJ) by block, logic from OpenSTA's power over the run's time at
    the clock, memories from their accesses."""
    seconds = cycles * period_ns * 1e-9
    blocks = {name: w * seconds * 1e12 / n for name, w in logic["blocks"].items()}
    memories = {f"memory: {kind}": k["energy_pj"] / n for kind, k in mems.items()}
    total_logic = logic["totals"]["total"] * seconds * 1e12 / n
    total = total_logic + sum(memories.values())
    return {"energy_per_inference_pj": round(total, 2),
            "logic_pj": round(total_logic, 2), "memory_pj": round(sum(memories.values()), 2),
            "pj_per_mac": round(total / macs, 3) if macs else None,
            "average_power_mw": round(total * n / seconds / 1e9, 3),
            "blocks_pj": {k: round(v, 2) for k, v in {**blocks, **memories}.items()}}


def plot(rep: dict) -> bytes:
    """PNG bytes: energy per inference as stacked bars by block, one bar per path measured."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    bars = [("RTL activity, all inputs", rep["energy"])]
    check = rep.get("gate_check")
    if check:
        bars += [(f"RTL activity, {check['inputs']} inputs", check["rtl"]),
                 (f"gate level, {check['inputs']} inputs", check["gates"])]
    names = list(bars[0][1]["blocks_pj"])
    with matplotlib.rc_context({"font.size": 9}):
        fig, ax = plt.subplots(figsize=(3 + 2.2 * len(bars), 4.8))
        bottom = np.zeros(len(bars))
        cmap = plt.get_cmap("tab20")
        for i, name in enumerate(names):
            vals = np.array([b[1]["blocks_pj"].get(name, 0.0) for b in bars]) / 1e3
            ax.bar(range(len(bars)), vals, 0.6, bottom=bottom, label=name, color=cmap(i))
            bottom += vals
        ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=10)
        ax.set_ylabel("energy per inference (nJ, 0.18 um)")
        ax.set_title(f"{rep['design']['top']}: {rep['design']['title']} at "
                     f"{rep['clock_mhz']:g} MHz")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
    return buf.getvalue()


def table(rep: dict) -> str:
    """The report as text."""
    e = rep["energy"]
    w = max(len(name) for name in e["blocks_pj"]) + 2
    lines = [f"permdeal power: {rep['design']['folder']} ({rep['design']['title']}), "
             f"{rep['inputs']} input(s), clock "
             f"{rep['clock_mhz']:g} MHz ({rep['clock_source']})",
             f"energy per inference {e['energy_per_inference_pj'] / 1e3:.3f} nJ "
             f"(logic {e['logic_pj'] / 1e3:.3f}, memories {e['memory_pj'] / 1e3:.3f}); "
             f"{e['pj_per_mac']} pJ per MAC; average power {e['average_power_mw']:.2f} mW",
             f"  ({rep['macs_per_inference']:.1f} MACs and {rep['cycles_per_inference']:.1f} "
             "cycles per inference)", "",
             f"{'block':<{w}}{'pJ/inference':>14}{'share':>8}"]
    for name, v in e["blocks_pj"].items():
        share = v / e["energy_per_inference_pj"] if e["energy_per_inference_pj"] else 0
        lines.append(f"{name:<{w}}{v:>14.1f}{100 * share:>7.1f}%")
    lines += ["", f"logic: {rep['logic']['method']}",
              f"memories: {rep['memory_model']['source']}; {rep['memory_model']['rule']}",
              f"scaling: {rep['memory_model']['scaling']}",
              f"at 45 nm (scaled, / {rep['scaled_45nm']['factor']:g}): "
              f"{rep['scaled_45nm']['energy_per_inference_pj'] / 1e3:.3f} nJ per inference, "
              f"{rep['scaled_45nm']['pj_per_mac']} pJ per MAC"]
    check = rep.get("gate_check")
    if check:
        lines += ["", f"check on the first {check['inputs']} input(s): logic energy per "
                      f"inference, RTL-activity path {check['rtl']['logic_pj']:.1f} pJ, gate-level "
                      f"path {check['gates']['logic_pj']:.1f} pJ (RTL / gate "
                      f"{check['logic_ratio']:.3f}); gate-level outputs match the golden model: "
                      f"{check['gates_golden_match']}"]
    for note in rep["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def run(design_dir: str | Path, x: Any, output: str | Path, *, clock_mhz: float | None = None,
        gate_check: int = 0, seed: int | None = None, what: str = "--inputs",
        progress: Progress = None) -> dict:
    """``permdeal power``: measure the energy of the design ``design_dir`` (a PermDNN engine or
    a SmartDeal design: its method's :meth:`~permdeal.methods.Method.power_subject`) on inputs
    ``x`` (floats, codes or a ``.npy`` path) into the new folder ``output`` (``report.json``,
    ``report.txt``, ``energy.png``); returns the report."""
    t_start = time.perf_counter()
    subject = design_method(design_dir).power_subject(design_dir)
    design = subject.design
    if clock_mhz is not None:
        clock_mhz = checks.positive(clock_mhz, "--clock-mhz")
    gate_check = checks.integer(gate_check, "--gate-check", 0, None)
    if seed is not None:
        checks.seed(seed, "--seed")
    codes = input_codes(subject.model, x, what).codes
    opts = SynthOptions()
    flow.check_tools(["asic"], opts)
    rtl_text = (design.folder / RTL_DIR / f"{design.top}.v").read_text()
    mem_modules = (ROM_MODULE, *subject.ram_modules)
    instances = gates.rtl_instances(rtl_text, design.top, mem_modules)
    macs = subject.macs(codes)
    inputs = [design_dir, subject.rom] + ([x] if isinstance(x, (str, Path)) else [])
    with atomic.output_dir(output, inputs=inputs) as tmp:
        work = Path(tempfile.mkdtemp(prefix="permdeal-power-"))
        try:
            rep = _measure(subject, codes, opts, instances, mem_modules, macs, work, clock_mhz,
                           gate_check, seed, progress)
        except PermdealError as e:
            e.work = work
            raise flow.keep_work(e, output) from None
        finally:
            (tmp / "logs").mkdir()
            for name in ("yosys.log", "sta.log", power.POWER_LOG, "power_sim.log"):
                if (work / name).is_file():
                    shutil.copyfile(work / name, tmp / "logs" / name)
            shutil.rmtree(work, ignore_errors=True)
        rep["design"]["folder"] = str(Path(design_dir))
        rep["seconds"] = round(time.perf_counter() - t_start, 1)
        atomic.write_text(tmp / "report.json", json.dumps(rep, indent=2) + "\n")
        atomic.write_text(tmp / "report.txt", table(rep))
        (tmp / "energy.png").write_bytes(plot(rep))
    return rep


def _measure(subject, codes, opts, instances, mem_modules, macs, work, clock_mhz, gate_check,
             seed, progress) -> dict:
    """The measurement of :func:`run` in the work folder ``work``: the report without its
    timings."""
    design, rom = subject.design, subject.rom
    _say(progress, "Yosys: the asic mapping and the power netlist")
    # (asic: the ROMs are black boxes, no images needed)
    hier, _, _ = flow.design_yosys("asic", design, work, opts, None,
                                   ram_modules=tuple(subject.ram_modules), timing=True,
                                   power_netlist=True)
    _say(progress, f"OpenSTA: timing at {opts.sta_mhz:g} MHz")
    timing = sta.run_sta(work, design.top, 1000 / opts.sta_mhz, opts.memory_timing)
    if clock_mhz is None:
        if not timing["fmax_mhz"]:
            raise PermdealError("OpenSTA found no Fmax for the design; give --clock-mhz")
        clock_mhz, source = timing["fmax_mhz"], "the ASIC Fmax OpenSTA measured"
    else:
        source = "given (--clock-mhz)"
    period_ns = 1000 / clock_mhz

    _say(progress, f"Verilator: the RTL on {len(codes)} input(s), recording activity")
    rtl = activity.record(design, subject.bench(codes), rom, work / "rtl", seed=seed)
    logic, mems, e = _path(work, design.top, period_ns, rtl.activity, False, instances, subject,
                           len(codes), macs, progress)
    cycles = rtl.activity.clock_cycles(gates.CLOCK)
    scale = energy_model.node_energy_scale()
    rep = {
        "kind": REPORT_KIND, "design": {"folder": str(design.folder), "top": design.top,
                                        "title": subject.title, **subject.describe},
        "inputs": int(len(codes)), "clock_mhz": clock_mhz, "clock_source": source,
        "timing": {k: timing[k] for k in ("fmax_mhz", "worst_slack_ns", "startpoint",
                                          "endpoint")},
        "area": {"logic_um2": round(hier.composed("area"), 1),
                 "what": "OSU 0.18 um logic of the asic mapping, every memory apart"},
        "golden_match": rtl.golden_match, "cycles_match_model": rtl.cycles == rtl.model_cycles,
        "simulated_cycles": round(cycles),
        "cycles_per_inference": (float(np.mean(rtl.cycles)) / subject.batch if rtl.cycles
                                 else None),
        "macs_per_inference": macs,
        "energy": e, **{k: e[k] for k in ("energy_per_inference_pj", "pj_per_mac",
                                           "average_power_mw")},
        "logic": {"method": "RTL activity: every cell pin on a net the RTL names (registers, "
                            "ports, the memories' read data, named wires) annotated from "
                            "the Verilator SAIF trace, the rest propagated by OpenSTA "
                            "report_power", **logic},
        "memories": mems, "memory_model": energy_model.MODEL,
        "scaled_45nm": {"factor": scale, "rule": energy_model.MODEL["scaling"],
                        "energy_per_inference_pj": round(e["energy_per_inference_pj"]
                                                         / scale, 2),
                        "pj_per_mac": round(e["pj_per_mac"] / scale, 4)
                        if e["pj_per_mac"] else None},
        "notes": list(subject.notes),
    }
    if gate_check:
        n = min(gate_check, len(codes))
        _say(progress, f"gate-level check on {n} input(s): Yosys, then Verilator on the "
                       "netlist (slow to build)")
        sim_text = power.sim_netlist(work, design.top)
        tied = {p: int(c == "1'b1") for c, p in power.TIE_PORTS.items()}
        bench_n = subject.bench(codes[:n])
        gl = activity.record(design, bench_n, rom, work / "gates", netlist=sim_text,
                             memory_modules=mem_modules, tied=tied, seed=seed)
        rtl_n = activity.record(design, bench_n, rom, work / "rtl_check", seed=seed)
        res = {}
        for name, rec in (("rtl", rtl_n), ("gates", gl)):
            lg, _, en = _path(work, design.top, period_ns, rec.activity, name == "gates",
                              instances, subject, n, macs, progress)
            res[name] = {**en, "annotated": lg["annotated"]}
        rep["gate_check"] = {
            "inputs": n, "rtl": res["rtl"], "gates": res["gates"],
            "gates_golden_match": gl.golden_match,
            "logic_ratio": round(res["rtl"]["logic_pj"] / res["gates"]["logic_pj"], 4),
            "gates_build_seconds": round(gl.build_seconds, 1),
            "gates_run_seconds": round(gl.run_seconds, 1)}
    return rep


def energy(design: Any, x: Any, output: Any = None, *, clock_mhz: float | None = None,
           gate_check: int = 0, seed: int | None = None) -> dict:
    """The energy of a design (a :class:`~permdeal.api.designs.Design` from ``generate``, or a
    design folder: a PermDNN engine or a SmartDeal design) on inputs ``x`` (``permdeal power``); returns the report
    dict, also written to ``output`` (default a fresh temporary folder)::

        rep = energy(design, pd.digits()[2][:50])
        rep["energy_per_inference_pj"], rep["energy"]["blocks_pj"]
    """
    folder = getattr(design, "folder", design)
    if not isinstance(folder, (str, Path)):
        raise PermdealError(f"design must be a Design (from generate) or a design folder, not "
                            f"{type(design).__name__}")
    out = Path(output) if output is not None else fresh("power")
    return run(folder, x, out, clock_mhz=clock_mhz, gate_check=gate_check, seed=seed,
               what="x")
