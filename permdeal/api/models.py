"""The API of models: data, training, compression with any registered method, reading and
checking folders, ROM images, the cycle model and accuracy.

Every function here serves the command line and Python alike; none prints. Errors are
:class:`~permdeal.errors.PermdealError` with a message naming the parameter (as its flag,
``--inputs``, where the command line and the API share the check).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import atomic, methods
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden import train as _train
from permdeal.golden import float_model as _float_model
from permdeal.golden import onnx_import as _onnx
from permdeal.golden.compress import QuantSpec
from permdeal.golden.formats import MAX_BITS, Fixed
from permdeal.golden.manifest import read_manifest
from permdeal.tables import table
from permdeal.api.settings import user_format
from permdeal.golden.model import (MODEL_KIND, FloatLayer, QuantModel, check_labels,
                                   load_float_model, sha256_file)

#: Activation width when none is given (its fraction bits 8 without calibration data).
DEFAULT_ACT_BITS = 16


def fresh(prefix: str) -> Path:
    """A new folder name inside a fresh temporary folder (for outputs the caller did not name)."""
    return Path(tempfile.mkdtemp(prefix=f"permdeal-{prefix}-")) / prefix


# -- arrays and input codes ------------------------------------------------------------------

def load_array(path: str | Path, what: str) -> np.ndarray:
    """Load a numeric ``.npy`` array with a clear error naming ``what`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise PermdealError(f"{what} {path}: no such file")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise PermdealError(f"{what} {path}: not a readable .npy file ({e})") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise PermdealError(f"{what} {path}: is an .npz archive, expected one .npy array")
    if a.dtype.kind not in "iuf":
        raise PermdealError(f"{what} {path}: holds {a.dtype} values, expected integers or floats")
    return a


def as_array(x: Any, what: str) -> np.ndarray:
    """``x`` as a numeric array; a path is read as a ``.npy`` file."""
    if isinstance(x, (str, Path)):
        return load_array(x, what)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise PermdealError(f"{what}: not an array ({e})") from None
    if a.dtype.kind not in "iuf":
        raise PermdealError(f"{what}: holds {a.dtype} values, expected integers or floats")
    return a


@dataclass(frozen=True)
class Codes:
    """Input codes of a model (``codes``, batch x inputs) and how many float inputs saturated
    on the way (``saturated``)."""

    codes: np.ndarray
    saturated: int


def input_codes(model: Any, x: Any, what: str) -> Codes:
    """Input codes from a (batch, n) array of floats (quantized) or of integer codes of the
    model's input format, or a ``.npy`` path holding either."""
    x = as_array(x, what)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise PermdealError(f"{what}: expected (batch, {model.n_inputs}) inputs, got shape "
                            f"{x.shape}")
    if x.shape[0] == 0:
        raise PermdealError(f"{what}: holds no inputs")
    if np.issubdtype(x.dtype, np.integer):
        fmt = model.input_format
        if x.min() < fmt.min or x.max() > fmt.max:
            raise PermdealError(f"{what}: integer inputs must be codes of {fmt} "
                                f"({fmt.min}..{fmt.max}), found {x.min()}..{x.max()}")
        return Codes(x.astype(np.int64), 0)
    try:
        codes, n_sat = model.quantize_input(x)
    except PermdealError as e:
        raise PermdealError(f"{what}: {e}") from None
    return Codes(codes, int(n_sat))


# -- data and training -----------------------------------------------------------------------

def digits(seed: int = 0):
    """scikit-learn's 8x8 handwritten digits, pixels in [0, 1], split as every command splits it.

    Returns ``(X_train, y_train, X_test, y_test)`` (the test split is 450 images)::

        X_tr, y_tr, X_te, y_te = digits()
    """
    return _train.load_digits_split(seed)


@dataclass(frozen=True)
class Trained:
    """:func:`train_digits`' result: the float ``model`` and its test accuracies (``dense``,
    and ``finetuned`` after projection, or None)."""

    model: Any
    sizes: list
    ps: list
    dense: float
    finetuned: float | None


def train_digits_run(hidden=(128, 64), p=1, *, epochs=40, finetune_epochs=30, seed=0,
                     output=None, force=False) -> Trained:
    """:func:`train_digits` with the accuracies on the test split."""
    if output is not None:
        atomic.check_new_file(output, force)
    hidden = list(_train._ints("hidden size", hidden))
    X_tr, y_tr, X_te, y_te = _train.load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    ps = _train._per_layer(p, len(sizes) - 1)
    model = _train.train(_train.init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, seed=seed)
    dense = _train.accuracy(model, X_te, y_te)
    tuned = None
    if any(v > 1 for v in ps):
        model = _train.train(_train.project(model, ps), X_tr, y_tr, epochs=finetune_epochs,
                             seed=seed)
        tuned = _train.accuracy(model, X_te, y_te)
    if output is not None:
        _train.save_npz(model, output)
    return Trained(model, sizes, ps, dense, tuned)


def train_digits(hidden=(128, 64), p=1, *, epochs=40, finetune_epochs=30, seed=0, output=None,
                 force=False):
    """Train an MLP on the digits (``permdeal train``): dense, then, for ``p > 1`` (one block size
    or one per layer), projected to permuted-diagonal form and fine-tuned.

    Returns the float :class:`~permdeal.golden.train.MLP`; with ``output`` also writes it as a
    float-model ``.npz`` (refusing to overwrite a file unless ``force``)::

        mlp = train_digits(hidden=(64,), p=4, output="build/mlp.npz")
        evaluate(mlp)   # float test accuracy
    """
    return train_digits_run(hidden, p, epochs=epochs, finetune_epochs=finetune_epochs, seed=seed,
                            output=output, force=force).model


@dataclass(frozen=True)
class TrainedCNN:
    """:func:`train_cnn_run`'s result: the float ``layers``, their ``dense`` test accuracy and
    one phrase per layer (``describe``)."""

    layers: list
    dense: float

    @property
    def describe(self) -> list[str]:
        return [f"{l.name} {'x'.join(map(str, l.weight.shape))}"
                + (f" + {l.pool.kind} pool" if l.pool else "") for l in self.layers]


def train_cnn_run(*, epochs: int | None = None, seed: int = 0, output=None,
                  force: bool = False) -> TrainedCNN:
    """Train the digits CNN dense (``permdeal train --cnn``; :func:`permdeal.golden.conv_train.
    train_cnn`, ``epochs`` default 15) and write it to ``output``: an ONNX file in the shape
    ``torch.onnx.export`` writes (by the ``.onnx`` suffix) or a float-model ``.npz``."""
    from permdeal.golden import conv_train, onnx_export
    if output is not None:
        atomic.check_new_file(output, force)
    layers = conv_train.train_cnn(seed, 15 if epochs is None else integer(epochs, "--epochs", 1))
    _, _, X_te, y_te = _train.load_digits_split(seed)
    if output is not None:
        (onnx_export.export if is_onnx(output) else _float_model.save)(layers, output)
    return TrainedCNN(layers, conv_train.accuracy(layers, X_te, y_te))


def accuracy_study(ps=(2, 4, 8), hidden=(128, 64), seed=0, dense_last=False) -> list[dict]:
    """``permdeal accuracy``: digits accuracy, dense against permuted-diagonal, per ``p``."""
    return _train.digits_study(ps=list(ps), hidden=list(hidden), seed=seed,
                               compress_last=not dense_last)


# -- compression -----------------------------------------------------------------------------

def is_onnx(path: Any) -> bool:
    """Whether ``path`` names an ONNX file (by its ``.onnx`` suffix)."""
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() == ".onnx"


def read_float_model(path: str | Path) -> list:
    """The float layers of a float-model ``.npz`` or an ONNX file (by the suffix)."""
    return _onnx.import_model(path) if is_onnx(path) else load_float_model(path)


@dataclass(frozen=True)
class Imported:
    """:func:`import_onnx`'s result: the float ``layers`` and the file written (``output``)."""

    layers: list
    output: Path

    def table(self) -> str:
        """One line per layer: name, kind, weight shape, geometry, pooling, output shape."""
        rows = []
        for l in self.layers:
            kind = "conv" if l.is_conv else "fc"
            geo = (f"stride {'x'.join(map(str, l.conv.stride))} pad "
                   f"{','.join(map(str, l.conv.padding))}") if l.is_conv else ""
            pool = f"{l.pool.kind}pool {'x'.join(map(str, l.pool.size))}" if l.pool else ""
            rows.append([l.name, kind, "x".join(map(str, l.weight.shape)), geo, pool,
                         "x".join(map(str, l.out_shape))])
        return table(["layer", "kind", "weights", "geometry", "pooling", "output"], rows, "llrllr")


def import_onnx(model: str | Path, output: str | Path, force: bool = False) -> Imported:
    """Import an ONNX file as a float-model ``.npz`` (``permdeal import``): the layers of
    :func:`permdeal.golden.onnx_import.import_model`, written atomically to ``output`` (an
    existing file only with ``force``, never the input)::

        import_onnx("net.onnx", "build/net.npz")
    """
    atomic.check_new_file(output, force, inputs=[model])
    layers = _onnx.import_model(model)
    _float_model.save(layers, output)
    return Imported(layers, Path(output))


def float_layers(model: Any) -> tuple[list, dict | None]:
    """Float layers and the source record of a path (``.npz`` or ``.onnx``), an MLP,
    FloatLayers or (W, b) pairs."""
    if isinstance(model, (str, Path)):
        return read_float_model(model), {"file": Path(model).name, "sha256": sha256_file(model)}
    if isinstance(model, _train.MLP):
        return [FloatLayer(n, W, b) for n, W, b in model.dense_weights()], None
    if isinstance(model, (list, tuple)) and model:
        if all(isinstance(l, FloatLayer) for l in model):
            return list(model), None
        if all(isinstance(l, (list, tuple)) and len(l) == 2 for l in model):
            return _pairs(model), None
    raise PermdealError(
        "model must be a float-model .npz path, a permdeal.golden.train.MLP, a list of "
        f"FloatLayer or a list of (weight (out x in), bias) pairs, not {type(model).__name__}")


def _pairs(pairs) -> list:
    """FloatLayers ``fc1, fc2, ...`` of ``(weight (out x in), bias)`` pairs, checked as the
    ``.npz`` reader checks a float model."""
    out = []
    for i, (W, b) in enumerate(pairs):
        name = f"fc{i + 1}"
        W, b = as_array(W, f"model: {name} weight"), as_array(b, f"model: {name} bias")
        if W.ndim != 2 or 0 in W.shape:
            raise PermdealError(f"model: {name} weight must be a non-empty 2-D (out x in) array, "
                                f"not shape {W.shape}")
        if b.shape != (W.shape[0],):
            raise PermdealError(f"model: {name} bias has shape {b.shape}, expected "
                                f"({W.shape[0]},) to match its weight {W.shape}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise PermdealError(f"model: {name} holds NaN or infinite values")
        if out and out[-1].weight.shape[0] != W.shape[1]:
            raise PermdealError(f"model: layers do not chain: fc{i} gives "
                                f"{out[-1].weight.shape[0]} outputs but {name} takes "
                                f"{W.shape[1]} inputs")
        out.append(FloatLayer(name, W.astype(np.float64), b.astype(np.float64)))
    return out


def number_format(value: Any, what: str) -> Fixed | int:
    """A ``Fixed``, ``"BITS:FRAC"`` text or a bit width (``int``) for a :class:`QuantSpec`."""
    if isinstance(value, Fixed):
        return value
    if isinstance(value, str):
        return user_format(value, what)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return integer(value, f"{what} bits", 2, MAX_BITS)
    raise PermdealError(f"{what} must be a Fixed, 'BITS:FRAC' or a bit width, not {value!r}")


@dataclass(frozen=True)
class Compressed:
    """A compression's ``model``, its ``method`` and what was written (``wrote``; None without
    an output folder)."""

    model: Any
    method: methods.Method
    wrote: str | None


def compress(model: Any, method: str = "permdiag", p: Any = None, *, calibration: Any = None,
             act: Any = None, weight: Any = 16, bias: Any = 16, allow_saturation: bool = False,
             relu_last: bool = False, output: Any = None, **options: Any) -> Any:
    """Compress a float model (``permdeal compress``) with a registered method.

    ``model``: a float-model ``.npz`` or ``.onnx`` path, an
    :class:`~permdeal.golden.train.MLP`, a list of :class:`~permdeal.golden.model.FloatLayer` or
    of ``(weight, bias)`` pairs; a network with convolutions (methods ``permdiag`` and
    ``smartdeal``) gives a :class:`~permdeal.golden.conv_model.ConvNet`, written as
    docs/design.md 14.6 says. ``method``: a
    name of :func:`permdeal.methods.names` that compresses (``"permdiag"`` needs ``p``, one block
    size or one per layer; ``"smartdeal"`` takes ``S``, ``E``, ``b_bits``, ``rows_per_block``,
    ``threshold``, ``prune``, ``prune_group``). ``calibration``: float inputs (array or ``.npy``)
    that the activation formats are fitted to. ``act``, ``weight``, ``bias``: a ``Fixed``,
    ``"BITS:FRAC"`` or a bit width (fraction bits fitted); ``act`` defaults to 16 bits fitted
    with calibration, else ``16:8``. ``output``: also write the compressed-model folder there.
    Returns the method's model (a :class:`~permdeal.golden.model.QuantModel` for both built-in
    methods)::

        X_tr = digits()[0]
        pd8 = compress("mlp.npz", p=8, calibration=X_tr)
        sd = compress("mlp.npz", method="smartdeal", calibration=X_tr)
    """
    return compress_run(model, method, p, calibration=calibration, act=act, weight=weight,
                        bias=bias, allow_saturation=allow_saturation, relu_last=relu_last,
                        output=output, **options).model


def compress_run(model: Any, method: str = "permdiag", p: Any = None, *, calibration: Any = None,
                 act: Any = None, weight: Any = 16, bias: Any = 16,
                 allow_saturation: bool = False, relu_last: bool = False, output: Any = None,
                 **options: Any) -> Compressed:
    """:func:`compress`, returning the :class:`Compressed` record the command line prints."""
    m = methods.get(method, compressing=True)
    if p is not None:
        options["p"] = p
    given = {k: v for k, v in options.items() if v is not None}
    own = {o.name for o in m.options}
    for key in given:
        if key not in own:
            owners = [x.name for x in methods.methods() if key in {o.name for o in x.options}]
            if not owners:
                raise PermdealError(f"compress: unknown option {key!r}")
            what = " (the permuted-diagonal block size)" if key == "p" else ""
            raise PermdealError(f"{key}{what} (--{key.replace('_', '-')}) does not apply to "
                                f"method {method!r}; it applies only to method "
                                + " or ".join(map(repr, owners)))
    layers, source = float_layers(model)
    if not m.takes_conv:
        _float_model.fc_only(layers, f"compress --method {method}")
    inputs = [model] if isinstance(model, (str, Path)) else []
    cal = None
    if calibration is not None:
        cal = as_array(calibration, "calibration")
        if isinstance(calibration, (str, Path)):
            inputs.append(calibration)
    if act is None:
        act = DEFAULT_ACT_BITS if cal is not None else Fixed(DEFAULT_ACT_BITS, 8)
    spec = QuantSpec(act=number_format(act, "act"), weight=number_format(weight, "weight"),
                     bias=number_format(bias, "bias"), allow_saturation=bool(allow_saturation))
    out = m.compress(layers, spec, calibration=cal, relu_last=relu_last, **given)
    wrote = None
    if output is not None:
        with atomic.output_dir(output, inputs=inputs) as tmp:
            wrote = m.write_model(out, tmp, source)
    return Compressed(out, m, wrote)


def method_of(model: Any) -> methods.Method:
    """The registered method of a compressed model object (its ``method`` attribute)."""
    return methods.get(getattr(model, "method", None) or "")


# -- folders ---------------------------------------------------------------------------------

def read_folder_manifest(folder: str | Path, kinds: tuple | None = None) -> dict:
    """The manifest of a permdeal folder (any kind a registered method owns, or ``kinds``)."""
    path = Path(folder) / atomic.MANIFEST_NAME
    if kinds is None:
        kinds = tuple(sorted({MODEL_KIND, *(k for m in methods.methods()
                                            for k in m.folder_kinds)}))
    return read_manifest(path, kinds)


def load(folder: str | Path) -> Any:
    """Read a compressed-model folder of any registered method::

        model = load("build/compressed")
    """
    man = read_manifest(Path(folder) / atomic.MANIFEST_NAME, MODEL_KIND)
    return methods.owner(man, str(folder)).load(folder)


@dataclass(frozen=True)
class Checked:
    """:func:`check`'s result: the folder's ``model``, its ``method`` and ``what`` it holds."""

    model: Any
    method: methods.Method
    what: str
    folder: Path | None = None
    manifest: dict | None = None

    def table(self) -> str:
        return self.method.check_table(self.folder, self.manifest or {}, self.model)


def check(folder: str | Path) -> Checked:
    """Check a compressed-model, ROM-image or design folder against its manifest (``permdeal
    check``): the method that wrote it reads and verifies every file."""
    folder = Path(folder)
    man = read_folder_manifest(folder)
    m = methods.owner(man, str(folder / atomic.MANIFEST_NAME))
    model, what = m.check(folder, man)
    return Checked(model, m, what, folder, man)


def compressed(model: Any, what: str = "compressed") -> Any:
    """A compressed model object from an object or a folder."""
    if isinstance(model, (str, Path)):
        return load(model)
    if isinstance(model, QuantModel):
        return model
    raise PermdealError(f"{what} must be a compressed model (from compress or load) or its "
                        f"folder, not {type(model).__name__}")


def write_rom(model: Any, output: str | Path, *, pes: int | None = None,
              lanes: int | None = None, scan_width: int | None = None,
              groups: int | str | None = None) -> tuple[dict, str]:
    """Write the ROM images of a compressed model (``permdeal rom``) into the new folder
    ``output``: ``(ROM manifest, summary)``. The method decides the layout (per PE and lane
    for permuted-diagonal, per layer for SmartDeal) and which of ``pes``, ``lanes`` and
    ``scan_width`` it takes."""
    inputs = [model] if isinstance(model, (str, Path)) else []
    model = compressed(model)
    with atomic.output_dir(output, inputs=inputs) as tmp:
        return method_of(model).write_rom(model, tmp, pes=pes, lanes=lanes,
                                          scan_width=scan_width, groups=groups)


def cycles_table(model: Any, x: Any = None, *, pes: int | None = None, lanes: int | None = None,
                 scan_width: int | None = None, groups: int | str | None = None,
                 arch: str | None = None, batch: int | None = None,
                 what: str = "--inputs") -> tuple[str, int]:
    """The cycle model's table of a compressed model on inputs ``x`` (``permdeal cycles``) and
    how many inputs saturated; ``arch`` and ``batch`` choose a SmartDeal model's hardware."""
    model = compressed(model)
    codes = None if x is None else input_codes(model, x, what)
    text = method_of(model).cycles(model, None if codes is None else codes.codes, pes=pes,
                                   lanes=lanes, scan_width=scan_width, groups=groups,
                                   arch=arch, batch=batch)
    return text, 0 if codes is None else codes.saturated


def evaluate(model: Any, x: Any = None, labels: Any = None, seed: int = 0) -> float:
    """Test accuracy (``permdeal eval``): bit-exact golden fixed point for a compressed model,
    float for an :class:`~permdeal.golden.train.MLP`. Without ``x`` and ``labels``, the digits
    test split of ``seed``::

        evaluate(compress(mlp, p=4, calibration=digits()[0]))   # e.g. 0.97
    """
    if (x is None) != (labels is None):
        raise PermdealError("give both x and labels (one class index per input), or neither")
    what = "x"
    if x is None:
        _, _, x, labels = _train.load_digits_split(seed)
        what = "inputs"
    y = as_array(labels, "labels")
    if isinstance(model, _train.MLP):
        return _train.accuracy(model, as_array(x, what), y)
    model = compressed(model, "model")
    codes = input_codes(model, x, what).codes
    y = check_labels(y, len(codes), model.layers[-1].shape[0])
    return float(np.mean(np.argmax(model.forward(codes), axis=1) == y))
