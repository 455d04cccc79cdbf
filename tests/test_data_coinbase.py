"""Coinbase level-3 reader: the real 10-minute BTC-USD sample rebuilds the end snapshot
exactly, the mapping of each message type, and clear errors on malformed input."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import crypto_file  # noqa: E402

from rltrader import (  # noqa: E402
    BUY,
    CANCEL,
    EXECUTE,
    FILL,
    LIMIT,
    REDUCE,
    REJECTED,
    REPLACE,
    SELL,
    Books,
)
from rltrader.data import coinbase  # noqa: E402

PREFIX = "coinbase_gdax_btcusd_2018-07-13_l3_"
BEGIN = crypto_file("coinbase", PREFIX + "snapshot_begin.json.gz")
MESSAGES = crypto_file("coinbase", PREFIX + "full_channel_messages.json.gz")
END = crypto_file("coinbase", PREFIX + "snapshot_end.json.gz")
WINDOW = 1 << 18


@pytest.fixture(scope="module")
def feed() -> coinbase.CoinbaseFeed:
    return coinbase.read_feed(BEGIN, MESSAGES)


@pytest.fixture(scope="module")
def end() -> coinbase.L3Snapshot:
    return coinbase.read_snapshot(END)


@pytest.fixture(scope="module")
def replayed(feed) -> tuple[Books, np.ndarray]:
    books = Books(1, window=WINDOW, capacity=1 << 17)
    return books, books.process_all(feed.messages)


# ---------------------------------------------------------------------------------------
# the real sample
# ---------------------------------------------------------------------------------------


def test_counts(feed):
    assert feed.type_counts == {"received": 12219, "open": 11825, "done": 12198, "match": 501}
    assert feed.snapshot_sequence == 6318080534
    assert feed.last_sequence == 6318117277
    assert feed.stale == 0
    ops = dict(zip(*np.unique(feed.messages["op"], return_counts=True), strict=True))
    # 66,811 snapshot orders + 11,825 opens; 501 matches; cancels = done on resting orders
    assert ops == {LIMIT: 66811 + 11825, EXECUTE: 501, CANCEL: 11600}
    assert len(feed.order_ids) == 66811 + 11825
    assert feed.sequence[:66811].tolist() == [6318080534] * 66811


def test_first_messages_by_hand(feed):
    # snapshot bids[0]: ["6190.84","1.6002045","1bddc888-4f3a-4a9f-b38c-11beadf91c2b"]
    first = feed.messages[0]
    assert (first["op"], first["side"], first["price"], first["qty"], first["order_id"]) == (
        LIMIT, BUY, 619084, 160020450, 1)
    assert feed.order_ids["1bddc888-4f3a-4a9f-b38c-11beadf91c2b"] == 1
    # sequence 6318080535: open d8dc857e... sell 0.1 at 6197.47, 20:47:11.025 UTC
    msg = feed.messages[66811]
    assert (msg["op"], msg["side"], msg["price"], msg["qty"]) == (LIMIT, SELL, 619747, 10**7)
    assert msg["timestamp"] == 1531514831025000000
    assert feed.order_ids["d8dc857e-db15-458c-9b4d-c3e0591cdf43"] == msg["order_id"]
    assert feed.sequence[66811] == 6318080535
    assert (feed.messages["timestamp"][:66811] == msg["timestamp"]).all()


def test_replay_reproduces_end_snapshot_exactly(feed, replayed, end):
    books, events = replayed
    assert not (events["kind"] == REJECTED).any()
    assert int((events["kind"] == FILL).sum()) == 501
    assert end.sequence == feed.last_sequence
    assert books.live_orders(0) == len(end) == 66833
    assert coinbase.compare_snapshot(books, feed, end) == []


def test_compare_detects_a_difference(feed, replayed, end):
    books, _ = replayed
    price, size, uuid = end.asks[0]
    resized = coinbase.L3Snapshot(end.sequence, end.bids,
                                  [(price, "0.00000001", uuid), *end.asks[1:]])
    problems = coinbase.compare_snapshot(books, feed, resized)
    assert len(problems) == 1 and "6185.51" in problems[0]
    reordered = coinbase.L3Snapshot(end.sequence, [end.bids[1], end.bids[0], *end.bids[2:]],
                                    end.asks)
    assert len(coinbase.compare_snapshot(books, feed, reordered, limit=1)) == 1
    fewer = coinbase.L3Snapshot(end.sequence, end.bids[:-1], end.asks)
    problems = coinbase.compare_snapshot(books, feed, fewer)
    assert len(problems) == 2 and problems[1] == "66833 live orders, snapshot has 66832"


# ---------------------------------------------------------------------------------------
# message mapping on small hand-made feeds
# ---------------------------------------------------------------------------------------

SNAPSHOT = {"sequence": 100,
            "bids": [["10.00", "1.5", "b1"], ["10.00", "0.5", "b2"], ["9.99", "2", "b3"]],
            "asks": [["10.01", "1", "a1"]]}


def _msg(seq: int, kind: str, **fields: str) -> dict:
    return {"type": kind, "sequence": seq, "product_id": "BTC-USD",
            "time": f"2018-07-13T20:47:{seq % 60:02d}.5Z", **fields}


def _write(tmp_path, messages: list, snapshot: dict = SNAPSHOT, lines: bool = True):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(snapshot))
    feed = tmp_path / "feed.jsonl.gz"
    with gzip.open(feed, "wt") as f:
        if lines:
            f.write("".join(line if isinstance(line, str) else json.dumps(line) + "\n"
                            for line in messages))
        else:
            json.dump(messages, f)
    return snap, feed


def _replay(feed: coinbase.CoinbaseFeed) -> Books:
    books = Books(1)
    events = books.process_all(feed.messages)
    assert not (events["kind"] == REJECTED).any()
    books.check_integrity()
    return books


def _queue(books: Books, feed, side: int, price: int) -> list[tuple[str, int]]:
    names = {v: k for k, v in feed.order_ids.items()}
    queue = books.level_queue(0, side, price)
    return [(names[i], q) for i, q in zip(queue["order_id"].tolist(), queue["qty"].tolist(),
                                          strict=True)]


def test_open_match_done_change(tmp_path):
    msgs = [
        _msg(99, "open", order_id="old", side="buy", price="1.00", remaining_size="1"),
        _msg(101, "received", order_id="t1", side="sell", order_type="market", size="2"),
        _msg(102, "match", maker_order_id="b1", taker_order_id="t1", side="buy",
             price="10.00", size="1.5"),
        _msg(103, "match", maker_order_id="b2", taker_order_id="t1", side="buy",
             price="10.00", size="0.25"),
        _msg(104, "done", order_id="b1", side="buy", reason="filled", price="10.00",
             remaining_size="0"),
        _msg(105, "done", order_id="t1", side="sell", reason="filled"),
        _msg(106, "open", order_id="b4", side="buy", price="10.00", remaining_size="3"),
        _msg(107, "change", order_id="b4", side="buy", price="10.00", old_size="3",
             new_size="2.5"),
        _msg(108, "change", order_id="b2", side="buy", price="10.00", old_size="0.25",
             new_size="0.75"),
        _msg(109, "done", order_id="b3", side="buy", reason="canceled", price="9.99",
             remaining_size="2"),
        _msg(110, "change", order_id="t9", side="buy", price="10.00", old_size="1",
             new_size="0.5"),
        _msg(111, "activate", order_id="s1", side="buy"),
    ]
    snap, path = _write(tmp_path, msgs, lines=False)
    feed = coinbase.read_feed(snap, path)
    assert feed.stale == 1
    assert feed.type_counts == {"received": 1, "match": 2, "done": 3, "open": 1,
                                "change": 3, "activate": 1}
    ops = feed.messages["op"][4:].tolist()
    assert ops == [EXECUTE, EXECUTE, LIMIT, REDUCE, REPLACE, CANCEL]
    assert feed.messages["qty"][4:].tolist() == [150_000_000, 25_000_000, 300_000_000,
                                                 50_000_000, 75_000_000, 200_000_000]
    books = _replay(feed)
    # b1 filled and gone; b4 reduced in place; b2 grew, so it went behind b4
    assert _queue(books, feed, BUY, 1000) == [("b4", 250_000_000), ("b2", 75_000_000)]
    assert books.level_queue(0, BUY, 999).size == 0
    assert books.live_orders(0) == 3


def test_snapshot_queue_order_is_kept(tmp_path):
    snap, path = _write(tmp_path, [])
    feed = coinbase.read_feed(snap, path)
    books = _replay(feed)
    assert _queue(books, feed, BUY, 1000) == [("b1", 150_000_000), ("b2", 50_000_000)]
    assert feed.last_sequence == 100


def test_json_lines_with_receive_time_prefix(tmp_path):
    line = json.dumps(_msg(101, "open", order_id="x", side="sell", price="10.02",
                           remaining_size="1"))
    snap, path = _write(tmp_path, [f"1531514831025000000 {line}\n", "\n"])
    feed = coinbase.read_feed(snap, path)
    assert feed.messages["price"][-1] == 1002


# ---------------------------------------------------------------------------------------
# malformed input: a clear error naming the line / element and the sequence
# ---------------------------------------------------------------------------------------


def _open(seq: int, **overrides: str) -> dict:
    fields = {"order_id": f"o{seq}", "side": "sell", "price": "10.05",
              "remaining_size": "1", **overrides}
    return _msg(seq, "open", **fields)


@pytest.mark.parametrize("messages, match", [
    ([_open(101), _open(103)], r"line 2 \(sequence 103\): sequence gap: expected 102 after 101"),
    ([_open(101), _open(102), _open(101)], r"line 3 \(sequence 101\): sequence out of order"),
    ([_open(101), "{not json\n"], r"line 2: bad JSON"),
    ([{"type": "open", "sequence": 101, "side": "buy"}], r"line 1 \(sequence 101\): missing "
     r"field 'time'"),
    ([_open(101, price="10.005")], r"line 1 \(sequence 101\): price 10.005 is not a multiple "
     r"of 0.01"),
    ([_open(101, remaining_size="-1")], r"'-1' is not a plain non-negative decimal"),
    ([_msg(101, "match", maker_order_id="zz", size="1", price="10.00")],
     r"sequence 101\): match against maker zz, which is not on the book"),
    ([_msg(101, "match", maker_order_id="a1", size="2", price="10.01")],
     r"does not fit maker a1"),
    ([_msg(101, "done", order_id="b3", reason="canceled", remaining_size="1")],
     r"done for b3 with remaining_size 1, but the book holds 200000000 lots"),
    ([_open(101, order_id="a1")], r"order a1 is already on the book"),
    ([_open(101), {**_open(102), "product_id": "ETH-USD"}], r"a second product 'ETH-USD'"),
    ([{**_open(101), "type": "bogus"}], r"unsupported order message type 'bogus'"),
])
def test_malformed_feed(tmp_path, messages, match):
    snap, path = _write(tmp_path, messages)
    with pytest.raises(ValueError, match=match):
        coinbase.read_feed(snap, path)


def test_json_array_errors_name_the_element(tmp_path):
    snap, path = _write(tmp_path, [_open(101), _open(102), _open(104)], lines=False)
    with pytest.raises(ValueError, match=r"element 2 \(sequence 104\): sequence gap"):
        coinbase.read_feed(snap, path)


def test_product_filter(tmp_path):
    snap, path = _write(tmp_path, [{**_open(7), "product_id": "ETH-USD"}, _open(101)])
    feed = coinbase.read_feed(snap, path, product_id="BTC-USD")
    assert feed.last_sequence == 101


def test_bad_snapshot(tmp_path):
    snap, path = _write(tmp_path, [], snapshot={**SNAPSHOT, "bids": [["10.001", "1", "x"]]})
    with pytest.raises(ValueError, match=r"snapshot bids\[0\]: price 10.001 is not a multiple"):
        coinbase.read_feed(snap, path)
    snap, path = _write(tmp_path, [], snapshot={**SNAPSHOT, "asks": [["10.01", "1", "b1"]]})
    with pytest.raises(ValueError, match=r"snapshot asks: order b1 is listed twice"):
        coinbase.read_feed(snap, path)
    (tmp_path / "bad.json").write_text('{"bids": []}')
    with pytest.raises(ValueError, match="not a level-3 snapshot"):
        coinbase.read_snapshot(tmp_path / "bad.json")
