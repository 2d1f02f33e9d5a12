"""The write-back unit: accumulator + bias to an output activation (docs/design.md section 3)."""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.golden.formats import LayerFormats, signed_bits

__all__ = ["Writeback"]


def _round_const(fmts):
    """Round-half-up constant ``2**(s-1)`` of a layer's output shift ``s`` (0 for ``s <= 0``)."""
    s = fmts.out_shift
    return 1 << (s - 1) if s > 0 else 0


def _split_round(shift, rnd):
    """``(k, fill)`` with ``(bias << shift) + rnd == ((bias + k) << shift) + fill`` and ``fill``
    below bit ``shift``: a rounding constant below the aligned bias's lowest bit fills the zeros
    of the shift (``k = 0``), one at or above it is added to the bias before the shift
    (``fill = 0``); either way the write-back adds two values, not three."""
    if rnd < 1 << shift:
        return 0, rnd
    assert rnd % (1 << shift) == 0
    return rnd >> shift, 0


class Writeback(wiring.Component):
    """Write-back of one layer output per transfer, bit-exact with ``golden.formats.writeback``.

    Adds the bias aligned to the accumulator's binary point (``bias << bias_shift``) and the
    rounding constant ``2**(s-1)`` (folded into the aligned bias: one adder of two values),
    shifts right arithmetically by ``s = out_shift`` (``s <= 0``: exact left shift), saturates to
    ``out.bits`` and, with ``relu``, clips negatives to zero. Every intermediate is wide enough
    for its exact range, so nothing wraps.

    One unit can serve several layers (those of a multi-layer network, drained through the same
    write-back): each beat then carries ``sel``, the index of its layer, which travels with the
    beat through the pipeline, so beats of different layers may follow each other back to back.
    The beat with ``sel = l`` gets exactly ``writeback(acc, bias, fmts[l], relu[l])``, for any
    ``acc`` in layer ``l``'s ``acc_bits`` range and ``bias`` in its bias format; the result is
    saturated to layer ``l``'s output format and sign-extended to ``out_bits``. A ``sel`` past the
    last layer is not allowed (its output is unspecified). Layers with equal constants share their
    logic, so repeating a format costs nothing but the ``sel`` decode.

    Parameters
    ----------
    fmts : LayerFormats, or a non-empty list or tuple of LayerFormats
        The number formats of the layer, or of each layer (layer ``l`` is ``fmts[l]``); they fix
        the accumulator, bias and output widths and shifts.
    relu : bool, or (with a sequence of formats) a list or tuple of bools
        Whether the layer applies ReLU after saturation; one entry per layer, or one bool for all.
    prealigned : bool
        ``bias`` is not the stored bias but :meth:`prealign` of it and of the beat's layer,
        formed by the unit's user a cycle ahead (default False: the unit aligns it itself, in its
        first stage). The outputs are the same.

    Members
    -------
    i : ``In(stream.Signature(input_layout))``
        Input stream; its payload is a struct ``{acc: signed(acc_bits), bias: signed(bias_bits)}``
        (``bias: signed(prealigned_bits)`` when prealigned) with ``acc`` in the low bits (Verilog
        port ``i__payload``), and with more than one format a third field
        ``sel: unsigned(sel_bits)`` above them.
    o : ``Out(stream.Signature(signed(out_bits)))``
        Output stream of output-format codes.

    ``acc_bits``, ``bias_bits`` and ``out_bits`` are the largest over the layers; ``layers`` holds
    the ``(LayerFormats, relu)`` pair of each layer; ``fmts`` and ``relu`` return what was given
    (a list of them as a tuple; a single bool ``relu`` with several formats as a tuple).

    Timing
    ------
    Two register stages (add, and register ``sel``; then shift, saturate and ReLU for each layer,
    chosen by the registered ``sel``), so ``latency = 2``: a beat accepted in cycle ``k``
    (``i.valid & i.ready``) is on ``o`` in cycle ``k + 2``, and a beat per cycle flows while
    ``o.ready`` is high, whatever its layer. A stage loads when it is empty or its beat moves on,
    so ``i.ready = ~stage1_valid | ~o.valid | o.ready`` depends combinationally on ``o.ready`` (a
    ready chain, no skid buffer); a stalled beat is held, never lost or duplicated. ``rst``
    (synchronous) empties the pipeline.
    """

    def __init__(self, fmts, *, relu, prealigned=False):
        if isinstance(fmts, (list, tuple)):
            if not fmts:
                raise PermdealError("write-back formats must not be empty")
            for n, f in enumerate(fmts):
                if not isinstance(f, LayerFormats):
                    raise PermdealError(
                        f"write-back formats[{n}] must be a LayerFormats, not {f!r}")
            fmts = tuple(fmts)
            if isinstance(relu, bool):
                relu = (relu,) * len(fmts)
            elif isinstance(relu, (list, tuple)):
                if len(relu) != len(fmts):
                    raise PermdealError(f"write-back relu has {len(relu)} entries for "
                                        f"{len(fmts)} formats")
                for n, r in enumerate(relu):
                    if not isinstance(r, bool):
                        raise PermdealError(
                            f"write-back relu[{n}] must be True or False, not {r!r}")
                relu = tuple(relu)
            else:
                raise PermdealError(f"write-back relu must be True or False or a list of them, "
                                    f"not {relu!r}")
            layers = tuple(zip(fmts, relu))
        elif isinstance(fmts, LayerFormats):
            if not isinstance(relu, bool):
                raise PermdealError(f"write-back relu must be True or False, not {relu!r}")
            layers = ((fmts, relu),)
        else:
            raise PermdealError(f"write-back formats must be a LayerFormats, not {fmts!r}")
        self._fmts, self._relu, self._layers = fmts, relu, layers
        if not isinstance(prealigned, bool):
            raise PermdealError(f"write-back prealigned must be True or False, not {prealigned!r}")
        self._prealigned = prealigned
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(signed(self.out_bits))),
        })

    @property
    def fmts(self) -> LayerFormats | tuple[LayerFormats, ...]:
        """The formats given: a ``LayerFormats``, or a tuple of them."""
        return self._fmts

    @property
    def relu(self) -> bool | tuple[bool, ...]:
        """The ReLU flags given: a bool for a single ``LayerFormats``, else a tuple per layer."""
        return self._relu

    @property
    def layers(self) -> tuple[tuple[LayerFormats, bool], ...]:
        """``(LayerFormats, relu)`` of each layer, in ``sel`` order."""
        return self._layers

    @property
    def prealigned(self) -> bool:
        """Whether ``bias`` comes already aligned (:meth:`prealign`), not as a stored bias."""
        return self._prealigned

    @property
    def latency(self) -> int:
        """Register stages from an accepted input beat to its output beat."""
        return 2

    @property
    def sel_bits(self) -> int:
        """Width of the layer select ``sel``; 0 (no ``sel`` field) with a single format."""
        n = len(self._layers)
        return 0 if n == 1 else (n - 1).bit_length()

    @property
    def acc_bits(self) -> int:
        """Width of ``acc``: the widest layer accumulator."""
        return max(f.acc_bits for f, _ in self._layers)

    @property
    def bias_bits(self) -> int:
        """Width of ``bias``: the widest layer bias format."""
        return max(f.bias.bits for f, _ in self._layers)

    @property
    def out_bits(self) -> int:
        """Width of the output: the widest layer output format."""
        return max(f.out.bits for f, _ in self._layers)

    @property
    def input_layout(self) -> data.StructLayout:
        """Payload of ``i``: ``acc`` in bits ``[0, acc_bits)``, ``bias`` above it (``bias_bits``
        wide, or ``prealigned_bits`` when :attr:`prealigned`), then ``sel`` (only with more than
        one format)."""
        bias = self.prealigned_bits if self._prealigned else self.bias_bits
        fields = {"acc": signed(self.acc_bits), "bias": signed(bias)}
        if self.sel_bits:
            fields["sel"] = unsigned(self.sel_bits)
        return data.StructLayout(fields)

    @property
    def _round(self):
        """The rounding constant of each layer (a tuple); an int stands for every layer (a test
        sets 0 to model truncation)."""
        return tuple(_round_const(f) for f, _ in self._layers)

    def _rounds(self):
        r = self._round
        return (r,) * len(self._layers) if isinstance(r, int) else tuple(r)

    def _layer_sum_bits(self):
        """Width of ``acc + (bias << bias_shift) + 2**(s-1)`` over every input, for each layer."""
        bits = []
        for (f, _), rnd in zip(self._layers, self._rounds()):
            acc_lo, acc_hi = -(1 << (f.acc_bits - 1)), (1 << (f.acc_bits - 1)) - 1
            bits.append(signed_bits(acc_lo + (f.bias.min << f.bias_shift) + rnd,
                                    acc_hi + (f.bias.max << f.bias_shift) + rnd))
        return bits

    def _alignments(self):
        """``(bias_shift, k, fill)`` of each layer (:func:`_split_round` of its rounding
        constant)."""
        return [(f.bias_shift, *_split_round(f.bias_shift, r))
                for (f, _), r in zip(self._layers, self._rounds())]

    @property
    def prealigned_bits(self) -> int:
        """Width of :meth:`prealign`'s value over every stored bias of ``bias_bits``."""
        b = self.bias_bits
        lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
        return max(signed_bits(lo + k, hi + k) for _, k, _ in self._alignments())

    def prealign(self, bias, sel=None):
        """The bias of layer ``sel`` (no ``sel`` with a single format) plus the part of its
        rounding constant at or above the aligned bias's lowest bit, in the bias's units:
        ``bias + (2**(s-1) >> bias_shift)``, or ``bias`` when the constant lies below that bit.
        One short adder of a constant chosen by layer, the part of the first stage that needs
        neither ``acc`` nor the alignment: with :attr:`prealigned` the unit takes this value,
        computed a cycle ahead (``PEWriteback`` does it before its bias register), so that its
        first stage holds one layer multiplexer (the alignment) and one adder (docs/design.md
        3)."""
        ks = [k for _, k, _ in self._alignments()]
        if not any(ks):
            return bias
        return bias + self._by_sel(sel, ks, lambda k: Const(k, max(1, k.bit_length())))

    @property
    def sum_bits(self) -> int:
        """Width of ``acc + (bias << bias_shift) + 2**(s-1)`` over every input of every layer (the
        first stage)."""
        return max(self._layer_sum_bits())

    def _by_sel(self, sel, keys, make):
        """``make(key)`` of the layer ``sel`` chooses, one instance per distinct key.

        A chain of muxes whose default is layer 0's (so a ``sel`` out of range gets it too, and no
        ``sel == 0`` comparison is made: Yosys would emit ``!sel``, which trips Verilator's
        WIDTHTRUNC). A chain, not a Switch: Yosys turns a Switch into an ``always @*`` block,
        which Icarus does not evaluate until its inputs first change.
        """
        groups = {}  # key -> layers, in first-use order
        for layer, key in enumerate(keys):
            groups.setdefault(key, []).append(layer)
        (default, _), *others = groups.items()
        value = make(default)
        for key, layers in others:
            hit = sel == layers[0]
            for layer in layers[1:]:
                hit = hit | (sel == layer)
            value = Mux(hit, make(key), value)
        return value

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        layers = self._layers
        multi = len(layers) > 1

        stage1_valid = Signal()
        total = Signal(signed(self.sum_bits))
        sel1 = Signal(self.sel_bits)  # layer of the beat in stage 1
        ready1, ready2 = Signal(), Signal()  # stage n can load this cycle
        m.d.comb += [
            ready2.eq(~self.o.valid | self.o.ready),
            ready1.eq(~stage1_valid | ready2),
            self.i.ready.eq(ready1),
        ]

        # Stage 1: one adder of acc and the aligned bias with its rounding constant: the bias
        # with the part of the constant at or above its lowest bit (``prealign``: here, or a
        # cycle ahead when prealigned), shifted, the part below filling the shift's zeros. Bits
        # that are zero in every layer's aligned bias take acc as it is (no adder bits).
        sel = self.i.p.sel if multi else None
        bias = self.i.p.bias if self._prealigned else self.prealign(self.i.p.bias, sel)
        aligns = self._alignments()
        aligned = self._by_sel(sel, [(shift, fill) for shift, _, fill in aligns],
                               lambda key: Cat(Const(key[1], key[0]), bias).as_signed())
        zeros = min((shift if not fill else (fill & -fill).bit_length() - 1)
                    for shift, _, fill in aligns)  # low bits zero in every layer
        acc = self.i.p.acc
        total_next = Cat(acc[:zeros], acc[zeros:].as_signed() + aligned[zeros:].as_signed())
        with m.If(ready1):
            m.d.sync += [
                stage1_valid.eq(self.i.valid),
                total.eq(total_next),  # the exact sum fits ``sum_bits``, so nothing wraps
            ]
            if multi:
                m.d.sync += sel1.eq(sel)

        # Stage 2: shift, saturate and ReLU (= clip at 0 after saturation) of each distinct layer.
        keys = [(f.out_shift, 0 if relu else f.out.min, f.out.max, f.out.bits)
                for f, relu in layers]
        width = {}  # key -> widest sum of its layers: the low bits of total hold it exactly
        for key, bits in zip(keys, self._layer_sum_bits()):
            width[key] = max(width.get(key, 0), bits)

        def saturate(key):
            shift, lo, hi, bits = key
            exact = total if width[key] == len(total) else total[:width[key]].as_signed()
            shifted = exact.shift_right(shift)  # arithmetic; a negative amount shifts left
            # Saturation without a comparator (no carry chain): the shifted sum fits ``bits``
            # bits when its bits from ``bits - 1`` up are all equal (all copies of its sign);
            # otherwise its sign picks ``lo`` or ``hi``. ReLU (``lo == 0``) takes every negative
            # sum to 0.
            assert lo in (0, -(1 << (bits - 1))) and hi == (1 << (bits - 1)) - 1
            sign = shifted[-1]
            low = shifted[:bits]
            if len(shifted) > bits:
                top = shifted[bits - 1:]
                fits = top.all() | ~top.any()
                mask = (1 << bits) - 1  # the codes as unsigned words, so the result stays ``bits`` wide
                low = Mux(fits, low, Mux(sign, Const(lo & mask, bits), Const(hi, bits)))
            if lo == 0:
                low = Mux(sign, 0, low)
            return low.as_signed()

        result = self._by_sel(sel1 if multi else None, keys, saturate)
        with m.If(ready2):
            m.d.sync += [
                self.o.valid.eq(stage1_valid),
                self.o.p.eq(result),
            ]
        return m
