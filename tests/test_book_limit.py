"""LIMIT orders: price-time priority, partial fills at the maker's price, resting remainder."""

from __future__ import annotations

from _scenario import accepted, assert_depth, assert_events, fill, queue_ids

from rltrader import BUY, EMPTY_ASK, EMPTY_BID, SELL, OrderBook


def test_non_crossing_orders_rest_and_set_the_touch() -> None:
    ob = OrderBook()
    assert (ob.best_bid(), ob.best_ask()) == (EMPTY_BID, EMPTY_ASK)
    ob.limit(BUY, 99, 5, order_id=1)
    assert_events(ob.events, [accepted(1, BUY, 99, 5)])
    ob.limit(SELL, 102, 4, order_id=2)
    assert_events(ob.events, [accepted(2, SELL, 102, 4)])
    assert (ob.best_bid(), ob.best_ask()) == (99, 102)
    ob.limit(BUY, 100, 3, order_id=3)       # improves the bid
    ob.limit(SELL, 101, 2, order_id=4)      # improves the ask
    ob.limit(BUY, 98, 1, order_id=5)        # behind the touch
    assert (ob.best_bid(), ob.best_ask()) == (100, 101)
    assert_depth(ob, bids=[(100, 3, 1), (99, 5, 1), (98, 1, 1)],
                 asks=[(101, 2, 1), (102, 4, 1)])
    assert ob.last_price() == 0 and ob.volume() == 0


def test_buy_takes_levels_in_price_order_at_each_makers_price() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 5, order_id=1)
    ob.limit(SELL, 102, 5, order_id=2)
    ob.limit(SELL, 100, 5, order_id=3)
    ob.limit(SELL, 104, 5, order_id=4)
    ob.limit(BUY, 103, 12, order_id=10)
    assert_events(ob.events, [
        accepted(10, BUY, 103, 12),
        fill(10, BUY, maker=3, price=100, qty=5, leaves=7, maker_leaves=0),
        fill(10, BUY, maker=1, price=101, qty=5, leaves=2, maker_leaves=0),
        fill(10, BUY, maker=2, price=102, qty=2, leaves=0, maker_leaves=3),
    ])
    assert_depth(ob, bids=[], asks=[(102, 3, 1), (104, 5, 1)])
    assert (ob.best_bid(), ob.best_ask()) == (EMPTY_BID, 102)
    assert ob.last_price() == 102 and ob.volume() == 12


def test_sell_takes_levels_in_price_order_at_each_makers_price() -> None:
    ob = OrderBook()
    ob.limit(BUY, 98, 4, order_id=1)
    ob.limit(BUY, 99, 4, order_id=2)
    ob.limit(BUY, 97, 4, order_id=3)
    ob.limit(SELL, 98, 6, order_id=10)
    assert_events(ob.events, [
        accepted(10, SELL, 98, 6),
        fill(10, SELL, maker=2, price=99, qty=4, leaves=2, maker_leaves=0),
        fill(10, SELL, maker=1, price=98, qty=2, leaves=0, maker_leaves=2),
    ])
    assert_depth(ob, bids=[(98, 2, 1), (97, 4, 1)], asks=[])
    assert ob.best_bid() == 98 and ob.last_price() == 98


def test_within_a_level_the_oldest_order_fills_first() -> None:
    ob = OrderBook()
    ob.limit(SELL, 100, 3, order_id=1)
    ob.limit(SELL, 100, 4, order_id=2)
    ob.limit(SELL, 100, 5, order_id=3)
    assert queue_ids(ob, SELL, 100) == [1, 2, 3]
    ob.limit(BUY, 100, 6, order_id=10)
    assert_events(ob.events, [
        accepted(10, BUY, 100, 6),
        fill(10, BUY, maker=1, price=100, qty=3, leaves=3, maker_leaves=0),
        fill(10, BUY, maker=2, price=100, qty=3, leaves=0, maker_leaves=1),
    ])
    assert queue_ids(ob, SELL, 100) == [2, 3]
    assert_depth(ob, bids=[], asks=[(100, 6, 2)])
    ob.limit(BUY, 100, 2, order_id=11)      # the partly filled head keeps its place
    assert_events(ob.events, [
        accepted(11, BUY, 100, 2),
        fill(11, BUY, maker=2, price=100, qty=1, leaves=1, maker_leaves=0),
        fill(11, BUY, maker=3, price=100, qty=1, leaves=0, maker_leaves=4),
    ])
    assert_depth(ob, bids=[], asks=[(100, 4, 1)])


def test_new_orders_join_the_back_of_their_level() -> None:
    ob = OrderBook()
    for oid in (1, 2, 3):
        ob.limit(BUY, 50, 1, order_id=oid)
    ob.limit(BUY, 51, 1, order_id=4)
    ob.limit(BUY, 50, 1, order_id=5)
    assert queue_ids(ob, BUY, 50) == [1, 2, 3, 5]
    ob.limit(SELL, 50, 3, order_id=6)
    assert [int(m) for m in ob.fills()["maker_order_id"]] == [4, 1, 2]
    assert queue_ids(ob, BUY, 50) == [3, 5]
    ob.check_integrity()


def test_remainder_rests_at_the_limit_price() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 5, order_id=1)
    ob.limit(BUY, 103, 8, order_id=2, timestamp=77)
    assert_events(ob.events, [
        accepted(2, BUY, 103, 8, timestamp=77),
        fill(2, BUY, maker=1, price=101, qty=5, leaves=3, maker_leaves=0, timestamp=77),
    ])
    assert_depth(ob, bids=[(103, 3, 1)], asks=[])
    assert (ob.best_bid(), ob.best_ask()) == (103, EMPTY_ASK)
    assert ob.order(2) == dict(order_id=2, price=103, qty=3, side=BUY, owner=-1, op=1, tif=0,
                               state=1, timestamp=77)
    assert ob.order(1) is None
    assert ob.last_price() == 101


def test_limit_that_does_not_reach_the_touch_does_not_trade() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 5, order_id=1)
    ob.limit(BUY, 100, 5, order_id=2)
    assert_events(ob.events, [accepted(2, BUY, 100, 5)])
    assert_depth(ob, bids=[(100, 5, 1)], asks=[(101, 5, 1)])


def test_exact_fill_empties_level_and_moves_the_touch() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 2, order_id=1)
    ob.limit(SELL, 101, 3, order_id=2)
    ob.limit(SELL, 105, 1, order_id=3)
    ob.limit(BUY, 101, 5, order_id=4)
    assert_events(ob.events, [
        accepted(4, BUY, 101, 5),
        fill(4, BUY, maker=1, price=101, qty=2, leaves=3, maker_leaves=0),
        fill(4, BUY, maker=2, price=101, qty=3, leaves=0, maker_leaves=0),
    ])
    assert ob.best_ask() == 105 and ob.best_bid() == EMPTY_BID
    assert_depth(ob, bids=[], asks=[(105, 1, 1)])
    assert ob.queue(SELL, 101).shape == (0,)


def test_fill_events_carry_both_owners() -> None:
    ob = OrderBook(n_owners=3)
    ob.limit(SELL, 100, 5, order_id=1, owner=2)
    ob.limit(SELL, 101, 5, order_id=2, owner=0)
    ob.limit(BUY, 101, 7, order_id=3, owner=1)
    assert_events(ob.events, [
        accepted(3, BUY, 101, 7, owner=1),
        fill(3, BUY, maker=1, price=100, qty=5, leaves=2, maker_leaves=0, owner=1,
             maker_owner=2),
        fill(3, BUY, maker=2, price=101, qty=2, leaves=0, maker_leaves=3, owner=1,
             maker_owner=0),
    ])
    assert_depth(ob, bids=[], asks=[(101, 3, 1)])
