"""Cycle model of EIE (Han et al., ISCA 2016; docs/references.md, EIE): ``N`` PEs, activation FIFOs of
depth ``F``, and the load imbalance of unstructured sparsity.

The leading-non-zero detector broadcasts the non-zero input activations ``j = 0 .. J-1`` in
column order, at most one per cycle, to every PE's FIFO. PE ``k`` spends ``w_kj`` cycles on
activation ``j``: one per stored entry (padding included) of its slice of that column (no cycle
at all when the slice is empty). A FIFO holds every activation broadcast to its PE and not yet
finished by it, the one in progress included (the PE reads the head of its queue while it works
on it and pops it when done), so an activation may be broadcast only in a cycle in which every
FIFO holds fewer than ``F``. Cycles are counted from the first broadcast, cycle 0::

    t_0  = 0
    t_j  = max(t_{j-1} + 1,  max_k f_{k, j-F})     (the second term for j >= F only)
    s_kj = max(t_j, f_{k, j-1})                    (f_{k, -1} = 0)
    f_kj = s_kj + w_kj
    actual = max(t_{J-1} + 1, max_k f_{k, J-1})    (0 without a non-zero activation)

``t_j`` is the broadcast cycle, ``s_kj`` the first cycle PE ``k`` works on ``j`` and ``f_kj``
the first cycle after (PE ``k`` is busy with ``j`` in cycles ``s_kj .. f_kj - 1``); the layer
takes cycles ``0 .. actual - 1``, the last broadcast's cycle at least. Room: at the
start of cycle ``t`` PE ``k``'s FIFO holds the ``j' < j`` with ``f_kj' > t``; as ``f_kj`` grows
with ``j``, fewer than ``F`` of them means ``f_{k, j-F} <= t``. A broadcast activation may be
worked on in its broadcast cycle. EIE's fixed pipeline latency (4 stages) and the write-back of
the outputs are not counted: they add a constant.

Two limits check the recurrence: with ``F >= J`` and every ``w_kj >= 1`` (broadcast never
limits) ``actual = max_k sum_j w_kj``; with ``F = 1`` and every ``max_k w_kj >= 1`` it is
``sum_j max_k w_kj``. EIE's "ideal" is perfect load balance: ``sum_kj w_kj / N``.
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .eie import ACT_BITS, InterleavedCSC, encode, nonzero_count, share_weights
from .workloads import EIE, EIE_LAYERS, EieLayer, eie_layer


def fifo_schedule(work: npt.ArrayLike,
                  fifo_depth: int = EIE["fifo_depth"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recurrence of the module docstring for ``work`` (``J x N`` cycles ``w_kj``, the
    activations in broadcast order): ``(t, s, f)``, broadcast cycles ``(J,)`` and the start and
    finish cycles ``(J, N)``. One step per activation, vectorized over the PEs."""
    fifo_depth = integer(fifo_depth, "FIFO depth (fifo_depth)", 1)
    work = np.asarray(work)
    if (work.ndim != 2 or not np.issubdtype(work.dtype, np.integer)
            or (work.size and work.min() < 0)):
        raise PermdealError(f"work must be a J x N matrix of non-negative integers, not "
                            f"{work.dtype} of shape {work.shape}")
    n_act, n_pe = work.shape
    t = np.zeros(n_act, np.int64)
    s = np.zeros(work.shape, np.int64)
    f = np.zeros(work.shape, np.int64)
    done_max = np.zeros(n_act, np.int64)                   # max_k f_kj
    prev_f = np.zeros(n_pe, np.int64)
    for j in range(n_act):
        tj = t[j - 1] + 1 if j else 0
        if j >= fifo_depth:
            tj = max(tj, done_max[j - fifo_depth])
        t[j] = tj
        s[j] = np.maximum(tj, prev_f)
        f[j] = prev_f = s[j] + work[j]
        done_max[j] = prev_f.max()
    return t, s, f


@dataclass(frozen=True)
class EieCycles:
    """One layer on one input vector: ``nnz_x`` non-zero activations, ``entries`` PE cycles of
    work (``padding`` of them on padding entries), ``max_pe`` the busiest PE's, ``actual``
    cycles of the schedule, on ``n_pe`` PEs with FIFOs ``fifo_depth`` deep."""

    n_pe: int
    fifo_depth: int
    nnz_x: int
    entries: int
    padding: int
    max_pe: int
    actual: int

    @property
    def ideal(self) -> float:
        """Perfect load balance, EIE's "ideal": ``entries / n_pe`` cycles."""
        return self.entries / self.n_pe

    @property
    def utilization(self) -> float:
        """PE cycles of work over PE cycles available: ``ideal / actual``."""
        return self.entries / (self.n_pe * self.actual) if self.actual else 1.0

    @property
    def padding_share(self) -> float:
        """Padding entries among the entries worked on."""
        return self.padding / self.entries if self.entries else 0.0

    @property
    def imbalance(self) -> float:
        """Load imbalance: the busiest PE's work over the mean, ``max_pe / ideal``."""
        return self.max_pe / self.ideal if self.entries else 1.0


def layer_cycles(csc: InterleavedCSC, x: npt.ArrayLike,
                 fifo_depth: int = EIE["fifo_depth"]) -> EieCycles:
    """Cycles of a layer in :class:`~permdeal.golden.eie.InterleavedCSC` form on activations
    ``x`` (only zero / non-zero matters) with FIFOs ``fifo_depth`` deep."""
    if not isinstance(csc, InterleavedCSC):
        raise PermdealError(f"layer_cycles takes an InterleavedCSC, not {type(csc).__name__}")
    x = np.asarray(x)
    if x.shape != (csc.shape[1],):
        raise PermdealError(f"x must be a vector of the layer's {csc.shape[1]} inputs, "
                            f"not shape {x.shape}")
    cols = np.flatnonzero(x)
    work = csc.slice_entries[:, cols]                      # (N, J)
    t, _, f = fifo_schedule(work.T, fifo_depth)
    per_pe = work.sum(axis=1)
    return EieCycles(n_pe=csc.n_pe, fifo_depth=int(fifo_depth), nnz_x=int(cols.size),
                     entries=int(per_pe.sum()), padding=int(csc.slice_padding[:, cols].sum()),
                     max_pe=int(per_pe.max()),
                     actual=max(int(t[-1]) + 1, int(f[-1].max())) if cols.size else 0)


@dataclass(frozen=True)
class EieRun:
    """:func:`eie_layer_run`'s result: our cycles on a random layer beside EIE's published
    times (``layer.ideal_us``, ``layer.actual_us``) and the wall time it took."""

    layer: EieLayer
    seed: int
    weights: int
    cycles: EieCycles
    seconds: float

    @property
    def ideal_us(self) -> float:
        return self.cycles.ideal / EIE["clock_mhz"]

    @property
    def actual_us(self) -> float:
        return self.cycles.actual / EIE["clock_mhz"]

    @property
    def eie_ideal_us(self) -> float:
        """EIE's published ideal time for the layer (Table III)."""
        return self.layer.ideal_us

    @property
    def eie_actual_us(self) -> float:
        """EIE's published actual time for the layer (Table III)."""
        return self.layer.actual_us


def eie_layer_run(layer: EieLayer | str, n_pe: int = EIE["n_pe"],
                  fifo_depth: int = EIE["fifo_depth"], seed: int = 0) -> EieRun:
    """One of EIE's benchmark layers (an :class:`EieLayer` or its name) on a random matrix.

    The matrix has the layer's shape and exactly ``round(weight_density * size)`` non-zeros at
    uniformly random positions (what magnitude pruning of i.i.d. weights leaves) with standard
    normal values, shared to EIE's 4-bit codebook and encoded on ``n_pe`` PEs; the activations
    have exactly ``round(act_density * n_in)`` non-zeros at random positions (positive 16-bit
    codes, as after ReLU). Seeded by ``seed``. A random layer is not EIE's pruned network: the
    gap between ideal and actual shows in kind, not in EIE's exact figures.
    """
    start = time.perf_counter()
    layer = eie_layer(layer) if isinstance(layer, str) else layer
    if not isinstance(layer, EieLayer):
        raise PermdealError(f"layer must be an EIE layer or its name, not {layer!r}")
    integer(seed, "seed", 0)
    integer(n_pe, "PE count (n_pe)", 1)
    fifo_depth = integer(fifo_depth, "FIFO depth (fifo_depth)", 1)
    rng = np.random.default_rng(seed)
    m, n = layer.shape
    flat = rng.choice(m * n, nonzero_count(layer.weight_density, m * n), replace=False)
    _, idx = share_weights(rng.standard_normal(flat.size))
    csc = encode((m, n), flat // n, flat % n, idx, n_pe, EIE["index_bits"], EIE["codebook_bits"])
    x = np.zeros(n, np.int64)
    x[rng.choice(n, nonzero_count(layer.act_density, n), replace=False)] = rng.integers(
        1, 1 << (ACT_BITS - 1), nonzero_count(layer.act_density, n))
    cycles = layer_cycles(csc, x, fifo_depth)
    return EieRun(layer, seed, int(flat.size), cycles, time.perf_counter() - start)


def eie_table(layers: Iterable[EieLayer | str] = EIE_LAYERS, n_pe: int = EIE["n_pe"],
              fifo_depth: int = EIE["fifo_depth"], seed: int = 0) -> list[EieRun]:
    """:func:`eie_layer_run` on every layer: a list of :class:`EieRun`."""
    return [eie_layer_run(l, n_pe, fifo_depth, seed) for l in layers]


def format_table(runs: Sequence[EieRun]) -> str:
    """The runs of :func:`eie_table` as a text table, ours beside EIE's published times."""
    from permdeal.tables import table
    rows = [[r.layer.name, f"{r.layer.n_in} x {r.layer.n_out}",
             f"{100 * r.layer.weight_density:g}%", f"{100 * r.layer.act_density:g}%",
             f"{100 * r.cycles.padding_share:.1f}%", f"{r.cycles.imbalance:.3f}",
             f"{r.cycles.ideal:.0f}", r.cycles.actual, f"{r.ideal_us:.1f}", f"{r.actual_us:.1f}",
             f"{r.actual_us / r.ideal_us:.3f}", f"{r.eie_ideal_us:.1f}",
             f"{r.eie_actual_us:.1f}", f"{r.eie_actual_us / r.eie_ideal_us:.3f}",
             f"{100 * r.cycles.utilization:.1f}%", f"{r.seconds:.1f} s"] for r in runs]
    r0 = runs[0]
    head = (f"EIE cycle model: {r0.cycles.n_pe} PEs, FIFO depth {r0.cycles.fifo_depth}, "
            f"{EIE['clock_mhz']} MHz, random layers (seed {r0.seed}); EIE's figures from "
            f"{EIE['source']}")
    return "\n".join([head, table(
        ["layer", "in x out", "W dens", "x dens", "padding", "max/mean", "ideal cyc",
         "actual cyc", "ideal us", "actual us", "act/ideal", "EIE ideal", "EIE actual",
         "EIE act/ideal", "util", "time"], rows)])


if __name__ == "__main__":
    runs = []
    for l in EIE_LAYERS:
        runs.append(eie_layer_run(l))
        print(f"{l.name}: {runs[-1].seconds:.1f} s", flush=True)
    print(format_table(runs))
