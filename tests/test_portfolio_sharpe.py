"""The differential Sharpe ratio (Moody & Saffell) of the portfolio manager's reward,
against a direct computation from its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrader.training.portfolio.sharpe import DifferentialSharpe, differential_sharpe


def direct(returns: np.ndarray, eta: float) -> np.ndarray:
    """D_t with A and B written out as the exponentially weighted sums they are."""
    out = np.zeros(len(returns))
    for t in range(len(returns)):
        weights = eta * (1 - eta) ** np.arange(t - 1, -1, -1)        # for r_0 .. r_{t-1}
        a = float(weights @ returns[:t]) if t else 0.0
        b = float(weights @ returns[:t] ** 2) if t else 0.0
        var = b - a * a
        r = returns[t]
        out[t] = (b * (r - a) - 0.5 * a * (r * r - b)) / var**1.5 if var > 0 else 0.0
    return out


def test_matches_the_direct_computation() -> None:
    r = np.random.default_rng(0).normal(0.1, 1.0, 200)
    np.testing.assert_allclose(differential_sharpe(r, 0.05), direct(r, 0.05), rtol=1e-9,
                               atol=1e-12)


def test_is_the_first_order_change_of_the_moving_sharpe_ratio() -> None:
    # S_t = A_t / sqrt(B_t - A_t^2) and S_t - S_{t-1} = eta D_t + O(eta^2)
    eta = 1e-4
    r = np.random.default_rng(1).normal(0.2, 1.0, 60_000)
    d = differential_sharpe(r, eta)
    a = b = 0.0
    sharpe = []
    for x in r:
        a, b = a + eta * (x - a), b + eta * (x * x - b)
        sharpe.append(a / math.sqrt(b - a * a) if b > a * a else 0.0)
    change = np.diff(sharpe)[-10_000:] / eta
    np.testing.assert_allclose(change, d[-10_000:], rtol=0.02, atol=0.02)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=60),
       st.floats(0.01, 0.5), st.integers(1, 4))
def test_the_batched_streams_equal_the_reference(values: list[float], eta: float,
                                                 n: int) -> None:
    rng = np.random.default_rng(len(values))
    streams = np.array(values)[:, None] * rng.uniform(0.5, 2.0, n)   # (T, n)
    batched = DifferentialSharpe(n, eta, min_var=1e-6)
    got = np.array([batched.update(row) for row in streams])
    for j in range(n):
        np.testing.assert_allclose(got[:, j], differential_sharpe(streams[:, j], eta,
                                                                  min_var=1e-6),
                                   rtol=1e-9, atol=1e-9)


def test_zero_while_the_variance_is_below_the_floor() -> None:
    s = DifferentialSharpe(2, 0.1, min_var=0.5)
    assert np.all(s.update(np.array([0.0, 1.0])) == 0)     # no history: variance 0
    assert np.all(s.update(np.array([0.0, 3.0])) == 0)     # 0.09 < 0.5
    assert s.update(np.array([0.0, -2.0]))[1] != 0          # 0.1 x 9 - 0.09 > 0.5
    # a good return raises the Sharpe ratio, a bad one lowers it
    s = DifferentialSharpe(1, 0.1)
    for x in (1.0, -0.5, 1.0, 0.0, 0.5):
        s.update(np.array([x]))
    state = (s.a.copy(), s.b.copy())
    up = s.update(np.array([2.0]))[0]
    s.a[:], s.b[:] = state
    assert up > 0 > s.update(np.array([-2.0]))[0]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="eta"):
        DifferentialSharpe(2, 1.5)
    with pytest.raises(ValueError, match="n must"):
        DifferentialSharpe(0, 0.1)
    with pytest.raises(ValueError, match="min_var"):
        DifferentialSharpe(2, 0.1, min_var=-1)
    s = DifferentialSharpe(2, 0.1)
    with pytest.raises(ValueError, match="shape"):
        s.update(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        s.update(np.array([0.0, np.nan]))
