"""``Level.removals``: the count the env's queue-position cache keys on. It must move
whenever the lots ahead of some resting order of the level can have shrunk (an order
taken off, filled or reduced, the window recentred) and stay put when orders only join."""

from __future__ import annotations

import numpy as np
from _scenario import messages, msg

from rltrader import BUY, CANCEL, LIMIT, MARKET, REDUCE, SELL, Books


def _removals(books: Books, price: int) -> int:
    return int(books.level_array[0, price - int(books.book_array[0]["base"])]["removals"])


def _run(books: Books, *records: tuple[int, ...]) -> None:
    books.process_all(messages(*records))


def test_removals_count_every_way_an_order_leaves_or_shrinks() -> None:
    books = Books(1, window=64)
    _run(books, msg(LIMIT, 1, BUY, 100, 5), msg(LIMIT, 2, BUY, 100, 5),
         msg(LIMIT, 3, SELL, 110, 5))
    seen = _removals(books, 100)
    _run(books, msg(LIMIT, 4, BUY, 100, 5))                  # joins the tail
    assert _removals(books, 100) == seen
    _run(books, msg(MARKET, 5, SELL, qty=2))                 # partial fill of the head
    assert _removals(books, 100) == seen + 1
    _run(books, msg(MARKET, 6, SELL, qty=3))                 # the head leaves
    assert _removals(books, 100) == seen + 2
    _run(books, msg(REDUCE, 4, qty=1))                       # reduced, priority kept
    assert _removals(books, 100) == seen + 3
    _run(books, msg(CANCEL, 2))                              # cancelled from the middle
    assert _removals(books, 100) == seen + 4
    assert _removals(books, 110) == 0                        # other levels untouched


def test_a_recentred_window_moves_the_count_of_every_level() -> None:
    books = Books(1, window=64)
    _run(books, msg(LIMIT, 1, BUY, 100, 5), msg(LIMIT, 2, SELL, 101, 5))
    before = books.level_array[0]["removals"].copy()
    base = int(books.book_array[0]["base"])
    _run(books, msg(LIMIT, 3, SELL, 50, 10))                 # takes the bid, rests at 50:
    assert books.best_ask(0) == 50                           # the touch left the window
    assert int(books.book_array[0]["base"]) != base
    assert np.all(books.level_array[0]["removals"] >= before + 1)
