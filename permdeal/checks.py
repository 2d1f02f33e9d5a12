"""Checks of user-supplied parameters, with the one wording every part of permdeal uses."""

import numpy as np

from .errors import PermdealError


def integer(value, what, lo=None, hi=None):
    """``value`` as an ``int`` (bools, floats and strings refused), in ``[lo, hi]`` where given."""
    if hi is not None:
        expect = f"an integer in [{lo}, {hi}]"
    else:
        expect = "an integer" + ("" if lo is None else f" >= {lo}")
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or (lo is not None and value < lo) or (hi is not None and value > hi)):
        raise PermdealError(f"{what} must be {expect}, not {value!r}")
    return int(value)
