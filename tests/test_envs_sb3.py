"""SB3VecEnv: the VecEnv contract (shapes, terminal observations, seeding) and a PPO smoke."""

from __future__ import annotations

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.envs.sb3 import SB3VecEnv

CONFIG = EnvConfig(horizon=20, warmup_steps=30)


def test_vec_env_contract() -> None:
    venv = SB3VecEnv(BatchedMarketEnv(CONFIG, n_envs=2, n_agents=3, seed=1))
    assert venv.num_envs == 6
    assert venv.observation_space == venv.batched_env.single_observation_space
    obs = venv.reset()
    assert obs.shape == (6, venv.observation_space.shape[0])
    rng = np.random.default_rng(0)
    for step in range(1, 21):
        actions = rng.integers(0, venv.action_space.n, 6)
        obs2, rewards, dones, infos = venv.step(actions)
        assert obs2 is not venv.batched_env.observations     # SB3 keeps what it is given
        assert rewards.shape == (6,) and dones.dtype == bool and len(infos) == 6
        assert dones.all() == (step == 20)
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"],
                                      venv.batched_env.final_observations[i])
        assert info["TimeLimit.truncated"] is False
    assert venv.get_attr("n_agents") == [3] * 6 and venv.env_is_wrapped(object) == [False] * 6


def test_seed_makes_reset_reproducible() -> None:
    venv = SB3VecEnv(BatchedMarketEnv(CONFIG, n_envs=1, n_agents=2, seed=1))
    runs = []
    for _ in range(2):
        venv.seed(7)
        first = venv.reset()
        steps = [venv.step(np.array([9, 10]))[0] for _ in range(5)]
        runs.append(np.concatenate([first, *steps]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_ppo_runs_a_few_hundred_steps() -> None:
    venv = VecMonitor(SB3VecEnv(BatchedMarketEnv(CONFIG, n_envs=2, n_agents=4, seed=3)))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0,
                device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (8,)
