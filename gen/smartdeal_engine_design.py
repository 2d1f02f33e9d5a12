# amaranth: UnusedElaboratable=no
"""A generated SmartDeal engine design folder: the engine's Verilog, the model's ROM images and a
manifest.

Layout (as ``gen.design``'s and ``gen.smartdeal_design``'s)::

    OUT/manifest.json     kind "permdeal-smartdeal-engine-design": the configuration (``pes``,
                          ``lanes_per_pe`` and ``lanes``, their product: the engine's MAC lanes;
                          ``batch``; the compression settings), the ports, the layers (the
                          SmartDeal headers and formats, every tile's runs of live chunks,
                          ``golden.smartdeal_engine_cycles.tile_runs``; a conv layer its ``conv``
                          geometry and pooling, docs/design.md 16), the cycle model's terms,
                          the sha256 of ``rom/manifest.json``, the Verilog with its sha256, and the
                          fingerprint
    OUT/rtl/<name>.v      the engine (top module <name>, ``hdl.smartdeal_engine``), its codes
                          baked into its memories' initial values (it loads no image)
    OUT/rom/              the model's ROM images and their manifest
                          (``golden.smartdeal_model.write_rom``; a conv network's in format 2,
                          with its layers' ``conv`` fields): the codes the Verilog holds,
                          from which :meth:`SmartDealEngineDesign.load_model` rebuilds the model
                          (the golden outputs of ``permdeal sim``)

The engine's cycles depend on the input (docs/design.md 11.1), so the manifest gives the rule's
terms, not a count. ``permdeal gen --model SMARTDEAL_DIR`` writes it (``--arch engine``, the
default; ``--arch units`` gives the layer-unit chain of ``gen.smartdeal_design``).
"""

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import __version__, atomic
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal_conv_walk as cw
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden import smartdeal_model as sdm
from permdeal.golden.conv_folder import conv_json
from permdeal.golden.manifest import json_diff, json_field
from permdeal.golden.model import sha256_file
from permdeal.hdl.smartdeal_engine import SmartDealEngine

from .design import (ROM_DIR, RTL_DIR, check_fingerprint, checked_rom_dir, checked_sources,
                     checked_top, read_design_manifest, source_list, stamp)
from permdeal.tables import table

from .smartdeal_design import check_rom
from .verilog import emit

__all__ = ["DEFAULT_NAME", "DESIGN_KIND", "SmartDealEngineDesign", "cycles_table",
           "layer_figures", "layer_rows", "model_table", "pad_batches", "write_engine_design"]

DESIGN_KIND = "permdeal-smartdeal-engine-design"
DESIGN_FORMAT_VERSION = 2
#: The default top module name.
DEFAULT_NAME = "smartdeal_engine"


def pad_batches(x: npt.ArrayLike, batch: int) -> tuple[np.ndarray, int]:
    """Input codes ``x`` (vectors x n) padded with zero vectors to whole batches of ``batch``
    (the engine takes ``batch`` vectors at a time), and the number of padding vectors."""
    x = np.asarray(x, dtype=np.int64)
    pad = -len(x) % batch
    return np.concatenate([x, np.zeros((pad, x.shape[1]), np.int64)]) if pad else x, pad


def _layer(l, lanes: int) -> dict:
    """A layer's entry: an FC layer's tiles' runs; a conv layer's geometry (docs/design.md 16)."""
    conv = cw.is_conv(l)
    ml = l.matrix_layer() if conv else l
    d = {"name": l.name, "in": l.shape[1], "out": l.shape[0], "relu": l.relu,
         "formats": l.fmts.to_json(), "smartdeal": ml.header}
    if conv:
        d["conv"] = conv_json(l)
    else:
        d["tile_runs"] = [[list(r) for r in runs] for runs in ec.tile_runs(l, lanes)]
    return d


def _derived(model: sdm.SmartDealModel, lanes: int) -> dict:
    """What a design manifest states that follows from the model and the lane count: the ports,
    the layers with their tiles' runs (a conv layer: its geometry), the cycle rule's terms."""
    first, last = model.layers[0], model.layers[-1]
    return {
        "ports": {"in_bits": first.fmts.act.bits, "out_bits": last.fmts.out.bits,
                  "n_inputs": first.shape[1], "n_outputs": last.shape[0]},
        "layers": [_layer(l, lanes) for l in model.layers],
        "cycles": {"rule": "docs/design.md 11.1", "issue_to_acc": ec.ISSUE_TO_ACC,
                   "layer_overhead": ec.LAYER_OVERHEAD},
    }


def write_engine_design(out: str | Path, model: sdm.SmartDealModel, lanes: int, *,
                        name: str = DEFAULT_NAME, inputs: Iterable[str | Path] = (),
                        pes: int = 1, batch: int = 1) -> dict:
    """Generate the design folder ``out`` (atomically) of the SmartDeal engine for ``model`` on
    ``lanes`` MAC lanes (recorded as ``pes`` PEs of ``lanes / pes`` lanes: the multiplier budget
    of a PermDNN engine of that size), ``batch`` input vectors in flight. Returns the manifest
    dict."""
    if pes < 1 or lanes % pes:
        raise PermdealError(f"{lanes} MAC lanes are not {pes} PE(s) of equal lanes")
    cw.check_net(model)
    engine = SmartDealEngine(model.layers, lanes, name=name, batch=batch)
    with atomic.output_dir(out, inputs=inputs) as tmp:
        rom = tmp / ROM_DIR
        rom.mkdir()
        sdm.write_rom(rom, model)
        rtl = tmp / RTL_DIR
        rtl.mkdir()
        emit(engine, engine.name, rtl / f"{engine.name}.v")
        man = {
            "kind": DESIGN_KIND, "format_version": DESIGN_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": sdm.METHOD,
            "config": {"pes": pes, "lanes_per_pe": engine.lanes // pes, "lanes": engine.lanes,
                       "batch": batch, "name": engine.name, "compression": model.config},
            "top": engine.name,
            **_derived(model, engine.lanes),
            "rom_dir": ROM_DIR,
            "rom_manifest_sha256": sha256_file(rom / atomic.MANIFEST_NAME),
            "sources": source_list(rtl),
        }
        man = stamp(man)
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


class SmartDealEngineDesign:
    """A checked SmartDeal engine design folder: ``folder``, ``top``, ``pes``, ``lanes_per_pe``,
    ``lanes`` (the engine's MAC lanes, their product), ``batch``, ``ports``, ``sources``,
    ``rom_dir``, ``manifest``."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        path, man = read_design_manifest(folder, DESIGN_KIND, DESIGN_FORMAT_VERSION)
        cfg = json_field(man, "config", dict, path)
        where = f"{path}: config"
        self.pes = json_field(cfg, "pes", int, where, minimum=1)
        self.lanes_per_pe = json_field(cfg, "lanes_per_pe", int, where, minimum=1)
        self.lanes = json_field(cfg, "lanes", int, where, minimum=1)
        self.batch = json_field(cfg, "batch", int, where, minimum=1)
        if self.lanes != self.pes * self.lanes_per_pe or self.lanes > ec.MAX_LANES:
            raise PermdealError(f"{where}: lanes is {self.lanes}, not pes x lanes_per_pe = "
                                f"{self.pes * self.lanes_per_pe} of at most {ec.MAX_LANES}")
        self.ports = json_field(man, "ports", dict, path)
        self.sources = checked_sources(folder, man, path)
        self.top = checked_top(folder, man, path, self.sources)
        self.rom_dir = checked_rom_dir(folder, man, path)
        self.folder, self.path, self.manifest = folder, path, man

    def load_model(self, images: str | Path | None = None) -> tuple[sdm.SmartDealModel, Path]:
        """``(SmartDealModel, folder)`` of the design's own ``rom/`` (the codes its Verilog holds),
        checked (:func:`gen.smartdeal_design.check_rom`), and the manifest's derived fields
        against it. ``images`` is refused: the engine's codes are in its Verilog."""
        if images is not None:
            raise PermdealError(f"--images {images}: a SmartDeal engine design has its codes in "
                                f"its Verilog ({self.folder}/{RTL_DIR}/{self.top}.v); it takes "
                                "no other images (generate a design for the other model)")
        man_path = self.rom_dir / atomic.MANIFEST_NAME
        if not man_path.is_file():
            raise PermdealError(f"{self.rom_dir}: no ROM images (no {atomic.MANIFEST_NAME}); the "
                                "design folder is incomplete, generate it again")
        if sha256_file(man_path) != self.manifest.get("rom_manifest_sha256"):
            raise PermdealError(f"{man_path}: sha256 does not match {self.path} (the images "
                                "are not the codes the Verilog was generated with)")
        _, model = check_rom(self.rom_dir)
        want = _derived(model, self.lanes)
        layers = self.manifest.get("layers")
        diff = json_diff({k: self.manifest.get(k) for k in ("ports", "cycles")},
                         {k: want[k] for k in ("ports", "cycles")}, "manifest")
        if diff is None and isinstance(layers, list) and len(layers) == len(want["layers"]):
            diff = next(filter(None, (json_diff(got, w, f"manifest.layers[{i}]") for i, (got, w)
                                      in enumerate(zip(layers, want["layers"])))), None)
        elif diff is None:
            diff = json_diff(layers, want["layers"], "manifest.layers")
        if diff:
            raise PermdealError(f"{self.path}: {diff} (from the model of {self.rom_dir}; the "
                                "manifest was edited)")
        check_fingerprint(self.manifest, self.path)
        return model, self.rom_dir


def model_table(model: sdm.SmartDealModel, lanes: int) -> str:
    """The layers of a ``SmartDealModel`` on the engine of ``lanes`` MAC lanes: shapes, codes,
    formats, tiles and the chunks each tile walks (the others are dead for the whole tile)."""
    rows = []
    for full in model.layers:
        conv = cw.is_conv(full)
        l = full.matrix_layer() if conv else full
        h, f = l.header, l.fmts
        runs = [[(0, -(-l.shape[1] // h["S"]))]] * -(-l.shape[0] // lanes) if conv else \
            ec.tile_runs(l, lanes)
        r = -(-l.shape[1] // h["S"])
        walked = sum(b - a for tile in runs for a, b in tile)
        rows.append([l.name, (f"conv {'x'.join(map(str, full.conv.in_shape))} -> "
                              f"{'x'.join(map(str, full.out_shape))}" if conv else
                              f"{l.shape[1]} -> {l.shape[0]}"),
                     f"{h['S']}/{h['E']}/{h['b_bits']}", h["rows_per_block"], f.act, f.weight,
                     h["align_shift"], f.out, "yes" if l.relu else "no",
                     sum(l.saturated.values()), len(runs), f"{walked}/{len(runs) * r}"])
    return table(["layer", "in -> out", "S/E/b_B", "rows/blk", "act", "weight", "align", "out",
                  "relu", "sat", "tiles", "chunks walked"], rows)


def layer_figures(model: sdm.SmartDealModel, runs: list) -> list[dict]:
    """Per layer, the means over the engine's ``runs`` (``golden.smartdeal_engine_cycles``'s
    :class:`~permdeal.golden.smartdeal_engine_cycles.InferenceCycles`, one per input vector):
    non-zero inputs, inputs issued (over the tiles), cycles and MAC-lane utilization."""
    out = []
    for i, l in enumerate(model.layers):
        lcs = [r.layers[i] for r in runs]
        out.append({"name": l.name, "m": l.shape[0], "tiles": lcs[0].tiles,
                    "nnz": float(np.mean([c.nnz for c in lcs])),
                    "issued": float(np.mean([sum(c.ops) for c in lcs])),
                    "compute": float(np.mean([c.compute for c in lcs])),
                    "utilization": float(np.mean([c.utilization for c in lcs]))})
    return out


def layer_rows(layers: list[dict]) -> str:
    """The table of :func:`layer_figures`' rows (``permdeal cycles`` and ``sim``)."""
    return table(["layer", "outputs", "tiles", "nnz(x)", "issued", "cycles", "utilization"],
                 [[l["name"], l["m"], l["tiles"], f"{l['nnz']:.1f}", f"{l['issued']:.1f}",
                   f"{l['compute']:.1f}", f"{100 * l['utilization']:.1f}%"] for l in layers])


def cycles_table(model: sdm.SmartDealModel, codes: npt.ArrayLike, pes: int, lanes_per_pe: int,
                 batch: int = 1) -> str:
    """``permdeal cycles`` of the SmartDeal engine of ``pes`` x ``lanes_per_pe`` MAC lanes on the
    input codes ``codes`` (vectors x n; with a batch, padded with zero vectors to whole
    batches): per layer and per input vector (docs/design.md 11.1)."""
    lanes = pes * lanes_per_pe
    n = len(codes)
    codes, pad = pad_batches(codes, batch)
    runs = ec.model_cycles(model, codes, lanes, batch=batch)
    totals = np.array([r.per_vector for r in runs])
    return "\n".join([
        f"SmartDeal engine, {pes} PE x {lanes_per_pe} lanes = {lanes} MAC lanes, batch {batch}; "
        "the count depends on the inputs (zero inputs and dead chunks are skipped)",
        layer_rows(layer_figures(model, runs)),
        "(tiles: of L output rows; nnz(x): non-zero inputs; issued: inputs broadcast over the "
        "tiles; cycles: T_layer; utilization: useful multiplies over L x T_layer)",
        f"per input vector: {totals.mean():.1f} cycles ({totals.min():g} to {totals.max():g}), "
        f"MAC-lane utilization {100 * np.mean([r.utilization for r in runs]):.1f}% (layers) "
        f"and {100 * np.mean([r.total_utilization for r in runs]):.1f}% (whole inference)",
        (f"{n} input vector(s), one at a time: {int(sum(r.total for r in runs))} cycles"
         if batch == 1 else
         f"{n} input vectors in {len(runs)} batch(es) of {batch}"
         + (f" ({pad} zero vector(s) padding the last)" if pad else "")
         + f": {int(sum(r.total for r in runs))} cycles")])
