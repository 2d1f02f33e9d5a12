"""Float models in, quantized permuted-diagonal models out, and their bit-exact inference.

A *float model* is an ``.npz`` holding ``NAME.weight`` (out x in) and ``NAME.bias`` arrays in file
order, as ``numpy.savez(f, **torch_model.state_dict())`` writes them; layers chain (each one's
input count is the previous one's output count) with ReLU between them. Convolution layers and
pooling extend it (:mod:`.float_model`, the format's one statement).

A *compressed model* is a folder with ``model.npz`` (integer arrays ``NAME.k``, ``NAME.q``,
``NAME.bias``) and ``manifest.json`` (shapes, block sizes, number formats, checksums): enough for a
third party to recompute every output, as :meth:`QuantModel.forward` does.

Readers trust nothing in a manifest: every field is type-checked, every derived field is
recomputed and compared, and every problem is a :class:`PermdealError` naming the file and field.

This module is longer than most (about 550 lines) on purpose: the float-model reader, the
compressed layer and model and the manifest reader share one schema and are read together.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from .float_model import FloatLayer, layers_from_arrays
from .formats import Fixed, LayerFormats, writeback
from .manifest import json_diff, json_field, json_same, read_manifest, show_json
from .permdiag import PermDiag

MODEL_KIND = "permdeal-model"
MODEL_FORMAT_VERSION = 1
#: Conv networks' folders (FC layers described as before, conv layers with a ``conv`` field,
#: the feature-map order in ``flatten``: :mod:`.conv_folder`); FC-only models stay format 1.
CONV_FORMAT_VERSION = 3
#: The conv formats read: 2 (before ``flatten``; ``(C, H, W)`` order) and 3.
CONV_FORMAT_VERSIONS = (2, 3)
MODEL_ARRAYS = "model.npz"
#: The only compression method this reader knows.
METHOD = "permdiag"

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise PermdealError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def _load_npz(path, holds="NAME.weight/NAME.bias arrays"):
    """All arrays of an ``.npz`` archive, in file order; each must be a real numeric array.

    ``holds`` describes what the archive should contain, for the error messages.
    """
    path = Path(path)
    if path.is_dir():
        raise PermdealError(f"{path}: is a folder, expected an .npz archive of {holds}")
    if not path.is_file():
        raise PermdealError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise PermdealError(f"{path}: cannot read ({e.strerror or e})") from None
    if magic == _NPY_MAGIC:
        raise PermdealError(f"{path}: is a .npy array, expected an .npz archive of {holds}")
    if magic[:4] not in _ZIP_MAGIC:
        raise PermdealError(f"{path}: not a readable .npz file (not a zip archive)")
    bad = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
           RuntimeError, MemoryError)
    try:
        z = np.load(path, allow_pickle=False)
    except bad as e:
        raise PermdealError(f"{path}: not a readable .npz file ({e})") from None
    out = {}
    with z:
        for key in z.files:
            try:
                value = z[key]
            except bad as e:
                raise PermdealError(f"{path}: member {key!r} is not a readable numpy array "
                                    f"({e})") from None
            if not isinstance(value, np.ndarray):
                raise PermdealError(f"{path}: member {key!r} is not a numpy array (.npy); "
                                    f"expected an .npz archive of {holds}")
            if value.dtype.kind not in "iuf":
                raise PermdealError(f"{path}: {key} has non-numeric dtype {value.dtype}; "
                                    "expected integer or real float numbers")
            out[key] = value
    return out


# -- float models ---------------------------------------------------------------------------------

def load_float_model(path: str | Path) -> list[FloatLayer]:
    """Read a float model ``.npz`` and check it: names, shapes, chaining, finiteness, and for
    convolutions their geometry (:mod:`.float_model` holds the format).

    A layer without ``NAME.bias`` gets a zero bias (``torch.nn.Linear(bias=False)``).
    """
    return layers_from_arrays(_load_npz(path), path)


# -- quantized models -----------------------------------------------------------------------------

@dataclass
class QuantLayer:
    """One quantized permuted-diagonal layer: integer weight codes, bias codes and formats."""

    name: str
    matrix: PermDiag
    bias: np.ndarray
    fmts: LayerFormats
    relu: bool
    saturated: dict = field(default_factory=dict)

    def __post_init__(self):
        if not np.issubdtype(self.matrix.q.dtype, np.integer):
            raise PermdealError(f"layer {self.name}: weights must be integer codes")
        m = self.matrix.shape[0]
        self.bias = np.asarray(self.bias, dtype=np.int64)
        if self.bias.shape != (m,):
            raise PermdealError(f"layer {self.name}: bias has shape {self.bias.shape}, expected ({m},)")
        for what, codes, fmt in (("weight", self.matrix.q, self.fmts.weight),
                                 ("bias", self.bias, self.fmts.bias)):
            if codes.size and (codes.min() < fmt.min or codes.max() > fmt.max):
                raise PermdealError(f"layer {self.name}: {what} codes {codes.min()}..{codes.max()} "
                                    f"do not fit format {fmt}")
        if self.fmts.max_terms < self.matrix.max_terms:
            raise PermdealError(f"layer {self.name}: formats sized for {self.fmts.max_terms} terms, "
                                f"the matrix has rows of {self.matrix.max_terms}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def forward(self, x: npt.ArrayLike) -> np.ndarray:
        """Integer codes in (``fmts.act``), integer codes out (``fmts.out``), bit-exact."""
        return writeback(self.matrix.int_matvec(x), self.bias, self.fmts, self.relu)



def model_arrays(folder: str | Path, man: dict, man_path: str | Path,
                 what: str) -> tuple[Path, dict[str, np.ndarray]]:
    """``(path, arrays)`` of a compressed-model folder's ``model.npz``, after checking that the
    manifest ``man`` names only it and that its sha256 matches; ``what`` describes the arrays."""
    files = json_field(man, "files", dict, man_path)
    for name in files:
        if name != MODEL_ARRAYS:
            raise PermdealError(f"{man_path}: files: unexpected entry {name!r}; a compressed "
                                f"model holds only {MODEL_ARRAYS}")
    entry = json_field(files, MODEL_ARRAYS, dict, f"{man_path}: files")
    want = json_field(entry, "sha256", str, f"{man_path}: files.{MODEL_ARRAYS}")
    arr_path = Path(folder) / MODEL_ARRAYS
    if not arr_path.is_file():
        raise PermdealError(f"{arr_path}: missing (named by {man_path})")
    if sha256_file(arr_path) != want:
        raise PermdealError(f"{arr_path}: sha256 does not match {man_path}; the file was changed "
                            "or truncated")
    return arr_path, _load_npz(arr_path, what)


def check_labels(y: npt.ArrayLike, n: int, n_classes: int, what: str = "labels") -> np.ndarray:
    """Refuse labels ``y`` that are not ``n`` integer class indices in ``[0, n_classes)``;
    ``what`` names them (a flag or a parameter)."""
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise PermdealError(f"{what}: expected {n} class indices in [0, {n_classes}), got a "
                            f"{y.dtype} array of shape {y.shape}")
    if y.min() < 0 or y.max() >= n_classes:
        raise PermdealError(f"{what}: expected {n} class indices in [0, {n_classes}), found "
                            f"{y.min()}..{y.max()}")
    return y

class QuantModel:
    """A chain of :class:`QuantLayer`; each layer's output format is the next one's input format."""

    def __init__(self, layers, method=METHOD):
        if not layers:
            raise PermdealError("a model needs at least one layer")
        for a, b in zip(layers, layers[1:]):
            if a.shape[0] != b.shape[1]:
                raise PermdealError(f"layers do not chain: {a.name} gives {a.shape[0]} outputs, "
                                    f"{b.name} takes {b.shape[1]} inputs")
            if a.fmts.out != b.fmts.act:
                raise PermdealError(f"formats do not chain: {a.name} writes {a.fmts.out}, "
                                    f"{b.name} reads {b.fmts.act}")
        self.layers = list(layers)
        self.method = method

    @property
    def input_format(self) -> Fixed:
        return self.layers[0].fmts.act

    @property
    def output_format(self) -> Fixed:
        return self.layers[-1].fmts.out

    @property
    def n_inputs(self) -> int:
        return self.layers[0].shape[1]

    def quantize_input(self, x: npt.ArrayLike) -> tuple[np.ndarray, int]:
        """Float inputs to input codes: ``(codes, n_saturated)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != (self.n_inputs,):
            raise PermdealError(f"inputs have {x.shape[-1] if x.ndim else 0} values per vector, "
                                f"the model takes {self.n_inputs}")
        return self.input_format.quantize(x)

    def forward(self, x: npt.ArrayLike, trace: bool = False) -> np.ndarray | list[np.ndarray]:
        """Bit-exact inference on input codes (``(n,)`` or ``(batch, n)``).

        Returns the last layer's output codes, or with ``trace`` the list of every layer's input
        and output codes (``[x, y1, y2, ...]``).
        """
        acts = [np.asarray(x, dtype=np.int64)]
        for layer in self.layers:
            acts.append(layer.forward(acts[-1]))
        return acts if trace else acts[-1]

    def predict(self, x: npt.ArrayLike) -> np.ndarray:
        """Float inputs in, float outputs out (through the integer model)."""
        codes, _ = self.quantize_input(x)
        return self.output_format.to_float(self.forward(codes))

    # -- files ---------------------------------------------------------------------------------

    def manifest(self, arrays_sha256: str, source: dict | None = None) -> dict:
        """The ``manifest.json`` content for this model."""
        return {
            "kind": MODEL_KIND, "format_version": MODEL_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": self.method,
            "source": source, "input_format": self.input_format.to_json(),
            "output_format": self.output_format.to_json(),
            "layers": [layer_to_json(l) for l in self.layers],
            "files": {MODEL_ARRAYS: {"sha256": arrays_sha256}},
        }

    def write(self, folder: str | Path, source: dict | None = None) -> dict:
        """Write ``model.npz`` and ``manifest.json`` into ``folder`` (which must exist)."""
        folder = Path(folder)
        buf = io.BytesIO()
        arrays = {}
        for l in self.layers:
            arrays[f"{l.name}.k"] = l.matrix.k
            arrays[f"{l.name}.q"] = l.matrix.q.astype(np.int64)
            arrays[f"{l.name}.bias"] = l.bias
        np.savez(buf, **arrays)
        data = buf.getvalue()
        atomic.write_bytes(folder / MODEL_ARRAYS, data)
        manifest = self.manifest(hashlib.sha256(data).hexdigest(), source)
        atomic.write_text(folder / atomic.MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        return manifest

    @classmethod
    def read(cls, folder: str | Path) -> QuantModel:
        """Read a compressed-model folder, checking the manifest against ``model.npz``."""
        folder = Path(folder)
        man_path = folder / atomic.MANIFEST_NAME
        man = read_manifest(man_path, MODEL_KIND)
        from . import conv_folder
        if conv_folder.is_conv_manifest(man):
            return conv_folder.read_net(folder, man, man_path, METHOD)
        conv_folder.refuse_conv_fields(man, man_path)
        specs = check_model_json(man, man_path, MODEL_FORMAT_VERSION)
        arr_path, arrays = model_arrays(folder, man, man_path, "NAME.k/NAME.q/NAME.bias arrays")
        layers = []
        with layer_arrays(arrays, arr_path, man_path) as take:
            for i, spec in enumerate(specs):
                parts = take(i, spec, ("k", "q", "bias"), f"p {spec.p}")
                layers.append(build_layer(spec, *parts.values(),
                                          where=f"{man_path}: layer {i} ({spec.name})"))
        return model_from_specs(layers, man_path)


@contextlib.contextmanager
def layer_arrays(arrays: dict[str, np.ndarray], arr_path: str | Path,
                 man_path: str | Path) -> Iterator[Callable[..., dict[str, np.ndarray]]]:
    """Take the layers' integer arrays out of a model's ``arrays`` (from ``arr_path``, described
    by ``man_path``): yields ``take(i, spec, parts, described)``, which returns ``{part: array}``
    for layer ``i`` (``spec.arrays[part]`` of shape ``spec.array_shapes``; ``described`` names the
    fields that fix the shapes besides in and out). Each array is used once, and an array no
    layer took is refused when the block ends. Shared by every compression method's reader."""
    used = {}

    def take(i, spec, parts, described):
        where = f"{man_path}: layer {i} ({spec.name})"
        out = {}
        for part, shape in zip(parts, spec.array_shapes):
            key = spec.arrays[part]
            if key not in arrays:
                raise PermdealError(f"{where}: arrays.{part} names {key!r}, which {arr_path} "
                                    "does not hold")
            if key in used:
                raise PermdealError(f"{where}: arrays.{part} names {key!r}, already used by "
                                    f"{used[key]}")
            used[key] = f"layer {i} ({spec.name}) {part}"
            a = arrays[key]
            if a.shape != shape:
                raise PermdealError(
                    f"{arr_path}: {key} has shape {a.shape}, but {man_path} layer {i} "
                    f"({spec.name}) with in {spec.n_in}, out {spec.n_out} and {described} "
                    f"needs {shape}")
            if not np.issubdtype(a.dtype, np.integer):
                raise PermdealError(f"{arr_path}: {key} holds {a.dtype} values, expected "
                                    "integer codes")
            out[part] = a
        return out

    yield take
    unused = [key for key in arrays if key not in used]
    if unused:
        raise PermdealError(f"{arr_path}: holds {len(unused)} array(s) no layer of {man_path} "
                            f"uses, the first {unused[0]!r} (was a layer removed from the "
                            "manifest?)")


def model_from_specs(layers: Sequence[QuantLayer], where: str | Path) -> QuantModel:
    """A :class:`QuantModel` of checked layers; errors are prefixed with ``where``."""
    try:
        return QuantModel(layers, METHOD)
    except PermdealError as e:
        raise PermdealError(f"{where}: {e}") from None


# -- manifest fields --------------------------------------------------------------------------------

def check_header(man: dict, path: str | Path, version: int) -> None:
    """The manifest's ``format_version`` and ``method`` are ones this reader knows."""
    v = json_field(man, "format_version", int, path)
    if v > version:
        raise PermdealError(f"{path}: written by a newer permdeal: format_version {v}, this reader "
                            f"knows {version}")
    if v != version:
        raise PermdealError(f"{path}: unsupported format_version {v}, this reader knows {version}")
    method = json_field(man, "method", str, path)
    if method != METHOD:
        raise PermdealError(f"{path}: method {method!r} is not one this reader knows "
                            f"({METHOD!r})")


@dataclass(frozen=True)
class LayerSpec:
    """A layer description of a manifest, checked: everything but the arrays."""

    name: str
    n_in: int
    n_out: int
    p: int
    relu: bool
    fmts: LayerFormats
    saturated: dict
    arrays: dict = None

    @property
    def blocks(self) -> tuple[int, int]:
        return -(-self.n_out // self.p), -(-self.n_in // self.p)

    @property
    def array_shapes(self) -> tuple[tuple[int, int], tuple[int, int, int], tuple[int]]:
        """Shapes of ``k``, ``q`` and ``bias``."""
        mb, nb = self.blocks
        return (mb, nb), (mb, nb, self.p), (self.n_out,)


def check_formats(d: dict, where: str) -> LayerFormats:
    """A layer description's ``formats``, checked field by field (each format first, so that a
    message names the field) and against what its bits, frac and max_terms derive."""
    fm = json_field(d, "formats", dict, where)
    try:
        for key in ("act", "weight", "bias", "out"):
            Fixed.from_json(json_field(fm, key, dict, "formats"), f"formats.{key}")
        fmts = LayerFormats.from_json(fm, "formats")
    except PermdealError as e:
        msg = str(e)
        raise PermdealError(f"{where}: {msg if msg.startswith('formats') else 'formats: ' + msg}") \
            from None
    diff = json_diff(fm, fmts.to_json(), "formats")
    if diff:
        raise PermdealError(f"{where}: {diff} (from the formats' bits, frac and max_terms)")
    return fmts


def layer_spec_from_json(d: Any, where: str, arrays: bool = True) -> LayerSpec:
    """Check one layer description of a manifest (:func:`layer_to_json`) field by field.

    ``where`` prefixes every message (e.g. ``"manifest.json: layer 0"``); the layer's name is added
    once it is known. ``arrays`` requires the ``arrays`` field of a compressed-model manifest.
    """
    if not isinstance(d, dict):
        raise PermdealError(f"{where}: must be an object, not {show_json(d)}")
    name = json_field(d, "name", str, where)
    if not name:
        raise PermdealError(f"{where}: name must not be empty")
    where = f"{where} ({name})"
    n_in = json_field(d, "in", int, where, minimum=1)
    n_out = json_field(d, "out", int, where, minimum=1)
    p = json_field(d, "p", int, where, minimum=1)
    relu = json_field(d, "relu", bool, where)
    blocks = json_field(d, "blocks", list, where)
    want = [-(-n_out // p), -(-n_in // p)]
    if not json_same(blocks, want):
        raise PermdealError(f"{where}: blocks is {show_json(blocks)}, but out {n_out}, in {n_in} and "
                            f"p {p} give {want}")
    fmts = check_formats(d, where)
    saturated = {}
    if "saturated" in d:
        sat = json_field(d, "saturated", dict, where)
        for key in sat:
            saturated[key] = json_field(sat, key, int, f"{where}: saturated", minimum=0)
    names = None
    if arrays:
        a = json_field(d, "arrays", dict, where)
        names = {part: json_field(a, part, str, f"{where}: arrays") for part in ("k", "q", "bias")}
        extra = set(a) - set(names)
        if extra:
            raise PermdealError(f"{where}: arrays: unexpected field {sorted(extra)[0]!r}")
    return LayerSpec(name, n_in, n_out, p, relu, fmts, saturated, names)


def check_model_json(man: dict, path: str | Path, version: int,
                     arrays: bool = True, wrap: Callable | None = None) -> list[LayerSpec]:
    """Check the model part of a manifest: header, layer descriptions, their chaining and the
    model's input and output formats. Returns the :class:`LayerSpec` of every layer; ``wrap``
    (of the layer checker) reads conv layers too (:func:`.conv_folder.conv_aware`)."""
    check_header(man, path, version)
    spec = lambda d, where: layer_spec_from_json(d, where, arrays=arrays)
    return check_layers(man, path, wrap(spec) if wrap else spec)


def check_layers(man: dict, path: str | Path, layer_spec: Callable[[Any, str], Any]) -> list:
    """The checked layer descriptions of manifest ``man`` (read from ``path``): each made by
    ``layer_spec(d, where)`` (an object with ``name``, ``n_in``, ``n_out`` and ``fmts``), with
    unique names, layers that chain in shape and format, and the model's input and output
    formats those of the first and last layer. Shared by every compression method's reader."""
    layers = json_field(man, "layers", list, path)
    if not layers:
        raise PermdealError(f"{path}: layers is empty; a model needs at least one layer")
    specs = []
    for i, d in enumerate(layers):
        spec = layer_spec(d, f"{path}: layer {i}")
        where = f"{path}: layer {i} ({spec.name})"
        for j, prev in enumerate(specs):
            if prev.name == spec.name:
                raise PermdealError(f"{where}: layer {j} has the same name")
        if specs:
            prev, j = specs[-1], i - 1
            if spec.n_in != prev.n_out:
                raise PermdealError(f"{where}: in is {spec.n_in}, but layer {j} ({prev.name}) "
                                    f"gives {prev.n_out} outputs")
            if spec.fmts.act != prev.fmts.out:
                raise PermdealError(f"{where}: formats.act {spec.fmts.act} differs from layer {j} "
                                    f"({prev.name})'s formats.out {prev.fmts.out}")
        specs.append(spec)
    for key, want in (("input_format", specs[0].fmts.act.to_json()),
                      ("output_format", specs[-1].fmts.out.to_json())):
        if key not in man:
            raise PermdealError(f"{path}: missing field {key!r}")
        diff = json_diff(man[key], want, key)
        if diff:
            which = "layer 0's formats.act" if key == "input_format" else \
                f"layer {len(specs) - 1}'s formats.out"
            raise PermdealError(f"{path}: {diff} ({which})")
    return specs


def _int_codes(a, what):
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise PermdealError(f"{what} must be integer codes, not {a.dtype}")
    if a.size and a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise PermdealError(f"{what} holds values beyond 64-bit signed integers")
    return a.astype(np.int64)


def build_layer(spec: LayerSpec, k: npt.ArrayLike, q: npt.ArrayLike, bias: npt.ArrayLike,
                where: str) -> QuantLayer:
    """The :class:`QuantLayer` of a checked description and its arrays; errors name ``where``."""
    try:
        k, q, bias = (_int_codes(a, what) for a, what in ((k, "k"), (q, "q"), (bias, "bias")))
        mat = PermDiag((spec.n_out, spec.n_in), spec.p, k, q)
        return QuantLayer(spec.name, mat, bias, spec.fmts, spec.relu, dict(spec.saturated))
    except PermdealError as e:
        msg = str(e)
        prefix = f"layer {spec.name}: "
        raise PermdealError(f"{where}: {msg[len(prefix):] if msg.startswith(prefix) else msg}") \
            from None


def layer_to_json(layer: QuantLayer) -> dict:
    """A layer's description for a manifest: shape, block size, formats, ReLU, saturation."""
    m, n = layer.shape
    return {"name": layer.name, "in": n, "out": m, "p": layer.matrix.p,
            "blocks": list(layer.matrix.blocks), "relu": layer.relu,
            "formats": layer.fmts.to_json(), "saturated": layer.saturated,
            "arrays": {"k": f"{layer.name}.k", "q": f"{layer.name}.q", "bias": f"{layer.name}.bias"}}


def layer_from_json(d: Any, k: npt.ArrayLike, q: npt.ArrayLike, bias: npt.ArrayLike,
                    what: str) -> QuantLayer:
    """Rebuild a :class:`QuantLayer` from its :func:`layer_to_json` description and arrays.

    Every field is checked (:func:`layer_spec_from_json`); errors start with ``what`` and the
    layer's name, once.
    """
    spec = layer_spec_from_json(d, what, arrays=False)
    return build_layer(spec, k, q, bias, f"{what} ({spec.name})")
