"""tardis.dev CSV reader: the real file heads (incremental_book_L2, book_snapshot_25/5,
quotes) rebuild exactly the books they list; snapshot runs reset the book; hand-checked top
of book and integrity after every event of a hand-made file; clear errors naming the line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import crypto_file  # noqa: E402

from rltrader import CANCEL, LIMIT, REDUCE, REJECTED, REPLACE, Books  # noqa: E402
from rltrader.data import tardis  # noqa: E402
from rltrader.data._levels import depth_after  # noqa: E402

INCREMENTAL = crypto_file("tardis", "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
SNAPSHOT_25 = crypto_file("tardis", "binance-futures_book_snapshot_25_BTCUSDT.csv")
SNAPSHOT_5 = crypto_file("tardis", "binance-futures_book_snapshot_5_BTCUSDT.csv")
QUOTES = crypto_file("tardis", "huobi-dm-swap_quotes_BTC-USD.csv")


def _csv_levels(path, depth: int) -> tuple[list[int], np.ndarray]:
    """Timestamps (µs) and the ``(rows, 2, depth, 2)`` (bid/ask, level, price/amount) strings
    of a book_snapshot file, read without the reader."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    out = np.empty((len(rows), 2, depth, 2), dtype=object)
    for r, cells in enumerate(rows):
        for si, side in enumerate(("bids", "asks")):
            for k in range(depth):
                out[r, si, k] = (cells[header.index(f"{side}[{k}].price")],
                                 cells[header.index(f"{side}[{k}].amount")])
    return [int(c[2]) for c in rows], out


# ---------------------------------------------------------------------------------------
# the real file heads
# ---------------------------------------------------------------------------------------


def test_incremental_snapshot_block_is_the_book():
    feed = tardis.read_feed(INCREMENTAL)
    assert (feed.exchange, feed.symbol, feed.rows, feed.events, feed.resets) == (
        "deribit", "BTC-PERPETUAL", 15, 1, 1)
    assert (feed.tick_size.step, feed.lot_size.step) == ("0.5", "10")
    books = Books(1)
    events = books.process_all(feed.messages)
    assert not (events["kind"] == REJECTED).any()
    prices, qtys, counts = books.top_levels(16)
    rows = [line.split(",") for line in INCREMENTAL.read_text().splitlines()[1:]]
    assert all(r[4] == "true" and r[5] == "ask" for r in rows)
    assert prices[0, 1, :15].tolist() == [feed.tick_size.units(r[6]) for r in rows]
    assert qtys[0, 1, :15].tolist() == [feed.lot_size.units(r[7]) for r in rows]
    assert prices[0, 1, 0] == 12843 and qtys[0, 1, 0] == 1864  # 6421.5 / 0.5, 18640 / 10
    assert counts[0, 1, :15].tolist() == [1] * 15 and qtys[0, 1, 15] == 0
    assert (qtys[0, 0] == 0).all()
    assert (feed.messages["timestamp"] == 1585699200245000 * 1000).all()


@pytest.mark.parametrize("path, depth", [(SNAPSHOT_25, 25), (SNAPSHOT_5, 5)])
def test_book_snapshot_rows_rebuild_exactly(path, depth):
    feed = tardis.read_feed(path)
    assert feed.rows == feed.resets == 10
    lines = np.unique(feed.line)
    prices, qtys = depth_after(feed.messages, feed.line, np.arange(2, 12), depth + 1)
    _, want = _csv_levels(path, depth)
    units = np.vectorize(feed.tick_size.units), np.vectorize(feed.lot_size.units)
    assert (prices[:, :, :depth] == units[0](want[..., 0])).all()
    assert (qtys[:, :, :depth] == units[1](want[..., 1])).all()
    assert (qtys[:, :, depth] == 0).all()
    assert lines[0] == 2


def test_snapshot_5_is_the_top_of_snapshot_25_at_common_times():
    times_25, book_25 = _csv_levels(SNAPSHOT_25, 25)
    times_5, book_5 = _csv_levels(SNAPSHOT_5, 5)
    common = sorted(set(times_25) & set(times_5))
    assert len(common) == 4
    for t in common:
        assert (book_25[times_25.index(t), :, :5] == book_5[times_5.index(t)]).all()
    # and the reader agrees on both files at those times
    tops = []
    for path, times in ((SNAPSHOT_25, times_25), (SNAPSHOT_5, times_5)):
        feed = tardis.read_feed(path, tick_size="0.01", lot_size="0.001")
        at = np.array([times.index(t) + 2 for t in common])
        tops.append(depth_after(feed.messages, feed.line, at, 5))
    assert (tops[0][0] == tops[1][0]).all() and (tops[0][1] == tops[1][1]).all()


def test_quotes_rows_are_top_of_book():
    feed = tardis.read_feed(QUOTES)
    prices, qtys = depth_after(feed.messages, feed.line, np.arange(2, 12), 2)
    rows = [line.split(",") for line in QUOTES.read_text().splitlines()[1:]]
    units_p, units_q = feed.tick_size.units, feed.lot_size.units
    assert prices[:, 1, 0].tolist() == [units_p(r[5]) for r in rows]
    assert qtys[:, 1, 0].tolist() == [units_q(r[4]) for r in rows]
    assert prices[:, 0, 0].tolist() == [units_p(r[6]) for r in rows]
    assert qtys[:, 0, 0].tolist() == [units_q(r[7]) for r in rows]
    assert (qtys[:, :, 1] == 0).all()


# ---------------------------------------------------------------------------------------
# a hand-made incremental file
# ---------------------------------------------------------------------------------------

HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"


def _row(ts: int, snapshot: bool, side: str, price: str, amount: str,
         symbol: str = "BTC-PERPETUAL") -> str:
    return f"deribit,{symbol},{ts},{ts + 7},{str(snapshot).lower()},{side},{price},{amount}\n"


ROWS = [
    _row(1, True, "bid", "100.0", "5"), _row(1, True, "bid", "99.5", "3"),
    _row(1, True, "ask", "100.5", "4"),
    _row(2, False, "bid", "100.0", "2"),   # reduce
    _row(3, False, "ask", "100.5", "0"),   # delete the best ask
    _row(3, False, "ask", "101.0", "6"),   # ... and add one further out
    _row(4, False, "bid", "99.5", "8"),    # increase: replace
    _row(4, False, "bid", "99.0", "0"),    # delete an absent level: unchanged
    _row(5, True, "bid", "98.0", "1"),     # a new snapshot replaces everything
    _row(5, True, "ask", "98.5", "1"),
    _row(6, False, "ask", "98.5", "0"),
]
# best (bid, bid amount, ask, ask amount) after each event, in ticks of 0.5 and lots of 1
EXPECTED_TOPS = [(200, 5, 201, 4), (200, 2, 201, 4), (200, 2, 202, 6), (200, 2, 202, 6),
                 (196, 1, 197, 1), (196, 1, 0, 0)]


def _write(tmp_path, rows, name="book.csv.gz", header=HEADER):
    path = tmp_path / name
    with gzip.open(path, "wt") as f:
        f.write(header + "".join(rows))
    return path


def test_hand_made_file_top_of_book_and_integrity_after_every_event(tmp_path):
    feed = tardis.read_feed(_write(tmp_path, ROWS), tick_size="0.5", lot_size="1")
    assert (feed.events, feed.resets, feed.unchanged) == (6, 2, 1)
    assert feed.messages["op"].tolist() == [LIMIT, LIMIT, LIMIT, REDUCE, CANCEL, LIMIT,
                                            REPLACE, CANCEL, CANCEL, CANCEL, LIMIT, LIMIT,
                                            CANCEL]
    books = Books(1)
    events_lines = np.unique(feed.line)
    assert events_lines.tolist() == [2, 5, 6, 8, 10, 12]
    tops = []
    for line in events_lines:
        events = books.process_all(feed.messages[feed.line == line])
        assert not (events["kind"] == REJECTED).any()
        books.check_integrity()
        prices, qtys, _ = books.top_levels(1)
        tops.append((int(prices[0, 0, 0]), int(qtys[0, 0, 0]), int(prices[0, 1, 0]),
                     int(qtys[0, 1, 0])))
    assert tops == EXPECTED_TOPS
    assert books.live_orders(0) == 1


def test_several_files_and_symbol_choice(tmp_path):
    first = _write(tmp_path, ROWS[:3] + [_row(2, False, "bid", "1", "1", symbol="ETH")],
                   "a.csv")
    second = _write(tmp_path, ROWS[3:], "b.csv")
    feed = tardis.read_feed([first, second], symbol="BTC-PERPETUAL")
    assert feed.rows == len(ROWS)
    with pytest.raises(ValueError, match=r"a.csv: line 5: a second symbol 'ETH'"):
        tardis.read_feed([first, second])


@pytest.mark.parametrize("rows, match", [
    ([_row(1, True, "bid", "100.25", "5")], r"line 2: price 100.25 is not a multiple of 0.5"),
    ([_row(1, True, "buy", "100.0", "5")], r"line 2: side is 'buy', not bid/ask"),
    ([_row(1, True, "bid", "100.0", "5").replace("true", "yes")],
     r"line 2: is_snapshot is 'yes', not true/false"),
    ([_row(1, True, "bid", "100.0", "5"), "deribit,BTC-PERPETUAL,2,3,false,bid\n"],
     r"line 3: 6 columns, expected 8"),
    ([_row(1, True, "bid", "100.0", "-5")], r"line 2: '-5' is not a plain non-negative"),
    ([_row(1, True, "bid", "100.0", "5").replace(",1,8,", ",x,8,")], r"line 2: invalid literal"),
])
def test_malformed_rows(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        tardis.read_feed(_write(tmp_path, rows), tick_size="0.5", lot_size="1")


def test_not_a_tardis_file(tmp_path):
    with pytest.raises(ValueError, match="not a tardis.dev CSV header"):
        tardis.read_feed(_write(tmp_path, ["1,2\n"], header="a,b\n"))
    with pytest.raises(ValueError, match="neither incremental_book_L2, book_snapshot nor quotes"):
        tardis.read_feed(_write(tmp_path, ["x,y,1,2\n"],
                                header="exchange,symbol,timestamp,local_timestamp\n"))
