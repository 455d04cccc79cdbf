"""The shipped ``pretrained:directional`` checkpoint is guarded (docs/training.md, round 9):
its guard is the trainer's observation clip and the cancel-all action; on replays of the
real AAPL hour, unlike anything it was trained on, it cancels on every step and never
holds a position; on ``realistic`` it trades."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import PRETRAINED, TASKS, lobster_sources  # noqa: E402
from rltrader.training.fast_ppo import load_policy  # noqa: E402
from rltrader.training.ppo.guard import GuardedPolicy  # noqa: E402

CONFIG = TASKS["directional"].replace(horizon=1000)


def _run(env: BatchedMarketEnv, policy: GuardedPolicy, steps: int) -> np.ndarray:
    """The actions the policy plays over ``steps`` steps, all rows."""
    actions = []
    for _ in range(steps):
        a = policy(env.observations)
        actions.append(a.copy())
        env.step(a)
    return np.concatenate(actions)


def test_the_shipped_directional_policy_stands_aside_on_the_real_hour() -> None:
    policy = load_policy(PRETRAINED / "directional.pt")
    assert isinstance(policy, GuardedPolicy)
    assert (policy.clip, policy.action) == (10.0, 11)
    window = CONFIG.replay_step_ns * (CONFIG.warmup_steps + 2 * CONFIG.horizon)
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=7,
                           source=lobster_sources(2, 1, window)(7))
    actions = _run(env, policy, 200)
    assert (actions == 11).all() and policy.fired == policy.rows == 400
    assert (env.accounts().reshape(-1)["volume"] == 0).all()


def test_the_shipped_directional_policy_trades_on_realistic() -> None:
    policy = load_policy(PRETRAINED / "directional.pt")
    env = BatchedMarketEnv(CONFIG.replace(market="realistic"), n_envs=4, n_agents=1, seed=7)
    actions = _run(env, policy, 200)
    assert policy.fired < policy.rows / 10
    assert np.isin(actions, [1, 2, 3, 4, 5, 6, 7, 8]).mean() > 0.3     # limit orders
    assert (env.accounts().reshape(-1)["volume"] > 0).any()
