"""Human-readable tables of compressed models and their cycle-model runs (the JSON files carry the
same figures for machines)."""

from collections.abc import Sequence

import numpy as np

from permdeal.golden.cycles import EngineConfig, InferenceCycles
from permdeal.golden.model import QuantModel
from permdeal.tables import table


def model_table(model: QuantModel) -> str:
    rows = []
    for l in model.layers:
        m, n = l.shape
        f = l.fmts
        rows.append([l.name, f"{n} -> {m}", l.matrix.p, "x".join(map(str, l.matrix.blocks)),
                     l.matrix.n_weights, f.act, f.weight, f.bias, f.out,
                     f"{f.acc_bits}:{f.acc_frac}", "yes" if l.relu else "no",
                     sum(l.saturated.values())])
    return table(["layer", "in -> out", "p", "blocks", "weights", "act", "weight", "bias", "out",
                  "acc", "relu", "saturated"], rows)


def cycles_table(model: QuantModel, cfg: EngineConfig, runs: Sequence[InferenceCycles]) -> str:
    """Per-layer cycle breakdown, mean over the inputs of ``runs``."""
    rows = []
    for i, l in enumerate(model.layers):
        lc = [r.layers[i] for r in runs]
        mean = lambda f, lc=lc: float(np.mean([f(c) for c in lc]))
        rows.append([l.name, f"{mean(lambda c: c.nnz):.1f}", lc[0].slots,
                     f"{mean(lambda c: c.ideal):.1f}", f"{mean(lambda c: c.issue):.1f}",
                     f"{mean(lambda c: c.total):.1f}", f"{100 * mean(lambda c: c.utilization):.1f}%"])
    total = float(np.mean([r.total for r in runs]))
    groups = f", {cfg.groups_text}" if cfg.groups > 1 else ""
    head = (f"engine: {cfg.n_pe} PE x {cfg.lanes} lanes = {cfg.total_lanes} lanes{groups}, "
            f"scan width {cfg.scan_width}; {len(runs)} input(s), means per input")
    foot = (f"whole inference: {total:.1f} cycles (load {runs[0].load} + compute "
            f"{float(np.mean([r.compute for r in runs])):.1f} + unload {runs[0].unload})")
    return "\n".join([head, table(["layer", "nnz(x)", "B", "ideal", "issue", "cycles", "util"], rows),
                      foot])
