"""SmartDeal compressed models: layers, the compressed-model folder and the ROM images.

A :class:`SmartDealLayer` holds one layer's SmartDeal codes (:class:`~.smartdeal.SmartDealCodes`:
Ce codes, B codes, per-layer header), its bias codes and number formats. Its integer weights are
:func:`~.smartdeal.rebuild_int` of the codes in the MAC's weight format (exact shift-add, aligned by
``align_shift = b_frac - e_min - weight.frac`` with round-half-up and saturation, docs/design.md 5.2),
and its output is the section-3 write-back of ``x @ W_int.T``: bit-exact, with the accumulator
sized for dot products of all ``n`` inputs.

The compressed-model folder (written by :meth:`SmartDealModel.write`):

``model.npz``       per layer ``NAME.ce`` (blocks, h, S) Ce codes, ``NAME.b`` (blocks, S, S) B codes,
                    ``NAME.bias`` (out,) bias codes, all integers;
``manifest.json``   ``kind`` ``permdeal-model``, ``format_version`` 1, ``"method": "smartdeal"``,
                    ``generator``, ``source``, ``config`` (the compression settings), the model's
                    ``input_format``/``output_format``, per layer ``name``, ``in``, ``out``,
                    ``relu``, ``formats``, ``saturated`` (``weight``: aligned weights, ``bias``,
                    ``b``: B codes), ``smartdeal`` (the header: ``shape``, ``S``,
                    ``rows_per_block``, ``blocks``, ``E``, ``code_bits``, ``e_min``, ``b_bits``,
                    ``b_frac``, ``align_shift``) and ``arrays``; ``files`` holds the sha256 of
                    ``model.npz``;
``rom/``            the ROM images (:func:`write_rom`).

ROM images (docs/design.md 6): one ``$readmemh`` file per memory, per layer ``i``: ``L<i>_ce.hex`` (one
Ce code per word, ``E + 2`` bits, blocks x h x S in C order), ``L<i>_b.hex`` (one B code per word,
``b_bits`` bits two's complement, blocks x S x S), ``L<i>_bias.hex`` (one bias code per word, the
bias format's width, two's complement). ``rom/manifest.json`` (``kind`` ``permdeal-smartdeal-rom``)
holds the generator version, the configuration, the formats, the per-layer headers and for every
image its file, memory name, width, depth, signedness and sha256.

Readers trust nothing: every field is type-checked, derived fields are recomputed and compared,
codes are range-checked, and every problem is a :class:`PermdealError` naming the file and field.

This module is longer than most (about 580 lines) on purpose: the model, its folder and its ROM
images share one schema (the header fields, the code widths), checked in one place.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from . import smartdeal as sd
from .formats import Fixed, LayerFormats, writeback
from .manifest import SHA256, inside, json_diff, json_field, read_manifest, show_json
from .model import (MODEL_ARRAYS, MODEL_FORMAT_VERSION, MODEL_KIND, QuantModel, check_formats,
                    check_layers, layer_arrays, model_arrays)
from .rom import decode_hex, encode_hex, read_image_bytes

METHOD = "smartdeal"
ROM_KIND = "permdeal-smartdeal-rom"
ROM_FORMAT_VERSION = 1
#: The images of a conv network (docs/design.md 14.6): format 1's images of its layers' matrix
#: views, the layers described with their ``conv`` fields, and the network's ``flatten``.
CONV_ROM_FORMAT_VERSION = 2
#: The ROM images' sub-folder of a compressed-model folder.
ROM_FOLDER = "rom"
#: The arrays (and memories) of one layer.
PARTS = ("ce", "b", "bias")
SATURATED = ("weight", "bias", "b")
CONFIG_KEYS = ("S", "E", "b_bits", "rows_per_block", "threshold", "prune", "prune_group")


# -- layers -----------------------------------------------------------------------------------------

@dataclass(eq=False)
class SmartDealLayer:
    """One SmartDeal layer: codes, bias codes, formats, ReLU; ``weights`` are the rebuilt codes."""

    name: str
    codes: sd.SmartDealCodes
    bias: np.ndarray
    fmts: LayerFormats
    relu: bool
    saturated: dict = field(default_factory=dict)
    report: dict | None = None

    def __post_init__(self):
        if not isinstance(self.codes, sd.SmartDealCodes):
            raise PermdealError(f"layer {self.name}: codes must be SmartDealCodes")
        m, n = self.codes.shape
        self.bias = np.asarray(self.bias, dtype=np.int64)
        if self.bias.shape != (m,):
            raise PermdealError(f"layer {self.name}: bias has shape {self.bias.shape}, expected ({m},)")
        f = self.fmts.bias
        if self.bias.size and (self.bias.min() < f.min or self.bias.max() > f.max):
            raise PermdealError(f"layer {self.name}: bias codes {self.bias.min()}..{self.bias.max()} "
                                f"do not fit format {f}")
        if self.fmts.max_terms < n:
            raise PermdealError(f"layer {self.name}: formats sized for {self.fmts.max_terms} terms, "
                                f"the layer has {n} inputs")
        try:
            self.weights, self.weight_saturated = sd.rebuild_int(self.codes, self.fmts.weight)
        except PermdealError as e:
            raise PermdealError(f"layer {self.name}: {e}") from None

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def align_shift(self) -> int:
        return sd.align_shift(self.codes, self.fmts.weight)

    @property
    def header(self) -> dict:
        """The manifest's ``smartdeal`` header of this layer."""
        return {**self.codes.header, "align_shift": self.align_shift}

    def forward(self, x: npt.ArrayLike) -> np.ndarray:
        """Integer codes in (``fmts.act``), integer codes out (``fmts.out``), bit-exact."""
        acc = np.asarray(x, dtype=np.int64) @ self.weights.T
        return writeback(acc, self.bias, self.fmts, self.relu)


def _layer_json(layer, arrays=True):
    m, n = layer.shape
    d = {"name": layer.name, "in": n, "out": m, "relu": layer.relu,
         "formats": layer.fmts.to_json(),
         "saturated": {k: int(layer.saturated.get(k, 0)) for k in SATURATED},
         "smartdeal": layer.header}
    if arrays:
        d["arrays"] = {part: f"{layer.name}.{part}" for part in PARTS}
    return d


def _layer_arrays(layer):
    return {"ce": layer.codes.codes, "b": layer.codes.b_int, "bias": layer.bias}


# -- the model --------------------------------------------------------------------------------------

class SmartDealModel(QuantModel):
    """A chain of :class:`SmartDealLayer`; ``config`` records the compression settings."""

    def __init__(self, layers, config=None):
        super().__init__(layers, METHOD)
        if config is None:
            c = layers[0].codes
            config = {"S": c.S, "E": c.E, "b_bits": c.b_bits, "rows_per_block": None,
                      "threshold": None, "prune": 0.0, "prune_group": 1}
        self.config = dict(config)

    def manifest(self, arrays_sha256: str, source: dict | None = None) -> dict:
        return {
            "kind": MODEL_KIND, "format_version": MODEL_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": METHOD, "source": source,
            "config": self.config,
            "input_format": self.input_format.to_json(),
            "output_format": self.output_format.to_json(),
            "layers": [_layer_json(l) for l in self.layers],
            "files": {MODEL_ARRAYS: {"sha256": arrays_sha256}},
        }

    def write(self, folder: str | Path, source: dict | None = None) -> dict:
        """Write ``model.npz`` and ``manifest.json`` into ``folder`` (which must exist)."""
        folder = Path(folder)
        buf = io.BytesIO()
        np.savez(buf, **{f"{l.name}.{part}": np.asarray(a, dtype=np.int64)
                         for l in self.layers for part, a in _layer_arrays(l).items()})
        data = buf.getvalue()
        atomic.write_bytes(folder / MODEL_ARRAYS, data)
        man = self.manifest(hashlib.sha256(data).hexdigest(), source)
        atomic.write_text(folder / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
        return man

    def write_folder(self, folder: str | Path, source: dict | None = None) -> tuple[dict, dict]:
        """The whole compressed-model folder: :meth:`write` plus the ROM images in ``rom/``."""
        man = self.write(folder, source)
        rom_dir = Path(folder) / ROM_FOLDER
        try:
            rom_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise PermdealError(f"{rom_dir}: cannot create folder ({e.strerror or e})") from None
        return man, write_rom(rom_dir, self)

    @classmethod
    def read(cls, folder: str | Path) -> SmartDealModel:
        """Read a SmartDeal compressed-model folder, checking the manifest against ``model.npz``."""
        folder = Path(folder)
        man_path = folder / atomic.MANIFEST_NAME
        man = read_manifest(man_path, MODEL_KIND)
        from . import conv_folder
        if conv_folder.is_conv_manifest(man):
            return conv_folder.read_net(folder, man, man_path, METHOD)
        config, specs = _check_model_json(man, man_path, MODEL_FORMAT_VERSION, arrays=True)
        arr_path, arrays = model_arrays(folder, man, man_path, "NAME.ce/NAME.b/NAME.bias arrays")
        layers = []
        with layer_arrays(arrays, arr_path, man_path) as take:
            for i, spec in enumerate(specs):
                parts = take(i, spec, PARTS, f"S {spec.S}, rows_per_block {spec.rows_per_block}")
                names = {part: f"{arr_path}: {spec.arrays[part]}" for part in PARTS}
                layers.append(_build_layer(spec, parts, names,
                                           f"{man_path}: layer {i} ({spec.name})"))
        return _model(layers, config, man_path)


def _model(layers, config, where):
    try:
        return SmartDealModel(layers, config)
    except PermdealError as e:
        raise PermdealError(f"{where}: {e}") from None


# -- manifest fields --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmartDealLayerSpec:
    """A checked layer description of a SmartDeal manifest: everything but the codes."""

    name: str
    n_in: int
    n_out: int
    relu: bool
    fmts: LayerFormats
    saturated: dict
    S: int
    E: int
    rows_per_block: int
    e_min: int
    b_bits: int
    b_frac: int
    arrays: dict = None

    @property
    def blocks(self) -> int:
        return self.n_out * sd.block_layout((self.n_out, self.n_in), self.S, self.rows_per_block)[2]

    @property
    def array_shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int]]:
        """Shapes of ``ce``, ``b`` and ``bias``."""
        return ((self.blocks, self.rows_per_block, self.S), (self.blocks, self.S, self.S),
                (self.n_out,))

    def header(self) -> dict:
        return {"shape": [self.n_out, self.n_in], "S": self.S,
                "rows_per_block": self.rows_per_block, "blocks": self.blocks, "E": self.E,
                "code_bits": self.E + 2, "e_min": self.e_min, "b_bits": self.b_bits,
                "b_frac": self.b_frac, "align_shift": self.b_frac - self.e_min - self.fmts.weight.frac}

    def memories(self) -> dict[str, tuple[int, int, bool]]:
        """``{part: (width, depth, signed)}`` of the layer's ROM images."""
        shapes = dict(zip(PARTS, self.array_shapes))
        return {"ce": (self.E + 2, int(np.prod(shapes["ce"])), False),
                "b": (self.b_bits, int(np.prod(shapes["b"])), True),
                "bias": (self.fmts.bias.bits, self.n_out, True)}


def _spec_of(layer):
    c = layer.codes
    m, n = c.shape
    return SmartDealLayerSpec(layer.name, n, m, layer.relu, layer.fmts, dict(layer.saturated),
                              c.S, c.E, c.rows_per_block, c.e_min, c.b_bits, c.b_frac)


def _bounded(obj, key, where, lo, hi):
    v = json_field(obj, key, int, where)
    if not lo <= v <= hi:
        raise PermdealError(f"{where}: {key} must be an integer in [{lo}, {hi}], not {v}")
    return v


def _number(obj, key, where, lo, hi=None, optional=False):
    if key not in obj:
        raise PermdealError(f"{where}: missing field {key!r}")
    v = obj[key]
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
            lo <= v and (hi is None or v < hi)):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi})"
        raise PermdealError(f"{where}: {key} must be a number {rng}"
                            f"{' or null' if optional else ''}, not {show_json(v)}")
    return v


def _check_config(man, path):
    where = f"{path}: config"
    c = json_field(man, "config", dict, path)
    for key in c:
        if key not in CONFIG_KEYS:
            raise PermdealError(f"{where}: unexpected field {key!r}")
    out = {"S": _bounded(c, "S", where, 1, sd.MAX_S),
           "E": _bounded(c, "E", where, *sd.E_RANGE),
           "b_bits": _bounded(c, "b_bits", where, *sd.B_BITS_RANGE)}
    if "rows_per_block" not in c:
        raise PermdealError(f"{where}: missing field 'rows_per_block'")
    out["rows_per_block"] = None if c["rows_per_block"] is None else json_field(
        c, "rows_per_block", int, where, minimum=1)
    out["threshold"] = _number(c, "threshold", where, 0, optional=True)
    out["prune"] = _number(c, "prune", where, 0, 1)
    out["prune_group"] = json_field(c, "prune_group", int, where, minimum=1)
    return out


def _layer_spec(d, where, config, arrays):
    """Check one layer description (:func:`_layer_json`) field by field."""
    if not isinstance(d, dict):
        raise PermdealError(f"{where}: must be an object, not {show_json(d)}")
    name = json_field(d, "name", str, where)
    if not name:
        raise PermdealError(f"{where}: name must not be empty")
    where = f"{where} ({name})"
    allowed = {"name", "in", "out", "relu", "formats", "saturated", "smartdeal"} | (
        {"arrays"} if arrays else set())
    for key in d:
        if key not in allowed:
            raise PermdealError(f"{where}: unexpected field {key!r}")
    n_in = json_field(d, "in", int, where, minimum=1)
    n_out = json_field(d, "out", int, where, minimum=1)
    relu = json_field(d, "relu", bool, where)
    fmts = check_formats(d, where)
    if fmts.max_terms != n_in:
        raise PermdealError(f"{where}: formats.max_terms is {fmts.max_terms}, but the longest dot "
                            f"product of a SmartDeal layer is its {n_in} inputs")
    sat = json_field(d, "saturated", dict, where)
    saturated = {key: json_field(sat, key, int, f"{where}: saturated", minimum=0)
                 for key in SATURATED}
    extra = set(sat) - set(SATURATED)
    if extra:
        raise PermdealError(f"{where}: saturated: unexpected field {sorted(extra)[0]!r}")
    h = json_field(d, "smartdeal", dict, where)
    hw = f"{where}: smartdeal"
    S = _bounded(h, "S", hw, 1, sd.MAX_S)
    E = _bounded(h, "E", hw, *sd.E_RANGE)
    b_bits = _bounded(h, "b_bits", hw, *sd.B_BITS_RANGE)
    rpb = json_field(h, "rows_per_block", int, hw, minimum=1)
    e_min = _bounded(h, "e_min", hw, -1000, 1000)
    b_frac = _bounded(h, "b_frac", hw, -64, 64)
    names = None
    if arrays:
        a = json_field(d, "arrays", dict, where)
        names = {part: json_field(a, part, str, f"{where}: arrays") for part in PARTS}
        extra = set(a) - set(names)
        if extra:
            raise PermdealError(f"{where}: arrays: unexpected field {sorted(extra)[0]!r}")
    spec = SmartDealLayerSpec(name, n_in, n_out, relu, fmts, saturated, S, E, rpb, e_min, b_bits,
                              b_frac, names)
    diff = json_diff(h, spec.header(), "smartdeal")
    if diff:
        raise PermdealError(f"{where}: {diff} (from in, out, S, rows_per_block, E, e_min, b_bits, "
                            "b_frac and formats.weight)")
    for key, v in (("S", S), ("E", E), ("b_bits", b_bits)):
        if v != config[key]:
            raise PermdealError(f"{where}: smartdeal.{key} is {v}, but config.{key} is "
                                f"{config[key]}")
    want_rpb = config["rows_per_block"] or sd.block_layout((n_out, n_in), S)[0]
    if rpb != want_rpb:
        raise PermdealError(f"{where}: smartdeal.rows_per_block is {rpb}, but config.rows_per_block "
                            f"{show_json(config['rows_per_block'])} gives {want_rpb}")
    return spec


def _check_method(man, path, version):
    v = json_field(man, "format_version", int, path)
    if v > version:
        raise PermdealError(f"{path}: written by a newer permdeal: format_version {v}, this reader "
                            f"knows {version}")
    if v != version:
        raise PermdealError(f"{path}: unsupported format_version {v}, this reader knows {version}")
    method = json_field(man, "method", str, path)
    if method != METHOD:
        raise PermdealError(f"{path}: method {method!r} is not a SmartDeal model; this reader "
                            f"reads only method {METHOD!r}"
                            + (" (QuantModel.read reads 'permdiag')" if method == "permdiag" else ""))


def _check_model_json(man, path, version, arrays, wrap=None):
    """Header, config, layer descriptions, their chaining and the model's I/O formats (``wrap``
    of the layer checker: conv layers too, :func:`.conv_folder.conv_aware`)."""
    _check_method(man, path, version)
    json_field(man, "generator", str, path)
    if man.get("source") is not None:
        src = json_field(man, "source", dict, path)
        for key in src:
            json_field(src, key, str, f"{path}: source")
    config = _check_config(man, path)
    spec = lambda d, where: _layer_spec(d, where, config, arrays)
    specs = check_layers(man, path, wrap(spec) if wrap else spec)
    return config, specs


# -- codes ------------------------------------------------------------------------------------------

def _first(bad):
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _check_codes(spec, parts, names):
    """Range checks of a layer's codes; ``names[part]`` (file, array) starts each message."""
    E, ce = spec.E, np.asarray(parts["ce"])
    top = 1 << (E + 2)
    bad = (ce < 0) | (ce >= top)
    if np.any(bad):
        at = _first(bad)
        raise PermdealError(f"{names['ce']}: Ce code {int(ce[at])} at {at} is beyond the "
                            f"{E + 2}-bit code {{nz, sign, e_idx}} of E = {E} (0..{top - 1})")
    bad = ((ce >> (E + 1)) == 0) & (ce != 0)
    if np.any(bad):
        at = _first(bad)
        raise PermdealError(f"{names['ce']}: Ce code {int(ce[at])} at {at} has nz = 0 but other "
                            "bits set; a zero entry is code 0")
    for part, what, fmt in (("b", f"b_bits = {spec.b_bits}", Fixed(spec.b_bits, 0)),
                            ("bias", f"formats.bias {spec.fmts.bias}", spec.fmts.bias)):
        a = np.asarray(parts[part])
        bad = (a < fmt.min) | (a > fmt.max)
        if np.any(bad):
            at = _first(bad)
            label = "B" if part == "b" else "bias"
            raise PermdealError(f"{names[part]}: {label} code {int(a[at])} at {at} does not fit "
                                f"{what} ({fmt.min}..{fmt.max})")


def _build_layer(spec, parts, names, where):
    """The :class:`SmartDealLayer` of a checked description and its codes."""
    for part in PARTS:
        a = np.asarray(parts[part])
        if a.size and a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
            raise PermdealError(f"{names[part]}: holds values beyond 64-bit signed integers")
    parts = {k: np.asarray(v).astype(np.int64) for k, v in parts.items()}
    _check_codes(spec, parts, names)
    try:
        codes = sd.SmartDealCodes((spec.n_out, spec.n_in), spec.S, spec.E, spec.rows_per_block,
                                  spec.e_min, spec.b_bits, spec.b_frac, parts["ce"], parts["b"],
                                  spec.saturated["b"])
        layer = SmartDealLayer(spec.name, codes, parts["bias"], spec.fmts, spec.relu,
                               dict(spec.saturated))
    except PermdealError as e:
        msg = str(e)
        prefix = f"layer {spec.name}: "
        raise PermdealError(f"{where}: {msg[len(prefix):] if msg.startswith(prefix) else msg}") \
            from None
    if layer.weight_saturated != spec.saturated["weight"]:
        raise PermdealError(f"{where}: saturated.weight is {spec.saturated['weight']}, but the codes "
                            f"rebuild with {layer.weight_saturated} saturated weight(s)")
    return layer


# -- ROM images -------------------------------------------------------------------------------------

def image_name(i: int, part: str) -> str:
    """File name of layer ``i``'s ``part`` image; its memory name is the stem."""
    return f"L{i}_{part}.hex"


def _is_conv_net(model) -> bool:
    return any(getattr(l, "conv", None) is not None for l in model.layers)


def rom_manifest(model: SmartDealModel, images: list[dict]) -> dict:
    """The ROM manifest of ``model`` (a ``SmartDealModel``, or a SmartDeal ``ConvNet``: format
    :data:`CONV_ROM_FORMAT_VERSION`, its layers with their ``conv`` fields, its ``flatten``)."""
    from .conv_folder import FLATTEN_FIELD, layer_json
    conv = _is_conv_net(model)
    return {
        "kind": ROM_KIND, "format_version": CONV_ROM_FORMAT_VERSION if conv else ROM_FORMAT_VERSION,
        "generator": f"permdeal {__version__}", "method": METHOD, "config": model.config,
        "input_format": model.input_format.to_json(),
        "output_format": model.output_format.to_json(),
        "layers": [layer_json(l, METHOD, arrays=False) if conv else _layer_json(l, arrays=False)
                   for l in model.layers],
        "images": images, **({FLATTEN_FIELD: model.flatten} if conv else {}),
    }


def write_rom(folder: str | Path, model: SmartDealModel) -> dict:
    """Write every layer's images and ``manifest.json`` into ``folder`` (which must exist).

    Returns the manifest dict.
    """
    folder = Path(folder)
    images = []
    mats = model.matrix_layers() if _is_conv_net(model) else model.layers
    for i, layer in enumerate(mats):
        mems = _spec_of(layer).memories()
        for part, values in _layer_arrays(layer).items():
            width, depth, signed = mems[part]
            values = np.asarray(values, dtype=np.int64).reshape(-1)
            assert values.size == depth
            data = encode_hex(values, width, signed)
            name = image_name(i, part)
            atomic.write_bytes(folder / name, data)
            images.append({"file": name, "memory": Path(name).stem, "layer": i, "part": part,
                           "width": width, "depth": depth, "signed": signed,
                           "sha256": hashlib.sha256(data).hexdigest()})
    man = rom_manifest(model, images)
    atomic.write_text(folder / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


def _check_images(man, man_path, folder, specs):
    """The ``images`` list: each (layer, part) once, under its name, with the derived width,
    depth and signedness. Returns ``{(i, part): (path, sha256)}``."""
    images = json_field(man, "images", list, man_path)
    entries, index = {}, {}
    for k, img in enumerate(images):
        where = f"{man_path}: images[{k}]"
        if not isinstance(img, dict):
            raise PermdealError(f"{where}: must be an object, not {show_json(img)}")
        for key in img:
            if key not in ("file", "memory", "layer", "part", "width", "depth", "signed",
                           "sha256"):
                raise PermdealError(f"{where}: unexpected field {key!r}")
        i = json_field(img, "layer", int, where, minimum=0)
        if i >= len(specs):
            raise PermdealError(f"{where}: layer {i} does not exist (the model has {len(specs)})")
        part = json_field(img, "part", str, where)
        if part not in PARTS:
            raise PermdealError(f"{where}: part must be one of {', '.join(PARTS)}, not {part!r}")
        if (i, part) in entries:
            raise PermdealError(f"{where}: a second {part} image of layer {i} (the first is "
                                f"images[{index[i, part]}])")
        file = json_field(img, "file", str, where)
        name = image_name(i, part)
        if file != name:
            raise PermdealError(f"{where}: file {file!r} is not the name of layer {i}'s {part} "
                                f"image, {name!r}")
        memory = json_field(img, "memory", str, where)
        if memory != Path(name).stem:
            raise PermdealError(f"{where}: memory {memory!r} should be {Path(name).stem!r}")
        path = inside(folder, file, where)
        width, depth, signed = specs[i].memories()[part]
        what = f"layer {i} ({specs[i].name}) {part} memory"
        got_w = json_field(img, "width", int, where)
        if got_w != width:
            raise PermdealError(f"{path}: width {got_w} in {man_path} differs from the {what}'s "
                                f"{width}-bit words")
        got_d = json_field(img, "depth", int, where)
        if got_d != depth:
            raise PermdealError(f"{path}: depth {got_d} in {man_path} differs from the {what}'s "
                                f"{depth} words")
        if json_field(img, "signed", bool, where) != signed:
            raise PermdealError(f"{path}: signed in {man_path} should be "
                                f"{'true' if signed else 'false'} for the {what}")
        sha = json_field(img, "sha256", str, where)
        if not SHA256.fullmatch(sha):
            raise PermdealError(f"{where}: sha256 must be 64 lower-case hex digits, not {sha!r}")
        entries[i, part] = (path, sha)
        index[i, part] = k
    for i in range(len(specs)):
        for part in PARTS:
            if (i, part) not in entries:
                raise PermdealError(f"{man_path}: images: no entry for {image_name(i, part)} "
                                    f"(layer {i} ({specs[i].name}) {part})")
    return entries


def read_rom(folder: str | Path) -> tuple[dict, SmartDealModel]:
    """Read and verify a SmartDeal ROM folder; returns ``(manifest, SmartDealModel)`` (a
    ``ConvNet`` for the images of a conv network, format :data:`CONV_ROM_FORMAT_VERSION`).

    Refuses, naming the file, any image that is missing, malformed, or whose width, depth or
    sha256 disagrees with the manifest, and any manifest whose fields disagree with one another.
    """
    from . import conv_folder
    folder = Path(folder)
    man_path = folder / atomic.MANIFEST_NAME
    man = read_manifest(man_path, ROM_KIND)
    version, nets = man.get("format_version"), None
    if type(version) is int and version == CONV_ROM_FORMAT_VERSION:
        config, nets, flatten = conv_folder.check_net_json(man, man_path, METHOD, version,
                                                           arrays=False)
        specs = [getattr(s, "matrix", s) for s in nets]
    else:
        conv_folder.refuse_conv_fields(man, man_path, CONV_ROM_FORMAT_VERSION)
        config, specs = _check_model_json(man, man_path, ROM_FORMAT_VERSION, arrays=False)
    entries = _check_images(man, man_path, folder, specs)
    values = {}
    for (i, part), (path, sha) in entries.items():
        data = read_image_bytes(path, f"listed in {man_path}")
        width, depth, signed = specs[i].memories()[part]
        values[i, part] = decode_hex(data, width, depth, signed, path)
        if hashlib.sha256(data).hexdigest() != sha:
            raise PermdealError(f"{path}: sha256 does not match {man_path}; the image was changed")
    layers = []
    for i, spec in enumerate(specs):
        shapes = dict(zip(PARTS, spec.array_shapes))
        parts = {part: values[i, part].reshape(shapes[part]) for part in PARTS}
        names = {part: str(entries[i, part][0]) for part in PARTS}
        layers.append(_build_layer(spec, parts, names, f"{man_path}: layer {i} ({spec.name})"))
    if nets is not None:
        layers = [conv_folder.build(n, ml, f"{man_path}: layer {i} ({ml.name})")
                  for i, (n, ml) in enumerate(zip(nets, layers))]
        return man, conv_folder.make_net(layers, METHOD, config, man_path, flatten)
    return man, _model(layers, config, man_path)
