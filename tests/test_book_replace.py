"""REPLACE cancels an order and enters a new one: it loses priority and may trade at once."""

from __future__ import annotations

from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    book_depth,
    cancelled,
    fill,
    messages,
    msg,
    queue_ids,
    rejected,
    triggered,
)

from rltrader import BUY, FOK, IOC, POST_ONLY, REPLACE, SELL, Books, OrderBook, Reason


def _book() -> OrderBook:
    ob = OrderBook(n_owners=3)
    ob.limit(BUY, 100, 5, order_id=1, owner=2)
    ob.limit(BUY, 100, 5, order_id=2, owner=0)
    ob.limit(SELL, 102, 3, order_id=3, owner=0)
    return ob


def test_replace_at_the_same_price_goes_to_the_back_of_the_queue() -> None:
    ob = _book()
    assert ob.replace(1, 100, 5, timestamp=6) == 1
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2, timestamp=6),
        accepted(1, BUY, 100, 5, owner=2, timestamp=6),
    ])
    assert queue_ids(ob, BUY, 100) == [2, 1]
    info = ob.order(1)
    assert info is not None and info["timestamp"] == 6 and info["owner"] == 2
    assert_depth(ob, bids=[(100, 10, 2)], asks=[(102, 3, 1)])


def test_replace_with_a_new_id_and_size() -> None:
    ob = _book()
    assert ob.replace(2, 99, 8, new_order_id=20) == 20
    assert_events(ob.events, [
        cancelled(2, BUY, 100, 5, Reason.REPLACED, owner=0),
        accepted(20, BUY, 99, 8, owner=0),
    ])
    assert ob.order(2) is None
    assert ob.order(20) is not None
    assert_depth(ob, bids=[(100, 5, 1), (99, 8, 1)], asks=[(102, 3, 1)])


def test_replace_with_its_own_id_as_new_id() -> None:
    ob = _book()
    ob.replace(1, 101, 2, new_order_id=1)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        accepted(1, BUY, 101, 2, owner=2),
    ])
    assert_depth(ob, bids=[(101, 2, 1), (100, 5, 1)], asks=[(102, 3, 1)])


def test_replace_that_crosses_trades_at_once() -> None:
    ob = _book()
    ob.replace(1, 102, 7, new_order_id=11)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        accepted(11, BUY, 102, 7, owner=2),
        fill(11, BUY, maker=3, price=102, qty=3, leaves=4, maker_leaves=0, owner=2,
             maker_owner=0),
    ])
    assert_depth(ob, bids=[(102, 4, 1), (100, 5, 1)], asks=[])
    assert ob.last_price() == 102


def test_replace_of_a_partly_filled_order_cancels_its_leaves() -> None:
    ob = _book()
    ob.limit(SELL, 100, 2, order_id=4)      # takes 2 of order 1
    ob.replace(1, 100, 9)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 3, Reason.REPLACED, owner=2),
        accepted(1, BUY, 100, 9, owner=2),
    ])
    assert_depth(ob, bids=[(100, 14, 2)], asks=[(102, 3, 1)])


def test_ioc_replacement_cancels_its_remainder() -> None:
    ob = _book()
    ob.replace(3, 100, 12, tif=IOC)
    assert_events(ob.events, [
        cancelled(3, SELL, 102, 3, Reason.REPLACED, owner=0),
        accepted(3, SELL, 100, 12, owner=0),
        fill(3, SELL, maker=1, price=100, qty=5, leaves=7, maker_leaves=0, owner=0,
             maker_owner=2),
        fill(3, SELL, maker=2, price=100, qty=5, leaves=2, maker_leaves=0, owner=0,
             maker_owner=0),
        cancelled(3, SELL, 100, 2, Reason.IOC_REMAINDER, owner=0),
    ])
    assert_depth(ob, bids=[], asks=[])


def test_post_only_replacement_that_would_cross_is_rejected_after_the_cancel() -> None:
    ob = _book()
    ob.replace(1, 102, 5, new_order_id=11, tif=POST_ONLY)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        rejected(11, BUY, 102, 5, Reason.POST_ONLY_WOULD_CROSS, owner=2),
    ])
    assert ob.order(1) is None and ob.order(11) is None
    assert_depth(ob, bids=[(100, 5, 1)], asks=[(102, 3, 1)])


def test_post_only_replacement_that_does_not_cross_rests() -> None:
    ob = _book()
    ob.replace(1, 101, 5, tif=POST_ONLY)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        accepted(1, BUY, 101, 5, owner=2),
    ])
    assert_depth(ob, bids=[(101, 5, 1), (100, 5, 1)], asks=[(102, 3, 1)])


def test_replacement_keeps_the_old_side_and_owner_whatever_the_message_says() -> None:
    books = Books(n_owners=3)
    books.process_all(messages(msg(1, 1, BUY, 100, 5, owner=2)))
    events = books.process_all(messages(
        msg(REPLACE, 1, SELL, 101, 4, new_order_id=5)))     # NO_OWNER: any order
    assert_events(events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        accepted(5, BUY, 101, 4, owner=2),
    ])
    assert book_depth(books, 0) == ([(101, 4, 1)], [])
    books.check_integrity()


def test_fok_replacement_that_cannot_fill_leaves_the_old_order_cancelled() -> None:
    ob = _book()
    ob.replace(1, 102, 4, tif=FOK)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.REPLACED, owner=2),
        accepted(1, BUY, 102, 4, owner=2),
        cancelled(1, BUY, 102, 4, Reason.FOK_UNFILLABLE, owner=2),
    ])
    assert ob.order(1) is None
    assert_depth(ob, bids=[(100, 5, 1)], asks=[(102, 3, 1)])


def test_replacement_that_trades_triggers_stops() -> None:
    ob = _book()
    ob.limit(SELL, 103, 4, order_id=4)
    ob.stop(BUY, 102, 2, order_id=5, owner=1)
    ob.replace(2, 102, 1, new_order_id=6, timestamp=9)
    assert_events(ob.events, [
        cancelled(2, BUY, 100, 5, Reason.REPLACED, owner=0, timestamp=9),
        accepted(6, BUY, 102, 1, owner=0, timestamp=9),
        fill(6, BUY, maker=3, price=102, qty=1, leaves=0, maker_leaves=2, owner=0,
             maker_owner=0, timestamp=9),
        triggered(5, BUY, 102, 2, owner=1, timestamp=9),
        fill(5, BUY, maker=3, price=102, qty=2, leaves=0, maker_leaves=0, owner=1,
             maker_owner=0, timestamp=9),
    ])
    assert_depth(ob, bids=[(100, 5, 1)], asks=[(103, 4, 1)])


def test_replace_of_a_pending_stop_is_rejected() -> None:
    ob = _book()
    ob.stop(SELL, 90, 2, order_id=7)
    ob.replace(7, 95, 2)
    assert_events(ob.events, [rejected(7, 0, 95, 2, Reason.NOT_RESTING)])
    assert ob.order(7) is not None


def test_replace_to_a_live_id_is_rejected() -> None:
    ob = _book()
    ob.replace(1, 99, 5, new_order_id=2)
    assert_events(ob.events, [rejected(1, 0, 99, 5, Reason.DUPLICATE_ORDER_ID)])
    assert queue_ids(ob, BUY, 100) == [1, 2]
    assert_depth(ob, bids=[(100, 10, 2)], asks=[(102, 3, 1)])
