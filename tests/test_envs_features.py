"""The market and agent features added for issue 14 (volatility, volume, last trade, time
of day, lots bought and sold since the last step), each recomputed independently from the
book and the accounts; and the recipe in docs/envs.md ("Adding a feature") followed by
this file."""

from __future__ import annotations

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

CONFIG = EnvConfig(market="thin", horizon=100_000, warmup_steps=40, size_classes=(1.0, 3.0))
NAMES = observation_names(5)


def col(name: str) -> int:
    return NAMES.index(name)


def test_features_match_an_independent_computation() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=3, n_agents=2, seed=2)
    books, c, mc = env.kernel.books, env.config, env.market.config
    variance = env.kernel.book_arrays["variance"].copy()
    volume_ema = env.kernel.book_arrays["flow_total"].copy()
    mids = env.kernel.book_arrays["mid"].copy()
    volumes = np.array([books.volume(e) for e in range(3)])
    accounts = env.accounts()
    traded_any = False
    rng = np.random.default_rng(0)
    for _ in range(80):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, 6))
        bid = np.array([books.best_bid(e) for e in range(3)])
        ask = np.array([books.best_ask(e) for e in range(3)])
        mid = (bid + ask) / 2                               # both sides stand on thin here
        variance += c.flow_alpha * ((mid - mids) ** 2 - variance)
        traded = np.array([books.volume(e) for e in range(3)]) - volumes
        volume_ema += c.flow_alpha * (traded - volume_ema)
        last = np.array([books.last_price(e) for e in range(3)])
        rows = obs.reshape(3, 2, -1)[:, 0]
        np.testing.assert_allclose(rows[:, col("volatility")], np.sqrt(variance) / c.price_scale,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rows[:, col("volume")], volume_ema / c.qty_scale, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(rows[:, col("last_trade")], (last - mid) / c.price_scale,
                                   rtol=1e-5, atol=1e-6)
        day = mc.close_ns - mc.open_ns
        np.testing.assert_allclose(rows[:, col("time_of_day")],
                                   ((env._timestamp() - mc.open_ns) % day) / day, rtol=1e-6)
        now = env.accounts()
        dv = (now["volume"] - accounts["volume"]).ravel()
        dp = (now["position"] - accounts["position"]).ravel()
        np.testing.assert_array_equal(obs[:, col("bought")],
                                      ((dv + dp) / 2 / env.order_qty).astype(np.float32))
        np.testing.assert_array_equal(obs[:, col("sold")],
                                      ((dv - dp) / 2 / env.order_qty).astype(np.float32))
        mids, volumes, accounts = mid, volumes + traded, now
        traded_any = traded_any or bool(dv.any())
    assert traded_any                               # the fill columns were exercised


def test_the_observation_table_names_every_column() -> None:
    for mode, extra in (("discrete", 0), ("order", 16), ("execution", 3)):
        env = BatchedMarketEnv(CONFIG.replace(action_mode=mode), n_envs=1, n_agents=2)
        assert env.obs_dim == len(observation_names(5, mode, 4)) == 4 * 5 + 18 + extra
