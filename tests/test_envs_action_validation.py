"""Every adapter refuses an action that is not a whole number in the action space, with
the batched env's error (bug 6: the Gymnasium and PettingZoo adapters used to truncate
1.7 to 1 and read the string "2" as 2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig, MarketEnv, MarketParallelEnv, MarketVectorEnv
from rltrader.envs.sb3 import SB3VecEnv

CONFIG = EnvConfig(horizon=20, warmup_steps=30)
MAKER = CONFIG.replace(action_mode="market_making")

# (bad action, the error, what its message says); Discrete(n) of the default config
BAD: list[tuple[Any, type[Exception], str]] = [
    (1.7, ValueError, "not whole numbers"),
    (np.float32(2.5), ValueError, "not whole numbers"),
    (float("nan"), ValueError, "NaN or infinite"),
    ("2", TypeError, "must be integers"),
    (None, TypeError, "must be integers"),
    (-1, ValueError, "outside Discrete"),
    (10_000, ValueError, "outside Discrete"),
]


@pytest.mark.parametrize(("action", "error", "message"), BAD)
def test_gymnasium_env_refuses(action: Any, error: type[Exception], message: str) -> None:
    env = MarketEnv(CONFIG, n_others=1)
    env.reset(seed=1)
    with pytest.raises(error, match=message):
        env.step(action)


def test_gymnasium_env_takes_whole_numbers_of_any_type() -> None:
    env = MarketEnv(CONFIG)
    env.reset(seed=1)
    for action in (2, np.int64(2), np.int32(2), 2.0, np.array(2)):
        env.step(action)
        assert env._actions[0] == 2


def test_gymnasium_env_market_making_refuses_a_fractional_column() -> None:
    env = MarketEnv(MAKER)
    env.reset(seed=1)
    env.step(np.array([1, 1, 0]))
    with pytest.raises(ValueError, match="not whole numbers"):
        env.step(np.array([1.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="outside MultiDiscrete"):
        env.step(np.array([1, 1, 99]))


def test_gymnasium_env_checks_the_frozen_policy_too() -> None:
    env = MarketEnv(CONFIG, n_others=2, others=lambda obs: np.full(len(obs), 1.5))
    env.reset(seed=1)
    with pytest.raises(ValueError, match="not whole numbers"):
        env.step(0)


@pytest.mark.parametrize(("action", "error", "message"), BAD)
def test_pettingzoo_env_refuses(action: Any, error: type[Exception], message: str) -> None:
    env = MarketParallelEnv(CONFIG, n_agents=2)
    env.reset(seed=1)
    with pytest.raises(error, match=message):
        env.step({"trader_0": 0, "trader_1": action})
    with pytest.raises(error, match=message):            # the out-of-order path
        env.step({"trader_1": action, "trader_0": 0})


def test_pettingzoo_env_keeps_the_agents_order() -> None:
    env = MarketParallelEnv(CONFIG, n_agents=2)
    env.reset(seed=1)
    env.step({"trader_1": np.int64(3), "trader_0": 2.0})
    assert env._actions.tolist() == [2, 3]


@pytest.mark.parametrize(("action", "error", "message"), BAD)
def test_vector_env_refuses(action: Any, error: type[Exception], message: str) -> None:
    venv = MarketVectorEnv(BatchedMarketEnv(CONFIG, n_envs=1, n_agents=2))
    venv.reset(seed=1)
    with pytest.raises(error, match=message):
        venv.step(np.array([0, action], dtype=object if action is None else None))


@pytest.mark.parametrize(("action", "error", "message"), BAD)
def test_sb3_vec_env_refuses(action: Any, error: type[Exception], message: str) -> None:
    venv = SB3VecEnv(BatchedMarketEnv(CONFIG, n_envs=1, n_agents=2))
    venv.reset()
    with pytest.raises(error, match=message):
        venv.step(np.array([0, action], dtype=object if action is None else None))
