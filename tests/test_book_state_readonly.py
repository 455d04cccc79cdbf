"""The core's state arrays are read-only from Python: a write into ``book_array``,
``level_array``, the bitmaps, the arena or the hash table (which the kernels trust) once
gave segfaults and heap overflows. Accounts stay writeable (plain data; ``check_integrity``
reports an inconsistent one)."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import messages, msg

from rltrader import BUY, EVENT_DTYPE, LIMIT, SELL, Books

STATE = ("book_array", "level_array", "bitmap_array", "summary_array", "order_array",
         "hash_array")


def _books() -> Books:
    books = Books(2, window=64, capacity=2, n_owners=2)
    books.process_all(messages(*(msg(LIMIT, i + 1, BUY if i % 2 else SELL, 100 + i, 5)
                                 for i in range(4))))     # the arena grows: new arrays
    return books


@pytest.mark.parametrize("name", STATE)
def test_state_arrays_refuse_writes(name: str) -> None:
    books = _books()
    array = getattr(books, name)
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array[...] = 0
    books.check_integrity()


@pytest.mark.parametrize("name", ["book_array", "level_array", "order_array"])
def test_a_state_array_is_no_events_buffer(name: str) -> None:
    books = _books()
    raw = getattr(books, name).reshape(-1).view(np.uint8)
    state = raw[: raw.size // EVENT_DTYPE.itemsize * EVENT_DTYPE.itemsize].view(EVENT_DTYPE)
    assert state.size >= 1                  # room for an event: refused as read-only
    with pytest.raises(ValueError, match="writeable"):
        books.process(messages(msg(LIMIT, 9, BUY, 90, 1)), state)
    books.check_integrity()


def test_setters_still_write_the_state() -> None:
    books = _books()
    books.set_fees(3, -2, book=1)
    books.set_self_trade_prevention(2)
    assert books.book_array["maker_fee_ppm"].tolist() == [0, 3]
    assert books.book_array["taker_fee_ppm"].tolist() == [0, -2]
    assert books.book_array["stp"].tolist() == [2, 2]
    assert not books.book_array.flags.writeable


def test_accounts_stay_writeable_and_are_checked() -> None:
    books = _books()
    books.accounts["position"][0, 0] = 7
    with pytest.raises(AssertionError):
        books.check_integrity()
