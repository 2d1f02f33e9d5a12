"""Float models in, quantized permuted-diagonal models out, and their bit-exact inference.

A *float model* is an ``.npz`` holding ``NAME.weight`` (out x in) and ``NAME.bias`` arrays in file
order, as ``numpy.savez(f, **torch_model.state_dict())`` writes them; layers chain (each one's
input count is the previous one's output count) with ReLU between them.

A *compressed model* is a folder with ``model.npz`` (integer arrays ``NAME.k``, ``NAME.q``,
``NAME.bias``) and ``manifest.json`` (shapes, block sizes, number formats, checksums): enough for a
third party to recompute every output, as :meth:`QuantModel.forward` does.
"""

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from .formats import LayerFormats, writeback
from .permdiag import PermDiag

MODEL_KIND = "permdeal-model"
MODEL_FORMAT_VERSION = 1
MODEL_ARRAYS = "model.npz"

_KEY = re.compile(r"(?P<name>.+)\.(?P<kind>weight|bias)")


def sha256_file(path):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_npz(path):
    path = Path(path)
    if not path.is_file():
        raise PermdealError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise PermdealError(f"{path}: not a readable .npz file ({e})") from None


# -- float models ---------------------------------------------------------------------------------

@dataclass
class FloatLayer:
    """One fully connected layer of a float model: ``y = weight @ x + bias``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray


def load_float_model(path):
    """Read a float model ``.npz`` and check it: names, shapes, chaining, finiteness.

    A layer without ``NAME.bias`` gets a zero bias (``torch.nn.Linear(bias=False)``).
    """
    arrays = _load_npz(path)
    layers = {}
    for key, value in arrays.items():
        m = _KEY.fullmatch(key)
        if not m:
            raise PermdealError(f"{path}: unexpected array {key!r}; a model holds only "
                                "NAME.weight (out x in) and NAME.bias arrays")
        layer = layers.setdefault(m["name"], {})
        layer[m["kind"]] = value
    if not layers:
        raise PermdealError(f"{path}: holds no layers")
    out = []
    for name, parts in layers.items():
        if "weight" not in parts:
            raise PermdealError(f"{path}: layer {name!r} has a bias but no {name}.weight")
        w = parts["weight"]
        if w.ndim != 2 or 0 in w.shape:
            raise PermdealError(f"{path}: {name}.weight must be a non-empty 2-D (out x in) array, "
                                f"not shape {w.shape}")
        if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
            raise PermdealError(f"{path}: {name}.weight has non-numeric dtype {w.dtype}")
        b = parts.get("bias", np.zeros(w.shape[0]))
        if b.shape != (w.shape[0],):
            raise PermdealError(f"{path}: {name}.bias has shape {b.shape}, expected ({w.shape[0]},) "
                                f"to match {name}.weight {w.shape}")
        for what, a in (("weight", w), ("bias", b)):
            bad = np.count_nonzero(~np.isfinite(a.astype(np.float64)))
            if bad:
                raise PermdealError(f"{path}: {name}.{what} holds {bad} NaN or infinite value(s)")
        if out and out[-1].weight.shape[0] != w.shape[1]:
            prev = out[-1]
            raise PermdealError(
                f"{path}: layers do not chain: {prev.name} gives {prev.weight.shape[0]} outputs but "
                f"{name}.weight takes {w.shape[1]} inputs")
        out.append(FloatLayer(name, w.astype(np.float64), b.astype(np.float64)))
    return out


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
    def shape(self):
        return self.matrix.shape

    def forward(self, x):
        """Integer codes in (``fmts.act``), integer codes out (``fmts.out``), bit-exact."""
        return writeback(self.matrix.int_matvec(x), self.bias, self.fmts, self.relu)


class QuantModel:
    """A chain of :class:`QuantLayer`; each layer's output format is the next one's input format."""

    def __init__(self, layers, method="permdiag"):
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
    def input_format(self):
        return self.layers[0].fmts.act

    @property
    def output_format(self):
        return self.layers[-1].fmts.out

    @property
    def n_inputs(self):
        return self.layers[0].shape[1]

    def quantize_input(self, x):
        """Float inputs to input codes: ``(codes, n_saturated)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != (self.n_inputs,):
            raise PermdealError(f"inputs have {x.shape[-1] if x.ndim else 0} values per vector, "
                                f"the model takes {self.n_inputs}")
        return self.input_format.quantize(x)

    def forward(self, x, trace=False):
        """Bit-exact inference on input codes (``(n,)`` or ``(batch, n)``).

        Returns the last layer's output codes, or with ``trace`` the list of every layer's input
        and output codes (``[x, y1, y2, ...]``).
        """
        acts = [np.asarray(x, dtype=np.int64)]
        for layer in self.layers:
            acts.append(layer.forward(acts[-1]))
        return acts if trace else acts[-1]

    def predict(self, x):
        """Float inputs in, float outputs out (through the integer model)."""
        codes, _ = self.quantize_input(x)
        return self.output_format.to_float(self.forward(codes))

    # -- files ---------------------------------------------------------------------------------

    def manifest(self, arrays_sha256, source=None):
        """The ``manifest.json`` content for this model."""
        return {
            "kind": MODEL_KIND, "format_version": MODEL_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": self.method,
            "source": source, "input_format": self.input_format.to_json(),
            "output_format": self.output_format.to_json(),
            "layers": [layer_to_json(l) for l in self.layers],
            "files": {MODEL_ARRAYS: {"sha256": arrays_sha256}},
        }

    def write(self, folder, source=None):
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
    def read(cls, folder):
        """Read a compressed-model folder, checking the manifest against ``model.npz``."""
        folder = Path(folder)
        man_path = folder / atomic.MANIFEST_NAME
        man = read_manifest(man_path, MODEL_KIND)
        arr_path = folder / MODEL_ARRAYS
        if not arr_path.is_file():
            raise PermdealError(f"{arr_path}: missing (named by {man_path})")
        want = man.get("files", {}).get(MODEL_ARRAYS, {}).get("sha256")
        if sha256_file(arr_path) != want:
            raise PermdealError(f"{arr_path}: sha256 does not match {man_path}; the file was changed "
                                "or truncated")
        arrays = _load_npz(arr_path)
        layers = []
        for i, d in enumerate(_field(man, "layers", man_path)):
            try:
                a = d["arrays"]
                parts = [arrays[a[x]] for x in ("k", "q", "bias")]
            except (KeyError, TypeError) as e:
                raise PermdealError(f"{man_path}: layer {i}: missing array {e}") from None
            layers.append(layer_from_json(d, *parts, what=f"{man_path}: layer {i}"))
        return cls(layers, man.get("method", "permdiag"))


def _field(obj, key, where):
    try:
        return obj[key]
    except (KeyError, TypeError):
        raise PermdealError(f"{where}: missing field {key!r}") from None


def layer_to_json(layer):
    """A layer's description for a manifest: shape, block size, formats, ReLU, saturation."""
    m, n = layer.shape
    return {"name": layer.name, "in": n, "out": m, "p": layer.matrix.p,
            "blocks": list(layer.matrix.blocks), "relu": layer.relu,
            "formats": layer.fmts.to_json(), "saturated": layer.saturated,
            "arrays": {"k": f"{layer.name}.k", "q": f"{layer.name}.q", "bias": f"{layer.name}.bias"}}


def layer_from_json(d, k, q, bias, what):
    """Rebuild a :class:`QuantLayer` from its :func:`layer_to_json` description and arrays."""
    what = f"{what} ({d.get('name', '?') if isinstance(d, dict) else '?'})"
    try:
        fmts = LayerFormats.from_json(d["formats"], what)
        mat = PermDiag((d["out"], d["in"]), d["p"], k, q)
        return QuantLayer(d["name"], mat, bias, fmts, bool(d["relu"]), d.get("saturated", {}))
    except PermdealError as e:
        raise PermdealError(f"{what}: {e}") from None
    except (KeyError, TypeError) as e:
        raise PermdealError(f"{what}: missing or malformed field {e}") from None


def read_manifest(path, kind):
    """Load a ``manifest.json`` of the given kind (or one of a tuple of kinds), with a clear error
    for anything else."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    path = Path(path)
    if not path.is_file():
        raise PermdealError(f"{path}: missing; is {path.parent} a permdeal output folder?")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PermdealError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise PermdealError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(man, dict) or man.get("kind") not in kinds:
        raise PermdealError(f"{path}: not a {' or '.join(kinds)} manifest (kind is "
                            f"{man.get('kind') if isinstance(man, dict) else None!r})")
    return man
