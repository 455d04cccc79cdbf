"""Simulated traders mixed with a replay (issue 14, item 5): a ``MarketConfig``'s
populations trade in the recorded AAPL book next to the agents.

The central check is differential: the simulated traders' messages, taken from one run and
given to a second replay *as agent messages*, give event for event the same market. So the
simulated traders meet exactly the queue semantics that the agents' tests prove
(``test_hybrid.py``), and nothing else happens to them.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_data_lobster import MESSAGE_92K

from rltrader import CANCEL, FILL, LIMIT, MARKET, MarketConfig, preset
from rltrader.core.constants import AGENT_ID_BASE, SIMULATED_ID_BASE
from rltrader.core.messages import empty_messages
from rltrader.data import lobster
from rltrader.data.hybrid import HybridReplay
from rltrader.envs import BatchedMarketEnv, EnvConfig

STEP = 100_000_000
BACKGROUND = preset("resilient")


@pytest.fixture(scope="module")
def feed():
    """The first two minutes of the 50-level AAPL hour (2,700 messages)."""
    messages = lobster.read_messages(MESSAGE_92K).messages
    return messages[messages["timestamp"] < messages["timestamp"][0] + 120 * 10**9]


def run(replay: HybridReplay, steps: int, agent_messages=None) -> np.ndarray:
    out = []
    for _ in range(steps):
        until = replay.timestamp + STEP
        given = None if agent_messages is None else agent_messages(replay.timestamp, until)
        out.append(replay.step(until_ts=until, agent_messages=given))
    return np.concatenate(out)


def test_simulated_traders_are_agents_to_the_queue(feed, monkeypatch) -> None:
    """Their messages, given to a plain replay as agent messages (owners renumbered),
    reproduce every event: fills, prices, quantities, counterparties, order."""
    mixed = HybridReplay(feed, n_agents=1, background=BACKGROUND, seed=7)
    sent: list[np.ndarray] = []
    decide = mixed._decide
    monkeypatch.setattr(mixed, "_decide", lambda t: sent.append(decide(t)) or sent[-1])
    steps = 600
    events = run(mixed, steps)
    simulated = np.concatenate(sent)
    first, stop = mixed.background_owners
    n = stop - first
    assert n > 0 and simulated.size > 1000
    assert set(np.unique(simulated["owner"])) <= set(range(first, stop))
    assert simulated["order_id"][simulated["op"] == LIMIT].min() >= SIMULATED_ID_BASE
    fills = events[events["kind"] == FILL]
    history = mixed.history_owner
    for a, b in ((fills["owner"], fills["maker_owner"]), (fills["maker_owner"], fills["owner"])):
        assert np.any((a >= first) & (b == history))   # they trade with the record both ways

    # the same messages as agents 1 .. n of a replay with 1 + n agents
    as_agents = simulated.copy()
    as_agents["owner"] -= first - 1
    plain = HybridReplay(feed, n_agents=1 + n)

    def given(start: int, until: int) -> np.ndarray:
        ts = as_agents["timestamp"]
        return as_agents[(ts > start) & (ts <= until)]

    reference = run(plain, steps, given)
    renumber = np.concatenate([[0], np.full(1, 1 + n), np.arange(1, 1 + n)])  # 0, hist, sim
    for field in ("owner", "maker_owner"):
        sim = events[field].copy()
        known = sim >= 0
        sim[known] = renumber[sim[known]]
        events[field] = sim
    np.testing.assert_array_equal(events, reference)
    np.testing.assert_array_equal(mixed.background_accounts, plain.books.accounts[0, 1:1 + n])
    mixed.books.check_integrity()


def test_the_seed_decides_the_simulated_day(feed) -> None:
    def day(seed: int) -> tuple[np.ndarray, np.ndarray]:
        replay = HybridReplay(feed, n_agents=1, background=BACKGROUND, seed=seed)
        return run(replay, 300), replay.background_accounts.copy()

    a, b, c = day(1), day(1), day(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    replay = HybridReplay(feed, n_agents=1, background=BACKGROUND, seed=3)
    first = run(replay, 200)
    replay.reset(seed=3)                        # the seed restarts the stream
    np.testing.assert_array_equal(run(replay, 200), first)
    replay.reset()                              # a new day from the same stream
    assert not np.array_equal(run(replay, 200), first)


def test_agents_trade_with_simulated_traders_and_keep_their_ids(feed) -> None:
    replay = HybridReplay(feed, n_agents=1, background=BACKGROUND, seed=4)
    run(replay, 100)
    bid, _ = replay.top_of_book()
    order = empty_messages(1)
    t = replay.timestamp
    order[["op", "side", "price", "qty", "order_id", "owner", "timestamp"]] = [
        (MARKET, -1, 0, 400, AGENT_ID_BASE + 1, 0, t)]
    events = replay.step(until_ts=t + STEP, agent_messages=order)
    fills = events[(events["kind"] == FILL) & (events["owner"] == 0)]
    assert fills["qty"].sum() == 400 == -replay.accounts[0]["position"]
    first, stop = replay.background_owners
    makers = fills["maker_owner"]
    assert np.any((makers >= first) & (makers < stop)) and np.any(makers == replay.history_owner)
    bad = order.copy()
    bad["order_id"] = SIMULATED_ID_BASE + 5
    bad["timestamp"] = replay.timestamp
    with pytest.raises(ValueError, match="SIMULATED_ID_BASE"):
        replay.step(until_ts=replay.timestamp + STEP, agent_messages=bad)


def test_new_orders_in_a_halt_are_refused_cancels_pass(feed) -> None:
    t0 = int(feed["timestamp"][0])
    halt = (t0 + 20 * 10**9, t0 + 30 * 10**9)
    replay = HybridReplay(feed, n_agents=1, background=BACKGROUND, seed=5, halts=[halt])
    sent: list[np.ndarray] = []
    decide = replay._decide
    replay._decide = lambda t: sent.append(decide(t)) or sent[-1]   # type: ignore[method-assign]
    run(replay, 400)
    simulated = np.concatenate(sent)
    inside = (simulated["timestamp"] >= halt[0]) & (simulated["timestamp"] < halt[1])
    assert replay.stats.background_refused_in_halt > 0
    assert np.all(simulated["op"][inside] == CANCEL)
    assert np.any(simulated["op"][~inside] == LIMIT)


def test_bad_background_configs_are_refused(feed) -> None:
    with pytest.raises(TypeError, match="MarketConfig"):
        HybridReplay(feed, background={"noise": 1})
    with pytest.raises(ValueError, match="one book"):
        HybridReplay(feed, background=BACKGROUND.replace(copies=2))
    with pytest.raises(ValueError, match="seed"):
        HybridReplay(feed, background=BACKGROUND, seed=-1)
    quiet = HybridReplay(feed, background=MarketConfig())   # no populations: the record
    plain = HybridReplay(feed)
    np.testing.assert_array_equal(run(quiet, 50), run(plain, 50))


def test_the_env_runs_on_a_replay_with_simulated_traders(feed) -> None:
    config = EnvConfig(horizon=50, warmup_steps=5)

    def episode(seed: int) -> tuple[np.ndarray, np.ndarray]:
        replay = HybridReplay(feed, n_agents=2, background=BACKGROUND)
        env = BatchedMarketEnv(config, n_envs=1, n_agents=2, seed=seed, source=replay)
        rng = np.random.default_rng(0)
        rewards = []
        for _ in range(120):
            _, r, _, _ = env.step(rng.integers(0, env.action_high, 2))
            rewards.append(r.copy())
            replay.books.check_integrity()
        assert replay.stats.background_messages > 0
        assert np.all(np.abs(env.accounts()["position"]) <= env.position_limit)
        return np.array(rewards), replay.background_accounts.copy()

    a, b = episode(11), episode(11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(episode(12)[1], a[1])


def test_each_replay_of_an_env_draws_its_own_simulated_day(feed) -> None:
    replays = [HybridReplay(feed, n_agents=1, background=BACKGROUND) for _ in range(2)]
    env = BatchedMarketEnv(EnvConfig(horizon=50, warmup_steps=5), n_envs=2, n_agents=1,
                           seed=3, source=replays)
    for _ in range(100):
        env.step(np.zeros(2, dtype=np.int64))
    a, b = (r.background_accounts for r in replays)
    assert a["volume"].sum() > 0 and not np.array_equal(a, b)
