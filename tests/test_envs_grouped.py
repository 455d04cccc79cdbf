"""The env kernel's grouped step (every phase per group of 64 books) equals the
phase-by-phase step (one group of every book), bit for bit: books are independent, each
sees the same phases in order and draws its arrival times from its own generator."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig


def _run(config: EnvConfig, n_envs: int, grouped: bool, steps: int,
         group: int | None = None) -> list[np.ndarray]:
    """Outputs of ``steps`` random steps: ``env.step`` (groups of 64 books) when
    ``grouped``, else the kernel's step in groups of ``group`` books (default: one group
    of every book)."""
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
            env.kernel.step(env._timestamp(), env.market.flow,
                            group=n_envs if group is None else group)
        done = env.terminated | env.truncated
        out += [env.observations.copy(), env.rewards.copy(), done.copy(),
                env.final_observations[done].copy()]
    return out


@pytest.mark.parametrize("config", [
    EnvConfig(horizon=15, warmup_steps=20, end_of_episode="liquidate", reward="sharpe"),
    EnvConfig(horizon=15, warmup_steps=20, action_mode="market_making",
              end_of_episode="carry", latency_ns=130_000_000, latency_jitter_ns=90_000_000),
], ids=["discrete-liquidate", "market-making-carry-latency"])
def test_grouped_step_equals_the_phase_by_phase_step(config: EnvConfig) -> None:
    n_envs = 66         # a full group of 64 books and a partial one
    grouped = _run(config, n_envs, True, 32)
    phased = _run(config, n_envs, False, 32)
    assert len(grouped) == len(phased)
    assert sum(int(x.any()) for x in grouped[3::4]) >= 2        # episodes ended
    for g, p in zip(grouped, phased, strict=True):
        np.testing.assert_array_equal(g, p)


@pytest.mark.parametrize("group", [1, 5, 64])
def test_outputs_do_not_depend_on_the_group_size(group: int) -> None:
    """Without latency a group's books decide into the group's first outbox cells (the
    same cells for every group): any group size, a partial last group included, gives the
    outputs of one group of every book."""
    config = EnvConfig(horizon=15, warmup_steps=20, end_of_episode="liquidate")
    n_envs = 66
    grouped = _run(config, n_envs, False, 24, group=group)
    whole = _run(config, n_envs, False, 24)
    assert sum(int(x.any()) for x in whole[3::4]) >= 1        # an episode ended
    for g, w in zip(grouped, whole, strict=True):
        np.testing.assert_array_equal(g, w)
