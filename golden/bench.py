"""Golden-model benchmark: how long projecting and multiplying a large layer takes.

The default layer is EIE's Alex-6 (9216 inputs x 4096 outputs) at its input density (35.1%),
from :data:`golden.workloads.EIE_LAYERS`.
"""

import platform
import time
from collections.abc import Sequence

import numpy as np

from .formats import Fixed
from .permdiag import PermDiag
from .workloads import eie_layer

#: The default layer: EIE's Alex-6.
DEFAULT_LAYER = eie_layer("Alex-6")


def _best(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def golden_bench(m: int = DEFAULT_LAYER.n_out, n: int = DEFAULT_LAYER.n_in,
                 ps: Sequence[int] = (8,), repeat: int = 3, seed: int = 0,
                 density: float = DEFAULT_LAYER.act_density) -> dict:
    """Time the golden model's steps on a random ``m x n`` float32 layer for every block size in
    ``ps`` (projection, float and integer matvec at input ``density``); each figure is the best
    of ``repeat`` runs, in seconds."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n), dtype=np.float32) * 0.01
    x = rng.standard_normal(n) * (rng.random(n) < density)
    xq, _ = Fixed(16, 8).quantize(x)
    rows = []
    for p in ps:
        t_proj, pd = _best(lambda p=p: PermDiag.from_dense(W, p), repeat)
        t_mv, _ = _best(lambda pd=pd: pd.matvec(x), repeat)
        wq, _ = pd.quantize(Fixed.fit(16, pd.q))
        t_imv, _ = _best(lambda wq=wq: wq.int_matvec(xq), repeat)
        t_both, _ = _best(lambda p=p: PermDiag.from_dense(W, p).matvec(x), repeat)
        rows.append({"p": p, "stored_weights": pd.n_weights, "project_s": t_proj,
                     "matvec_s": t_mv, "int_matvec_s": t_imv, "project_and_matvec_s": t_both})
    return {
        "layer": {"m": m, "n": n, "dtype": "float32", "input_density": density, "seed": seed},
        "repeat": repeat,
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.machine()},
        "rows": rows,
    }
