"""Argument checks that every Python layer shares."""

from __future__ import annotations

import numbers


def is_int(value: object) -> bool:
    """An int or a numpy integer: not a bool, not a float (even a whole one), not a string.

    The core takes counts, ids, fees and ticks as integers; a float that Python would
    truncate (``int(2.9) == 2``) is refused instead.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
