"""Arrival is fair: an agent's row never decides when its orders reach the book; latency
is per agent, in ns, and an order in flight is not in the book."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.training import evaluation as ev
from rltrader.training import exploits as x

NAMES = observation_names(5)
DEEP = (6, 7, 8, 9)             # limit offsets that never fill here
JOIN = 1                        # discrete: limit buy at limit_offsets[0]


def queue_order(env: BatchedMarketEnv, steps: int) -> np.ndarray:
    """Every step both agents of each book join the same deep bid level; returns, per
    (step, book), whether agent 0's order of that step stands ahead of agent 1's in the
    level's queue (orders of one step are told apart by their ids: one each per step)."""
    books, first = env.kernel.books, env.market.n_traders
    ahead = []
    for _ in range(steps):
        env.step(np.full(env.num_agents_total, JOIN))
        for e in range(env.n_envs):
            ids = env.kernel.agent_arrays["slot_id"][2 * e: 2 * e + 2]
            newest = [int(ids[i].max()) for i in range(2)]
            order = books.order(e, newest[0])
            other = books.order(e, newest[1])
            if order is None or other is None or order["price"] != other["price"]:
                continue
            queue = books.level_queue(e, 1, int(order["price"]))
            owner = queue["owner"] - first
            position = {int(owner[j]): j for j in range(len(queue))
                        if queue["order_id"][j] in newest}
            if len(position) == 2:
                ahead.append(position[0] < position[1])
    return np.array(ahead)


def test_an_agent_s_row_does_not_decide_its_queue_position() -> None:
    """The old kernel sent row 0's orders first: it was ahead 100 % of the time."""
    env = BatchedMarketEnv(EnvConfig(limit_offsets=DEEP, max_orders=16, size_classes=(1, 1)),
                           n_envs=64, n_agents=2, seed=5)
    ahead = queue_order(env, 12)
    assert len(ahead) > 500
    assert abs(ahead.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(ahead))


def test_a_lower_latency_is_an_edge() -> None:
    """Agent 0 sends at once, agent 1 30 ms later (of 100 ms steps): from the same step,
    agent 0 is first unless its uniform send time is more than 0.3 steps after agent 1's,
    P = 1 - 0.7^2 / 2 = 0.755."""
    config = EnvConfig(limit_offsets=DEEP, max_orders=16, size_classes=(1, 1),
                       latency_ns=(0, 30_000_000))
    env = BatchedMarketEnv(config, n_envs=64, n_agents=2, seed=6)
    ahead = queue_order(env, 12)
    assert len(ahead) > 500
    assert abs(ahead.mean() - 0.755) < 4 * 0.43 / np.sqrt(len(ahead))


def test_identical_makers_earn_the_same_whatever_their_row() -> None:
    """Four identical quoting makers per market: paired differences between rows are
    within noise (the old kernel: row 0 - row 3 = +4.0 +- 0.15 ticks per lot)."""
    config = EnvConfig(action_mode="market_making", horizon=300)
    result = ev.run_lineup(config, [(x.FixedSpreadMaker(), range(4))], n_envs=256,
                          n_agents=4, seeds=(0,), episodes=3)
    for a, b in ((0, 3), (0, 1), (2, 3)):
        difference = result.rows(a, b)
        assert difference.ci_low < 0 < difference.ci_high, (a, b, difference)
        assert difference.standard_error < 1.0          # the old +4.0 would stand out


def test_agents_and_background_interleave() -> None:
    """Zero-latency agents do not always reach the book before the background traders:
    in the merged batch of a step, books where both sent something start with an agent's
    message about as often as the agents' share of the step's decisions says."""
    env = BatchedMarketEnv(EnvConfig(market="thin"), n_envs=64, n_agents=1, seed=2)
    first_owner = env.market.n_traders
    agent_first = []
    for _ in range(40):
        timestamp = env._timestamp()
        env.step(np.full(64, JOIN))
        batch = env.kernel.messages
        batch = batch[batch["timestamp"] == timestamp]
        for e in range(64):
            owners = batch["owner"][batch["book"] == e]
            if (owners >= first_owner).any() and (owners < first_owner).any():
                agent_first.append(owners[0] >= first_owner)
    assert len(agent_first) > 100
    assert 0.15 < np.mean(agent_first) < 0.85


@pytest.mark.parametrize("latency_ms", [0, 50, 250])
def test_latency_delays_orders_by_whole_steps(latency_ms: int) -> None:
    """An order sent at step 0 with latency L (100 ms steps) leaves at a uniform time u
    in the step and arrives in step floor(u + L / 100 ms): in flight until then."""
    config = EnvConfig(limit_offsets=DEEP, latency_ns=latency_ms * 1_000_000)
    env = BatchedMarketEnv(config, n_envs=200, n_agents=1, seed=3)
    arrived = np.full(200, -1)
    for t in range(6):
        obs, *_ = env.step(np.full(200, JOIN if t == 0 else 0))
        resting = obs[:, NAMES.index("orders")] > 0
        flying = obs[:, NAMES.index("in_flight")] > 0
        assert not (resting & flying).any()
        arrived[(arrived < 0) & resting] = t
    low, high = latency_ms // 100, (latency_ms + 99) // 100
    assert set(arrived) <= set(range(low, high + 1))
    if high > low:          # the share arriving late is the share of u above 1 - L/100
        share = np.mean(arrived == high)
        expected = (latency_ms % 100) / 100
        assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / 200)


def test_a_thousand_steps_with_latency_are_bit_identical() -> None:
    config = EnvConfig(horizon=120, latency_ns=140_000_000, latency_jitter_ns=80_000_000,
                       end_of_episode="carry")

    def rollout() -> list[np.ndarray]:
        env = BatchedMarketEnv(config, n_envs=4, n_agents=3, seed=9)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(1000):
            obs, rewards, *_ = env.step(rng.integers(0, 12, 12))
            out += [obs.copy(), rewards.copy()]
        return out

    first, second = rollout(), rollout()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
