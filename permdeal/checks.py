"""Checks of user-supplied parameters, with the one wording every part of permdeal uses."""

import numpy as np

from .errors import PermdealError


def integer(value, what, lo=None):
    """``value`` as an ``int`` (bools, floats and strings refused), at least ``lo`` if given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise PermdealError(f"{what} must be an integer{'' if lo is None else f' >= {lo}'}, "
                            f"not {value!r}")
    if lo is not None and value < lo:
        raise PermdealError(f"{what} must be an integer >= {lo}, not {value!r}")
    return int(value)
