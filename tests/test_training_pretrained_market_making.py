"""The shipped ``pretrained:market_making`` checkpoint (docs/training.md, round 14): round
11's mirrored residual maker over ``best_flow_maker``, guarded by round 12's column guard
and round 14's shape rule. On replays of the real AAPL hour it stands aside on every step
and never trades; on a preset outside its shape (``thin``) it is its teacher to the last
digit; on ``realistic`` its own corrections play after the window."""

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
    evaluate,
    lobster_sources,
)
from rltrader.training.ppo.guard import (  # noqa: E402
    ACT_ALONE,
    ACT_GUARDED,
    SHAPE_ALONE,
    GuardedPolicy,
)
from rltrader.training.ppo.residual import CORRECTIONS, STAND_ASIDE  # noqa: E402

CONFIG = TASKS["market_making"]
PATH = PRETRAINED / "market_making.pt"
READ = [f"{side}_price_{k}" for side in ("bid", "ask") for k in range(5)] + [
    "spread", "volatility"]


def _play(strategy: CheckpointStrategy, env: BatchedMarketEnv, steps: int) -> None:
    """``steps`` steps of the checkpoint as ``rltrader evaluate`` plays it (its teacher
    quoting beside it), one agent a market."""
    strategy.begin(env)
    for _ in range(steps):
        step = np.asarray(env.episode_step, dtype=np.int64)
        actions = strategy.actions(step, env.config.horizon, env, [0])
        env.step(np.asarray(actions).reshape(env.n_envs, 1, 3))


def test_the_shipped_maker_is_guarded_as_its_card_says() -> None:
    state = torch.load(PATH, weights_only=True)
    assert state["settings"]["residual"] == "best_flow_maker" and state["settings"]["mirror"]
    names = observation_names(CONFIG.depth, CONFIG.action_mode)
    guard = state["guard"]
    assert [n for n, c in zip(names, guard["clip"], strict=True) if c == 10.0] == READ
    assert all(math.isinf(c) for n, c in zip(names, guard["clip"], strict=True)
               if n not in READ)
    assert guard["action"] == STAND_ASIDE
    assert guard["shape"] == {"columns": [names.index("volume")], "low": [5.0],
                              "high": [80.0], "window": 10,
                              "action": CORRECTIONS.index("keep")}
    assert PATH.stat().st_size < 300_000


def test_the_shipped_maker_stands_aside_on_the_real_hour() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=7,
                           source=lobster_sources(2, 1)(7))
    strategy = CheckpointStrategy(PATH)
    policy = strategy.policy
    assert isinstance(policy, GuardedPolicy)
    strategy.begin(env)
    for _ in range(100):
        step = np.asarray(env.episode_step, dtype=np.int64)
        actions = np.asarray(strategy.actions(step, CONFIG.horizon, env, [0]))
        assert (actions[..., :2] == len(CONFIG.quote_offsets)).all()    # no quote
        env.step(actions.reshape(2, 1, 3))
    assert policy.fired == policy.rows == 200
    assert (env.accounts().reshape(-1)["volume"] == 0).all()


def test_the_shipped_maker_is_its_teacher_on_thin_and_acts_on_realistic() -> None:
    out = evaluate(["baseline:best_flow_maker", "pretrained:market_making"],
                   task="market_making", markets=["thin"], seeds=[7], n_envs=4,
                   n_agents=1, episodes=1)
    rows = out["markets"]["thin"]["rows"]
    assert rows["pretrained:market_making"]["per_market"] == \
        rows["best_flow_maker"]["per_market"]
    assert any(x != 0 for x in rows["best_flow_maker"]["per_market"])
    strategy = CheckpointStrategy(PATH)
    _play(strategy, BatchedMarketEnv(CONFIG.replace(market="thin"), n_envs=4, n_agents=1,
                                     seed=7), 12)
    assert (strategy.policy.modes == SHAPE_ALONE).all() and strategy.policy.acted == 0
    strategy = CheckpointStrategy(PATH)
    env = BatchedMarketEnv(CONFIG.replace(market="realistic"), n_envs=4, n_agents=1, seed=7)
    _play(strategy, env, 300)
    policy = strategy.policy
    assert np.isin(policy.modes, [ACT_ALONE, ACT_GUARDED]).all()
    assert policy.acted >= 4 * (300 - 10) - policy.fired
