# amaranth: UnusedElaboratable=no
"""A processing element: ``lanes`` multiplier lanes sharing one broadcast op (DESIGN.md 4.2)."""

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

from .lane import Lane, lane_params

__all__ = ["PE", "pe_contents"]

#: The lane memories a PE is given contents for (``golden.rom`` names; ``bias`` belongs to the
#: write-back, not to the lanes).
LANE_MEMORIES = ("weight", "k")


def pe_contents(contents, cfg, pe):
    """The ``contents`` argument of PE ``pe``: its lanes' rows of ``golden.rom.lane_contents``.

    ``contents`` is ``{memory: array (NL, depth)}``, ``cfg`` the ``EngineConfig``; lane ``l`` of
    PE ``pe`` is global lane ``g = pe*lanes + l``.
    """
    pe = integer(pe, "PE index", 0)
    if pe >= cfg.n_pe:
        raise PermdealError(f"PE index must be below the engine's {cfg.n_pe} PEs, not {pe}")
    return [{mem: contents[mem][pe * cfg.lanes + l] for mem in LANE_MEMORIES}
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
        (:func:`pe_contents` cuts them out of ``golden.rom.lane_contents``).

    Members
    -------
    op : ``In(op_layout)``
        The broadcast operation (:attr:`Lane.op_layout`), wired to every lane.
    drain : ``In(drain_layout)``
        The drain request (:attr:`Lane.drain_layout`), wired to every lane: all lanes drain the
        same accumulator address in the same cycle.
    acc : ``Out(ArrayLayout(acc_layout, lanes))``
        Lane ``l``'s drain output ``{valid, value}`` (:attr:`Lane.acc_layout`) is element ``l``:
        bits ``[l*(1 + acc_bits), (l + 1)*(1 + acc_bits))`` of the Verilog port ``acc``, ``valid``
        lowest. Every element's ``valid`` is the same.

    Timing
    ------
    The PE adds no register: ``latency`` and ``drain_latency`` are the lane's (3 and 1), and
    the controller's contract is the lane's (no drain request in the cycle of an op or in the two
    cycles after one).
    """

    def __init__(self, lanes, ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth,
                 *, contents):
        self._lanes = integer(lanes, "PE lanes", 1)
        params = lane_params(ps, act_bits, weight_bits, acc_bits, w_depth, k_depth, acc_depth)
        params = (params[0].ps, *params[1:])
        if isinstance(contents, (str, bytes, dict)) or not hasattr(contents, "__len__"):
            raise PermdealError(f"PE contents must be a sequence of {self._lanes} dicts, not "
                                f"{type(contents).__name__}")
        if len(contents) != self._lanes:
            raise PermdealError(f"PE contents must hold one dict per lane ({self._lanes}), not "
                                f"{len(contents)}")
        self._lane_list = []
        for l, words in enumerate(contents):
            if not isinstance(words, dict) or set(words) != set(LANE_MEMORIES):
                got = sorted(words) if isinstance(words, dict) else type(words).__name__
                raise PermdealError(f"PE contents[{l}] must be a dict with keys 'weight' and "
                                    f"'k', not {got}")
            try:
                lane = Lane(*params, weights=words["weight"], ks=words["k"])
            except PermdealError as e:
                raise PermdealError(f"PE contents[{l}]: {e}") from None
            self._lane_list.append(lane)
        first = self._lane_list[0]
        super().__init__({
            "op": In(first.op_layout),
            "drain": In(first.drain_layout),
            "acc": Out(data.ArrayLayout(first.acc_layout, self._lanes)),
        })

    @property
    def lanes(self):
        """``L``."""
        return self._lanes

    @property
    def lane(self):
        """The :class:`~.lane.Lane` instances, in lane order (a tuple)."""
        return tuple(self._lane_list)

    def elaborate(self, platform):
        m = Module()
        for l, lane in enumerate(self._lane_list):
            m.submodules[f"lane{l}"] = lane
            m.d.comb += [lane.op.eq(self.op), lane.drain.eq(self.drain),
                         self.acc[l].eq(lane.acc)]
        return m


#: Read-only properties of the PE that are its lanes' (parameters, widths, layouts, latencies).
SHARED = ("ps", "act_bits", "weight_bits", "acc_bits", "w_depth", "k_depth", "acc_depth",
          "latency", "drain_latency", "product_bits", "index_width", "sel_bits", "w_addr_bits",
          "k_addr_bits", "acc_addr_bits", "op_layout", "drain_layout", "acc_layout")


def _shared(name):
    return property(lambda self: getattr(self._lane_list[0], name),
                    doc=f"The lanes' :attr:`Lane.{name}`.")


for _name in SHARED:
    setattr(PE, _name, _shared(_name))
del _name
