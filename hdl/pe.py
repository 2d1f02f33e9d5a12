# amaranth: UnusedElaboratable=no
"""A processing element: ``lanes`` multiplier lanes sharing one broadcast op (docs/design.md 4.2)."""

from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.rom import image_name

from .blackbox import Blackbox
from .lane import IMAGE_MEMORIES, Lane, lane_params
from .op_stages import staged_layout

__all__ = ["PE", "pe_contents", "pe_images"]

#: The lane memories a PE is given contents for (``golden.rom`` names; ``bias`` belongs to the
#: write-back, not to the lanes).
LANE_MEMORIES = IMAGE_MEMORIES


def pe_contents(contents: dict[str, np.ndarray], cfg: EngineConfig,
                pe: int) -> list[dict[str, np.ndarray]]:
    """The ``contents`` argument of PE ``pe``: its lanes' rows of ``golden.rom.lane_contents``.

    ``contents`` is ``{memory: array (NL, depth)}``, ``cfg`` the ``EngineConfig``; lane ``l`` of
    PE ``pe`` is global lane ``g = pe*lanes + l``.
    """
    pe = integer(pe, "PE index", 0)
    if pe >= cfg.n_pe:
        raise PermdealError(f"PE index must be below the engine's {cfg.n_pe} PEs, not {pe}")
    return [{mem: contents[mem][pe * cfg.lanes + l] for mem in LANE_MEMORIES}
            for l in range(cfg.lanes)]


def pe_images(folder: Path, cfg: EngineConfig, pe: int) -> list[dict[str, Path]]:
    """The ``images`` argument of PE ``pe``: its lanes' image files in ``folder``.

    ``folder`` holds the images of ``golden.rom.write_images`` for the engine ``cfg``; lane ``l``
    gets ``{memory: folder / image_name(pe, l, memory, cfg)}`` for ``weight`` and ``k``. The files
    are checked when the PE is built.
    """
    pe = integer(pe, "PE index", 0)
    if pe >= cfg.n_pe:
        raise PermdealError(f"PE index must be below the engine's {cfg.n_pe} PEs, not {pe}")
    folder = Path(folder)
    return [{mem: folder / image_name(pe, l, mem, cfg) for mem in LANE_MEMORIES}
            for l in range(cfg.lanes)]


class PE(wiring.Component):
    """``lanes`` :class:`~.lane.Lane` instances (submodules ``lane0``, ``lane1``, ...) that take
    the same broadcast operation and the same drain request every cycle.

    Parameters
    ----------
    lanes : int
        ``L``, multiplier lanes, at least 1.
    ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth
        Shared by every lane, as for :class:`~.lane.Lane`.
    contents : sequence of ``lanes`` dicts
        Lane ``l``'s initial memory contents ``{"weight": w_depth words, "k": k_depth words}``
        (:func:`pe_contents` cuts them out of ``golden.rom.lane_contents``), baked into the
        Verilog. Not with ``images``.
    images : sequence of ``lanes`` mappings, optional
        Lane ``l``'s image files ``{"weight": path, "k": path}`` (:func:`pe_images` names them
        after ``golden.rom.image_name``): the lanes load their weight and k memories by
        ``$readmemh`` (``Lane``'s ``images``) and the Verilog must be built together with
        ``hdl.rom.ROM_SOURCE``. ``contents`` must then be left out.
    rom_dir : str, optional
        With ``images``: how the Verilog names the files (``Lane``'s ``rom_dir``).
    external : bool
        The lanes' memories live outside the PE (``Lane``'s ``external``): the PE has a ``rom``
        port, ``ArrayLayout(rom_layout, lanes)``, lane ``l``'s words in element ``l``, and takes
        no ``contents`` or ``images``. All such PEs of one configuration are the same module. The
        PE then takes the op's fields already delayed to the lanes' stages (``staged`` instead of
        ``op``: the output of an :class:`~.op_stages.OpStages` that the engine keeps once for all
        the PEs of an issue path, at the root of its broadcast tree) and wires them to every
        lane; the memories' owner reads them at that OpStages' ``rom_addr``.
    lane_module : str, optional
        With ``external``: emit the lane once as the Verilog module of this name and instantiate
        it ``lanes`` times (:attr:`blackboxes`; the engine's way, so that synthesis handles one
        lane); by default every lane is elaborated in place.
    acc_ram_module : str, optional
        With ``lane_module``: the lanes' accumulator memory as a Verilog module of this name
        (:class:`Lane`).
    multiplier : str
        Every lane's multiplier style (:class:`Lane`), ``"native"`` or ``"booth"``.
    acc_sets : int
        Every lane's accumulator sets (:class:`Lane`'s ``acc_sets`` and ``acc_set_depths``; external
        memories only).

    Members
    -------
    op : ``In(op_layout)`` (not with external memories)
        The broadcast operation (:attr:`Lane.op_layout`), wired to every lane.
    staged : ``In(staged_layout)`` (external memories only)
        The op's fields at the lanes' stages (:attr:`.op_stages.OpStages.staged`), wired to every
        lane.
    rom : ``In(ArrayLayout(rom_layout, lanes))`` (external memories only)
        Lane ``l``'s weight and k words (:attr:`Lane.rom_layout`), read at the ``rom_addr`` of the
        same OpStages ``ROM_LATENCY = 2`` cycles before (the weight at the ``w_addr`` of the op of
        stage 2, the k word at the ``k_addr`` of the op of stage 0).
    drain : ``In(drain_layout)``
        The drain request (:attr:`Lane.drain_layout`), wired to every lane: all lanes drain the
        same accumulator address in the same cycle.
    acc : ``Out(ArrayLayout(acc_layout, lanes))``
        Lane ``l``'s drain output ``{valid, value}`` (:attr:`Lane.acc_layout`) is element ``l``:
        bits ``[l*(1 + acc_bits), (l + 1)*(1 + acc_bits))`` of the Verilog port ``acc``, ``valid``
        lowest. Every element's ``valid`` is the same.

    Timing
    ------
    The PE adds no register: ``latency`` and ``drain_latency`` are the lane's (5 and 2), and
    the controller's contract is the lane's (no drain request in the cycle of an op or in the
    four cycles after one).
    """

    def __init__(self, lanes, ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth,
                 *, contents=None, images=None, rom_dir=None, external=False, lane_module=None,
                 acc_ram_module=None, multiplier="native", acc_sets=1, acc_set_depths=None):
        self._lanes = integer(lanes, "PE lanes", 1)
        self._multiplier = multiplier
        self._lane_boxes = []
        params = lane_params(ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth)
        params = (params[0].ps, *params[1:])
        if external:
            if contents is not None or images is not None:
                raise PermdealError("an external-memory PE takes no contents or images (its "
                                    "lanes' memories live outside it)")
            if lane_module is None:
                self._lane_list = [Lane(*params, external=True, multiplier=multiplier,
                                        acc_sets=acc_sets, acc_set_depths=acc_set_depths)
                                   for _ in range(self._lanes)]
            else:
                proto = Lane(*params, external=True, acc_ram_module=acc_ram_module,
                             multiplier=multiplier, acc_sets=acc_sets, acc_set_depths=acc_set_depths)
                self._lane_list = [proto] * self._lanes
                self._lane_boxes = [Blackbox(proto, lane_module) for _ in range(self._lanes)]
        elif images is not None:
            if contents is not None:
                raise PermdealError("PE contents must be left out when images are given (the "
                                    "images hold the lanes' memory contents)")
            if isinstance(images, (str, bytes, dict, Path)) or not hasattr(images, "__len__"):
                raise PermdealError(f"PE images must be a sequence of {self._lanes} mappings, "
                                    f"not {type(images).__name__}")
            if len(images) != self._lanes:
                raise PermdealError(f"PE images must hold one mapping per lane ({self._lanes}), "
                                    f"not {len(images)}")
            self._lane_list = []
            for l, files in enumerate(images):
                try:
                    self._lane_list.append(Lane(*params, images=files, rom_dir=rom_dir,
                                                multiplier=multiplier))
                except PermdealError as e:
                    raise PermdealError(f"PE images[{l}]: {e}") from None
        else:
            self._lane_list = self._baked_lanes(params, contents)
        if acc_ram_module is not None and lane_module is None:
            raise PermdealError("acc_ram_module needs lane_module (lanes elaborated in place keep "
                                "their accumulators in place)")
        if lane_module is not None and not external:
            raise PermdealError("lane_module needs an external-memory PE (lanes with their own "
                                "memory contents differ, so they cannot share one module)")
        first = self._lane_list[0]
        if external:
            ports = {"staged": In(staged_layout(first.op_layout)),
                     "rom": In(data.ArrayLayout(first.rom_layout, self._lanes))}
        else:
            ports = {"op": In(first.op_layout)}
        ports.update({
            "drain": In(first.drain_layout),
            "acc": Out(data.ArrayLayout(first.acc_layout, self._lanes)),
        })
        super().__init__(ports)

    def _baked_lanes(self, params, contents):
        if isinstance(contents, (str, bytes, dict)) or not hasattr(contents, "__len__"):
            raise PermdealError(f"PE contents must be a sequence of {self._lanes} dicts, not "
                                f"{type(contents).__name__}")
        if len(contents) != self._lanes:
            raise PermdealError(f"PE contents must hold one dict per lane ({self._lanes}), not "
                                f"{len(contents)}")
        lanes = []
        for l, words in enumerate(contents):
            if not isinstance(words, dict) or set(words) != set(LANE_MEMORIES):
                got = sorted(words) if isinstance(words, dict) else type(words).__name__
                raise PermdealError(f"PE contents[{l}] must be a dict with keys 'weight' and "
                                    f"'k', not {got}")
            try:
                lane = Lane(*params, weights=words["weight"], ks=words["k"],
                            multiplier=self._multiplier)
            except PermdealError as e:
                raise PermdealError(f"PE contents[{l}]: {e}") from None
            lanes.append(lane)
        return lanes

    @property
    def lanes(self) -> int:
        """``L``."""
        return self._lanes

    @property
    def uses_images(self) -> bool:
        """Whether the lanes load their memories from image files (then the Verilog needs
        ``hdl.rom.ROM_SOURCE``)."""
        return self._lane_list[0].images is not None

    @property
    def lane(self) -> tuple[Lane, ...]:
        """The :class:`~.lane.Lane` instances, in lane order (a tuple)."""
        return tuple(self._lane_list)

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The lanes' :class:`~.blackbox.Blackbox` instances with ``lane_module``, else none."""
        return tuple(self._lane_boxes)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        for l, lane in enumerate(self._lane_boxes or self._lane_list):
            m.submodules[f"lane{l}"] = lane
            m.d.comb += [lane.drain.eq(self.drain), self.acc[l].eq(lane.acc)]
            if self.external:
                m.d.comb += [lane.staged.eq(self.staged), lane.rom.eq(self.rom[l])]
            else:
                m.d.comb += lane.op.eq(self.op)
        return m


#: Read-only properties of the PE that are its lanes' (parameters, widths, layouts, latencies).
SHARED = ("ps", "act_bits", "weight_bits", "acc_bits", "w_depth", "k_depth", "acc_depth", "acc_sets",
          "latency", "drain_latency", "product_bits", "index_width", "sel_bits", "w_addr_bits",
          "k_addr_bits", "acc_addr_bits", "op_layout", "drain_layout", "acc_layout", "rom_layout",
          "external")


def _shared(name):
    return property(lambda self: getattr(self._lane_list[0], name),
                    doc=f"The lanes' :attr:`Lane.{name}`.")


for _name in SHARED:
    setattr(PE, _name, _shared(_name))
del _name
