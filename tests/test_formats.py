"""Number formats and the write-back arithmetic (docs/design.md section 3).

Every expectation comes from plain-Python reference code over exact integers / fractions written
from the spec, or from hand-worked examples; nothing here asks the code under test for its answer.
"""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.formats import Fixed, LayerFormats, round_shift, writeback

HALF = Fraction(1, 2)


# -- references (docs/design.md 3) ---------------------------------------------------------------------

def ref_round_half_up(value):
    """Nearest integer to a Fraction, ties towards +infinity."""
    return math.floor(Fraction(value) + HALF)


def ref_quantize(xs, bits, frac):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes, sat = [], 0
    for x in xs:
        c = ref_round_half_up(Fraction(x) * Fraction(2) ** frac)
        if c > hi or c < lo:
            sat += 1
            c = min(max(c, lo), hi)
        codes.append(c)
    return codes, sat


def ref_round_shift(v, s):
    if s <= 0:
        return v * 2 ** (-s)
    return ref_round_half_up(Fraction(v, 2 ** s))


def ref_writeback(acc, bias, act, weight, bfmt, out, relu):
    """acc + aligned bias, round-half-up shift to out, saturate, ReLU; all on Python ints."""
    acc_frac = act[1] + weight[1]
    v = acc + bias * 2 ** (acc_frac - bfmt[1])
    v = ref_round_shift(v, acc_frac - out[1])
    lo, hi = -(2 ** (out[0] - 1)), 2 ** (out[0] - 1) - 1
    v = min(max(v, lo), hi)
    return max(v, 0) if relu else v


def ref_acc_extremes(act, weight, bfmt, terms):
    """Smallest and largest possible accumulator value (products at the corners of the box)."""
    a_vals = (-(2 ** (act[0] - 1)), 2 ** (act[0] - 1) - 1)
    w_vals = (-(2 ** (weight[0] - 1)), 2 ** (weight[0] - 1) - 1)
    prods = [a * w for a in a_vals for w in w_vals]
    shift = act[1] + weight[1] - bfmt[1]
    b_lo, b_hi = -(2 ** (bfmt[0] - 1)) * 2 ** shift, (2 ** (bfmt[0] - 1) - 1) * 2 ** shift
    return terms * min(prods) + b_lo, terms * max(prods) + b_hi


def fits(lo, hi, bits):
    return -(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1


def make_fmts(act, weight, bfmt, out, terms):
    return LayerFormats(Fixed(*act), Fixed(*weight), Fixed(*bfmt), Fixed(*out), terms)


# -- Fixed -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, lo, hi", [
    (2, -2, 1), (3, -4, 3), (8, -128, 127), (16, -32768, 32767),
    (24, -8388608, 8388607), (32, -2147483648, 2147483647)])
def test_fixed_min_max(bits, lo, hi):
    for frac in (-5, 0, 7, bits):
        f = Fixed(bits, frac)
        assert (f.min, f.max) == (lo, hi)


def test_fixed_step_and_str():
    assert Fixed(16, 8).step == 1 / 256
    assert Fixed(8, -2).step == 4.0
    assert str(Fixed(16, 8)) == "16:8"
    assert str(Fixed(12, -3)) == "12:-3"


@pytest.mark.parametrize("text, bits, frac", [
    ("16:8", 16, 8), ("8:0", 8, 0), (" 12 : -3 ", 12, -3), ("32:31", 32, 31), ("2:64", 2, 64),
    ("20:-64", 20, -64)])
def test_fixed_parse(text, bits, frac):
    assert Fixed.parse(text) == Fixed(bits, frac)


@pytest.mark.parametrize("text", ["16", "16:", ":8", "a:b", "16:8:1", "", "16.0:8", "-16:8",
                                  "16;8", "sixteen:8"])
def test_fixed_parse_refuses_syntax(text):
    with pytest.raises(PermdealError) as e:
        Fixed.parse(text, what="--act")
    msg = str(e.value)
    assert "--act" in msg and repr(text) in msg and "BITS:FRAC" in msg


@pytest.mark.parametrize("text, word", [("1:0", "bits"), ("0:0", "bits"), ("33:0", "bits"),
                                        ("64:8", "bits"), ("16:65", "frac"), ("16:-65", "frac")])
def test_fixed_parse_refuses_range(text, word):
    with pytest.raises(PermdealError) as e:
        Fixed.parse(text, what="--weight")
    msg = str(e.value)
    assert "--weight" in msg and word in msg


@pytest.mark.parametrize("bits, frac", [(1, 0), (33, 0), (-8, 0), (16, 65), (16, -65),
                                        (16.0, 8), (16, 8.0), ("16", 8), (True, 0), (16, False),
                                        (None, 8)])
def test_fixed_constructor_refuses(bits, frac):
    with pytest.raises(PermdealError) as e:
        Fixed(bits, frac)
    assert ("bits" in str(e.value)) or ("frac" in str(e.value))


@pytest.mark.parametrize("bits, frac", [(2, 0), (8, -3), (16, 8), (32, 40), (13, -64), (5, 64)])
def test_fixed_json_round_trip(bits, frac):
    f = Fixed(bits, frac)
    obj = f.to_json()
    assert obj == {"bits": bits, "frac": frac}
    assert Fixed.from_json(obj) == f
    assert Fixed.parse(str(f)) == f


@pytest.mark.parametrize("obj", [None, [16, 8], "16:8", {"bits": 16}, {"frac": 8},
                                 {"bits": 16, "frac": 8, "extra": 1}, {"bits": "16", "frac": 8},
                                 {"bits": 40, "frac": 8}, {"bits": 16, "frac": 99}])
def test_fixed_from_json_refuses(obj):
    with pytest.raises(PermdealError) as e:
        Fixed.from_json(obj, what="layer fc1 weight format")
    assert "layer fc1 weight format" in str(e.value)


# -- quantize --------------------------------------------------------------------------------------

def test_quantize_hand_worked():
    f = Fixed(8, 2)  # codes -128..127, LSB 0.25
    xs = [0.375, -0.375, 0.125, -0.125, 0.1, -0.1, 0.2, 31.75, 31.875, -32.0, -32.125, -32.126,
          1e9, -1e9, 0.0, -0.0]
    # 1.5->2, -1.5->-1, 0.5->1, -0.5->0, 0.4->0, -0.4->0, 0.8->1, 127, 127.5->128 sat,
    # -128, -128.5->-128 (no sat), -128.504->-129 sat, sat, sat, 0, 0
    want = [2, -1, 1, 0, 0, 0, 1, 127, 127, -128, -128, -128, 127, -128, 0, 0]
    codes, n_sat = f.quantize(xs)
    assert codes.tolist() == want
    assert n_sat == 4
    assert codes.dtype == np.int64


def test_quantize_negative_frac():
    f = Fixed(4, -2)  # LSB 4, codes -8..7
    codes, n_sat = f.quantize([2.0, -2.0, 6.0, 5.9, 29.0, 30.0, -32.0, -34.0, -34.1])
    # 0.5->1, -0.5->0, 1.5->2, 1.475->1, 7.25->7, 7.5->8 sat, -8, -8.5->-8, -8.525->-9 sat
    assert codes.tolist() == [1, 0, 2, 1, 7, 7, -8, -8, -8]
    assert n_sat == 2


def test_quantize_just_below_half_rounds_down():
    """0.49999999999999994 is nearer 0 than 1: round-to-nearest must give 0 (and -0 for -x)."""
    x = 0.49999999999999994  # 0.5 - 2**-54
    assert x < 0.5
    codes, _ = Fixed(8, 0).quantize([-x])
    assert codes.tolist() == [0]
    codes, _ = Fixed(8, 0).quantize([x])
    assert codes.tolist() == [0], f"quantize({x!r}) to 8:0 gave {codes.tolist()}, nearest is 0"
    codes, _ = Fixed(8, 3).quantize([x * 2.0 ** -3])
    assert codes.tolist() == [0], f"quantize({x * 2.0 ** -3!r}) to 8:3 gave {codes.tolist()}"


@pytest.mark.parametrize("seed", range(12))
def test_quantize_random_against_reference(seed):
    rng = random.Random(seed)
    bits = rng.randint(2, 32)
    frac = rng.randint(-8, 40)
    scale = 2.0 ** (bits - 1 - frac)  # values around the format's range
    xs = [rng.uniform(-1.3, 1.3) * scale for _ in range(200)]
    # exact ties k + 1/2 (positive and negative) and the values just around the limits
    xs += [(rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1)) + 0.5) * 2.0 ** -frac for _ in range(50)]
    xs += [v * 2.0 ** -frac for v in (2 ** (bits - 1) - 1, 2 ** (bits - 1) - 0.5, 2 ** (bits - 1),
                                      -(2 ** (bits - 1)), -(2 ** (bits - 1)) - 0.5,
                                      -(2 ** (bits - 1)) - 1, 0.5, -0.5, 1.5, -1.5)]
    want, want_sat = ref_quantize(xs, bits, frac)
    codes, n_sat = Fixed(bits, frac).quantize(np.array(xs))
    assert codes.tolist() == want, f"seed {seed}: Fixed({bits}, {frac})"
    assert n_sat == want_sat, f"seed {seed}: Fixed({bits}, {frac})"


def test_quantize_keeps_shape():
    codes, n = Fixed(8, 4).quantize(np.full((3, 4, 5), 0.25))
    assert codes.shape == (3, 4, 5) and n == 0 and np.all(codes == 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_quantize_refuses_non_finite(bad):
    with pytest.raises(PermdealError) as e:
        Fixed(16, 8).quantize([1.0, bad, 2.0])
    assert "NaN or infinite" in str(e.value)


def test_to_float():
    assert Fixed(8, 3).to_float([8, -12, 127]).tolist() == [1.0, -1.5, 15.875]
    assert Fixed(8, -2).to_float([3]).tolist() == [12.0]


# -- Fixed.fit -------------------------------------------------------------------------------------

def ref_holds(xs, bits, frac):
    return ref_quantize(xs, bits, frac)[1] == 0


def ref_fit(bits, xs):
    for frac in range(64, -65, -1):
        if ref_holds(xs, bits, frac):
            return frac
    raise AssertionError("nothing fits")


@pytest.mark.parametrize("seed", range(20))
def test_fit_never_saturates_and_is_largest(seed):
    rng = random.Random(seed)
    bits = rng.randint(2, 32)
    scale = 2.0 ** rng.randint(-20, 20)
    xs = [rng.gauss(0, 1) * scale for _ in range(rng.randint(1, 30))]
    if rng.random() < 0.3:
        xs = [abs(x) for x in xs]
    elif rng.random() < 0.3:
        xs = [-abs(x) for x in xs]
    f = Fixed.fit(bits, np.array(xs))
    assert f.bits == bits, f"seed {seed}"
    assert ref_holds(xs, bits, f.frac), f"seed {seed}: {f} saturates"
    assert f.frac == 64 or not ref_holds(xs, bits, f.frac + 1), \
        f"seed {seed}: {f} is not the largest frac, {bits}:{f.frac + 1} also fits"
    assert f.frac == ref_fit(bits, xs), f"seed {seed}"


@pytest.mark.parametrize("bits, xs, frac", [
    (8, [1.0], 6),            # 1.0 * 2**7 = 128 > 127
    (8, [-1.0], 7),           # -1.0 * 2**7 = -128 fits
    (8, [-1.0, 0.99], 7),     # 0.99 * 128 = 126.72 -> 127 fits
    (8, [0.996], 7),          # 127.488 -> 127
    (8, [0.9961], 6),         # 127.5008 -> 128 does not fit at 7
    (8, [127.0], 0), (8, [127.5], -1), (8, [-128.5], 0), (8, [-128.6], -1),
    (4, [100.0], -4),         # 100/16 = 6.25 -> 6 <= 7; at -3: 12.5 -> 13 > 7
    (16, [0.0, 0.0], 15), (16, [], 15)])
def test_fit_hand_worked(bits, xs, frac):
    assert Fixed.fit(bits, np.array(xs, dtype=float)) == Fixed(bits, frac)


def test_fit_reaches_lowest_frac():
    """frac = -64 is a valid format (Fixed accepts [-64, 64]): fit must consider it."""
    assert ref_holds([2.0 ** 64], 2, -64) and not ref_holds([2.0 ** 64], 2, -63)
    assert Fixed.fit(2, np.array([2.0 ** 64])) == Fixed(2, -64)
    with pytest.raises(PermdealError) as e:  # 2**65 needs frac -65: nothing fits
        Fixed.fit(2, np.array([2.0 ** 65]))
    assert "2-bit" in str(e.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fit_refuses_non_finite(bad):
    with pytest.raises(PermdealError):
        Fixed.fit(16, [0.5, bad])


# -- round_shift -----------------------------------------------------------------------------------

@pytest.mark.parametrize("v, s, want", [
    (-3, 1, -1), (3, 1, 2), (-1, 1, 0), (1, 1, 1), (-2, 1, -1), (2, 1, 1), (5, 1, 3), (-5, 1, -2),
    (0, 1, 0), (6, 2, 2), (-6, 2, -1), (-7, 2, -2), (2, 2, 1), (-2, 2, 0), (-10, 2, -2),
    (-9, 2, -2), (9, 2, 2), (10, 2, 3), (7, 3, 1), (-4, 3, 0), (-5, 3, -1), (4, 3, 1),
    (5, 0, 5), (-5, 0, -5), (3, -2, 12), (-3, -4, -48), (1, -60, 2 ** 60)])
def test_round_shift_hand_worked(v, s, want):
    assert int(round_shift(np.int64(v), s)) == want
    assert round_shift(np.array([v]), s).tolist() == [want]


@pytest.mark.parametrize("seed", range(10))
def test_round_shift_random(seed):
    rng = random.Random(seed)
    for _ in range(20):
        s = rng.randint(-20, 62)
        lim = 2 ** 60 if s > 0 else 2 ** (62 - max(0, -s))
        vs = [rng.randint(-lim, lim) for _ in range(40)]
        if s > 0:  # exact ties (odd multiples of 2**(s-1)), positive and negative
            kmax = min(1000, 2 ** max(0, 61 - s))  # keep |v| <= 2**61 so v + 2**(s-1) fits int64
            vs += [(2 * rng.randint(-kmax, kmax - 1) + 1) * 2 ** (s - 1) for _ in range(20)]
            vs += [2 ** (s - 1), -(2 ** (s - 1)), 2 ** (s - 1) - 1, -(2 ** (s - 1)) - 1]
        got = round_shift(np.array(vs, dtype=np.int64), s).tolist()
        want = [ref_round_shift(v, s) for v in vs]
        assert got == want, f"seed {seed}, s={s}"


# -- write-back ------------------------------------------------------------------------------------

def random_formats(rng):
    while True:
        act = (rng.randint(2, 16), rng.randint(-4, 16))
        weight = (rng.randint(2, 16), rng.randint(-4, 16))
        acc_frac = act[1] + weight[1]
        bfmt = (rng.randint(2, 32), rng.randint(acc_frac - 20, acc_frac))
        out = (rng.randint(2, 32), acc_frac - rng.randint(-8, 30))
        terms = rng.choice([1, 2, 3, 7, 64, 1000, 4097])
        try:
            return act, weight, bfmt, out, terms, make_fmts(act, weight, bfmt, out, terms)
        except PermdealError:
            continue


@pytest.mark.parametrize("seed", range(16))
def test_writeback_random_against_reference(seed):
    rng = random.Random(seed)
    act, weight, bfmt, out, terms, fmts = random_formats(rng)
    lo, hi = ref_acc_extremes(act, weight, (bfmt[0], bfmt[1]), terms)
    b_lo, b_hi = -(2 ** (bfmt[0] - 1)), 2 ** (bfmt[0] - 1) - 1
    shift = act[1] + weight[1] - bfmt[1]
    n = 300
    accs, biases = [], []
    for _ in range(n):
        b = rng.randint(b_lo, b_hi) if rng.random() < 0.5 else rng.randint(-8, 7)
        # the accumulator holds the dot product only: keep acc + aligned bias within [lo, hi]
        a_lo, a_hi = lo - b_lo * 2 ** shift, hi - b_hi * 2 ** shift
        scale = rng.choice([a_hi, 2 ** max(0, out[0] + act[1] + weight[1] - out[1]), 2 ** 8])
        a = rng.randint(max(a_lo, -scale), min(a_hi, scale))
        accs.append(a)
        biases.append(b)
    acc = np.array(accs, dtype=np.int64)
    bias = np.array(biases, dtype=np.int64)
    for relu in (False, True):
        got = writeback(acc, bias, fmts, relu).tolist()
        want = [ref_writeback(a, b, act, weight, bfmt, out, relu) for a, b in zip(accs, biases)]
        assert got == want, f"seed {seed}: formats {act} {weight} {bfmt} {out} x{terms} relu={relu}"


def test_writeback_saturation_and_rounding_corners():
    # acc_frac = 4 + 4 = 8, out 8:4 -> shift right by 4; bias 16:8 -> no bias shift
    fmts = make_fmts((8, 4), (8, 4), (16, 8), (8, 4), 4)
    assert (fmts.acc_frac, fmts.out_shift, fmts.bias_shift) == (8, 4, 0)
    accs = [127 * 16, 127 * 16 + 7, 127 * 16 + 8, 127 * 16 + 9, 2000 * 16,
            -128 * 16, -128 * 16 - 8, -128 * 16 - 9, -2000 * 16,
            24, -24, 8, -8, 7, -9, 0, 40, -40]
    want = [127, 127, 127, 127, 127,          # 127.4375 -> 127; 127.5 -> 128 saturates
            -128, -128, -128, -128,           # -128.5 -> -128 (half up); -128.5625 -> -129 sat
            2, -1, 1, 0, 0, -1, 0, 3, -2]     # 1.5->2, -1.5->-1, .5->1, -.5->0, -0.5625->-1
    zeros = np.zeros(len(accs), dtype=np.int64)
    assert writeback(np.array(accs), zeros, fmts, relu=False).tolist() == want
    assert writeback(np.array(accs), zeros, fmts, relu=True).tolist() == [max(0, w) for w in want]


def test_writeback_bias_alignment():
    # acc_frac = 6 + 6 = 12; bias 8:7 aligns by << 5; out 16:10 -> shift right by 2
    fmts = make_fmts((16, 6), (12, 6), (8, 7), (16, 10), 8)
    assert (fmts.bias_shift, fmts.out_shift) == (5, 2)
    acc = np.array([0, 0, 0, 1, 2, -2, -3, 100])
    bias = np.array([3, -3, 127, 0, 0, 0, 0, -128])
    # 3<<5 = 96 -> 24; -96 -> -24; 127<<5 = 4064 -> 1016; 1 -> .25 -> 0; 2 -> .5 -> 1;
    # -2 -> -.5 -> 0; -3 -> -.75 -> -1; 100 - 4096 = -3996 -> -999
    assert writeback(acc, bias, fmts, False).tolist() == [24, -24, 1016, 0, 1, 0, -1, -999]
    assert writeback(acc, bias, fmts, True).tolist() == [24, 0, 1016, 0, 1, 0, 0, 0]


def test_writeback_left_shift_and_saturation():
    # acc_frac = 2 + 2 = 4, out 12:7 -> left shift by 3, saturate to 12 bits
    fmts = make_fmts((8, 2), (8, 2), (8, 4), (12, 7), 2)
    assert fmts.out_shift == -3
    acc = np.array([1, -1, 255, 256, -256, -257, 1000])
    want = [8, -8, 2040, 2047, -2048, -2048, 2047]
    assert writeback(acc, np.zeros(7, np.int64), fmts, False).tolist() == want


def test_writeback_relu_after_saturation_keeps_shape():
    fmts = make_fmts((8, 0), (8, 0), (8, 0), (8, 0), 1)
    acc = np.array([[-300, 300], [5, -5]])
    assert writeback(acc, np.array([0, 1]), fmts, True).tolist() == [[0, 127], [5, 0]]
    assert writeback(acc, np.array([0, 1]), fmts, False).tolist() == [[-128, 127], [5, -4]]


# -- LayerFormats / accumulator width ---------------------------------------------------------------

ACC_CASES = [
    ((16, 8), (16, 8), (16, 8), (16, 8), 1),
    ((16, 8), (16, 8), (16, 8), (16, 8), 2),
    ((16, 8), (16, 8), (16, 16), (16, 8), 1024),
    ((16, 8), (16, 8), (16, 0), (16, 8), 1025),
    ((8, 4), (8, 7), (8, 3), (8, 4), 3),
    ((8, 0), (4, 0), (32, 0), (8, 0), 7),
    ((2, 0), (2, 0), (2, 0), (2, 0), 1),
    ((2, 0), (2, 0), (2, 0), (2, 0), 2),
    ((3, 1), (5, 2), (2, 0), (8, 3), 5),
    ((12, 6), (16, 14), (16, 20), (16, 10), 784),
    ((32, 16), (16, 8), (32, 24), (32, 16), 1 << 10),
    ((24, 0), (24, 0), (2, 0), (32, 0), 7),
    ((16, 8), (16, 8), (32, 16), (16, 8), 9216),
]


@pytest.mark.parametrize("act, weight, bfmt, out, terms", ACC_CASES)
def test_acc_bits_sufficient_and_tight(act, weight, bfmt, out, terms):
    f = make_fmts(act, weight, bfmt, out, terms)
    lo, hi = ref_acc_extremes(act, weight, bfmt, terms)
    assert fits(lo, hi, f.acc_bits), f"{f.acc_bits} bits do not hold {lo}..{hi}"
    assert not fits(lo, hi, f.acc_bits - 1), f"{f.acc_bits - 1} bits would already hold {lo}..{hi}"
    assert f.acc_frac == act[1] + weight[1]
    assert f.bias_shift == act[1] + weight[1] - bfmt[1]
    assert f.out_shift == act[1] + weight[1] - out[1]


@pytest.mark.parametrize("seed", range(20))
def test_acc_bits_random(seed):
    rng = random.Random(seed)
    act, weight, bfmt, out, terms, f = random_formats(rng)
    lo, hi = ref_acc_extremes(act, weight, bfmt, terms)
    assert fits(lo, hi, f.acc_bits), f"seed {seed}"
    assert not fits(lo, hi, f.acc_bits - 1), f"seed {seed}"


def test_acc_bits_to_json():
    f = make_fmts((16, 8), (16, 8), (16, 8), (16, 8), 4)
    d = f.to_json()
    assert d["act"] == {"bits": 16, "frac": 8} and d["max_terms"] == 4
    # 4 * (-2**15)**2 = 2**32 plus bias up to 2**15 << 8: needs 34 bits
    assert d["acc_bits"] == 34 and d["acc_frac"] == 16
    assert d["bias_shift"] == 8 and d["out_shift"] == 8


@pytest.mark.parametrize("act, weight, bfmt, out, terms, word", [
    ((32, 0), (32, 0), (32, 0), (32, 0), 4, "accumulator needs"),      # 2**62 * 4 -> 65 bits
    ((32, 0), (32, 0), (8, 0), (32, 0), 2, "accumulator needs"),       # 2**63 + 127: 65 bits
    ((32, 0), (32, 0), (2, 0), (32, 0), 1, "accumulator needs"),       # 2**62 + 1: 64 bits
    ((16, 8), (16, 8), (16, 8), (16, 8), 1 << 40, "accumulator needs"),
    ((16, 8), (16, 8), (16, 17), (16, 8), 4, "bias format 16:17"),     # bias frac > acc frac
    ((16, 8), (16, 8), (16, 8), (16, -47), 4, "output format"),        # shift right by 63
    ((16, 8), (16, 8), (16, 8), (16, 64), 4, "output format"),         # left shift to 34+48 bits
])
def test_layer_formats_too_wide_raise(act, weight, bfmt, out, terms, word):
    with pytest.raises(PermdealError) as e:
        make_fmts(act, weight, bfmt, out, terms)
    assert word in str(e.value)


def test_layer_formats_widest_accepted():
    # 32x32-bit products with one term and a 2-bit bias: 2**62 + 1 needs 64 bits -> refused;
    # 31x32-bit products: 2**61 * 1 + 1 -> 63 bits -> accepted, at the limit.
    f = make_fmts((31, 0), (32, 0), (2, 0), (32, 0), 1)
    lo, hi = ref_acc_extremes((31, 0), (32, 0), (2, 0), 1)
    assert f.acc_bits == 63 and fits(lo, hi, 63)
    with pytest.raises(PermdealError):
        make_fmts((32, 0), (32, 0), (2, 0), (32, 0), 1)
