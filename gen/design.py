# amaranth: UnusedElaboratable=no
"""A generated design folder: the engine's Verilog, its ROM images and its manifest.

Layout (``DESIGN_FILES`` and ``ROM_DIR`` are the one statement of it)::

    OUT/manifest.json            kind "permdeal-design": the full configuration, the layers,
                                 the ports, every Verilog file with its sha256
    OUT/rtl/<name>.v             the engine (top module <name>) and its PE, write-back and bank
                                 modules, each once
    OUT/rtl/permdeal_rom.v       the $readmemh ROM module the memories instantiate
    OUT/rom/                     the ROM images and their manifest (golden.rom), when generated
                                 from a model; else supplied later (permdeal rom MODEL ...)

The Verilog names every image ``rom/<file>``: ``$readmemh`` resolves that from the simulator's
(or synthesis tool's) working folder, so run it from ``OUT`` or link ``rom`` there.
"""

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from permdeal import __version__, atomic, limits
from permdeal.errors import PermdealError
from permdeal.golden.conv_walk import ConvWalk
from permdeal.golden.cycles import MULTIPLIERS, EngineConfig
from permdeal.golden.geometry import Geometry
from permdeal.golden.manifest import inside, json_diff, json_field, read_manifest
from permdeal.golden.model import (LayerSpec, QuantLayer, QuantModel, layer_spec_from_json,
                                   sha256_file)
from permdeal.golden.rom import write_images
from permdeal.hdl.engine import Engine
from permdeal.hdl.rom import ROM_SOURCE

from .verilog import emit

DESIGN_KIND = "permdeal-design"
DESIGN_FORMAT_VERSION = 3
#: The format of a conv network's design (its manifest has the ``conv`` entry), so that a reader
#: that knows only FC designs refuses it as newer instead of misreading it.
CONV_DESIGN_FORMAT_VERSION = 4
#: Folder of the Verilog sources, and of the ROM images (the name the Verilog uses).
RTL_DIR, ROM_DIR = "rtl", "rom"


def layer_json(spec: LayerSpec | QuantLayer) -> dict:
    """What the design records of a layer (``LayerSpec`` or ``QuantLayer``): no weights."""
    if hasattr(spec, "matrix"):
        (n_out, n_in), p = spec.shape, spec.matrix.p
    else:
        n_in, n_out, p = spec.n_in, spec.n_out, spec.p
    return {"name": spec.name, "in": n_in, "out": n_out, "p": p,
            "blocks": [-(-n_out // p), -(-n_in // p)], "relu": spec.relu,
            "formats": spec.fmts.to_json()}


def conv_json(walks, pools) -> dict:
    """A conv network's ``conv`` entry of the design manifest: every layer's walk (or null) and
    pooling (``[kind, n]`` or null)."""
    pools = pools if pools is not None else [None] * len(walks)
    return {"walks": [None if w is None else w.to_json() for w in walks],
            "pools": [None if pl is None else list(pl) for pl in pools]}


def read_conv(man: dict, path, count: int) -> tuple[tuple, tuple]:
    """``(walks, pools)`` of a design manifest's ``conv`` entry (empty without one), checked."""
    if "conv" not in man:
        return (), ()
    c = json_field(man, "conv", dict, path)
    walks = json_field(c, "walks", list, f"{path}: conv")
    pools = json_field(c, "pools", list, f"{path}: conv")
    if len(walks) != count or len(pools) != count:
        raise PermdealError(f"{path}: conv: walks and pools must have one entry a layer "
                            f"({count})")
    out_w = tuple(None if w is None else ConvWalk.from_json(w, f"{path}: conv: walk {i}")
                  for i, w in enumerate(walks))
    out_p = []
    for i, pl in enumerate(pools):
        ok = pl is None or (isinstance(pl, list) and len(pl) == 2 and pl[0] in ("max", "avg")
                            and isinstance(pl[1], int) and not isinstance(pl[1], bool))
        if not ok:
            raise PermdealError(f"{path}: conv: pool {i} must be null or [\"max\" or \"avg\", "
                                f"n], not {pl!r}")
        out_p.append(None if pl is None else (pl[0], pl[1]))
    return out_w, tuple(out_p)


def source_list(rtl: str | Path) -> list[dict[str, str]]:
    """A design manifest's ``sources``: every file of the folder ``rtl`` (the design's
    ``RTL_DIR``) with its sha256."""
    return [{"file": f"{RTL_DIR}/{f.name}", "sha256": sha256_file(f)}
            for f in sorted(Path(rtl).iterdir())]


def read_design_manifest(folder: str | Path, kind: str,
                         version: int | tuple[int, ...]) -> tuple[Path, dict]:
    """``(path, manifest)`` of the design folder ``folder``: a manifest of ``kind`` whose
    ``format_version`` is ``version`` (or one of them)."""
    path = Path(folder) / atomic.MANIFEST_NAME
    man = read_manifest(path, kind)
    v = json_field(man, "format_version", int, path)
    known = version if isinstance(version, tuple) else (version,)
    if v not in known:
        raise PermdealError(f"{path}: unsupported format_version {v}, this reader knows "
                            f"{' and '.join(map(str, known))}")
    return path, man


def _fingerprint(man: dict) -> str:
    """sha256 of a design manifest's every field but the fingerprint itself (canonical JSON)."""
    body = {k: v for k, v in man.items() if k != "fingerprint"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def stamp(man: dict) -> dict:
    """``man`` with its ``fingerprint``: what the generator wrote, as it wrote it."""
    return {**man, "fingerprint": _fingerprint(man)}


def check_fingerprint(man: dict, path: str | Path) -> None:
    """Refuse a design manifest edited since permdeal wrote it (after the field checks, which
    name what is wrong where they can): its configuration, layers, ports and sources are what the
    Verilog was generated for only as written."""
    if man.get("fingerprint") != _fingerprint(man):
        raise PermdealError(f"{path}: edited since permdeal wrote it (its fingerprint does not "
                            "match its fields); generate the design again instead")


def checked_rom_dir(folder: str | Path, man: dict, path: str | Path) -> Path:
    """The design's ROM folder: ``rom_dir`` must be :data:`ROM_DIR`, the folder its Verilog's
    ``$readmemh`` names."""
    rom_dir = json_field(man, "rom_dir", str, path)
    if rom_dir != ROM_DIR:
        raise PermdealError(f"{path}: rom_dir must be {ROM_DIR!r} (the folder the Verilog loads "
                            f"its images from), not {rom_dir!r}")
    return inside(folder, rom_dir, f"{path}: rom_dir")


def checked_top(folder: str | Path, man: dict, path: str | Path, sources: list[Path]) -> str:
    """The design's ``top``: the configured module name, its Verilog among the sources."""
    top = json_field(man, "top", str, path)
    name = json_field(man, "config", dict, path).get("name")
    if top != name or Path(folder) / RTL_DIR / f"{top}.v" not in sources:
        raise PermdealError(f"{path}: top {top!r} is not the configured name {name!r} with its "
                            f"Verilog {RTL_DIR}/{top}.v among the sources")
    return top


def checked_sources(folder: str | Path, man: dict, path: str | Path) -> list[Path]:
    """The files of ``man``'s ``sources`` (the manifest ``path`` of the design ``folder``), each
    there and with the sha256 recorded."""
    sources = []
    for i, entry in enumerate(json_field(man, "sources", list, path)):
        where = f"{path}: sources[{i}]"
        f = inside(folder, json_field(entry, "file", str, where), where, subfolder=RTL_DIR)
        if f.is_symlink() or not f.is_file():
            raise PermdealError(f"{f}: missing (listed in {path})")
        if sha256_file(f) != json_field(entry, "sha256", str, where):
            raise PermdealError(f"{f}: sha256 does not match {path}; the file was changed")
        sources.append(f)
    return sources


def write_design(out: str | Path, cfg: EngineConfig, layers: Sequence[LayerSpec | QuantLayer], *,
                 model: QuantModel | None = None, name: str = "permdeal_engine",
                 inputs: Iterable[str | Path] = (), walks=None, pools=None) -> dict:
    """Generate the design folder ``out`` (atomically) for engine ``cfg`` and ``layers``.

    With ``model`` (a ``QuantModel`` whose layers are ``layers``) the ROM images are written too;
    without, the Verilog expects them in ``rom/`` later. A conv network's ``layers`` are its
    matrix layers, with its ``walks`` and ``pools`` (``golden.conv_walk.engine_walks`` and
    ``engine_pools``; docs/design.md 15), which the manifest records. Returns the manifest dict.
    """
    with atomic.output_dir(out, inputs=inputs) as tmp:
        rom = tmp / ROM_DIR
        if model is not None:
            rom.mkdir()
            write_images(rom, model, cfg)
        engine = Engine(cfg, layers, images=rom, rom_dir=ROM_DIR, check_images=model is not None,
                        name=name, walks=walks, pools=pools)
        rtl = tmp / RTL_DIR
        rtl.mkdir()
        emit(engine, engine.name, rtl / f"{engine.name}.v")
        shutil.copyfile(ROM_SOURCE, rtl / ROM_SOURCE.name)
        man = {
            "kind": DESIGN_KIND,
            "format_version": CONV_DESIGN_FORMAT_VERSION if walks else DESIGN_FORMAT_VERSION,
            "generator": f"permdeal {__version__}",
            "config": {**cfg.to_json(), "name": engine.name},
            "top": engine.name,
            "ports": {"in_bits": engine.in_bits, "out_bits": engine.out_bits,
                      "n_inputs": engine.n_inputs, "n_outputs": engine.n_outputs},
            "layers": [layer_json(l) for l in layers],
            **({"conv": conv_json(walks, pools)} if walks else {}),
            "geometry": engine.geometry.to_json(),
            "rom_dir": ROM_DIR, "images": "included" if model is not None else "later",
            "sources": source_list(rtl),
        }
        man = stamp(man)
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


class Design:
    """A checked design folder: ``cfg``, ``specs`` (``LayerSpec``), ``top``, ``sources``."""

    def __init__(self, folder):
        folder = Path(folder)
        path, man = read_design_manifest(folder, DESIGN_KIND,
                                         (DESIGN_FORMAT_VERSION, CONV_DESIGN_FORMAT_VERSION))
        c = json_field(man, "config", dict, path)
        try:
            # (a design written before the multiplier styles has the native one)
            mul = json_field(c, "multiplier", str, f"{path}: config") if "multiplier" in c \
                else MULTIPLIERS[0]
            # (one lane group unless the manifest names more)
            groups = json_field(c, "groups", int, f"{path}: config") if "groups" in c else 1
            # (per-layer counts only when they differ: docs/design.md 4.2)
            counts = json_field(c, "layer_groups", list, f"{path}: config") \
                if "layer_groups" in c else []
            self.cfg = EngineConfig(json_field(c, "n_pe", int, f"{path}: config"),
                                    json_field(c, "lanes", int, f"{path}: config"),
                                    json_field(c, "scan_width", int, f"{path}: config"), mul,
                                    groups, tuple(counts))
        except PermdealError as e:
            raise PermdealError(f"{path}: config: {e}") from None
        layers = json_field(man, "layers", list, path)
        if not layers:
            raise PermdealError(f"{path}: layers is empty")
        self.specs = [layer_spec_from_json(d, f"{path}: layer {i}", arrays=False)
                      for i, d in enumerate(layers)]
        # a conv network's walks and pooling (docs/design.md 15; empty for an FC network)
        self.walks, self.pools = read_conv(man, path, len(self.specs))
        conv = man["format_version"] == CONV_DESIGN_FORMAT_VERSION
        if conv != bool(self.walks):
            raise PermdealError(f"{path}: format_version {man['format_version']} "
                                + ("needs a conv entry (a conv network's design)" if conv else
                                   "takes no conv entry (an FC network's design)"))
        self.sources = checked_sources(folder, man, path)
        self.top = checked_top(folder, man, path, self.sources)
        self.rom_dir = checked_rom_dir(folder, man, path)
        self.folder, self.path, self.manifest = folder, path, man
        try:
            limits.check_engine(self.cfg.n_pe, self.cfg.lanes, self.cfg.scan_width)
        except PermdealError as e:
            raise PermdealError(f"{path}: config: {e}") from None
        self._check_derived()
        check_fingerprint(man, path)

    def _check_derived(self) -> None:
        """Refuse a manifest whose derived fields (ports, geometry) disagree with its layers and
        configuration: they were edited."""
        try:
            geom = Geometry.of(self.cfg, self.specs, walks=self.walks)
        except PermdealError as e:
            raise PermdealError(f"{self.path}: layers: {e}") from None
        want = {"ports": {"in_bits": geom.in_bits, "out_bits": geom.out_bits,
                          "n_inputs": geom.n_inputs, "n_outputs": geom.layers[-1].n_out},
                "geometry": geom.to_json()}
        diff = json_diff({k: self.manifest.get(k) for k in want}, want, "manifest")
        if diff:
            raise PermdealError(f"{self.path}: {diff} (from the layers and the configuration; "
                                "the manifest was edited)")

    def check_model(self, model: QuantModel, rom_cfg: EngineConfig, images: str | Path) -> None:
        """Refuse a model (read from ``images``) that is not the one the design was generated
        for: other engine size, layer count, shapes, block sizes, formats or ReLU."""
        # (the images do not depend on the scan width)
        if (rom_cfg.n_pe, rom_cfg.lanes) != (self.cfg.n_pe, self.cfg.lanes):
            raise PermdealError(f"{images}: images for {rom_cfg.n_pe} PE x {rom_cfg.lanes} lanes, "
                                f"the design {self.folder} has {self.cfg.n_pe} x "
                                f"{self.cfg.lanes}")
        if (rom_cfg.groups, rom_cfg.layer_groups) != (self.cfg.groups, self.cfg.layer_groups):
            raise PermdealError(f"{images}: images for {rom_cfg.groups_text or '1 lane group'}, "
                                f"the design {self.folder} has "
                                f"{self.cfg.groups_text or '1 lane group'}")
        if len(model.layers) != len(self.specs):
            raise PermdealError(f"{images}: a model of {len(model.layers)} layer(s), the design "
                                f"was generated for {len(self.specs)}")
        layers = model.matrix_layers() if hasattr(model, "matrix_layers") else model.layers
        if bool(self.walks) != hasattr(model, "matrix_layers"):
            raise PermdealError(f"{images}: a {'conv' if self.walks else 'fully connected'} "
                                f"design {self.folder}, the images hold a "
                                f"{'fully connected' if self.walks else 'conv'} network")
        for i, (layer, d) in enumerate(zip(layers, self.manifest["layers"])):
            got = {k: v for k, v in layer_json(layer).items() if k != "name"}
            want = {k: v for k, v in d.items() if k != "name"}
            diff = json_diff(got, want, f"layer {i}")
            if diff:
                raise PermdealError(f"{images}: the model's {diff} by the design {self.folder} "
                                    "(not the model it was generated for)")
