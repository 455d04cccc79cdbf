"""A cancel, reduce, replace or execute that names an owner acts only on that owner's
orders (NOT_OWNER); NO_OWNER (feeds without accounts) acts on any order, as before."""

from __future__ import annotations

import pytest
from _scenario import assert_events, cancelled, messages, msg, rejected
from reference_book import ReferenceBooks

from rltrader import (
    BUY,
    CANCEL,
    EXECUTE,
    LIMIT,
    NO_OWNER,
    REDUCE,
    REPLACE,
    SELL,
    STOP,
    Books,
    OrderBook,
    Reason,
)


def _book() -> OrderBook:
    ob = OrderBook(n_owners=3)
    ob.limit(BUY, 100, 5, order_id=1, owner=0)
    ob.stop(SELL, 90, 2, order_id=2, owner=1)
    return ob


@pytest.mark.parametrize("op", [CANCEL, REDUCE, REPLACE, EXECUTE])
def test_another_owner_is_refused(op: int) -> None:
    ob = _book()
    ob.submit(messages(msg(op, 1, price=101, qty=1, owner=2))[0])
    assert_events(ob.events, [rejected(1, 0, 101, 1, Reason.NOT_OWNER, owner=2)])
    assert ob.order(1)["qty"] == 5 and ob.order(1)["price"] == 100
    ob.check_integrity()


def test_the_owner_may_cancel_its_orders_and_stops() -> None:
    ob = _book()
    assert not ob.cancel(2, owner=0)                # owner 0's cancel of owner 1's stop
    assert int(ob.events[0]["reason"]) == Reason.NOT_OWNER
    assert ob.cancel(2, owner=1)
    assert ob.reduce(1, 2, owner=0)
    assert ob.replace(1, 99, 4, owner=0) == 1
    assert ob.order(1)["price"] == 99
    assert ob.cancel(1, owner=0)
    assert_events(ob.events, [cancelled(1, BUY, 99, 4, Reason.CANCEL_REQUESTED, owner=0)])
    ob.check_integrity()


def test_no_owner_acts_on_any_order() -> None:
    ob = _book()
    assert ob.reduce(1, 1)                          # NO_OWNER: the feed's fast path
    assert ob.execute(1, 1)
    assert ob.cancel(2, owner=NO_OWNER)
    assert ob.order(1)["qty"] == 3


def test_unknown_comes_before_not_owner() -> None:
    ob = _book()
    assert not ob.cancel(77, owner=2)
    assert int(ob.events[0]["reason"]) == Reason.UNKNOWN_ORDER


def test_the_reference_book_agrees() -> None:
    stream = messages(
        msg(LIMIT, 1, BUY, 100, 5, owner=0), msg(STOP, 2, SELL, qty=2, stop_price=90, owner=1),
        msg(CANCEL, 1, owner=1), msg(REDUCE, 2, qty=1, owner=0), msg(REPLACE, 1, price=101,
                                                                     qty=3, owner=2),
        msg(EXECUTE, 1, qty=1, owner=1), msg(REDUCE, 2, qty=1, owner=1),
        msg(REPLACE, 1, price=99, qty=3, owner=0), msg(CANCEL, 1), msg(CANCEL, 2, owner=1))
    got = Books(n_owners=3).process_all(stream)
    want = ReferenceBooks(n_owners=3).process_all(stream)
    assert got.tolist() == want.tolist()
    assert list(got["reason"]).count(Reason.NOT_OWNER) == 4
