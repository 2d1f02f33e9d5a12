"""The write-back unit: accumulator + bias to an output activation (DESIGN.md section 3)."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.golden.formats import LayerFormats, signed_bits

__all__ = ["Writeback"]


class Writeback(wiring.Component):
    """Write-back of one layer output per transfer, bit-exact with ``golden.formats.writeback``.

    Adds the bias aligned to the accumulator's binary point (``bias << bias_shift``) and the
    rounding constant ``2**(s-1)``, shifts right arithmetically by ``s = out_shift`` (``s <= 0``:
    exact left shift), saturates to ``out.bits`` and, with ``relu``, clips negatives to zero. Every
    intermediate is wide enough for its exact range, so nothing wraps.

    Parameters
    ----------
    fmts : LayerFormats
        The layer's number formats; they fix the accumulator, bias and output widths and shifts.
    relu : bool
        Whether the layer applies ReLU after saturation.

    Members
    -------
    i : ``In(stream.Signature(input_layout))``
        Input stream; its payload is a struct ``{acc: signed(acc_bits), bias: signed(bias.bits)}``,
        ``acc`` in the low bits (Verilog port ``i__payload``).
    o : ``Out(stream.Signature(signed(out.bits)))``
        Output stream of output-format codes.

    Timing
    ------
    Two register stages (add; then shift, saturate and ReLU), so ``latency = 2``: a beat accepted
    in cycle ``k`` (``i.valid & i.ready``) is on ``o`` in cycle ``k + 2``, and a beat per cycle
    flows while ``o.ready`` is high. A stage loads when it is empty or its beat moves on, so
    ``i.ready = ~stage1_valid | ~o.valid | o.ready`` depends combinationally on ``o.ready`` (a
    ready chain, no skid buffer); a stalled beat is held, never lost or duplicated. ``rst``
    (synchronous) empties the pipeline.
    """

    def __init__(self, fmts, *, relu):
        if not isinstance(fmts, LayerFormats):
            raise PermdealError(f"write-back formats must be a LayerFormats, not {fmts!r}")
        if not isinstance(relu, bool):
            raise PermdealError(f"write-back relu must be True or False, not {relu!r}")
        self._fmts = fmts
        self._relu = relu
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(signed(fmts.out.bits))),
        })

    @property
    def fmts(self):
        return self._fmts

    @property
    def relu(self):
        return self._relu

    @property
    def latency(self):
        """Register stages from an accepted input beat to its output beat."""
        return 2

    @property
    def input_layout(self):
        """Payload of ``i``: ``acc`` in bits ``[0, acc_bits)``, ``bias`` above it."""
        return data.StructLayout({"acc": signed(self._fmts.acc_bits),
                                  "bias": signed(self._fmts.bias.bits)})

    @property
    def _round(self):
        s = self._fmts.out_shift
        return 1 << (s - 1) if s > 0 else 0

    @property
    def sum_bits(self):
        """Width of ``acc + (bias << bias_shift) + 2**(s-1)`` over every input (first stage)."""
        f = self._fmts
        acc_lo, acc_hi = -(1 << (f.acc_bits - 1)), (1 << (f.acc_bits - 1)) - 1
        return signed_bits(acc_lo + (f.bias.min << f.bias_shift) + self._round,
                           acc_hi + (f.bias.max << f.bias_shift) + self._round)

    def elaborate(self, platform):
        f = self._fmts
        m = Module()

        stage1_valid = Signal()
        total = Signal(signed(self.sum_bits))
        ready1, ready2 = Signal(), Signal()  # stage n can load this cycle
        m.d.comb += [
            ready2.eq(~self.o.valid | self.o.ready),
            ready1.eq(~stage1_valid | ready2),
            self.i.ready.eq(ready1),
        ]

        with m.If(ready1):
            m.d.sync += [
                stage1_valid.eq(self.i.valid),
                total.eq(self.i.p.acc + self.i.p.bias.shift_left(f.bias_shift) + self._round),
            ]

        shifted = total.shift_right(f.out_shift)  # arithmetic; a negative amount shifts left
        lo, hi = (0 if self._relu else f.out.min), f.out.max  # ReLU after saturation = clip at 0
        with m.If(ready2):
            m.d.sync += [
                self.o.valid.eq(stage1_valid),
                self.o.p.eq(Mux(shifted > hi, hi, Mux(shifted < lo, lo, shifted))),
            ]
        return m
