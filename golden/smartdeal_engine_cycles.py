"""Cycle model of the SmartDeal engine (``hdl.smartdeal_engine``): the exact count the RTL meets.

The engine (docs/design.md 11.1) runs a whole SmartDeal network on ``L`` MAC lanes, one input
vector at a time (batch 1). Dataflow: output-stationary tiles. The ``m`` outputs of a layer go to
the lanes in *tiles* of ``L`` consecutive rows: tile ``t`` gives lane ``l`` output row ``t*L + l``
(the last tile holds ``q = m - (T-1)*L`` real rows, ``T = ceil(m/L)`` tiles). The layer's input is
kept as a list of its non-zero entries only (zero-activation skipping: the list is built as the
inputs arrive, or as the previous layer writes its outputs, so a zero input costs nothing, not
even a scan cycle). For every tile, the non-zero inputs ``x_j`` are broadcast to all lanes, one a
cycle; lane ``l`` rebuilds the one weight ``W[t*L + l, j]`` it needs from its row's Ce codes of
chunk ``j div S`` and column ``j mod S`` of the block's basis ``B`` (its rebuild engine: a
bit-parallel shift-add, ``hdl.smartdeal_rebuild``, one weight a cycle, bit-exact to
``golden.smartdeal.rebuild_int``), multiplies it by ``x_j`` and accumulates. Every lane holds its
own rows' Ce codes and bases in its ROMs (B resident, read a basis word at a time); the rebuild is
pipelined, so the weight for the next input is rebuilt while the MAC works on the current one (the
rebuilt-weight register between the rebuild engine and the multiplier is the double buffer, at a
depth of one weight). After the tile's last input the ``L`` sums are captured and written back
(bias, rounding, saturation, ReLU; one output a cycle) while the next tile computes.

The rule (cycle 0 is a layer's first issue cycle; ``nnz`` is the number of non-zero inputs of the
layer, the golden forward pass's activations):

1. A tile takes ``P = max(nnz, L)`` issue cycles: its ``nnz`` inputs in the first ``nnz`` of them
   (lanes idle on the rest when ``nnz < L``: the write-back of the previous tile's ``L`` sums must
   finish before the next capture). Tile ``t`` issues in cycles ``t*P .. t*P + P - 1``.
2. A slot issued in cycle ``c`` reaches the lanes' accumulators in cycle ``c + 5``
   (:data:`ISSUE_TO_ACC`: the non-zero list's read, the lane ROMs' read, the rebuild's two stages,
   the product register); the tile's sums are captured at the end of its last slot's accumulate
   cycle, and output ``d`` of the tile enters the write-back in cycle ``c_last + 6 + d``, is
   written :data:`WRITEBACK_LATENCY` ``= 2`` cycles later.
3. The next layer's first issue cycle follows the last write:

   ``T_layer = T*P + q + 7``  (:data:`LAYER_OVERHEAD` ``= 7``).

A whole inference, counted from the first input accepted through the last output accepted, both
included, with no idle on the input and the output always ready::

    total = n_first + sum over layers of T_layer + m_last

(the inputs load one a cycle; after the last layer the outputs stream one a cycle from the cycle
after its last write). The engine takes the next inference's first input in the cycle after the
last output, as the PermDNN engine does; idle on ``i`` and back-pressure on ``o`` add their own
cycles only.

Multiplies: a layer does ``nnz * m`` useful multiplies (one per non-zero input and output row) in
``T_layer * L`` lane-cycles; :attr:`InferenceCycles.utilization` is the sum of the useful multiplies
over ``L`` times the sum of ``T_layer`` (loading and output streaming not counted, as for the
PermDNN engine, docs/design.md 9); :attr:`InferenceCycles.total_utilization` counts them.

Rebuild work: one weight per multiply issued, ``T * nnz * L`` per layer (lanes past ``m`` in the
last tile rebuild zeros). Structured pruning: the all-zero Ce rows of a tile are not skipped by this
engine (their weights rebuild to zero and cost their cycle); :func:`pruned_skip_bound` is the count
an engine that skipped them (chunks zero for every row of a tile) could at best reach, a projection,
not a built design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .smartdeal import block_layout

if TYPE_CHECKING:
    from .smartdeal_model import SmartDealModel

__all__ = ["ISSUE_TO_ACC", "LAYER_OVERHEAD", "MAX_LANES", "WRITEBACK_LATENCY", "InferenceCycles",
           "LayerCycles", "check_lanes", "layer_cycles", "model_cycles", "pruned_skip_bound"]

#: Most MAC lanes an engine may have.
MAX_LANES = 256
#: Cycles from a slot's issue to its accumulate stage: the non-zero list's read, the lane ROMs'
#: read, the rebuild's two register stages and the product register.
ISSUE_TO_ACC = 5
#: The write-back unit's register stages (``hdl.writeback.Writeback.latency``).
WRITEBACK_LATENCY = 2
#: ``T_layer - T*P - q``: the last slot's pipeline (``ISSUE_TO_ACC``), the capture, the write-back.
LAYER_OVERHEAD = ISSUE_TO_ACC + WRITEBACK_LATENCY


def check_lanes(lanes: int) -> int:
    """``lanes`` checked: an integer in ``[1, MAX_LANES]``."""
    return integer(lanes, "SmartDeal engine lanes", 1, MAX_LANES)


@dataclass(frozen=True)
class LayerCycles:
    """One layer on the engine: ``m`` outputs, ``nnz`` non-zero inputs, ``lanes`` lanes."""

    m: int
    nnz: int
    lanes: int

    @property
    def tiles(self) -> int:
        """``T = ceil(m / L)``."""
        return -(-self.m // self.lanes)

    @property
    def last_tile_rows(self) -> int:
        """``q = m - (T-1)*L``: the real rows of the last tile."""
        return self.m - (self.tiles - 1) * self.lanes

    @property
    def period(self) -> int:
        """``P = max(nnz, L)``: issue cycles per tile."""
        return max(self.nnz, self.lanes)

    @property
    def compute(self) -> int:
        """``T_layer = T*P + q + LAYER_OVERHEAD``."""
        return self.tiles * self.period + self.last_tile_rows + LAYER_OVERHEAD

    @property
    def macs(self) -> int:
        """Useful multiplies: ``nnz * m``."""
        return self.nnz * self.m

    @property
    def rebuilt_weights(self) -> int:
        """Weights rebuilt: one per lane and issued input, ``T * nnz * L``."""
        return self.tiles * self.nnz * self.lanes

    @property
    def utilization(self) -> float:
        return self.macs / (self.lanes * self.compute)

    def to_json(self) -> dict[str, int | float]:
        return {"m": self.m, "nnz": self.nnz, "tiles": self.tiles, "period": self.period,
                "compute": self.compute, "macs": self.macs,
                "utilization": round(self.utilization, 4)}


@dataclass(frozen=True)
class InferenceCycles:
    """One input vector through the engine: ``load`` inputs, every layer, ``unload`` outputs."""

    load: int
    layers: tuple[LayerCycles, ...]
    unload: int

    @property
    def lanes(self) -> int:
        return self.layers[0].lanes

    @property
    def compute(self) -> int:
        return sum(l.compute for l in self.layers)

    @property
    def total(self) -> int:
        """First input accepted through last output accepted, both included."""
        return self.load + self.compute + self.unload

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.layers)

    @property
    def utilization(self) -> float:
        """Useful multiplies over the lane-cycles of the layers (load and unload not counted)."""
        return self.macs / (self.lanes * self.compute)

    @property
    def total_utilization(self) -> float:
        """Useful multiplies over the lane-cycles of the whole inference."""
        return self.macs / (self.lanes * self.total)

    def to_json(self) -> dict:
        return {"lanes": self.lanes, "total": self.total, "load": self.load,
                "unload": self.unload, "macs": self.macs,
                "utilization": round(self.utilization, 4),
                "total_utilization": round(self.total_utilization, 4),
                "layers": [l.to_json() for l in self.layers]}


def layer_cycles(m: int, nnz: int, lanes: int) -> LayerCycles:
    """Cycles of a layer of ``m`` outputs whose input has ``nnz`` non-zero entries."""
    return LayerCycles(integer(m, "layer outputs m", 1), integer(nnz, "non-zero inputs", 0),
                       check_lanes(lanes))


def _activations(model, x):
    """Each layer's input codes for the vectors ``x`` (the golden forward pass)."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise PermdealError(f"input codes must be (vectors, {model.n_inputs}), not {x.shape}")
    acts = []
    for layer in model.layers:
        acts.append(x)
        x = layer.forward(x)
    return acts


def model_cycles(model: SmartDealModel, x: npt.ArrayLike, lanes: int) -> list[InferenceCycles]:
    """The engine's cycles for every input vector of ``x`` (codes, vectors x n) on ``lanes``."""
    lanes = check_lanes(lanes)
    acts = _activations(model, x)
    out = []
    for v in range(acts[0].shape[0]):
        layers = tuple(layer_cycles(l.shape[0], int(np.count_nonzero(a[v])), lanes)
                       for l, a in zip(model.layers, acts))
        out.append(InferenceCycles(model.n_inputs, layers, model.layers[-1].shape[0]))
    return out


def pruned_skip_bound(model: SmartDealModel, x: npt.ArrayLike, lanes: int) -> list[int]:
    """A projection, not a built design: per vector, the layers' ``sum T * P`` issue cycles if a
    tile skipped the non-zero inputs of the chunks whose Ce rows are zero in every row of the tile
    (``P`` then the tile's own count of the remaining inputs, at least ``L``), plus the same
    overheads. The engine built does not skip them (module docstring)."""
    lanes = check_lanes(lanes)
    acts = _activations(model, x)
    out = []
    for v in range(acts[0].shape[0]):
        total = model.n_inputs + model.layers[-1].shape[0]
        for layer, a in zip(model.layers, acts):
            c = layer.codes
            m, n = c.shape
            r, h, bpr = block_layout(c.shape, c.S, c.rows_per_block)
            nz = ((np.asarray(c.codes) >> (c.E + 1)) & 1).any(axis=-1)   # (blocks, h)
            live = nz.reshape(m, bpr * h)[:, :r]                          # (m, r)
            chunk_nnz = np.zeros(r, dtype=np.int64)
            np.add.at(chunk_nnz, np.arange(n) // c.S, a[v] != 0)
            T = -(-m // lanes)
            for t in range(T):
                tile_live = live[t * lanes:(t + 1) * lanes].any(axis=0)
                total += max(int(chunk_nnz[tile_live].sum()), lanes)
            total += m - (T - 1) * lanes + LAYER_OVERHEAD
        out.append(total)
    return out
