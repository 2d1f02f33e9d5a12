"""The broadcast operation's fields delayed to the lane stages that use them, once for many
lanes (docs/design.md 4.2).

Every lane takes the same operation, so the registers that hold its fields while the lanes
read their weight and k memories are the same in every lane: the engine keeps one copy of them
for each issue path, at the root of its broadcast tree, and broadcasts the fields already
delayed (:func:`broadcast_layout`) to its external-memory PEs; a lane with memories of its own
keeps one itself (:class:`~.lane.Lane`). The weight memories are read late, at the op's
``w_addr`` of stage :data:`WEIGHT_STAGE`, so that the word comes out of the memory's output
register in the stage that multiplies it: an address register, not a weight register of every
lane, carries the op meanwhile.
"""

from typing import Any

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError

from .pipeline import delay

__all__ = ["ADD_STAGE", "ADDR_STAGE", "INDEX_STAGE", "K_STAGE", "ROM_LATENCY", "WEIGHT_STAGE",
           "OpStages", "broadcast_layout", "rom_addr_layout", "staged_layout"]

#: Cycles from an operation to its weight and k words: the memories' read and output registers.
ROM_LATENCY = 2
#: The stage whose ``c`` and ``sel`` go to the permutation index, with the k word.
INDEX_STAGE = ROM_LATENCY
#: The stage whose ``acc_addr`` meets ``r``, registered by the permutation index.
ADDR_STAGE = INDEX_STAGE + 1
#: The stage whose op goes to the accumulator (its address and the multiplier's operands ``w``
#: and ``x``): the multiplier's product (two cycles) comes when the accumulator adds it.
ADD_STAGE = ADDR_STAGE + 1
#: The stage whose ``k_addr`` goes to the k memory: the word comes for the permutation index.
K_STAGE = INDEX_STAGE - ROM_LATENCY
#: The stage whose ``w_addr`` goes to the weight memory: the word comes for the multiplier, in
#: the add stage (reading it any earlier would make every lane hold it until then).
WEIGHT_STAGE = ADD_STAGE - ROM_LATENCY


def staged_layout(op_layout: data.StructLayout) -> data.StructLayout:
    """:attr:`OpStages.staged` for the broadcast op ``op_layout`` (:func:`.lane.op_layout`),
    from bit 0: ``busy``, ``valid``, ``c``, ``sel`` (when the op has one), ``acc_addr``, ``x``."""
    fields = {"busy": unsigned(1), "valid": unsigned(1), "c": op_layout.members["c"]}
    if "sel" in op_layout.members:
        fields["sel"] = op_layout.members["sel"]
    fields["acc_addr"] = op_layout.members["acc_addr"]
    fields["x"] = op_layout.members["x"]
    return data.StructLayout(fields)


def rom_addr_layout(op_layout: data.StructLayout) -> data.StructLayout:
    """:attr:`OpStages.rom_addr` for the broadcast op ``op_layout``: ``{w_addr, k_addr}`` from
    bit 0."""
    return data.StructLayout({"w_addr": op_layout.members["w_addr"],
                              "k_addr": op_layout.members["k_addr"]})


def broadcast_layout(op_layout: data.StructLayout) -> data.StructLayout:
    """What the engine broadcasts to its external-memory PEs for the op ``op_layout``: both
    outputs of :class:`OpStages`, ``{rom_addr, staged}`` from bit 0. Every register of the
    broadcast tree delays all of it alike, so a PE at its end takes the fields at the stages
    they are for."""
    return data.StructLayout({"rom_addr": rom_addr_layout(op_layout),
                              "staged": staged_layout(op_layout)})


class OpStages(wiring.Component):
    """The fields of the broadcast op as the lane stages use them.

    Parameters
    ----------
    op_layout : StructLayout
        The broadcast op (:func:`.lane.op_layout`).

    Members
    -------
    op : ``In(op_layout)``
        The op of stage 0.
    rom_addr : ``Out(rom_addr_layout(op_layout))``
        The addresses of the lanes' memories this cycle: ``w_addr`` of the op of stage
        :data:`WEIGHT_STAGE` (2) and ``k_addr`` of stage :data:`K_STAGE` (0, the op itself). Their
        words come :data:`ROM_LATENCY` cycles later, in the add stage and the index stage.
    staged : ``Out(staged_layout(op_layout))``
        ``valid``: the op of stage :data:`ADD_STAGE` (4) is valid; ``busy``: an op is in stages 0
        to 4 (valid now or in one of the four cycles before); ``c`` and ``sel`` of stage
        :data:`INDEX_STAGE` (2), ``acc_addr`` of stage :data:`ADDR_STAGE` (3), and ``x`` of stage
        :data:`ADD_STAGE` (4), the operand of every lane's multiplier, which no lane registers
        again (with the engine's broadcast, one register drives a PE's lanes through a buffer
        tree; the timed netlist keeps the booth multiplier's first stage over 1 ns inside a
        250 MHz clock at 8 lanes).

    Timing
    ------
    Registers only (``x``, ``c``, ``sel``, ``acc_addr`` and ``w_addr`` reset-less); ``rst``
    clears the valid bits.
    """

    def __init__(self, op_layout):
        if not isinstance(op_layout, data.StructLayout) or not {
                "valid", "w_addr", "k_addr", "c", "x", "acc_addr"} <= set(op_layout.members):
            raise PermdealError("OpStages needs the lanes' op layout (a StructLayout with valid, "
                                "w_addr, k_addr, c, x and acc_addr)")
        self._op_layout = op_layout
        super().__init__({"op": In(op_layout), "rom_addr": Out(self.rom_addr_layout),
                          "staged": Out(self.staged_layout)})

    @property
    def op_layout(self) -> data.StructLayout:
        return self._op_layout

    @property
    def staged_layout(self) -> data.StructLayout:
        return staged_layout(self._op_layout)

    @property
    def rom_addr_layout(self) -> data.StructLayout:
        return rom_addr_layout(self._op_layout)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        op, out = self.op, self.staged
        valid = [op.valid]
        for i in range(ADD_STAGE):
            reg = Signal(name=f"valid{i + 1}")
            m.d.sync += reg.eq(valid[-1])
            valid.append(reg)
        m.d.comb += [out.valid.eq(valid[ADD_STAGE]), out.busy.eq(Cat(*valid).any()),
                     out.c.eq(delay(m, op.c, INDEX_STAGE, "c")),
                     out.acc_addr.eq(delay(m, op.acc_addr, ADDR_STAGE, "acc_addr")),
                     out.x.eq(delay(m, op.x, ADD_STAGE, "x"))]
        m.d.comb += [self.rom_addr.w_addr.eq(delay(m, op.w_addr, WEIGHT_STAGE, "w_addr")),
                     self.rom_addr.k_addr.eq(delay(m, op.k_addr, K_STAGE, "k_addr"))]
        if "sel" in self._op_layout.members:
            m.d.comb += out.sel.eq(delay(m, op.sel, INDEX_STAGE, "sel"))
        return m
