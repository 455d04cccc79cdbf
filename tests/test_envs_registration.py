"""The Gymnasium registration and the ecosystem's constructors: ``gymnasium.make`` after a
bare ``import rltrader``, Stable-Baselines3's ``make_vec_env`` (which asks for
``render_mode="rgb_array"``), and the render mode itself."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

import rltrader
from rltrader.envs import EnvConfig, MarketEnv

CONFIG = EnvConfig(horizon=20, warmup_steps=30)

FRESH = """
import gymnasium
import rltrader
env = gymnasium.make("rltrader/Market-v1")
obs, _ = env.reset(seed=1)
assert obs.shape == env.observation_space.shape
env.step(0)
from rltrader.envs import ShardedMarketEnv
print("ok", ShardedMarketEnv.__name__)
"""


def test_make_works_in_a_fresh_process_after_import_rltrader() -> None:
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "ShardedMarketEnv"]


def test_sb3_make_vec_env() -> None:
    assert rltrader.__version__       # the import registers the env
    venv = make_vec_env("rltrader/Market-v1", n_envs=2, seed=3,
                        env_kwargs={"config": CONFIG})
    obs = venv.reset()
    assert obs.shape == (2, venv.observation_space.shape[0])
    obs, rewards, dones, _ = venv.step(np.array([1, 2]))
    assert obs.shape == (2, venv.observation_space.shape[0]) and rewards.shape == (2,)
    assert venv.render_mode == "rgb_array"
    venv.close()


def test_rgb_array_render_is_a_depth_chart() -> None:
    env = gym.make("rltrader/Market-v1", config=CONFIG, render_mode="rgb_array")
    env.reset(seed=1)
    env.step(0)
    image = env.render()
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.shape == (96, 2 * CONFIG.depth * 8, 3)
    assert (image != 255).any()               # a book with resting orders draws bars


def test_render_modes() -> None:
    assert MarketEnv.metadata["render_modes"] == ["rgb_array"]
    assert MarketEnv(CONFIG).render() is None
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        MarketEnv(CONFIG, render_mode="human")
