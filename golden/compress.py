"""Compress a float model to a quantized permuted-diagonal (or SmartDeal) model.

Each layer is projected onto the permuted-diagonal structure of its block size (docs/design.md 4.1,
max-energy projection), then quantized (docs/design.md section 3): weights and biases to formats of the
given widths whose fraction bits are either fixed by the user or fitted to the data so that nothing
saturates; activations to one format for every layer, or, with calibration inputs, to formats
fitted to the activations the float model produces on them.

:func:`compress_smartdeal` shares the format fitting: only the weights differ (SmartDeal codes,
rebuilt to the MAC's weight format by exact integer shift-add, docs/design.md 5.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .formats import Fixed, LayerFormats
from .model import FloatLayer, QuantLayer, QuantModel
from .permdiag import PermDiag

if TYPE_CHECKING:
    from .smartdeal_model import SmartDealModel


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


def expand_p(p: int | Sequence[int], names: Sequence[str]) -> list[int]:
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


def _activation_formats(layers, weights, spec, calibration, relus):
    """Activation formats of every layer boundary (``len(layers) + 1`` of them).

    ``weights`` are the float matrices the compressed layers compute with (``matvec(x)`` callables
    of ``(batch, n)`` inputs): calibration activations are those of the compressed float model.
    """
    if isinstance(spec.act, Fixed):
        return [spec.act] * (len(layers) + 1)
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
        for matvec, l, relu in zip(weights, layers, relus):
            y = matvec(acts[-1]) + l.bias
            acts.append(_relu(y) if relu else y)
    try:
        return [Fixed.fit(spec.act, a) for a in acts]
    except PermdealError as e:
        raise PermdealError(f"calibration activations: {e}") from None


def _layer_formats(l, wfmt, act_in, act_out, spec, max_terms):
    """Fit or check the bias format and build the layer's :class:`LayerFormats`.

    Returns ``(fmts, bias codes, bias saturations)``.
    """
    acc_frac = act_in.frac + wfmt.frac
    bfmt, bq, b_sat = _fit_or_fixed(spec.bias, l.bias, f"layer {l.name} biases",
                                    spec.allow_saturation, max_frac=acc_frac)
    try:
        fmts = LayerFormats(act_in, wfmt, bfmt, act_out, max(1, max_terms))
    except PermdealError as e:
        raise PermdealError(f"layer {l.name}: {e}") from None
    return fmts, bq, b_sat


def compress_permdiag(layers: Sequence[FloatLayer], p: int | Sequence[int],
                      spec: QuantSpec = QuantSpec(), calibration: npt.ArrayLike | None = None,
                      relu_last: bool = False) -> QuantModel:
    """Compress float layers (:class:`~permdeal.golden.model.FloatLayer`) to a :class:`QuantModel`.

    ``p`` is one block size or one per layer. ``calibration`` (batch x inputs, float) fits the
    activation formats when ``spec.act`` is a bit width. ReLU follows every layer but the last
    (and the last too with ``relu_last``).
    """
    ps = expand_p(p, [l.name for l in layers])
    mats = [PermDiag.from_dense(l.weight, pi) for l, pi in zip(layers, ps)]
    relus = [True] * (len(layers) - 1) + [relu_last]
    act_fmts = _activation_formats(layers, [m.matvec for m in mats], spec, calibration, relus)

    out = []
    for i, (l, mat, relu) in enumerate(zip(layers, mats, relus)):
        wfmt, wq, w_sat = _fit_or_fixed(spec.weight, mat.q, f"layer {l.name} weights",
                                        spec.allow_saturation)
        fmts, bq, b_sat = _layer_formats(l, wfmt, act_fmts[i], act_fmts[i + 1], spec,
                                         mat.max_terms)
        out.append(QuantLayer(l.name, mat.with_q(wq), bq, fmts, relu,
                              {"weight": w_sat, "bias": b_sat}))
    return QuantModel(out, method="permdiag")


def compress_smartdeal(layers: Sequence[FloatLayer], spec: QuantSpec = QuantSpec(),
                       calibration: npt.ArrayLike | None = None, relu_last: bool = False,
                       S: int = 3, E: int = 3, b_bits: int = 8, rows_per_block: int | None = None,
                       threshold: float | None = None, prune: float = 0.0,
                       prune_group: int = 1) -> SmartDealModel:
    """Compress float layers to a SmartDeal model (docs/design.md 5.1, 5.2):
    :class:`~permdeal.golden.smartdeal_model.SmartDealModel`.

    Every layer is decomposed (:func:`~permdeal.golden.smartdeal.decompose` with ``S``, ``E``,
    ``rows_per_block``, ``threshold``, ``prune``, ``prune_group``) and quantized (B to ``b_bits``
    bits). The MAC's weight format is ``spec.weight``: a fixed :class:`Fixed`, or a width whose
    fraction bits are fitted to the rebuilt weights (``Ce @ B`` of the quantized codes) so that
    none saturates; the integer weights are then :func:`~permdeal.golden.smartdeal.rebuild_int`'s,
    bit for bit. Biases and activations are quantized as :func:`compress_permdiag` does; the
    accumulator is sized for dot products of the layer's ``n`` inputs. Calibration activations are
    those of the rebuilt float weights.

    Each layer records ``saturated`` = ``{"weight": aligned weights, "bias": biases, "b": B
    codes}`` and ``report`` (:func:`~permdeal.golden.smartdeal.report`). A threshold or exponent
    range that leaves a non-zero layer with no Ce entry at all is an error.
    """
    from . import smartdeal as sd
    from .smartdeal_model import SmartDealLayer, SmartDealModel

    E, b_bits = sd._check_E(E), sd._check_b_bits(b_bits)
    S = integer(S, "chunk width S", 1, sd.MAX_S)
    if rows_per_block is not None:
        rows_per_block = integer(rows_per_block, "rows_per_block", 1)
    if not layers:
        raise PermdealError("a model needs at least one layer")
    relus = [True] * (len(layers) - 1) + [relu_last]
    encs, reports, rebuilt = [], [], []
    for l in layers:
        try:
            dec = sd.decompose(l.weight, S=S, E=E, rows_per_block=rows_per_block,
                               threshold=threshold, prune=prune, prune_group=prune_group)
            enc = sd.quantize(dec, b_bits)
            rep = sd.report(dec, l.weight, b_bits=b_bits, enc=enc)
        except PermdealError as e:
            raise PermdealError(f"layer {l.name}: {e}") from None
        if rep["ce_nonzeros"] == 0 and np.any(l.weight):
            raise PermdealError(
                f"layer {l.name}: threshold {dec.threshold:g} leaves every Ce entry zero "
                f"(exponents {dec.e_min}..{dec.e_max}, largest |weight| "
                f"{float(np.max(np.abs(l.weight))):g}); lower the threshold")
        encs.append(enc)
        reports.append(rep)
        rebuilt.append(sd.rebuild_float(enc))
    act_fmts = _activation_formats(layers, [(lambda x, W=W: x @ W.T) for W in rebuilt], spec,
                                   calibration, relus)

    out = []
    for i, (l, enc, rep, Wf, relu) in enumerate(zip(layers, encs, reports, rebuilt, relus)):
        # The format only: the codes are rebuild_int's (exact integer shift-add), not Wf's.
        wfmt, _, _ = _fit_or_fixed(spec.weight, Wf, f"layer {l.name} weights",
                                   spec.allow_saturation)
        try:
            _, w_sat = sd.rebuild_int(enc, wfmt)
        except PermdealError as e:
            raise PermdealError(f"layer {l.name}: {e}") from None
        if w_sat and not spec.allow_saturation:
            raise PermdealError(f"layer {l.name} weights: {w_sat} rebuilt weight(s) saturate in "
                                f"format {wfmt}; widen the format, lower its fraction bits, or "
                                "pass --allow-saturation")
        fmts, bq, b_sat = _layer_formats(l, wfmt, act_fmts[i], act_fmts[i + 1], spec,
                                         l.weight.shape[1])
        out.append(SmartDealLayer(l.name, enc, bq, fmts, relu,
                                  {"weight": w_sat, "bias": b_sat, "b": enc.b_saturated},
                                  report=rep))
    config = {"S": S, "E": E, "b_bits": b_bits, "rows_per_block": rows_per_block,
              "threshold": None if threshold is None else float(threshold),
              "prune": float(prune), "prune_group": int(prune_group)}
    return SmartDealModel(out, config=config)


def finetuned_smartdeal(dense, X: npt.ArrayLike, y: npt.ArrayLike, spec: QuantSpec, *,
                        prune: float, prune_group: int, epochs: int, seed: int, S: int = 3,
                        E: int = 3, b_bits: int = 8) -> SmartDealModel:
    """A trained MLP (``golden.train``) decomposed with ``prune`` of its Ce rows pruned in groups
    of ``prune_group`` outputs, fine-tuned ``epochs`` on ``X``, ``y`` with the structure kept
    (``golden.smartdeal_train.finetune``) and compressed to ``spec`` (calibrated on ``X``): the
    SmartDeal model whose pruned chunks the engine skips when ``prune_group`` is a multiple of its
    lanes."""
    from . import smartdeal_train as st
    tuned = st.finetune(st.smartdeal_mlp(dense, S, E, prune=prune, prune_group=prune_group),
                        X, y, epochs=epochs, seed=seed)
    layers = [FloatLayer(n, W, b) for n, W, b in tuned.to_mlp().dense_weights()]
    return compress_smartdeal(layers, spec, calibration=X, S=S, E=E, b_bits=b_bits, prune=prune,
                              prune_group=prune_group)
