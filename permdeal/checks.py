"""Checks of user-supplied parameters, with the one wording every part of permdeal uses."""

from typing import Any

import numpy as np

from .errors import PermdealError


def integer(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an ``int`` (bools, floats and strings refused), in ``[lo, hi]`` where given."""
    if hi is not None:
        expect = f"an integer in [{lo}, {hi}]"
    else:
        expect = "an integer" + ("" if lo is None else f" >= {lo}")
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or (lo is not None and value < lo) or (hi is not None and value > hi)):
        raise PermdealError(f"{what} must be {expect}, not {value!r}")
    return int(value)


def positive(value: Any, what: str) -> float:
    """``value`` as a ``float`` greater than 0 (anything ``float()`` takes: numbers, numeric
    strings)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not v > 0:
        raise PermdealError(f"{what} must be a positive number, not {value!r}")
    return v


#: The largest seed: every random generator the flow seeds (numpy's, scikit-learn's, cocotb's,
#: nextpnr's) takes 32 bits.
MAX_SEED = 2 ** 32 - 1


def seed(value: Any, what: str = "seed") -> int:
    """``value`` as a seed: an integer in ``[0, MAX_SEED]``."""
    return integer(value, what, 0, MAX_SEED)
