"""The generic reader (rltrader.data.generic): a column mapping (TOML round trip,
validation), exact units, sides and events, bad rows named by line; L3 rows as the LOBSTER
reader makes them (a LOBSTER file rewritten as generic CSV gives the same messages and
books), crossing incoming orders held; L2 rows as the tardis reader makes them; the real
Bitstamp example replayed, in HybridReplay and in the env; the CLI; Parquet."""

from __future__ import annotations

import gzip
import sys
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import TEST_DATA, crypto_file  # noqa: E402

from rltrader import (  # noqa: E402
    CANCEL,
    EXECUTE,
    FILL,
    LIMIT,
    REDUCE,
    REJECTED,
    REPLACE,
    Books,
)
from rltrader.core.messages import empty_messages  # noqa: E402
from rltrader.data import generic, lobster, tardis  # noqa: E402
from rltrader.data._io import FormatError  # noqa: E402
from rltrader.data._levels import levels_after  # noqa: E402
from rltrader.data.generic import ColumnMapping, time_parser  # noqa: E402
from rltrader.data.hybrid import AGENT_ID_BASE, HybridReplay  # noqa: E402
from rltrader.data.samples import sample_path  # noqa: E402

BITSTAMP = TEST_DATA / "bitstamp" / "bitstamp_btcusd_2015-05-01_live_orders_first5000.csv.gz"
BITSTAMP_MAPPING = TEST_DATA / "bitstamp" / "bitstamp_live_orders.toml"
LOBSTER_HOUR = "lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv.gz"

#: A small L3 layout: ``ts,kind,id,side,px,qty`` with b/a sides and one-letter events.
L3 = ColumnMapping(kind="l3", timestamp="ts", event="kind", order_id="id", side="side",
                   price="px", size="qty", time_unit="us", buy="b", sell="a",
                   created="C", changed="M", deleted="D", traded="T", ignored=("H",),
                   tick_size="0.5", lot_size="0.001")


def _write(tmp_path, text: str, name: str = "feed.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _l3(tmp_path, rows: str, **changes) -> generic.GenericFeed:
    return generic.load(_write(tmp_path, "ts,kind,id,side,px,qty\n" + rows),
                        replace(L3, **changes) if changes else L3)


def _ops(feed: generic.GenericFeed) -> list[tuple[int, int, int, int, int]]:
    m = feed.messages
    return list(zip(m["op"].tolist(), m["order_id"].tolist(), m["side"].tolist(),
                    m["price"].tolist(), m["qty"].tolist(), strict=True))


# ---------------------------------------------------------------------------------------
# the mapping
# ---------------------------------------------------------------------------------------


def test_mapping_round_trips_through_toml(tmp_path):
    shipped = ColumnMapping.from_toml(BITSTAMP_MAPPING)
    assert (shipped.buy, shipped.sell, shipped.ignored) == (("0",), ("1",), ("trade",))
    assert (shipped.tick_size, shipped.lot_size, shipped.traded) == ("0.01", "0.00000001", ())
    for mapping in (shipped, L3, ColumnMapping(
            kind="l2", timestamp=0, side=1, price=2, size=3, header=False, delimiter=";",
            time_unit="%Y-%m-%d %H:%M:%S.%f", buy=(1, "B"), sell=-1, file_format="csv")):
        path = _write(tmp_path, mapping.to_toml(), "m.toml")
        assert ColumnMapping.from_toml(path) == mapping
        assert ColumnMapping.from_dict(mapping.to_dict()) == mapping


def test_steps_given_as_numbers_are_their_decimal_text():
    m = replace(L3, tick_size=0.01, lot_size=1e-05)
    assert (m.tick_size, m.lot_size) == ("0.01", "0.00001")
    assert replace(L3, tick_size=100).tick_size == "100"


@pytest.mark.parametrize("change, problem", [
    (dict(kind="l4"), "kind must be one of"),
    (dict(order_id=None), "columns.order_id is required"),
    (dict(tick_size="0"), "tick_size must be a positive number"),
    (dict(lot_size="-1"), "lot_size must be a positive number"),
    (dict(sell=("b",)), "'b' means both buy and sell"),
    (dict(traded=("C",)), "'C' means both created and traded"),
    (dict(time_unit="minutes"), "time_unit must be one of"),
    (dict(order_ids="uuid"), "order_ids must be one of"),
    (dict(header=False), "without a header, columns are positions"),
])
def test_bad_mappings_are_refused(change, problem):
    with pytest.raises(ValueError, match=problem):
        replace(L3, **change)


def test_bad_mapping_files_name_the_file_and_key(tmp_path):
    path = _write(tmp_path, 'kind = "l2"\nspeed = 3\n', "m.toml")
    with pytest.raises(ValueError, match=rf"{path}: unknown key 'speed'"):
        ColumnMapping.from_toml(path)
    path = _write(tmp_path, 'kind = "l2"\n[columns]\ntimestamp = "t"\n', "m.toml")
    with pytest.raises(ValueError, match="missing side, price, size"):
        ColumnMapping.from_toml(path)
    path = _write(tmp_path, 'kind = "l2"\n[columns]\nwhen = "t"\n', "m.toml")
    with pytest.raises(ValueError, match="unknown key columns.when"):
        ColumnMapping.from_toml(path)


# ---------------------------------------------------------------------------------------
# units and encodings
# ---------------------------------------------------------------------------------------


def test_time_units_are_exact():
    assert time_parser("s")("34200.004241176") == 34_200_004_241_176
    assert time_parser("s")(34200) == 34_200_000_000_000
    assert time_parser("ms")("1430438404518") == 1_430_438_404_518_000_000
    assert time_parser("us")("1585699200245000.5") == 1_585_699_200_245_000_500
    assert time_parser("ns")("17") == 17
    assert time_parser("s")(0.5) == 500_000_000  # a Parquet float, by its decimal text
    iso = time_parser("iso")
    assert iso("2018-07-13T20:47:11.025000123Z") == 1_531_514_831_025_000_123
    assert iso("2018-07-13T22:47:11.025+02:00") == 1_531_514_831_025_000_000
    assert iso("2018-07-13 20:47:11") == 1_531_514_831_000_000_000
    assert time_parser("%d/%m/%Y %H:%M:%S.%f")("13/07/2018 20:47:11.025") == \
        1_531_514_831_025_000_000
    for unit, cell, problem in (("ns", "1.5", "finer than 1 ns"),
                                ("s", "-3", "not a non-negative number"),
                                ("iso", "yesterday", "not ISO 8601"),
                                ("%H:%M", "25:00", "does not match")):
        with pytest.raises(ValueError, match=problem):
            time_parser(unit)(cell)


def test_sides_and_events_by_their_codes(tmp_path):
    mapping = replace(L3, buy=1, sell=-1, created=(1, "new"), deleted=3, changed=2,
                      traded=4, ignored=(5, 6, 7))
    feed = _l3(tmp_path, "1,1,7,1,10,1\n2,new,8,-1,11,2\n3,5,0,x,0,0\n4,3,7,1,10,1\n",
               **{f: getattr(mapping, f) for f in ("buy", "sell", "created", "deleted",
                                                     "changed", "traded", "ignored")})
    assert _ops(feed) == [(LIMIT, 7, 1, 20, 1000), (LIMIT, 8, -1, 22, 2000),
                          (CANCEL, 7, 1, 20, 1000)]
    assert feed.event_counts == dict(created=2, changed=0, deleted=1, traded=0, ignored=1)
    assert feed.messages["timestamp"].tolist() == [1000, 2000, 4000]
    assert feed.row.tolist() == [2, 3, 5]
    assert (feed.messages["owner"] == -1).all() and (feed.messages["tif"] == 0).all()


def test_prices_and_sizes_are_whole_ticks_and_lots(tmp_path):
    feed = _l3(tmp_path, "1,C,7,b,100.50,0.250\n")
    assert _ops(feed) == [(LIMIT, 7, 1, 201, 250)]
    with pytest.raises(FormatError, match=r"feed.csv: line 2: price 100.25 is not a multiple "
                                          r"of 0.5"):
        _l3(tmp_path, "1,C,7,b,100.25,1\n")
    with pytest.raises(FormatError, match=r"line 3: size 0.0005 is not a multiple of 0.001"):
        _l3(tmp_path, "1,C,7,b,100,1\n2,C,8,b,100,0.0005\n")


@pytest.mark.parametrize("rows, problem", [
    ("1,C,7,b,100\n", "line 2: 5 columns, expected 6"),
    ("1,C,7,x,100,1\n", "line 2: side 'x' is neither buy"),
    ("1,Z,7,b,100,1\n", "line 2: event 'Z' is none of the mapping's events"),
    ("5,C,7,b,100,1\n4,C,8,b,100,1\n", "line 3: timestamp '4' is before the previous row's"),
    ("1,C,7,b,100,1\n2,C,7,b,100,1\n", "line 3: order 7 is created again while live"),
    ("1,C,7,b,100,0\n", "line 2: a created order of size 0"),
    ("1,C,7,b,0,1\n", "line 2: price 0"),
    ("1,C,x7,b,100,1\n", "line 2: order id 'x7' is not an integer"),
    ("1,C,7,b,100,1\n2,T,7,b,100,2\n", "line 3: traded 2000 lots of order 7, which holds 1000"),
    ("1,C,7,b,100,1\n2,D,7,a,100,1\n", "line 3: side 'a', but order 7 was created on the "
                                       "other side"),
    ("1,C,7,b,1e400,1\n", "line 2: price '1e400' is not a non-negative number"),
])
def test_bad_rows_name_file_line_and_problem(tmp_path, rows, problem):
    with pytest.raises(FormatError, match=problem) as info:
        _l3(tmp_path, rows)
    assert str(info.value).startswith(f"{tmp_path / 'feed.csv'}: line ")


def test_unknown_orders_are_dropped_and_listed_or_refused(tmp_path):
    feed = _l3(tmp_path, "1,D,9,a,100,1\n2,C,7,b,99,1\n3,M,9,a,100,1\n")
    assert _ops(feed) == [(LIMIT, 7, 1, 198, 1000)] and feed.unknown_rows.tolist() == [2, 4]
    with pytest.raises(FormatError, match="line 2: deleted of order 9, which no earlier row"):
        generic.load(tmp_path / "feed.csv", L3, unknown="error")


def test_string_ids_are_numbered_by_first_appearance(tmp_path):
    feed = _l3(tmp_path, "1,C,b-9f,b,99,1\n2,C,a-01,a,100,1\n3,D,b-9f,b,99,1\n",
               order_ids="string")
    assert _ops(feed) == [(LIMIT, 1, 1, 198, 1000), (LIMIT, 2, -1, 200, 1000),
                          (CANCEL, 1, 1, 198, 1000)]
    assert feed.order_ids == {"b-9f": 1, "a-01": 2}


# ---------------------------------------------------------------------------------------
# L3 semantics
# ---------------------------------------------------------------------------------------


def test_changes_reduce_in_place_or_replace(tmp_path):
    feed = _l3(tmp_path, "1,C,7,b,99,5\n2,M,7,b,99,3\n3,M,7,b,99,3\n4,M,7,b,99,4\n"
                         "5,M,7,b,98.5,4\n6,T,7,b,98.5,1\n7,M,7,b,98.5,0\n")
    assert _ops(feed) == [(LIMIT, 7, 1, 198, 5000), (REDUCE, 7, 1, 198, 2000),
                          (REPLACE, 7, 1, 198, 4000), (REPLACE, 7, 1, 197, 4000),
                          (EXECUTE, 7, 1, 197, 1000), (CANCEL, 7, 1, 197, 3000)]
    assert feed.unchanged == 1
    events = Books(1).process_all(feed.messages)
    assert not (events["kind"] == REJECTED).any()


def test_an_incoming_order_that_crosses_is_held_until_the_book_uncrosses(tmp_path):
    """Bitstamp logs an incoming order with its full size, then both orders' fills as
    changes: replayed literally, the core would trade it a second time."""
    rows = ("1,C,1,a,100,2\n"       # resting ask 2 @ 100
            "2,C,2,b,100,3\n"       # incoming bid 3 @ 100: crosses, held
            "3,M,2,b,100,1\n"       # its fill: 1 left (held, no message)
            "4,D,1,a,100,0\n"       # the ask filled away: the bid rests now, 1 lot
            "5,C,3,a,101,1\n"
            "6,C,4,b,101,1\n"       # crosses the ask 3
            "7,D,4,b,101,0\n"       # filled away while held: never sent
            "8,D,3,a,101,0\n")
    feed = _l3(tmp_path, rows, lot_size="1")
    assert _ops(feed) == [(LIMIT, 1, -1, 200, 2), (CANCEL, 1, -1, 200, 2),
                          (LIMIT, 2, 1, 200, 1), (LIMIT, 3, -1, 202, 1),
                          (CANCEL, 3, -1, 202, 1)]
    assert feed.row.tolist() == [2, 5, 5, 6, 9]
    assert (feed.held_orders, feed.still_held) == (2, 0)
    events = Books(1).process_all(feed.messages)
    assert not np.isin(events["kind"], (FILL, REJECTED)).any()


def _lobster_as_generic_csv(raw: np.ndarray, path) -> None:
    """LOBSTER rows as a generic CSV with a header; a partial cancel (type 2, size =
    lots removed) becomes a change to the order's new size, as most venues log it."""
    left: dict[int, int] = {}
    lines = ["time,type,order_id,size,price,direction"]
    for ts, kind, order_id, size, price, direction in raw.tolist():
        shown = size
        if kind == 1:
            left[order_id] = size
        elif kind == 2 and order_id in left:
            left[order_id] -= size
            shown = left[order_id]
        elif kind == 4 and order_id in left:
            left[order_id] -= size
        elif kind == 3:
            left.pop(order_id, None)
        lines.append(f"{ts // 10**9}.{ts % 10**9:09d},{kind},{order_id},{shown},{price},"
                     f"{direction}")
    path.write_text("\n".join(lines) + "\n")


LOBSTER_MAPPING = ColumnMapping(
    kind="l3", timestamp="time", time_unit="s", event="type", order_id="order_id",
    side="direction", price="price", size="size", buy=1, sell=-1, created=1, changed=2,
    deleted=3, traded=4, ignored=(5, 6, 7), tick_size="100", lot_size="1")


def test_a_lobster_file_rewritten_as_generic_csv_gives_the_same_messages_and_books(tmp_path):
    path = sample_path(LOBSTER_HOUR)
    raw = lobster.read_raw(path)
    _lobster_as_generic_csv(raw, tmp_path / "aapl.csv")
    feed = generic.load(tmp_path / "aapl.csv", LOBSTER_MAPPING)
    want = lobster.read_messages(path)
    assert feed.messages.shape == want.messages.shape == (89_712,)
    assert (feed.messages == want.messages).all()
    assert (feed.row - 2 == want.source_row).all()  # line 2 is LOBSTER's row 0
    assert (feed.unknown_rows - 2 == want.unknown_row).all()
    assert feed.event_counts == dict(created=44_256, changed=469, deleted=41_004,
                                     traded=4_067, ignored=2_201)
    ends = np.arange(0, feed.messages.shape[0] + 1, 97)
    got = levels_after(Books(1, capacity=1 << 16), feed.messages, ends, 10)
    expected = levels_after(Books(1, capacity=1 << 16), want.messages, ends, 10)
    assert (got[0] == expected[0]).all() and (got[1] == expected[1]).all()


# ---------------------------------------------------------------------------------------
# L2
# ---------------------------------------------------------------------------------------


TARDIS_L2 = ColumnMapping(kind="l2", timestamp="timestamp", time_unit="us", side="side",
                          price="price", size="amount", buy="bid", sell="ask",
                          tick_size="0.5", lot_size="10")


def test_l2_rows_give_the_tardis_readers_messages():
    path = crypto_file("tardis", "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    feed = generic.load(path, TARDIS_L2)
    want = tardis.read_feed(path, tick_size="0.5", lot_size="10")
    assert (feed.messages == want.messages).all() and feed.messages.shape == (15,)
    assert (feed.row == want.line).all()


def test_l2_levels_set_deleted_and_one_event_per_timestamp(tmp_path):
    mapping = replace(TARDIS_L2, tick_size="1", lot_size="1")
    path = _write(tmp_path, "timestamp,side,price,amount\n1,bid,99,5\n1,ask,101,5\n"
                            "2,bid,99,3\n2,bid,99,7\n3,ask,101,0\n3,ask,100,4\n")
    feed = generic.load(path, mapping)
    level = generic.LEVEL_ID_BASE
    assert _ops(feed) == [(LIMIT, level + 198, 1, 99, 5), (LIMIT, level + 203, -1, 101, 5),
                          (REPLACE, level + 198, 1, 99, 7), (CANCEL, level + 203, -1, 101, 5),
                          (LIMIT, level + 201, -1, 100, 4)]
    assert feed.row.tolist() == [2, 2, 4, 6, 6]
    with pytest.raises(FormatError, match="line 2: size 'x' is not a non-negative number"):
        generic.load(_write(tmp_path, "timestamp,side,price,amount\n1,bid,99,x\n"), mapping)


# ---------------------------------------------------------------------------------------
# the Bitstamp example: replay, hybrid replay, env, CLI
# ---------------------------------------------------------------------------------------


def _literal_book(path) -> dict[tuple[int, int], int]:
    """The live orders the log describes at its end, read without the reader:
    ``(side, price ticks) -> lots`` over the orders created in the file."""
    orders: dict[str, tuple[int, int, int]] = {}
    for line in gzip.open(path, "rt").read().splitlines()[1:]:
        _, event, order_id, side, price, amount, _ = line.split(",")
        ticks = round(float(price) * 100)
        lots = int(amount.replace(".", ""))
        if event == "order_created":
            orders[order_id] = (1 if side == "0" else -1, ticks, lots)
        elif event == "order_changed" and order_id in orders:
            orders[order_id] = (orders[order_id][0], ticks, lots)
        elif event == "order_deleted":
            orders.pop(order_id, None)
    book: dict[tuple[int, int], int] = {}
    for side, ticks, lots in orders.values():
        book[side, ticks] = book.get((side, ticks), 0) + lots
    return book


def test_the_bitstamp_log_replays_to_the_book_it_describes():
    feed = generic.load(BITSTAMP, BITSTAMP_MAPPING)
    assert feed.rows == 5_114 and feed.messages.shape == (4_758,)
    assert feed.event_counts == dict(created=2_434, changed=128, deleted=2_438, traded=0,
                                     ignored=114)
    assert (len(feed.unknown_rows), feed.held_orders, feed.still_held) == (112, 69, 0)
    books = Books(1)
    events = books.process_all(feed.messages)
    assert not np.isin(events["kind"], (FILL, REJECTED)).any()
    books.check_integrity()
    prices, qtys, _ = books.top_levels(books.window)
    got = {(1 - 2 * s, int(p)): int(q) for s in (0, 1)
           for p, q in zip(prices[0, s], qtys[0, s], strict=True) if q}
    assert got == _literal_book(BITSTAMP)
    assert (books.best_bid(0), books.best_ask(0)) == (23484, 23492)


def test_the_bitstamp_log_drives_a_hybrid_replay():
    messages = generic.read(BITSTAMP, BITSTAMP_MAPPING)
    alone = HybridReplay(messages, n_agents=1)
    alone.step(until_ts=int(messages["timestamp"][-1]))
    assert alone.done and alone.top_of_book() == (23484, 23492)
    replay = HybridReplay(messages, n_agents=1)
    replay.step(n_messages=2_000)
    bid, ask = replay.top_of_book()
    buy = empty_messages(1)
    buy[0] = (replay.timestamp, AGENT_ID_BASE + 1, 0, ask, 0, 10**8, 0, 0, LIMIT, 1, 0)
    events = replay.step(until_ts=replay.timestamp, agent_messages=buy)
    assert (events["kind"] == FILL).any()
    assert replay.accounts[0]["position"] > 0
    replay.step(until_ts=int(messages["timestamp"][-1]))
    assert replay.done


def test_the_bitstamp_log_is_an_env_background():
    pytest.importorskip("rltrader._env")
    from rltrader.envs import BatchedMarketEnv, EnvConfig

    config = EnvConfig(horizon=100, warmup_steps=5, replay_step_ns=1_000_000_000)
    source = HybridReplay(generic.read(BITSTAMP, BITSTAMP_MAPPING), n_agents=2)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=2, seed=0, source=source)
    env.reset()
    start = source.timestamp
    buy, rest = 2 * 4 + 1, 2                            # market buy; limit buy at the touch
    for _ in range(20):
        env.step([buy, rest])
    assert source.timestamp >= start + 20 * config.replay_step_ns
    assert env.accounts()[0]["position"][0] > 0 and source.stats.agent_messages > 20
    source.books.check_integrity()


def test_cli_replays_the_example(capsys):
    from rltrader.tools.cli import main

    assert main(["replay", "generic", str(BITSTAMP), "--mapping", str(BITSTAMP_MAPPING),
                 "--levels", "3"]) == 0
    out = capsys.readouterr().out
    assert "generic: L3" in out and "5,114 rows" in out and "0 rejected" in out
    assert "112 about orders from before the file dropped" in out
    assert "234.84" in out and "234.92" in out  # the final best bid and ask


@pytest.mark.parametrize("args, problem", [
    ([], "replay: generic needs --mapping MAPPING.toml"),
    (["--mapping", "{m}", "--snapshot", "x"], "replay: generic takes one FILE"),
    (["{f}", "--mapping", "{m}"], "replay: generic takes one FILE"),
])
def test_cli_usage_errors_are_one_line(capsys, args, problem):
    from rltrader.tools.cli import main

    args = [a.format(m=BITSTAMP_MAPPING, f=BITSTAMP) for a in args]
    assert main(["replay", "generic", str(BITSTAMP), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(problem) and err.count("\n") == 1


def test_cli_bad_row_is_one_line_naming_file_and_line(tmp_path, capsys):
    from rltrader.tools.cli import main

    path = _write(tmp_path, "local_ms,event,id,order_type,price,amount,datetime\n"
                            "1,order_created,5,2,1.00,1,1\n")
    assert main(["replay", "generic", str(path), "--mapping", str(BITSTAMP_MAPPING)]) == 2
    err = capsys.readouterr().err
    assert err == f"replay: {path}: line 2: side '2' is neither buy ['0'] nor sell ['1']\n"
    assert main(["replay", "lobster", str(path), "--mapping", str(BITSTAMP_MAPPING)]) == 2
    assert "--mapping applies to generic only" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'rltrader\[parquet\]'"):
        generic.load(tmp_path / "feed.parquet", L3)


def test_parquet_gives_what_the_csv_gives(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    csv_path = _write(tmp_path, "ts,kind,id,side,px,qty\n1,C,7,b,99.5,0.25\n2,C,8,a,100,1\n"
                                "3,M,7,b,99.5,0.125\n4,T,8,a,100,0.5\n")
    table = pa.table({"ts": pa.array([1, 2, 3, 4], pa.int64()),
                      "kind": ["C", "C", "M", "T"], "id": pa.array([7, 8, 7, 8], pa.int64()),
                      "side": ["b", "a", "b", "a"], "px": [99.5, 100.0, 99.5, 100.0],
                      "qty": [0.25, 1.0, 0.125, 0.5]})
    pq.write_table(table, tmp_path / "feed.parquet")
    got = generic.load(tmp_path / "feed.parquet", L3)
    assert (got.messages == generic.load(csv_path, L3).messages).all()
    assert got.row.tolist() == [0, 1, 2, 3]
    stamps = table.set_column(0, "ts", pa.array([1, 2, 3, 4], pa.timestamp("us")))
    pq.write_table(stamps, tmp_path / "stamps.parquet")
    assert generic.read(tmp_path / "stamps.parquet", L3)["timestamp"].tolist() == \
        [1000, 2000, 3000, 4000]
    bad = table.set_column(4, "px", pa.array([99.3, 100.0, 99.5, 100.0]))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(FormatError, match=r"bad.parquet: row 0: price 99.3 is not a multiple"):
        generic.load(tmp_path / "bad.parquet", L3)
