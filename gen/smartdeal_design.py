# amaranth: UnusedElaboratable=no
"""A generated SmartDeal design folder: the layer units' Verilog, the ROM images and a manifest.

Layout (the PD design's, ``gen.design``)::

    OUT/manifest.json            kind "permdeal-smartdeal-design": the configuration (lanes, the
                                 compression settings), the ports, the layers (as the ROM manifest
                                 describes them), the cycle model's figures, every Verilog file
                                 with its sha256
    OUT/rtl/<name>.v             the network (top module <name>, ``hdl.smartdeal_net``) and its
                                 layer units <name>_l0, <name>_l1, ...
    OUT/rtl/permdeal_rom.v       the $readmemh ROM module the memories instantiate
    OUT/rom/                     the model's ROM images and their manifest
                                 (``golden.smartdeal_model.write_rom``)

The Verilog names every image ``rom/<file>``: ``$readmemh`` resolves that from the simulator's (or
synthesis tool's) working folder, so run it from ``OUT`` or link ``rom`` there. Other images of the
same layer structure (shapes, ``S``, ``E``, ``b_B``, rows per block, formats, ReLU, alignment) can
take their place; :meth:`SmartDealDesign.load_model` checks that.

:func:`check_rom` is what every reader here does with a ROM folder: every Ce image is scanned for
codes outside the declared ``{nz, sign, e_idx}`` range first (naming the file and line), then
``golden.smartdeal_model.read_rom`` checks the rest.
"""

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from permdeal import __version__, atomic
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal_model as sdm
from permdeal.golden.manifest import json_diff, json_field, read_manifest
from permdeal.golden.model import MODEL_KIND
from permdeal.golden.rom import decode_hex, read_image_bytes
from permdeal.golden.smartdeal_cycles import model_cycles
from permdeal.hdl.rom import ROM_SOURCE
from permdeal.hdl.smartdeal_layer import check_ce_words
from permdeal.hdl.smartdeal_net import SmartDealNet

from .design import (ROM_DIR, RTL_DIR, check_fingerprint, checked_rom_dir, checked_sources,
                     checked_top, read_design_manifest, source_list, stamp)
from permdeal.tables import table
from .verilog import emit

DESIGN_KIND = "permdeal-smartdeal-design"
DESIGN_FORMAT_VERSION = 2
#: The default top module name of a SmartDeal design.
DEFAULT_NAME = "smartdeal_net"


def is_smartdeal_model(folder: str | Path) -> bool:
    """Whether ``folder`` holds a SmartDeal compressed model (its manifest's ``method``)."""
    path = Path(folder) / atomic.MANIFEST_NAME
    man = read_manifest(path, MODEL_KIND)
    return man.get("method") == sdm.METHOD


def check_rom(folder: str | Path) -> tuple[dict, sdm.SmartDealModel]:
    """Read and verify a SmartDeal ROM folder: ``(manifest, SmartDealModel)``.

    First every Ce image the manifest lists is decoded and each code checked against its declared
    width: a code with ``nz = 0`` and other bits set is refused naming the file and line (so is a
    word beyond the width, by the decoder); then ``golden.smartdeal_model.read_rom`` checks the
    manifest, the widths, depths and sha256 of every image and the codes' ranges.
    """
    folder = Path(folder)
    man_path = folder / atomic.MANIFEST_NAME
    man = read_manifest(man_path, sdm.ROM_KIND)
    images = man.get("images")
    for img in images if isinstance(images, list) else ():
        if not (isinstance(img, dict) and img.get("part") == "ce"):
            continue
        width, depth, file = img.get("width"), img.get("depth"), img.get("file")
        if not (type(width) is int and type(depth) is int and isinstance(file, str)
                and 2 < width <= 64 and depth > 0 and Path(file).name == file):
            continue                                   # read_rom names what is wrong
        path = folder / file
        words = decode_hex(read_image_bytes(path, f"listed in {man_path}"), width, depth,
                           False, path)
        check_ce_words(words, width, path)
    return sdm.read_rom(folder)


def write_design(out: str | Path, model: sdm.SmartDealModel, *, lanes: int | None = None,
                 name: str = DEFAULT_NAME, inputs: Iterable[str | Path] = ()) -> dict:
    """Generate the design folder ``out`` (atomically) for the ``SmartDealModel`` ``model``, every
    layer's shift-add unit with ``lanes`` lanes (default ``S``). Returns the manifest dict."""
    with atomic.output_dir(out, inputs=inputs) as tmp:
        rom = tmp / ROM_DIR
        rom.mkdir()
        rom_man = sdm.write_rom(rom, model)
        net = SmartDealNet(model.layers, rom, lanes=lanes, rom_dir=ROM_DIR, name=name)
        rtl = tmp / RTL_DIR
        rtl.mkdir()
        emit(net, net.name, rtl / f"{net.name}.v")
        shutil.copyfile(ROM_SOURCE, rtl / ROM_SOURCE.name)
        cyc = model_cycles(model, net.lanes)
        man = {
            "kind": DESIGN_KIND, "format_version": DESIGN_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": sdm.METHOD,
            "config": {"lanes": net.lanes, "name": net.name, "compression": model.config},
            "top": net.name,
            "ports": {"in_bits": net.in_bits, "out_bits": net.out_bits,
                      "n_inputs": net.n_inputs, "n_outputs": net.n_outputs},
            "layers": rom_man["layers"],
            "cycles": {"per_input": cyc.total, "load": cyc.load,
                       "layers": [lc.to_json() for lc in cyc.layers]},
            "rom_dir": ROM_DIR,
            "sources": source_list(rtl),
        }
        man = stamp(man)
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


def _structure(layer_json):
    """What the generated RTL fixes of a layer: everything but its saturation counts."""
    return {k: v for k, v in layer_json.items() if k != "saturated"}


class SmartDealDesign:
    """A checked SmartDeal design folder: ``top``, ``lanes``, ``sources``, ``rom_dir``."""

    def __init__(self, folder):
        folder = Path(folder)
        path, man = read_design_manifest(folder, DESIGN_KIND, DESIGN_FORMAT_VERSION)
        self.top = json_field(man, "top", str, path)
        cfg = json_field(man, "config", dict, path)
        self.lanes = json_field(cfg, "lanes", int, f"{path}: config", minimum=1)
        self.ports = json_field(man, "ports", dict, path)
        for key in ("in_bits", "out_bits", "n_inputs", "n_outputs"):
            json_field(self.ports, key, int, f"{path}: ports", minimum=1)
        self.layers = json_field(man, "layers", list, path)
        if not self.layers:
            raise PermdealError(f"{path}: layers is empty")
        self.sources = checked_sources(folder, man, path)
        checked_top(folder, man, path, self.sources)
        self.rom_dir = checked_rom_dir(folder, man, path)
        self.folder, self.path, self.manifest = folder, path, man

    def load_model(self, images: str | Path | None = None) -> tuple[sdm.SmartDealModel, Path]:
        """``(SmartDealModel, folder)`` of the images (``images`` or the design's ``rom/``),
        checked (:func:`check_rom`) and refused unless their layers have the structure the
        design was generated for."""
        folder = Path(images) if images is not None else self.rom_dir
        if not (folder / atomic.MANIFEST_NAME).is_file():
            raise PermdealError(f"{folder}: no ROM images (no {atomic.MANIFEST_NAME}); a SmartDeal "
                                "design holds its own in rom/, or write others with `permdeal "
                                "rom MODEL -o DIR` and pass --images DIR")
        man, model = check_rom(folder)
        if len(man["layers"]) != len(self.layers):
            raise PermdealError(f"{folder}: images of a model of {len(man['layers'])} layer(s), "
                                f"the design {self.folder} has {len(self.layers)}")
        for i, (got, want) in enumerate(zip(man["layers"], self.layers)):
            diff = json_diff(_structure(got), _structure(want), f"layer {i}")
            if diff:
                raise PermdealError(f"{folder}: the images' {diff} by the design {self.folder} "
                                    "(not the structure it was generated for)")
        self._check_derived(model, own=images is None)
        check_fingerprint(self.manifest, self.path)
        return model, folder

    def _check_derived(self, model, own):
        """Refuse a manifest whose derived fields disagree with ``model`` (its images): lanes in
        [1, S], ``top`` the configured name with its Verilog among the sources, the ports, and
        with the design's ``own`` images the cycles :func:`write_design` recorded."""
        S = model.layers[0].codes.S
        if self.lanes > S:
            raise PermdealError(f"{self.path}: config: lanes is {self.lanes}, but the shift-add "
                                f"unit has 1 to S = {S} lanes")
        name = self.manifest["config"].get("name")
        if self.top != name or self.folder / RTL_DIR / f"{self.top}.v" not in self.sources:
            raise PermdealError(f"{self.path}: top {self.top!r} is not the configured name "
                                f"{name!r} with its Verilog {RTL_DIR}/{self.top}.v among the "
                                "sources")
        first, last = model.layers[0], model.layers[-1]
        want = {"ports": {"in_bits": first.fmts.act.bits, "out_bits": last.fmts.out.bits,
                          "n_inputs": first.shape[1], "n_outputs": last.shape[0]}}
        if own:
            cyc = model_cycles(model, self.lanes)
            want["cycles"] = {"per_input": cyc.total, "load": cyc.load,
                              "layers": [lc.to_json() for lc in cyc.layers]}
        diff = json_diff({k: self.manifest.get(k) for k in want}, want, "manifest")
        if diff:
            raise PermdealError(f"{self.path}: {diff} (from the model; the manifest was edited)")


def model_table(model: sdm.SmartDealModel, lanes: int | None = None) -> str:
    """The layers of a ``SmartDealModel``: shapes, codes, formats and the unit's cycles."""
    cyc = model_cycles(model, lanes)
    rows = []
    for l, lc in zip(model.layers, cyc.layers):
        h, f = l.header, l.fmts
        rows.append([l.name, f"{l.shape[1]} -> {l.shape[0]}",
                     f"{h['S']}/{h['E']}/{h['b_bits']}", h["rows_per_block"], h["blocks"],
                     f"{lc.active}/{lc.slots}", f.act, f.weight, h["align_shift"], f.out,
                     "yes" if l.relu else "no", sum(l.saturated.values()), lc.compute,
                     f"{lc.cycles_per_weight:.2f}"])
    return "\n".join([
        table(["layer", "in -> out", "S/E/b_B", "rows/blk", "blocks", "rows", "act", "weight",
               "align", "out", "relu", "sat", "cycles", "cyc/weight"], rows),
        f"per input vector: {cyc.total} cycles (load {cyc.load} + the layers'; shift-add "
        f"lanes {lanes or model.layers[0].codes.S})"])


def cycles_table(model: sdm.SmartDealModel, lanes: int | None = None,
                 n_vectors: int | None = None) -> str:
    """``permdeal cycles`` of a ``SmartDealModel``: every layer unit's exact cycles
    (``golden.smartdeal_cycles``) with a shift-add unit of ``lanes`` lanes (default ``S``), per
    layer, per input vector and, for ``n_vectors`` inputs, in all."""
    cyc = model_cycles(model, lanes)
    rows = [[l.name, f"{l.shape[1]} -> {l.shape[0]}", lc.slots, lc.active, lc.skipped, lc.PT,
             f"{lc.PT / lc.S:.2f}", lc.ideal, lc.compute, f"{lc.cycles_per_weight:.2f}",
             f"{lc.cycles_per_output:.1f}"] for l, lc in zip(model.layers, cyc.layers)]
    weights = sum(lc.rebuilt_weights for lc in cyc.layers)
    compute = sum(lc.compute for lc in cyc.layers)
    lanes = cyc.layers[0].S if lanes is None else lanes
    out = [f"SmartDeal layer units, {lanes} shift-add lane(s) each; the count depends on the Ce "
           "codes only, not on the activations",
           table(["layer", "in -> out", "rows", "active", "skipped", "cyc/row", "unit cyc/w",
                  "ideal", "cycles", "cyc/weight", "cyc/output"], rows),
           "(rows: Ce rows of S weights; active: through the shift-add unit, the others are "
           "all-zero and skipped; cyc/row: the unit's cycles per row, unit cyc/w = cyc/row / S; "
           "ideal = active x cyc/row; cyc/weight: the layer's cycles per rebuilt weight)",
           f"per input vector: {cyc.total} cycles (load {cyc.load} + the layers' {compute}); "
           f"{compute / weights:.2f} cycles per rebuilt weight over the {weights} rebuilt"]
    if n_vectors is not None:
        out.append(f"{n_vectors} input vector(s), one at a time: {n_vectors * cyc.total} cycles")
    return "\n".join(out)
