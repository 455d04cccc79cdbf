"""The opt-in drift of the simulated fundamental (EnvConfig.drift_mean / drift_sd): each
book's fundamental moves by exactly its drawn drift per step on top of what it does
without one, a new drift is drawn per book at every episode's start, prices follow, and
the default leaves every run unchanged (tests/test_envs_digest.py pins that)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._env")

from rltrader.analysis.impact import book_mids  # noqa: E402
from rltrader.core.messages import empty_messages  # noqa: E402
from rltrader.data.hybrid import HybridReplay  # noqa: E402
from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402

CONFIG = EnvConfig(symbols=2, horizon=30, warmup_steps=20, size_classes=(1.0,))


def test_the_fundamental_moves_by_exactly_the_drift() -> None:
    """Same seed with and without drift: the fundamentals differ by the drifts summed
    over the steps (the random shocks and the reversion are the same), across episode
    ends where each book draws a new drift."""
    n_envs, steps = 8, 75
    plain = BatchedMarketEnv(CONFIG, n_envs=n_envs, seed=4)
    moving = BatchedMarketEnv(CONFIG.replace(drift_mean=0.5, drift_sd=1.0), n_envs=n_envs,
                              seed=4)
    assert not plain.drifting and moving.drifting
    np.testing.assert_array_equal(plain.market.flow.fundamental,
                                  moving.market.flow.fundamental)
    rng = np.random.default_rng(0)
    total = np.zeros(moving.n_books)
    drawn = [moving.drift.copy()]
    for t in range(steps):
        a = rng.integers(0, moving.single_action_space.n, moving.num_agents_total)
        total += moving.drift
        plain.step(a)
        _, _, terminated, _ = moving.step(a)
        if terminated.any():
            assert terminated.all() and (t + 1) % CONFIG.horizon == 0
            drawn.append(moving.drift.copy())
        else:
            np.testing.assert_array_equal(moving.drift, drawn[-1])
        np.testing.assert_allclose(moving.market.flow.fundamental
                                   - plain.market.flow.fundamental, total, atol=1e-6)
        np.testing.assert_allclose(moving.market.flow.r_bar - plain.market.flow.r_bar,
                                   total, atol=1e-6)
    assert len(drawn) == 3                        # the build, then two episode ends
    assert all(not np.array_equal(a, b) for a, b in zip(drawn, drawn[1:], strict=False))
    # ticks per second x the step's seconds; each book its own draw
    assert len(np.unique(drawn[0])) == moving.n_books


def test_draws_follow_the_configured_distribution_and_prices_follow() -> None:
    config = CONFIG.replace(horizon=400, drift_mean=0.1, drift_sd=0.2)
    env = BatchedMarketEnv(config, n_envs=128, seed=9)
    dt = env.market.config.dt_ns / 1e9
    per_second = env.drift / dt
    assert abs(per_second.mean() - 0.1) < 4 * 0.2 / np.sqrt(env.n_books)
    assert abs(per_second.std() - 0.2) < 0.05
    start = book_mids(env.market)
    for _ in range(399):
        env.step(np.zeros(env.num_agents_total, dtype=np.int64))
    moved = book_mids(env.market) - start
    # the mid follows the fundamental (with a lag): it moves with the drawn drift
    assert np.corrcoef(moved, per_second)[0, 1] > 0.6
    slope = np.polyfit(per_second * 399 * dt, moved, 1)[0]
    assert 0.2 < slope < 1.5


def test_reset_with_a_seed_draws_the_same_drifts_again() -> None:
    config = CONFIG.replace(drift_mean=0.1, drift_sd=0.2)
    env = BatchedMarketEnv(config, n_envs=4, seed=2)
    first = env.drift.copy()
    env.reset()                                    # new episodes: new draws
    assert not np.array_equal(env.drift, first)
    env.reset(seed=2)
    np.testing.assert_array_equal(env.drift, first)


def test_bad_drifts_are_refused() -> None:
    for bad in (float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError, match="drift_mean"):
            EnvConfig(drift_mean=bad)
    for bad in (-0.1, float("inf")):
        with pytest.raises(ValueError, match="drift_sd"):
            EnvConfig(drift_sd=bad)
    with pytest.raises(ValueError, match="not for replay sources"):
        BatchedMarketEnv(EnvConfig(drift_mean=0.1), source=HybridReplay(empty_messages(0), 1))
