"""Exact rebuild of LOBSTER orderbook rows from the message and orderbook files together.

The AAPL pair (999 rows, 10 levels): every row, all 10 levels of both sides, price and size,
must equal the book the core holds after that row's messages. The synthetic orders that make
this possible must appear only where the previous row could not see (or where a row names
an order the file never added), and their number is a known answer.
"""

from __future__ import annotations

import numpy as np
import pytest

rltrader = pytest.importorskip("rltrader")
from test_data_lobster import MESSAGE_92K, MESSAGE_999, ORDERBOOK_999  # noqa: E402

from rltrader import CANCEL, EXECUTE, LIMIT, REDUCE, REJECTED, Books  # noqa: E402
from rltrader.data import lobster, lobster_exact  # noqa: E402
from rltrader.data.lobster_exact import (  # noqa: E402
    FROM_FILE,
    REDIRECT,
    REVEAL,
    aggregate_id,
    exact_messages,
)


@pytest.fixture(scope="module")
def pair():
    return lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999)


@pytest.fixture(scope="module")
def exact(pair):
    return exact_messages(*pair)


def test_op_values_match_core():
    assert (lobster_exact._LIMIT, lobster_exact._CANCEL, lobster_exact._REDUCE,
            lobster_exact._EXECUTE) == (LIMIT, CANCEL, REDUCE, EXECUTE)


def test_every_row_all_levels_equal(exact, pair):
    _, depth = pair
    ours_price, ours_qty = lobster.replay_depth(exact.feed, levels=10)
    lob_price, lob_qty = depth.in_ticks()
    assert ours_price.shape == (999, 2, 10)
    bad = np.flatnonzero(~((ours_price == lob_price) & (ours_qty == lob_qty)).all(axis=(1, 2)))
    assert bad.size == 0, f"first differing row {bad[:1]}"


def test_no_rejects_and_the_book_is_sound(exact):
    books = Books(1)
    events = books.process_all(exact.messages)
    assert not np.any(events["kind"] == REJECTED)
    books.check_integrity()


def test_synthetic_work_is_the_known_answer(exact):
    # row 0 seeds the 19 levels it shows besides the order of message 0 itself; later,
    # 11 aggregates for levels coming up from beyond level 10; 3 orders cancelled out of
    # view (one seeded aggregate, two file orders); 9 rows name orders older than the file
    assert exact.stats() == {
        "synthetic_orders": 30, "synthetic_lots": 9790, "seed_orders": 19,
        "removal_messages": 3, "redirect_messages": 9, "redirected_rows": 9,
        "post_check_fixes": 0,
    }
    assert exact.feed.redirected_row.tolist() == [57, 58, 103, 447, 448, 449, 487, 589, 590]
    # every book row is there: as itself, or (order unknown) applied to its level
    file_rows = exact.feed.source_row[exact.reason == FROM_FILE]
    assert np.all(np.diff(file_rows) > 0)
    assert np.array_equal(np.union1d(file_rows, exact.feed.redirected_row),
                          np.flatnonzero(exact.feed.raw["type"] <= 4))


def test_reveals_happen_only_beyond_the_previous_visible_range(exact, pair):
    raw, depth = pair
    prices, qtys = depth.in_ticks()
    m, rows = exact.messages, exact.feed.source_row
    for k in np.flatnonzero((exact.reason == REVEAL) & (rows > 0)):
        side = 0 if m["side"][k] == 1 else 1
        prev_p, prev_q = prices[rows[k] - 1, side], qtys[rows[k] - 1, side]
        assert prev_q[-1] > 0  # the previous row showed all 10 levels ...
        sign = 1 if side == 0 else -1
        assert sign * m["price"][k] < sign * prev_p[-1]  # ... and this price was deeper


def test_redirects_stay_on_the_rows_level(exact):
    raw, m = exact.feed.raw, exact.messages
    for k in np.flatnonzero(exact.reason == REDIRECT):
        row = raw[exact.feed.source_row[k]]
        assert m["price"][k] * 100 == row["price"] and m["side"][k] == row["direction"]
        assert m["order_id"][k] >= lobster.SNAPSHOT_ID_BASE or m["op"][k] == LIMIT


def test_aggregate_ids_extend_the_reader_scheme():
    assert aggregate_id(1, 58533) == lobster.SNAPSHOT_ID_BASE + 2 * 58533
    assert aggregate_id(-1, 58533) == lobster.SNAPSHOT_ID_BASE + 2 * 58533 + 1
    assert aggregate_id(-1, 58533, 1) == aggregate_id(-1, 58533) + (1 << 42)


def _raw(rows):
    raw = np.zeros(len(rows), dtype=lobster.RAW_DTYPE)
    for i, r in enumerate(rows):
        raw[i] = r
    return raw


def _depth(rows, levels=2):
    """One orderbook row per entry: ((ask px, qty) ...), ((bid px, qty) ...)."""
    n = len(rows)
    ap = np.full((n, levels), lobster.EMPTY_ASK_PRICE, dtype=np.int64)
    bp = np.full((n, levels), lobster.EMPTY_BID_PRICE, dtype=np.int64)
    aq = np.zeros((n, levels), dtype=np.int64)
    bq = np.zeros((n, levels), dtype=np.int64)
    for i, (asks, bids) in enumerate(rows):
        for j, (p, q) in enumerate(asks):
            ap[i, j], aq[i, j] = p, q
        for j, (p, q) in enumerate(bids):
            bp[i, j], bq[i, j] = p, q
    return lobster.LobsterDepth(ap, aq, bp, bq)


def test_by_hand_reveal_unknown_halt_and_hidden_execution():
    # two levels shown; a hidden 30 lots at 10.03 come into view when 10.01 empties;
    # an execution of an order older than the file; a halt and its resume; a hidden execution
    raw = _raw([
        (1, 1, 11, 5, 100100, -1),   # add ask 10.01 x5 (book had 10.02 x7 before)
        (2, 3, 11, 5, 100100, -1),   # delete it: 10.03 x30 comes up from level 3
        (3, 7, 0, 0, -1, -1),        # halt
        (4, 7, 0, 0, 1, -1),         # trading resumes
        (5, 4, 99, 4, 100200, -1),   # execution of an order older than the file
        (6, 5, 0, 9, 100150, 1),     # hidden execution: no visible change
    ])
    a1 = ((100100, 5), (100200, 7))
    a2 = ((100200, 7), (100300, 30))
    a3 = ((100200, 3), (100300, 30))
    bid = ((99900, 10),)
    depth = _depth([(a1, bid), (a2, bid), (a2, bid), (a2, bid), (a3, bid), (a3, bid)])
    ex = exact_messages(raw, depth)
    got = [(int(r), int(m["op"]), int(m["price"]), int(m["qty"]))
           for r, m in zip(ex.feed.source_row, ex.messages, strict=True)]
    assert got == [
        (0, LIMIT, 999, 10), (0, LIMIT, 1002, 7),   # seeds: bids, then asks
        (0, LIMIT, 1001, 5),                        # row 0's own add
        (1, LIMIT, 1003, 30), (1, CANCEL, 1001, 5),  # revealed, before the delete
        (4, EXECUTE, 1002, 4),                      # redirected to the seed aggregate
    ]
    assert ex.messages["order_id"][-1] == aggregate_id(-1, 1002)
    assert ex.feed.off_book_row.tolist() == [2, 3, 5]
    prices, qtys = lobster.replay_depth(ex.feed, levels=2)
    want_p, want_q = depth.in_ticks()
    np.testing.assert_array_equal(prices, want_p)
    np.testing.assert_array_equal(qtys, want_q)


def test_mismatched_files_raise(pair):
    raw, depth = pair
    with pytest.raises(ValueError, match="999 message rows but 998 orderbook rows"):
        exact_messages(raw, lobster.LobsterDepth(depth.ask_price[1:], depth.ask_qty[1:],
                                                 depth.bid_price[1:], depth.bid_qty[1:]))
    with pytest.raises(TypeError, match="RAW_DTYPE"):
        exact_messages(np.zeros(3), depth)


def test_50_level_file_touch_consistency():
    """No orderbook file ships with the 50-level sample: check what the messages alone
    allow. Replayed from an empty book (unknown references dropped), the book is never
    crossed after any message and every visible execution hits the best price of its side."""
    feed = lobster.read_messages(MESSAGE_92K)
    prices, _ = lobster.replay_depth(feed, levels=1, capacity=1 << 16)
    bid, ask = prices[:, 0, 0], prices[:, 1, 0]
    both = (bid > 0) & (ask > 0)
    assert np.all(bid[both] < ask[both])
    raw = feed.raw
    execs = np.flatnonzero(raw["type"] == 4)
    execs = execs[~np.isin(execs, feed.unknown_row) & (execs > 0)]
    best_before = np.where(raw["direction"][execs] == 1, bid[execs - 1], ask[execs - 1])
    at_touch = best_before == raw["price"][execs] // 100
    # 4,055 replayed executions; a few hit a level above an order the file never added
    assert execs.size == 4055
    assert np.count_nonzero(~at_touch) <= 40
