"""The shipped ``pretrained:execution`` checkpoint (docs/training.md, "Round 9, execution:
round 14's protocol"): round 8's recipe (``examples/train/execution_restarts.toml``),
training seed 3, guarded by a column guard whose action is a resting child at 1x TWAP of
what is left. On replays of the real AAPL hour the guard fires on every step and the
agent rests its children at that rate; on ``realistic`` the policy itself acts (the guard
fires on a few steps in ten thousand) and rests most of its children."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")
import torch  # noqa: E402

from rltrader.envs import BatchedMarketEnv, observation_names  # noqa: E402
from rltrader.training.evaluate import (  # noqa: E402
    PRETRAINED,
    TASKS,
    CheckpointStrategy,
    lobster_sources,
)
from rltrader.training.ppo.guard import GuardedPolicy  # noqa: E402

CONFIG = TASKS["execution"].replace(horizon=300)
PATH = PRETRAINED / "execution.pt"
READ = [f"{side}_price_{k}" for side in ("bid", "ask") for k in range(5)] + [
    "spread", "volatility"]
#: a resting child at the own-side touch of 1 x TWAP of what is left (rates 0.5, 1, 2, 4)
REST_AT_TWAP = 1 + len(CONFIG.execution_rates) + list(CONFIG.execution_rates).index(1.0)


def _play(path: object, env: BatchedMarketEnv, steps: int) -> tuple[GuardedPolicy, np.ndarray]:
    """``steps`` steps of the checkpoint as ``rltrader evaluate`` plays it, one agent a
    market; the policy and the actions played, ``(steps, n_envs)``."""
    strategy = CheckpointStrategy(path)  # type: ignore[arg-type]
    strategy.begin(env)
    played = []
    for _ in range(steps):
        step = np.asarray(env.episode_step, dtype=np.int64)
        actions = np.asarray(strategy.actions(step, CONFIG.horizon, env, [0])).reshape(-1)
        for a in actions:
            assert env.single_action_space.contains(int(a))
        played.append(actions)
        env.step(actions)
    assert isinstance(strategy.policy, GuardedPolicy)
    return strategy.policy, np.array(played)


def test_the_shipped_executor_is_round_9s_seed_3_guarded() -> None:
    assert REST_AT_TWAP == 6
    state = torch.load(PATH, weights_only=True)
    settings = state["settings"]
    assert settings["warm_start"] == "twap_passive" and settings["warm_start_steps"] == 600
    assert settings["target_kl"] == 0.01 and settings["kl_adaptive_lr"]
    assert (settings["gamma"], settings["ent_coef"]) == (1.0, 0.001)
    env_config = state["env_config"]
    assert env_config["base"]["action_mode"] == "execution"
    assert env_config["base"]["horizon"] == 300
    assert [lane["market"] for lane in env_config["lanes"]] == ["realistic"] * 4
    assert env_config["restart_episodes"] == [1, 20]
    assert state["metadata"]["seed"] == 3
    assert state["metadata"]["agent_steps"] == 20_054_016
    names = observation_names(CONFIG.depth, CONFIG.action_mode)
    guard = state["guard"]
    assert [n for n, c in zip(names, guard["clip"], strict=True) if c == 10.0] == READ
    assert all(math.isinf(c) for n, c in zip(names, guard["clip"], strict=True)
               if n not in READ)
    assert guard["action"] == REST_AT_TWAP and "shape" not in guard
    assert PATH.stat().st_size < 300_000


def test_on_the_real_hour_the_guard_rests_each_child_at_twap() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=7,
                           source=lobster_sources(2, 1)(7))
    policy, played = _play(PATH, env, CONFIG.horizon)              # one episode
    assert policy.fired == policy.rows == 2 * CONFIG.horizon
    assert (played == REST_AT_TWAP).all()
    assert (env.accounts().reshape(-1)["volume"] > 0).all()     # the parent is done


def test_on_realistic_the_policy_acts_and_rests_its_children() -> None:
    env = BatchedMarketEnv(CONFIG.replace(market="realistic"), n_envs=4, n_agents=1,
                           seed=7)
    policy, played = _play(PATH, env, 300)
    assert policy.fired < policy.rows / 100
    n_rates = len(CONFIG.execution_rates)
    assert (played > n_rates).mean() > 0.5                         # resting children
    assert (played != REST_AT_TWAP).mean() > 0.5                   # not the guard's action
