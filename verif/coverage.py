"""Functional coverage of ``permdeal verify``'s benches: which cases of the design a run exercised.

Bins are counted over the stimulus a bench drove and the golden model's view of it (the RTL being
checked equal to the golden model value by value, what the golden model went through is what the
RTL went through), plus what the stream drivers saw. A bin is *required* when the bench's stimulus
is built to hit it; a run whose required bin stays empty fails. The others are reported.
"""

from collections.abc import Iterable

import numpy as np

from permdeal.golden.model import QuantModel
from permdeal.golden.permdiag import diag_row


def density_class(x: np.ndarray) -> str:
    """``empty``, ``partial`` or ``full`` for one input vector."""
    nz = np.count_nonzero(x)
    return "empty" if nz == 0 else "full" if nz == x.size else "partial"


def engine_bins(model: QuantModel, x: np.ndarray, report: dict) -> tuple[dict[str, int], list[str]]:
    """``(bins, required)`` of an engine run: input density classes, the permutation index cases
    and k values met, write-back saturation and rounding ties, back-pressure on both streams,
    layer boundaries."""
    bins = {}

    def hit(name, count=1):
        bins[name] = bins.get(name, 0) + int(count)

    for xi in x:
        hit(f"input {density_class(xi)}")
    acts = model.forward(x, trace=True)
    for li, (layer, a) in enumerate(zip(model.layers, acts)):
        mat, f, p = layer.matrix, layer.fmts, layer.matrix.p
        (mb, nb) = mat.blocks
        j = np.nonzero(np.any(a != 0, axis=0))[0]             # inputs that were non-zero
        if j.size:
            big_j, c = j // p, j % p
            k = mat.k[:, big_j]                                 # (M', nnz)
            r = diag_row(c[None, :], k, p)
            for rv, cnt in zip(*np.unique(r, return_counts=True)):
                hit(f"p={p} r={int(rv)}", cnt)
            hit(f"p={p} k=0", np.count_nonzero(k == 0))
            hit(f"p={p} k=p-1", np.count_nonzero(k == p - 1))
        acc = np.stack([mat.int_matvec(v) for v in a]) if a.ndim == 2 else mat.int_matvec(a)
        total = acc + (layer.bias << f.bias_shift)
        s = f.out_shift
        if s > 0:
            hit(f"layer {li} rounding tie", np.count_nonzero((total & ((1 << s) - 1)) == 1 << (s - 1)))
            shifted = (total + (1 << (s - 1))) >> s
        else:
            shifted = total << -s
        hit(f"layer {li} saturation high", np.count_nonzero(shifted > f.out.max))
        hit(f"layer {li} saturation low", np.count_nonzero(shifted < f.out.min))
    streams = report.get("test_streams", {})
    hit("input back-pressure", streams.get("input_stalls", 0))
    hit("output back-pressure", streams.get("output_stalls", 0))
    if len(model.layers) > 1:
        hit("layer boundary", x.shape[0] * (len(model.layers) - 1))
    required = ["input empty", "input full", "input back-pressure", "output back-pressure"]
    if model.n_inputs > 1:
        required.append("input partial")
    if len(model.layers) > 1:
        required.append("layer boundary")
    return bins, required


def index_bins(ps: Iterable[int]) -> tuple[dict[str, int], list[str]]:
    """``(bins, required)`` of the exhaustive index bench: every ``r`` case and the ``k``
    extremes of every block size, each driven once per ``(c, k)``."""
    bins = {}
    for p in ps:
        c, k = np.meshgrid(np.arange(p), np.arange(p))
        for rv, cnt in zip(*np.unique(diag_row(c, k, p), return_counts=True)):
            bins[f"p={p} r={int(rv)}"] = int(cnt)
        bins[f"p={p} k=0"] = p
        bins[f"p={p} k=p-1"] = p
    return bins, sorted(bins)


def missing(bins: dict[str, int], required: Iterable[str]) -> list[str]:
    """The required bins that were never hit."""
    return [b for b in required if not bins.get(b)]
