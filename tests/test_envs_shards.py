"""ShardedMarketEnv: worker processes step shards of markets into shared memory."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.envs.shards import ShardedMarketEnv

CONFIG = EnvConfig(horizon=15, warmup_steps=30)


ACTIONS = np.random.default_rng(0).integers(0, 12, (20, 6))   # 20 steps x 3 markets x 2


def run(env, rows: slice = slice(None)) -> list[np.ndarray]:
    out = [env.observations.copy()]
    for actions in ACTIONS:
        obs, rewards, terminated, _ = env.step(actions[rows])
        out += [obs.copy(), rewards.copy(), terminated.copy()]
    return out


def test_shards_equal_their_own_batched_envs_and_reset_replays() -> None:
    with ShardedMarketEnv(CONFIG, n_envs=3, n_agents=2, seed=5, n_workers=2) as env:
        assert env.observations.shape == (6, env.single_observation_space.shape[0])
        sharded = run(env)
        assert sharded[3 * 15].all() and not sharded[3 * 14].any()    # terminated at step 15
        # worker w is a BatchedMarketEnv over its markets, seeded from spawn(2)[w]
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(5).spawn(2)]
        parts = [run(BatchedMarketEnv(CONFIG, n_envs=n, n_agents=2, seed=s), rows)
                 for n, s, rows in zip((2, 1), seeds, (slice(0, 4), slice(4, 6)), strict=True)]
        for k, array in enumerate(sharded):
            np.testing.assert_array_equal(array, np.concatenate([p[k] for p in parts]))
        env.reset(seed=5)
        again = run(env)
        assert all(np.array_equal(a, b) for a, b in zip(sharded, again, strict=True))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_workers"):
        ShardedMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=3)
    with ShardedMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=2) as env:
        with pytest.raises(ValueError, match="agent 1"):
            env.step([0, 99])
