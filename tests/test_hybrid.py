"""Hybrid replay: the AAPL record drives the book while agent orders trade in its queues.

Known answers were checked by hand against the message file: rows 337-342 are
``337 add sell 16746392 18 @ 585.65`` (a new best ask), ``339 add sell 16752894 100 @ 585.65``,
``340 execute 16746392 18``, ``341 execute 16752894 63`` (same buyer, same ns) and
``342 execute 16752894 37``.
"""

from __future__ import annotations

import numpy as np
import pytest

rltrader = pytest.importorskip("rltrader")
from test_data_lobster import MESSAGE_92K, MESSAGE_999, ORDERBOOK_999  # noqa: E402

from rltrader import BUY, CANCEL, FILL, LIMIT, MARKET, REJECTED, SELL  # noqa: E402
from rltrader.data import lobster  # noqa: E402
from rltrader.data.hybrid import AGENT_ID_BASE, HybridReplay  # noqa: E402
from rltrader.data.lobster_exact import exact_messages  # noqa: E402


@pytest.fixture(scope="module")
def exact():
    raw, depth = lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999)
    return exact_messages(raw, depth), depth


def _order(op, side, qty, *, price=0, ts, owner=0, k=1):
    m = rltrader.empty_messages(1)
    m[["op", "side", "price", "qty", "order_id", "owner", "timestamp"]] = [
        (op, side, price, qty, AGENT_ID_BASE + k, owner, ts)]
    return m


def _mid(replay):
    bid, ask = replay.top_of_book()
    return (bid + ask) / 2


def test_no_agents_reproduces_every_lobster_row(exact):
    feed, depth = exact
    replay = HybridReplay(feed, n_agents=2)
    want_p, want_q = depth.in_ticks()
    per_row = np.diff(np.searchsorted(feed.feed.source_row, np.arange(len(depth) + 1)))
    prices, qtys, counts = (np.zeros((1, 2, 10), np.int64), np.zeros((1, 2, 10), np.int64),
                            np.zeros((1, 2, 10), np.int32))
    for i, n in enumerate(per_row.tolist()):
        events = replay.step(n_messages=n)
        assert not np.any(events["kind"] == REJECTED)
        replay.books.top_levels(10, prices, qtys, counts)
        assert np.array_equal(prices[0], want_p[i]) and np.array_equal(qtys[0], want_q[i]), i
    assert replay.done and replay.stats.core_calls == np.count_nonzero(per_row)
    assert replay.stats.trimmed_messages == replay.stats.interaction_points == 0


def test_agent_at_the_touch_fills_before_the_orders_behind_it(exact):
    feed, _ = exact
    raw = feed.feed.raw
    replay = HybridReplay(feed, n_agents=1)
    replay.step(until_ts=int(raw["timestamp"][338]))
    assert replay.top_of_book()[1] == 58565  # row 337 made 585.65 the best ask
    sell = _order(LIMIT, SELL, 30, price=58565, ts=int(raw["timestamp"][338]))
    replay.step(until_ts=int(raw["timestamp"][338]), agent_messages=sell)
    queue = replay.books.level_queue(0, SELL, 58565)
    assert queue["order_id"].tolist() == [16746392, AGENT_ID_BASE + 1]  # behind the 18
    events = replay.step(until_ts=int(raw["timestamp"][342]))
    fills = events[(events["kind"] == FILL) & (events["price"] == 58565)]  # row 343: 585.68
    got = [(int(f["maker_order_id"]), int(f["qty"]), int(f["timestamp"])) for f in fills]
    assert got == [
        (16746392, 18, int(raw["timestamp"][340])),        # ahead of the agent: as recorded
        (AGENT_ID_BASE + 1, 30, int(raw["timestamp"][341])),  # the agent, before 16752894
        (16752894, 33, int(raw["timestamp"][341])),         # what is left of the 63
        (16752894, 37, int(raw["timestamp"][342])),
    ]
    # 16752894 keeps the 30 lots the buyer took from the agent instead
    assert replay.books.order(0, 16752894)["qty"] == 100 - 33 - 37
    account = replay.accounts[0]
    assert (account["position"], account["cash"], account["volume"]) == (-30, 30 * 58565, 30)
    assert replay.stats.agent_lots_hit == 30 and replay.stats.trimmed_messages == 0


def test_large_market_buy_lifts_the_mid_and_the_replay_goes_on(exact):
    feed, _ = exact
    raw = feed.feed.raw
    t = int(raw["timestamp"][400])
    historical = HybridReplay(feed, n_agents=1)
    hybrid = HybridReplay(feed, n_agents=1)
    historical.step(until_ts=t)
    hybrid.step(until_ts=t)
    events = hybrid.step(until_ts=t, agent_messages=_order(MARKET, BUY, 2000, ts=t))
    bought = events["qty"][(events["kind"] == FILL) & (events["owner"] == 0)].sum()
    assert bought == 2000
    assert _mid(hybrid) > _mid(historical) + 10  # more than ten cents above the record
    rest = hybrid.step(until_ts=int(raw["timestamp"][-1]))
    historical.step(until_ts=int(raw["timestamp"][-1]))
    assert hybrid.done
    stats = hybrid.stats
    # cancels of orders the agent took are trimmed (rejected by the core, counted)
    rejected = rest[rest["kind"] == REJECTED]
    assert len(rejected) == stats.trimmed_by_kind.get("CANCEL of a taken order", 0) > 0
    assert np.all(rejected["reason"] == rltrader.Reason.UNKNOWN_ORDER)
    assert stats.trimmed_messages == sum(stats.trimmed_by_kind.values())
    bid, ask = hybrid.top_of_book()
    assert bid < ask
    hybrid.books.check_integrity()
    account = hybrid.accounts[0]
    assert account["position"] == 2000 and account["cash"] < 0


def test_deterministic(exact):
    feed, _ = exact
    raw = feed.feed.raw

    def run():
        replay = HybridReplay(feed, n_agents=2)
        replay.reset(seed=123)
        out = []
        for i, row in enumerate(range(100, 999, 100)):
            t = int(raw["timestamp"][row])
            side = BUY if i % 2 else SELL
            orders = np.concatenate([
                _order(MARKET, side, 150, ts=t, owner=0, k=2 * i + 1),
                _order(LIMIT, -side, 40, price=replay.top_of_book()[0 if side == BUY else 1],
                       ts=t, owner=1, k=2 * i + 2),
            ])
            out.append(replay.step(until_ts=t, agent_messages=orders))
        out.append(replay.step(n_messages=10**6))
        return np.concatenate(out), replay.accounts.copy(), replay.stats

    a, b = run(), run()
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])  # field by field
    assert a[2] == b[2]


def test_halt_holds_agent_messages_until_trading_resumes():
    raw = np.zeros(4, dtype=lobster.RAW_DTYPE)
    raw[0] = (100, 1, 7, 10, 1_000_100, -1)
    raw[1] = (200, 7, 0, 0, -1, -1)     # halt
    raw[2] = (300, 7, 0, 0, 0, -1)      # quoting resumes
    raw[3] = (400, 7, 0, 0, 1, -1)      # trading resumes
    replay = HybridReplay(lobster.to_messages(raw), n_agents=1)
    replay.step(until_ts=200)
    events = replay.step(until_ts=300, agent_messages=_order(MARKET, BUY, 4, ts=250))
    assert events.size == 0 and replay.stats.held_for_halt == 1
    events = replay.step(until_ts=400)
    fill = events[events["kind"] == FILL]
    assert fill["timestamp"].tolist() == [400] and fill["qty"].tolist() == [4]


def test_bad_agent_messages_raise(exact):
    feed, _ = exact
    replay = HybridReplay(feed, n_agents=1)
    t = replay.timestamp
    with pytest.raises(ValueError, match="owner 1 not in"):
        replay.step(until_ts=t, agent_messages=_order(MARKET, BUY, 1, ts=t, owner=1))
    with pytest.raises(ValueError, match="not open to agents"):
        replay.step(until_ts=t, agent_messages=_order(rltrader.EXECUTE, BUY, 1, ts=t))
    with pytest.raises(ValueError, match="outside this step"):
        replay.step(until_ts=t, agent_messages=_order(MARKET, BUY, 1, ts=t + 1))
    bad = _order(CANCEL, BUY, 1, ts=t)
    bad["order_id"] = 16113575
    with pytest.raises(ValueError, match="below AGENT_ID_BASE"):
        replay.step(until_ts=t, agent_messages=bad)
    with pytest.raises(ValueError, match="exactly one"):
        replay.step()
    with pytest.raises(TypeError, match="MESSAGE_DTYPE"):
        HybridReplay(np.zeros(3), n_agents=1)


def test_plain_feed_with_a_big_buy_runs_the_hour():
    """The 50-level hour from an empty book (no orderbook file): a 5,000-lot buy at 10:00
    and the rest of the hour run without a failed execution."""
    feed = lobster.read_messages(MESSAGE_92K)
    replay = HybridReplay(feed, n_agents=1)
    t = 36_000 * 10**9
    replay.step(until_ts=t)
    replay.step(until_ts=t, agent_messages=_order(MARKET, BUY, 5000, ts=t))
    events = replay.step(n_messages=10**6)
    assert replay.done and replay.accounts[0]["position"] == 5000
    rejected = events[events["kind"] == REJECTED]
    assert np.all(rejected["reason"] == rltrader.Reason.UNKNOWN_ORDER)
    assert replay.stats.trimmed_messages >= len(rejected)
    replay.books.check_integrity()
