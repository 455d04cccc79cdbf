"""LOBSTER writer: a simulated market's events -> message + orderbook files -> the reader.

Round trip: the written orderbook rows equal the core's ``top_levels`` after every core
message, and the reader, replaying the written message file from an empty book, rebuilds
every written orderbook row.
"""

from __future__ import annotations

import numpy as np
import pytest

rltrader = pytest.importorskip("rltrader")
from reference_book import CANCEL, EXECUTE, LIMIT, MARKET, REDUCE, REPLACE  # noqa: E402
from streams import random_stream  # noqa: E402

from rltrader import BUY, SELL, Books, SelfTradePrevention  # noqa: E402
from rltrader.data import lobster  # noqa: E402
from rltrader.data.lobster_writer import lobster_rows, orderbook_rows, write_lobster  # noqa: E402

LEVELS = 5
NO_STOPS = {LIMIT: 0.5, MARKET: 0.08, CANCEL: 0.16, REDUCE: 0.08, REPLACE: 0.1,
            EXECUTE: 0.08}


def _stream(seed: int, n: int = 3000) -> np.ndarray:
    msgs = random_stream(seed, n, n_owners=3, far_rate=0.0, jump_rate=0.0, invalid=False,
                         op_weights=NO_STOPS)
    msgs["timestamp"] = 34_200_000_000_000 + np.arange(n, dtype=np.int64) * 1_234_567
    return msgs


def _per_message_depth(msgs: np.ndarray, stp: int) -> tuple[np.ndarray, np.ndarray]:
    books = Books(1, n_owners=3, self_trade_prevention=stp)
    events = rltrader.empty_events(1 << 14)
    prices = np.zeros((msgs.shape[0], 2, LEVELS), dtype=np.int64)
    qtys = np.zeros_like(prices)
    counts = np.zeros((1, 2, LEVELS), dtype=np.int32)
    for i in range(msgs.shape[0]):
        books.process(msgs[i:i + 1], events)
        books.top_levels(LEVELS, prices[i:i + 1], qtys[i:i + 1], counts)
    return prices, qtys


@pytest.mark.parametrize("seed,stp", [(1, SelfTradePrevention.NONE),
                                      (2, SelfTradePrevention.CANCEL_MAKER),
                                      (3, SelfTradePrevention.CANCEL_BOTH)])
def test_round_trip(tmp_path, seed, stp):
    msgs = _stream(seed)
    events = Books(1, n_owners=3, self_trade_prevention=stp).process_all(msgs)
    mfile, bfile = tmp_path / "m.csv", tmp_path / "ob.csv"
    n = write_lobster(mfile, bfile, events, levels=LEVELS)
    raw = lobster.read_raw(mfile)
    depth = lobster.read_orderbook(bfile)
    assert len(raw) == len(depth) == n > msgs.shape[0] // 2

    # 1. after the last row of each core message the file shows the core's book
    rows_prices, rows_qtys = depth.in_ticks()
    core_prices, core_qtys = _per_message_depth(msgs, stp)
    written = lobster_rows(events)
    msg_of_row = events["message_index"][
        np.searchsorted(events["timestamp"], written["timestamp"])]
    last_row = np.flatnonzero(np.r_[msg_of_row[1:] != msg_of_row[:-1], True])
    np.testing.assert_array_equal(rows_prices[last_row], core_prices[msg_of_row[last_row]])
    np.testing.assert_array_equal(rows_qtys[last_row], core_qtys[msg_of_row[last_row]])

    # 2. the reader rebuilds every written row from the message file alone
    feed = lobster.to_messages(raw)
    assert feed.unknown_row.size == 0
    got_p, got_q = lobster.replay_depth(feed, LEVELS)
    np.testing.assert_array_equal(got_p, rows_prices)
    np.testing.assert_array_equal(got_q, rows_qtys)

    # 3. every trade is a type-4 row at the maker's price
    fills = events[events["kind"] == rltrader.FILL]
    assert np.count_nonzero(raw["type"] == 4) == len(fills)
    assert raw["size"][raw["type"] == 4].sum() == fills["qty"].sum()


def test_rows_by_hand(tmp_path):
    mfile, bfile = tmp_path / "m.csv", tmp_path / "ob.csv"
    msgs = rltrader.empty_messages(3)
    msgs[["op", "side", "price", "qty", "order_id", "owner", "timestamp"]] = [
        (LIMIT, SELL, 10_050, 5, 1, 0, 34_200_000_000_001),
        (LIMIT, BUY, 10_051, 8, 2, 1, 34_200_500_000_000),
        (REDUCE, 0, 0, 1, 2, -1, 34_201_000_000_000),
    ]
    events = Books(1, n_owners=2).process_all(msgs)
    write_lobster(mfile, bfile, events, levels=2)
    assert mfile.read_text().splitlines() == [
        "34200.000000001,1,1,5,1005000,-1",
        "34200.500000000,4,1,5,1005000,-1",   # the buy lifts the ask at the ask's price
        "34200.500000000,1,2,3,1005100,1",    # what rests of the buy, after its fill
        "34201.000000000,2,2,1,1005100,1",
    ]
    assert bfile.read_text().splitlines() == [
        "1005000,5,-9999999999,0,9999999999,0,-9999999999,0",
        "9999999999,0,-9999999999,0,9999999999,0,-9999999999,0",
        "9999999999,0,1005100,3,9999999999,0,-9999999999,0",
        "9999999999,0,1005100,2,9999999999,0,-9999999999,0",
    ]


def test_stops_and_foreign_rows_raise():
    msgs = rltrader.empty_messages(3)
    msgs[["op", "side", "price", "stop_price", "qty", "order_id"]] = [
        (LIMIT, SELL, 100, 0, 5, 1), (rltrader.STOP, BUY, 0, 100, 1, 2),
        (MARKET, BUY, 0, 0, 1, 3)]
    events = Books(1).process_all(msgs)
    with pytest.raises(ValueError, match="TRIGGERED"):
        lobster_rows(events)
    msgs = rltrader.empty_messages(2)
    msgs[["op", "side", "price", "qty", "order_id"]] = [(LIMIT, SELL, 100, 5, 1),
                                                        (CANCEL, 0, 0, 0, 1)]
    events = Books(1).process_all(msgs)[1:]  # the cancel without its add
    with pytest.raises(ValueError, match="row 0 removes 5 lots"):
        orderbook_rows(lobster_rows(events))
