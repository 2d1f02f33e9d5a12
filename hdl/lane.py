# amaranth: UnusedElaboratable=no
"""One multiplier lane of a PE: weight and k memories, index, multiplier, accumulators (DESIGN 4.2).

The engine's controller computes the addresses of every operation once and broadcasts one
operation per cycle to every lane of every PE; all lanes share one memory layout
(``golden.rom``), so the addresses are the same everywhere and only the memory contents differ.
For a non-zero input ``x_j`` (``j = J*p + c``) and slot ``t`` of a layer whose memories start at
``w_base`` and ``k_base`` the operation is::

    w_addr   = w_base + t*N'*p + j  weight q[I][J][(c - k) mod p] of block-row I = t*NL + g
                                    (with K lane groups: t*N_k*p + j, j the group's own index,
                                    I = t*G + h; golden.geometry)
    k_addr   = k_base + t*N' + J    permutation value k[I][J]
    c        = j mod p              column of x_j within its block
    sel      = index of p in ps     (no field when the design has a single block size)
    x        = x_j                  the activation code
    acc_addr = t*p                  the slot's first accumulator; the lane adds r = (c - k) mod p

and the lane adds ``w * x`` to accumulator ``t*p + r``, i.e. to output row ``I*p + r``.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amaranth.hdl import Assert, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_ACC_BITS, MAX_BITS

from .accumulator import DRAIN_LATENCY, VALUE_DELAY, Accumulator
from .mac_widths import MacWidths
from .multiplier import MULTIPLIERS, Multiplier
from .op_stages import OpStages, staged_layout
from .perm_index import PermIndex
from .rom import ImageRom, addr_bits, check_image, verilog_path

__all__ = ["IMAGE_MEMORIES", "Lane", "lane_params", "op_layout"]

#: The lane memories that can be initialised from image files (``golden.rom`` memory names).
IMAGE_MEMORIES = ("weight", "k")

#: Cycles from an operation to the first drain request that sees its sum (see :class:`Lane`).
LATENCY = 5


def op_layout(w_addr_bits: int, k_addr_bits: int, index_width: int, sel_bits: int, act_bits: int,
              acc_addr_bits: int) -> data.StructLayout:
    """The broadcast operation (see the module docstring), packed from bit 0 in this order; no
    ``sel`` field when ``sel_bits`` is 0 (a single block size)."""
    fields = {"valid": unsigned(1), "w_addr": unsigned(w_addr_bits),
              "k_addr": unsigned(k_addr_bits), "c": unsigned(index_width)}
    if sel_bits:
        fields["sel"] = unsigned(sel_bits)
    fields["x"] = signed(act_bits)
    fields["acc_addr"] = unsigned(acc_addr_bits)
    return data.StructLayout(fields)


def lane_params(ps: int | Sequence[int], act_bits: int, weight_bits: int, acc_bits: int,
                w_depth: int, k_depth: int,
                acc_depth: int) -> tuple[PermIndex, int, int, int, int, int, int]:
    """Check the parameters that every lane of a PE shares; return them normalized.

    Returns ``(index, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth)`` where
    ``index`` is a (registered) :class:`PermIndex` for ``ps``, which checks the block sizes.
    """
    index = PermIndex(ps, registered=True)
    act_bits = integer(act_bits, "lane act_bits", 2, MAX_BITS)
    weight_bits = integer(weight_bits, "lane weight_bits", 2, MAX_BITS)
    lo = act_bits + weight_bits
    try:
        acc = integer(acc_bits, "lane acc_bits")
    except PermdealError:
        acc = None
    if acc is None or not lo <= acc <= MAX_ACC_BITS:
        raise PermdealError(f"lane acc_bits must be an integer in [{lo}, {MAX_ACC_BITS}], not "
                            f"{acc_bits!r} (an exact product of {act_bits}-bit activations and "
                            f"{weight_bits}-bit weights has {lo} bits)")
    w_depth = integer(w_depth, "lane w_depth", 1)
    k_depth = integer(k_depth, "lane k_depth", 1)
    p_max = max(index.ps)
    try:
        acc_depth = integer(acc_depth, "lane acc_depth", p_max)
    except PermdealError:
        raise PermdealError(f"lane acc_depth must be an integer >= {p_max} (one slot of the "
                            f"largest block size), not {acc_depth!r}") from None
    return index, act_bits, weight_bits, acc, w_depth, k_depth, acc_depth


def _words(values, what, depth, lo, hi, kind):
    """``values`` as a tuple of exactly ``depth`` ints in ``[lo, hi]``."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise PermdealError(f"{what} must be a sequence of {depth} integers, not "
                            f"{type(values).__name__}")
    if len(values) != depth:
        raise PermdealError(f"{what} must hold exactly {depth} words, not {len(values)}")
    out = []
    for i, v in enumerate(values):
        try:
            v = integer(v, what)
        except PermdealError:
            v = None
        if v is None or not lo <= v <= hi:
            raise PermdealError(f"{what}[{i}] must be an integer in [{lo}, {hi}] ({kind}), "
                                f"not {values[i]!r}")
        out.append(v)
    return tuple(out)


def _image_paths(images):
    """``images`` as ``{"weight": Path, "k": Path}``."""
    if not isinstance(images, Mapping) or set(images) != set(IMAGE_MEMORIES):
        got = sorted(images, key=str) if isinstance(images, Mapping) else type(images).__name__
        raise PermdealError(f"lane images must be a mapping with keys 'weight' and 'k', not {got}")
    out = {}
    for mem in IMAGE_MEMORIES:
        path = images[mem]
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise PermdealError(f"lane images[{mem!r}] must be a file path, not {path!r}")
        verilog_path(path)  # the path must be a Verilog string
        out[mem] = Path(path)
    return out


class Lane(MacWidths, wiring.Component):
    """One multiplier lane: ``acc[acc_addr + (c - k) mod p] += weight[w_addr] * x`` per operation.

    Parameters
    ----------
    ps : int or sequence of int
        The block sizes the design supports, as for :class:`~.perm_index.PermIndex` (``sel = i``
        selects ``ps[i]``).
    act_bits, weight_bits : int
        Widths of the signed activation and weight codes, 2 to 32.
    acc_bits : int
        Width of a signed accumulator, ``act_bits + weight_bits`` to 63. Products are exact
        (``act_bits + weight_bits`` bits); the sums do not wrap when ``acc_bits`` is at least every
        layer's ``golden.formats.LayerFormats.acc_bits`` (the generator's job: the lane cannot see
        the layers).
    w_depth, k_depth : int
        Words of the weight and k memories (``golden.rom`` placements: all layers' depths).
    acc_depth : int
        Accumulators, at least ``max(ps)``; a layer uses ``B*p`` of them.
    weights, ks : sequence of int
        Initial contents: exactly ``w_depth`` signed ``weight_bits``-bit words and ``k_depth``
        words in ``[0, max(ps))`` (one lane's row of ``golden.rom.lane_contents``), baked into
        the Verilog. Not with ``images``.
    images : mapping, optional
        ``{"weight": path, "k": path}``: initialise the weight and k memories from these
        ``$readmemh`` image files (``golden.rom.write_images``; two's complement weights) instead
        of baking their contents into the Verilog. The memories become :class:`~.rom.ImageRom`
        instances of the Verilog module ``permdeal_rom``, so the Verilog must be built together
        with ``hdl.rom.ROM_SOURCE``. Each image is checked here (:func:`~.rom.check_image`): it
        must exist and hold exactly ``w_depth`` (``k_depth``) words of ``weight_bits``
        (``index_width``) bits, k words below ``max(ps)``, and agree with the ``manifest.json``
        beside it when there is one; ``weights`` and ``ks`` must then be left out (the images are
        the contents; :attr:`weights` and :attr:`ks` return what they hold). The Verilog names
        each file by its absolute path, or with ``rom_dir`` (a string) as ``rom_dir/name``
        (:func:`.rom.verilog_path`).
    external : bool
        The weight and k memories live outside the lane (the engine keeps every lane's memories
        outside its PEs, so that all PEs are one Verilog module): the lane then has a ``rom``
        port and takes no ``weights``, ``ks`` or ``images``; and, instead of ``op``, the
        ``staged`` port (one :class:`~.op_stages.OpStages` serves many lanes: the engine keeps
        one an issue path, at the root of its broadcast tree).
        Amaranth's own simulator cannot run such a lane (the ROM is a Verilog instance); Icarus
        and Verilator can.
    acc_ram_module : str, optional
        Emit the accumulator memory once as the Verilog module of this name
        (:class:`~.accumulator.Accumulator`'s ``ram_module``; :attr:`blackboxes`); by default it
        is elaborated in place.
    acc_sets : int
        1 (default) or 2 accumulator sets (:class:`~.accumulator.Accumulator`'s ``sets``): with
        two, ``acc_addr``'s top bit is the set, and an op and a drain request of the other set
        may come in one cycle (docs/design.md 15: a conv pass issues while the one before
        drains).
    acc_set_depths : pair of int, optional
        With two sets: each set's accumulators, at most ``acc_depth`` (the accumulator's
        ``set_depths``).
    multiplier : str
        The :class:`~.multiplier.Multiplier`'s style, ``"native"`` (default), ``"booth"`` or
        ``"dsp"``: the same products at the same time. ``"dsp"`` makes an FPGA design: its
        multiplier's weight is zero without an op and its accumulator has the FPGA structure
        (:class:`~.accumulator.Accumulator`'s ``fpga``: the memory written from registers, a
        forwarding register more, no gate after the multiplier; the same behaviour).

    Members
    -------
    op : ``In(op_layout)``
        The broadcast operation, a struct packed from bit 0 in the order ``valid`` (1 bit),
        ``w_addr`` (``w_addr_bits``), ``k_addr`` (``k_addr_bits``), ``c`` (``index_width``),
        ``sel`` (``sel_bits``; no field with a single block size), ``x`` (``signed(act_bits)``),
        ``acc_addr`` (``acc_addr_bits``). No handshake: an op with ``valid`` is taken every cycle.
        Not with external memories.
    staged : ``In(staged_layout)`` (external memories only)
        The op's fields delayed to the stages that use them, :class:`~.op_stages.OpStages`'
        ``staged`` (shared by many lanes; a lane with memories keeps its own OpStages).
    rom : ``In(rom_layout)`` (external memories only)
        ``{weight: signed(weight_bits), k: unsigned(index_width)}``: the words at the addresses
        of the :attr:`.op_stages.OpStages.rom_addr` of ``ROM_LATENCY = 2`` cycles before (the
        OpStages whose ``staged`` the lane takes), as
        a memory's synchronous read port and an output register give them: ``k`` at the
        ``k_addr`` of the op of stage 2 (read in its stage 0), ``weight`` at the ``w_addr`` of the
        op of stage 4 (read in its stage 2).
    drain : ``In(drain_layout)``
        Drain request ``{valid: 1 bit, addr: acc_addr_bits}`` (from bit 0 in that order).
    acc : ``Out(acc_layout)``
        Drained value ``{valid: 1 bit, value: signed(acc_bits)}``; ``value`` is meaningful only
        while ``valid``.

    Pipeline
    --------
    An op presented in cycle ``n`` (stage 0) moves one stage per cycle, with no stalls:

    0. ``n``: the k memory's synchronous read port takes ``k_addr``; the rest of the op is
       registered (:class:`~.op_stages.OpStages`, with external memories the engine's, one an
       issue path), until the stage that uses it.
    1. ``n + 1``: the k word is out of the memory and goes into its output register.
    2. ``n + 2``: ``k`` is registered; :class:`PermIndex` (registered) computes
       ``r = (c - k) mod p``. The weight memory's read port takes ``w_addr`` (read now, not in
       stage 0, so that no register of the lane holds ``w`` until the multiply).
    3. ``n + 3``: ``a = acc_addr + r`` is registered; the weight word goes into its output
       register.
    4. ``n + 4``: ``a`` goes to the accumulator memory's read port
       (:class:`~.accumulator.Accumulator`, stage A); the multiplier (two register stages) takes
       ``w`` (the weight memory's output register; in an FPGA design zero without an op, so
       that a drain's product is zero and the accumulator needs no gate after the DSP block) and
       ``x`` (a register shared by many lanes: :class:`~.op_stages.OpStages`).
    5. ``n + 5``: the word read is registered (stage B).
    6. ``n + 6``: the exact product ``w * x`` comes out of the multiplier, and
       ``acc[a] + w * x`` is written back to ``acc[a]`` at the end of the cycle (stage C). The
       old value takes the writes the read port missed from two forwarding registers, so
       back-to-back ops on one accumulator (``B = 1`` across block-columns, and every op when
       ``p = 1``) add up exactly. The multiply starts as late as it can: a register holding
       ``w`` (or ``x``, shared by many lanes) is cheaper than one holding the product.

    So ``latency = 5``: the op of cycle ``n`` is seen by a drain request in cycle ``n + 5`` or
    later (the accumulator's forwarding carries the sums still in its stages B and C to it). In
    ``golden.cycles`` terms the first drain request of a layer may come ``latency`` cycles after
    its last op reaches the lane.

    Draining is read-and-clear: a request ``{valid, addr}`` in cycle ``d`` reads ``acc[addr]``
    (the accumulator read port) and has ``acc = {1, value}`` in cycle ``d + 2``
    (``drain_latency = 2``), while the write port clears ``acc[addr]`` to zero at the end of that
    cycle. The drained value passes the forwarding registers too, and a request right after a
    clear of the same address reads 0. The accumulators are zero at initialisation (not at
    ``rst``), and every layer drains all its ``B*p`` of them, so each layer starts from zeros
    without a clearing pass. Requests may come every cycle, in any address order.

    Draining and accumulating share the accumulator's ports, so they are never active at once: the
    controller guarantees (and simulation asserts) that no drain request comes in the cycle of an
    op or while an op is in stages 1 to 4 (the last uses the read port), i.e. a drain request in
    cycle ``d`` needs no op in cycles ``d - 4 .. d``; with ``latency = 5`` that is the same as
    draining a layer no earlier than ``latency`` cycles after its last op. The next layer's ops may
    start in the cycle after the last drain request. The fields of an op or a drain request
    without ``valid`` are ignored. The assertion is an Amaranth ``Assert`` (a Verilog immediate
    ``assert``): Verilator stops on it, Icarus logs an error and goes on.

    ``rst`` (synchronous) empties the pipeline and the drain output; it does not clear the
    memories.
    """

    def __init__(self, ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth, *,
                 weights=None, ks=None, images=None, rom_dir=None, external=False,
                 acc_ram_module=None, multiplier=MULTIPLIERS[0], acc_sets=1,
                 acc_set_depths=None):
        if acc_sets not in (1, 2):
            raise PermdealError(f"lane acc_sets must be 1 or 2, not {acc_sets!r}")
        self._acc_sets = acc_sets
        if multiplier not in MULTIPLIERS:
            raise PermdealError(f"lane multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                                f"{multiplier!r}")
        self._multiplier = multiplier
        (index, self._act_bits, self._weight_bits, self._acc_bits, self._w_depth,
         self._k_depth, self._acc_depth) = lane_params(ps, act_bits, weight_bits, acc_bits,
                                                       w_depth, k_depth, acc_depth)
        self._ps = index.ps
        self._index_width, self._sel_bits = index.width, index.sel_bits
        wb = self._weight_bits
        p_max = max(self._ps)
        self._images = None
        self._rom_dir = rom_dir
        self._external = bool(external)
        if self._external:
            if weights is not None or ks is not None or images is not None:
                raise PermdealError("an external-memory lane takes no weights, ks or images (its "
                                    "memories live outside it)")
            self._weights = self._ks = None
            ports = {"staged": In(self.staged_layout), "rom": In(self.rom_layout)}
        elif images is not None:
            self._images = _image_paths(images)
            if weights is not None or ks is not None:
                raise PermdealError("lane weights and ks must be left out when images are given "
                                    "(the images hold the memories' contents)")
            weights = check_image(self._images["weight"], "weight", wb, self._w_depth,
                                  signed=True).tolist()
            ks = check_image(self._images["k"], "k", self._index_width, self._k_depth,
                             signed=False, limit=p_max).tolist()
        if not self._external:
            ports = {"op": In(self.op_layout)}
            self._weights = _words(weights, "lane weights", self._w_depth, -(1 << (wb - 1)),
                                   (1 << (wb - 1)) - 1, f"signed {wb}-bit")
            self._ks = _words(ks, "lane ks", self._k_depth, 0, p_max - 1,
                              f"permutation values of block sizes up to {p_max}")
        ports.update({"drain": In(self.drain_layout), "acc": Out(self.acc_layout)})
        super().__init__(ports)
        # an FPGA design (the dsp multiplier): the accumulator's FPGA structure
        self._accumulator = Accumulator(self._acc_bits, self.product_bits, self._acc_depth,
                                        ram_module=acc_ram_module, fpga=multiplier == "dsp",
                                        sets=acc_sets, set_depths=acc_set_depths)

    # -- parameters --------------------------------------------------------------------------

    @property
    def ps(self) -> tuple[int, ...]:
        return self._ps

    @property
    def w_depth(self) -> int:
        return self._w_depth

    @property
    def k_depth(self) -> int:
        return self._k_depth

    @property
    def acc_depth(self) -> int:
        return self._acc_depth

    @property
    def images(self) -> dict[str, Path] | None:
        """``{"weight": Path, "k": Path}`` when the memories load image files, else None."""
        return None if self._images is None else dict(self._images)

    @property
    def weights(self) -> tuple[int, ...] | None:
        """Initial weight memory contents (a tuple of ``w_depth`` ints)."""
        return self._weights

    @property
    def ks(self) -> tuple[int, ...] | None:
        """Initial k memory contents (a tuple of ``k_depth`` ints)."""
        return self._ks

    # -- derived -----------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from an op (stage 0) to the first cycle a drain request sees its sum."""
        return LATENCY

    @property
    def drain_latency(self) -> int:
        """Cycles from a drain request to its value on ``acc``."""
        return DRAIN_LATENCY

    @property
    def product_bits(self) -> int:
        """Width of the exact product ``w * x``."""
        return self._act_bits + self._weight_bits

    @property
    def index_width(self) -> int:
        """Width of ``c``, of the k memory's words and of ``r`` (:attr:`PermIndex.width`)."""
        return self._index_width

    @property
    def sel_bits(self) -> int:
        """Width of ``sel`` (0: a single block size, no ``sel`` field)."""
        return self._sel_bits

    @property
    def w_addr_bits(self) -> int:
        return addr_bits(self._w_depth)

    @property
    def k_addr_bits(self) -> int:
        return addr_bits(self._k_depth)

    @property
    def acc_sets(self) -> int:
        """Accumulator sets (:class:`~.accumulator.Accumulator`'s ``sets``)."""
        return self._acc_sets

    @property
    def acc_addr_bits(self) -> int:
        """The accumulator address: a set's, with two sets the set as one more bit above."""
        return addr_bits(self._acc_depth) + (self._acc_sets > 1)

    @property
    def op_layout(self) -> data.StructLayout:
        """The broadcast operation (:func:`op_layout`)."""
        return op_layout(self.w_addr_bits, self.k_addr_bits, self._index_width, self._sel_bits,
                         self._act_bits, self.acc_addr_bits)

    @property
    def staged_layout(self) -> data.StructLayout:
        """``staged`` of an external-memory lane (:func:`.op_stages.staged_layout`)."""
        return staged_layout(self.op_layout)

    @property
    def drain_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "addr": unsigned(self.acc_addr_bits)})

    @property
    def acc_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "value": signed(self._acc_bits)})

    @property
    def rom_layout(self) -> data.StructLayout:
        """``rom`` of an external-memory lane: ``{weight, k}`` from bit 0."""
        return data.StructLayout({"weight": signed(self._weight_bits),
                                  "k": unsigned(self._index_width)})

    @property
    def accumulator(self) -> Accumulator:
        """The lane's :class:`~.accumulator.Accumulator`."""
        return self._accumulator

    @property
    def blackboxes(self) -> tuple:
        """The accumulator memory's :class:`~.blackbox.Blackbox` with ``acc_ram_module``, else
        none."""
        return self._accumulator.blackboxes

    @property
    def external(self) -> bool:
        """Whether the weight and k memories live outside the lane (the ``rom`` port)."""
        return self._external

    # -- hardware ----------------------------------------------------------------------------

    def _memory(self, shape, depth, init, image=None):
        """One lane memory: with ``image`` (a path) an :class:`~.rom.ImageRom` loading that file
        by ``$readmemh`` (read-only; ``init`` unused), else a ``Memory`` with ``init`` baked into
        the Verilog. Both give a synchronous read port by ``read_port()``.

        The one place that creates memories.
        """
        if image is not None:
            return ImageRom(shape, depth, image, rom_dir=self._rom_dir)
        return Memory(shape=shape, depth=depth, init=init)

    def _image(self, memory):
        return None if self._images is None else self._images[memory]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        if self._external:
            w_data, k_data = self.rom.weight, self.rom.k
            staged = self.staged
        else:
            op = self.op
            m.submodules.weight_mem = weight = self._memory(
                signed(self._weight_bits), self._w_depth, self._weights, self._image("weight"))
            m.submodules.k_mem = kmem = self._memory(
                unsigned(self._index_width), self._k_depth, self._ks, self._image("k"))
            # Stages 0 to 4: the op's fields (and the weight address) wait for the stages that
            # use them.
            m.submodules.op_stages = stages = OpStages(self.op_layout)
            m.d.comb += stages.op.eq(op)
            staged = stages.staged
            w_rd, k_rd = weight.read_port(), kmem.read_port()
            m.d.comb += [w_rd.addr.eq(stages.rom_addr.w_addr),
                         k_rd.addr.eq(stages.rom_addr.k_addr)]
            # the memories' output registers: the words ROM_LATENCY cycles after their reads
            w_reg = Signal.like(w_rd.data, name="weight_reg", reset_less=True)
            k_reg = Signal.like(k_rd.data, name="k_reg", reset_less=True)
            m.d.sync += [w_reg.eq(w_rd.data), k_reg.eq(k_rd.data)]
            w_data, k_data = w_reg, k_reg
        m.submodules.perm_index = index = PermIndex(self._ps, registered=True)
        m.submodules.multiplier = mul = Multiplier(self._weight_bits, self._act_bits,
                                                   style=self._multiplier)
        m.submodules.accumulator = accu = self._accumulator
        assert mul.latency == VALUE_DELAY  # the product comes in the accumulator's stage C

        # Stage 2: r = (c - k) mod p (registered in PermIndex).
        m.d.comb += [index.c.eq(staged.c), index.k.eq(k_data)]
        if self._sel_bits:
            m.d.comb += index.sel.eq(staged.sel)

        # Stage 3: the accumulator address a = acc_addr + r, registered.
        addr4 = Signal(self.acc_addr_bits, reset_less=True)
        m.d.sync += addr4.eq(staged.acc_addr + index.r)

        # Stage 4: the add to accumulator a and the multiply, whose product the accumulator
        # adds two cycles later (its stage C); drains share the ports.
        m.d.comb += [
            # read in stage 2 (WEIGHT_STAGE), so it is stage 4's; in an FPGA design zero without
            # an op, so that a drain's product is zero (the accumulator adds it as it comes, no
            # gate after the DSP block)
            mul.a.eq(Mux(staged.valid, w_data, 0) if self._accumulator.fpga else w_data),
            mul.b.eq(staged.x),  # OpStages' stage-4 register, shared
            accu.add.valid.eq(staged.valid),
            accu.add.addr.eq(addr4),
            accu.value.eq(mul.p),
            accu.drain.eq(self.drain),
            self.acc.eq(accu.acc),
        ]

        # The controller's contract: no drain request while an op needs the read port (with two
        # sets: of the same set, which the accumulator asserts).
        if self._acc_sets == 1:
            m.d.sync += Assert(~(self.drain.valid & staged.busy),
                               "lane: drain request while an op is in the pipeline\n")
        return m
