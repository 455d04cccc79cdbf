"""The continuous action mode: a Box of (bid offset, ask offset, bid size, ask size),
offsets rounded to ticks and sizes to lots, one quote per side as in market making."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.envs.sb3 import SB3VecEnv

CONFIG = EnvConfig(action_mode="continuous", horizon=100_000, warmup_steps=60,
                   size_classes=(1.0, 3.0))


def test_the_space_and_its_bounds() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=1)
    space = env.single_action_space
    np.testing.assert_array_equal(space.low, [-10, -10, 0, 0])
    np.testing.assert_array_equal(space.high, [10, 10, 4, 4])
    for bad, match in ((np.full((4, 4), np.nan), "NaN"), (np.full((4, 4), 11.0), "outside"),
                       (np.full((4, 3), 1.0), "shape"), (np.full((4, 4), -0.1), "outside")):
        with pytest.raises(ValueError, match=match):
            env.step(bad)


def test_quotes_are_rounded_to_ticks_and_lots() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=4, n_agents=2, seed=2)
    books = env.kernel.books
    bids = np.array([books.best_bid(e) for e in range(4)])
    asks = np.array([books.best_ask(e) for e in range(4)])
    # agent 0 (1 lot per order size): bid 2.4 ticks back, 1.3 sizes -> 2 ticks, 1 lot; ask
    # 0.2 sizes -> under half a lot: no ask. Agent 1 (3 lots): ask 5.6 ticks back, 0.5
    # sizes -> 6 ticks, 2 lots (1.5 rounds up); no bid.
    action = np.tile([[2.4, 0.0, 1.3, 0.2], [0.0, 5.6, 0.0, 0.5]], (4, 1))
    env.step(action)
    arrays = env.kernel.agent_arrays
    live = arrays["slot_id"] != 0
    np.testing.assert_array_equal(live[0::2, 0], True)
    np.testing.assert_array_equal(live[0::2, 1], False)
    np.testing.assert_array_equal(live[1::2, 0], False)
    np.testing.assert_array_equal(live[1::2, 1], True)
    np.testing.assert_array_equal(arrays["slot_price"][0::2, 0], bids - 2)
    np.testing.assert_array_equal(arrays["slot_leaves"][0::2, 0], 1)
    np.testing.assert_array_equal(arrays["slot_price"][1::2, 1], asks + 6)
    np.testing.assert_array_equal(arrays["slot_leaves"][1::2, 1], 2)
    ids = arrays["slot_id"].copy()
    env.step(action + np.array([0.05, 0.0, 0.1, 0.0]))  # same ticks and lots: kept
    same = arrays["slot_id"][0::2, 0] == ids[0::2, 0]
    assert same.any()                      # unless the touch moved or the bid filled


def test_sb3_vec_env_steps_with_float_actions() -> None:
    venv = SB3VecEnv(BatchedMarketEnv(CONFIG.replace(horizon=10), n_envs=2, n_agents=2,
                                      seed=3))
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):
        obs, rewards, dones, infos = venv.step(
            rng.uniform(venv.action_space.low, venv.action_space.high, (4, 4)))
    assert obs.shape == (4, venv.observation_space.shape[0]) and len(infos) == 4


def test_a_thousand_continuous_steps_are_bit_identical() -> None:
    def rollout() -> list[np.ndarray]:
        env = BatchedMarketEnv(CONFIG.replace(horizon=150), n_envs=3, n_agents=2, seed=4)
        rng = np.random.default_rng(0)
        space = env.single_action_space
        out = []
        for _ in range(1000):
            obs, rewards, *_ = env.step(rng.uniform(space.low, space.high, (6, 4)))
            out += [obs.copy(), rewards.copy()]
            assert np.all(np.abs(env.accounts()["position"].ravel()) <= env.position_limit)
        return out

    assert all(np.array_equal(a, b) for a, b in zip(rollout(), rollout(), strict=True))


def test_the_box_s_own_float32_bounds_are_inside_it() -> None:
    """Bounds that float32 cannot hold exactly (10.1, 0.3): the space's own low and high,
    and actions clipped to them (as Stable-Baselines3 clips), are accepted."""
    env = BatchedMarketEnv(CONFIG.replace(continuous_max_offset=10.1, continuous_max_size=0.3),
                           n_envs=1, n_agents=2, seed=1)
    space = env.single_action_space
    env.step(np.stack([space.high, space.low]))
    env.step(np.clip(np.full((2, 4), 99.0), space.low, space.high))

