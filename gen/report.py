"""Human-readable tables for the CLI (the JSON files carry the same figures for machines)."""

import numpy as np


def table(headers, rows, aligns=None):
    """A plain-text table; ``aligns`` is a string of ``l``/``r`` per column (default: right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    aligns = aligns or "l" + "r" * (len(headers) - 1)
    def fmt(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, aligns)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def model_table(model):
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


def cycles_table(model, cfg, runs):
    """Per-layer cycle breakdown, mean over the inputs of ``runs``."""
    rows = []
    for i, l in enumerate(model.layers):
        lc = [r.layers[i] for r in runs]
        mean = lambda f: float(np.mean([f(c) for c in lc]))
        rows.append([l.name, f"{mean(lambda c: c.nnz):.1f}", lc[0].slots,
                     f"{mean(lambda c: c.ideal):.1f}", f"{mean(lambda c: c.issue):.1f}",
                     f"{mean(lambda c: c.total):.1f}", f"{100 * mean(lambda c: c.utilization):.1f}%"])
    total = float(np.mean([r.total for r in runs]))
    head = (f"engine: {cfg.n_pe} PE x {cfg.lanes} lanes = {cfg.total_lanes} lanes, "
            f"scan width {cfg.scan_width}; {len(runs)} input(s), means per input")
    foot = (f"whole inference: {total:.1f} cycles (load {runs[0].load} + compute "
            f"{float(np.mean([r.compute for r in runs])):.1f} + unload {runs[0].unload})")
    return "\n".join([head, table(["layer", "nnz(x)", "B", "ideal", "issue", "cycles", "util"], rows),
                      foot])


def bench_table(results):
    layer = results["layer"]
    ms = lambda v: f"{1e3 * v:.0f} ms"
    head = (f"golden model on a {layer['n']} in x {layer['m']} out {layer['dtype']} layer, "
            f"input density {100 * layer['input_density']:.1f}%, best of {results['repeat']}")
    rows = [[r["p"], r["stored_weights"], ms(r["project_s"]), ms(r["matvec_s"]),
             ms(r["int_matvec_s"]), ms(r["project_and_matvec_s"])] for r in results["rows"]]
    return "\n".join([head, table(["p", "stored weights", "project", "float matvec",
                                   "int matvec", "project + matvec"], rows, "rrrrrr")])
