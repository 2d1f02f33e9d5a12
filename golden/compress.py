"""Compress a float model to a quantized permuted-diagonal model.

Each layer is projected onto the permuted-diagonal structure of its block size (DESIGN.md 4.1,
max-energy projection), then quantized (DESIGN.md section 3): weights and biases to formats of the
given widths whose fraction bits are either fixed by the user or fitted to the data so that nothing
saturates; activations to one format for every layer, or, with calibration inputs, to formats
fitted to the activations the float model produces on them.
"""

from dataclasses import dataclass

import numpy as np

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .formats import Fixed, LayerFormats
from .model import QuantLayer, QuantModel
from .permdiag import PermDiag


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: a fixed ``Fixed`` or a bit width to fit the fraction bits to.

    ``act`` is the activation format (or bits, fitted to calibration data); ``weight`` and ``bias``
    likewise for weights and biases (fitted per layer). A fixed format that saturates a stored value
    is an error unless ``allow_saturation``.
    """

    act: Fixed | int = Fixed(16, 8)
    weight: Fixed | int = 16
    bias: Fixed | int = 16
    allow_saturation: bool = False


def expand_p(p, names):
    """Block size of every layer (named ``names``) from one ``p`` or one per layer."""
    if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
        ps = [p] * len(names)
    else:
        try:
            ps = list(p)
        except TypeError:
            raise PermdealError(f"block size p must be an integer or one per layer, not {p!r}") from None
    if len(ps) != len(names):
        raise PermdealError(f"got {len(ps)} block sizes p for {len(names)} layers")
    return [integer(v, f"block size p of {name}", 1) for name, v in zip(names, ps)]


def _relu(x):
    return np.maximum(x, 0.0)


def _fit_or_fixed(spec, values, what, allow_saturation, max_frac=None):
    if isinstance(spec, Fixed):
        codes, n_sat = spec.quantize(values)
        if n_sat and not allow_saturation:
            raise PermdealError(f"{what}: {n_sat} value(s) saturate in format {spec}; widen the "
                                "format, lower its fraction bits, or pass --allow-saturation")
        return spec, codes, n_sat
    try:
        fmt = Fixed.fit(spec, values)
    except PermdealError as e:
        raise PermdealError(f"{what}: {e}") from None
    if max_frac is not None and fmt.frac > max_frac:
        fmt = Fixed(spec, max_frac)
    codes, n_sat = fmt.quantize(values)
    return fmt, codes, n_sat


def compress_permdiag(layers, p, spec=QuantSpec(), calibration=None, relu_last=False):
    """Compress float layers (:class:`~permdeal.golden.model.FloatLayer`) to a :class:`QuantModel`.

    ``p`` is one block size or one per layer. ``calibration`` (batch x inputs, float) fits the
    activation formats when ``spec.act`` is a bit width. ReLU follows every layer but the last
    (and the last too with ``relu_last``).
    """
    ps = expand_p(p, [l.name for l in layers])
    mats = [PermDiag.from_dense(l.weight, pi) for l, pi in zip(layers, ps)]
    relus = [True] * (len(layers) - 1) + [relu_last]

    if isinstance(spec.act, Fixed):
        act_fmts = [spec.act] * (len(layers) + 1)
    else:
        if calibration is None:
            raise PermdealError("activation formats given as a bit width need calibration inputs")
        x = np.asarray(calibration, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != layers[0].weight.shape[1] or x.shape[0] == 0:
            raise PermdealError(f"calibration inputs must be (batch, {layers[0].weight.shape[1]}) "
                                f"with batch >= 1, not {x.shape}")
        if not np.all(np.isfinite(x)):
            raise PermdealError("calibration inputs hold NaN or infinite values")
        acts = [x]
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up in Fixed.fit
            for mat, l, relu in zip(mats, layers, relus):
                y = mat.matvec(acts[-1]) + l.bias
                acts.append(_relu(y) if relu else y)
        try:
            act_fmts = [Fixed.fit(spec.act, a) for a in acts]
        except PermdealError as e:
            raise PermdealError(f"calibration activations: {e}") from None

    out = []
    for i, (l, mat, relu) in enumerate(zip(layers, mats, relus)):
        wfmt, wq, w_sat = _fit_or_fixed(spec.weight, mat.q, f"layer {l.name} weights",
                                        spec.allow_saturation)
        acc_frac = act_fmts[i].frac + wfmt.frac
        bfmt, bq, b_sat = _fit_or_fixed(spec.bias, l.bias, f"layer {l.name} biases",
                                        spec.allow_saturation, max_frac=acc_frac)
        try:
            fmts = LayerFormats(act_fmts[i], wfmt, bfmt, act_fmts[i + 1], max(1, mat.max_terms))
        except PermdealError as e:
            raise PermdealError(f"layer {l.name}: {e}") from None
        out.append(QuantLayer(l.name, mat.with_q(wq), bq, fmts, relu,
                              {"weight": w_sat, "bias": b_sat}))
    return QuantModel(out, method="permdiag")
