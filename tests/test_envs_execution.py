"""The execution action mode: each episode an agent has a parent order to complete by the
deadline; it waits or sends a child (market, or resting at the touch) at a rate; the
reward is the implementation shortfall against the arrival mid."""

from __future__ import annotations

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

CONFIG = EnvConfig(action_mode="execution", horizon=40, warmup_steps=60,
                   size_classes=(1.0, 4.0), execution_size=10.0)
NAMES = observation_names(5, "execution")
TWAP = 2                          # market child at rate 1.0 (execution_rates[1])


def column(name: str) -> int:
    return NAMES.index(name)


def test_the_parent_is_completed_by_the_deadline_and_then_unwound() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=1)
    arrays = env.kernel.agent_arrays
    start = env.accounts()["position"].ravel().copy()
    side, lots = arrays["parent_side"].copy(), arrays["parent_lots"].copy()
    np.testing.assert_array_equal(lots, np.tile([10, 40], 8))
    obs = env.observations
    np.testing.assert_array_equal(obs[:, column("parent_side")], side)
    np.testing.assert_array_equal(obs[:, column("parent_left")], 1.0)
    for _ in range(40):                 # agent 0 waits, agent 1 trades TWAP with markets
        obs, rewards, terminated, _ = env.step(np.tile([0, TWAP], 8))
    assert terminated.all()
    done = env.accounts()["position"].ravel() - start
    np.testing.assert_array_equal(done, side * lots)          # completed at the deadline
    # the next parent unwinds what was carried
    np.testing.assert_array_equal(arrays["parent_side"], -side)
    np.testing.assert_array_equal(arrays["parent_lots"], lots)


def test_the_reward_is_the_shortfall_against_the_arrival_mid() -> None:
    """Sum of an episode's rewards x parent lots = cash change + arrival x position change
    (minus the shortfall): a fill at the arrival mid earns 0, a worse one costs."""
    env = BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=2)
    arrays = env.kernel.agent_arrays
    rng = np.random.default_rng(0)
    for _ in range(3):
        acc0 = env.accounts()
        arrival, lots = arrays["arrival"].copy(), arrays["parent_lots"].copy()
        total = np.zeros(16)
        for _ in range(40):
            _, rewards, terminated, _ = env.step(
                rng.integers(0, env.single_action_space.n, 16))
            total += rewards
        acc = env.accounts()
        value = ((acc["cash"] - acc0["cash"]).ravel()
                 + arrival * (acc["position"] - acc0["position"]).ravel())
        np.testing.assert_allclose(total * lots, value, rtol=1e-4, atol=0.5)
        assert (value < 0).mean() > 0.5       # crossing the spread costs, on the whole


def test_splitting_a_large_parent_beats_dumping_it_at_the_deadline() -> None:
    """A parent of 10 order sizes of a size-20 agent (200 lots): TWAP with market children
    pays less than waiting and sending it all at the deadline (impact is concave)."""
    config = CONFIG.replace(size_classes=(20.0,), horizon=30)
    results = {}
    for name, action in (("twap", TWAP), ("wait", 0)):
        env = BatchedMarketEnv(config, n_envs=48, n_agents=1, seed=3)
        total = np.zeros(48)
        for _ in range(30):
            _, rewards, *_ = env.step(np.full(48, action))
            total += rewards
        results[name] = total
    difference = results["twap"] - results["wait"]
    assert difference.mean() > 3 * difference.std() / np.sqrt(48)


def test_a_thousand_execution_steps_are_bit_identical() -> None:
    def rollout() -> list[np.ndarray]:
        env = BatchedMarketEnv(CONFIG.replace(latency_ns=60_000_000), n_envs=3, n_agents=2,
                               seed=4)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(1000):
            obs, rewards, *_ = env.step(rng.integers(0, env.single_action_space.n, 6))
            out += [obs.copy(), rewards.copy()]
            assert np.all(np.abs(env.accounts()["position"].ravel()) <= env.position_limit)
        return out

    assert all(np.array_equal(a, b) for a, b in zip(rollout(), rollout(), strict=True))


def test_children_never_pass_the_parent_nor_the_limit() -> None:
    """Random children for many episodes, with a parent as large as the limit allows:
    each episode completes exactly its parent (never more: a resting child that fills
    before its cancel or replace lands is counted), the account stays within its limit,
    and waiting withdraws the resting child on either side."""
    config = CONFIG.replace(execution_size=20.0, size_classes=(1.0, 3.0), horizon=17)
    for latency in (0, 130_000_000):
        env = BatchedMarketEnv(config.replace(latency_ns=latency), n_envs=16, n_agents=2,
                               seed=5)
        arrays = env.kernel.agent_arrays
        rng = np.random.default_rng(latency)
        start = env.accounts()["position"].ravel().copy()
        side, lots = arrays["parent_side"].copy(), arrays["parent_lots"].copy()
        for _ in range(170):
            _, _, terminated, _ = env.step(rng.integers(0, env.single_action_space.n, 32))
            position = env.accounts()["position"].ravel()
            assert np.all(np.abs(position) <= env.position_limit)
            if terminated[0]:
                np.testing.assert_array_equal(position - start, side * lots)
                start = position.copy()
                side, lots = arrays["parent_side"].copy(), arrays["parent_lots"].copy()
        passive = 1 + len(config.execution_rates) + 1          # a resting child, rate 1
        env.step(np.full(32, passive))
        env.step(np.zeros(32, np.int64))                       # wait: withdrawn
        if latency == 0:
            assert not (arrays["slot_id"] != 0).any()
