"""The manager's opt-in means to stand aside (docs/portfolio.md, "Standing aside"): the
``cost`` feature (the round-trip cost of crossing, bp) against a hand computation from the
books, the episodic differential Sharpe ratio (``sharpe_prior``: a flat episode's reward is
exactly 0), and the defaults unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrader.envs import EnvConfig
from rltrader.training.portfolio.manager import (
    BASELINES,
    FEATURES,
    PortfolioConfig,
    PortfolioEnv,
)
from rltrader.training.portfolio.sharpe import DifferentialSharpe, differential_sharpe

ENV = EnvConfig(symbols=2, horizon=100, warmup_steps=50, size_classes=(1.0,), base_qty=2,
                base_position_limit=20, drift_mean=0.1, drift_sd=0.2)
CONFIG = PortfolioConfig(env=ENV, decision_steps=20)
COST = dataclasses.replace(CONFIG, cost_feature=True)


def quotes(env: PortfolioEnv) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and ask (ticks) of every (market, symbol), read from the books."""
    core = env.traders.env.kernel.books
    n, s = env.n_envs, env.n_symbols
    bid = np.array([[core.best_bid(sym * n + m) for sym in range(s)] for m in range(n)],
                   dtype=np.float64)
    ask = np.array([[core.best_ask(sym * n + m) for sym in range(s)] for m in range(n)],
                   dtype=np.float64)
    return bid, ask


def test_defaults_are_unchanged() -> None:
    config = PortfolioConfig()
    assert config.cost_feature is False and config.sharpe_prior is None
    env = PortfolioEnv(CONFIG, n_envs=3, seed=4)
    assert env.features == FEATURES and env.obs_dim == len(FEATURES) * 2 + 3
    with pytest.raises(ValueError):
        env.column("cost")
    # the averages run on across episodes: two episodes' rewards are the reference ratio
    # of the returns as one stream
    rng = np.random.default_rng(0)
    env.reset(seed=4)
    returns, rewards = [], []
    for _ in range(10):
        env.step(rng.integers(0, 9, (3, 2)))
        returns.append(env.returns.copy())
        rewards.append(env.rewards.copy())
    expected = np.stack([differential_sharpe(np.array(returns)[:, m], CONFIG.sharpe_eta,
                                             min_var=CONFIG.sharpe_min_var)
                         for m in range(3)], 1)
    np.testing.assert_allclose(np.array(rewards), expected, rtol=1e-5, atol=1e-5)


def test_cost_feature_is_spread_plus_twice_the_fee_in_bp() -> None:
    env = PortfolioEnv(COST, n_envs=4, seed=3)
    assert env.features == (*FEATURES, "cost") and env.obs_dim == 10 * 2 + 3
    cols = env.column("cost")
    assert (cols.start, cols.stop) == (18, 20)
    obs = env.reset(seed=3)
    bid, ask = quotes(env)
    fee_bp = ENV.taker_fee_ppm / 100.0
    # at the build: the quotes' spread in bp of the mid
    slow = ask - bid
    np.testing.assert_allclose(obs[:, cols], 1e4 * slow / ((bid + ask) / 2) + 2 * fee_bp,
                               rtol=1e-6)
    # the same markets with another taker fee: the same spread, 2 x the fee's change
    other = PortfolioEnv(dataclasses.replace(COST, env=ENV.replace(taker_fee_ppm=250)),
                         n_envs=4, seed=3)
    np.testing.assert_allclose(other.reset(seed=3)[:, cols] - obs[:, cols], 2 * 1.5,
                               rtol=1e-5)
    # after each window the slow spread moves toward the window's mean spread (the
    # ``spread`` feature, in units of price_scale), and is read in bp of the mid now
    rng = np.random.default_rng(2)
    for _ in range(7):                       # across an episode's end
        obs = env.step(rng.integers(0, 9, (4, 2)))[0]
        window = obs[:, env.column("spread")].astype(np.float64) * ENV.price_scale
        slow = slow + COST.cost_alpha * (window - slow)
        bid, ask = quotes(env)
        np.testing.assert_allclose(obs[:, cols], 1e4 * slow / ((bid + ask) / 2) + 2 * fee_bp,
                                   rtol=1e-5)
    # the other features are those of the env without the cost feature, column for column
    plain = PortfolioEnv(CONFIG, n_envs=4, seed=3)
    a, b = plain.reset(seed=3), env.reset(seed=3)
    np.testing.assert_array_equal(a[:, :18], b[:, :18])
    np.testing.assert_array_equal(a[:, 18:], b[:, 20:])
    actions = rng.integers(0, 9, (4, 2))
    a, b = plain.step(actions)[0], env.step(actions)[0]
    np.testing.assert_array_equal(a[:, :18], b[:, :18])
    np.testing.assert_array_equal(a[:, 18:], b[:, 20:])
    assert BASELINES["inverse_vol"](env)(b).tolist() == \
        BASELINES["inverse_vol"](plain)(a).tolist()


def test_a_one_sided_book_has_no_spread_of_its_own() -> None:
    """A book with an empty side (ask ``EMPTY_ASK`` or bid 0) when the cost feature's
    spread starts takes its symbol's mean spread over the two-sided books, and its mid
    the last two-sided one: the feature stays the size of the others', not ~1e12 ticks."""
    from rltrader.core.constants import EMPTY_ASK

    env = PortfolioEnv(COST, n_envs=4, seed=3)
    bid, ask = quotes(env)
    one_sided_ask, one_sided_bid = ask.copy(), bid.copy()
    one_sided_ask[1, 0] = EMPTY_ASK
    one_sided_bid[2, 1] = 0.0
    env._quotes = lambda: (one_sided_bid, one_sided_ask)    # type: ignore[method-assign]
    env._capital()
    spread = ask - bid
    expect = spread.copy()
    expect[1, 0] = spread[[0, 2, 3], 0].mean()
    expect[2, 1] = spread[[0, 1, 3], 1].mean()
    np.testing.assert_allclose(env._spread_slow, expect)
    mid = (bid + ask) / 2.0
    env._mid[1, 0], env._mid[2, 1] = mid[1, 0], mid[2, 1]    # the last two-sided mids
    cost = env._cost(None)
    fee_bp = 2 * ENV.taker_fee_ppm / 100.0
    np.testing.assert_allclose(cost, 1e4 * expect / mid + fee_bp)


def test_a_flat_episode_earns_exactly_zero_reward_with_the_prior() -> None:
    config = dataclasses.replace(CONFIG, sharpe_prior=0.1)
    env = PortfolioEnv(config, n_envs=3, seed=6)
    equal, flat = BASELINES["equal_weight"](env), BASELINES["flat"](env)
    obs = env.reset(seed=6)
    np.testing.assert_array_equal(obs[:, -3], 0.0)                 # A = 0
    np.testing.assert_allclose(obs[:, -2], np.sqrt(0.1), rtol=1e-6)   # sqrt(B - A^2)
    returns, rewards = [], []
    for policy in (equal, flat, equal):                          # three episodes
        for _ in range(5):
            obs = env.step(policy(obs))[0]
            returns.append(env.returns.copy())
            rewards.append(env.rewards.copy())
    returns, rewards = np.array(returns), np.array(rewards)
    # the flat episode: no return and no reward, exactly
    assert np.all(returns[5:10] == 0.0) and np.all(rewards[5:10] == 0.0)
    assert np.all(returns[0] < 0.0)                          # the entry cost
    # every episode is the reference ratio from A = 0, B = the prior
    for e in range(3):
        rows = slice(5 * e, 5 * e + 5)
        expected = np.stack([differential_sharpe(returns[rows, m], config.sharpe_eta,
                                                 min_var=config.sharpe_min_var, a0=0.0,
                                                 b0=0.1) for m in range(3)], 1)
        np.testing.assert_allclose(rewards[rows], expected, rtol=1e-5, atol=1e-6)
    # the first decision's cost counts: D = r / sqrt(prior)
    np.testing.assert_allclose(rewards[0], returns[0] / np.sqrt(0.1), rtol=1e-5)
    # without the prior, the same flat episode after one that traded is rewarded
    plain = PortfolioEnv(CONFIG, n_envs=3, seed=6)
    obs = plain.reset(seed=6)
    for policy in (equal, flat):
        for _ in range(5):
            obs = plain.step(policy(obs))[0]
    assert np.all(plain.returns == 0.0) and np.all(plain.rewards != 0.0)


def test_bad_input() -> None:
    for value in (0.0, 0.01, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="sharpe_prior"):
            dataclasses.replace(CONFIG, sharpe_prior=value)
    with pytest.raises(TypeError, match="cost_feature"):
        dataclasses.replace(CONFIG, cost_feature=1)
    for value in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="cost_alpha"):
            dataclasses.replace(CONFIG, cost_alpha=value)



def test_cost_feature_on_the_real_pair() -> None:
    # the replays' books: the perpetual's and the spot's quotes, in the record's ticks
    from rltrader.training.portfolio import real
    from rltrader.training.portfolio.experiment import task

    config = real.binance_pair_task(task("resilient", symbols=2, horizon=100,
                                         decision_steps=20, cost_feature=True))
    env = PortfolioEnv(config, n_envs=2, seed=1000,
                       source=real.binance_pair_sources(config, 2))
    obs = env.reset(seed=1000)
    books = [r.books for r in env.traders.env.sources]      # book symbol x n_envs + market
    bid = np.array([[books[s * 2 + m].best_bid(0) for s in range(2)] for m in range(2)],
                   dtype=np.float64)
    ask = np.array([[books[s * 2 + m].best_ask(0) for s in range(2)] for m in range(2)],
                   dtype=np.float64)
    assert np.all(ask > bid)
    np.testing.assert_allclose(obs[:, env.column("cost")],
                               1e4 * (ask - bid) / ((bid + ask) / 2) + 2 * 1.0, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=40), st.floats(0.01, 0.5),
       st.floats(0.02, 4.0))
def test_the_guard_drops_the_variance_term_while_losing(values: list[float], eta: float,
                                                        prior: float) -> None:
    r = np.array(values)
    guarded = differential_sharpe(r, eta, min_var=0.01, b0=prior, guard=True)
    # by hand: the ratio's formula, without - A dB / 2 where A <= 0
    a, b = 0.0, prior
    for t, x in enumerate(r):
        var = b - a * a
        want = ((b * (x - a) - (0.5 * a * (x * x - b) if a > 0 else 0.0)) / var**1.5
                if var > 0.01 else 0.0)
        assert guarded[t] == pytest.approx(want, rel=1e-9, abs=1e-9)
        a, b = a + eta * (x - a), b + eta * (x * x - b)
    # where A > 0 throughout it is the plain ratio; the batched streams are the reference
    plain = differential_sharpe(r, eta, min_var=0.01, b0=prior)
    a = np.zeros(len(r))
    for t in range(1, len(r)):
        a[t] = a[t - 1] + eta * (r[t - 1] - a[t - 1])
    np.testing.assert_allclose(guarded[a > 0], plain[a > 0], rtol=1e-12, atol=1e-12)
    batched = DifferentialSharpe(1, eta, min_var=0.01, guard=True)
    batched.restart(np.array([True]), prior)
    got = np.array([batched.update(np.array([x]))[0] for x in r])
    np.testing.assert_allclose(got, guarded, rtol=1e-9, atol=1e-9)


def test_the_guard_takes_away_the_reward_for_losing_in_swings() -> None:
    # a stream that loses 10 bp and swings: the plain episodic ratio pays for the swings'
    # variance while the mean is negative, the guarded one does not
    swings = np.array([-10.0, 0.0] * 10)
    plain = differential_sharpe(swings, 0.05, min_var=0.01, b0=0.1)
    guarded = differential_sharpe(swings, 0.05, min_var=0.01, b0=0.1, guard=True)
    assert guarded.sum() < plain.sum() and guarded.sum() < 0
    # a flat stream: 0 both ways, and the env's guarded episodes are the reference
    assert not differential_sharpe(np.zeros(20), 0.05, min_var=0.01, b0=0.1,
                                   guard=True).any()
    config = dataclasses.replace(CONFIG, sharpe_prior=0.1, sharpe_guard=True)
    env = PortfolioEnv(config, n_envs=3, seed=8)
    env.reset(seed=8)
    rng = np.random.default_rng(4)
    returns, rewards = [], []
    for _ in range(10):
        env.step(rng.integers(0, 9, (3, 2)))
        returns.append(env.returns.copy())
        rewards.append(env.rewards.copy())
    returns, rewards = np.array(returns), np.array(rewards)
    for e in range(2):
        rows = slice(5 * e, 5 * e + 5)
        expected = np.stack([differential_sharpe(returns[rows, m], 0.05, min_var=0.01,
                                                 b0=0.1, guard=True) for m in range(3)], 1)
        np.testing.assert_allclose(rewards[rows], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="sharpe_guard"):
        dataclasses.replace(CONFIG, sharpe_guard=1)
    with pytest.raises(TypeError, match="guard"):
        DifferentialSharpe(1, 0.05, guard=None)
