"""Cycle model of the SmartDeal engine (``hdl.smartdeal_engine``): the exact count the RTL meets.

The engine (docs/design.md 11.1) runs a whole SmartDeal network on ``L`` MAC lanes, ``V`` input
vectors at a time (``batch``; the stream carries a batch interleaved, element ``j`` of every
vector, then element ``j + 1``; at ``V = 1`` the plain order). Dataflow: output-stationary tiles. The ``m`` outputs of a layer go to
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

Structured pruning: a chunk whose Ce codes are zero in every real row of a tile is *dead* for the
tile, and the tile skips its inputs. :func:`tile_runs` gives every tile's *runs* of consecutive
live chunks (one empty run when none is live; one run ``0 .. r-1`` when nothing is dead anywhere);
the list is in input order, so a run is a stretch of consecutive entries, and the engine jumps
from run to run at no cost (it records where every chunk starts as it writes the list).

With a batch the list holds the non-zero entries of every vector, a column's consecutive (each
with its vector ``v``); a lane keeps ``V`` sums and rebuilds a weight once per column (the other
vectors' entries reuse it).

The rule (cycle 0 is a layer's first issue cycle; ``z`` of a run is the number of non-zero inputs in
its chunks over the batch, from the golden forward pass's activations):

1. Tile ``t`` walks its runs, a run taking ``max(z, 1)`` cycles; ``U_t`` is their sum
   (``max(nnz, 1)`` without pruning). The tile takes ``P_t = max(U_t, L*V)`` issue cycles (lanes
   idle on the rest: the write-back of the previous tile's ``L*V`` sums must finish before the next
   capture); the tiles follow one another with no gap.
2. A slot issued in cycle ``c`` reaches the lanes' accumulators in cycle ``c + 6``
   (:data:`ISSUE_TO_ACC`: the non-zero list's read, the lane ROMs' read, the operand registers,
   the rebuild's two stages, the product register); the tile's sums are captured at the end of its
   last slot's accumulate cycle, and output ``d = l*V + v`` of the tile enters the write-back in
   cycle ``c_last + 7 + d``, is written :data:`WRITEBACK_LATENCY` ``= 2`` cycles later.
3. The next layer's first issue cycle follows the last write:

   ``T_layer = sum of P_t + q*V + 8``  (:data:`LAYER_OVERHEAD` ``= 8``).

A whole batch, counted from the first input accepted through the last output accepted, both
included, with no idle on the input and the output always ready::

    total = n_first*V + sum over layers of T_layer + m_last*V

(the inputs load one a cycle; after the last layer the outputs stream one a cycle from the cycle
after its last write). The engine takes the next inference's first input in the cycle after the
last output, as the PermDNN engine does; idle on ``i`` and back-pressure on ``o`` add their own
cycles only.

Multiplies: a tile does its issued inputs times its real rows of useful multiplies (``nnz * m`` in a
layer without pruning); :attr:`InferenceCycles.utilization` is the sum of the useful multiplies over
``L`` times the sum of ``T_layer`` (loading and output streaming not counted, as for the PermDNN
engine, docs/design.md 9); :attr:`InferenceCycles.total_utilization` counts them. Rebuild work: one
weight per lane and issued input (lanes past ``m`` in the last tile rebuild zeros).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from . import smartdeal_conv_walk as cw
from .smartdeal import block_layout

if TYPE_CHECKING:
    from .smartdeal_model import SmartDealModel

__all__ = ["ISSUE_TO_ACC", "LAYER_OVERHEAD", "MAX_BATCH", "MAX_LANES", "WRITEBACK_LATENCY",
           "InferenceCycles", "LayerCycles", "check_batch", "check_lanes", "layer_cycles",
           "model_cycles", "tile_runs"]

#: Most MAC lanes an engine may have.
MAX_LANES = 256
#: Most input vectors an engine may hold in flight (every lane keeps one sum per vector).
MAX_BATCH = 64
#: Cycles from a slot's issue to its accumulate stage: the non-zero list's read, the lane ROMs'
#: read, the operand registers, the rebuild's two register stages and the product register.
ISSUE_TO_ACC = 6
#: The write-back unit's register stages (``hdl.writeback.Writeback.latency``).
WRITEBACK_LATENCY = 2
#: ``T_layer - T*P - q``: the last slot's pipeline (``ISSUE_TO_ACC``), the capture, the write-back.
LAYER_OVERHEAD = ISSUE_TO_ACC + WRITEBACK_LATENCY


def check_lanes(lanes: int) -> int:
    """``lanes`` checked: an integer in ``[1, MAX_LANES]``."""
    return integer(lanes, "SmartDeal engine lanes", 1, MAX_LANES)


def check_batch(batch: int) -> int:
    """``batch`` checked: an integer in ``[1, MAX_BATCH]``."""
    return integer(batch, "SmartDeal engine batch", 1, MAX_BATCH)


def tile_runs(layer, lanes: int, skip: bool = True) -> list[list[tuple[int, int]]]:
    """The runs every tile of a ``SmartDealLayer`` walks on ``lanes`` lanes: the runs ``(a, b)`` of
    consecutive chunks ``a .. b-1`` that are live for the tile (some Ce row of one of its real rows
    is non-zero in the chunk), in order; a tile with no live chunk gets the empty run ``(0, 0)``.
    When every chunk is live for every tile (or with ``skip=False``) every tile walks the one run
    ``(0, r)``."""
    lanes = check_lanes(lanes)
    c = layer.codes
    m, n = c.shape
    r, h, bpr = block_layout(c.shape, c.S, c.rows_per_block)
    nz = ((np.asarray(c.codes) >> (c.E + 1)) & 1).any(axis=-1)   # (blocks, h)
    live = nz.reshape(m, bpr * h)[:, :r]                          # (m, r)
    T = -(-m // lanes)
    plan = []
    for t in range(T):
        tl = live[t * lanes:(t + 1) * lanes].any(axis=0)
        runs, a = [], None
        for ch in range(r + 1):
            if ch < r and tl[ch]:
                a = ch if a is None else a
            elif a is not None:
                runs.append((a, ch))
                a = None
        plan.append(runs or [(0, 0)])
    if not skip or all(runs == [(0, r)] for runs in plan):
        return [[(0, r)] for _ in range(T)]
    return plan


@dataclass(frozen=True)
class LayerCycles(cw.Tiles):
    """One layer on the engine: ``m`` outputs, ``nnz`` non-zero inputs (over the ``batch``
    vectors), ``lanes`` lanes; per tile the inputs it issues (``tile_ops``), its issue cycles before
    the padding to ``L*V`` (``tile_slots``: a run with no non-zero input costs a cycle) and the
    distinct columns it issues (``tile_columns``: one rebuilt weight per lane each). Without them
    every tile walks the whole list: ``nnz`` inputs in ``max(nnz, 1)`` cycles."""

    m: int
    nnz: int
    lanes: int
    tile_ops: tuple[int, ...] | None = None
    tile_slots: tuple[int, ...] | None = None
    batch: int = 1
    tile_columns: tuple[int, ...] | None = None
    #: cycles added to the layer (a conv network's engine: its drain register,
    #: ``smartdeal_conv_walk.DRAIN_REGISTER``)
    extra: int = 0

    @property
    def ops(self) -> tuple[int, ...]:
        """Inputs issued per tile."""
        return (self.nnz,) * self.tiles if self.tile_ops is None else tuple(self.tile_ops)

    @property
    def slots(self) -> tuple[int, ...]:
        """``U_t``: issue cycles per tile before the padding to ``L``."""
        return ((max(self.nnz, 1),) * self.tiles if self.tile_slots is None
                else tuple(self.tile_slots))

    @property
    def periods(self) -> tuple[int, ...]:
        """``P_t = max(U_t, L*V)``: issue cycles of every tile."""
        return tuple(max(u, self.lanes * self.batch) for u in self.slots)

    @property
    def compute(self) -> int:
        """``T_layer = sum P_t + q*V + LAYER_OVERHEAD`` (``+ extra``)."""
        return sum(self.periods) + self.last_tile_rows * self.batch + LAYER_OVERHEAD + self.extra

    @property
    def macs(self) -> int:
        """Useful multiplies: every input issued to every real row of its tile (``nnz * m``
        without pruning skip)."""
        rows = [self.lanes] * (self.tiles - 1) + [self.last_tile_rows]
        return sum(o * q for o, q in zip(self.ops, rows))

    @property
    def rebuilt_weights(self) -> int:
        """Weights rebuilt: one per lane and issued column (an input of the batch that meets the
        weight of the column before it reuses it)."""
        cols = self.ops if self.tile_columns is None else self.tile_columns
        return sum(cols) * self.lanes

    @property
    def utilization(self) -> float:
        return self.macs / (self.lanes * self.compute)

    def to_json(self) -> dict[str, int | float]:
        return {"m": self.m, "nnz": self.nnz, "tiles": self.tiles, "issued": sum(self.ops),
                "compute": self.compute, "macs": self.macs,
                "rebuilt_weights": self.rebuilt_weights,
                "utilization": round(self.utilization, 4)}


@dataclass(frozen=True)
class InferenceCycles:
    """One batch of input vectors (``batch``, one at batch 1) through the engine: ``load`` inputs,
    every layer, ``unload`` outputs."""

    load: int
    layers: tuple[LayerCycles, ...]
    unload: int

    @property
    def lanes(self) -> int:
        return self.layers[0].lanes

    @property
    def batch(self) -> int:
        return self.layers[0].batch

    @property
    def per_vector(self) -> float:
        """``total / batch``: the cycles of one input vector."""
        return self.total / self.batch

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
        return {"lanes": self.lanes, "batch": self.batch, "total": self.total,
                "per_vector": self.per_vector, "load": self.load,
                "unload": self.unload, "macs": self.macs,
                "utilization": round(self.utilization, 4),
                "total_utilization": round(self.total_utilization, 4),
                "layers": [l.to_json() for l in self.layers]}


def layer_cycles(m: int, nnz: int, lanes: int, tile_ops=None, tile_slots=None, *,
                 batch: int = 1, tile_columns=None) -> LayerCycles:
    """Cycles of a layer of ``m`` outputs whose input (``batch`` vectors) has ``nnz`` non-zero
    entries (with pruning skip, per tile the inputs issued and the issue cycles; the columns
    issued, :class:`LayerCycles`)."""
    m, lanes, batch = integer(m, "layer outputs m", 1), check_lanes(lanes), check_batch(batch)
    T = -(-m // lanes)
    if (tile_ops is None) != (tile_slots is None):
        raise PermdealError("tile_ops and tile_slots go together")
    if tile_ops is not None:
        tile_ops = tuple(integer(o, "tile inputs", 0) for o in tile_ops)
        tile_slots = tuple(integer(o, "tile slots", 1) for o in tile_slots)
        if len(tile_ops) != T or len(tile_slots) != T:
            raise PermdealError(f"{len(tile_ops)} and {len(tile_slots)} tile counts for {T} tiles")
    if tile_columns is not None:
        tile_columns = tuple(integer(o, "tile columns", 0) for o in tile_columns)
        if len(tile_columns) != T:
            raise PermdealError(f"{len(tile_columns)} tile column counts for {T} tiles")
    return LayerCycles(m, integer(nnz, "non-zero inputs", 0), lanes, tile_ops, tile_slots, batch,
                       tile_columns)


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


def model_cycles(model: SmartDealModel, x: npt.ArrayLike, lanes: int, skip: bool = True,
                 batch: int = 1) -> list[InferenceCycles]:
    """The engine's cycles on ``lanes`` lanes for the input vectors ``x`` (codes, vectors x n),
    one :class:`InferenceCycles` per batch of ``batch`` consecutive vectors (the vectors must fill
    whole batches); ``skip=False``: an engine without the pruning skip (every tile walks the whole
    list)."""
    lanes, batch = check_lanes(lanes), check_batch(batch)
    convs = [cw.is_conv(l) for l in cw.check_net(model)]
    if any(convs) and batch > 1:
        raise PermdealError(f"batch {batch}: the SmartDeal engine runs a conv network one input "
                            "at a time (its lanes keep a sum per output pixel)")
    acts = _activations(model, x)
    vectors = acts[0].shape[0]
    if vectors % batch:
        raise PermdealError(f"{vectors} input vectors do not fill batches of {batch}; pad them "
                            f"(the engine takes {batch} vectors at a time)")
    plans = [None if conv else tile_runs(l, lanes, skip) for l, conv in zip(model.layers, convs)]
    out = []
    for b in range(0, vectors, batch):
        layers = []
        for layer, a, plan in zip(model.layers, acts, plans):
            if plan is None:
                layers.append(cw.layer_cycles(layer, a[b], lanes))
                continue
            S, n = layer.codes.S, layer.shape[1]
            nz = a[b:b + batch] != 0                                  # (batch, n)
            chunks = np.arange(n) // S
            chunk_nnz = np.zeros(-(-n // S), dtype=np.int64)          # non-zero (j, v) per chunk
            np.add.at(chunk_nnz, chunks, nz.sum(axis=0))
            chunk_cols = np.zeros_like(chunk_nnz)                     # columns with one or more
            np.add.at(chunk_cols, chunks, nz.any(axis=0))
            z = [[int(chunk_nnz[ra:rb].sum()) for ra, rb in runs] for runs in plan]
            lc = layer_cycles(
                layer.shape[0], int(nz.sum()), lanes, [sum(zs) for zs in z],
                [sum(max(v, 1) for v in zs) for zs in z], batch=batch,
                tile_columns=[sum(int(chunk_cols[ra:rb].sum()) for ra, rb in runs)
                              for runs in plan])
            layers.append(dataclasses.replace(lc, extra=cw.DRAIN_REGISTER) if any(convs) else lc)
        out.append(InferenceCycles(model.n_inputs * batch, tuple(layers),
                                   model.layers[-1].shape[0] * batch))
    return out
