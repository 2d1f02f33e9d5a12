# amaranth: UnusedElaboratable=no
"""``permdeal synth`` of a SmartDeal engine design folder (``gen.smartdeal_engine_design``).

The engine (``hdl.smartdeal_engine``) runs through the PermDNN engine's flows (:mod:`.flow`,
:mod:`.scripts`, :mod:`.sta`): hierarchical, every module synthesized once. Its memories are
modules of their own (``hdl.smartdeal_memories``, docs/design.md 8):

* the non-zero lists ``<top>_nz``, every lane's Ce and basis ROMs ``<top>_lane<l>_ce``,
  ``<top>_lane<l>_b`` and (a conv network's engine, docs/design.md 16) its sums
  ``<top>_lane<l>_sums0``, ``..._sums1`` are black boxes on ``generic`` and ``asic``, counted in bits and priced per
  bit by :mod:`.memory`'s models and rule (ROMs SRAM; a RAM by its size), and cut to ports with
  the memory timing model for OpenSTA; on ``ecp5`` they are synthesized (block RAM or LUTs), the
  ROMs from the contents baked into the Verilog;
* the words read in the cycle of their address (``cstart``, ``out_mem``, ``run_rom``,
  ``bias_mem``, a conv network's ``drain_rom``) are register files built of logic: their synthesized area is in the logic figure,
  reported apart as the block ``register files`` with their bits.

The logic is split by block (:data:`BLOCKS`, also the blocks of ``permdeal power``): per lane its
rebuild engine, multiplier, accumulator and ROM addressing (the lane's own logic: the basis
column's selection, the operand delays); shared, the issuer, lists and control (the top's own
logic), the write-back and the register files.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from permdeal import __version__
from permdeal.errors import PermdealError
from permdeal.gen.smartdeal_engine_design import SmartDealEngineDesign
from permdeal.golden.smartdeal_model import SmartDealModel
from permdeal.hdl.smartdeal_engine import SmartDealEngine

from . import flow, memory
from .power import block_of
from .stats import Hierarchy
from .tools import liberty

__all__ = ["BLOCKS", "REPORT_KIND", "EngineDesign", "logic_blocks", "memories", "synthesize",
           "text"]

REPORT_KIND = "permdeal-synth-smartdeal-engine"

#: The engine's blocks (``synth.power.BLOCKS`` style: the instance names below the top that put
#: a cell or module in it, first match wins), for the area split and the power report alike.
BLOCKS = (
    ("rebuild", ("rebuild",)),
    ("multipliers", ("mult",)),
    ("accumulators", ("acc",)),
    ("write-back", ("writeback",)),
    ("register files", ("cstart", "out_mem", "run_rom", "bias_mem", "drain_rom")),
    ("conv pixel map and pooling", ("pixel_map", "pool")),
    ("lane ROM addressing", ("lane",)),
    ("issue, lists and control", ()),
)
#: The blocks every lane has one of (reported per lane too).
LANE_BLOCKS = ("rebuild", "multipliers", "accumulators", "lane ROM addressing")


class EngineDesign(SmartDealEngineDesign):
    """A checked SmartDeal engine design folder (``gen.smartdeal_engine_design``'s reader) and
    its engine rebuilt for its memories' shapes."""

    def engine(self, model: SmartDealModel) -> SmartDealEngine:
        """The design's engine, rebuilt (no elaboration) for its memories' shapes; refused
        when the Verilog lacks one of its memory modules (a design generated before they were
        modules)."""
        engine = SmartDealEngine(model.layers, self.lanes, batch=self.batch, name=self.top)
        flow.check_modules(self.folder, self.top, engine.memories,
                           "the engine's memories are modules of their own since issue 17")
        return engine


def _below_top(module: str, top: str) -> str | None:
    """A module's instance path below the top (``top.lane0.rebuild`` -> ``lane0.rebuild``);
    ``""`` for the top, None for a module of its own (a memory, a black box)."""
    if module == top:
        return ""
    return module[len(top) + 1:] if module.startswith(top + ".") else None


def logic_blocks(hier: Hierarchy, top: str, what: str, lanes: int) -> dict:
    """``what`` (``area`` or ``transistors``) of the engine's logic by block (:data:`BLOCKS`),
    every module's own figure times its instances: ``{blocks, per_lane, register_files}``; the
    lanes' blocks also per lane (``per_lane``: the total over ``lanes``). None for a flat
    netlist."""
    if f"{top}.lane0" not in hier.modules:
        return None
    out = {name: 0.0 for name, _ in BLOCKS}
    rf = {}
    for module, k in hier.instances().items():
        path = _below_top(module, top)
        if path is None:
            continue
        own = k * getattr(hier.modules[module], what)
        block = block_of(path + ".", BLOCKS) if path else BLOCKS[-1][0]
        out[block] += own
        first = path.split(".")[0]
        if block == "register files":
            rf[first] = rf.get(first, 0.0) + own
    fmt = (lambda v: round(v, 1)) if what == "area" else int
    return {"blocks": {b: fmt(v) for b, v in out.items()},
            "per_lane": {b: fmt(out[b] / lanes) for b in LANE_BLOCKS},
            "register_files": {n: fmt(v) for n, v in sorted(rf.items())}}


def memories(engine: SmartDealEngine, sram: dict, rf: dict) -> dict:
    """The engine's black-box memories by kind (``nz list``, ``Ce ROM``, ``basis ROM``): module
    names, width, depth, instances, priced by :func:`.memory.price` (:data:`.memory.RULE`); the
    totals, the rule and both models."""
    kinds: dict[str, dict] = {}
    for module, mem in engine.memories.items():
        k = kinds.setdefault(mem["kind"], {"modules": [], "width": mem["width"],
                                           "depth": mem["depth"], "instances": 0,
                                           "model": memory.area_model(mem["rom"], mem["width"],
                                                                      mem["depth"])})
        if (k["width"], k["depth"]) != (mem["width"], mem["depth"]):
            raise PermdealError(f"memory kind {mem['kind']}: modules of {k['width']} x "
                                f"{k['depth']} and {mem['width']} x {mem['depth']} bits")
        k["modules"].append(module)
        k["instances"] += 1
    models = {"sram": sram, "register file": rf}
    total = memory.price(kinds, models)
    return {"kinds": kinds, "total": total, "rf_max_bits": memory.RF_MAX_BITS,
            "rule": memory.RULE, "models": models}


def register_files(engine: SmartDealEngine, areas: dict | None) -> dict:
    """The register files (``engine.register_files``) with their bits and, from a synthesis
    (``areas``: :func:`logic_blocks`' ``register_files``), their synthesized figure."""
    out = {}
    for name, r in engine.register_files.items():
        out[name] = {**r, "bits": r["width"] * r["depth"]}
        if areas is not None:
            out[name]["synthesized"] = areas.get(name, 0)
    return out


def _check_boxes(hier: Hierarchy, engine: SmartDealEngine) -> None:
    """The netlist holds every memory module the engine has, once (as black boxes: not on
    ecp5)."""
    boxes = hier.blackboxes()
    for module in engine.memories:
        if boxes[module] != 1:
            raise PermdealError(f"the netlist has {boxes[module]} instances of {module}, the "
                                "engine 1")


def _asic(hier, engine, opts, work, top):
    logic = hier.composed("area")
    mems = memories(engine, opts.sram, memory.register_file_model(liberty(opts.liberty)))
    split = logic_blocks(hier, top, "area", engine.lanes)
    rep = {**flow.asic_logic(hier, opts), "blocks_um2": split,
           "rebuild_share": (round(split["blocks"]["rebuild"] / logic, 4)
                             if split and logic else None),
           "register_files": register_files(engine, split and split["register_files"]),
           "memories": mems, "sram_model": opts.sram,
           "total_area_um2": round(logic + mems["total"]["area_um2"], 1),
           "notes": ["logic_area_um2 excludes the black-box memories (the lists nz, every "
                     "lane's Ce and basis ROMs and, in a conv network's engine, its two sets "
                     f"of sums: {mems['rule']}); the register files (cstart, out_mem, "
                     "run_rom, bias_mem, drain_rom: read in the cycle of their address) are "
                     "logic, in it; total = logic + memories"]}
    flow.asic_timing(rep, work, top, opts, engine.memories)
    return rep


def _throughput(lanes, report):
    out = {"macs_per_cycle": lanes,
           "formula": "peak GOPS = 2 * lanes * f_MHz / 1000 (one multiply and one add per lane "
                      "per cycle; the cycles of an input depend on its zeros: "
                      "golden.smartdeal_engine_cycles)"}
    for target in ("ecp5", "asic"):
        f = report.get(target, {}).get("fmax_mhz")
        if f:
            out[f"{target}_peak_gops"] = round(2 * lanes * f / 1000, 2)
    return out


def synthesize(design_dir: str | Path, targets: Sequence[str], opts: flow.SynthOptions,
               log_dir: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize the SmartDeal engine design in ``design_dir`` for ``targets``; returns the
    report dict (as :func:`.flow.synthesize_engine` does for the PermDNN engine)."""
    design = EngineDesign(design_dir)
    model, _ = design.load_model()
    engine = design.engine(model)
    flow.check_tools(targets, opts)
    top = design.top
    report = {"kind": REPORT_KIND, "generator": f"permdeal {__version__}",
              "design": {"folder": str(Path(design_dir).resolve()), "top": top,
                         "method": "smartdeal engine", "lanes": engine.lanes,
                         "layers": [f"{l.shape[0]}x{l.shape[1]} S={l.codes.S}"
                                    for l in model.layers]},
              "hierarchical": not opts.flat, "targets": targets, "seconds": {}}
    modules = tuple(engine.memories)

    def one(target, work):
        hier, took, _ = flow.design_yosys(target, design, work, opts,
                                          lambda w: "the contents baked into the Verilog",
                                          ram_modules=modules, timing=True)
        if target != "ecp5":
            _check_boxes(hier, engine)
        rep = flow.target_part(
            target, hier, work, opts, progress, lambda: _asic(hier, engine, opts, work, top),
            generic=lambda: {
                "blocks_transistors": logic_blocks(hier, top, "transistors", engine.lanes),
                "memory_bits": {m: r["width"] * r["depth"] for m, r in engine.memories.items()}},
            ecp5=lambda: {"rom_contents": "the contents baked into the Verilog"})
        return {**rep, "yosys_seconds": round(took, 1)}
    flow.run_targets(targets, report, log_dir, "permdeal-synth", one, progress)
    report["throughput"] = _throughput(engine.lanes, report)
    return report


def _mm2(um2):
    return f"{um2 / 1e6:.3f} mm^2"


def _split_lines(split, unit, fmt):
    total = sum(split["blocks"].values()) or 1
    out = [f"  logic by block ({unit}; per lane: the total over the lanes):"]
    for b, v in split["blocks"].items():
        lane = f"  ({fmt(split['per_lane'][b])} per lane)" if b in split["per_lane"] else ""
        out.append(f"    {b:<26} {fmt(v):>12} {100 * v / total:5.1f}%{lane}")
    return out


def text(report: dict) -> str:
    """The engine's synthesis report as a few lines."""
    from .report import _composition, _ecp5, _header, _num, _time, generic_lines
    d = report["design"]
    out = _header(report, f"SmartDeal engine, {d['lanes']} lanes")
    out += generic_lines(report, "blocks_transistors",
                         lambda v: _split_lines(v, "transistors", _num))
    if "asic" in report:
        a = report["asic"]
        t, mem = a["timing"], a["memories"]
        out += [f"asic (OSU 0.18 um cells, {a['liberty']})",
                f"  logic area        {_mm2(a['logic_area_um2'])} ({_num(a['cells_total'])} cells; "
                f"sequential {_mm2(a['sequential_area_um2'])})",
                f"  Fmax {t['fmax_mhz']} MHz (OpenSTA, clock {1000 / t['period_ns']:g} MHz: "
                f"slack {t['worst_slack_ns']} ns)",
                f"  critical path {t['critical_path_ns']} ns, {t['logic_levels']} logic levels: "
                f"{t['startpoint']} -> {t['endpoint']}"
                + (" (through a memory)" if t["through_memory"] else "")]
        if a["blocks_um2"]:
            out += _split_lines(a["blocks_um2"], "um^2", lambda v: _num(float(v)))
            out.append(f"    rebuild engines: {100 * a['rebuild_share']:.1f}% of the logic")
        out += ["  register files (logic, in the figure above): " + "; ".join(
            f"{n} {r['depth']} x {r['width']} = {r['bits']} bits"
            + (f", {_num(float(r['synthesized']))} um^2" if "synthesized" in r else "")
            for n, r in a["register_files"].items()),
                f"  memories          {_mm2(mem['total']['area_um2'])} for "
                f"{_num(mem['total']['bits'])} bits; {mem['rule']}",
                f"    {'memory':<12} {'width':>6} {'depth':>7} {'inst':>5} {'bits':>11} "
                f"{'model':<14} {'um^2/bit':>8} {'area':>12}"]
        out += [f"    {kind:<12} {k['width']:>6} {k['depth']:>7} {k['instances']:>5} "
                f"{_num(k['bits']):>11} {k['model']:<14} {k['um2_per_bit']:>8g} "
                f"{_mm2(k['area_um2']):>12}" for kind, k in mem["kinds"].items()]
        out += [f"    {m}: {v['um2_per_bit']} um^2/bit ({v['source']})"
                for m, v in mem["models"].items()]
        out += [f"  total             {_mm2(a['total_area_um2'])} (logic + memories)"]
        out += _composition(a["composition"], "um^2", "area_um2_each", "area_um2_total")
        out += [f"  note: {n}" for n in a["notes"]] + [""]
    if "ecp5" in report:
        out += _ecp5(report["ecp5"]) + [""]
    tp = report["throughput"]
    line = f"throughput: {tp['macs_per_cycle']} MACs per cycle at most"
    for target in ("ecp5", "asic"):
        if f"{target}_peak_gops" in tp:
            line += f"; peak {tp[f'{target}_peak_gops']} GOPS at the {target} Fmax"
    out += [line, "  " + tp["formula"], _time(report)]
    return "\n".join(out) + "\n"

