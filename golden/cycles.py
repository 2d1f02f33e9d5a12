"""Cycle model of the PermDNN engine (docs/design.md 4.2): the exact count the RTL meets.

Hardware: ``n_pe`` PEs of ``lanes`` multiplier lanes, ``NL = n_pe * lanes`` lanes in all. Block-row
``I`` of a layer goes to lane ``g = I mod NL`` as its slot ``t = I div NL``, so every lane holds
``B = ceil(M' / NL)`` slots, and lane ``g`` writes the outputs of its block-rows into its own
activation bank. The next layer's inputs therefore lie in banks by the *producing* layer's
block-rows of ``p_prev`` words; the network's input is laid out the same way in blocks of
``scan_width`` words (``D``).

With ``K`` lane groups (:attr:`EngineConfig.groups`) every group of ``G = NL / K`` lanes holds
every block-row (``I = t*G + h`` in its lane ``h``, ``B = ceil(M' / G)``) for every ``K``-th
input block, inputs and network input in blocks of ``p``; each group runs the steps below on its
own blocks (:func:`group_inputs`), draining waits for the last, and the groups' sums take
:attr:`EngineConfig.reduce_stages` more cycles (docs/design.md 9, "Lane groups").

The windows of a layer: each producer block of ``p_prev`` input words (``ceil(n / p_prev)``
blocks, positions past ``n`` masked) is cut into ``ceil(p_prev / D)`` windows of up to ``D``
words (:func:`window_schedule`); ``z_w`` is the number of non-zero words of window ``w``.

One layer, in cycles counted from its ``START`` cycle (cycle 0), in which the controller starts
the window reader (``hdl.engine``):

1. The reader reads window ``w`` in cycle ``I_w``: ``I_0 = 0``, then one a cycle while its buffer
   (:attr:`EngineConfig.read_buffer` windows, counting the reads in flight) has room: ``I_w`` is
   ``I_{w-1} + 1`` or, when more, the cycle after the ``(w - read_buffer + 1)``-th of the earlier
   windows left the reader. The word arrives in cycle ``I_w + RL - 1`` (``RL``,
   :attr:`EngineConfig.read_latency`: the banks' read, :func:`bank_read_latency`, and the
   reader's buffer); a window with no live word (``z_w = 0``) is dropped there and leaves the
   reader in that cycle, and one with pairs is offered to the non-zero detector from ``I_w +
   RL`` and leaves it when the detector accepts it, in cycle ``A_w = max(I_w + RL, R_w)``, where
   the detector is ready ``R_w`` in the cycle the issuer accepts the last pair of the window it
   took before (``R = 0`` for the layer's first). The detector never sees an empty window.
2. The issuer accepts a pair in cycle ``P`` and broadcasts its ``B`` operations in cycles ``P +
   ISSUE_LATENCY .. P + ISSUE_LATENCY + B - 1``; it accepts the next pair from cycle ``P + B``
   on. The first pair of window ``w`` is
   offered from ``A_w + DETECT_LATENCY``, each further pair of the window right away, so pairs go
   back to back, ``B`` cycles apart, unless the reader falls behind (the windows between two
   with pairs are read one a cycle, and a full buffer stops the reads).
3. Draining starts in cycle ``D0 = max(x + op_to_drain(cfg), E + DONE_LATENCY)`` where
   ``x`` is the cycle of the layer's last operation on the issuer's output (no term without one),
   ``op_to_drain`` the broadcast tree's stages plus ``LANE_LATENCY``, and ``E`` the cycle the
   last of the layer's windows left the reader (accepted or dropped).
4. Write-back: every lane drains its ``B * p`` accumulators, one per cycle, all lanes in parallel,
   through the write-back unit into the other set of banks; the last drain request is in cycle
   ``D0 + B*p - 1`` and the next layer's ``START`` (or the output phase) comes
   ``WRITEBACK_LATENCY + 1`` cycles after it, in cycle ``D0 + B*p + WRITEBACK_LATENCY``: the
   layer's cycles (docs/design.md section 9).

The hidden drain (:attr:`EngineConfig.hides_drain`, docs/design.md 9): on one lane group, every
layer of an FC network but the first starts in the cycle of the previous layer's first drain
request, its operations into the lanes' other accumulator set; its reads wait for their blocks
(:func:`block_ready`) and its drain for the previous drain's ``B*p`` requests, so it takes
``max(D0, B'*q)`` cycles to its own first drain request, which is the next layer's ``START``
(:func:`layer_cycles`' ``behind`` and ``last``); the last layer's write-back is as in step 4.

A whole inference adds loading the ``n`` input activations from the input stream (one per cycle,
the first layer's ``START`` right after the last) and streaming the ``m`` outputs of the last
layer (the first :attr:`EngineConfig.output_latency` cycles after the output phase begins, then one per cycle). With
no idle on the input and no back-pressure on the output, :attr:`InferenceCycles.total` is the
count from the cycle the first input is accepted to the cycle the last output is, both included,
and the period of back-to-back inferences.

The latencies are the RTL blocks' (``tests/test_contract.py`` ties them together).
"""

import bisect
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .model import QuantModel

#: A window accepted by the detector to its first pair (``hdl.nz_detect``).
DETECT_LATENCY = 1
#: A pair accepted by the issuer to its first operation (``hdl.issuer.Issuer.latency``: the pair
#: register and the two address stages).
ISSUE_LATENCY = 3
#: An operation at a lane to the first drain request that sees its sum (``hdl.lane.LATENCY``).
LANE_LATENCY = 5
#: PEs (at most) that one register of the operation's broadcast tree drives (``hdl.engine``).
BROADCAST_FANOUT = 8
#: Levels of the activation banks' bank-select multiplexer tree between two registers
#: (``hdl.act_banks``): the banks' read is registered, then every this many levels (a 16-way
#: select a cycle; the tree's first register, the widest, has 16 times fewer words than banks).
BANK_MUX_LEVELS = 4


def bank_read_latency(banks: int) -> int:
    """Cycles from a read request to the activation banks to their word: the request's register
    (the one address that fans out to every bank), the read, then one register per
    :data:`BANK_MUX_LEVELS` levels of the bank-select tree (``ceil(log2 banks)`` levels, at
    least 1)."""
    return 2 + bank_tree_stages(banks)


def bank_tree_stages(banks: int) -> int:
    """Register stages of the bank-select tree over ``banks`` banks: one per
    :data:`BANK_MUX_LEVELS` of its ``ceil(log2 banks)`` levels (at least 1)."""
    levels = max(1, (banks - 1).bit_length())
    return -(-levels // BANK_MUX_LEVELS)


#: The last window out of the reader (accepted by the detector or dropped) to the first drain
#: request: the reader's ``done`` register and the controller's.
DONE_LATENCY = 2
#: The last drain request to the next ``START``: the drain read and its register
#: (``hdl.lane.DRAIN_LATENCY``), the write-back unit's two stages
#: (``hdl.writeback.Writeback.latency``), the bank write.
WRITEBACK_LATENCY = 4


#: Activations the non-zero detector scans per cycle when none is given (the one default of
#: ``--scan-width``, the API's ``scan_width`` and the configuration files).
DEFAULT_SCAN_WIDTH = 8
#: The lanes' multiplier styles (``--multiplier``, ``hdl.multiplier``), the default first:
#: ``native`` (the Verilog ``*`` cut in two half products), ``booth`` (gates: standard cells) and
#: ``dsp`` (registered operands, then the whole ``*`` into a registered product: an FPGA's DSP
#: block with its own input and output registers). The same latency and products, so the cycle
#: model does not depend on it.
MULTIPLIERS = ("native", "booth", "dsp")


@dataclass(frozen=True)
class EngineConfig:
    """A PermDNN engine's size: ``n_pe`` PEs of ``lanes`` lanes, a detector ``scan_width`` wide,
    the lanes' ``multiplier`` style (:data:`MULTIPLIERS`; the hardware's only, not its cycles),
    and ``groups`` lane groups (``K``, docs/design.md 4.2: a power of two dividing ``n_pe``; each
    group is ``n_pe / K`` consecutive PEs with an issue path of its own and takes every layer's
    input blocks ``J`` with ``J mod K`` its number)."""

    n_pe: int
    lanes: int
    scan_width: int = DEFAULT_SCAN_WIDTH
    multiplier: str = MULTIPLIERS[0]
    groups: int = 1
    #: Per-layer group counts ``K_l`` (docs/design.md 4.2, "Per-layer group counts"): each a
    #: power of two dividing :attr:`groups`, the largest equal to it; empty when every layer
    #: uses :attr:`groups` (a tuple of equal counts is stored empty: one statement of a fact).
    layer_groups: tuple = ()

    def __post_init__(self):
        integer(self.n_pe, "PE count (--pes)", 1)
        integer(self.lanes, "lanes per PE (--lanes)", 1)
        integer(self.scan_width, "scan width (--scan-width)", 1)
        if self.multiplier not in MULTIPLIERS:
            raise PermdealError(f"multiplier (--multiplier) must be one of "
                                f"{', '.join(MULTIPLIERS)}, not {self.multiplier!r}")
        if not isinstance(self.layer_groups, tuple):
            raise PermdealError(f"per-layer lane groups must be a tuple, not "
                                f"{type(self.layer_groups).__name__}")
        for i, k in enumerate(self.layer_groups):
            integer(k, f"lane groups of layer {i} (--groups)", 1)
            if k & (k - 1) or self.n_pe % k:
                raise PermdealError(f"lane groups (--groups) of layer {i} must be a power of two "
                                    f"that divides the PE count {self.n_pe}, not {k}")
        integer(self.groups, "lane groups (--groups)", 1)
        if self.groups & (self.groups - 1) or self.n_pe % self.groups:
            raise PermdealError(f"lane groups (--groups) must be a power of two that divides the "
                                f"PE count {self.n_pe}, not {self.groups}")
        for i, k in enumerate(self.layer_groups):
            if self.groups % k:
                raise PermdealError(f"lane groups (--groups) of layer {i} must be a power of two "
                                    f"that divides the engine's {self.groups} groups, not {k}")
        if self.layer_groups and max(self.layer_groups) != self.groups:
            raise PermdealError(f"lane groups (--groups): the engine's count {self.groups} must be "
                                f"the largest layer's, not {max(self.layer_groups)}")
        if all(k == self.groups for k in self.layer_groups):
            object.__setattr__(self, "layer_groups", ())

    @classmethod
    def with_layer_groups(cls, cfg: "EngineConfig", counts) -> "EngineConfig":
        """``cfg`` with lane groups ``counts``: one count for every layer, or one per layer (the
        engine's :attr:`groups` their largest)."""
        if isinstance(counts, int):
            return replace(cfg, groups=counts, layer_groups=())
        counts = tuple(counts)
        if not counts:
            raise PermdealError("lane groups (--groups) need a count for every layer, not none")
        return replace(cfg, groups=max(counts), layer_groups=counts)

    @property
    def groups_text(self) -> str:
        """The lane groups in words for reports: ``""`` with one, ``"4 lane groups"``, or
        ``"4 lane groups (per layer 1, 2, 4)"``."""
        if self.groups == 1:
            return ""
        per = f" (per layer {', '.join(map(str, self.layer_groups))})" if self.layer_groups \
            else ""
        return f"{self.groups} lane groups{per}"

    def groups_of(self, index: int) -> int:
        """``K_l``, the lane groups layer ``index`` uses (:attr:`groups` unless
        :attr:`layer_groups` says)."""
        return self.layer_groups[index] if self.layer_groups else self.groups

    def check_layers(self, count: int) -> None:
        """Refuse per-layer group counts for another number of layers than ``count``."""
        if self.layer_groups and len(self.layer_groups) != count:
            raise PermdealError(f"lane groups (--groups) name {len(self.layer_groups)} layers' "
                                f"counts for a network of {count} layers")

    def span(self, groups: int | None = None) -> int:
        """``m = K / K_l``: the hardware groups one of a layer's ``K_l`` groups spans (each holds
        ``G`` of its lanes; its drain takes ``m`` turns through group 0's write-back)."""
        return self.groups // self._layer_k(groups)

    def _layer_k(self, groups: int | None) -> int:
        if groups is None:
            return self.groups
        if groups < 1 or groups & (groups - 1) or self.groups % groups:
            raise PermdealError(f"lane groups (--groups) of a layer must be a power of two that "
                                f"divides the engine's {self.groups} groups, not {groups}")
        return groups

    @property
    def hides_drain(self) -> bool:
        """Whether an FC network's next layer starts while the layer before drains, its
        operations into the lanes' other accumulator set (docs/design.md 9, "Hidden drain"):
        engines of one lane group."""
        return self.groups == 1

    def hides_drain_of(self, slots) -> bool:
        """Whether an FC network whose layers have ``slots`` (``B`` each, in order) hides its
        drains (two accumulator sets): :attr:`hides_drain` and a layer but the last with ``B >
        1``. With ``B = 1`` everywhere the next layer's first block comes with the drain's last
        request, so hiding saves nothing and the engine keeps one set (docs/design.md 9)."""
        return self.hides_drain and any(b > 1 for b in list(slots)[:-1])

    @property
    def group_pes(self) -> int:
        """PEs of a lane group, ``n_pe / K``."""
        return self.n_pe // self.groups

    @property
    def group_lanes(self) -> int:
        """``G = NL / K``: the lanes of one group, which hold every block-row of a layer."""
        return self.total_lanes // self.groups

    @property
    def reduce_stages(self) -> int:
        """``R = log2 K``: the registered adder stages that sum the groups' partial sums while
        draining (none with one group)."""
        return self.groups.bit_length() - 1

    @property
    def broadcast_stages(self) -> int:
        """Register stages from a group's issuer to its PEs: a tree in which one register drives
        at most :data:`BROADCAST_FANOUT` others, one per PE at its last level."""
        stages, reach = 1, BROADCAST_FANOUT
        while reach < self.group_pes:
            stages, reach = stages + 1, reach * BROADCAST_FANOUT
        return stages

    @property
    def op_to_drain(self) -> int:
        """Cycles from the last operation on the issuer's output to the first drain request:
        the broadcast tree and the lane (:data:`LANE_LATENCY`)."""
        return self.broadcast_stages + LANE_LATENCY

    @property
    def bank_read_latency(self) -> int:
        """Cycles from a read request to the activation banks to their word
        (:func:`bank_read_latency` of the ``G`` banks a group reads)."""
        return bank_read_latency(self.group_lanes)

    @property
    def read_latency(self) -> int:
        """``START`` to the first window offered (``hdl.window_reader.WindowReader.latency``):
        the banks' read, then the reader's output buffer."""
        return self.bank_read_latency + 1

    @property
    def read_buffer(self) -> int:
        """Windows the reader holds or has in flight at most (``hdl.read_ahead.depth`` of the
        banks' read latency): ``RL + 1``, one more than the reads in flight and a full pipeline
        need; a window read waits for room in it (docs/design.md 9, step 1)."""
        return self.bank_read_latency + 2

    @property
    def output_latency(self) -> int:
        """Start of the output phase to the first output offered
        (``hdl.output_reader.OutputReader.latency``): the banks' read and the buffer."""
        return self.bank_read_latency + 1

    @property
    def total_lanes(self) -> int:
        """``NL = n_pe * lanes``."""
        return self.n_pe * self.lanes

    @property
    def writeback_latency(self) -> int:
        """The last drain request to the next ``START``, less one: :data:`WRITEBACK_LATENCY`
        and the groups' adder stages (:attr:`reduce_stages`)."""
        return WRITEBACK_LATENCY + self.reduce_stages

    def slots(self, block_rows: int, groups: int | None = None) -> int:
        """``B = ceil(M' / (m*G))``: block-rows per lane, i.e. cycles per non-zero input, for a
        layer of ``groups`` (``K_l``, default :attr:`groups`) lane groups of ``m*G`` lanes."""
        return -(-block_rows // (self.group_lanes * self.span(groups)))

    def drain_cycles(self, block_rows: int, p: int, groups: int | None = None) -> int:
        """Drain requests of a layer: ``B * p`` (every lane's ``B*p`` accumulators, all lanes at
        once: the ``m`` hardware groups of a layer's group each through a write-back of its
        own, :attr:`writeback_groups`)."""
        return self.slots(block_rows, groups) * p

    @property
    def writeback_groups(self) -> int:
        """``W = K / min K_l``: the hardware groups with a write-back (and bias memories), groups
        ``0, K_min, 2K_min, ...``: those that head a turn ``i`` (hardware groups ``i*K_l ..
        i*K_l + K_l - 1``, whose sums the adder tree adds into group ``i*K_l``) in some layer.
        One with a single count: group 0's."""
        return self.groups // min(self.layer_groups or (self.groups,))

    @property
    def writeback_pes(self) -> int:
        """PEs with a write-back: those of the :attr:`writeback_groups`."""
        return self.group_pes * self.writeback_groups

    def lane_of(self, block_row: int, group: int = 0,
                groups: int | None = None) -> tuple[int, int, int]:
        """``(pe, lane, slot)`` of group ``group`` (of a layer's ``groups``, ``K_l``, default
        :attr:`groups`) that holds block-row ``I``: the group's lane ``h' = I mod (m*G)``, slot
        ``I div (m*G)``, engine lane :meth:`hardware_lane`."""
        width = self.group_lanes * self.span(groups)
        h, t = block_row % width, block_row // width
        g = self.hardware_lane(group, h, groups)
        return g // self.lanes, g % self.lanes, t

    def hardware_lane(self, group: int, lane: int, groups: int | None = None) -> int:
        """The engine lane ``g`` of lane ``h'`` of group ``j`` of a layer of ``groups`` (``K_l``)
        groups: hardware group ``k = j + (h' div G) * K_l``, its lane ``h' mod G``, so ``g =
        k*G + h' mod G`` (docs/design.md 4.2: group ``j`` spans the hardware groups ``j, j +
        K_l, j + 2K_l, ...``; with ``K_l = K`` simply ``g = j*G + h'``)."""
        k_l, g = self._layer_k(groups), self.group_lanes
        return (group + (lane // g) * k_l) * g + lane % g

    def in_block(self, p: int, producer: int | None, groups: int | None = None) -> int:
        """The block size ``q`` in which a layer of block size ``p`` and ``groups`` lane groups
        (``K_l``, default :attr:`groups`) finds its inputs in the banks: its producer's ``p``
        (``producer``), or for the network input (``None``) ``D`` with one group and ``p`` with
        more. With more than one group ``q`` must be ``p`` (each group reads whole input blocks
        ``J`` of its own)."""
        k = self._layer_k(groups)
        if producer is None:
            return self.scan_width if k == 1 else p
        if k > 1 and producer != p:
            raise PermdealError(f"lane groups (--groups {k}) need the layer's block size p equal "
                                f"to its input's producer's, not p = {p} after p = {producer}; "
                                f"use 1 group for this layer")
        return producer

    def to_json(self) -> dict[str, int]:
        out = {"n_pe": self.n_pe, "lanes": self.lanes, "scan_width": self.scan_width,
               "multiplier": self.multiplier}
        if self.groups > 1:
            out["groups"] = self.groups
        if self.layer_groups:
            out["layer_groups"] = list(self.layer_groups)
        return out


@dataclass(frozen=True)
class LayerCycles:
    """Cycle breakdown of one layer on one input vector.

    ``issue`` is the count from ``START`` to the first drain request (``D0``), ``writeback`` the
    rest (``B*p + WRITEBACK_LATENCY``).
    """

    nnz: int
    slots: int
    issue: int
    writeback: int
    useful_lane_cycles: int
    total_lanes: int
    groups: int = 1

    @property
    def total(self) -> int:
        return self.issue + self.writeback

    @property
    def ideal(self) -> int:
        """``ceil(nnz * B / K)``: the operation cycles, what detectors that never idle need with
        the non-zero inputs spread evenly over the ``K`` lane groups."""
        return -(-self.nnz * self.slots // self.groups)

    @property
    def utilization(self) -> float:
        """Multiplies done on real block-rows over lane-cycles available in the whole layer."""
        return self.useful_lane_cycles / (self.total_lanes * self.total)


def window_schedule(n: int, in_block: int, scan_width: int,
                    total_lanes: int) -> list[tuple[int, int, int, int]]:
    """The windows of a layer of ``n`` inputs produced in blocks of ``in_block`` words, in order.

    Each is ``(bank, row, base, mask)``: producer block ``b`` lies in lane ``b mod NL``'s bank from
    wide row ``(b div NL) * S`` (``S = ceil(in_block / scan_width)``); its window ``s`` is row
    ``(b div NL) * S + s`` and holds inputs ``base = b * in_block + s * scan_width`` onwards;
    ``mask`` bit ``k`` is set for the words that are real (inside the block and below ``n``).
    :func:`window_nnz` counts the non-zeros of the same windows.
    """
    d, s_count = scan_width, -(-in_block // scan_width)
    out = []
    for b in range(-(-n // in_block)):
        for s in range(s_count):
            base = b * in_block + s * d
            mask = sum(1 << k for k in range(d) if s * d + k < in_block and base + k < n)
            out.append((b % total_lanes, (b // total_lanes) * s_count + s, base, mask))
    return out


def window_nnz(x: np.ndarray, in_block: int, scan_width: int) -> np.ndarray:
    """``z_w``: the non-zero words of each window of :func:`window_schedule`, in order (an int
    array; ``x`` is the layer's input vector, only zero/non-zero matters)."""
    d = scan_width
    n_blocks, seg = -(-x.size // in_block), -(-in_block // d)
    nz = np.zeros(n_blocks * in_block, bool)
    nz[:x.size] = x != 0
    windows = np.zeros((n_blocks, seg * d), bool)
    windows[:, :in_block] = nz.reshape(n_blocks, in_block)
    return windows.reshape(n_blocks * seg, d).sum(axis=1)


def drain_start(z: np.ndarray, b: int, cfg: EngineConfig, avail=None) -> int:
    """``D0``: the cycle (from ``START``) of a layer's first drain request, for windows of
    ``z`` non-zeros and ``B = b`` slots on engine ``cfg``; steps 1 to 3 of the module
    docstring. ``avail``: per window, the first cycle it may be read (its block written by the
    drain of the layer before, :func:`block_ready`), or None."""
    return pass_times(z, b, cfg, avail)[1]


#: The issuer's last operation to the first cycle the next conv pass may start: the issuer's
#: ``busy`` register and the controller's (docs/design.md 15).
ISSUED_LATENCY = 2


def pass_times(z: np.ndarray, b: int, cfg: EngineConfig, avail=None) -> tuple[int, int]:
    """``(F, D0)`` of a pass (a layer, or a conv pass) over windows ``z``, from its ``START``:
    ``D0`` as :func:`drain_start`; ``F`` the first cycle a next conv pass may start, its
    reader, detector and issuer done: ``max(op_last + ISSUED_LATENCY, E + DONE_LATENCY)``
    (``E + DONE_LATENCY`` without an operation; docs/design.md 15)."""
    read_latency, op_to_drain, room = cfg.read_latency, cfg.op_to_drain, cfg.read_buffer
    read = -1                # I_w
    left = []                # the cycles the windows read so far left the reader, ascending
    free = None              # the cycle the issuer can take its next pair (P + B of the last)
    ready = 0                # R_w
    for w, zw in enumerate(z.tolist()):
        read = read + 1 if w < room else max(read + 1, left[w - room] + 1)
        if avail is not None:
            read = max(read, avail[w])
        if zw:
            accept = max(read + read_latency, ready)    # A_w
            first = accept + DETECT_LATENCY if free is None else max(accept + DETECT_LATENCY, free)
            ready = first + (zw - 1) * b   # the last pair's acceptance
            free = ready + b
            bisect.insort(left, accept)
        else:
            bisect.insort(left, read + read_latency - 1)   # dropped as it arrives
    done = left[-1] + DONE_LATENCY
    last_op = None if free is None else free + ISSUE_LATENCY - 1
    if last_op is None:
        return done, done
    return max(last_op + ISSUED_LATENCY, done), max(last_op + op_to_drain, done)


def block_ready(windows: int, in_block: int, cfg: EngineConfig) -> list[int]:
    """With the drain hidden (:attr:`EngineConfig.hides_drain`), the first cycle (from the
    layer's ``START``, which is the first drain request of the layer before) in which each of a
    layer's ``windows`` may be read: window ``w`` lies in producer block ``J = w div S`` (``S =
    ceil(q/D)``), which lane ``J mod NL`` drains as its slot ``t = J div NL``, requests ``t*q ..
    t*q + q - 1``; the bank holds it ``WRITEBACK_LATENCY + 1`` cycles after the last, so from
    cycle ``(t + 1)*q + WRITEBACK_LATENCY`` (docs/design.md 9, "Hidden drain")."""
    per_block = -(-in_block // cfg.scan_width)
    return [((w // per_block) // cfg.total_lanes + 1) * in_block + WRITEBACK_LATENCY
            for w in range(windows)]


def group_inputs(x: np.ndarray, block: int, groups: int) -> list[np.ndarray]:
    """Each lane group's share of a layer's input vector ``x`` held in blocks of ``block`` words:
    group ``k`` takes blocks ``J = k, k + K, k + 2K, ...``, in order, as one vector (its local
    index ``i*block + c`` for block ``J = k + i*K``); the last block of the layer may be short."""
    if groups == 1:
        return [x]
    nb = -(-x.size // block)
    padded = np.zeros(nb * block, x.dtype)
    padded[:x.size] = x
    rows = padded.reshape(nb, block)
    out = []
    for k in range(groups):
        share = rows[k::groups].reshape(-1)
        if (nb - 1) % groups == k:   # this group holds the short last block
            share = share[:share.size - (nb * block - x.size)]
        out.append(share)
    return out


def group_n(n: int, block: int, groups: int) -> list[int]:
    """Each group's input count (the sizes of :func:`group_inputs`): ``n_k``."""
    return [a.size for a in group_inputs(np.zeros(n, np.int8), block, groups)]


def layer_cycles(x: npt.ArrayLike, block_rows: int, p: int, cfg: EngineConfig,
                 in_block: int | None = None, groups: int | None = None, *,
                 behind: int | None = None, last: bool = True) -> LayerCycles:
    """Cycles of one layer with ``block_rows`` (``M'``) and block size ``p`` on activations ``x``.

    ``x`` is the layer's input activation vector (any numeric codes; only zero/non-zero matters).
    ``in_block`` is the block size of the layer that produced ``x`` (``None`` for the network
    input: :meth:`EngineConfig.in_block`). ``groups``: the layer's lane groups ``K_l`` (default
    ``cfg.groups``). With lane groups every group runs steps 1 to 3 on its own input blocks
    (:func:`group_inputs`) and draining starts when the last group is done; it takes
    :meth:`EngineConfig.drain_cycles` requests.

    The hidden drain (:attr:`EngineConfig.hides_drain`, docs/design.md 9): ``behind`` is the
    ``B*p`` of the layer before when this layer starts with that layer's first drain request
    (its windows wait for their blocks, :func:`block_ready`, and its drain for that drain's
    last request: ``issue = max(D0, behind)``); ``last=False`` when the next layer starts with
    this one's first drain request (no ``writeback`` of its own: the next layer's count has it).
    """
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise PermdealError(f"cycle model needs one non-empty activation vector, not shape {x.shape}")
    if in_block is not None:
        in_block = integer(in_block, "producer block size", 1)
    k = cfg.groups if groups is None else groups
    in_block = cfg.in_block(p, in_block, k)
    b = cfg.slots(block_rows, k)
    shares = group_inputs(x, in_block, k)
    if any(s.size == 0 for s in shares):
        raise PermdealError(f"a layer of {x.size} inputs in blocks of {in_block} leaves lane "
                            f"groups without input (--groups {k}); use fewer groups")
    zs = [window_nnz(s, in_block, cfg.scan_width) for s in shares]
    nnz = int(sum(z.sum() for z in zs))
    if (behind is not None or not last) and not cfg.hides_drain:
        raise PermdealError("a layer behind another's drain needs an engine that hides it "
                            "(one lane group)")
    if behind is None:
        issue = max(drain_start(z, b, cfg) for z in zs)
    else:
        (z,) = zs
        issue = max(drain_start(z, b, cfg, block_ready(z.size, in_block, cfg)), behind)
    drain = cfg.drain_cycles(block_rows, p, k)
    return LayerCycles(nnz=nnz, slots=b, issue=issue,
                       writeback=drain + cfg.writeback_latency if last else 0,
                       useful_lane_cycles=nnz * block_rows, total_lanes=cfg.total_lanes,
                       groups=k)


@dataclass(frozen=True)
class InferenceCycles:
    """Cycle breakdown of one inference through a model."""

    load: int
    layers: tuple
    unload: int

    @property
    def compute(self) -> int:
        return sum(l.total for l in self.layers)

    @property
    def total(self) -> int:
        return self.load + self.compute + self.unload

    @property
    def utilization(self) -> float:
        """Multiplies on real block-rows over lane-cycles available in the compute phase."""
        lanes = self.layers[0].total_lanes
        return sum(l.useful_lane_cycles for l in self.layers) / (lanes * self.compute)


def model_cycles(model: QuantModel, x_codes: npt.ArrayLike, cfg: EngineConfig) -> InferenceCycles:
    """Cycles of one inference of a :class:`~permdeal.golden.model.QuantModel` on one input
    (layer ``l`` with ``cfg.groups_of(l)`` lane groups)."""
    acts = model.forward(np.asarray(x_codes), trace=True)
    if acts[0].ndim != 1:
        raise PermdealError("model_cycles takes one input vector; loop over a batch")
    cfg.check_layers(len(model.layers))
    producers = [None] + [l.matrix.p for l in model.layers[:-1]]
    if cfg.hides_drain_of([cfg.slots(l.matrix.blocks[0]) for l in model.layers]):
        # every layer but the first starts with the drain of the one before (docs/design.md 9)
        n = len(model.layers)
        drains = [None] + [cfg.drain_cycles(l.matrix.blocks[0], l.matrix.p)
                           for l in model.layers[:-1]]
        layers = tuple(layer_cycles(a, l.matrix.blocks[0], l.matrix.p, cfg, in_block,
                                    behind=behind, last=i == n - 1)
                       for i, (a, l, in_block, behind)
                       in enumerate(zip(acts, model.layers, producers, drains)))
    else:
        layers = tuple(layer_cycles(a, l.matrix.blocks[0], l.matrix.p, cfg, in_block,
                                    cfg.groups_of(i))
                       for i, (a, l, in_block) in enumerate(zip(acts, model.layers, producers)))
    return InferenceCycles(load=model.n_inputs, layers=layers,
                           unload=model.layers[-1].shape[0] + cfg.output_latency)


#: ``--groups auto``: the density of the stand-in inputs when no activations are given.
AUTO_DENSITY = 0.5


def group_choices(cfg: EngineConfig) -> list[int]:
    """The lane-group counts an engine of ``cfg``'s size can have: the powers of two that divide
    its PE count."""
    return [k for k in (1 << e for e in range(cfg.n_pe.bit_length())) if cfg.n_pe % k == 0]


def auto_groups(layers, cfg: EngineConfig, acts=None, producer: int | None = None) -> int:
    """``--groups auto``: the lane-group count (:func:`group_choices` that the layers allow) with
    the fewest cycles of the cycle model, fewest groups on a tie.

    ``layers``: ``(n_in, M', p)`` of every layer in order. ``acts``: per input, every layer's input
    activation vector (a model's forward pass with ``trace=True``); without, each layer's input
    is a stand-in with every other word non-zero (density :data:`AUTO_DENSITY`, evenly spread:
    the choice then weighs slots and draining, not imbalance). ``producer``: the block size in
    which the first layer's input lies (None: the network input's layout).
    """
    layers = list(layers)
    if acts is None:
        acts = [[np.resize(np.array([1, 0], np.int8), n) for n, _, _ in layers]]
    best = None
    for k in group_choices(cfg):
        trial = EngineConfig(cfg.n_pe, cfg.lanes, cfg.scan_width, cfg.multiplier, k)
        try:
            total = sum(layer_cycles(x, mb, p, trial, prev).total
                        for trace in acts
                        for x, (_, mb, p), prev in zip(trace, layers,
                                                       [producer] + [p for _, _, p in layers[:-1]]))
        except PermdealError:   # the layers do not allow this many groups
            continue
        if best is None or total < best[0]:
            best = (total, k)
    return best[1]



def auto_layer_groups(layers, cfg: EngineConfig, acts=None,
                      producer: int | None = None) -> tuple[int, ...]:
    """``--groups auto``, per layer: the lane-group counts ``K_l`` (one per layer) with the fewest
    cycles of the cycle model, fewest groups on a tie (the engine's ``K`` first, then each
    layer's).

    For every engine count ``K`` (:func:`group_choices`) each layer takes the count ``K_l <= K``
    (a power of two) that the layer allows with its fewest cycles; the engine then has ``K =
    max K_l`` groups, and the counts with the fewest cycles in all win. ``layers``, ``acts`` and
    ``producer`` as :func:`auto_groups`.
    """
    layers = list(layers)
    if acts is None:
        acts = [[np.resize(np.array([1, 0], np.int8), n) for n, _, _ in layers]]
    producers = [producer] + [p for _, _, p in layers[:-1]]

    def cost(trial, i, k):
        _, mb, p = layers[i]
        return sum(layer_cycles(trace[i], mb, p, trial, producers[i], k).total for trace in acts)

    best = None
    for top in group_choices(cfg):
        trial = EngineConfig(cfg.n_pe, cfg.lanes, cfg.scan_width, cfg.multiplier, top)
        counts = []
        for i in range(len(layers)):
            options = []
            for k in (c for c in group_choices(trial) if top % c == 0):
                try:
                    options.append((cost(trial, i, k), k))
                except PermdealError:   # the layer does not allow this many groups
                    continue
            counts.append(min(options)[1])
        chosen = EngineConfig.with_layer_groups(trial, counts)
        total = sum(cost(chosen, i, k) for i, k in enumerate(counts))
        if best is None or total < best[0]:
            best = (total, tuple(counts))
    return best[1]
