"""The PermDNN engine's geometry: every width, depth, address base and bank size that follows from
an engine configuration and its layers, computed once (docs/design.md sections 4.2 and 6).

The ROM-image writer and reader (:mod:`.rom`), the generator (``hdl.engine``), the manifests and
the reports all take these figures from :class:`Geometry`; none derives them again.

Memory addressing of one layer in every lane (:func:`layout` is the one statement of it):

``weight``  address ``base + t*N_k*p + i*p + c``: the weight that input ``j = J*p + c`` of block
            ``J = k + i*K`` meets in the lane's slot ``t``;
``k``       address ``base + t*N_k + i``: the permutation value ``k[I, J]``;
``bias``    address ``base + t*p + r``: the bias of output row ``I*p + r``;

with ``K`` lane groups of ``G = NL / K`` lanes: lane ``g = k*G + h`` (group ``k``, its lane ``h``)
holds block-row ``I = t*G + h`` in slot ``t`` for the input blocks ``J`` of its group (``J mod K =
k``), ``N_k = ceil(N' / K)`` of them (the last groups' list padded with zero blocks), and ``B =
ceil(M' / G)`` slots. Every group has the same bias words; only group 0's are read (its
write-back adds the groups' sums). One group (``K = 1``): ``I = t*NL + g``, ``i = J``.

A layer of ``K_l < K`` groups (``EngineConfig.layer_groups``; ``m = K / K_l``) has groups of
``m*G`` lanes: the words above for ``K_l`` groups of ``m*G`` lanes, lane ``h'`` of group ``j`` in
the engine's lane :meth:`~.cycles.EngineConfig.hardware_lane` (:func:`lane_order`), ``B =
ceil(M' / (m*G))``, the bias words too (every group the same: lane ``h'`` of every group holds
the bias of its block-rows ``t*m*G + h'``; the write-backs of the turns' first hardware groups
read them, :attr:`~.cycles.EngineConfig.writeback_groups`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from permdeal.errors import PermdealError

from .cycles import EngineConfig
from .formats import LayerFormats
from .model import LayerSpec, QuantLayer
from .permdiag import index_bits

#: The three memories of every lane, in manifest order.
MEMORIES = ("weight", "k", "bias")
#: The memories holding two's-complement words (``k`` is unsigned).
SIGNED = frozenset({"weight", "bias"})
#: Bits stored beside every activation in the activation banks: its non-zero flag, written with
#: it, so that the next layer's read needs no zero test (``hdl.act_bank``).
ACT_FLAG_BITS = 1


@dataclass(frozen=True)
class EngineLayer:
    """What the engine needs of one layer: its ``name``, ``n_in`` inputs, ``n_out`` outputs,
    block size ``p``, ``relu`` and number formats ``fmts``."""

    name: str
    n_in: int
    n_out: int
    p: int
    relu: bool
    fmts: LayerFormats

    @property
    def blocks(self) -> tuple[int, int]:
        """``(M', N')``: block-rows and block-columns."""
        return -(-self.n_out // self.p), -(-self.n_in // self.p)

    @classmethod
    def of(cls, layer: QuantLayer | LayerSpec, index: int) -> EngineLayer:
        """The engine layer of a ``QuantLayer`` (with its ``matrix``) or a ``LayerSpec``."""
        if hasattr(layer, "matrix"):
            (n_out, n_in), p = layer.shape, layer.matrix.p
        else:
            n_in, n_out, p = layer.n_in, layer.n_out, layer.p
        return cls(getattr(layer, "name", f"layer {index}"), n_in, n_out, p, bool(layer.relu),
                   layer.fmts)


def layout(mem: str, b: int, nl: int, nb: int, p: int,
           groups: int = 1) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The addressing of one layer's words in ``mem`` (module docstring), for writer and reader.

    Returns ``(axes, order, shape)``: the layer's padded array of ``shape`` (``weight``: the column
    view ``[I, J, c]`` with ``B*G`` block-rows and ``N_k*K`` block-columns; ``k``: ``[I, J]``;
    ``bias``: ``[i]``, ``B*G*p`` rows) splits into ``axes`` by ``I = t*G + h``, ``J = i*K + k``
    (and ``i = I*p + r``); ``order`` puts the lane ``g = k*G + h`` first and then the address
    digits, most significant first. ``bias`` covers the ``G`` lanes of one group (the writer
    repeats them in every group). Slot-major: a slot's words are one run, so the engine reaches
    slot ``t + 1`` of an input by adding a layer constant (no multiplier).
    """
    g = nl // groups
    nk = -(-nb // groups)
    if mem == "weight":   # [t, h, i, k, c] -> lane k*G + h, address t*N_k*p + i*p + c
        return (b, g, nk, groups, p), (3, 1, 0, 2, 4), (b * g, nk * groups, p)
    if mem == "k":        # [t, h, i, k] -> lane k*G + h, address t*N_k + i
        return (b, g, nk, groups), (3, 1, 0, 2), (b * g, nk * groups)
    if mem == "bias":     # [t, h, r] -> lane h of a group, address t*p + r
        return (b, g, p), (1, 0, 2), (b * g * p,)
    raise ValueError(mem)


def layout_depth(mem: str, b: int, nb: int, p: int, groups: int = 1) -> int:
    """Words of one layer in each lane's ``mem`` (:func:`layout`)."""
    nk = -(-nb // groups)
    return {"weight": b * nk * p, "k": b * nk, "bias": b * p}[mem]


def lane_order(cfg: EngineConfig, groups: int) -> list[int]:
    """For a layer of ``groups`` (``K_l``) lane groups: element ``g`` is the lane of
    :func:`layout`'s order (``j*m*G + h'``, lane ``h'`` of group ``j``) that engine lane ``g``
    holds (the inverse of :meth:`~.cycles.EngineConfig.hardware_lane`)."""
    width = cfg.total_lanes // groups
    out = [0] * cfg.total_lanes
    for j in range(groups):
        for h in range(width):
            out[cfg.hardware_lane(j, h, groups)] = j * width + h
    return out


@dataclass(frozen=True)
class LayerPlacement:
    """Where one layer lives in the lanes' memories: ``slots`` (``B``), and per memory its base
    address and depth."""

    slots: int
    weight_base: int
    k_base: int
    bias_base: int
    weight_depth: int
    k_depth: int
    bias_depth: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


def layer_placements(shapes: Iterable[tuple[tuple[int, int], int]],
                     cfg: EngineConfig) -> list[LayerPlacement]:
    """The placements of layers given as ``((M', N'), p)`` pairs, in order (layer ``l`` in
    ``cfg.groups_of(l)`` lane groups)."""
    out, bases = [], dict.fromkeys(MEMORIES, 0)
    shapes = list(shapes)
    cfg.check_layers(len(shapes))
    for i, ((mb, nb), p) in enumerate(shapes):
        k = cfg.groups_of(i)
        b = cfg.slots(mb, k)
        depth = {mem: layout_depth(mem, b, nb, p, k) for mem in MEMORIES}
        out.append(LayerPlacement(b, bases["weight"], bases["k"], bases["bias"],
                                  depth["weight"], depth["k"], depth["bias"]))
        for mem in MEMORIES:
            bases[mem] += depth[mem]
    return out


def memory_widths(layers: Iterable[tuple[LayerFormats, int]]) -> dict[str, int]:
    """Word width of each memory for layers given as ``(LayerFormats, p)`` pairs: the widest
    layer's format (1 bit of ``k`` for ``p = 1``)."""
    layers = list(layers)
    return {"weight": max(f.weight.bits for f, _ in layers),
            "k": max(1, max(index_bits(p) for _, p in layers)),
            "bias": max(f.bias.bits for f, _ in layers)}


def _distinct(values) -> tuple:
    """``values`` without repeats, in order of first appearance."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class Geometry:
    """An engine's geometry: its configuration ``cfg`` and checked ``layers``
    (:class:`EngineLayer`), and every figure derived from them."""

    cfg: EngineConfig
    layers: tuple[EngineLayer, ...]
    #: A conv network's walks (``golden.conv_walk.engine_walks``: one a layer, ``None`` for an FC
    #: layer that reads an FC layer's outputs); empty for an FC network.
    walks: tuple = ()

    @classmethod
    def of(cls, cfg: EngineConfig,
           layers: Iterable[QuantLayer | LayerSpec | EngineLayer],
           chained: bool = True, walks=None) -> Geometry:
        """The geometry of ``layers`` (``QuantLayer`` s, ``LayerSpec`` s or :class:`EngineLayer`
        s) on ``cfg``; checks that the layers chain (shapes and formats; formats only without
        ``chained``: a conv network's matrix layers, whose activations chain through patches).
        ``walks``: a conv network's walks, one a layer (docs/design.md 15; then ``chained`` is
        ignored: the walks chain the layers)."""
        if not isinstance(cfg, EngineConfig):
            raise PermdealError(f"engine configuration must be an EngineConfig, not {cfg!r}")
        try:
            layers = list(layers)
        except TypeError:
            raise PermdealError(f"engine layers must be a sequence of layer descriptions, not "
                                f"{type(layers).__name__}") from None
        if not layers:
            raise PermdealError("engine needs at least one layer")
        walks = tuple(walks or ())
        if walks:
            chained = False
            if len(walks) != len(layers):
                raise PermdealError(f"engine has {len(layers)} layers and {len(walks)} walks")
            if any(w is not None and cfg.groups_of(i) != 1 for i, w in enumerate(walks)):
                raise PermdealError("a conv network's walked layers run with one lane group "
                                    "(--groups 1)")
        out: list[EngineLayer] = []
        for i, layer in enumerate(layers):
            e = layer if isinstance(layer, EngineLayer) else EngineLayer.of(layer, i)
            if out:
                prev = out[-1]
                if chained and e.n_in != prev.n_out:
                    raise PermdealError(f"engine layers do not chain: {prev.name} gives "
                                        f"{prev.n_out} outputs, {e.name} takes {e.n_in} inputs")
                if e.fmts.act != prev.fmts.out:
                    raise PermdealError(f"engine layers do not chain: {prev.name} writes "
                                        f"{prev.fmts.out}, {e.name} reads {e.fmts.act}")
            out.append(e)
        cfg.check_layers(len(out))
        for i, e in enumerate(out):
            k = cfg.groups_of(i)
            try:
                cfg.in_block(e.p, out[i - 1].p if i else None, k)   # lane groups need equal p
            except PermdealError as err:
                raise PermdealError(f"{e.name}: {err}") from None
            if e.blocks[1] < k:
                raise PermdealError(f"{e.name}: {e.n_in} inputs make {e.blocks[1]} blocks of "
                                    f"p = {e.p}, fewer than its {k} lane groups "
                                    "(--groups); use fewer groups")
        return cls(cfg, tuple(out), walks)

    @functools.cached_property
    def places(self) -> tuple[LayerPlacement, ...]:
        """Every layer's :class:`LayerPlacement`."""
        return tuple(layer_placements([(l.blocks, l.p) for l in self.layers], self.cfg))

    @functools.cached_property
    def widths(self) -> dict[str, int]:
        """Word width of every memory (:func:`memory_widths`)."""
        return memory_widths((l.fmts, l.p) for l in self.layers)

    @functools.cached_property
    def depths(self) -> dict[str, int]:
        """Words of every memory in each lane: the layers' depths added up."""
        return {mem: sum(getattr(pl, f"{mem}_depth") for pl in self.places) for mem in MEMORIES}

    def memories(self) -> dict:
        """The ``memories`` part of a ROM manifest: width, depth and signedness of each."""
        return {mem: {"width": self.widths[mem], "depth": self.depths[mem],
                      "signed": mem in SIGNED} for mem in MEMORIES}

    @property
    def ps(self) -> tuple[int, ...]:
        """The distinct block sizes, in layer order."""
        return _distinct(l.p for l in self.layers)

    @property
    def p_prevs(self) -> tuple[int, ...]:
        """The distinct block sizes in which the layers read their inputs: :attr:`in_block` for
        the network input, then each earlier layer's ``p``."""
        return _distinct([self.in_block] + [l.p for l in self.layers[:-1]])

    @property
    def in_bits(self) -> int:
        return self.layers[0].fmts.act.bits

    @property
    def out_bits(self) -> int:
        return self.layers[-1].fmts.out.bits

    @property
    def act_bits(self) -> int:
        """The activation banks' word width: the widest input or output format."""
        return max([self.in_bits] + [l.fmts.out.bits for l in self.layers])

    @property
    def index_bits(self) -> int:
        """Bits of an input index ``j`` (the longest layer input)."""
        return max(1, max(l.n_in for l in self.layers).bit_length())

    @property
    def bank_rows(self) -> int:
        """Rows of every activation bank: the network input (blocks of :attr:`in_block`), every
        layer's outputs (``ceil(M' / NL) * ceil(p / D)`` rows) and every feature map a walk
        reads (``H*W`` pixels of ``ConvWalk.pixel_rows``, docs/design.md 15), whichever is the
        most."""
        nl, d = self.cfg.total_lanes, self.cfg.scan_width
        q = self.in_block
        in_blocks = -(-self.n_inputs // q)
        rows = [-(-in_blocks // nl) * -(-q // d)]
        rows += [-(-l.blocks[0] // nl) * -(-l.p // d) for l in self.layers]
        rows += [w.shape.in_shape[1] * w.shape.in_shape[2] * w.pixel_rows(nl, d)
                 for w in self.walks if w is not None]
        return max(rows)

    @property
    def n_inputs(self) -> int:
        """Codes of the input stream: the first layer's ``n_in``, or for a network that starts
        with a convolution its ``H*W*C'`` (docs/design.md 15)."""
        w = self.walks[0] if self.walks else None
        if w is None:
            return self.layers[0].n_in
        return w.shape.in_shape[1] * w.shape.in_shape[2] * w.words

    @property
    def in_block(self) -> int:
        """The block size in which the network input is loaded into the banks
        (:meth:`~.cycles.EngineConfig.in_block`: ``D`` when the first layer has one lane group,
        else its ``p``; a pixel's ``C'`` words when the first layer is a convolution)."""
        if self.walks and self.walks[0] is not None:
            return self.walks[0].block
        return self.cfg.in_block(self.layers[0].p, None, self.cfg.groups_of(0))

    @property
    def acc_bits(self) -> int:
        """Accumulator width: every layer's, and at least a product's."""
        return max([self.act_bits + self.widths["weight"]] + [l.fmts.acc_bits for l in self.layers])

    @property
    def acc_depth(self) -> int:
        """Accumulators per lane: the largest ``B * p`` of a layer."""
        return max(pl.slots * l.p for l, pl in zip(self.layers, self.places))

    @property
    def acc_sets(self) -> int:
        """Accumulator sets per lane: 2 when the engine hides its drains (a conv network's
        passes, docs/design.md 15; an FC network on one lane group with a layer but the last of
        ``B > 1``, section 9's "Hidden drain": :meth:`~.cycles.EngineConfig.hides_drain_of`), each
        :attr:`acc_depth` words in a memory of its own; else 1."""
        conv = any(w is not None for w in self.walks)
        return 2 if conv or self.cfg.hides_drain_of([pl.slots for pl in self.places]) else 1

    @property
    def acc_set_depths(self) -> tuple[int, ...]:
        """Accumulators of each set (:attr:`acc_sets`): :attr:`acc_depth` each, but an FC
        network's layers take the set of their parity (``l mod 2``, docs/design.md 9), so each
        set holds the largest ``B * p`` of its layers."""
        if self.acc_sets == 1:
            return (self.acc_depth,)
        if any(w is not None for w in self.walks):
            return (self.acc_depth,) * 2
        sizes = [pl.slots * l.p for l, pl in zip(self.layers, self.places)]
        return (max(sizes[0::2]), max(sizes[1::2]))

    @property
    def max_slots(self) -> int:
        return max(pl.slots for pl in self.places)

    @property
    def ram_depths(self) -> dict[str, int]:
        """Words of the RAMs as built (at least 2: a 1-word memory has a 0-bit address): the
        ``accumulator`` (one per lane and set, :attr:`acc_sets`; the largest set's, see
        :attr:`acc_set_depths`) and the ``activation bank`` (one per lane and bank set)."""
        return {"accumulator": max(2, self.acc_depth), "activation bank": max(2, self.bank_rows)}

    def storage(self) -> dict[str, dict]:
        """Useful and stored bits of every memory kind, all lanes (docs/design.md 8):
        ``{kind: {useful_bits, stored_bits, what}}`` for ``weight``, ``k``, ``bias``,
        ``accumulator`` and ``activation bank``.

        Useful: ``weight`` the layers' ``M'*N'*p`` permuted-diagonal weights, ``k`` their
        ``M'*N'`` permutation values, ``bias`` their ``n_out`` biases, stored in ``NL`` lanes (the
        bias in the ``G`` lanes of each write-back group, the only ones built) of
        ``depth`` words (padded block-rows ``B*NL - M'`` and the widest layer's word width
        included); ``accumulator`` the largest layer's ``n_out`` sums (with two sets, two
        consecutive layers' or passes' at once) in ``NL`` memories (a set) of ``max(B*p)`` words;
        ``activation bank`` per bank set the most activations it holds at once
        (set 0: the network input and the outputs of layers 2, 4, ...; set 1: of layers 1, 3, ...)
        in ``NL`` banks of ``rows`` words of ``D`` activations.
        """
        nl, d = self.cfg.total_lanes, self.cfg.scan_width
        w = self.widths
        useful = {"weight": sum(math.prod(l.blocks) * l.p for l in self.layers),
                  "k": sum(math.prod(l.blocks) for l in self.layers),
                  "bias": sum(l.n_out for l in self.layers)}
        # (the bias words are read in the write-back groups only: docs/design.md 4.2)
        lanes = {mem: self.cfg.group_lanes * self.cfg.writeback_groups if mem == "bias" else nl
                 for mem in MEMORIES}
        out = {mem: {"useful_bits": useful[mem] * w[mem],
                     "stored_bits": max(1, self.depths[mem]) * lanes[mem] * w[mem],
                     "what": f"{mem} words of the layers / words stored"} for mem in MEMORIES}
        depth = self.ram_depths
        outs = [l.n_out for l in self.layers]
        sums = max(outs) if self.acc_sets == 1 else \
            max([2 * o for o in outs] if any(w is not None for w in self.walks) else
                [a + b for a, b in zip(outs, outs[1:])] or outs)
        out["accumulator"] = {
            "useful_bits": sums * self.acc_bits,
            "stored_bits": sum(max(2, d) for d in self.acc_set_depths) * nl * self.acc_bits,
            "what": "the largest layer's output sums (two sets: two consecutive layers' or "
                    "passes') / accumulators stored"}
        held = [self.n_inputs, 0]
        for i, l in enumerate(self.layers):
            held[(i + 1) % 2] = max(held[(i + 1) % 2], l.n_out)
        out["activation bank"] = {
            "useful_bits": sum(held) * self.act_bits,
            "stored_bits": 2 * nl * depth["activation bank"] * d * (self.act_bits + ACT_FLAG_BITS),
            "what": "the most activations each bank set holds / activations stored, each with "
                    "its non-zero flag"}
        return out

    def to_json(self) -> dict:
        """The figures reports and manifests show."""
        return {"memories": self.memories(), "bank_rows": self.bank_rows,
                "act_bits": self.act_bits, "acc_bits": self.acc_bits,
                "acc_depth": self.acc_depth, "index_bits": self.index_bits,
                "placements": [pl.to_json() for pl in self.places]}
