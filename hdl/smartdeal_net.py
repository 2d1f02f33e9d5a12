# amaranth: UnusedElaboratable=no
"""A SmartDeal network in RTL: one layer unit per layer, chained output stream to input stream.

::

    i --> layer0 --> layer1 --> ... --> layer{L-1} --> o

Each layer is a ``hdl.smartdeal_layer.SmartDealLayerUnit`` of its own (its own ROMs, loaded from
the model's ROM images, its own shift-add unit, MAC and write-back), emitted as the Verilog module
``{name}_l{i}``. A layer loads its inputs as the layer before writes them, so one input vector
flows through the chain layer after layer (``golden.smartdeal_cycles.model_cycles`` is the exact
count of one vector alone); with vectors back to back the layers overlap, a layer starting the
next vector as soon as it has written its outputs of the last one (back-pressure between the layers
keeps everything in order, it only costs cycles).
"""

import re
from typing import Any

from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.hdl.rom import ROM_MODULE

from .blackbox import Blackbox
from .output_reader import output_layout
from .smartdeal_layer import SmartDealLayerUnit

__all__ = ["SmartDealNet"]


class SmartDealNet(wiring.Component):
    """The layer units of a SmartDeal model, in a chain.

    Parameters
    ----------
    layers : sequence of golden.smartdeal_model.SmartDealLayer or SmartDealLayerSpec
        The model's layers, in order; each layer's input format is the previous output format.
    images : path
        The folder of the model's ROM images (``golden.smartdeal_model.write_rom``).
    lanes : int, optional
        Lanes of every layer's shift-add unit (default ``S``).
    rom_dir, check_images
        As for :class:`~.smartdeal_layer.SmartDealLayerUnit`.
    name : str
        The Verilog module name of the network; layer ``i`` is module ``{name}_l{i}``.

    Members
    -------
    i : ``In(stream.Signature(signed(in_bits)))``
        The first layer's ``n`` input codes per vector, in index order.
    o : ``Out(stream.Signature(output_layout(out_bits)))``
        ``{data, last}``: the last layer's ``m`` output codes per vector, ``last`` on the final one.
    """

    def __init__(self, layers, images, *, lanes=None, rom_dir=None, check_images=True,
                 name="smartdeal_net"):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PermdealError(f"network module name must be a Verilog identifier, not {name!r}")
        if name == ROM_MODULE:
            raise PermdealError(f"network module name {name!r} is taken by the ROM module")
        layers = list(layers)
        if not layers:
            raise PermdealError("a SmartDeal network needs at least one layer")
        self._name = name
        self._units = [SmartDealLayerUnit(l, images, index=i, lanes=lanes, rom_dir=rom_dir,
                                          check_images=check_images)
                       for i, l in enumerate(layers)]
        for a, b in zip(self._units, self._units[1:]):
            sa, sb = a.spec, b.spec
            if sa.n_out != sb.n_in or sa.fmts.out != sb.fmts.act:
                raise PermdealError(f"layers do not chain: {sa.name} gives {sa.n_out} outputs of "
                                    f"{sa.fmts.out}, {sb.name} takes {sb.n_in} of {sb.fmts.act}")
        self._boxes = [Blackbox(u, f"{name}_l{i}") for i, u in enumerate(self._units)]
        super().__init__({
            "i": In(stream.Signature(signed(self._units[0].in_bits))),
            "o": Out(stream.Signature(output_layout(self._units[-1].out_bits))),
        })

    @property
    def name(self) -> str:
        return self._name

    @property
    def units(self) -> tuple[SmartDealLayerUnit, ...]:
        """The layer units, in order."""
        return tuple(self._units)

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The layers' module instances (``gen.verilog.emit`` emits each module once)."""
        return tuple(self._boxes)

    @property
    def in_bits(self) -> int:
        return self._units[0].in_bits

    @property
    def out_bits(self) -> int:
        return self._units[-1].out_bits

    @property
    def n_inputs(self) -> int:
        return self._units[0].n_inputs

    @property
    def n_outputs(self) -> int:
        return self._units[-1].n_outputs

    @property
    def lanes(self) -> int:
        return self._units[0].lanes

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        boxes = self._boxes
        for i, box in enumerate(boxes):
            m.submodules[f"layer{i}"] = box
        wiring.connect(m, wiring.flipped(self.i), boxes[0].i)
        for a, b in zip(boxes, boxes[1:]):
            m.d.comb += [b.i.valid.eq(a.o.valid), b.i.payload.eq(a.o.payload.data),
                         a.o.ready.eq(b.i.ready)]
        wiring.connect(m, boxes[-1].o, wiring.flipped(self.o))
        return m
