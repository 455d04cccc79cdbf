"""A hybrid replay that starts later in its record (``HybridReplay.start_ns``), and the
evaluator's ``lobster_windows`` market built on it: each env of a seed meets the AAPL hour
at its own time instead of at its first message."""

from __future__ import annotations

import numpy as np
import pytest
from test_data_lobster import MESSAGE_92K

from rltrader import BUY, LIMIT
from rltrader.core.constants import AGENT_ID_BASE
from rltrader.core.messages import empty_messages
from rltrader.data import lobster
from rltrader.data.hybrid import HybridReplay

SECOND = 10**9


@pytest.fixture(scope="module")
def feed():
    """The first three minutes of the 50-level AAPL hour."""
    messages = lobster.read_messages(MESSAGE_92K).messages
    return messages[messages["timestamp"] < messages["timestamp"][0] + 180 * SECOND]


def snapshot(replay: HybridReplay) -> tuple:
    prices, qtys, counts = (np.zeros((1, 2, 50), np.int64), np.zeros((1, 2, 50), np.int64),
                            np.zeros((1, 2, 50), np.int32))
    replay.books.top_levels(50, prices, qtys, counts)
    return prices.tolist(), qtys.tolist(), counts.tolist()


def test_a_late_start_is_the_record_replayed_up_to_it(feed):
    first = int(feed["timestamp"][0])
    start = 75 * SECOND + 123
    late = HybridReplay(feed, n_agents=2, start_ns=start)
    plain = HybridReplay(feed, n_agents=2)
    plain.step(until_ts=first + start)
    assert late.timestamp == plain.timestamp == first + start
    assert late._cursor == plain._cursor == int(np.searchsorted(feed["timestamp"],
                                                                first + start, "right"))
    assert 0 < late._cursor < feed.shape[0]
    assert snapshot(late) == snapshot(plain)
    assert late.books.best_bid(0) > 0                   # a book, not an empty one
    # from there on they are one market: the same agent order, the same events
    order = empty_messages(1)
    order[["op", "side", "price", "qty", "order_id", "owner", "timestamp"]] = [
        (LIMIT, BUY, plain.books.best_bid(0), 3, AGENT_ID_BASE + 1, 0, first + start + 1)]
    for replay in (late, plain):
        replay.events_seen = replay.step(until_ts=first + start + 5 * SECOND,
                                         agent_messages=order.copy())
    assert np.array_equal(late.events_seen, plain.events_seen)
    assert snapshot(late) == snapshot(plain)
    assert np.array_equal(late.accounts, plain.accounts)


def test_every_reset_starts_at_the_same_time(feed):
    late = HybridReplay(feed, n_agents=1, start_ns=30 * SECOND)
    before = (late.timestamp, late._cursor, snapshot(late))
    late.step(until_ts=late.timestamp + 40 * SECOND)
    late.reset()
    assert (late.timestamp, late._cursor, snapshot(late)) == before


@pytest.mark.parametrize("start", [-1, 1.5, True, "5", 180 * SECOND])
def test_a_start_outside_the_record_is_refused(feed, start):
    with pytest.raises(ValueError, match="start_ns"):
        HybridReplay(feed, n_agents=1, start_ns=start)


def test_lobster_windows_spread_the_envs_over_the_hour():
    pytest.importorskip("torch")
    from rltrader.training.evaluate import lobster_sources

    stamps = lobster.read_messages(MESSAGE_92K).messages["timestamp"]
    span = int(stamps[-1] - stamps[0])
    window = 600 * SECOND
    source = lobster_sources(6, 1, window)
    starts = [r.start_ns for r in source(100)]
    assert [r.start_ns for r in source(100)] == starts            # reproducible by seed
    assert [r.start_ns for r in source(101)] != starts            # other seeds, others
    assert len(set(starts)) == 6 and all(0 <= s <= span - window for s in starts)
    assert all(r.start_ns == 0 for r in lobster_sources(3, 1)(100))   # `lobster`: the open
    with pytest.raises(ValueError, match="lobster_windows"):
        lobster_sources(2, 1, span + 1)


def test_rltrader_evaluate_plays_lobster_windows():
    pytest.importorskip("torch")
    from rltrader.training.evaluate import evaluate

    kwargs = dict(task="directional", seeds=[100], n_envs=3, n_agents=1, episodes=1,
                  horizon=300)
    out = evaluate(["baseline:hold", "baseline:best_flow_following"],
                   markets=["lobster", "lobster_windows"], **kwargs)
    opening = out["markets"]["lobster"]["rows"]["best_flow_following"]["per_market"]
    windows = out["markets"]["lobster_windows"]["rows"]["best_flow_following"]["per_market"]
    assert out["markets"]["lobster_windows"]["rows"]["hold"]["per_market"] == [0.0] * 3
    assert len(set(windows)) > 1                         # different minutes, different pay
    assert windows != opening
