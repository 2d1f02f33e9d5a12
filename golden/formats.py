"""Fixed-point number formats and the write-back arithmetic (docs/design.md section 3).

A format ``Fixed(bits, frac)`` is a two's-complement integer of ``bits`` bits with an implied binary
point ``frac`` bits from the right: the integer ``v`` stands for ``v * 2**-frac``.

All integer arithmetic here is exact on ``int64`` arrays; :func:`accumulator_format` refuses
formats whose sums would not fit 63 bits, so nothing can wrap silently.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from permdeal.errors import PermdealError

#: Widest format a single value may have; products of two such values fit ``int64``.
MAX_BITS = 32
#: Widest accumulator the golden model (``int64``) and the generator accept.
MAX_ACC_BITS = 63


@dataclass(frozen=True)
class Fixed:
    """A two's-complement fixed-point format of ``bits`` bits, ``frac`` of them fractional."""

    bits: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not (
                2 <= self.bits <= MAX_BITS):
            raise PermdealError(f"format bits must be an integer in [2, {MAX_BITS}], not {self.bits!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool) or abs(self.frac) > 64:
            raise PermdealError(f"format frac must be an integer in [-64, 64], not {self.frac!r}")

    @property
    def min(self) -> int:
        """Smallest integer code, ``-2**(bits-1)``."""
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        """Largest integer code, ``2**(bits-1) - 1``."""
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        """The real value of one LSB, ``2**-frac``."""
        return 2.0 ** -self.frac

    def __str__(self):
        return f"{self.bits}:{self.frac}"

    @classmethod
    def parse(cls, text: str, what: str = "format") -> Fixed:
        """Parse ``"BITS:FRAC"`` (as the CLI and config files write formats)."""
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(-?\d+)\s*", str(text))
        if not m:
            raise PermdealError(f"{what}: expected BITS:FRAC such as 16:8, got {text!r}")
        try:
            return cls(int(m.group(1)), int(m.group(2)))
        except PermdealError as e:
            raise PermdealError(f"{what}: {e}") from None

    def to_json(self) -> dict[str, int]:
        return {"bits": self.bits, "frac": self.frac}

    @classmethod
    def from_json(cls, obj: Any, what: str = "format") -> Fixed:
        if not isinstance(obj, dict) or set(obj) != {"bits", "frac"}:
            raise PermdealError(f"{what}: expected {{\"bits\": B, \"frac\": F}}, got {obj!r}")
        try:
            return cls(obj["bits"], obj["frac"])
        except PermdealError as e:
            raise PermdealError(f"{what}: {e}") from None

    def saturate(self, v: npt.ArrayLike) -> np.ndarray:
        """Clip integer codes to ``[min, max]``."""
        return np.clip(np.asarray(v, dtype=np.int64), self.min, self.max)

    def quantize(self, x: npt.ArrayLike) -> tuple[np.ndarray, int]:
        """Float to fixed: round to nearest (ties up, as the write-back does) and saturate.

        Returns ``(codes, n_saturated)``: ``int64`` codes and how many values did not fit.
        Raises :class:`PermdealError` on NaN or infinite input.
        """
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise PermdealError(f"cannot quantize to {self}: {np.count_nonzero(~np.isfinite(x))} "
                                "value(s) are NaN or infinite")
        with np.errstate(over="ignore"):  # values beyond float range saturate like the rest
            scaled = _round_half_up(x * 2.0 ** self.frac)
        over = (scaled > self.max) | (scaled < self.min)
        codes = np.clip(scaled, self.min, self.max).astype(np.int64)
        return codes, int(np.count_nonzero(over))

    def to_float(self, codes: npt.ArrayLike) -> np.ndarray:
        """Fixed to float: ``codes * 2**-frac``."""
        return np.asarray(codes, dtype=np.float64) * self.step

    @classmethod
    def fit(cls, bits: int, x: npt.ArrayLike) -> Fixed:
        """The format of ``bits`` bits with the most fraction bits that holds every value of ``x``.

        "Holds" means :meth:`quantize` saturates nothing. All-zero data gets ``frac = bits - 1``.
        """
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise PermdealError("cannot fit a format to NaN or infinite values")
        hi, lo = (float(x.max()), float(x.min())) if x.size else (0.0, 0.0)
        peak = max(abs(hi), abs(lo))
        if peak == 0.0:
            return cls(bits, bits - 1)
        frac = min(64, bits - 1 - math.ceil(math.log2(peak)) + 1)
        while frac >= -64:
            fmt = cls(bits, frac)
            ends = _round_half_up(np.array([lo, hi]) * 2.0 ** frac)
            if ends[1] <= fmt.max and ends[0] >= fmt.min:
                return fmt
            frac -= 1
        raise PermdealError(f"values up to {peak:g} do not fit any {bits}-bit format")


def _round_half_up(x):
    """Round floats to the nearest integer, ties up, exactly.

    ``floor(x + 0.5)`` is not exact: for ``x = 0.5 - 2**-54`` the addition itself rounds up to 1.
    The fractional part ``x - floor(x)`` of a float is exact, so compare it instead.
    """
    fl = np.floor(x)
    return fl + (x - fl >= 0.5)


def signed_bits(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in ``[lo, hi]``."""
    return max(1, int(hi).bit_length(), int(-lo - 1).bit_length()) + 1


def round_shift(v: npt.ArrayLike, s: int) -> np.ndarray:
    """Arithmetic shift of integers ``v`` right by ``s`` with round-half-up: ``(v + 2**(s-1)) >> s``.

    ``s <= 0`` shifts left by ``-s`` (exact).
    """
    v = np.asarray(v, dtype=np.int64)
    if s > 0:
        return (v + (np.int64(1) << np.int64(s - 1))) >> np.int64(s)
    return v << np.int64(-s)


@dataclass(frozen=True)
class LayerFormats:
    """The number formats of one layer and what derives from them.

    ``act`` is the input activation format, ``weight`` the stored weights', ``bias`` the stored
    biases', ``out`` the output activation format, and ``max_terms`` the longest dot product (the
    most non-zero weights in one output row).
    """

    act: Fixed
    weight: Fixed
    bias: Fixed
    out: Fixed
    max_terms: int

    def __post_init__(self):
        if isinstance(self.max_terms, bool) or not isinstance(self.max_terms, int) or self.max_terms < 1:
            raise PermdealError(f"max_terms must be an integer >= 1, not {self.max_terms!r}")
        if self.bias.frac > self.acc_frac:
            raise PermdealError(
                f"bias format {self.bias} has more fraction bits than the accumulator "
                f"({self.acc_frac} = activation {self.act.frac} + weight {self.weight.frac}); "
                "the bias must align by a left shift")
        if self.acc_bits > MAX_ACC_BITS:
            raise PermdealError(
                f"accumulator needs {self.acc_bits} bits (> {MAX_ACC_BITS}) for activation {self.act},"
                f" weight {self.weight}, bias {self.bias} and {self.max_terms} terms; narrow the formats")
        if self.out_shift > MAX_ACC_BITS - 1 or self.acc_bits - min(0, self.out_shift) > MAX_ACC_BITS:
            raise PermdealError(
                f"output format {self.out} is {self.out_shift:+d} bits from the accumulator's binary "
                f"point ({self.acc_frac} fraction bits): too far to shift in {MAX_ACC_BITS} bits")

    @property
    def acc_frac(self) -> int:
        """Fraction bits of products and of the accumulator: ``act.frac + weight.frac``."""
        return self.act.frac + self.weight.frac

    @property
    def bias_shift(self) -> int:
        """Left shift that aligns a bias code to the accumulator's binary point."""
        return self.acc_frac - self.bias.frac

    @property
    def out_shift(self) -> int:
        """Right shift (round-half-up) from the accumulator to the output format; < 0 shifts left."""
        return self.acc_frac - self.out.frac

    @property
    def acc_bits(self) -> int:
        """Accumulator width: no dot product of ``max_terms`` terms plus bias can overflow it.

        The bound is exact: the largest product magnitude is ``act.min * weight.min``.
        """
        prod_max = self.act.min * self.weight.min
        prod_min = min(self.act.min * self.weight.max, self.act.max * self.weight.min)
        lo = self.max_terms * prod_min + (self.bias.min << self.bias_shift)
        hi = self.max_terms * prod_max + (self.bias.max << self.bias_shift)
        return signed_bits(lo, hi)

    @classmethod
    def from_json(cls, obj: Any, what: str = "formats") -> LayerFormats:
        """Inverse of :meth:`to_json` (the derived fields are recomputed, not read)."""
        try:
            return cls(*(Fixed.from_json(obj[k], f"{what} {k} format")
                         for k in ("act", "weight", "bias", "out")), obj["max_terms"])
        except (KeyError, TypeError) as e:
            raise PermdealError(f"{what}: missing or malformed field {e}") from None

    def to_json(self) -> dict:
        return {"act": self.act.to_json(), "weight": self.weight.to_json(),
                "bias": self.bias.to_json(), "out": self.out.to_json(),
                "max_terms": self.max_terms, "acc_bits": self.acc_bits,
                "acc_frac": self.acc_frac, "bias_shift": self.bias_shift,
                "out_shift": self.out_shift}


def writeback(acc: npt.ArrayLike, bias: npt.ArrayLike, fmts: LayerFormats,
              relu: bool) -> np.ndarray:
    """Write-back of a layer output (docs/design.md section 3), exact on integer arrays.

    ``acc`` holds accumulator values (``fmts.acc_frac`` fraction bits), ``bias`` bias codes in
    ``fmts.bias``. Adds the aligned bias, shifts to ``fmts.out`` with round-half-up, saturates to
    the output width, then applies ReLU if ``relu``.
    """
    v = np.asarray(acc, dtype=np.int64) + (np.asarray(bias, dtype=np.int64) << np.int64(fmts.bias_shift))
    v = fmts.out.saturate(round_shift(v, fmts.out_shift))
    return np.maximum(v, 0) if relu else v
