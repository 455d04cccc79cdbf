"""Capacity: the order arena doubles up to ``max_orders``; a full event buffer makes
``Books.process`` return early and resume where it stopped."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import (
    accepted,
    as_dicts,
    assert_events,
    book_depth,
    cancelled,
    fill,
    messages,
    msg,
    rejected,
)

from rltrader import (
    BUY,
    CANCEL,
    EVENT_DTYPE,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    REPLACE,
    SELL,
    STOP,
    STOP_LIMIT,
    Books,
    OrderBook,
    Reason,
)


def test_arena_doubles_without_losing_orders() -> None:
    books = Books(capacity=2)
    stream = [msg(LIMIT, i, BUY if i % 2 else SELL, 100 - i if i % 2 else 200 + i, i)
              for i in range(1, 11)]
    events = books.process_all(messages(*stream))
    assert [int(k) for k in events["kind"]] == [1] * 10
    assert books.capacity == 16          # 2 -> 4 -> 8 -> 16
    assert books.live_orders() == 10
    for i in range(1, 11):
        info = books.order(0, i)
        assert info is not None and info["qty"] == i
    bids, asks = book_depth(books, 0)
    assert bids == [(100 - i, i, 1) for i in (1, 3, 5, 7, 9)]
    assert asks == [(200 + i, i, 1) for i in (2, 4, 6, 8, 10)]
    books.check_integrity()


def test_arena_growth_keeps_pending_stops_and_queue_order() -> None:
    ob = OrderBook(capacity=1)
    for i in range(1, 6):
        ob.limit(SELL, 100, 1, order_id=i)
    ob.stop(BUY, 100, 2, order_id=6)
    assert ob.books.capacity == 8
    assert [int(i) for i in ob.queue(SELL, 100)["order_id"]] == [1, 2, 3, 4, 5]
    ob.market(BUY, 1, order_id=7)
    assert [int(m) for m in ob.events["maker_order_id"]] == [0, 1, 0, 2, 3]
    ob.check_integrity()


def _full() -> Books:
    """max_orders = 3, all taken: asks 101 x1 (1), 102 x1 (2), bid 99 x1 (3)."""
    books = Books(capacity=2, max_orders=3)
    books.process_all(messages(msg(LIMIT, 1, SELL, 101, 1), msg(LIMIT, 2, SELL, 102, 1),
                               msg(LIMIT, 3, BUY, 99, 1)))
    assert books.capacity == 3 and books.live_orders() == 3
    return books


@pytest.mark.parametrize("record", [
    msg(LIMIT, 10, BUY, 98, 1),
    msg(LIMIT, 10, BUY, 101, 1),        # would fill at once, but GTC needs a slot first
    msg(LIMIT, 10, SELL, 103, 1, tif=POST_ONLY),
    msg(STOP, 10, BUY, qty=1, stop_price=150),
    msg(STOP_LIMIT, 10, SELL, 90, 1, stop_price=95),
])
def test_at_max_orders_orders_that_may_rest_are_rejected(record: tuple[int, ...]) -> None:
    books = _full()
    m = messages(record)
    events = books.process_all(m)
    assert_events(events, [rejected(10, int(m["side"][0]), int(m["price"][0]), 1,
                                    Reason.CAPACITY)])
    assert books.live_orders() == 3 and books.capacity == 3
    books.check_integrity()


def test_at_max_orders_ioc_fok_market_and_replace_still_work() -> None:
    books = _full()
    events = books.process_all(messages(
        msg(LIMIT, 10, BUY, 101, 2, tif=IOC),
        msg(REPLACE, 3, price=98, qty=4),
        msg(LIMIT, 11, SELL, 98, 1, tif=FOK),
        msg(MARKET, 12, BUY, qty=1),
    ))
    assert_events(events, [
        accepted(10, BUY, 101, 2, index=0),
        fill(10, BUY, maker=1, price=101, qty=1, leaves=1, maker_leaves=0, index=0),
        cancelled(10, BUY, 101, 1, Reason.IOC_REMAINDER, index=0),
        cancelled(3, BUY, 99, 1, Reason.REPLACED, index=1),
        accepted(3, BUY, 98, 4, index=1),
        accepted(11, SELL, 98, 1, index=2),
        fill(11, SELL, maker=3, price=98, qty=1, leaves=0, maker_leaves=3, index=2),
        accepted(12, BUY, 0, 1, index=3),
        fill(12, BUY, maker=2, price=102, qty=1, leaves=0, maker_leaves=0, index=3),
    ])
    assert book_depth(books, 0) == ([(98, 3, 1)], [])
    books.check_integrity()


def test_a_freed_slot_is_reused_at_max_orders() -> None:
    books = _full()
    events = books.process_all(messages(
        msg(LIMIT, 10, BUY, 98, 1),
        msg(CANCEL, 2),
        msg(LIMIT, 10, BUY, 98, 1),
    ))
    assert [(int(e["kind"]), int(e["reason"])) for e in events] == [
        (2, Reason.CAPACITY), (4, Reason.CANCEL_REQUESTED), (1, 0)]
    assert books.live_orders() == 3
    books.check_integrity()


def _stream(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        side = BUY if rng.random() < 0.5 else SELL
        if i % 7 == 0:
            out.append(msg(MARKET, i, side, qty=int(rng.integers(1, 30)), timestamp=i))
        elif i % 11 == 0:
            out.append(msg(STOP, i, side, qty=2, stop_price=int(rng.integers(95, 106)),
                           timestamp=i))
        else:
            out.append(msg(LIMIT, i, side, int(rng.integers(95, 106)),
                           int(rng.integers(1, 6)), timestamp=i))
    return messages(*out)


def test_small_event_buffer_returns_early_and_resumes_identically() -> None:
    stream = _stream(300, seed=3)
    whole = Books(capacity=4).process_all(stream)
    books = Books(capacity=4)
    events = np.zeros(40, dtype=EVENT_DTYPE)
    got: list[dict[str, int]] = []
    done = calls = 0
    while done < len(stream):
        consumed, written = books.process(stream[done:], events)
        assert 0 < consumed and 0 < written <= len(events)
        if done + consumed < len(stream):
            calls += 1          # returned early
        for e in as_dicts(events[:written]):
            e["message_index"] += done
            got.append(e)
        done += consumed
    assert calls > 0
    assert got == as_dicts(whole)
    books.check_integrity()


def test_buffer_that_cannot_hold_one_message_raises() -> None:
    books = Books()
    books.process_all(messages(*[msg(LIMIT, i, SELL, 100 + i, 1) for i in range(1, 6)]))
    before = books.live_orders()
    buy = messages(msg(LIMIT, 10, BUY, 200, 10))
    with pytest.raises(ValueError, match="cannot hold"):
        books.process(buy, np.zeros(3, dtype=EVENT_DTYPE))
    with pytest.raises(ValueError, match="cannot hold"):
        books.process(buy, np.zeros(0, dtype=EVENT_DTYPE))
    assert books.live_orders() == before
    consumed, written = books.process(buy, np.zeros(64, dtype=EVENT_DTYPE))
    assert (consumed, written) == (1, 6)     # ACCEPTED and five fills; 5 lots rest


def test_empty_batch() -> None:
    books = Books()
    assert books.process(messages(), np.zeros(0, dtype=EVENT_DTYPE)) == (0, 0)
    assert books.process_all(messages()).shape == (0,)


def test_event_bound_of_a_taker_is_its_quantity_without_self_trade_prevention() -> None:
    """A taker of q lots fills at most q makers, so a buffer of 6 + q events is enough
    however deep the opposite side is; with self-trade prevention on, makers may be
    cancelled without filling and the bound is the whole opposite side again."""
    resting = messages(*[msg(LIMIT, i, SELL, 100 + i % 7, 1, owner=0) for i in range(1, 201)])
    taker = messages(msg(LIMIT, 1000, BUY, 200, 3, owner=1))
    books = Books(n_owners=2)
    books.process_all(resting)
    with pytest.raises(ValueError, match="cannot hold"):
        books.process(taker, np.zeros(8, dtype=EVENT_DTYPE))
    assert books.process(taker, np.zeros(9, dtype=EVENT_DTYPE)) == (1, 4)  # ACCEPTED, 3 fills
    books.check_integrity()

    stp = Books(n_owners=2)
    stp.set_self_trade_prevention(1)
    stp.process_all(resting)
    with pytest.raises(ValueError, match="cannot hold"):
        stp.process(taker, np.zeros(9, dtype=EVENT_DTYPE))
    assert stp.process(taker, np.zeros(206, dtype=EVENT_DTYPE)) == (1, 4)


@pytest.mark.parametrize("delta", [0, -1])
def test_resize_arena_never_shrinks_or_relinks(delta: int) -> None:
    # an equal size once linked the last live slot into the free list (heap corruption)
    books = Books(window=64, capacity=4)
    books.process_all(messages(*[msg(LIMIT, i + 1, BUY, 100 - i, 1) for i in range(4)]))
    with pytest.raises(ValueError, match="capacity"):
        books._resize_arena(books.capacity + delta)
    books._resize_arena(books.capacity + 1)
    assert books.capacity == 5 and books.live_orders() == 4
    books.check_integrity()


def test_growth_copies_every_slot_and_links_the_new_ones_behind_the_free_list() -> None:
    # _resize copies the arena's raw bytes and links the new slots in a C loop: the old
    # rows must come through bit for bit and the free list must run through the new slots
    # in order, then on to the old free list
    books = Books(2, window=64, capacity=8, n_owners=2)
    stream = [msg(LIMIT, i, BUY if i % 2 else SELL, 100 - i if i % 2 else 200 + i, i,
                  book=i % 2, owner=i % 2) for i in range(1, 8)]
    stream += [msg(CANCEL, 3, book=1), msg(STOP, 9, SELL, 0, 2, stop_price=50)]
    books.process_all(messages(*stream))
    before = books.order_array.copy()
    free = int(books.state()["free_head"])
    books._resize_arena(21)
    after = books.order_array
    assert after.shape == (21,)
    assert after[:8].tobytes() == before.tobytes()
    assert list(after["next"][8:20]) == list(range(9, 21))
    assert int(after["next"][20]) == free
    assert (after["prev"][8:] == -1).all() and (after["state"][8:] == 0).all()
    assert (after[["order_id", "price", "qty", "owner", "book"]][8:].tolist()
            == [(0, 0, 0, 0, 0)] * 13)
    assert books.state()["free_head"] == 8
    books.check_integrity()
    # the grown books behave as books that never had to grow
    more = [msg(LIMIT, 20 + i, SELL if i % 2 else BUY, 90 + 3 * i, 2, book=i % 2,
                owner=i % 2) for i in range(40)]
    roomy = Books(2, window=64, capacity=64, n_owners=2)
    roomy.process_all(messages(*stream))
    grown_events = books.process_all(messages(*more))
    roomy_events = roomy.process_all(messages(*more))
    assert grown_events.tolist() == roomy_events.tolist()   # (padding bytes may differ)
    assert books.accounts.tobytes() == roomy.accounts.tobytes()
    for b in (0, 1):
        assert book_depth(books, b) == book_depth(roomy, b)
    books.check_integrity()


@pytest.mark.parametrize("restored", [False, True])
def test_a_large_arena_grows_in_place_then_falls_back(restored: bool) -> None:
    # an arena that grows to 2**15 slots or more moves (one copy) into address space
    # reserved for max_orders slots at most, then grows in place (nothing copied, the same
    # memory) while the reservation holds it, and past it into a numpy array (past
    # max_orders here); each way every old slot comes through bit for bit, the new ones
    # are free and linked, an old view stays readable, and the books behave as books
    # that never grew (restored: the arena of from_state, a numpy array)
    n = 1 << 15
    books = Books(2, window=64, capacity=n, max_orders=n + 300, n_owners=2)
    roomy = Books(2, window=64, capacity=n + 400, n_owners=2)
    stream = [msg(LIMIT, i, BUY if i % 2 else SELL, 100 - i % 30 if i % 2 else 200 + i % 30,
                  1 + i % 5, book=i % 2, owner=i % 2) for i in range(1, 400)]
    stream += [msg(CANCEL, i, book=i % 2) for i in range(3, 400, 7)]
    books.process_all(messages(*stream))
    roomy.process_all(messages(*stream))
    if restored:
        books = Books.from_state(books.state())
    for capacity in (n + 100, n + 200, n + 300, n + 400):   # moves, in place x 2, numpy
        before = books.order_array.copy()
        view = books.order_array
        free = int(books.state()["free_head"])
        books._resize_arena(capacity)
        after = books.order_array
        assert after.shape == (capacity,) and not after.flags.writeable
        assert (after.ctypes.data == view.ctypes.data) == (capacity in (n + 200, n + 300))
        assert after[:len(before)].tobytes() == before.tobytes()
        assert view.tobytes() == before.tobytes()       # an old view stays readable
        assert list(after["next"][len(before):-1]) == list(range(len(before) + 1, capacity))
        assert int(after["next"][-1]) == free
        assert (after["state"][len(before):] == 0).all()
        assert (after[["order_id", "price", "qty", "owner", "book"]][len(before):].tolist()
                == [(0, 0, 0, 0, 0)] * (capacity - len(before)))
        books.check_integrity()
    more = [msg(LIMIT, 1000 + i, SELL if i % 2 else BUY, 90 + i % 40, 2, book=i % 2,
                owner=i % 2) for i in range(200)]
    assert books.process_all(messages(*more)).tolist() == \
        roomy.process_all(messages(*more)).tolist()
    assert books.accounts.tobytes() == roomy.accounts.tobytes()
    for b in (0, 1):
        assert book_depth(books, b) == book_depth(roomy, b)
    books.check_integrity()


def test_a_large_id_hash_is_zeroed_and_read_only() -> None:
    # an id hash of 2**19 entries or more sits in a reservation of its own
    books = Books(1, window=64, capacity=1 << 18)
    assert books.hash_array.shape == (1 << 19,) and not books.hash_array.flags.writeable
    assert not books.hash_array.any()
    books.process_all(messages(*[msg(LIMIT, i, BUY, 50 + i % 9, 1) for i in range(1, 50)]))
    assert np.count_nonzero(books.hash_array) == 49
    books.check_integrity()
