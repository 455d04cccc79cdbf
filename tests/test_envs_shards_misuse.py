"""ShardedMarketEnv checks its arguments before it allocates shared memory, frees what it
allocated when construction fails (a worker that dies at start-up is a RuntimeError, not
a bare EOFError with every segment leaked), and refuses step/reset after close."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import rltrader.envs.shards as shards
from rltrader.envs import EnvConfig
from rltrader.envs.shards import ShardedMarketEnv

CONFIG = EnvConfig(horizon=15, warmup_steps=5)


def _explode() -> None:
    raise RuntimeError("boom: this config cannot be unpickled")


class UnpicklableConfig(EnvConfig):
    """Builds in the main process; a spawned worker dies unpickling it."""

    def __reduce__(self) -> Any:
        return (_explode, ())


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every SharedMemory segment the env creates."""
    made: list[Any] = []
    real = shards.SharedMemory

    def record(*args: Any, **kwargs: Any) -> Any:
        shm = real(*args, **kwargs)
        if kwargs.get("create"):
            made.append(shm)
        return shm

    monkeypatch.setattr(shards, "SharedMemory", record)
    return made


def _gone(shm: Any) -> bool:
    return not os.path.exists(f"/dev/shm/{shm.name.lstrip('/')}")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_workers": 1.5}, "n_workers must be an int"),
    ({"n_workers": 0}, "n_workers must be an int"),
    ({"n_workers": 3}, "n_workers must be an int"),
    ({"n_workers": True}, "n_workers must be an int"),
    ({"n_envs": 2.0}, "n_envs must be an int"),
    ({"n_agents": 1.5}, "n_agents must be an int"),
    ({"seed": -1}, "seed must be an int"),
    ({"seed": 1.5}, "seed must be an int"),
])
def test_bad_arguments_allocate_nothing(created: list[Any], kwargs: dict, message: str
                                        ) -> None:
    args = {"n_envs": 2, "n_agents": 1, "n_workers": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        ShardedMarketEnv(CONFIG, **args)
    assert created == []


def test_a_config_that_is_not_an_env_config_is_refused(created: list[Any]) -> None:
    with pytest.raises(TypeError, match="config must be an EnvConfig"):
        ShardedMarketEnv({"horizon": 5}, n_envs=2, n_agents=1, n_workers=1)  # type: ignore
    assert created == []


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm to look at")
def test_a_worker_dying_at_start_up_is_a_runtime_error_and_frees_everything(
        created: list[Any]) -> None:
    with pytest.raises(RuntimeError, match="worker 0 failed"):
        ShardedMarketEnv(UnpicklableConfig(horizon=15, warmup_steps=5), n_envs=2, n_agents=1,
                         n_workers=1)
    assert len(created) == 6 and all(_gone(shm) for shm in created)


def test_step_and_reset_after_close_raise() -> None:
    env = ShardedMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=1)
    env.step(np.zeros(2, dtype=np.int64))
    env.close()
    with pytest.raises(RuntimeError, match="ShardedMarketEnv is closed"):
        env.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(RuntimeError, match="ShardedMarketEnv is closed"):
        env.reset()
    with pytest.raises(RuntimeError, match="ShardedMarketEnv is closed"):
        env.reset(seed=1)
    env.close()                                      # still idempotent
