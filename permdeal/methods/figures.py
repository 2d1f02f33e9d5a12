"""Counting helpers shared by the methods' ``compare`` figures."""

from __future__ import annotations

import numpy as np

from permdeal.golden.permdiag import PermDiag
from permdeal.golden.smartdeal_train import DENSE_BITS
from permdeal.golden.train import MLP

from permdeal.tables import pct

from .base import Built, flag_context
from .energy import Count

__all__ = ["WEIGHT_BITS", "Count", "dense_mlp", "energy", "mapping", "mean", "pct",
           "projected_build", "tuned_note"]

#: Weight width of the digital formats (dense, PD, block-circulant, EIE's codebook entries).
WEIGHT_BITS = DENSE_BITS


def mean(values) -> float:
    return float(np.mean(values))


def energy(count: Count, st) -> dict:
    """The counted-energy figures of a layer's events ``count`` with the weights where the
    comparison settings ``st`` put them (:mod:`.energy`)."""
    e = count.energy(st.weight_memory)
    return {"energy_pj": e["total"], "energy": e, "energy_events": count.to_json()}


def mapping(mp, cfg) -> dict:
    """The crossbar figures of a :class:`golden.crossbar.Mapping` on the crossbars ``cfg``."""
    lossless = cfg.lossless_bits(min(mp.rows, cfg.rows))
    return {"crossbars": mp.crossbars, "crossbar_reads": mp.cycles,
            "used_cells": mp.used_cells, "total_cells": mp.total_cells,
            "adc_lossless_bits": lossless, "adc_exact": cfg.adc_bits >= lossless,
            "mapping": mp.to_json()}


def tuned_note(label: str, before: str, acc: dict) -> str:
    """``LABEL before X% -> fine-tuned Y%``: a method's accuracy before and after fine-tuning."""
    return (f"{label} {before.replace('_', '+')} {pct(acc[before])} -> fine-tuned "
            f"{pct(acc['float'])}")


def dense_mlp(layers) -> MLP:
    """The dense :class:`MLP` of ``[(W, b), ...]`` float pairs."""
    return MLP(tuple(PermDiag.from_dense(np.asarray(W, np.float64), 1) for W, _ in layers),
               tuple(np.asarray(b, np.float64) for _, b in layers))


def projected_build(net, data, st, flag: str, project, fine_tune, accuracy, layers) -> Built:
    """A structured method on one net of a comparison: ``project(model)`` (errors named by
    ``flag``), fine-tuned with ``fine_tune(model, X, y, epochs=, seed=)`` where there is data and
    epochs, its ``accuracy(model, X, y)`` before and after; ``layers(model)`` are its per-layer
    objects (each with ``to_dense()``)."""
    with flag_context(flag):
        proj = project(net.model)
    ft = data is not None and st.finetune_epochs > 0
    tuned = fine_tune(proj, data[0], data[1], epochs=st.finetune_epochs, seed=st.seed) \
        if ft else proj
    acc = None
    if data:
        acc = {"projected": accuracy(proj, data[2], data[3]),
               "float": accuracy(tuned, data[2], data[3]), "finetuned": ft}
    objs = list(layers(tuned))
    return Built(objs, [w.to_dense() for w in objs], tuned.biases, acc)
