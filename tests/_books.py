"""``same_books(a, b)``: two ``Books`` hold the same state, array by array (their
``state()``), for the differential tests of the rebuild paths."""

from __future__ import annotations

import numpy as np


def same_books(a, b) -> None:
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], np.ndarray):
            assert np.array_equal(sa[key], sb[key]), key
        else:
            assert sa[key] == sb[key], key
