"""The portfolio manager's env (PortfolioEnv) and its allocation baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rltrader.envs import EnvConfig
from rltrader.training.portfolio.manager import (
    BASELINES,
    FEATURES,
    PortfolioConfig,
    PortfolioEnv,
    StackedPortfolioEnv,
)
from rltrader.training.portfolio.sharpe import differential_sharpe

ENV = EnvConfig(symbols=3, horizon=100, warmup_steps=50, size_classes=(1.0,), base_qty=2,
                base_position_limit=20)
CONFIG = PortfolioConfig(env=ENV, decision_steps=20)


def random_actions(rng: np.random.Generator, env: PortfolioEnv) -> np.ndarray:
    return rng.integers(0, len(env.levels), (env.n_envs, env.n_symbols))


def test_spaces_shapes_and_episode_ends() -> None:
    env = PortfolioEnv(CONFIG, n_envs=4, seed=1)
    obs = env.reset(seed=1)
    assert obs.shape == (4, len(FEATURES) * 3 + 3) == (4, env.obs_dim)
    assert env.single_action_space.nvec.tolist() == [9, 9, 9]
    assert env.num_agents_total == 4 and env.n_agents == 1
    rng = np.random.default_rng(0)
    for t in range(10):
        obs, rewards, terminated, truncated = env.step(random_actions(rng, env))
        assert rewards.shape == (4,) and rewards.dtype == np.float32
        assert obs.shape == (4, env.obs_dim) and np.isfinite(obs).all()
        assert terminated.all() == ((t + 1) % 5 == 0) and terminated.any() == terminated.all()
        assert not truncated.any()
        if not terminated.any():
            np.testing.assert_allclose(obs[:, -1], 1 - (t + 1) % 5 / 5)


def test_targets_reach_the_traders_and_reward_is_the_sharpe_of_the_returns() -> None:
    env = PortfolioEnv(CONFIG, n_envs=3, seed=2)
    obs = env.reset(seed=2)
    rng = np.random.default_rng(1)
    returns, rewards = [], []
    cash0 = env.traders.env.accounts()["cash"].reshape(3, 3).sum(0)       # per market
    for _ in range(5):                                    # one episode
        actions = random_actions(rng, env)
        obs, r, terminated, _ = env.step(actions)
        # the trader of (symbol s, market m) is row s x n_envs + m
        np.testing.assert_array_equal(env.traders.target.reshape(3, 3).T,
                                      env.levels[actions])
        np.testing.assert_array_equal(obs[:, env.column("target")], env.levels[actions])
        returns.append(env.returns.copy())
        rewards.append(r.copy())
        np.testing.assert_allclose(obs[:, -3], env.sharpe.a, rtol=1e-6)    # A, sd: state
    assert terminated.all()
    accounts = env.traders.env.accounts()
    assert np.all(accounts["position"] == 0)              # liquidated at the episode end
    # the episode's returns add up to the cash the market's traders made, in bp
    cash = accounts["cash"].reshape(3, 3).sum(0) - cash0
    np.testing.assert_allclose(np.sum(returns, 0), cash / env.capital * 1e4, atol=1e-6)
    assert np.all(env.capital > 0)
    expected = np.stack([differential_sharpe(np.array(returns)[:, m], CONFIG.sharpe_eta,
                                             min_var=CONFIG.sharpe_min_var)
                         for m in range(3)], 1)
    np.testing.assert_allclose(np.array(rewards), expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_run() -> None:
    traces = []
    for _ in range(2):
        env = PortfolioEnv(CONFIG, n_envs=2, seed=5, executor="patient")
        rng = np.random.default_rng(3)
        trace = [env.reset(seed=5).copy()]
        for _ in range(6):
            obs, r, *_ = env.step(random_actions(rng, env))
            trace += [obs.copy(), r.copy(), env.returns.copy()]
        traces.append(trace)
    for a, b in zip(*traces, strict=True):
        np.testing.assert_array_equal(a, b)
    other = PortfolioEnv(CONFIG, n_envs=2, seed=6, executor="patient")
    rng = np.random.default_rng(3)
    other.step(random_actions(rng, other))
    assert not np.array_equal(other.observations, traces[0][1])


def test_baselines() -> None:
    env = PortfolioEnv(CONFIG, n_envs=3, seed=3)
    obs = env.reset(seed=3)
    flat = BASELINES["flat"](env)
    for _ in range(2):
        obs, r, *_ = env.step(flat(obs))
        assert np.all(env.returns == 0) and np.all(r == 0) and np.all(env.traded == 0)
    equal = BASELINES["equal_weight"](env)
    np.testing.assert_array_equal(env.levels[equal(obs)], 0.5)
    inverse = BASELINES["inverse_vol"](env)
    obs[:, env.column("vol_slow")] = [1.0, 2.0, 4.0]
    w = env.levels[inverse(obs)]
    assert np.all(w[:, 0] > w[:, 1]) and np.all(w[:, 1] >= w[:, 2])
    assert np.all(np.abs(w.sum(1) - 1.5) <= 0.25)            # gross 0.5 x 3, on the grid
    hold = BASELINES["buy_and_hold"](env)
    obs[:, -1] = 1.0                                          # an episode's first decision
    np.testing.assert_array_equal(env.levels[hold(obs)], 0.5)
    obs[:, -1] = 0.6
    obs[:, env.column("target")] = 0.25
    np.testing.assert_array_equal(env.levels[hold(obs)], 0.25)


def test_trailing_baselines() -> None:
    """Momentum and mean-variance read the episode's trailing mean return."""
    env = PortfolioEnv(CONFIG, n_envs=3, seed=3)
    obs = env.reset(seed=3)
    momentum, mv = BASELINES["momentum"](env), BASELINES["mean_variance"](env)
    # before the episode's first window: equal weight
    assert not np.any(obs[:, env.column("episode_ret")])
    np.testing.assert_array_equal(env.levels[momentum(obs)], 0.5)
    np.testing.assert_array_equal(env.levels[mv(obs)], 0.5)
    obs[:, env.column("episode_ret")] = [0.3, -0.1, 0.0]
    np.testing.assert_array_equal(env.levels[momentum(obs)], [[0.5, -0.5, 0.5]] * 3)
    obs[:, env.column("vol_slow")] = [1.0, 1.0, 2.0]
    obs[:, env.column("episode_ret")] = [0.4, -0.2, 0.4]    # mu / sigma^2: 0.4, -0.2, 0.1
    w = env.levels[mv(obs)]                                   # x 1.5 / 0.7, on the grid
    np.testing.assert_array_equal(w, [[0.75, -0.5, 0.25]] * 3)
    obs[:, env.column("episode_ret")] = [4.0, 0.0, 0.0]       # capped at the limit
    np.testing.assert_array_equal(env.levels[mv(obs)], [[1.0, 0.0, 0.0]] * 3)


def test_episode_ret_is_the_mean_window_return_of_the_episode() -> None:
    env = PortfolioEnv(CONFIG, n_envs=2, seed=4)
    obs = env.reset(seed=4)
    rng = np.random.default_rng(1)
    windows: list[np.ndarray] = []
    for t in range(7):
        obs, _, terminated, _ = env.step(random_actions(rng, env))
        windows.append(obs[:, env.column("ret")].astype(np.float64))
        if terminated.all():                       # 5 decisions per episode: a new one
            windows = []
            assert not np.any(obs[:, env.column("episode_ret")])
        else:
            np.testing.assert_allclose(obs[:, env.column("episode_ret")],
                                       np.mean(windows, axis=0), rtol=1e-5, atol=1e-7)
        assert terminated.all() == (t == 4)


def test_stacked_envs_are_their_parts_row_for_row() -> None:
    thin = dataclasses.replace(CONFIG, env=ENV.replace(market="thin"))
    stacked = StackedPortfolioEnv([PortfolioEnv(CONFIG, n_envs=2), PortfolioEnv(thin, n_envs=3)])
    seeds = [int(np.random.SeedSequence(7, spawn_key=(i,)).generate_state(1)[0])
             for i in range(2)]
    parts = [PortfolioEnv(CONFIG, n_envs=2, seed=seeds[0]),
             PortfolioEnv(thin, n_envs=3, seed=seeds[1])]
    assert stacked.num_agents_total == stacked.n_envs == 5 and stacked.n_agents == 1
    obs = stacked.reset(seed=7)
    np.testing.assert_array_equal(obs, np.concatenate([p.reset(s) for p, s in
                                                       zip(parts, seeds, strict=True)]))
    rng = np.random.default_rng(2)
    for _ in range(6):
        a = rng.integers(0, 9, (5, 3))
        got = [x.copy() for x in stacked.step(a)]
        want = [p.step(a[r]) for p, r in zip(parts, (slice(0, 2), slice(2, 5)), strict=True)]
        for k in range(4):
            np.testing.assert_array_equal(got[k], np.concatenate([w[k] for w in want]))
        np.testing.assert_array_equal(stacked.final_observations, np.concatenate(
            [p.final_observations for p in parts]))
    with pytest.raises(ValueError, match="same symbols"):
        StackedPortfolioEnv([PortfolioEnv(CONFIG), PortfolioEnv(dataclasses.replace(
            CONFIG, env=ENV.replace(symbols=2)))])
    with pytest.raises(ValueError, match="5 rows"):
        stacked.step(np.zeros((4, 3), dtype=np.int64))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of decision_steps"):
        PortfolioConfig(env=ENV, decision_steps=30)
    with pytest.raises(ValueError, match="symbols >= 2"):
        PortfolioConfig(env=ENV.replace(symbols=1), decision_steps=20)
    with pytest.raises(ValueError, match="levels"):
        PortfolioConfig(env=ENV, decision_steps=20, levels=(0.0, 2.0))
    with pytest.raises(ValueError, match="sharpe_eta"):
        dataclasses.replace(CONFIG, sharpe_eta=0.0)
    with pytest.raises(TypeError, match="executor"):
        PortfolioEnv(CONFIG, executor=3)
    env = PortfolioEnv(CONFIG, n_envs=2)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="level indices in"):
        env.step(np.full((2, 3), 9))
    with pytest.raises(TypeError, match="integers"):
        env.step(np.full((2, 3), 0.5))
