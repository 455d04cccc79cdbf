"""State export/import of the compiled objects (``Books.state``/``from_state``,
``Flow.state``/``from_state``, and ``pickle`` through them): a copy goes on exactly as the
original, bit for bit."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from rltrader import (
    BUY,
    CANCEL,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REDUCE,
    REPLACE,
    SELL,
    STOP,
    STOP_LIMIT,
    Books,
)
from rltrader._flow import Flow
from rltrader.core.messages import empty_messages
from rltrader.sim.config import RecordConfig, preset
from rltrader.sim.market import Market

BOOK_ARRAYS = ("book_array", "level_array", "bitmap_array", "summary_array", "order_array",
               "hash_array", "account_array", "owner_fee_array")


def _same_records(a: np.ndarray, b: np.ndarray) -> None:
    """Field by field, bit for bit (a record's padding bytes are not part of it)."""
    _same_array(a, b, "records")


def _same_array(a: np.ndarray, b: np.ndarray, name: str) -> None:
    """Bit for bit (nan == nan, -0.0 != 0.0), records field by field."""
    assert a.dtype == b.dtype and a.shape == b.shape, name
    if a.dtype.names:
        for field in a.dtype.names:
            assert a[field].tobytes() == b[field].tobytes(), f"{name}.{field}"
    else:
        assert a.tobytes() == b.tobytes(), name


def _books_equal(a: Books, b: Books) -> None:
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], np.ndarray):
            _same_array(sa[key], sb[key], key)
        else:
            assert sa[key] == sb[key], key
    pa, qa, ca = a.top_levels(64)
    pb, qb, cb = b.top_levels(64)
    assert pa.tobytes() == pb.tobytes() and qa.tobytes() == qb.tobytes()
    assert ca.tobytes() == cb.tobytes()


def _flows_equal(a: Flow, b: Flow) -> None:
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for key in sa:
        if key == "books":
            continue
        if isinstance(sa[key], np.ndarray):
            _same_array(sa[key], sb[key], key)
        else:
            assert sa[key] == sb[key], key
    assert a.counters == b.counters and a.step == b.step


# ---- Books ------------------------------------------------------------------------------------


def _random_messages(rng: np.random.Generator, n: int, n_books: int, first_id: int,
                     live: list[tuple[int, int]]) -> np.ndarray:
    """Every op, prices far outside a 64-level window around 1000, stops; ``live`` holds
    (book, id) of orders sent (some dead by now: refusals are part of the test)."""
    m = empty_messages(n)
    for i in range(n):
        r = rng.random()
        book = int(rng.integers(n_books))
        side = BUY if rng.random() < 0.5 else SELL
        m[i]["book"], m[i]["side"], m[i]["timestamp"] = book, side, first_id + i
        m[i]["owner"] = int(rng.integers(-1, 6))
        m[i]["qty"] = int(rng.integers(1, 50))
        m[i]["tif"] = GTC
        oid = first_id + i
        if r < 0.45 or not live:
            # most near the touch, some 10^4 ticks away (out of the dense window)
            far = rng.random() < 0.15
            m[i]["op"] = LIMIT
            m[i]["price"] = max(1, 1000 - side * int(rng.integers(-5, 30))
                                + (int(rng.integers(-10_000, 10_000)) if far else 0))
            m[i]["order_id"] = oid
            live.append((book, oid))
        elif r < 0.55:
            m[i]["op"], m[i]["tif"] = MARKET, IOC
            m[i]["order_id"] = oid
        elif r < 0.7:
            b, target = live[int(rng.integers(len(live)))]
            m[i]["op"], m[i]["book"], m[i]["order_id"] = CANCEL, b, target
        elif r < 0.78:
            b, target = live[int(rng.integers(len(live)))]
            m[i]["op"], m[i]["book"], m[i]["order_id"] = REDUCE, b, target
            m[i]["qty"] = int(rng.integers(1, 5))
        elif r < 0.86:
            b, target = live[int(rng.integers(len(live)))]
            m[i]["op"], m[i]["book"], m[i]["order_id"] = REPLACE, b, target
            m[i]["new_order_id"] = oid
            m[i]["price"] = max(1, 1000 - side * int(rng.integers(-5, 30)))
            live.append((b, oid))
        else:
            m[i]["op"] = STOP if rng.random() < 0.5 else STOP_LIMIT
            m[i]["order_id"] = oid
            m[i]["stop_price"] = max(1, 1000 + side * int(rng.integers(-20, 20)))
            m[i]["price"] = max(1, int(m[i]["stop_price"]) + side * 3)
            live.append((book, oid))
    return m


def _loaded_books() -> tuple[Books, np.random.Generator, list, int]:
    books = Books(3, window=64, capacity=4, n_owners=6, maker_fee_ppm=-50,
                  taker_fee_ppm=200, self_trade_prevention=1)
    books.set_owner_fees(2, maker_fee_ppm=0, taker_fee_ppm=30)
    books.set_owner_fees([4, 5], taker_fee_ppm=-10)
    books.set_fees(10, 400, book=1)
    books.set_self_trade_prevention(3, book=2)
    rng = np.random.default_rng(5)
    live: list[tuple[int, int]] = []
    next_id = 1
    for _ in range(6):
        msgs = _random_messages(rng, 300, 3, next_id, live)
        next_id += 300
        books.process_all(msgs)
    books.check_integrity()
    return books, rng, live, next_id


def test_books_round_trip_goes_on_bit_identical() -> None:
    books, rng, live, next_id = _loaded_books()
    # what the state must cover: a grown arena, out-of-window orders, stops, fee tiers
    assert books.capacity > 4
    orders = books.order_array
    resting = orders[orders["state"] == 1]
    assert (np.abs(resting["price"] - 1000) > 64).any()
    assert (orders["state"] == 2).any()
    assert (books.owner_fee_array != 1_000_001).any()
    assert (books.book_array["overflow_head"] != -1).any()

    copy = pickle.loads(pickle.dumps(books))
    assert type(copy) is Books and copy is not books
    copy.check_integrity()
    _books_equal(books, copy)
    assert copy.order_array.flags.writeable is False      # read-only as __init__ leaves it
    assert copy.accounts.flags.writeable is True

    for _ in range(5):
        msgs = _random_messages(rng, 400, 3, next_id, live)
        next_id += 400
        ev_a, ev_b = books.process_all(msgs), copy.process_all(msgs)
        _same_records(ev_a, ev_b)
        assert ev_a.size > 0
    _books_equal(books, copy)
    copy.check_integrity()
    # the copy is independent of the original
    copy.process_all(_random_messages(rng, 50, 3, next_id, live))
    assert books.state()["n_live"] != copy.state()["n_live"] or (
        books.order_array.tobytes() != copy.order_array.tobytes())


def test_books_state_covers_every_array() -> None:
    """Every numpy array the core points into is in the state (a new one must be too)."""
    books, *_ = _loaded_books()
    state = books.state()
    arrays = {name for name in dir(books)
              if not name.startswith("__") and isinstance(getattr(books, name), np.ndarray)}
    assert arrays - {"accounts"} == set(BOOK_ARRAYS)
    assert set(BOOK_ARRAYS) <= state.keys()
    # every scalar of the Core struct
    assert {"n_books", "n_owners", "window", "words", "summary_words", "capacity",
            "max_orders", "free_head", "n_live", "hash_mask"} <= state.keys()


def test_books_state_refuses_inconsistent_input() -> None:
    books, *_ = _loaded_books()
    state = books.state()
    bad = dict(state, capacity=state["capacity"] * 2)
    with pytest.raises(ValueError, match="inconsistent"):
        Books.from_state(bad)
    bad = dict(state, level_array=state["level_array"][:, :32])
    with pytest.raises(ValueError, match="inconsistent"):
        Books.from_state(bad)
    with pytest.raises(ValueError, match="version"):
        Books.from_state(dict(state, version=99))
    Books.from_state(state).check_integrity()


# ---- a market: Books and Flow together -------------------------------------------------------


def _agent_messages(rng: np.random.Generator, market: Market, first_id: int) -> np.ndarray:
    """A few orders of the extra owners (after the traders), the same for both copies."""
    n = int(rng.integers(0, 4))
    m = empty_messages(n)
    owner0 = market.n_traders
    bids = market.books.book_array["best_bid"]
    for i in range(n):
        book = int(rng.integers(market.config.n_books))
        side = BUY if rng.random() < 0.5 else SELL
        m[i]["book"], m[i]["side"], m[i]["owner"] = book, side, owner0 + int(rng.integers(2))
        m[i]["order_id"] = first_id + i
        m[i]["qty"] = int(rng.integers(1, 20))
        m[i]["op"] = LIMIT
        m[i]["price"] = max(1, int(bids[book]) + int(rng.integers(-3, 4)))
        m[i]["timestamp"] = market.time_ns
    return m


@pytest.mark.parametrize("record", [False, True])
def test_market_round_trip_goes_on_bit_identical(record: bool) -> None:
    config = preset("resilient").replace(extra_owners=2,
                                         record=RecordConfig(messages=record))
    market = Market(config, seed=11)
    rng = np.random.default_rng(3)
    next_id = 1 << 50
    for _ in range(150):
        market.step(1)
        msgs = _agent_messages(rng, market, next_id)
        next_id += 16
        market.books.process_all(msgs)

    copy = pickle.loads(pickle.dumps(market))
    assert copy.flow.books is copy.books            # one Books, shared as before
    copy.books.check_integrity()
    _books_equal(market.books, copy.books)
    _flows_equal(market.flow, copy.flow)

    state = rng.bit_generator.state
    copy_rng = np.random.default_rng()
    copy_rng.bit_generator.state = state
    for _ in range(250):
        market.step(1)
        copy.step(1)
        msgs_a = _agent_messages(rng, market, next_id)
        msgs_b = _agent_messages(copy_rng, copy, next_id)
        next_id += 16
        _same_records(msgs_a, msgs_b)
        ev_a, ev_b = market.books.process_all(msgs_a), copy.books.process_all(msgs_b)
        _same_records(ev_a, ev_b)
    assert market.flow.counters["fills"] > 0
    assert market.books.account_array.tobytes() == copy.books.account_array.tobytes()
    _books_equal(market.books, copy.books)
    _flows_equal(market.flow, copy.flow)
    if record:
        assert market.flow.message_log.size > 0
        _same_records(market.flow.message_log, copy.flow.message_log)
        _same_records(market.flow.event_log, copy.flow.event_log)
    copy.books.check_integrity()


def _delayed_config():  # type: ignore[no-untyped-def]
    """resilient with latencies: decisions wait in the delay line."""
    base = preset("resilient")
    return base.replace(noise=dataclasses.replace(base.noise, latency_ns=3 * base.dt_ns),
                        value=dataclasses.replace(base.value, latency_ns=2 * base.dt_ns))


def test_flow_decide_after_round_trip() -> None:
    """``Flow.decide`` (the exchange's path) gives the same messages on the copy, and a
    copy made mid-delay-line (decisions pending) delivers them."""
    market = Market(_delayed_config(), seed=2)
    market.step(37)
    assert market.flow.pending_n.sum() > 0              # cells in flight are kept
    copy = pickle.loads(pickle.dumps(market))
    for _ in range(100):
        a, b = market.flow.decide(), copy.flow.decide()
        _same_records(a, b)
        ea = market.books.process_all(a)
        eb = copy.books.process_all(b)
        _same_records(ea, eb)
    _flows_equal(market.flow, copy.flow)


def test_flow_state_covers_every_array() -> None:
    market = Market(preset("resilient"), seed=1)
    market.step(5)
    flow = market.flow
    state = flow.state()
    arrays = {name for name in dir(flow)
              if not name.startswith("__") and isinstance(getattr(flow, name), np.ndarray)}
    # the event buffer is scratch (only its size is kept); the rest are derived views
    derived = {"events_array", "message_log", "event_log", "parent_progress"}
    assert arrays - derived <= state.keys()
    assert state["events_size"] == flow.events_array.shape[0]


def test_flow_from_state_refuses_other_books() -> None:
    market = Market(preset("resilient"), seed=1)
    state = market.flow.state()
    with pytest.raises(ValueError, match="inconsistent"):
        Flow.from_state(dict(state, books=Books(market.config.n_books + 1,
                                                n_owners=market.books.n_owners)))
    with pytest.raises(ValueError, match="version"):
        Flow.from_state(dict(state, struct=state["struct"][:-8]))


@pytest.mark.parametrize("left_out", ["struct", "rng_state", "shuffle_state", "live",
                                      "ring_pos", "pending_array", "pending_n",
                                      "group_start", "group_n", "ema", "next_id",
                                      "fundamental", "counter_array"])
def test_a_field_left_out_is_seen(left_out: str) -> None:
    """The comparisons above catch a state that misses one field: put what a fresh
    object would hold in its place (zeros; the struct of a flow just built from the same
    seed) and the copy goes another way."""
    config = _delayed_config()
    market = Market(config, seed=4)
    market.step(60)
    while market.flow.pending_n.sum() == 0:     # decisions in flight
        market.step(1)
    state = market.flow.state()
    fresh = Market(config, seed=4).flow.state()
    books = Books.from_state(market.books.state())
    blank = fresh["struct"] if left_out == "struct" else np.zeros_like(state[left_out])
    flow = Flow.from_state(dict(state, books=books, **{left_out: blank}))
    diverged = False
    for _ in range(30):
        a, b = market.flow.decide(), flow.decide()
        ea, eb = market.books.process_all(a), books.process_all(b)
        if a.shape != b.shape or ea.shape != eb.shape or any(
                a[f].tobytes() != b[f].tobytes() for f in a.dtype.names):
            diverged = True
    sa, sb = market.flow.state(), flow.state()
    diverged = diverged or sa["struct"] != sb["struct"] or any(
        sa[k].tobytes() != sb[k].tobytes() for k in sa
        if isinstance(sa[k], np.ndarray) and not sa[k].dtype.names)
    assert diverged


def _version_1_hash(order_id: int, book: int) -> int:
    """The id hash of version 1 states (before the multiplicative hash of version 2)."""
    mask = (1 << 64) - 1
    x = (order_id * 0x9E3779B97F4A7C15) & mask
    x ^= (book * 0xC2B2AE3D27D4EB4F) & mask
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & mask
    return x ^ (x >> 32)


def _as_version_1(state: dict) -> dict:
    """``state`` as a build of version 1 would have written it: every live order's stored
    hash and the table (linear probing, HASH_DISPLACED off home) by the old id hash."""
    orders = state["order_array"].copy()
    table = np.zeros_like(state["hash_array"])
    mask = state["hash_mask"]
    for slot in np.flatnonzero(orders["state"] != 0):
        h = _version_1_hash(int(orders["order_id"][slot]), int(orders["book"][slot]))
        orders["hash"][slot] = h & 0xFFFFFFFF
        p = home = h & mask
        while table[p]:
            p = (p + 1) & mask
        table[p] = (int(slot) + 1) | (0x80000000 if p != home else 0)
    return dict(state, version=1, order_array=orders, hash_array=table)


def test_a_version_1_state_is_hashed_again() -> None:
    """A state written before the id hash changed loads: its live orders are hashed again
    and the table rebuilt, and the copy goes on as the original."""
    books, rng, live, next_id = _loaded_books()
    state = books.state()
    assert state["version"] == 2
    old = _as_version_1(state)
    assert old["hash_array"].tobytes() != state["hash_array"].tobytes()
    # read as the current version, the old hashes are stale: the rehash is what mends them
    with pytest.raises(AssertionError, match="stale|displaced|findable"):
        Books.from_state(dict(old, version=2)).check_integrity()
    copy = Books.from_state(old)
    copy.check_integrity()
    assert copy.state()["version"] == 2
    live_slots = state["order_array"]["state"] != 0
    assert (copy.order_array["hash"][live_slots]
            == state["order_array"]["hash"][live_slots]).all()
    for _ in range(3):
        msgs = _random_messages(rng, 400, 3, next_id, live)
        next_id += 400
        _same_records(books.process_all(msgs), copy.process_all(msgs))
    copy.check_integrity()
