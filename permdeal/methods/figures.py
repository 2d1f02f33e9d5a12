"""Counting helpers shared by the methods' ``compare`` figures."""

from __future__ import annotations

import numpy as np

from permdeal.golden.permdiag import PermDiag
from permdeal.golden.smartdeal_train import DENSE_BITS
from permdeal.golden.train import MLP
from permdeal.tables import pct

__all__ = ["WEIGHT_BITS", "dense_mlp", "mapping", "mean", "pct", "tuned_note"]

#: Weight width of the digital formats (dense, PD, block-circulant, EIE's codebook entries).
WEIGHT_BITS = DENSE_BITS


def mean(values) -> float:
    return float(np.mean(values))


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
