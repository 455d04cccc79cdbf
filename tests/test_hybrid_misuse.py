"""HybridReplay refuses misuse with a clear error instead of corrupting its state or
truncating arguments (audit: a past ``until_ts`` made ``stats.historical_messages`` go
down; ``n_agents=1.5``, ``window=128.5`` and ``maker_fee_ppm=0.9`` were accepted)."""

from __future__ import annotations

import pytest

rltrader = pytest.importorskip("rltrader")
from test_data_lobster import MESSAGE_999, ORDERBOOK_999  # noqa: E402

from rltrader.data import lobster  # noqa: E402
from rltrader.data.hybrid import HybridReplay  # noqa: E402
from rltrader.data.lobster_exact import exact_messages  # noqa: E402


@pytest.fixture(scope="module")
def feed():
    raw, depth = lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999)
    return exact_messages(raw, depth)


def test_a_past_until_ts_replays_nothing(feed) -> None:
    replay = HybridReplay(feed, n_agents=1)
    replay.step(n_messages=100)
    before = (replay.stats.historical_messages, replay.timestamp, replay._cursor)
    events = replay.step(until_ts=replay.timestamp - 10**9)
    assert events.size == 0
    assert (replay.stats.historical_messages, replay.timestamp, replay._cursor) == before
    assert before[0] == 100
    replay.step(n_messages=5)                      # and the replay goes on from there
    assert replay.stats.historical_messages == 105


def test_until_ts_at_the_current_time_replays_nothing_new(feed) -> None:
    replay = HybridReplay(feed, n_agents=1)
    replay.step(n_messages=10)
    replay.step(until_ts=replay.timestamp)
    assert replay.stats.historical_messages >= 10
    n = replay.stats.historical_messages
    replay.step(until_ts=replay.timestamp - 1)
    assert replay.stats.historical_messages == n


@pytest.mark.parametrize("kwargs", [
    {"n_agents": 1.5}, {"n_agents": 0}, {"n_agents": True}, {"n_agents": float("nan")},
    {"window": 128.5}, {"window": 128.0}, {"capacity": 1e5},
    {"maker_fee_ppm": 0.9}, {"taker_fee_ppm": 1.5}, {"maker_fee_ppm": 2_000_000},
])
def test_constructor_arguments_must_be_ints(feed, kwargs: dict) -> None:
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=f"{name} must be an int"):
        HybridReplay(feed, **kwargs)


@pytest.mark.parametrize("kwargs", [{"n_messages": 1.5}, {"n_messages": -1},
                                    {"until_ts": 1.5e13}, {"until_ts": "10"}])
def test_step_arguments_must_be_ints(feed, kwargs: dict) -> None:
    replay = HybridReplay(feed, n_agents=1)
    (name, _), = kwargs.items()
    with pytest.raises(ValueError, match=f"{name} must be an int"):
        replay.step(**kwargs)


def test_numpy_integers_are_ints(feed) -> None:
    import numpy as np
    replay = HybridReplay(feed, n_agents=np.int64(2), window=np.int32(128),
                          maker_fee_ppm=np.int64(-10))
    assert replay.n_agents == 2 and type(replay.n_agents) is int
    replay.step(n_messages=np.int64(3))
    replay.step(until_ts=np.int64(replay.timestamp + 1))
    assert replay.stats.historical_messages >= 3
