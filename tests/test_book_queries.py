"""Read-only queries: top_levels, level_queue (L3), order, live_orders, trade statistics,
memory_bytes."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import messages, msg

from rltrader import (
    BUY,
    EMPTY_ASK,
    EMPTY_BID,
    EXECUTE,
    LIMIT,
    QUEUE_DTYPE,
    SELL,
    STOP,
    STOP_LIMIT,
    Books,
    OrderBook,
)


def _books() -> Books:
    """Book 0: bids 100 x3 (2 orders), 99 x4; asks 101 x5, 103 x1, 104 x2 (+ a pending stop).
    Book 1: one ask at 50. Book 2: empty."""
    books = Books(3, n_owners=2)
    books.process_all(messages(
        msg(LIMIT, 1, BUY, 100, 1, owner=0, timestamp=10),
        msg(LIMIT, 2, BUY, 100, 2, owner=1, timestamp=11),
        msg(LIMIT, 3, BUY, 99, 4, timestamp=12),
        msg(LIMIT, 4, SELL, 101, 5, timestamp=13),
        msg(LIMIT, 5, SELL, 103, 1, timestamp=14),
        msg(LIMIT, 6, SELL, 104, 2, timestamp=15),
        msg(STOP, 7, BUY, qty=3, stop_price=110, owner=1, timestamp=16),
        msg(LIMIT, 1, SELL, 50, 7, book=1, timestamp=17),
    ))
    books.check_integrity()
    return books


def test_top_levels_of_several_books() -> None:
    books = _books()
    prices, qtys, counts = books.top_levels(3)
    assert prices.shape == qtys.shape == counts.shape == (3, 2, 3)
    assert (prices.dtype, qtys.dtype, counts.dtype) == (np.int64, np.int64, np.int32)
    assert prices[0].tolist() == [[100, 99, 0], [101, 103, 104]]
    assert qtys[0].tolist() == [[3, 4, 0], [5, 1, 2]]
    assert counts[0].tolist() == [[2, 1, 0], [1, 1, 1]]
    assert prices[1].tolist() == [[0, 0, 0], [50, 0, 0]]
    assert qtys[1].tolist() == [[0, 0, 0], [7, 0, 0]]
    assert counts[1].tolist() == [[0, 0, 0], [1, 0, 0]]
    assert not prices[2].any() and not qtys[2].any() and not counts[2].any()
    p1, q1, c1 = books.top_levels(1)
    assert p1[:, :, 0].tolist() == [[100, 101], [0, 50], [0, 0]]
    assert c1.shape == (3, 2, 1) and q1[0, 1, 0] == 5


def test_top_levels_reuses_caller_arrays() -> None:
    books = _books()
    prices = np.full((3, 2, 2), -1, dtype=np.int64)
    qtys = np.full((3, 2, 2), -1, dtype=np.int64)
    counts = np.full((3, 2, 2), -1, dtype=np.int32)
    out = books.top_levels(2, prices, qtys, counts)
    assert out[0] is prices and out[1] is qtys and out[2] is counts
    assert prices.tolist() == [[[100, 99], [101, 103]], [[0, 0], [50, 0]], [[0, 0], [0, 0]]]
    assert counts[2].tolist() == [[0, 0], [0, 0]]
    books.process_all(messages(msg(LIMIT, 9, SELL, 100, 3)))     # takes the 100 level
    books.top_levels(2, prices, qtys, counts)
    assert prices[0].tolist() == [[99, 0], [101, 103]]
    assert qtys[0].tolist() == [[4, 0], [5, 1]]


@pytest.mark.parametrize("which", range(3))
@pytest.mark.parametrize("bad", [
    lambda dt: np.zeros((3, 2, 4), dtype=dt),           # wrong depth
    lambda dt: np.zeros((2, 2, 2), dtype=dt),           # wrong number of books
    lambda dt: np.zeros(12, dtype=dt),                  # flat
    lambda dt: np.zeros((3, 2, 2), dtype=np.float64),   # wrong dtype
    lambda dt: np.zeros((3, 2, 4), dtype=dt)[:, :, ::2],  # not contiguous
    lambda dt: [[0, 0]] * 3,                            # not an array
], ids=["depth", "books", "flat", "dtype", "strided", "list"])
def test_top_levels_rejects_wrong_arrays(which: int, bad) -> None:
    books = _books()
    dtypes = (np.int64, np.int64, np.int32)
    args = [None, None, None]
    args[which] = bad(dtypes[which])
    with pytest.raises(ValueError, match="shape"):
        books.top_levels(2, *args)


def test_top_levels_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        _books().top_levels(0)


def test_level_queue_is_the_fifo_oldest_first() -> None:
    books = _books()
    q = books.level_queue(0, BUY, 100)
    assert q.dtype == QUEUE_DTYPE
    assert q.tolist() == [(1, 1, 10, 0), (2, 2, 11, 1)]
    books.process_all(messages(msg(LIMIT, 9, BUY, 100, 6, timestamp=20),
                               msg(LIMIT, 10, SELL, 100, 2, timestamp=21)))
    assert books.level_queue(0, BUY, 100).tolist() == [(2, 1, 11, 1), (9, 6, 20, -1)]
    assert books.level_queue(0, SELL, 101).tolist() == [(4, 5, 13, -1)]
    assert books.level_queue(1, SELL, 50).tolist() == [(1, 7, 17, -1)]


def test_level_queue_of_empty_or_other_side_levels_is_empty() -> None:
    books = _books()
    assert books.level_queue(0, BUY, 102).shape == (0,)
    assert books.level_queue(0, SELL, 100).shape == (0,)     # a bid level
    assert books.level_queue(0, BUY, 101).shape == (0,)      # an ask level
    assert books.level_queue(2, BUY, 100).shape == (0,)
    assert books.level_queue(0, BUY, 10**9).shape == (0,)     # outside the window


def test_level_queue_into_a_caller_array() -> None:
    books = _books()
    out = np.zeros(5, dtype=QUEUE_DTYPE)
    q = books.level_queue(0, BUY, 100, out)
    assert q.tolist() == [(1, 1, 10, 0), (2, 2, 11, 1)]
    assert np.shares_memory(q, out)
    with pytest.raises(ValueError):
        books.level_queue(0, BUY, 100, np.zeros(1, dtype=QUEUE_DTYPE))
    with pytest.raises(ValueError):
        books.level_queue(0, BUY, 100, np.zeros(5, dtype=np.int64))
    with pytest.raises(IndexError):
        books.level_queue(3, BUY, 100)


def test_order_lookup() -> None:
    books = _books()
    assert books.order(0, 2) == dict(order_id=2, price=100, qty=2, side=BUY, owner=1,
                                     op=LIMIT, tif=0, state=1, timestamp=11)
    assert books.order(0, 7) == dict(order_id=7, price=0, qty=3, side=BUY, owner=1,
                                     op=STOP, tif=1, state=2, stop_price=110)
    assert books.order(1, 1) == dict(order_id=1, price=50, qty=7, side=SELL, owner=-1,
                                     op=LIMIT, tif=0, state=1, timestamp=17)
    assert books.order(0, 8) is None
    assert books.order(2, 1) is None
    with pytest.raises(IndexError):
        books.order(3, 1)


def test_live_orders_count_resting_orders_and_pending_stops() -> None:
    books = _books()
    assert books.live_orders() == 8
    assert [books.live_orders(b) for b in range(3)] == [7, 1, 0]
    books.process_all(messages(msg(STOP_LIMIT, 1, SELL, 40, 1, stop_price=45, book=2),
                               msg(LIMIT, 2, BUY, 50, 7, book=1)))
    assert [books.live_orders(b) for b in range(3)] == [7, 0, 1]
    assert books.live_orders() == 8


def test_trade_statistics_per_book() -> None:
    books = _books()
    assert [books.last_price(b) for b in range(3)] == [0, 0, 0]
    assert [(books.best_bid(b), books.best_ask(b)) for b in range(3)] == [
        (100, 101), (EMPTY_BID, 50), (EMPTY_BID, EMPTY_ASK)]
    books.process_all(messages(
        msg(LIMIT, 9, BUY, 103, 6),               # 5 at 101, 1 at 103: two fills
        msg(EXECUTE, 3, qty=1),                   # one more fill at 99
        msg(LIMIT, 2, BUY, 55, 3, book=1),        # 3 at 50
    ))
    assert (books.last_price(0), books.volume(0), books.trade_count(0)) == (99, 7, 3)
    assert (books.last_price(1), books.volume(1), books.trade_count(1)) == (50, 3, 1)
    assert (books.last_price(2), books.volume(2), books.trade_count(2)) == (0, 0, 0)
    assert books.best_ask(0) == 104


def test_memory_per_order_slot_is_at_most_64_bytes() -> None:
    for capacity in (1, 64, 1024, 1 << 16):
        books = Books(capacity=capacity)
        mem = books.memory_bytes()
        assert set(mem) == {"total", "per_order_slot", "per_price_level"}
        assert mem["per_order_slot"] <= 64
    books = Books(capacity=4)
    books.process_all(messages(*[msg(LIMIT, i, BUY, 100, 1) for i in range(1, 100)]))
    assert books.capacity == 128
    mem = books.memory_bytes()
    assert mem["per_order_slot"] <= 64
    assert mem["total"] == sum(a.nbytes for a in (
        books.book_array, books.level_array, books.bitmap_array, books.summary_array,
        books.order_array, books.hash_array, books.account_array))


def test_order_book_views() -> None:
    ob = OrderBook(n_owners=1)
    ob.limit(SELL, 101, 2, order_id=1, owner=0, timestamp=3)
    ob.limit(SELL, 101, 1, order_id=2, timestamp=4)
    ob.limit(BUY, 99, 5, order_id=3)
    bids, asks = ob.depth(5)
    assert bids.tolist() == [[99, 5, 1]] and asks.tolist() == [[101, 3, 2]]
    assert ob.queue(SELL, 101).tolist() == [(1, 2, 3, 0), (2, 1, 4, -1)]
    ob.limit(BUY, 101, 3, order_id=4)
    assert len(ob.events) == 3 and len(ob.fills()) == 2
    assert ob.fills()["maker_order_id"].tolist() == [1, 2]
    assert (ob.last_price(), ob.volume()) == (101, 3)
    assert ob.accounts.shape == (1,) and int(ob.accounts[0]["position"]) == -2
    ob.check_integrity()
