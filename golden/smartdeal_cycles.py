"""Cycle model of the SmartDeal layer unit (``hdl.smartdeal_layer``): the exact count the RTL meets.

The unit computes one SmartDeal layer ``y = act(W x + b)`` with ``W`` rebuilt on the fly by one
bit-serial shift-add unit (``hdl.shift_add``, :mod:`.shift_add`) feeding a MAC. Its work is a
sequence of *slots*, one per chunk ``c`` of ``S`` inputs of every output row ``i``, in order
(``i = 0 .. m-1``, ``c = 0 .. r-1``, ``r = ceil(n / S)``; chunks that only pad a block are not
slots). Slot ``(i, c)`` is row ``c mod h`` of block ``i * bpr + c div h`` (:func:`geometry`).

A slot is *active* when its ``S`` Ce codes hold a non-zero entry, or when it is the last slot of its
output row (so that every output has one row through the MAC, which closes its sum). An inactive
slot (an all-zero Ce row, e.g. one pruned by structured sparsity) rebuilds to zero weights
whatever its basis, so it is skipped: it never enters the shift-add unit.

One layer, in cycles, counting the cycle in which its last input is accepted as cycle ``-1``
(``n`` inputs are loaded one per cycle, so a unit whose first input is accepted in cycle 0 has
its last in cycle ``n - 1``; everything below is shifted by ``n``):

1. The fetcher reads slot ``s`` from the ROMs, one word per cycle: at a block start (``c mod h
   == 0``) the block's ``S*S`` basis codes, then the slot's ``S`` Ce codes, so ``K_s = S`` or
   ``S*S + S`` cycles (:func:`fetch_words`), then one cycle for the last word to land
   (registered ROM read) and one in which the slot is decided (:data:`SLOT_OVERHEAD` ``= 2``):
   ``cost_s = K_s + 2`` cycles in all when nothing waits. The first slot's fetch starts in cycle 0.
2. An inactive slot is dropped in its decision cycle; the next slot's fetch starts in the cycle
   after. An active slot is offered to the shift-add unit from its decision cycle and accepted in
   cycle ``a_j = max(decision, a_{j-1} + PT)``, ``PT = P*T`` the unit's cycles per row
   (``golden.shift_add.ShiftAddTiming.cycles_per_row``); the next fetch starts in cycle
   ``a_j + 1``. The fetch restarts at every acceptance, so the spacing of active slot ``j``
   after ``j - 1`` is local: ``gap_j = max(PT, seg_j)`` with ``seg_j`` the summed ``cost`` of the
   slots after active slot ``j - 1`` up to and including ``j`` (``a_1 = seg_1 - 1``).
3. The shift-add unit delivers the row's weights in cycle ``a_j + PT + 1`` (its latency) and the
   MAC takes them in that cycle together with the chunk's activations (queued at acceptance);
   products are registered, the sum the cycle after (:data:`MAC_LATENCY` ``= 2``), and the last
   row of an output hands its sum and bias to the write-back (``hdl.writeback``, 2 stages,
   :data:`WRITEBACK_LATENCY`); the output is offered and, to a ready output, accepted
   :data:`OUTPUT_LATENCY` ``= 4`` cycles after the MAC took the row.
4. The layer's :attr:`LayerCycles.compute` is the count from the cycle after its last input was
   accepted through the cycle its last output is accepted, both included: the last active slot
   is accepted in cycle ``a_A = sum_j gap_j`` (``gap_1 = seg_1 - 1``), its output in cycle ``a_A
   + PT + 1 + OUTPUT_LATENCY``, so ``compute = a_A + PT + OUTPUT_LATENCY + 2``. The unit loads
   the next input vector from the cycle after.

Nothing depends on the activations: the count of a layer is a constant of its Ce codes. It is exact
when the output is always ready (back-pressure only adds its own cycles). A network of layer units
chained output to input (``hdl.smartdeal_net``) with one input vector in flight takes
:attr:`InferenceCycles.total` ``= n + sum of the layers' compute`` from the first input accepted
to the last output accepted: each layer takes its inputs as the previous one writes them (it is
loading), so its last input is accepted in the cycle the previous layer's last output is.

:attr:`LayerCycles.ideal` is the shift-add bound ``active * PT``;
:attr:`LayerCycles.cycles_per_weight` and :attr:`LayerCycles.cycles_per_output` are what the unit
costs per rebuilt weight (``S`` per active slot) and per output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .shift_add import ShiftAddTiming

if TYPE_CHECKING:
    from .smartdeal_model import SmartDealLayer, SmartDealLayerSpec, SmartDealModel

__all__ = ["Geometry", "InferenceCycles", "LayerCycles", "MAC_LATENCY", "OUTPUT_LATENCY",
           "SLOT_OVERHEAD", "WRITEBACK_LATENCY", "fetch_words", "geometry", "layer_cycles",
           "model_cycles", "slot_plan"]

#: Cycles a slot costs beyond its ROM reads: the last word landing, the decision.
SLOT_OVERHEAD = 2
#: Cycles from the MAC taking a row to its sum being offered to the write-back (product register,
#: accumulator).
MAC_LATENCY = 2
#: The write-back unit's register stages (``hdl.writeback.Writeback.latency``).
WRITEBACK_LATENCY = 2
#: The MAC taking an output's last row to that output's acceptance at a ready output.
OUTPUT_LATENCY = MAC_LATENCY + WRITEBACK_LATENCY


def fetch_words(S: int, block_start: bool) -> int:
    """ROM words read for one slot: its ``S`` Ce codes, and at a block start the ``S*S`` basis."""
    return S + (S * S if block_start else 0)


@dataclass(frozen=True)
class Geometry:
    """The shape of one SmartDeal layer as the unit walks it: ``m`` outputs, ``n`` inputs, chunk
    width ``S``, ``h`` chunks per block, ``r = ceil(n/S)`` chunks (slots) per output, ``bpr =
    ceil(r/h)`` blocks per output, ``E`` and ``b_bits`` of the codes."""

    m: int
    n: int
    S: int
    h: int
    E: int
    b_bits: int

    @property
    def r(self) -> int:
        return -(-self.n // self.S)

    @property
    def bpr(self) -> int:
        return -(-self.r // self.h)

    @property
    def blocks(self) -> int:
        return self.m * self.bpr

    @property
    def slots(self) -> int:
        return self.m * self.r

    @property
    def ce_depth(self) -> int:
        """Words of the layer's Ce image (``golden.smartdeal_model``: blocks x h x S)."""
        return self.blocks * self.h * self.S

    @property
    def b_depth(self) -> int:
        """Words of the layer's B image (blocks x S x S)."""
        return self.blocks * self.S * self.S

    @property
    def row_pad(self) -> int:
        """Ce words of padding chunks after an output's last real chunk: ``(bpr*h - r) * S``."""
        return (self.bpr * self.h - self.r) * self.S


def geometry(layer: SmartDealLayer | SmartDealLayerSpec) -> Geometry:
    """The :class:`Geometry` of a ``SmartDealLayer`` or a SmartDeal manifest ``LayerSpec``."""
    if hasattr(layer, "codes"):
        c = layer.codes
        (m, n), S, h, E, b = c.shape, c.S, c.rows_per_block, c.E, c.b_bits
    elif hasattr(layer, "rows_per_block"):
        m, n, S, h, E, b = layer.n_out, layer.n_in, layer.S, layer.rows_per_block, layer.E, \
            layer.b_bits
    else:
        raise PermdealError(f"a SmartDeal layer or layer description is needed, not {layer!r}")
    return Geometry(int(m), int(n), int(S), int(h), int(E), int(b))


def slot_plan(layer: SmartDealLayer) -> tuple[np.ndarray, np.ndarray]:
    """``(active, cost)``, both ``(m, r)``: which slots go through the shift-add unit and the
    cycles each slot's fetch costs (``K + SLOT_OVERHEAD``), for a ``SmartDealLayer``."""
    g = geometry(layer)
    codes = np.asarray(layer.codes.codes, dtype=np.int64)
    nz = ((codes >> (g.E + 1)) & 1).any(axis=-1)             # (blocks, h): a non-zero entry
    nz = nz.reshape(g.m, g.bpr * g.h)[:, :g.r]                # (m, r), slot (i, c)
    active = nz.copy()
    active[:, -1] = True
    c = np.arange(g.r)
    cost = np.where(c % g.h == 0, fetch_words(g.S, True), fetch_words(g.S, False)) \
        + SLOT_OVERHEAD
    return active, np.broadcast_to(cost, (g.m, g.r))


@dataclass(frozen=True)
class LayerCycles:
    """Cycle breakdown of one layer on the unit (module docstring): ``compute`` cycles after its
    inputs are loaded, ``active`` slots through the shift-add unit of ``slots``, ``PT`` cycles
    per row, ``S`` weights per row, ``m`` outputs, ``n`` inputs."""

    n: int
    m: int
    S: int
    slots: int
    active: int
    PT: int
    compute: int

    @property
    def skipped(self) -> int:
        """Slots with all-zero Ce codes that were skipped."""
        return self.slots - self.active

    @property
    def rebuilt_weights(self) -> int:
        return self.active * self.S

    @property
    def ideal(self) -> int:
        """``active * PT``: the shift-add unit busy every cycle."""
        return self.active * self.PT

    @property
    def cycles_per_weight(self) -> float:
        return self.compute / self.rebuilt_weights

    @property
    def cycles_per_output(self) -> float:
        return self.compute / self.m

    def to_json(self) -> dict[str, int | float]:
        return {"n": self.n, "m": self.m, "slots": self.slots, "active": self.active,
                "skipped": self.skipped, "cycles_per_row": self.PT, "compute": self.compute,
                "ideal": self.ideal, "cycles_per_weight": round(self.cycles_per_weight, 4),
                "cycles_per_output": round(self.cycles_per_output, 4)}


def layer_cycles(layer: SmartDealLayer, lanes: int | None = None) -> LayerCycles:
    """Cycles of a ``SmartDealLayer`` on a unit whose shift-add unit has ``lanes`` lanes (default
    ``S``)."""
    g = geometry(layer)
    lanes = g.S if lanes is None else integer(lanes, "shift-add lanes", 1, g.S)
    PT = ShiftAddTiming(g.S, g.E, g.b_bits, lanes).cycles_per_row
    active, cost = slot_plan(layer)
    active, cost = active.reshape(-1), cost.reshape(-1)
    done = np.cumsum(cost)[active]                        # cost summed through each active slot
    seg = np.diff(done, prepend=0)
    gaps = np.maximum(seg, PT)
    gaps[0] = seg[0] - 1                                  # a_1 = seg_1 - 1: no row before it
    compute = int(gaps.sum()) + PT + OUTPUT_LATENCY + 2
    return LayerCycles(n=g.n, m=g.m, S=g.S, slots=g.slots, active=int(active.sum()), PT=PT,
                       compute=compute)


@dataclass(frozen=True)
class InferenceCycles:
    """One input vector through a chain of layer units: ``load`` cycles, then every layer."""

    load: int
    layers: tuple

    @property
    def total(self) -> int:
        """First input accepted through last output accepted, both included."""
        return self.load + sum(l.compute for l in self.layers)


def model_cycles(model: SmartDealModel, lanes: int | None = None) -> InferenceCycles:
    """Cycles of one input vector through a ``SmartDealModel``'s chain of layer units (the same for
    every input vector)."""
    return InferenceCycles(load=geometry(model.layers[0]).n,
                           layers=tuple(layer_cycles(l, lanes) for l in model.layers))
