"""Every method that writes into a caller's array refuses a read-only one (ValueError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _scenario import messages, msg

from rltrader import BUY, EVENT_DTYPE, LIMIT, QUEUE_DTYPE, SELL, Books


def _books() -> Books:
    books = Books(window=64)
    books.process_all(messages(msg(LIMIT, 1, BUY, 100, 5), msg(LIMIT, 2, SELL, 105, 5)))
    return books


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def test_process_refuses_read_only_events() -> None:
    books = _books()
    batch = messages(*[msg(LIMIT, 10 + i, BUY, 90, 1) for i in range(100)])  # nogil path
    with pytest.raises(ValueError, match="events must be writeable"):
        books.process(batch, _frozen(np.zeros(1024, dtype=EVENT_DTYPE)))
    assert books.live_orders() == 2          # nothing ran
    books.check_integrity()


def test_process_refuses_a_read_only_memmap(tmp_path: Path) -> None:
    path = tmp_path / "events.bin"
    np.zeros(1024, dtype=EVENT_DTYPE).tofile(path)
    events = np.memmap(path, dtype=EVENT_DTYPE, mode="r")
    books = _books()
    with pytest.raises(ValueError, match="writeable"):
        books.process(messages(msg(LIMIT, 10, BUY, 90, 1)), events)
    assert books.live_orders() == 2


def test_process_refuses_read_only_known_slots() -> None:
    books = _books()
    batch = messages(msg(LIMIT, 10, BUY, 90, 1))
    known = _frozen(np.full(1, -1, dtype=np.int32))
    with pytest.raises(ValueError, match="writeable"):
        books.process(batch, np.zeros(16, dtype=EVENT_DTYPE), known=known)


@pytest.mark.parametrize("which", ["prices", "qtys", "counts"])
def test_top_levels_refuses_read_only_outputs(which: str) -> None:
    books = _books()
    shape = (1, 2, 4)
    out = dict(prices=np.zeros(shape, np.int64), qtys=np.zeros(shape, np.int64),
               counts=np.zeros(shape, np.int32))
    _frozen(out[which])
    with pytest.raises(ValueError, match=f"{which} must be writeable"):
        books.top_levels(4, **out)
    assert not out[which].any()


def test_level_queue_refuses_a_read_only_out() -> None:
    books = _books()
    out = _frozen(np.zeros(4, dtype=QUEUE_DTYPE))
    with pytest.raises(ValueError, match="out must be writeable"):
        books.level_queue(0, BUY, 100, out=out)


def test_writeable_outputs_still_work() -> None:
    books = _books()
    events = np.zeros(16, dtype=EVENT_DTYPE)
    assert books.process(messages(msg(LIMIT, 10, BUY, 90, 1)), events) == (1, 1)
    prices, _, _ = books.top_levels(2)
    assert prices[0, 0, 0] == 100 and prices[0, 1, 0] == 105
    assert len(books.level_queue(0, BUY, 100, out=np.zeros(4, dtype=QUEUE_DTYPE))) == 1
