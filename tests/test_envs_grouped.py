"""The env kernel's grouped step (every phase per group of books) equals the phase-by-phase
step, bit for bit: books are independent and each sees the same phases in order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig


class _FlowBehindPython:
    """The market's flow seen only through ``run``: the kernel then steps phase by phase
    (``Flow.run(1)`` between its phases) instead of book group by book group."""

    def __init__(self, flow: Any) -> None:
        self.flow = flow

    def run(self, n_steps: int) -> None:
        self.flow.run(n_steps)


def _run(config: EnvConfig, n_envs: int, grouped: bool, steps: int) -> list[np.ndarray]:
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=2, seed=4)
    rng = np.random.default_rng(9)
    high = env.action_high
    out = [env.reset().copy()]
    for _ in range(steps):
        a = np.stack([rng.integers(0, h, env.num_agents_total) for h in high], axis=1)
        if grouped:
            env.step(a.reshape(env.actions.shape))
        else:
            env.actions[...] = a.reshape(env.actions.shape)
            env.kernel.step(env._timestamp(), _FlowBehindPython(env.market.flow))
        done = env.terminated | env.truncated
        out += [env.observations.copy(), env.rewards.copy(), done.copy(),
                env.final_observations[done].copy()]
    return out


@pytest.mark.parametrize("config", [
    EnvConfig(horizon=15, warmup_steps=20, end_of_episode="liquidate", reward="sharpe"),
    EnvConfig(horizon=15, warmup_steps=20, action_mode="market_making"),
], ids=["discrete-liquidate", "market-making"])
def test_grouped_step_equals_the_phase_by_phase_step(config: EnvConfig) -> None:
    n_envs = 66         # a full group of 64 books and a partial one
    grouped = _run(config, n_envs, True, 32)
    phased = _run(config, n_envs, False, 32)
    assert len(grouped) == len(phased)
    assert sum(int(x.any()) for x in grouped[3::4]) >= 2        # episodes ended
    for g, p in zip(grouped, phased, strict=True):
        np.testing.assert_array_equal(g, p)
