"""Self-trade prevention: what happens when a taker meets a resting order of its own owner."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    assert_same_state,
    book_depth,
    cancelled,
    fill,
    messages,
    msg,
    snapshot,
)

from rltrader import (
    BUY,
    FOK,
    LIMIT,
    NO_OWNER,
    SELL,
    Books,
    OrderBook,
    Reason,
    SelfTradePrevention,
)

STP = SelfTradePrevention
ST = Reason.SELF_TRADE


def _book(mode: int, owners: tuple[int, int, int] = (1, 0, 1)) -> OrderBook:
    """Asks: 100 [1 (owner a) x2, 2 (owner b) x3], 101 [3 (owner c) x4]."""
    ob = OrderBook(n_owners=2, self_trade_prevention=mode)
    ob.limit(SELL, 100, 2, order_id=1, owner=owners[0])
    ob.limit(SELL, 100, 3, order_id=2, owner=owners[1])
    ob.limit(SELL, 101, 4, order_id=3, owner=owners[2])
    return ob


def test_none_trades_with_itself() -> None:
    ob = _book(STP.NONE)
    ob.limit(BUY, 101, 7, order_id=10, owner=0)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 7, owner=0),
        fill(10, BUY, maker=1, price=100, qty=2, leaves=5, maker_leaves=0, owner=0,
             maker_owner=1),
        fill(10, BUY, maker=2, price=100, qty=3, leaves=2, maker_leaves=0, owner=0,
             maker_owner=0),
        fill(10, BUY, maker=3, price=101, qty=2, leaves=0, maker_leaves=2, owner=0,
             maker_owner=1),
    ])
    assert_depth(ob, bids=[], asks=[(101, 2, 1)])


def test_cancel_taker_cancels_the_taker_and_stops() -> None:
    ob = _book(STP.CANCEL_TAKER)
    ob.limit(BUY, 101, 7, order_id=10, owner=0)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 7, owner=0),
        fill(10, BUY, maker=1, price=100, qty=2, leaves=5, maker_leaves=0, owner=0,
             maker_owner=1),
        cancelled(10, BUY, 101, 5, ST, owner=0),
    ])
    assert ob.order(10) is None
    assert_depth(ob, bids=[], asks=[(100, 3, 1), (101, 4, 1)])


def test_cancel_maker_cancels_own_resting_orders_and_goes_on() -> None:
    ob = _book(STP.CANCEL_MAKER)
    ob.limit(BUY, 101, 7, order_id=10, owner=0)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 7, owner=0),
        fill(10, BUY, maker=1, price=100, qty=2, leaves=5, maker_leaves=0, owner=0,
             maker_owner=1),
        cancelled(2, SELL, 100, 3, ST, owner=0),
        fill(10, BUY, maker=3, price=101, qty=4, leaves=1, maker_leaves=0, owner=0,
             maker_owner=1),
    ])
    assert ob.order(2) is None
    assert_depth(ob, bids=[(101, 1, 1)], asks=[])   # the remainder rests


def test_cancel_both_cancels_maker_then_taker() -> None:
    ob = _book(STP.CANCEL_BOTH)
    ob.limit(BUY, 101, 7, order_id=10, owner=0)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 7, owner=0),
        fill(10, BUY, maker=1, price=100, qty=2, leaves=5, maker_leaves=0, owner=0,
             maker_owner=1),
        cancelled(2, SELL, 100, 3, ST, owner=0),
        cancelled(10, BUY, 101, 5, ST, owner=0),
    ])
    assert_depth(ob, bids=[], asks=[(101, 4, 1)])


def test_market_taker_cancelled_for_self_trade_shows_price_zero() -> None:
    ob = _book(STP.CANCEL_TAKER, owners=(0, 1, 1))
    ob.market(BUY, 3, order_id=10, owner=0)
    assert_events(ob.events, [
        accepted(10, BUY, 0, 3, owner=0),
        cancelled(10, BUY, 0, 3, ST, owner=0),
    ])
    assert_depth(ob, bids=[], asks=[(100, 5, 2), (101, 4, 1)])


@pytest.mark.parametrize("mode", list(STP))
def test_orders_without_owner_never_self_match(mode: int) -> None:
    ob = _book(mode, owners=(NO_OWNER, NO_OWNER, NO_OWNER))
    ob.limit(BUY, 100, 4, order_id=10, owner=NO_OWNER)
    assert_events(ob.events, [
        accepted(10, BUY, 100, 4),
        fill(10, BUY, maker=1, price=100, qty=2, leaves=2, maker_leaves=0),
        fill(10, BUY, maker=2, price=100, qty=2, leaves=0, maker_leaves=1),
    ])
    assert_depth(ob, bids=[], asks=[(100, 1, 1), (101, 4, 1)])


@pytest.mark.parametrize("mode", list(STP))
def test_different_owners_trade_in_every_mode(mode: int) -> None:
    ob = _book(mode, owners=(1, 1, 1))
    ob.limit(BUY, 100, 3, order_id=10, owner=0)
    assert [int(k) for k in ob.events["kind"]] == [1, 3, 3]
    assert_depth(ob, bids=[], asks=[(100, 2, 1), (101, 4, 1)])


def test_fok_with_stp_none_counts_own_orders() -> None:
    ob = _book(STP.NONE)
    ob.limit(BUY, 101, 9, order_id=10, owner=0, tif=FOK)
    assert [int(m) for m in ob.events["maker_order_id"][1:]] == [1, 2, 3]
    assert_depth(ob, bids=[], asks=[])


def test_fok_with_cancel_maker_skips_own_orders() -> None:
    ob = _book(STP.CANCEL_MAKER)
    before = snapshot(ob.books)
    ob.limit(BUY, 101, 7, order_id=10, owner=0, tif=FOK)     # 2 + 4 others < 7
    assert_events(ob.events, [
        accepted(10, BUY, 101, 7, owner=0),
        cancelled(10, BUY, 101, 7, Reason.FOK_UNFILLABLE, owner=0),
    ])
    assert_same_state(before, ob.books)
    ob.limit(BUY, 101, 6, order_id=11, owner=0, tif=FOK)     # exactly the others' lots
    assert_events(ob.events, [
        accepted(11, BUY, 101, 6, owner=0),
        fill(11, BUY, maker=1, price=100, qty=2, leaves=4, maker_leaves=0, owner=0,
             maker_owner=1),
        cancelled(2, SELL, 100, 3, ST, owner=0),
        fill(11, BUY, maker=3, price=101, qty=4, leaves=0, maker_leaves=0, owner=0,
             maker_owner=1),
    ])
    assert_depth(ob, bids=[], asks=[])


@pytest.mark.parametrize("mode", [STP.CANCEL_TAKER, STP.CANCEL_BOTH])
def test_fok_with_cancel_taker_or_both_counts_only_up_to_the_first_own_order(
        mode: int) -> None:
    ob = _book(mode)
    before = snapshot(ob.books)
    ob.limit(BUY, 101, 3, order_id=10, owner=0, tif=FOK)     # only 2 before order 2
    assert_events(ob.events, [
        accepted(10, BUY, 101, 3, owner=0),
        cancelled(10, BUY, 101, 3, Reason.FOK_UNFILLABLE, owner=0),
    ])
    assert_same_state(before, ob.books)                      # no self-trade cancels
    ob.limit(BUY, 101, 2, order_id=11, owner=0, tif=FOK)
    assert_events(ob.events, [
        accepted(11, BUY, 101, 2, owner=0),
        fill(11, BUY, maker=1, price=100, qty=2, leaves=0, maker_leaves=0, owner=0,
             maker_owner=1),
    ])
    assert_depth(ob, bids=[], asks=[(100, 3, 1), (101, 4, 1)])


def test_mode_is_per_book() -> None:
    books = Books(2, n_owners=1)
    books.set_self_trade_prevention(STP.CANCEL_TAKER, book=1)
    stream = []
    for b in (0, 1):
        stream += [msg(LIMIT, 1, SELL, 100, 1, owner=0, book=b),
                   msg(LIMIT, 2, BUY, 100, 1, owner=0, book=b)]
    events = books.process_all(messages(*stream))
    assert_events(events, [
        accepted(1, SELL, 100, 1, owner=0, index=0),
        accepted(2, BUY, 100, 1, owner=0, index=1),
        fill(2, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, owner=0,
             maker_owner=0, index=1),
        accepted(1, SELL, 100, 1, owner=0, book=1, index=2),
        accepted(2, BUY, 100, 1, owner=0, book=1, index=3),
        cancelled(2, BUY, 100, 1, ST, owner=0, book=1, index=3),
    ])
    assert book_depth(books, 0) == ([], [])
    assert book_depth(books, 1) == ([], [(100, 1, 1)])
    books.check_integrity()
