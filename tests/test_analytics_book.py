"""The analytics engine's level-2 book follows the core exactly: from the core's events
under random flow of every order type (differential against ``Books.top_levels``), from
LOBSTER's own orderbook file (real data, known answers) and from level-2 records (against a
dict reference); bad input is refused with the record named and nothing lost before it."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader import Books
from rltrader.analytics import MD_CLEAR, MD_DELTA, MD_DTYPE, MD_LEVEL, MD_TRADE, FeatureEngine
from rltrader.core.constants import (
    BUY,
    CANCEL,
    EXECUTE,
    FILL,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    REDUCE,
    REPLACE,
    SELL,
)
from rltrader.core.messages import empty_events, empty_messages
from rltrader.data import lobster, lobster_exact
from rltrader.data.samples import sample_path


def engine(n_books: int = 1, **kwargs) -> FeatureEngine:
    kwargs.setdefault("intervals", ("1s",))
    return FeatureEngine(n_books, indicators=False, embedding=None, **kwargs)


def assert_same_levels(eng: FeatureEngine, books: Books, depth: int, where: str) -> None:
    prices, qtys, _ = books.top_levels(depth)
    for b in range(books.n_books):
        p, q = eng.top_levels(b, depth)
        core_p = np.where(qtys[b] > 0, prices[b], 0)
        assert np.array_equal(q, qtys[b]), f"{where}, book {b}: qtys {q} != core {qtys[b]}"
        assert np.array_equal(np.where(q > 0, p, 0), core_p), f"{where}, book {b}: prices"


def random_flow(rng: np.random.Generator, n: int, n_books: int, t0: int) -> np.ndarray:
    """Every order type but stops, around a mid of 1,000, with crossing orders, replaces,
    reductions, executions and self-trades (owners 0-3)."""
    msgs = empty_messages(n)
    live: list[tuple[int, int]] = []          # (book, order_id) that may be resting
    next_id = t0 // 1000 + 1
    for i in range(n):
        m = msgs[i]
        m["timestamp"] = t0 + i * 7_000_000
        m["book"] = b = int(rng.integers(n_books))
        m["owner"] = int(rng.integers(4))
        m["side"] = BUY if rng.random() < 0.5 else SELL
        u = rng.random()
        if live and u < 0.30:
            book, oid = live[int(rng.integers(len(live)))]
            m["book"], m["order_id"] = book, oid
            v = rng.random()
            if v < 0.4:
                m["op"] = CANCEL
            elif v < 0.6:
                m["op"], m["qty"] = REDUCE, int(rng.integers(1, 4))
            elif v < 0.8:
                m["op"], m["qty"], m["tif"] = REPLACE, int(rng.integers(1, 9)), GTC
                m["price"] = 1000 + int(rng.integers(-6, 7))
                if rng.random() < 0.5:
                    m["new_order_id"] = next_id
                    live.append((book, next_id))
                    next_id += 1
            else:
                m["op"], m["qty"], m["owner"] = EXECUTE, int(rng.integers(1, 5)), -1
            continue
        m["order_id"] = next_id
        next_id += 1
        if u < 0.38:
            m["op"], m["qty"], m["tif"] = MARKET, int(rng.integers(1, 12)), IOC
        else:
            m["op"], m["qty"] = LIMIT, int(rng.integers(1, 9))
            m["tif"] = rng.choice([GTC, GTC, GTC, IOC, FOK, POST_ONLY])
            centre = 1000 + (2 if m["side"] == SELL else -2)
            m["price"] = centre + int(rng.integers(-5, 6))
            live.append((b, int(m["order_id"])))
    return msgs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("self_trade", [0, 3])
def test_the_level_book_follows_the_core_under_random_flow(seed: int, self_trade: int) -> None:
    rng = np.random.default_rng(seed)
    n_books = 3
    books = Books(n_books, n_owners=4, self_trade_prevention=self_trade)
    eng = engine(n_books)
    events = empty_events(1 << 16)
    traded = 0
    t0 = 1_000_000_000
    for batch in range(40):
        msgs = random_flow(rng, int(rng.integers(1, 120)), n_books, t0)
        t0 = int(msgs["timestamp"][-1]) + 1
        done = 0
        while done < msgs.shape[0]:
            consumed, written = books.process(msgs[done:], events)
            ev = events[:written].copy()
            traded += int(ev["qty"][ev["kind"] == FILL].sum())
            eng.process_events(ev)
            done += consumed
        assert_same_levels(eng, books, 20, f"seed {seed}, batch {batch}")
    bars = eng.flush(t0 + 10**10).bars
    assert traded > 0
    assert eng.counters == {"dropped_levels": 0, "inconsistent": 0, "unsupported": 0,
                            "clock_jumps": 0}
    assert sum(eng.history(b, "1s")["volume"].sum() for b in range(n_books)) == traded
    assert bars.size > 0


def test_lobster_orderbook_file_rows_are_rebuilt_row_by_row() -> None:
    """Real data, known answers: after each LOBSTER message row, the engine's ten levels
    per side are the orderbook file's row (AAPL 2012-06-21, first 999 rows)."""
    raw = lobster.read_raw(sample_path(
        "lobster/AAPL_2012-06-21_34200000_57600000_message_10_first999.csv"))
    depth = lobster.read_orderbook(sample_path(
        "lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10_first999.csv"))
    exact = lobster_exact.exact_messages(raw, depth)
    feed = exact.feed
    want_p, want_q = depth.in_ticks(100)
    books, eng = Books(1), engine()
    events = empty_events(4096)
    ends = np.searchsorted(feed.source_row, np.arange(raw.shape[0]), side="right")
    start = 0
    for row, end in enumerate(ends.tolist()):
        msgs = feed.messages[start:end].copy()
        msgs["book"] = 0
        start = end
        if msgs.size:
            _, written = books.process(msgs, events)
            eng.process_events(events[:written].copy())
        p, q = eng.top_levels(0, 10)
        assert np.array_equal(q, want_q[row]), f"row {row}: qtys"
        assert np.array_equal(np.where(q > 0, p, 0), np.where(want_q[row] > 0, want_p[row], 0)), \
            f"row {row}: prices"


def test_level_records_follow_a_dict_book() -> None:
    rng = np.random.default_rng(7)
    eng = engine(2)
    ref: list[list[dict[int, int]]] = [[{}, {}], [{}, {}]]
    recs = np.zeros(5000, dtype=MD_DTYPE)
    recs["timestamp"] = np.arange(5000) * 3_000_000
    for r in recs:
        b, side = int(rng.integers(2)), 1 if rng.random() < 0.5 else -1
        s = 0 if side > 0 else 1
        price = 500 + (-1 if side > 0 else 1) * int(rng.integers(1, 40))
        r["book"], r["side"], r["price"] = b, side, price
        u = rng.random()
        if u < 0.05:
            r["kind"], r["side"] = MD_CLEAR, 0 if rng.random() < 0.3 else side
            for k in (0, 1):
                if r["side"] == 0 or k == s:
                    ref[b][k].clear()
        elif u < 0.15:
            r["kind"], r["qty"] = MD_TRADE, int(rng.integers(1, 5))
        elif u < 0.55:
            r["kind"], r["qty"] = MD_DELTA, int(rng.integers(1, 6))
            ref[b][s][price] = ref[b][s].get(price, 0) + int(r["qty"])
        else:
            r["kind"], r["qty"] = MD_LEVEL, int(rng.integers(0, 9))
            ref[b][s].pop(price, None)
            if r["qty"]:
                ref[b][s][price] = int(r["qty"])
    eng.process_records(recs)
    for b in range(2):
        p, q = eng.top_levels(b, 60)
        for k, best in ((0, sorted(ref[b][0], reverse=True)), (1, sorted(ref[b][1]))):
            want = [(x, ref[b][k][x]) for x in best][:60]
            got = [(int(x), int(y)) for x, y in zip(p[k], q[k], strict=True) if y > 0]
            assert got == want, f"book {b} side {k}"


def test_bad_input_is_refused_with_the_record_named_and_nothing_before_it_lost() -> None:
    eng = engine()
    recs = np.zeros(4, dtype=MD_DTYPE)
    recs["timestamp"] = [1, 2, 3, 4]
    recs["kind"] = MD_LEVEL
    recs["side"] = [1, -1, 1, 1]
    recs["price"] = [99, 101, 98, 97]
    recs["qty"] = [5, 6, 7, 8]
    recs["book"][2] = 3
    with pytest.raises(ValueError, match="record 2: book out of range"):
        eng.process_records(recs)
    p, q = eng.top_levels(0, 2)
    assert q.tolist() == [[5, 0], [6, 0]]
    assert eng.events == 2
    bad = recs[3:].copy()
    bad["side"] = 2
    with pytest.raises(ValueError, match="side must be"):
        eng.process_records(bad)
    bad["side"], bad["kind"] = 1, 9
    with pytest.raises(ValueError, match="unknown kind"):
        eng.process_records(bad)
    bad["kind"], bad["qty"] = MD_TRADE, 0
    with pytest.raises(ValueError, match="quantity"):
        eng.process_records(bad)
    bad["qty"], bad["timestamp"] = 1, -5
    with pytest.raises(ValueError, match="negative timestamp"):
        eng.process_records(bad)
    with pytest.raises(TypeError, match="records must be a 1-D array"):
        eng.process_records(np.zeros(3))
    with pytest.raises(TypeError, match="events must be a 1-D array"):
        eng.process_events(recs)
    with pytest.raises(ValueError, match="interval"):
        FeatureEngine(1, intervals=("1x",), indicators=False, embedding=None)
    with pytest.raises(ValueError, match="book must be in"):
        eng.top_levels(1)


def test_a_full_level_array_drops_the_worst_level_and_counts_it() -> None:
    eng = FeatureEngine(1, indicators=False, embedding=None, capacity=16)
    recs = np.zeros(20, dtype=MD_DTYPE)
    recs["kind"], recs["side"], recs["qty"] = MD_LEVEL, 1, 1
    recs["price"] = np.arange(100, 120)
    eng.process_records(recs)
    p, q = eng.top_levels(0, 16)
    assert p[0].tolist() == list(range(119, 103, -1))
    assert eng.counters["dropped_levels"] == 4
