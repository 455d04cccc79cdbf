"""The batched env on real LOBSTER flow (a HybridReplay as the data source): agents trade
on top of the AAPL record; the env truncates and starts over when the record ends."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._env")
from test_data_lobster import MESSAGE_999, ORDERBOOK_999  # noqa: E402

from rltrader.data import lobster  # noqa: E402
from rltrader.data.hybrid import HybridReplay  # noqa: E402
from rltrader.data.lobster_exact import exact_messages  # noqa: E402
from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names  # noqa: E402

# 999 messages over 49 s: 100 ms steps, 1 s of warm-up
CONFIG = EnvConfig(horizon=100, warmup_steps=10, replay_step_ns=100_000_000)
NAMES = observation_names(CONFIG.depth)


@pytest.fixture(scope="module")
def feed():
    return exact_messages(lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999))


def make(feed, **changes) -> BatchedMarketEnv:
    return BatchedMarketEnv(CONFIG.replace(**changes), n_envs=1, n_agents=2, seed=0,
                            source=HybridReplay(feed, n_agents=2, taker_fee_ppm=100))


def test_agents_trade_on_the_real_book(feed) -> None:
    env = make(feed)
    replay = env.source
    start = replay.timestamp
    obs = env.reset()
    bid, ask = replay.top_of_book()
    mid = (bid + ask) / 2
    scale = CONFIG.price_scale
    assert obs[0, NAMES.index("bid_price_0")] == np.float32((bid - mid) / scale)
    assert obs[0, NAMES.index("ask_price_0")] == np.float32((ask - mid) / scale)
    buy, rest = 2 * 4 + 1, 2                            # market buy; limit buy at the touch
    for _ in range(20):
        obs, rewards, terminated, truncated = env.step([buy, rest])
    assert replay.timestamp >= start + 20 * CONFIG.replay_step_ns
    acc = env.accounts()[0]
    assert acc["position"][0] == min(20 * env.order_qty[0], env.position_limit[0])
    assert acc["cash"][0] < 0 and acc["fees"][0] > 0     # paid the real asks and the fee
    assert obs[0, NAMES.index("inventory")] > 0
    assert replay.stats.agent_messages > 20
    bid, ask = replay.top_of_book()
    assert obs[1, NAMES.index("spread")] == np.float32((ask - bid) / scale)
    replay.books.check_integrity()


def test_record_end_truncates_and_starts_over(feed) -> None:
    env = make(feed, horizon=10_000)
    steps = 0
    while True:
        steps += 1
        obs, _, terminated, truncated = env.step([0, 2])
        if truncated.any():
            break
        assert steps < 1000
    assert truncated.all() and not terminated.any()
    assert 400 < steps < 500                              # ~48 s of record in 100 ms steps
    assert np.all(env.final_observations[:, NAMES.index("time_left")] < 1.0)
    assert np.all(obs[:, NAMES.index("time_left")] == 1.0)
    assert not env.source.done and env.source.stats.historical_messages < 999


def test_several_copies_of_the_record_are_independent(feed) -> None:
    replays = [HybridReplay(feed, n_agents=2) for _ in range(2)]
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=0, source=replays)
    alone = make(feed)                                  # one copy, agents holding
    buy = 2 * 4 + 1
    for _ in range(20):
        obs, *_ = env.step([buy, buy, 0, 0])
        lone, *_ = alone.step([0, 0])
    # copy 1 never saw copy 0's buys (its size classes differ)
    same = np.array([name != "log_size_class" for name in NAMES])
    np.testing.assert_array_equal(obs[2:, same], lone[:, same])
    acc = env.accounts()
    assert np.all(acc["position"][0] > 0) and np.all(acc["position"][1] == 0)
    assert replays[1].stats.agent_messages == 0 < replays[0].stats.agent_messages
    assert env.episode_step.tolist() == [20, 20]


def test_replay_sources_must_match_the_envs(feed) -> None:
    replay = HybridReplay(feed, n_agents=1)
    with pytest.raises(ValueError, match="one distinct replay per env"):
        BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, source=replay)
    with pytest.raises(ValueError, match="one distinct replay per env"):
        BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, source=[replay, replay])
    with pytest.raises(ValueError, match="n_agents >= 2"):
        BatchedMarketEnv(CONFIG, n_envs=1, n_agents=2, source=replay)


def test_orders_sent_into_a_trading_halt_are_refused_not_held(feed) -> None:
    """A halt (what LOBSTER type-7 rows give ``HybridReplay``) in the first 3 s: an agent
    market-buying every step never passes its limit, the refusals are counted, and no
    agent order is left in the book untracked (held to the resume instead, they arrived
    after the kernel had counted them)."""
    env = make(feed, size_classes=(1.0, 1.0), horizon=500)
    replay = env.source
    replay._halts = np.array([[replay.timestamp + 1, replay.timestamp + 3_000_000_000]])
    limit = env.position_limit[0]
    for _ in range(45):
        env.step([2 * 4 + 1, 1])                     # market buy; limit buy inside
        assert env.accounts()[0]["position"][0] <= limit
    assert env.refused_in_halt > 20
    assert replay.stats.held_for_halt == 0
    tracked = set(env.kernel.agent_arrays["slot_id"][1][env.kernel.agent_arrays["slot_id"][1] > 0])
    prices = replay.books.top_levels(replay.books.window)[0][0, 0]
    for price in prices[prices > 0]:
        queue = replay.books.level_queue(0, 1, int(price))
        assert set(queue["order_id"][queue["owner"] == 1]) <= tracked


def test_without_latency_agents_interleave_with_the_recorded_flow(feed) -> None:
    """Each decision gets a uniform time within the step (the replay merges by time):
    agents do not all go before the step's recorded messages."""
    env = make(feed)
    replay, offsets = env.source, []
    step = replay.step

    def spy(*args, agent_messages=None, **kwargs):
        if agent_messages is not None and agent_messages.size:
            offsets.extend(agent_messages["timestamp"] - replay.timestamp)
        return step(*args, agent_messages=agent_messages, **kwargs)

    replay.step = spy
    for _ in range(30):
        env.step([2 * 4 + 1, 1])
    offsets = np.array(offsets)
    assert offsets.size > 30
    assert 0.3 < np.mean(offsets > CONFIG.replay_step_ns // 2) < 0.7
