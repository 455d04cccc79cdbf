"""Routing as an env action: Gymnasium's checker passes, each action's router places the
children, and the reward is minus the parent's shortfall that the evaluation measures."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rltrader.routing.env import ROUTERS, RoutingEnv


def test_gymnasium_checker_passes() -> None:
    check_env(RoutingEnv(warmup=50, gap=(5, 10)), skip_render_check=True)


def test_each_action_routes_one_parent_and_is_rewarded_by_its_shortfall() -> None:
    env = RoutingEnv(warmup=100, gap=(10, 20))
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape and np.isfinite(obs).all()
    seen = set()
    for action in range(env.action_space.n):
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated
        assert reward == pytest.approx(-info["shortfall_bps"])
        assert 0 <= info["fill_rate"] <= 1
        seen.add(info["router"])
        obs, _ = env.reset()
    assert seen == set(ROUTERS) | {f"venue_{v}" for v in range(env.n_venues)}
    with pytest.raises(ValueError, match="action must be"):
        env.step(99)
