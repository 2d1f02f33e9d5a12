# amaranth: UnusedElaboratable=no
"""The PermDNN engine: a whole network of permuted-diagonal layers in one block (docs/design.md 4.2).

Data path, one layer at a time::

    input stream -> banks0 --+                          +--> pe0 .. pe{N-1} --> pe{i}_wb --+
                             +-> reader -> detector -> issuer (broadcast op)                |
    output stream <- out_reader <- banks{L mod 2}   <-- banks{(l+1) mod 2} <---------------+

A conv network (docs/design.md 15) runs each conv layer as one pass of this schedule per output
pixel, the reader walking the pixel's patch, with a pool stage after the write-back.

The controller loads the network's ``n`` inputs into bank set 0, then runs every layer ``l``:
``START`` starts the window reader on bank set ``l mod 2``; the detector's pairs become the
issuer's broadcast operations; once the last operation has passed the lanes, ``DRAIN`` reads (and
clears) every lane's ``B*p`` accumulators, one address per cycle in all lanes at once, through each
lane's write-back into bank set ``(l + 1) mod 2``; ``FLUSH`` waits for the last write. After the
last layer the output reader streams its outputs.

The hidden drain (docs/design.md 9 and 15): with two accumulator sets a lane (an FC network of
two layers or more on one lane group, and every conv network) the drain runs beside the
controller's states (``drain_on``), taking its layer's descriptor (``drain_*``) at its start. An
FC layer hands its sums to the drain when it is quiet and the next layer starts at once, into the
other set, its reader waiting for every block until the drain has written it (``rows_ok``); a
conv pass leaves the issue path once it is issued, the next pass starts, and its sums go to the
drain once its operations have settled (``settle_on``). The network's last layer still waits for
its drain and ``FLUSH``. The per-layer descriptors (block size, ``B``,
memory bases, ``n``, formats) are constants of the generated design, picked by the layer counter.
``golden.cycles`` is the exact cycle count of this schedule.

This module is longer than most (about 560 lines) on purpose: it is the controller and the wiring
of one block; every sub-block is a file of its own and the geometry is golden/geometry.py's.
"""

import re
from pathlib import Path
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.golden.conv_walk import POOL_LATENCY
from permdeal.golden.cycles import BROADCAST_FANOUT, WRITEBACK_LATENCY, EngineConfig, group_n
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.geometry import Geometry, LayerPlacement
from permdeal.golden.rom import image_name

from .act_banks import ActBanks
from .blackbox import Blackbox
from .group_sum import GroupSum
from .issuer import Issuer
from .lint import eq_const
from .nz_detect import NonZeroDetector
from .op_stages import OpStages, broadcast_layout
from .output_reader import OutputReader, output_layout
from .pipeline import delay
from .pe import PE
from .pe_writeback import PEWriteback
from .rom import ROM_MODULE, ImageRom, addr_bits, check_image, verilog_path
from .window_reader import WindowReader

__all__ = ["Engine", "MAX_MEMORY_WORDS", "State"]

#: The most words one lane memory may hold (2**22: 8 MiB of 16-bit weights per lane).
MAX_MEMORY_WORDS = 1 << 22


class State(enum.Enum, shape=7):
    """The controller's states (module docstring), one-hot: a state is one flip-flop, so no
    decoder lies between the state register and what the state drives."""

    LOAD = 1 << 0
    START = 1 << 1
    ISSUE = 1 << 2
    DRAIN = 1 << 3
    FLUSH = 1 << 4
    UNLOAD_START = 1 << 5
    UNLOAD = 1 << 6



class Engine(wiring.Component):
    """A PermDNN engine for one network, generated with its layer descriptors.

    Parameters
    ----------
    cfg : golden.cycles.EngineConfig
        ``n_pe`` PEs of ``lanes`` lanes, the detector's ``scan_width``, ``groups`` lane groups
        (``layer_groups``: one count a layer, docs/design.md 4.2; an engine whose layers have
        one count is built without the per-layer plumbing).
    layers : sequence of golden.model.LayerSpec (or QuantLayer)
        The network's layers in order: their shapes, block sizes, formats and ReLU; each layer's
        ``n_in`` is the previous layer's ``n_out`` and its input format the previous output format.
    contents : dict, optional
        ``golden.rom.lane_contents(model, cfg)``: every lane's memory words, baked into the Verilog.
    images : path, optional
        A folder of ``golden.rom.write_images`` for ``cfg`` and these layers: the memories load
        their image files by ``$readmemh`` (build with ``hdl.rom.ROM_SOURCE``). Exactly one of
        ``contents`` and ``images``.
    check_images : bool
        Check every image file now (default). Without, the files need not exist yet: a design
        generated before its model is compressed (the images must then match it, which
        ``permdeal sim`` checks).
    name : str
        The Verilog module name of the engine; its PE, write-back and bank modules are named
        after it (``{name}_pe``, ``{name}_lane``, ``{name}_pe_wb``, ``{name}_act_banks``,
        ``{name}_act_bank``), and its RAMs too: ``{name}_acc_ram`` (a lane's accumulators) and
        ``{name}_act_ram`` (an activation bank's words), each a :class:`~.ram.Ram`
        (:attr:`ram_memories`).
    rom_dir : str, optional
        With ``images``: how the Verilog names the image files (:func:`.rom.verilog_path`;
        default their absolute paths).
    walks, pools : sequence, optional
        A conv network (docs/design.md 15; ``layers`` are then its matrix layers): every layer's
        ``golden.conv_walk.ConvWalk`` (``None`` for an FC layer after an FC layer) and pooling
        (``(kind, n)`` or ``None``), as ``golden.conv_walk.engine_walks`` and ``engine_pools``
        give them. The reader walks each conv layer's patches, a pass a pixel; the controller
        runs the layer schedule once a pass; a pool stage follows the write-back. Without them
        the engine is built exactly as before.

    Members
    -------
    i : ``In(stream.Signature(signed(in_bits)))``
        Input activation codes of the first layer's input format, ``n`` beats per inference in
        index order; taken only while the engine is loading (``i.ready``).
    o : ``Out(stream.Signature(output_layout(out_bits)))``
        ``{data: signed(out_bits), last: 1 bit}``: the last layer's ``m`` output codes in index
        order, ``last`` on the final one. The engine loads the next inference after it.

    Timing
    ------
    :func:`golden.cycles.model_cycles` gives the exact count from the first input accepted to
    the last output accepted, with no idle on ``i`` and no back-pressure on ``o``; stalls on
    either stream only add their own cycles. ``rst`` (synchronous) abandons the inference; the
    banks and accumulators keep their contents, so an inference abandoned in mid-layer leaves
    partial sums that the next drains with its own (reset only between inferences).
    """

    def __init__(self, cfg, layers, *, contents=None, images=None, rom_dir=None,
                 check_images=True, name="permdeal_engine", walks=None, pools=None):
        geom = Geometry.of(cfg, layers, walks=walks)
        # A conv network (docs/design.md 15): every layer's walk (None: an FC layer reading an FC
        # layer's outputs) and pooling (None, or ``(kind, n)``: "max" or "avg" over ``n`` conv
        # pixels); an FC network has neither and is built exactly as without them.
        self._walks = geom.walks
        self._pools = tuple(pools) if pools else (None,) * len(geom.layers)
        if len(self._pools) != len(geom.layers):
            raise PermdealError(f"engine has {len(geom.layers)} layers and "
                                f"{len(self._pools)} pool settings")
        for i, pool in enumerate(self._pools):
            if pool is None:
                continue
            kind, n = pool
            if not self._walks or self._walks[i] is None or self._walks[i].pool is None:
                raise PermdealError(f"{geom.layers[i].name}: pooling on a layer without a "
                                    "pooled conv walk")
            if kind not in ("max", "avg") or n < 2 or (kind == "avg" and n & (n - 1)):
                raise PermdealError(f"{geom.layers[i].name}: the engine pools max over any "
                                    f"window or avg over a power-of-two window, not {kind} "
                                    f"over {n}")
        self._cfg, self._geom = cfg, geom
        self._layers = geom.layers
        for l in geom.layers:
            if max(l.fmts.act.bits, l.fmts.out.bits) > MAX_BITS:
                raise PermdealError(f"{l.name}: activations wider than {MAX_BITS} bits")
        nl, d = cfg.total_lanes, cfg.scan_width
        lay = self._layers
        self._ps, self._p_prevs = geom.ps, geom.p_prevs
        self._places = list(geom.places)
        self._in_bits, self._out_bits = geom.in_bits, geom.out_bits
        self._act_bits, self._index_bits = geom.act_bits, geom.index_bits
        self._rows = geom.bank_rows
        weight_bits, acc_bits = geom.widths["weight"], geom.acc_bits
        depth = {mem: max(1, n) for mem, n in geom.depths.items()}
        if depth["weight"] > MAX_MEMORY_WORDS:
            raise PermdealError(
                f"every lane's weight memory would hold {depth['weight']} words (more than "
                f"{MAX_MEMORY_WORDS}) for these layers on {cfg.n_pe} PE x {cfg.lanes} lanes; "
                "use more PEs or lanes, or a larger p")
        acc_depth = geom.acc_depth
        self._max_slots = geom.max_slots

        if (contents is None) == (images is None):
            raise PermdealError("engine needs exactly one of contents (memory words) and images "
                                "(a folder of ROM images)")
        self._name = self._module_name(name)
        self._depth = depth
        self._widths = geom.widths
        # Every lane's memories live in the top (weights apart from logic); the PEs and their
        # write-back are one Verilog module each, instantiated n_pe times.
        self._rom_dir, self._images, self._contents = rom_dir, None, None
        if images is not None:
            self._images = self._image_files(Path(images), check_images)
        else:
            self._contents = {mem: [self._row(contents, mem, g, depth[mem]) for g in range(nl)]
                              for mem in ("weight", "k", "bias")}
        # A conv network hides every pass's drain behind the next pass (docs/design.md 15): two
        # accumulator sets a lane, the passes taking turns.
        # An FC network on one lane group hides each layer's drain behind the next layer
        # (docs/design.md 9, "Hidden drain"): two sets too, the layers taking turns.
        conv = any(w is not None for w in self._walks or ())
        self._acc_sets = geom.acc_sets
        self._hidden_fc = not conv and self._acc_sets == 2
        self._pe_proto = PE(cfg.lanes, self._ps, self._act_bits, weight_bits, acc_bits,
                            depth["weight"], depth["k"], acc_depth, external=True,
                            lane_module=f"{self._name}_lane",
                            acc_ram_module=f"{self._name}_acc_ram", multiplier=cfg.multiplier,
                            acc_sets=self._acc_sets,
                            acc_set_depths=geom.acc_set_depths if self._acc_sets > 1 else None)
        self._wb_proto = PEWriteback(cfg.lanes, [(l.fmts, l.relu) for l in lay],
                                     depth["bias"], external=True)
        self._banks_proto = ActBanks(nl, d, self._act_bits, self._rows, groups=cfg.groups,
                                     bank_module=f"{self._name}_act_bank",
                                     ram_module=f"{self._name}_act_ram")
        self._pes = [Blackbox(self._pe_proto, f"{self._name}_pe") for _ in range(cfg.n_pe)]
        # the write-backs of the groups that head a turn (group 0 with one count) take the
        # groups' sums (docs/design.md 4.2): PE ``i`` of ``self._wb_pes`` has ``self._wbs[i]``
        heads = [w * (cfg.groups // cfg.writeback_groups) for w in range(cfg.writeback_groups)]
        self._wb_pes = [k * cfg.group_pes + i for k in heads for i in range(cfg.group_pes)]
        assert len(self._wb_pes) == cfg.writeback_pes
        self._wbs = [Blackbox(self._wb_proto, f"{self._name}_pe_wb") for _ in self._wb_pes]
        self._banks = [Blackbox(self._banks_proto, f"{self._name}_act_banks") for _ in range(2)]
        super().__init__({
            "i": In(stream.Signature(signed(self._in_bits))),
            "o": Out(stream.Signature(output_layout(self._out_bits))),
        })

    # -- construction helpers ------------------------------------------------------------------

    @staticmethod
    def _module_name(name):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PermdealError(f"engine module name must be a Verilog identifier, not {name!r}")
        if name == ROM_MODULE:
            raise PermdealError(f"engine module name {name!r} is taken by the ROM module")
        return name

    def _image_files(self, folder, check):
        """``{memory: [path of lane g]}``; with ``check`` every file is checked against its
        memory (and the manifest beside it) now, naming the file on any disagreement."""
        cfg, out = self._cfg, {}
        for mem in ("weight", "k", "bias"):
            out[mem] = [folder / image_name(g // cfg.lanes, g % cfg.lanes, mem, cfg)
                        for g in range(cfg.total_lanes)]
            if check:
                for path in out[mem]:
                    check_image(path, mem, self._widths[mem], self._depth[mem],
                                signed=mem != "k", limit=max(self._ps) if mem == "k" else None)
        for path in out["weight"]:
            verilog_path(path, self._rom_dir)  # a Verilog-safe name
        return out

    def _row(self, contents, mem, g, depth):
        if not isinstance(contents, dict) or mem not in contents:
            raise PermdealError(f"engine contents must be golden.rom.lane_contents' dict with a "
                                f"{mem!r} entry")
        words = contents[mem]
        if len(words) != self._cfg.total_lanes:
            raise PermdealError(f"engine contents[{mem!r}] must have one row per lane "
                                f"({self._cfg.total_lanes}), not {len(words)}")
        row = [int(v) for v in words[g]]
        if len(row) != depth:
            raise PermdealError(f"engine contents[{mem!r}] rows must hold {depth} words (the "
                                f"layers' placements), not {len(row)}")
        return row

    # -- parameters and derived figures --------------------------------------------------------

    @property
    def cfg(self) -> EngineConfig:
        return self._cfg

    @property
    def geometry(self) -> Geometry:
        """The engine's :class:`~permdeal.golden.geometry.Geometry`: every width, depth and
        address base, as the ROM images and manifests have them."""
        return self._geom

    @property
    def n_inputs(self) -> int:
        """Codes of the input stream an inference takes (a conv network's ``H*W*C'``)."""
        return self._geom.n_inputs

    @property
    def n_outputs(self) -> int:
        return self._layers[-1].n_out

    @property
    def lane_memories(self) -> dict[str, tuple[int, int]]:
        """Each lane's ROMs: ``{memory: (width, depth)}`` for ``weight``, ``k`` and ``bias``
        (every lane has the same shapes; :attr:`rom_instances` says how many of each the
        design holds)."""
        return {mem: (self._widths[mem], self._depth[mem]) for mem in ("weight", "k", "bias")}

    @property
    def rom_instances(self) -> dict[str, int]:
        """How many of each lane ROM the Verilog holds: ``weight`` and ``k`` one a lane, ``bias``
        one a lane of the write-back groups (group 0 with one count: its write-back adds the
        groups' sums; the other groups' bias images are copies, not loaded)."""
        cfg = self._cfg
        return {"weight": cfg.total_lanes, "k": cfg.total_lanes,
                "bias": cfg.group_lanes * cfg.writeback_groups}

    @property
    def ram_memories(self) -> dict[str, dict]:
        """The engine's RAMs (:class:`~.ram.Ram` modules), the one statement synthesis prices:
        ``{module name: {kind, width, depth, granularity, instances}}`` for the lanes'
        accumulators (kind ``"accumulator"``, one a lane) and the activation banks (kind
        ``"activation bank"``, one a lane in each of the two bank sets; with the hidden drain a
        lane has two accumulator sets, a memory each, of two modules when their depths differ:
        :attr:`~permdeal.golden.geometry.Geometry.acc_set_depths`)."""
        nl = self._cfg.total_lanes
        acc = self._pe_proto.lane[0].accumulator
        bank = self._banks_proto.blackboxes[0].inner
        out = {}
        for kind, owner, count in (("accumulator", acc, nl),
                                   ("activation bank", bank, 2 * nl)):
            for box in owner.blackboxes:   # (a lane's two sets: one module, or two depths)
                ram = box.inner
                entry = out.setdefault(box.module, {
                    "kind": kind, "width": ram.width, "depth": ram.depth,
                    "granularity": ram.granularity, "instances": 0})
                entry["instances"] += count
        return out

    @property
    def in_bits(self) -> int:
        """Width of an input code (the first layer's input format)."""
        return self._in_bits

    @property
    def out_bits(self) -> int:
        """Width of an output code (the last layer's output format)."""
        return self._out_bits

    @property
    def act_bits(self) -> int:
        """Width of an activation bank word: the widest activation format of the network."""
        return self._act_bits

    @property
    def index_bits(self) -> int:
        """Width of an input index ``j``."""
        return self._index_bits

    @property
    def bank_rows(self) -> int:
        """Wide rows of each activation bank."""
        return self._rows

    @property
    def ps(self) -> tuple[int, ...]:
        """The distinct block sizes, in the order of the layers (the lanes' ``sel``)."""
        return self._ps

    @property
    def placements(self) -> tuple[LayerPlacement, ...]:
        """``golden.rom.LayerPlacement`` of every layer."""
        return tuple(self._places)

    @property
    def name(self) -> str:
        """The Verilog module name of the engine (its blocks are ``{name}_pe`` etc.)."""
        return self._name

    @property
    def uses_images(self) -> bool:
        """Whether the memories load image files (then the Verilog needs ``hdl.rom.ROM_SOURCE``)."""
        return self._images is not None

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The :class:`~.blackbox.Blackbox` instances (``gen.verilog.emit`` emits each module
        once)."""
        return (*self._pes, *self._wbs, *self._banks)

    # -- hardware ------------------------------------------------------------------------------

    def _pick(self, layer, values, shape):
        """``values[layer]`` (constants) as a chain of multiplexers over the layer counter."""
        consts = [Const(v, shape) for v in values]
        out = consts[0]
        for i in range(1, len(consts)):
            out = Mux(layer == i, consts[i], out)
        return out

    def _rom(self, mem, g):
        """Lane ``g``'s memory ``mem``: an ``ImageRom`` of its image file, or a ``Memory`` with
        its words baked in (at least 2 words: a 1-word memory has a 0-bit address)."""
        shape = unsigned(self._widths[mem]) if mem == "k" else signed(self._widths[mem])
        if self._images is not None:
            return ImageRom(shape, self._depth[mem], self._images[mem][g], rom_dir=self._rom_dir)
        return Memory(shape=shape, depth=max(2, self._depth[mem]), init=self._contents[mem][g])

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cfg, lay, places = self._cfg, self._layers, self._places
        nl, d, n_layers = cfg.total_lanes, cfg.scan_width, len(self._layers)

        banks = self._banks
        m.submodules.banks0, m.submodules.banks1 = banks
        k_count, g_lanes, g_pes = cfg.groups, cfg.group_lanes, cfg.group_pes
        # Per-layer group counts (docs/design.md 4.2): layer l's K_l groups, group j spanning
        # the hardware groups j, j + K_l, ... (m = K / K_l of them). ``kls``: the distinct counts.
        lks = [cfg.groups_of(i) for i in range(n_layers)]
        kls = sorted(set(lks))
        mixed = len(kls) > 1
        spans = tuple(sorted({k_count // kl for kl in kls}))
        pe0 = self._pe_proto
        # The issuer wants room for (max B - 1) * max p, which may exceed what the lanes need
        # when those come from different layers; the op's acc_addr never does.
        acc_addr_bits = max(pe0.acc_addr_bits,
                            ((self._max_slots - 1) * max(self._ps)).bit_length())
        # One issue path per lane group (reader, detector, issuer: ``reader``, ``detector``,
        # ``issuer`` for group 0, ``reader1`` ... for the others), reading the group's banks.
        readers, detectors, issuers = [], [], []
        # A conv network's walked layers (docs/design.md 15): the reader walks their patches,
        # one output pixel a pass; ``walk_of[l]`` is layer l's walk among ``conv_walks``.
        walks = self._walks or (None,) * n_layers
        conv = any(w is not None for w in walks)
        hidden_fc = self._hidden_fc
        hide = conv or hidden_fc   # two accumulator sets, the drain beside the states
        conv_walks = tuple(w for w in walks if w is not None)
        walk_of = [conv_walks.index(w) if w is not None else 0 for w in walks]
        pooled = any(pl is not None for pl in self._pools)
        # A conv network's two accumulator sets (docs/design.md 15): the passes issue into
        # ``iset`` and drain ``dset`` (set at the drain's start), the top bit of the address.
        set_bit = pe0.acc_addr_bits - 1
        iset, dset = Signal(name="issue_set"), Signal(name="drain_set")
        for k in range(k_count):
            suffix = str(k) if k else ""
            extra = {"walks": conv_walks} if conv else {}
            reader = WindowReader(g_lanes, d, self._act_bits, self._rows, self._index_bits,
                                  self._p_prevs, spans if mixed else 1, gated=hidden_fc,
                                  **extra)
            detector = NonZeroDetector(d, self._act_bits, self._index_bits)
            issuer = Issuer(self._ps, self._index_bits, self._act_bits, pe0.w_addr_bits,
                            pe0.k_addr_bits, acc_addr_bits, self._max_slots)
            m.submodules[f"reader{suffix}"] = reader
            m.submodules[f"detector{suffix}"] = detector
            m.submodules[f"issuer{suffix}"] = issuer
            readers.append(reader)
            detectors.append(detector)
            issuers.append(issuer)
        last = lay[-1]
        out_reader = OutputReader(nl, d, self._act_bits, self._rows, self._out_bits,
                                  last.n_out, last.p, groups=k_count)
        m.submodules.out_reader = out_reader
        for i, pe in enumerate(self._pes):
            m.submodules[f"pe{i}"] = pe
        for i, wb in enumerate(self._wbs):
            m.submodules[f"pe{i}_wb"] = wb

        # -- the layer counter and its descriptor ------------------------------------------------
        # The descriptor's fields are registers, loaded with the counter from constant tables
        # indexed by its next value (so no table lookup lies on a path into the datapath).
        layer = Signal(addr_bits(n_layers))
        layer_next = Signal.like(layer)
        layer_load = Signal()
        src = Signal()  # the bank set the layer reads; it writes the other
        m.d.comb += src.eq(layer[0])

        def step(depth, slots):
            # a slot's stride; a layer of one slot never steps (its whole depth may not fit)
            return depth // slots if slots > 1 else 0

        def descriptor(values, shape, name):
            reg = Signal(shape, name=f"desc_{name}", init=values[0])
            with m.If(layer_load):
                m.d.sync += reg.eq(self._pick(layer_next, values, shape))
            return reg

        with m.If(layer_load):
            m.d.sync += layer.eq(layer_next)

        # The window reader's descriptor is the *next* layer's from the cycle the current layer's
        # drain starts (the reader is done by then) until that layer's reads are done (the next
        # after the last layer is the next inference's first; ``_pick`` gives values[0] past the
        # last): the reader takes it into its registers while idle, so ``START`` meets registers
        # only (docs/design.md 4.2).
        reader_load = Signal()
        # (a conv layer's passes but its last are followed by another pass of the same layer:
        # ``last_now``, the reader's pass was the layer's last, set below)
        reader_layer = layer + 1
        if conv:
            if cfg.groups != 1:
                raise PermdealError("a conv network runs on an engine of one lane group "
                                    "(--groups 1)")
            last_now = Signal()
            reader_layer = Mux(last_now, layer + 1, layer)

        def reader_descriptor(values, shape, name):
            reg = Signal(shape, name=f"desc_{name}", init=values[0])
            with m.If(reader_load):
                m.d.sync += reg.eq(self._pick(reader_layer, values, shape))
            return reg
        wide = max(pe0.acc_addr_bits, pe0.w_addr_bits, pe0.k_addr_bits,
                   addr_bits(max(1, sum(p.bias_depth for p in places)))) + 2
        prev_p = [self._geom.in_block] + [l.p for l in lay[:-1]]
        q_in = [self._geom.in_block] + [l.p for l in lay[:-1]]
        n_of = [group_n(l.n_in, q, kl) + [1] * (k_count - kl) for l, q, kl in zip(lay, q_in, lks)]
        desc_ns = [reader_descriptor([n[k] for n in n_of], self._index_bits,
                                     "n" if k_count == 1 else f"n{k}") for k in range(k_count)]
        # With per-layer counts: which count the reader's layer has (one-hot over ``kls``), the
        # readers it uses and the span of its groups; the issue path's routing follows them
        # (the issuers finish a layer before the readers take the next one's).
        rd_kl = {kl: reader_descriptor([int(k == kl) for k in lks], 1, f"kl{kl}")
                 for kl in kls} if mixed else {}
        rd_used = [reader_descriptor([int(k < kl) for kl in lks], 1, f"used{k}")
                   if k >= kls[0] else None for k in range(k_count)] if mixed else \
            [None] * k_count   # (None: the reader takes every layer)
        desc_s = descriptor([-(-l.p // d) for l in lay], unsigned(wide), "s")
        desc_bias = descriptor([pl.bias_base for pl in places], unsigned(wide), "bias")
        u_bits = wide + addr_bits(nl) + 1
        desc_ustep = descriptor([cfg.span(kl) * g_lanes * l.p - l.p + 1
                                 for l, kl in zip(lay, lks)], unsigned(u_bits), "ustep")
        # the drain counters' last values less one (p - 1 for r, the layer's drain cycles less
        # one for a; 0 for a last value of 0) and whether the last value is 0: the counters'
        # "at the last value" flags are registers loaded a cycle ahead from these (no wide
        # compare lies before the drain's state change)
        a_lasts = [cfg.drain_cycles(l.blocks[0], l.p, kl) - 1 for l, kl in zip(lay, lks)]
        desc_r_last1 = descriptor([max(l.p - 2, 0) for l in lay], unsigned(wide), "r_last1")
        desc_r_first = descriptor([int(l.p == 1) for l in lay], 1, "r_first")
        desc_a_last1 = descriptor([max(v - 1, 0) for v in a_lasts], unsigned(wide), "a_last1")
        desc_a_first = descriptor([int(v == 0) for v in a_lasts], 1, "a_first")
        last_layer = descriptor([int(i == n_layers - 1) for i in range(n_layers)], 1,
                                "last_layer")

        iss0 = issuers[0]
        desc_slots = descriptor([pl.slots for pl in places], iss0.slot_bits, "slots")
        desc_w_base = descriptor([pl.weight_base for pl in places], pe0.w_addr_bits, "w_base")
        desc_k_base = descriptor([pl.k_base for pl in places], pe0.k_addr_bits, "k_base")
        desc_w_step = descriptor([step(pl.weight_depth, pl.slots) for pl in places],
                                 pe0.w_addr_bits, "w_step")
        desc_k_step = descriptor([step(pl.k_depth, pl.slots) for pl in places],
                                 pe0.k_addr_bits, "k_step")
        for reader, issuer, desc_n in zip(readers, issuers, desc_ns):
            m.d.comb += [
                reader.n.eq(desc_n),
                issuer.slots.eq(desc_slots),
                issuer.w_base.eq(desc_w_base),
                issuer.k_base.eq(desc_k_base),
                issuer.w_step.eq(desc_w_step),
                issuer.k_step.eq(desc_k_step),
            ]
        if readers[0].sel_bits:
            reader_sel = reader_descriptor([self._p_prevs.index(p) for p in prev_p],
                                           readers[0].sel_bits, "reader_sel")
            m.d.comb += [reader.sel.eq(reader_sel) for reader in readers]
        if readers[0].span_sel_bits:
            span_sel = reader_descriptor([spans.index(k_count // kl) for kl in lks],
                                         readers[0].span_sel_bits, "span_sel")
            m.d.comb += [reader.span_sel.eq(span_sel) for reader in readers]
        if conv:
            rd_conv = reader_descriptor([int(w is not None) for w in walks], 1, "conv")
            m.d.comb += [reader.conv.eq(rd_conv) for reader in readers]
            if readers[0].walk_sel_bits:
                rd_walk = reader_descriptor(walk_of, readers[0].walk_sel_bits, "walk_sel")
                m.d.comb += [reader.walk_sel.eq(rd_walk) for reader in readers]
        if iss0.sel_bits:
            issuer_sel = descriptor([self._ps.index(l.p) for l in lay], iss0.sel_bits,
                                    "issuer_sel")
            m.d.comb += [issuer.sel.eq(issuer_sel) for issuer in issuers]

        # -- the issue path: banks -> reader -> detector -> issuer -> every PE -------------------
        unloading = Signal()
        out_set = n_layers % 2  # the set the last layer writes
        # (only a request's valid is gated by the set; its address goes to the set whatever)
        # The output reader names a bank of all NL; read port ``bank mod K`` serves it.
        lo = (k_count - 1).bit_length()
        out_bank = out_reader.bank_rd.bank
        # Read port k serves reader k, or with per-layer counts reader k mod K_l when that
        # reader's block is behind port k div K_l of its span (the layer's one-hot K_l selects).
        requests = []
        for k in range(k_count):
            if not mixed:
                requests.append(readers[k].bank_rd)
                continue
            req = Signal.like(readers[k].bank_rd, name=f"port{k}_rd")
            valid, bank_no, row_no = Const(0), None, None
            for kl in kls:
                rd = readers[k % kl]
                valid = valid | (rd_kl[kl] & rd.bank_rd.valid & eq_const(rd.port, k // kl))
                bank_no = rd.bank_rd.bank if bank_no is None else \
                    Mux(rd_kl[kl], rd.bank_rd.bank, bank_no)
                row_no = rd.bank_rd.row if row_no is None else \
                    Mux(rd_kl[kl], rd.bank_rd.row, row_no)
            m.d.comb += [req.valid.eq(valid), req.bank.eq(bank_no), req.row.eq(row_no)]
            requests.append(req)
        for s, bank in enumerate(banks):
            own = src if s else ~src
            for k, reader in enumerate(requests):
                port = bank.rd if k_count == 1 else bank.rd[k]
                if s == out_set:
                    hit = out_reader.bank_rd.valid
                    if k_count > 1:
                        hit = hit & eq_const(out_bank[:lo], k)
                    m.d.comb += [
                        port.valid.eq(Mux(unloading, hit, own & reader.valid)),
                        port.bank.eq(Mux(unloading, out_bank[lo:], reader.bank)),
                        port.row.eq(Mux(unloading, out_reader.bank_rd.row, reader.row)),
                    ]
                else:
                    m.d.comb += [
                        port.valid.eq(~unloading & own & reader.valid),
                        port.bank.eq(reader.bank),
                        port.row.eq(reader.row),
                    ]
        # (a port not read has its window at 0: the ports' words meet by an OR, not a select)
        def window(bank, k):
            return (bank.window if k_count == 1 else bank.window[k]).as_value()
        out_words = [window(banks[out_set], k) for k in range(k_count)]
        word = out_words[0]
        for w in out_words[1:]:
            word = word | w
        m.d.comb += out_reader.bank_window.eq(word)
        # (a set not read has its window at 0, and the reader reads one set at a time: an OR,
        # not a select by ``src`` fanned out to every bit of the word)
        # With per-layer counts reader j also takes the words of the other ports it may read
        # (k = j mod K_l for a count K_l > j), each gated by the reader's layer's count: a port
        # not read has its word at 0, and port j is read by reader j whenever it is busy.
        port_words = [window(banks[0], k) | window(banks[1], k) for k in range(k_count)]
        for k, (reader, detector, issuer) in enumerate(zip(readers, detectors, issuers)):
            word = port_words[k]
            for other in range(k_count) if mixed else ():
                sel = [rd_kl[kl] for kl in kls if kl > k and other % kl == k]
                if other == k or not sel:
                    continue
                on = sel[0]
                for bit in sel[1:]:
                    on = on | bit
                word = word | (port_words[other] & on.replicate(len(word)))
            m.d.comb += reader.bank_window.eq(word)
            wiring.connect(m, reader.o, detector.i)
            wiring.connect(m, detector.o, issuer.i)
        # The broadcast trees: a group's op, its fields delayed to the lanes' stages once at the
        # root (op_stages, op_stages1, ...: hdl/op_stages.py; field by field: acc_addr may be
        # narrower in the lanes), reaches each of its PEs through cfg.broadcast_stages
        # registers, each driving at most BROADCAST_FANOUT of the next level. The registers of a
        # level hold the same value: ``keep`` tells synthesis not to merge them into one, which
        # would give the tree's last register every lane as its load (docs/design.md 8).
        level = []
        for k, issuer in enumerate(issuers):
            stages = OpStages(pe0.op_layout)
            m.submodules[f"op_stages{k or ''}"] = stages
            # (with per-layer counts hardware group k takes the op of issuer k mod K_l)
            op = issuer.op
            if mixed:
                word = issuer.op.as_value()
                for kl in kls:
                    if k % kl != k:
                        word = Mux(rd_kl[kl], issuers[k % kl].op.as_value(), word)
                op = Signal(iss0.op_layout, name=f"op{k}")
                m.d.comb += op.eq(word)
            m.d.comb += [getattr(stages.op, f).eq(getattr(op, f))
                         for f in pe0.op_layout.members if not (hide and f == "acc_addr")]
            if hide:
                # the op's accumulator set: the pass's (``iset``), the address's top bit
                m.d.comb += stages.op.acc_addr.eq(Cat(op.acc_addr[:set_bit], iset))
            tree = [stages]
            for stage in range(cfg.broadcast_stages):
                width = -(-g_pes // BROADCAST_FANOUT ** (cfg.broadcast_stages - stage - 1))
                nxt = []
                for i in range(width):
                    name = f"bcast{stage}_{i}" if k_count == 1 else f"bcast{k}_{stage}_{i}"
                    reg = Signal(broadcast_layout(pe0.op_layout), name=name, attrs={"keep": 1})
                    parent = tree[i // BROADCAST_FANOUT]
                    m.d.sync += [reg.rom_addr.eq(parent.rom_addr), reg.staged.eq(parent.staged)]
                    nxt.append(reg)
                tree = nxt
            level += tree
        for pe, op in zip(self._pes, level):
            m.d.comb += pe.staged.eq(op.staged)
        # The lanes' weight and k memories, read at the broadcast's rom_addr (the same addresses
        # in every lane; the weight two stages after the op), their words registered on the way
        # to the lanes.
        for pe_i, (pe, op) in enumerate(zip(self._pes, level)):
            words = []
            for lane_i in range(cfg.lanes):
                word = Signal(pe0.rom_layout, name=f"pe{pe_i}_lane{lane_i}_rom", reset_less=True)
                for mem, addr in (("weight", op.rom_addr.w_addr), ("k", op.rom_addr.k_addr)):
                    rom = self._rom(mem, pe_i * cfg.lanes + lane_i)
                    m.submodules[f"pe{pe_i}_lane{lane_i}_{mem}"] = rom
                    port = rom.read_port()
                    m.d.comb += port.addr.eq(addr)
                    m.d.sync += getattr(word, mem).eq(port.data)
                words.append(word)
            m.d.comb += pe.rom.eq(Cat(*words))

        # -- the controller ----------------------------------------------------------------------
        # Draining waits until the last op has reached every accumulator: cfg.op_to_drain
        # cycles after it left the issuer (the history covers the cycles the check and the
        # state change do not).
        history = Signal(cfg.op_to_drain - 2)
        any_op = issuers[0].op.valid
        for issuer in issuers[1:]:
            any_op = any_op | issuer.op.valid
        m.d.sync += history.eq(Cat(any_op, history[:-1]))
        # ``~history.any()`` as a register of its own, loaded with its next value
        hist_clear = Signal(init=1)
        m.d.sync += hist_clear.eq(~any_op & ~history[:-1].any())
        dones, group_quiet = [], []
        for k, (reader, detector, issuer) in enumerate(zip(readers, detectors, issuers)):
            done_seen = Signal(name="done_seen" if k_count == 1 else f"done_seen{k}")
            dones.append(done_seen)
            finished = done_seen | reader.done
            if rd_used[k] is not None:
                finished = finished | ~rd_used[k]
            group_quiet.append(finished & ~detector.o.valid & ~issuer.busy)
        quiet = Signal()
        issued = Signal()   # the issue path done with its pass (its ops may still be on the way)
        m.d.comb += [issued.eq(Cat(*group_quiet).all()), quiet.eq(issued & hist_clear)]
        if conv:
            # the reader's pass was its layer's last (an FC pass always is): set with its done
            last_seen = Signal()
            m.d.comb += last_now.eq(last_seen | (readers[0].done & readers[0].last))
        # drain counters: a = t*p + r, the bank position (row t*S + r div D, pos r mod D) and
        # u = t*m*G*p + r, so that write-back lane h of turn i writes output row u + (i*G+h)*p.
        a = Signal(wide)
        r = Signal(wide)
        pos = Signal(addr_bits(d))
        rhi = Signal(wide)
        tbase = Signal(wide)
        u = Signal(u_bits)
        # the group whose banks take slot t's outputs, t mod K (docs/design.md 4.2)
        wgroup = Signal(addr_bits(k_count))
        # With per-layer counts every turn's write-back writes at once (docs/design.md 4.2):
        # slot t's outputs of turn i go to the banks of group (t*m + i) mod K, so group k's banks
        # take turn k mod m's when t mod K_l = k div m: ``wgroup`` counts t mod K_l.
        if mixed:
            dr_kl = {kl: descriptor([int(k == kl) for k in lks], 1, f"drain_kl{kl}")
                     for kl in kls}
            desc_wg_last = descriptor([kl - 1 for kl in lks], len(wgroup), "wgroup_last")
        # An engine with a pooled layer passes every code through the pool stage (one register,
        # docs/design.md 15): its write-back is POOL_LATENCY cycles longer for every layer.
        wb_latency = cfg.writeback_latency + (POOL_LATENCY if pooled else 0)
        if conv:
            # a conv pass: its output pixel's first row (pix_row), its conv pixel within the
            # pooling window (sub, and flags: the window's first, its last), the rows an output
            # pixel takes (B*S of the layer)
            # (every layer's: a layer of one pass, an FC layer, never advances by it)
            desc_pix_rows = descriptor([-(-l.blocks[0] // nl) * -(-l.p // d) for l in lay],
                                       unsigned(wide), "pix_rows")
            sizes = [pl[1] if pl is not None else 1 for pl in self._pools]
            desc_pool_one = descriptor([int(n == 1) for n in sizes], 1, "pool_one")
            desc_pool_last1 = descriptor([max(n - 2, 0) for n in sizes], unsigned(wide),
                                         "pool_last1")
            next_pool_one = self._pick(layer + 1, [int(n == 1) for n in sizes], 1)
            pix_row = Signal(wide)
            sub = Signal(wide)
            pool_first = Signal(init=1)
            pool_last = Signal(init=int(sizes[0] == 1))
            # the pass being drained's (set at its hand-over)
            dpool_first = Signal(init=1, name="drain_pool_first")
            dpool_last = Signal(init=int(sizes[0] == 1), name="drain_pool_last")
            if pooled:
                avg_sizes = {n for pl, n in zip(self._pools, sizes) if pl and pl[0] == "avg"}
                if len(avg_sizes) > 1:
                    raise PermdealError(f"the engine's average pools must share one window "
                                        f"size, not {sorted(avg_sizes)}")
                desc_pool_avg = descriptor([int(pl is not None and pl[0] == "avg")
                                            for pl in self._pools], 1, "pool_avg")
        flush = Signal(range(wb_latency + 1))
        flush_end = Signal()   # flush == writeback_latency - 1 in FLUSH, a register
        r_end = Signal()       # r == p - 1, a register
        a_end = Signal()       # a == the layer's drain cycles - 1, a register
        draining = Signal()
        # input loader counters: word i of block J = i div q (q = geometry.in_block) goes to
        # bank J mod NL, row (J div NL)*S_q + o div D, position o mod D (o = i mod q); with
        # q = D simply bank (i div D) mod NL, row (i div D) div NL, position i mod D
        # (a network that starts with a convolution: pixel by pixel in blocks of C' = q words,
        # all in bank 0, row pixel*S_q + o div D: docs/design.md 15)
        q0 = self._geom.in_block
        s_q = -(-q0 // d)
        n_in = self._geom.n_inputs
        conv_in = walks[0] is not None
        l_i = Signal(max(self._index_bits, n_in.bit_length()))
        l_end = Signal(init=int(n_in == 1))   # l_i == n - 1, a register
        l_pos = Signal(addr_bits(d))
        l_bank = Signal(addr_bits(nl))
        l_row = Signal(addr_bits(self._rows))
        l_off = Signal(addr_bits(q0))          # o (q != D only)
        l_rowbase = Signal(addr_bits(self._rows))
        loading = Signal()

        state = Signal(State, init=State.LOAD)
        # A conv network's drain runs beside the controller's states (docs/design.md 15):
        # ``dr_on`` while it makes its requests; the next pass may hand over its sums when it is
        # off or at its last request (``a_end``).
        dr_on = Signal(name="drain_on")
        # The cycle before a drain's first request: the drain takes its layer's descriptor
        # (``dr_*``, ``dr_layer``: the controller's may move on to the next layer while it
        # drains, docs/design.md 9).
        handover = Signal()

        def drain_descriptor(reg, name):
            copy = Signal.like(reg, name=f"drain_{name}")
            with m.If(handover):
                m.d.sync += copy.eq(reg)
            return copy
        dr_layer = drain_descriptor(layer, "layer")
        dr_s = drain_descriptor(desc_s, "s")
        dr_ustep = drain_descriptor(desc_ustep, "ustep")
        dr_bias = drain_descriptor(desc_bias, "bias")
        dr_r_last1 = drain_descriptor(desc_r_last1, "r_last1")
        dr_r_first = drain_descriptor(desc_r_first, "r_first")
        dr_a_last1 = drain_descriptor(desc_a_last1, "a_last1")
        if conv:
            # the pass that left the issue path while its ops settle: its set, output pixel and
            # pooling flags (``leave``: a pass leaves the issue path this cycle)
            leave = Signal()
            st_on = Signal(name="settle_on")
            st_set = Signal(name="settle_set")
            st_pix_row = Signal.like(pix_row, name="settle_pix_row")
            st_pool_first = Signal(name="settle_pool_first")
            st_pool_last = Signal(name="settle_pool_last")
        if hidden_fc:
            rows_ok = Signal(readers[0].row_bits + 1, name="rows_ok")
            rows_all = Signal(init=1, name="rows_all")

        # Whether the controller is in a state: that state's flip-flop alone.
        state_bits = {}
        for st in State:
            bit = Signal(name=f"in_{st.name.lower()}")
            m.d.comb += bit.eq(state.as_value()[st.value.bit_length() - 1])
            state_bits[st] = bit
        in_state = state_bits.__getitem__

        # The controller's outputs that are states alone, assigned outside the state blocks (so
        # that they are continuous assignments, valid from time 0 on every simulator).
        m.d.comb += [
            loading.eq(in_state(State.LOAD)),
            self.i.ready.eq(in_state(State.LOAD)),
            *[reader.start.eq(in_state(State.START) if used is None
                              else in_state(State.START) & used)
              for reader, used in zip(readers, rd_used)],
            draining.eq(dr_on if hide else in_state(State.DRAIN)),
            unloading.eq(in_state(State.UNLOAD_START) | in_state(State.UNLOAD)),
            out_reader.start.eq(in_state(State.UNLOAD_START)),
        ]
        with m.If(in_state(State.LOAD)):
            with m.If(self.i.valid):
                m.d.sync += [l_i.eq(l_i + 1),
                             l_end.eq(eq_const(l_i, n_in - 2) if n_in > 1 else 1)]
                if q0 == d and not conv_in:
                    with m.If(eq_const(l_pos, d - 1)):
                        m.d.sync += l_pos.eq(0)
                        with m.If(eq_const(l_bank, nl - 1)):
                            m.d.sync += [l_bank.eq(0), l_row.eq(l_row + 1)]
                        with m.Else():
                            m.d.sync += l_bank.eq(l_bank + 1)
                    with m.Else():
                        m.d.sync += l_pos.eq(l_pos + 1)
                else:
                    with m.If(eq_const(l_off, q0 - 1)):   # the block's last word
                        m.d.sync += [l_off.eq(0), l_pos.eq(0)]
                        with m.If(Const(1) if conv_in else eq_const(l_bank, nl - 1)):
                            m.d.sync += [l_bank.eq(0), l_rowbase.eq(l_rowbase + s_q),
                                         l_row.eq(l_rowbase + s_q)]
                        with m.Else():
                            m.d.sync += [l_bank.eq(l_bank + 1), l_row.eq(l_rowbase)]
                    with m.Else():
                        m.d.sync += l_off.eq(l_off + 1)
                        with m.If(eq_const(l_pos, d - 1)):
                            m.d.sync += [l_pos.eq(0), l_row.eq(l_row + 1)]
                        with m.Else():
                            m.d.sync += l_pos.eq(l_pos + 1)
                with m.If(l_end):
                    m.d.sync += [l_i.eq(0), l_pos.eq(0), l_bank.eq(0), l_row.eq(0), l_off.eq(0),
                                 l_rowbase.eq(0)]
                    m.d.comb += [layer_load.eq(1), layer_next.eq(0)]
                    m.d.sync += state.eq(State.START)
                    if hidden_fc:
                        m.d.sync += iset.eq(0)   # the layers' sets by their parity
        with m.If(in_state(State.START)):
            m.d.sync += [done_seen.eq(0) for done_seen in dones]
            if conv:
                m.d.sync += last_seen.eq(0)
            m.d.sync += state.eq(State.ISSUE)
        def drain_init():
            # the drain's counters at its start (a conv layer's output pixel lies pix_row rows
            # on: docs/design.md 15)
            m.d.sync += [a.eq(0), r.eq(0), pos.eq(0), rhi.eq(0), tbase.eq(pix_row if conv else 0),
                         u.eq(0), wgroup.eq(0), r_end.eq(desc_r_first), a_end.eq(desc_a_first)]

        def drain_step():
            # a drain request: the counters to the next (the drained layer's descriptor)
            m.d.sync += a.eq(a + 1)
            m.d.sync += [a_end.eq(a == dr_a_last1), r_end.eq(r == dr_r_last1)]
            with m.If(r_end):
                m.d.sync += r_end.eq(dr_r_first)
                m.d.sync += [r.eq(0), pos.eq(0), rhi.eq(0), u.eq(u + dr_ustep)]
                # slot t + 1: the next group's banks, the next row block after the last group
                if k_count == 1:
                    m.d.sync += tbase.eq(tbase + dr_s)
                elif mixed:
                    with m.If(wgroup == desc_wg_last):
                        m.d.sync += [wgroup.eq(0), tbase.eq(tbase + dr_s)]
                    with m.Else():
                        m.d.sync += wgroup.eq((wgroup + 1)[:len(wgroup)])
                else:
                    m.d.sync += wgroup.eq((wgroup + 1)[:len(wgroup)])
                    with m.If(eq_const(wgroup, k_count - 1)):
                        m.d.sync += tbase.eq(tbase + dr_s)
            with m.Else():
                m.d.sync += [r.eq(r + 1), u.eq(u + 1)]
                with m.If(eq_const(pos, d - 1)):
                    m.d.sync += [pos.eq(0), rhi.eq(rhi + 1)]
                with m.Else():
                    m.d.sync += pos.eq(pos + 1)

        if hide:
            # The drain beside the states; a pass's hand-over below (written after, so it wins)
            # restarts it.
            with m.If(dr_on):
                drain_step()
                with m.If(a_end):
                    m.d.sync += dr_on.eq(0)
        if conv:
            # A pass's sums go to the drain once its ops have settled (``hist_clear``): as it
            # leaves the issue path, or later from the settle slot; the drain is free then (the
            # pass before drained before it left).
            with m.If(hist_clear & (st_on | leave)):
                m.d.comb += handover.eq(1)
                drain_init()
                m.d.sync += [dr_on.eq(1), st_on.eq(0),
                             tbase.eq(Mux(st_on, st_pix_row, pix_row)),
                             dset.eq(Mux(st_on, st_set, iset)),
                             dpool_first.eq(Mux(st_on, st_pool_first, pool_first)),
                             dpool_last.eq(Mux(st_on, st_pool_last, pool_last))]
        if hidden_fc:
            # The next layer's reader reads a block once the drain has written it
            # (docs/design.md 9, "Hidden drain"): slot t's last request (all lanes write their
            # block-row t*NL + g) counts S more rows as written WRITEBACK_LATENCY + 1 cycles
            # later (a pulse through four registers, then the count); a hand-over starts the
            # count again (the pulses in flight are the finished drain's, whose reader is done);
            # the network input is all written.
            pulse = [Signal(name=f"slot_done{k}") for k in range(WRITEBACK_LATENCY)]
            m.d.sync += [pulse[0].eq(dr_on & r_end),
                         *[pulse[k].eq(pulse[k - 1]) for k in range(1, len(pulse))]]
            with m.If(pulse[-1]):
                m.d.sync += rows_ok.eq(rows_ok + dr_s)
            with m.If(handover):
                m.d.sync += [rows_ok.eq(0), rows_all.eq(0), *[pk.eq(0) for pk in pulse]]
            with m.If(in_state(State.LOAD)):
                m.d.sync += rows_all.eq(1)
            m.d.comb += [readers[0].rows_ok.eq(rows_ok), readers[0].rows_all.eq(rows_all)]
        with m.If(in_state(State.ISSUE)):
            for reader, done_seen in zip(readers, dones):
                with m.If(reader.done):
                    m.d.sync += done_seen.eq(1)
            if conv:
                with m.If(readers[0].done & readers[0].last):
                    m.d.sync += last_seen.eq(1)
                # The pass leaves the issue path once it is issued and the pass before has
                # drained (or makes its last request now: the next pass takes its set); the next
                # pass starts, into the other set, while this one's ops settle (``st_on``) and it
                # drains; the layer's last pass waits for its drain in DRAIN (docs/design.md 15).
                with m.If(issued & ~st_on & (~dr_on | a_end)):
                    m.d.comb += [reader_load.eq(1), leave.eq(1)]
                    m.d.sync += iset.eq(~iset)
                    with m.If(~hist_clear):
                        m.d.sync += [st_on.eq(1), st_set.eq(iset), st_pix_row.eq(pix_row),
                                     st_pool_first.eq(pool_first), st_pool_last.eq(pool_last)]
                    # the next pass's output pixel: the next once its pooling window is
                    # complete; a new layer starts at row 0
                    with m.If(pool_last):
                        m.d.sync += [pix_row.eq(pix_row + desc_pix_rows), sub.eq(0),
                                     pool_first.eq(1), pool_last.eq(desc_pool_one)]
                    with m.Else():
                        m.d.sync += [sub.eq(sub + 1), pool_first.eq(0),
                                     pool_last.eq(sub == desc_pool_last1)]
                    with m.If(last_now):
                        m.d.sync += [pix_row.eq(0), sub.eq(0), pool_first.eq(1),
                                     pool_last.eq(next_pool_one)]
                        m.d.sync += state.eq(State.DRAIN)
                    with m.Else():
                        m.d.sync += state.eq(State.START)
            elif hidden_fc:
                # The layer hands its sums to the drain once the drain is off or at its last
                # request, and the next layer starts (into the other set) while they drain; the
                # last layer waits for its drain in DRAIN (docs/design.md 9, "Hidden drain").
                with m.If(quiet & (~dr_on | a_end)):
                    m.d.comb += [reader_load.eq(1), handover.eq(1)]
                    drain_init()
                    m.d.sync += [dr_on.eq(1), dset.eq(iset), iset.eq(~iset)]
                    with m.If(last_layer):
                        m.d.sync += state.eq(State.DRAIN)
                    with m.Else():
                        m.d.comb += [layer_load.eq(1), layer_next.eq(layer + 1)]
                        m.d.sync += state.eq(State.START)
            else:
                # the drain's counters are idle until it starts: cleared in every cycle of
                # ISSUE, so that the drain condition meets only the state and the readers'
                # descriptors
                drain_init()
                with m.If(quiet):
                    m.d.comb += [reader_load.eq(1), handover.eq(1)]
                    m.d.sync += state.eq(State.DRAIN)
        with m.If(in_state(State.DRAIN)):
            if not hide:
                drain_step()
            # (a conv layer's last pass may still settle while the pass before drains)
            with m.If(dr_on & a_end & ~st_on if conv else a_end):
                m.d.sync += flush.eq(0)
                m.d.sync += state.eq(State.FLUSH)
        with m.If(in_state(State.FLUSH)):
            m.d.sync += [flush.eq(flush + 1), flush_end.eq(flush == wb_latency - 2)]
            with m.If(flush_end):
                with m.If(last_layer):
                    m.d.sync += state.eq(State.UNLOAD_START)
                with m.Else():
                    m.d.comb += [layer_load.eq(1), layer_next.eq(layer + 1)]
                    m.d.sync += state.eq(State.START)
        with m.If(in_state(State.UNLOAD_START)):
            m.d.sync += state.eq(State.UNLOAD)
        with m.If(in_state(State.UNLOAD)):
            with m.If(self.o.valid & self.o.ready & self.o.p.last):
                m.d.sync += state.eq(State.LOAD)
        # (one state bit is set at a time, so the blocks above are exclusive; no other encoding
        # is reachable, but one without a state recovers by loading)
        with m.If(~state.as_value().any()):
            m.d.sync += state.eq(State.LOAD)

        # -- draining: the lanes' accumulators, the groups' sum, the biases, the write-back -----
        # Every lane drains; with lane groups the R = log2 K adder stages add lane h of every
        # group (a binary tree, a register after each adder) into group 0's write-back, whose
        # bias reads and drain requests wait for them (docs/design.md 4.2). With per-layer
        # counts the tree adds the K_l groups of each turn into the turn's first, whose
        # write-back (one in every group of ``self._wb_pes``) writes the turn's outputs.
        red = cfg.reduce_stages
        heads = cfg.writeback_groups
        k_min = k_count // heads
        bias_addr = Signal(len(self._wbs[0].drain.addr))
        m.d.comb += bias_addr.eq((dr_bias + a)[:len(bias_addr)])
        wb_draining = delay(m, draining, red, "wb_draining", reset_less=False)
        wb_bias_addr = delay(m, bias_addr, red, "wb_bias_addr")
        group_sum = GroupSum(nl, k_count, self._wb_proto.acc_layout,
                             min_groups=k_min if mixed else None)
        if red:
            m.submodules.group_sum = group_sum
        if group_sum.en_bits:
            # the stages a layer's count adds (a layer's constant; the sums of the last drain
            # request leave the tree before the next layer's descriptor)
            sum_en = descriptor([sum(1 << e for e in range(group_sum.en_bits) if kl > k_min << e)
                                 for kl in lks], group_sum.en_bits, "sum_en")
            m.d.comb += group_sum.en.eq(sum_en)
        sums = []
        for pe_i, pe in enumerate(self._pes):
            m.d.comb += [
                pe.drain.valid.eq(draining),
                pe.drain.addr.eq(Cat(a[:set_bit], dset) if hide else a[:len(pe.drain.addr)]),
            ]
            # lane by lane: the PE's accumulators may be wider than the write-back's (the lanes
            # are sized for every product, the write-back for the layers' sums, which fit; the
            # groups' partial sums add modulo the width to the layer's sum)
            for l in range(cfg.lanes):
                acc = Signal(self._wb_proto.acc_layout, name=f"pe{pe_i}_acc{l}")
                m.d.comb += [acc.valid.eq(pe.acc[l].valid), acc.value.eq(pe.acc[l].value)]
                sums.append(acc)
        if red:
            m.d.comb += [group_sum.i[g].eq(acc) for g, acc in enumerate(sums)]
            sums = [group_sum.o[y] for y in range(heads * g_lanes)]
        for x, wb in enumerate(self._wbs):
            m.d.comb += [
                wb.drain.valid.eq(wb_draining),
                wb.drain.addr.eq(wb_bias_addr),
                wb.acc.eq(Cat(*sums[x * cfg.lanes:(x + 1) * cfg.lanes])),
            ]
            if self._wb_proto.sel_bits:
                m.d.comb += wb.drain.sel.eq(dr_layer)
        for wb, pe_i in zip(self._wbs, self._wb_pes):
            words = []
            for lane_i in range(cfg.lanes):
                rom = self._rom("bias", pe_i * cfg.lanes + lane_i)
                m.submodules[f"pe{pe_i}_lane{lane_i}_bias"] = rom
                port = rom.read_port()
                m.d.comb += port.addr.eq(wb_bias_addr)
                words.append(port.data)
            m.d.comb += wb.bias.eq(Cat(*words))
        # Write-back lane y = w*G + h (group w*K_min's lane h) keeps output row u + (i*G + h)*p
        # of its turn i = w*K_min / K_l (u = t*m*G*p + r) when it is below the layer's n_out
        # (padded rows are never written back); a group that heads no turn keeps none.
        keep = []
        for y in range(heads * g_lanes):
            w, h = divmod(y, g_lanes)
            limits = [l.n_out - ((w * k_min // kl) * g_lanes + h) * l.p
                      if (w * k_min) % kl == 0 else 0 for l, kl in zip(lay, lks)]
            terms = [Const(0, 1) if lim <= 0 else (u < lim) for lim in limits]
            k = terms[0]
            for i in range(1, n_layers):
                k = Mux(dr_layer == i, terms[i], k)
            keep.append(k)
        # Delay the bank address, the group and the keeps to the write-back's output (the adder
        # stages and the write-back's latency).
        lat = red + self._wb_proto.latency
        assert lat >= 1, "the write-back has at least one stage"
        # The pool stage (docs/design.md 15): write-back lane y's codes meet its buffer of B*p
        # codes, read at the drain address of their request (a read a cycle ahead), and the
        # first conv pixel of a window's code, the larger or the sum (registered) is written back
        # to the buffer; the last's goes to the banks (the average rounded: (sum + n/2) >>
        # log2 n). A layer without pooling has every pass its window's first and last.
        pool_out = {}
        if pooled:
            pool_depth = max(pl.slots * l.p for l, pl, pool in zip(lay, places, self._pools)
                             if pool is not None)
            avg_n = max((pl[1] for pl in self._pools if pl and pl[0] == "avg"), default=1)
            pool_bits = self._act_bits + (avg_n - 1).bit_length()
            pa_bits = addr_bits(max(2, pool_depth))
            a_rd = delay(m, a[:pa_bits], lat - 1, "pool_rd_addr") if lat > 1 else a[:pa_bits]
            a_out = Signal(pa_bits, name="pool_addr")
            m.d.sync += a_out.eq(a_rd)
            # the drained pass's flags, delayed with its codes: ``first`` where they meet the
            # buffer, ``last`` a cycle later with the result
            p_first = delay(m, dpool_first, lat, "pool_first")
            p_last = delay(m, dpool_last, lat + 1, "pool_last")
            for y in range(heads * g_lanes):
                pe_i, lane_i = divmod(y, cfg.lanes)
                out = self._wbs[pe_i].out[lane_i]
                buf = Memory(shape=signed(pool_bits), depth=max(2, pool_depth), init=[])
                m.submodules[f"pool{y}"] = buf
                rd, wr = buf.read_port(), buf.write_port()
                # The read misses the writes of the two requests before (the result in its
                # register, and the one written as the read was made): overlapped passes may
                # drain 1 or 2 cycles apart (B*p = 1 or 2, docs/design.md 15), so their codes
                # come from the two registers when they went to the same address.
                res = Signal(signed(pool_bits), name=f"pool{y}_res")
                res_valid = Signal(name=f"pool{y}_valid")
                res_addr = Signal(pa_bits, name=f"pool{y}_addr")
                res2 = Signal(signed(pool_bits), name=f"pool{y}_res2", reset_less=True)
                res2_valid = Signal(name=f"pool{y}_valid2")
                res2_addr = Signal(pa_bits, name=f"pool{y}_addr2", reset_less=True)
                m.d.sync += [res2.eq(res), res2_valid.eq(res_valid), res2_addr.eq(res_addr)]
                old = Mux(res_valid & (res_addr == a_out), res,
                          Mux(res2_valid & (res2_addr == a_out), res2, rd.data))
                new = out.value
                more = Mux(old > new, old, new)
                if avg_n > 1:
                    more = Mux(desc_pool_avg, old + new, more)
                m.d.sync += [res.eq(Mux(p_first, new, more)), res_valid.eq(out.valid),
                             res_addr.eq(a_out)]
                m.d.comb += [rd.addr.eq(a_rd), wr.addr.eq(res_addr), wr.data.eq(res),
                             wr.en.eq(res_valid)]
                value = res
                if avg_n > 1:
                    k = (avg_n - 1).bit_length()
                    value = Mux(desc_pool_avg & p_last, (res + (avg_n // 2)) >> k, res)
                code = Signal(signed(self._act_bits), name=f"pool{y}_code")
                m.d.comb += code.eq(value)
                pool_out[y] = (res_valid & p_last, code)
            lat += POOL_LATENCY
        row_d = Signal(addr_bits(self._rows))
        m.d.comb += row_d.eq((tbase + rhi)[:len(row_d)])
        keep_vec = Signal(heads * g_lanes)
        for y in range(heads * g_lanes):
            m.d.comb += keep_vec[y].eq(keep[y])
        # The chain's last register is the banks' write register (below): it is shared with the
        # loader, so the chain stops a stage short of it (lat >= 1: the write-back has a stage).
        # (and the set the drained layer writes, ``~dr_layer[0]``: the controller's layer may
        # have moved on by the write)
        stages = [(row_d, pos, keep_vec, wgroup, dr_layer[0])]
        for i in range(lat - 1):
            prev = stages[-1]
            nxt = (Signal.like(prev[0], name=f"wb_row_{i + 1}"),
                   Signal.like(prev[1], name=f"wb_pos_{i + 1}"),
                   Signal.like(prev[2], name=f"wb_keep_{i + 1}"),
                   Signal.like(prev[3], name=f"wb_group_{i + 1}"),
                   Signal(name=f"wb_src_{i + 1}"))
            m.d.sync += [nxt[j].eq(prev[j]) for j in range(5)]
            stages.append(nxt)
        n_row, n_pos, n_keep, n_group, n_src = stages[-1]
        dst = Signal()
        m.d.comb += dst.eq(~n_src)

        # -- bank writes: the loader (set 0) or the write-back (set dst) -------------------------
        # The banks' write starts at flip-flops loaded a cycle before it: the row and position
        # (one register, the loader's or the write-back's), the loader's bank as a one-hot word,
        # the write-back's keeps already joined with the set it writes, and its group as a
        # one-hot word. So a bank's write enable is one gate of registers (a lane's output valid,
        # its keep and set, the group; or the loader's bit), and the activation's enable one more
        # (the position, inside the bank). The loader's write lands a cycle after the input, as
        # the banks read a cycle after their request (hdl.act_banks), so the first layer's reads
        # still see every input. The loader and the write-back never write in the same cycle:
        # the loader writes in LOAD and the cycle after, the write-back after a layer's drain
        # starts (docs/design.md 4.2).
        wl = self._banks_proto.write_layout
        ld_next = Signal()
        m.d.comb += ld_next.eq(loading & self.i.valid)
        ld_valid = Signal(name="load_w_valid")
        ld_hit = Signal(nl, name="load_w_hit")
        ld_value = Signal.like(self.i.payload, name="load_w_value", reset_less=True)
        wr_row = Signal.like(n_row, name="bank_w_row", reset_less=True)
        wr_pos = Signal.like(n_pos, name="bank_w_pos", reset_less=True)
        keep_set = [Signal(heads * g_lanes, name=f"bank_w_keep{s}") for s in range(2)]
        m.d.sync += [
            ld_valid.eq(ld_next),
            ld_hit.eq(Cat(*(ld_next & eq_const(l_bank, g) for g in range(nl)))),
            ld_value.eq(self.i.payload),
            wr_row.eq(Mux(ld_next, l_row, n_row)),
            wr_pos.eq(Mux(ld_next, l_pos, n_pos)),
            keep_set[0].eq(n_keep & n_src.replicate(heads * g_lanes)),
            keep_set[1].eq(n_keep & dst.replicate(heads * g_lanes)),
        ]
        group_hit = [Const(1)]
        if k_count > 1:
            w_group = Signal(k_count, name="bank_w_group")
            m.d.sync += w_group.eq(Cat(*(eq_const(n_group, k) for k in range(k_count))))
            group_hit = list(w_group)
        for s, bank in enumerate(banks):
            lanes_w = []
            for g in range(nl):
                # bank g = k*G + h takes group 0's lane h when slot t mod K is k; with per-layer
                # counts (m = K / K_l) turn k mod m's lane h when t mod K_l is k div m
                k, h = divmod(g, g_lanes)
                w = Signal(wl, name=f"banks{s}_w{g}")
                valid = value = None
                for kl in (kls if mixed else [k_count]):
                    span = k_count // kl
                    y = ((k % span) * kl // k_min) * g_lanes + h
                    pe_i, lane_i = divmod(y, cfg.lanes)
                    out = self._wbs[pe_i].out[lane_i]
                    o_valid, o_value = pool_out.get(y, (out.valid, out.value))
                    this = o_valid & keep_set[s][y]
                    if k_count > 1:
                        this = this & group_hit[k // span]
                    valid = this if valid is None else Mux(dr_kl[kl], this, valid)
                    value = o_value if value is None else Mux(dr_kl[kl], o_value, value)
                m.d.comb += [
                    w.valid.eq(valid | ld_hit[g] if s == 0 else valid),
                    w.row.eq(wr_row),
                    w.pos.eq(wr_pos),
                    w.value.eq(Mux(ld_valid, ld_value, value) if s == 0 else value),
                ]
                lanes_w.append(w)
            m.d.comb += bank.w.eq(Cat(*lanes_w))

        # -- the output stream -------------------------------------------------------------------
        m.d.comb += [
            self.o.valid.eq(out_reader.o.valid),
            self.o.payload.eq(out_reader.o.payload),
            out_reader.o.ready.eq(self.o.ready),
        ]
        return m
