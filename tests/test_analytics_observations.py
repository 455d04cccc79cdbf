"""The batched env observes the analytics engine's features of its book: the appended
columns equal what the core's book says after the step (spread, microprice, imbalance),
the step's trades land in the features, and the wrapper runs episodes end to end."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.analytics.observations import AnalyticsObservations
from rltrader.envs.batched import BatchedMarketEnv


def test_appended_features_are_the_core_books_after_each_step() -> None:
    env = AnalyticsObservations(BatchedMarketEnv(n_envs=3, n_agents=2, seed=1),
                                ("spread", "microprice_offset", "imbalance_5", "ofi",
                                 "trade_sign_imbalance", "embedding"))
    obs = env.reset(seed=2)
    assert obs.shape == (6, env.env.obs_dim + 9)
    rng = np.random.default_rng(0)
    base = env.env.obs_dim
    traded = 0
    for _ in range(300):
        obs, rewards, terminated, truncated = env.step(
            rng.integers(0, env.single_action_space.n, size=6))
        prices, qtys, _ = env.env.market.books.top_levels(10)
        bid, ask = prices[:, 0, 0], prices[:, 1, 0]
        bq, aq = qtys[:, 0, 0], qtys[:, 1, 0]
        ok = (bq > 0) & (aq > 0)
        spread = np.where(ok, ask - bid, 0)
        micro = np.where(ok, (bid * aq + ask * bq) / np.maximum(bq + aq, 1) - (bid + ask) / 2, 0)
        b5, a5 = qtys[:, 0, :5].sum(1), qtys[:, 1, :5].sum(1)
        imb = (b5 - a5) / np.maximum(b5 + a5, 1)
        rows = np.repeat(np.arange(3), 2)
        np.testing.assert_allclose(obs[:, base], spread[rows], rtol=1e-6)
        np.testing.assert_allclose(obs[:, base + 1], micro[rows], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(obs[:, base + 2], imb[rows], rtol=1e-5, atol=1e-6)
        traded += int(np.count_nonzero(obs[:, base + 4]))
        assert np.isfinite(obs).all()
    assert traded > 0                       # trades reached the trade-sign column
    assert np.any(obs[:, base + 5:] != 0)   # the embedding is there


def test_the_wrapper_refuses_unknown_features_and_replays() -> None:
    env = BatchedMarketEnv(n_envs=1, n_agents=1, seed=0)
    with pytest.raises(ValueError, match="unknown features"):
        AnalyticsObservations(env, ("spread", "alpha"))
