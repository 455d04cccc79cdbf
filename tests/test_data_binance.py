"""Binance depth-diff reader: the real futures and spot captures rebuild a book whose best
bid/ask equals every bookTicker at a matching update id; update-id sequencing rules; clear
errors on malformed input."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import crypto_file  # noqa: E402

from rltrader import BUY, CANCEL, LIMIT, REDUCE, REJECTED, REPLACE, SELL, Books  # noqa: E402
from rltrader.data import binance  # noqa: E402
from rltrader.data._levels import level_order_id  # noqa: E402

FUTURES = crypto_file("binance", "hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz")
SPOT = crypto_file("binance", "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz")
WINDOW = 1 << 18


@pytest.fixture(scope="module")
def futures() -> binance.BinanceFeed:
    return binance.read_feed(FUTURES)


@pytest.fixture(scope="module")
def spot() -> binance.BinanceFeed:
    return binance.read_feed(SPOT)


# ---------------------------------------------------------------------------------------
# the real captures
# ---------------------------------------------------------------------------------------


def test_futures_counts_and_grid(futures):
    assert futures.futures and futures.symbol == "BTCUSDT"
    assert futures.snapshot_update_id == 5123107852948
    assert futures.diffs + futures.stale == 6551 and futures.stale == 4
    assert futures.last_update_id == futures.diff_update_ids[-1] == 5123135475514
    assert (futures.tick_size.step, futures.lot_size.step) == ("0.1", "0.001")
    assert len(futures.trades) == 21313 and len(futures.tickers) == 66089
    assert (np.diff(futures.update_id) >= 0).all()


def test_spot_counts_and_grid(spot):
    assert not spot.futures
    assert spot.snapshot_update_id == 50093239218
    assert spot.diffs + spot.stale == 3451 and spot.stale == 2
    assert (spot.tick_size.step, spot.lot_size.step) == ("0.01", "0.000001")
    assert len(spot.trades) == 9757 and len(spot.tickers) == 28040


@pytest.mark.parametrize("name, checked", [("futures", 629), ("spot", 564)])
def test_best_bid_ask_equal_every_matching_book_ticker(request, name, checked):
    feed = request.getfixturevalue(name)
    check = binance.compare_tickers(feed, window=WINDOW)
    assert check.checked == checked
    assert check.mismatched.size == 0


def test_compare_tickers_detects_a_difference(spot):
    tickers = spot.tickers.copy()
    defined = np.isin(tickers["update_id"], spot.diff_update_ids)
    tickers["ask_qty"][np.flatnonzero(defined)[10]] += 1
    tampered = binance.BinanceFeed(**{**spot.__dict__, "tickers": tickers})
    assert binance.compare_tickers(tampered, window=WINDOW).mismatched.size == 1


def test_first_messages_by_hand(spot):
    # snapshot bids[0] = ["61837.63000000","3.78826000"]: a LIMIT on the level's own id
    first = spot.messages[0]
    assert (first["op"], first["side"], first["price"], first["qty"]) == (
        LIMIT, BUY, 6183763, 3788260)
    assert first["order_id"] == level_order_id(BUY, 6183763)
    assert spot.update_id[0] == spot.snapshot_update_id
    # the first trade: t=3735683259 p=61837.63 q=0.02 T=1723161255342 m=true (seller took)
    assert spot.trades[0].tolist() == (1723161255342000000, 3735683259, 6183763, 20000,
                                       SELL)


def test_final_book_equals_the_level_dicts(spot):
    books = Books(1, window=WINDOW)
    events = books.process_all(spot.messages)
    assert not (events["kind"] == REJECTED).any()
    books.check_integrity()
    # rebuild the levels independently, in plain Python, from the raw JSON; the first
    # applicable diffs arrived before the snapshot, so diffs are buffered
    levels = {BUY: {}, SELL: {}}
    diffs = []
    for line in gzip.open(SPOT, "rt"):
        obj = json.loads(line.split(" ", 1)[1])
        data = obj.get("data", obj)
        if "lastUpdateId" in data:
            for side, key in ((BUY, "bids"), (SELL, "asks")):
                levels[side] = {Decimal(p): Decimal(q) for p, q in data[key]}
            snapshot_id = data["lastUpdateId"]
        elif data.get("e") == "depthUpdate":
            diffs.append(data)
    for data in diffs:
        if data["u"] <= snapshot_id:
            continue
        for side, key in ((BUY, "b"), (SELL, "a")):
            for p, q in data[key]:
                if Decimal(q) == 0:
                    levels[side].pop(Decimal(p), None)
                else:
                    levels[side][Decimal(p)] = Decimal(q)
    assert snapshot_id == spot.snapshot_update_id
    tick, lot = Decimal(spot.tick_size.step), Decimal(spot.lot_size.step)
    n = max(len(levels[BUY]), len(levels[SELL]))
    prices, qtys, _ = books.top_levels(n)
    for si, side in enumerate((BUY, SELL)):
        want = sorted(((int(p / tick), int(q / lot)) for p, q in levels[side].items()),
                      reverse=side == BUY)
        got = [(p, q) for p, q in zip(prices[0, si].tolist(), qtys[0, si].tolist(),
                                      strict=True) if q]
        assert got == want
    assert books.live_orders(0) == len(levels[BUY]) + len(levels[SELL])


# ---------------------------------------------------------------------------------------
# level mapping and sequencing on small hand-made captures
# ---------------------------------------------------------------------------------------

SPOT_SNAPSHOT = {"lastUpdateId": 100, "bids": [["10.00", "1.0"], ["9.99", "2.0"]],
                 "asks": [["10.01", "1.5"]]}


def _diff(first: int, last: int, bids=(), asks=(), previous: int | None = None) -> dict:
    data = {"e": "depthUpdate", "E": 1723161255000 + last, "s": "BTCUSDT", "U": first,
            "u": last, "b": [list(b) for b in bids], "a": [list(a) for a in asks]}
    if previous is not None:
        data["pu"] = previous
    return {"stream": "btcusdt@depth@100ms", "data": data}


def _capture(tmp_path, lines: list, snapshot: dict | None = SPOT_SNAPSHOT, at: int = 0):
    rows = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    if snapshot is not None:
        rows.insert(at, json.dumps(snapshot))
    path = tmp_path / "capture.gz"
    with gzip.open(path, "wt") as f:
        f.write("".join(f"{1_000 + i} {row}\n" for i, row in enumerate(rows)))
    return path


def test_spot_sequencing_and_level_ops(tmp_path):
    lines = [
        _diff(90, 100, bids=[("9.00", "1")]),  # u <= lastUpdateId: dropped
        _diff(95, 103, bids=[("10.00", "0.4"), ("9.98", "1")]),  # straddles 101
        _diff(104, 104, bids=[("9.99", "0")], asks=[("10.01", "2.5"), ("10.01", "3.0")]),
        _diff(105, 106, asks=[("10.05", "0")]),  # deleting an absent level: nothing
        {"stream": "btcusdt@bookTicker", "data": {"u": 104, "s": "BTCUSDT", "b": "10.00",
                                                 "B": "0.4", "a": "10.01", "A": "3.0"}},
        {"result": None, "id": 1},
    ]
    feed = binance.read_feed(_capture(tmp_path, lines, at=2), tick_size="0.01",
                             lot_size="0.1")
    assert (feed.stale, feed.diffs, feed.unchanged) == (1, 3, 1)
    assert feed.messages["op"][3:].tolist() == [REDUCE, LIMIT, CANCEL, REPLACE]
    assert feed.messages["qty"][3:].tolist() == [6, 10, 20, 30]
    assert feed.update_id.tolist() == [100, 100, 100, 103, 103, 104, 104]
    check = binance.compare_tickers(feed)
    assert (check.checked, check.mismatched.size) == (1, 0)


def test_decreases_come_before_increases_within_a_diff(tmp_path):
    # the ask at 10.01 leaves and a bid at 10.01 arrives in the same diff: applied in JSON
    # order the bid would cross the ask and trade
    lines = [_diff(101, 101, bids=[("10.01", "1")], asks=[("10.01", "0")])]
    feed = binance.read_feed(_capture(tmp_path, lines), tick_size="0.01", lot_size="0.1")
    assert feed.messages["op"][3:].tolist() == [CANCEL, LIMIT]
    books = Books(1)
    events = books.process_all(feed.messages)
    assert set(events["kind"].tolist()) == {1, 4}  # accepted and cancelled, no fill
    assert books.best_bid() == 1001 and books.best_ask() > 1 << 39


def test_futures_sequencing(tmp_path):
    snapshot = {"lastUpdateId": 100, "E": 1, "T": 1, "bids": [["10.00", "1.0"]],
                "asks": [["10.01", "1.5"]]}
    lines = [_diff(90, 99, previous=80), _diff(95, 100, bids=[("10.00", "2")], previous=94),
             _diff(120, 130, bids=[("10.00", "3")], previous=100)]
    feed = binance.read_feed(_capture(tmp_path, lines, snapshot), tick_size="0.01",
                             lot_size="0.1")
    assert feed.futures and (feed.stale, feed.diffs) == (1, 2)
    gap = lines[:2] + [_diff(120, 130, previous=101)]
    with pytest.raises(ValueError, match=r"line 4: update id gap: pu=101 but the previous "
                       r"diff ended at u=100"):
        binance.read_feed(_capture(tmp_path, gap, snapshot))


def test_snapshot_in_a_separate_file(tmp_path):
    snap = tmp_path / "depth.json"
    snap.write_text(json.dumps(SPOT_SNAPSHOT))
    feed = binance.read_feed(_capture(tmp_path, [_diff(101, 101)], None), snapshot=snap)
    assert feed.diffs == 1 and feed.messages.size == 3


def test_real_capture_with_a_missing_diff_raises(tmp_path):
    lines = gzip.open(SPOT, "rt").read().splitlines()[:2000]
    diffs = [i for i, line in enumerate(lines) if "@depth" in line]
    removed = diffs[5]
    path = tmp_path / "gap.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines[:removed] + lines[removed + 1:]) + "\n")
    with pytest.raises(ValueError, match=rf"line {diffs[6]}: update id gap: U=\d+ but the "
                       r"previous diff ended at u=\d+"):
        binance.read_feed(path)


@pytest.mark.parametrize("lines, match", [
    ([_diff(102, 103)], r"line 2: first diff after the snapshot does not straddle it"),
    ([_diff(101, 101), _diff(103, 104)], r"line 3: update id gap: U=103 but the previous "
     r"diff ended at u=101 \(expected U=102\)"),
    ([_diff(101, 101), "{oops"], r"line 3: bad JSON"),
    ([{"data": {"e": "depthUpdate", "E": 1, "U": 101, "b": [], "a": []}}],
     r"line 2: missing field 'u'"),
    ([_diff(101, 101, bids=[("10.005", "1")])], r"line 2: price 10.005 is not a multiple "
     r"of 0.01"),
    ([SPOT_SNAPSHOT], r"line 2: a second depth snapshot \(the first is at .*line 1\)"),
    ([{"data": {"e": "markPriceUpdate"}}], r"line 2: unsupported event"),
    ([_diff(101, 101), {"data": {**_diff(102, 102)["data"], "s": "ETHUSDT"}}],
     r"line 3: a second symbol 'ETHUSDT'"),
])
def test_malformed_capture(tmp_path, lines, match):
    with pytest.raises(ValueError, match=match):
        binance.read_feed(_capture(tmp_path, lines), tick_size="0.01", lot_size="0.1")


def test_no_snapshot(tmp_path):
    with pytest.raises(ValueError, match="no depth snapshot"):
        binance.read_feed(_capture(tmp_path, [_diff(101, 101)], None))
