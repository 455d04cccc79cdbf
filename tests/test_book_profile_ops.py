"""``Books.profile`` bins every int8 op safely: out-of-range ops count in row 0, rejected."""

from __future__ import annotations

import numpy as np
from _scenario import messages, msg

from rltrader import BUY, EXECUTE, LIMIT, SELL, Books


def test_every_int8_op_is_binned_inside_the_arrays() -> None:
    # ops below LIMIT once compared as unsigned and were binned at op * 3 < 0: the
    # counters were written before the arrays. Each op value once, after a resting book.
    books = Books(window=64, capacity=4)
    books.process_all(messages(msg(LIMIT, 1, BUY, 100, 5), msg(LIMIT, 2, SELL, 105, 5)))
    records = [msg(op, 1000 + i, BUY, 100, 1) for i, op in enumerate(range(-128, 128))]
    ticks, counts = books.profile(messages(*records))
    assert ticks.shape == counts.shape == (EXECUTE + 1, 3)
    assert int(counts.sum()) == 256                 # nothing counted outside the arrays
    out_of_range = 256 - EXECUTE                    # every op but LIMIT .. EXECUTE
    assert int(counts[0, 2]) == out_of_range        # row 0, rejected (BAD_OP)
    assert int(counts[0, :2].sum()) == 0
    assert (counts >= 0).all() and (ticks >= 0).all()
    books.check_integrity()


def test_profile_and_process_leave_the_same_book() -> None:
    # one prologue (admit) for both kernels: same growth, same results
    records = [msg(LIMIT, i + 1, BUY if i % 2 else SELL, 100 + (i % 7) * (1 if i % 2 else -1)
                   + (0 if i % 2 else 7), 1 + i % 3) for i in range(300)]
    stream = messages(*records)
    a, b = Books(window=64, capacity=2), Books(window=64, capacity=2)
    a.process_all(stream)
    b.profile(stream)
    for name in ("book_array", "level_array", "account_array"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.capacity == b.capacity and a.live_orders() == b.live_orders()
    a.check_integrity()
    b.check_integrity()
