"""Cycle model of the PermDNN engine (DESIGN.md 4.2): the exact count the RTL must meet.

Hardware: ``n_pe`` PEs of ``lanes`` multiplier lanes, ``NL = n_pe * lanes`` lanes in all. Block-row
``I`` of a layer goes to lane ``g = I mod NL`` as its slot ``t = I div NL``, so every lane holds
``B = ceil(M' / NL)`` slots, and lane ``g`` writes the outputs of its block-rows into its own
activation bank. The next layer's inputs therefore lie in banks by the *producing* layer's
block-rows of ``p_prev`` words; the network's input is laid out the same way in blocks of
``scan_width`` words.

One layer, from the cycle its descriptor is loaded to the cycle its last output is written:

1. ``start_cycles`` to load the layer descriptor.
2. Issue: the non-zero detector reads one window per cycle: each producer block of ``p_prev``
   input words (``ceil(n / p_prev)`` blocks, positions past ``n`` masked) is cut into
   ``ceil(p_prev / scan_width)`` windows of up to ``scan_width`` words. Each non-zero of a window is
   broadcast to every lane for ``B`` consecutive cycles (slot ``t = 0..B-1``); a window without
   non-zeros still costs one cycle. Issue cycles ``= sum over windows of max(1, B * nnz_w)``.
3. ``pipeline_cycles`` for the last product to reach its accumulator (default 4: one broadcast
   register in the controller, then the lane's weight read, index and multiply, accumulate:
   ``hdl.lane.LATENCY`` = 3).
4. Write-back: every lane drains its ``B * p`` accumulators, one per cycle, all lanes in parallel,
   through the write-back unit into its bank, the last result landing ``writeback_latency``
   cycles later (default 3: one cycle of accumulator read, then the two register stages of
   ``hdl.writeback.Writeback``).

A whole inference adds loading the ``n`` input activations from the input stream and streaming
the ``m`` outputs of the last layer, one word per cycle each with no idle or back-pressure.

The latencies are fields of :class:`EngineConfig` so that the RTL issue can state its exact
pipeline; the structure above is the contract.
"""

from dataclasses import dataclass

import numpy as np

from permdeal.checks import integer
from permdeal.errors import PermdealError


@dataclass(frozen=True)
class EngineConfig:
    """A PermDNN engine's size and fixed latencies (see the module docstring)."""

    n_pe: int
    lanes: int
    scan_width: int = 8
    start_cycles: int = 1
    pipeline_cycles: int = 4
    writeback_latency: int = 3

    def __post_init__(self):
        integer(self.n_pe, "PE count (--pes)", 1)
        integer(self.lanes, "lanes per PE (--lanes)", 1)
        integer(self.scan_width, "scan width", 1)
        for f in ("start_cycles", "pipeline_cycles", "writeback_latency"):
            integer(getattr(self, f), f, 0)

    @property
    def total_lanes(self):
        """``NL = n_pe * lanes``."""
        return self.n_pe * self.lanes

    def slots(self, block_rows):
        """``B = ceil(M' / NL)``: block-rows per lane, i.e. cycles per non-zero input."""
        return -(-block_rows // self.total_lanes)

    def lane_of(self, block_row):
        """``(pe, lane, slot)`` that holds block-row ``I``: lane ``g = I mod NL``, slot ``I div NL``."""
        g, t = block_row % self.total_lanes, block_row // self.total_lanes
        return g // self.lanes, g % self.lanes, t

    def to_json(self):
        return {"n_pe": self.n_pe, "lanes": self.lanes, "scan_width": self.scan_width,
                "start_cycles": self.start_cycles, "pipeline_cycles": self.pipeline_cycles,
                "writeback_latency": self.writeback_latency}


@dataclass(frozen=True)
class LayerCycles:
    """Cycle breakdown of one layer on one input vector."""

    nnz: int
    slots: int
    start: int
    issue: int
    pipeline: int
    writeback: int
    useful_lane_cycles: int
    total_lanes: int

    @property
    def total(self):
        return self.start + self.issue + self.pipeline + self.writeback

    @property
    def ideal(self):
        """``nnz * B``: the issue cycles of a detector that never idles."""
        return self.nnz * self.slots

    @property
    def utilization(self):
        """Multiplies done on real block-rows over lane-cycles available in the whole layer."""
        return self.useful_lane_cycles / (self.total_lanes * self.total)


def window_schedule(n, in_block, scan_width, total_lanes):
    """The windows of a layer of ``n`` inputs produced in blocks of ``in_block`` words, in order.

    Each is ``(bank, row, base, mask)``: producer block ``b`` lies in lane ``b mod NL``'s bank from
    wide row ``(b div NL) * S`` (``S = ceil(in_block / scan_width)``); its window ``s`` is row
    ``(b div NL) * S + s`` and holds inputs ``base = b * in_block + s * scan_width`` onwards;
    ``mask`` bit ``k`` is set for the words that are real (inside the block and below ``n``).
    :func:`layer_cycles` counts the same windows.
    """
    d, s_count = scan_width, -(-in_block // scan_width)
    out = []
    for b in range(-(-n // in_block)):
        for s in range(s_count):
            base = b * in_block + s * d
            mask = sum(1 << k for k in range(d) if s * d + k < in_block and base + k < n)
            out.append((b % total_lanes, (b // total_lanes) * s_count + s, base, mask))
    return out


def layer_cycles(x, block_rows, p, cfg, in_block=None):
    """Cycles of one layer with ``block_rows`` (``M'``) and block size ``p`` on activations ``x``.

    ``x`` is the layer's input activation vector (any numeric codes; only zero/non-zero matters).
    ``in_block`` is the block size of the layer that produced ``x`` (default ``scan_width``, the
    layout of the network's input).
    """
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise PermdealError(f"cycle model needs one non-empty activation vector, not shape {x.shape}")
    in_block = cfg.scan_width if in_block is None else integer(in_block, "producer block size", 1)
    b = cfg.slots(block_rows)
    d = cfg.scan_width
    n_blocks, seg = -(-x.size // in_block), -(-in_block // d)
    nz = np.zeros(n_blocks * in_block, bool)
    nz[:x.size] = x != 0
    windows = np.zeros((n_blocks, seg * d), bool)
    windows[:, :in_block] = nz.reshape(n_blocks, in_block)
    per_window = windows.reshape(n_blocks * seg, d).sum(axis=1)
    nnz = int(per_window.sum())
    issue = int(np.maximum(1, b * per_window).sum())
    return LayerCycles(nnz=nnz, slots=b, start=cfg.start_cycles, issue=issue,
                       pipeline=cfg.pipeline_cycles, writeback=b * p + cfg.writeback_latency,
                       useful_lane_cycles=nnz * block_rows, total_lanes=cfg.total_lanes)


@dataclass(frozen=True)
class InferenceCycles:
    """Cycle breakdown of one inference through a model."""

    load: int
    layers: tuple
    unload: int

    @property
    def compute(self):
        return sum(l.total for l in self.layers)

    @property
    def total(self):
        return self.load + self.compute + self.unload

    @property
    def utilization(self):
        """Multiplies on real block-rows over lane-cycles available in the compute phase."""
        lanes = self.layers[0].total_lanes
        return sum(l.useful_lane_cycles for l in self.layers) / (lanes * self.compute)


def model_cycles(model, x_codes, cfg):
    """Cycles of one inference of a :class:`~permdeal.golden.model.QuantModel` on one input."""
    acts = model.forward(np.asarray(x_codes), trace=True)
    if acts[0].ndim != 1:
        raise PermdealError("model_cycles takes one input vector; loop over a batch")
    producers = [None] + [l.matrix.p for l in model.layers[:-1]]
    layers = tuple(layer_cycles(a, l.matrix.blocks[0], l.matrix.p, cfg, in_block)
                   for a, l, in_block in zip(acts, model.layers, producers))
    return InferenceCycles(load=model.n_inputs, layers=layers, unload=model.layers[-1].shape[0])
