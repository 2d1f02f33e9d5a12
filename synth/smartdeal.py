# amaranth: UnusedElaboratable=no
"""``permdeal synth`` of a SmartDeal design folder: its layer units module by module.

A SmartDeal design (``gen.smartdeal_design``) is the network ``{top}`` and one layer unit
``{top}_l<i>`` per layer (``hdl.smartdeal_net``), each with the blocks ``shift_add``, ``mac``,
``queue`` and ``writeback`` as modules ``{top}_l<i>.<block>`` and its Ce, B and bias ROMs as
``permdeal_rom`` instances. It runs through the PermDNN engine's flows (:mod:`.flow`,
:mod:`.scripts`): hierarchical, every module synthesized once. The report gives, per target,
the layers' logic split by block (the layer's *own* logic is its fetcher, its state and its
input buffer); on ``generic`` and ``asic`` the ROMs are black boxes whose bits are counted as
SRAM with the engine's area-per-bit model (:mod:`.memory`); on ``ecp5`` they are synthesized from
the design's own images. The input buffer (``S`` memories of the layer's input chunks,
``hdl.smartdeal_layer``) is not a ROM: it is written at run time, part of the layer's own logic;
on ``generic`` and ``asic`` Yosys maps it onto flip-flops (no memory macro), on ``ecp5`` onto
LUT RAM or flip-flops as it sees fit. The report gives its bits and says so.
"""

import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from permdeal import __version__
from permdeal.gen.smartdeal_design import SmartDealDesign
from permdeal.golden.smartdeal_cycles import geometry, model_cycles
from permdeal.golden.smartdeal_model import SmartDealModel
from permdeal.hdl.rom import ROM_MODULE
from permdeal.hdl.smartdeal_layer import layer_spec
from permdeal.hdl.smartdeal_net import SmartDealNet

from . import ecp5, flow
from .stats import Hierarchy

__all__ = ["OWN", "REPORT_KIND", "layer_blocks", "rom_memories", "synthesize"]

REPORT_KIND = "permdeal-synth-smartdeal"
#: The name of a layer unit's own logic (not in a block) in the per-layer figures.
OWN = "own"


def _net(design, model, rom):
    """The design's network, rebuilt (no elaboration) for its layer modules' names."""
    return SmartDealNet(model.layers, rom, lanes=design.lanes, rom_dir=design.rom_dir.name,
                        check_images=False, name=design.top)


def _block(sub):
    """A layer unit's submodule by its block name: ``{layer}.mac`` -> ``mac``; the ROMs (on ecp5
    the parameterized ``permdeal_rom`` modules) together as ``permdeal_rom``."""
    name = sub.rsplit(".", 1)[-1]
    return ROM_MODULE if name.rsplit("\\", 1)[-1] == ROM_MODULE else name


def _figure(hier, root, what, own=False):
    """``what`` of module ``root``: composed (or its own); ``cells`` is a Counter by cell type."""
    if what == "cells":
        return Counter(hier.modules[root].cells) if own else hier.cells(root)
    return getattr(hier.modules[root], what) if own else hier.composed(what, root)


def _add(a, b, k=1):
    """``a + k * b`` for numbers or Counters (``a`` None: nothing yet)."""
    if isinstance(b, Counter):
        out = Counter(a or {})
        for t, n in b.items():
            out[t] += k * n
        return out
    return (a or 0) + k * b


def layer_blocks(hier: Hierarchy, layer_modules: Sequence[str], what: str) -> list[dict] | None:
    """Per layer unit (module names ``layer_modules``): ``{module, total, blocks}`` with
    ``what`` (``area``, ``transistors``, or ``cells``: a Counter by type) composed, ``blocks``
    the unit's submodules by block name (:func:`_block`) and :data:`OWN` its own logic. None when
    the netlist has no such modules (a flat synthesis)."""
    if not all(m in hier.modules for m in layer_modules):
        return None
    out = []
    for module in layer_modules:
        blocks = {}
        for sub, n in sorted(hier.modules[module].subs.items()):
            name = _block(sub)
            blocks[name] = _add(blocks.get(name), _figure(hier, sub, what), n)
        blocks[OWN] = _figure(hier, module, what, own=True)
        out.append({"module": module, "total": _figure(hier, module, what), "blocks": blocks})
    return out


def rom_memories(model: SmartDealModel, sram: dict) -> dict:
    """Bits and modelled SRAM area of every layer's Ce, B and bias ROMs: ``{"layers": [{name,
    memories: {part: {width, depth, bits, area_um2}}, bits, area_um2}], "total": {bits,
    area_um2}}`` with ``sram`` from :func:`.memory.sram_model`."""
    per_bit = sram["um2_per_bit"]
    layers, total = [], 0
    for layer in model.layers:
        mems = {part: {"width": w, "depth": d, "bits": w * d, "area_um2": round(w * d * per_bit, 1)}
                for part, (w, d, _) in layer_spec(layer).memories().items()}
        bits = sum(m["bits"] for m in mems.values())
        layers.append({"name": layer.name, "memories": mems, "bits": bits,
                       "area_um2": round(bits * per_bit, 1)})
        total += bits
    return {"layers": layers, "total": {"bits": total, "area_um2": round(total * per_bit, 1)}}


def input_buffers(model: SmartDealModel) -> list[dict]:
    """Per layer the unit's input buffer: ``S`` memories of ``r = ceil(n/S)`` words (the input
    chunks) of the activation width."""
    out = []
    for layer in model.layers:
        g = geometry(layer)
        width = layer.fmts.act.bits
        out.append({"name": layer.name, "memories": g.S, "words": g.r, "width": width,
                    "bits": g.S * g.r * width})
    return out


def _per_layer(hier, model, modules, what, convert):
    """:func:`layer_blocks` with the layers' names, every figure through ``convert``; None for a
    flat netlist."""
    rows = layer_blocks(hier, modules, what)
    if rows is None:
        return None
    return [{"name": l.name, "module": r["module"], "total": convert(r["total"]),
             "blocks": {k: convert(v) for k, v in r["blocks"].items()}}
            for l, r in zip(model.layers, rows)]


def _asic(hier, model, modules, opts):
    logic = hier.composed("area")
    roms = rom_memories(model, opts.sram)
    return {
        **flow.asic_logic(hier, opts),
        "layers": _per_layer(hier, model, modules, "area", lambda v: round(v, 1)),
        "rom_memory": roms, "sram_model": opts.sram,
        "input_buffer": input_buffers(model),
        "total_area_um2": round(logic + roms["total"]["area_um2"], 1),
        "notes": ["every layer's Ce, B and bias ROMs are counted as SRAM bits with the model "
                  "above; the input buffers, the queues and the accumulators are flip-flops "
                  "(logic area; an input buffer is in its layer's own logic)"],
    }


def _throughput(cycles, report, opts):
    """Input vectors per second at the ECP5 Fmax and at a given ASIC clock, from the cycle
    model's count of one vector through the chain."""
    out = {"cycles_per_input": cycles,
           "formula": "inputs per second = f / cycles_per_input (one vector at a time through "
                      "the chain of layer units; golden.smartdeal_cycles)"}
    if "ecp5" in report:
        out["ecp5_inputs_per_second"] = round(report["ecp5"]["fmax_mhz"] * 1e6 / cycles, 1)
    if opts.asic_mhz is not None:
        out["asic_clock_mhz"] = opts.asic_mhz
        out["asic_inputs_per_second"] = round(opts.asic_mhz * 1e6 / cycles, 1)
    return out


def synthesize(design_dir: str | Path, targets: Sequence[str], opts: flow.SynthOptions,
               log_dir: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize the SmartDeal design in ``design_dir`` for ``targets``; returns the report dict
    (as :func:`.flow.synthesize_engine` does for the PermDNN engine)."""
    design = SmartDealDesign(design_dir)
    model, rom = design.load_model()  # the design's own images, checked
    modules = [box.module for box in _net(design, model, rom).blackboxes]
    flow.check_tools(targets, opts)
    cycles = model_cycles(model, design.lanes).total
    report = {"kind": REPORT_KIND, "generator": f"permdeal {__version__}",
              "design": {"folder": str(Path(design_dir).resolve()), "top": design.top,
                         "method": "smartdeal", "lanes": design.lanes,
                         "layers": [f"{l.shape[0]}x{l.shape[1]} S={l.codes.S}"
                                    for l in model.layers],
                         "layer_modules": modules},
              "hierarchical": not opts.flat, "targets": targets, "seconds": {}}

    def images(work):
        shutil.copytree(rom, work / design.rom_dir.name)
        return "the design's ROM images"

    def one(target, work):
        hier, took, note = flow.design_yosys(target, design, work, opts, images)
        if target == "generic":
            rep = {**flow._generic(hier),
                   "layers": _per_layer(hier, model, modules, "transistors", int)}
        elif target == "asic":
            rep = _asic(hier, model, modules, opts)
        else:
            if progress:
                progress(f"{target}: nextpnr on {opts.device.name}")
            rep = {**flow._ecp5(hier, work, opts), "rom_contents": note,
                   "layers": _per_layer(hier, model, modules, "cells", ecp5.resources),
                   "input_buffer": input_buffers(model)}
        return {**rep, "yosys_seconds": round(took, 1)}
    flow.run_targets(targets, report, log_dir, "permdeal-synth", one, progress)
    report["throughput"] = _throughput(cycles, report, opts)
    return report
