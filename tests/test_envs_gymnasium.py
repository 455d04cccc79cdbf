"""Gymnasium adapters: the single-agent env passes check_env and is registered; the vector
env follows the same-step autoreset contract."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rltrader.envs import BatchedMarketEnv, EnvConfig, MarketEnv, MarketVectorEnv, observation_names

CONFIG = EnvConfig(horizon=20, warmup_steps=30)
TIME_LEFT = observation_names(CONFIG.depth).index("time_left")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_env_and_registration() -> None:
    env = gym.make("rltrader/Market-v1", config=CONFIG, n_others=3)
    assert isinstance(env.unwrapped, MarketEnv)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape and info == {}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("mode", ["discrete", "market_making", "order", "continuous",
                                  "execution"])
def test_stable_baselines3_env_checker(mode: str) -> None:
    sb3_check_env(MarketEnv(CONFIG.replace(action_mode=mode), n_others=1))


def test_single_agent_episode_and_frozen_others() -> None:
    seen = []

    def others(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.shape)
        return np.full(len(obs), 9)                     # market buys

    env = MarketEnv(CONFIG, n_others=2, others=others)
    env.reset(seed=3)
    start = env.batched.accounts()["position"].copy()
    for step in range(1, 21):
        obs, reward, terminated, truncated, _ = env.step(0)
        assert isinstance(reward, float) and terminated == (step == 20) and not truncated
        if step == 19:
            bought = env.batched.accounts()["position"] - start
    assert obs[TIME_LEFT] == 0.0 and seen == [(2, env.observation_space.shape[0])] * 20
    assert bought[0, 0] == 0 and np.all(bought[0, 1:] > 0)
    # the episode's end liquidates every agent's position (end_of_episode="liquidate")
    np.testing.assert_array_equal(env.batched.accounts()["position"], start)


def test_vector_env_same_step_autoreset() -> None:
    venv = MarketVectorEnv(BatchedMarketEnv(CONFIG.replace(horizon=5), n_envs=2, n_agents=3))
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.num_envs == 6 and venv.action_space.shape == (6,)
    obs, _ = venv.reset(seed=4)
    assert venv.observation_space.contains(obs)
    for step in range(1, 6):
        obs, rewards, terms, truncs, infos = venv.step(venv.action_space.sample())
        assert terms.all() == (step == 5)
    assert infos["_final_obs"].all()
    assert all(f[TIME_LEFT] == 0.0 for f in infos["final_obs"])
    assert np.all(obs[:, TIME_LEFT] == 1.0)
    obs2, _ = MarketVectorEnv(BatchedMarketEnv(CONFIG.replace(horizon=5), n_envs=2,
                                               n_agents=3)).reset(seed=4)
    np.testing.assert_array_equal(venv.reset(seed=4)[0], obs2)
