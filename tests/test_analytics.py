"""Stylized facts on series with known answers, hand-computed values, and real LOBSTER data.

Synthetic known answers: iid Gaussian returns (no tails, no memory), Student-t(3) returns
(tail exponent 3), GARCH(1,1) (volatility clustering), signs of fractional Gaussian noise
(order-sign ACF ~ k^-(2-2H)), and parent orders drawn from the square-root law.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _synthetic import fgn, lobster_file, parents, quotes_from_returns, trades_of

from rltrader.analysis import facts as an
from rltrader.core.constants import EMPTY_ASK


def _facts(r: np.ndarray, **kwargs) -> an.StylizedFacts:
    return an.stylized_facts(an.MarketData(quotes_from_returns(r)), horizons_s=(0.1, 1.0, 10.0),
                             **kwargs)


def _row(facts: an.StylizedFacts, prefix: str) -> an.FactRow:
    (row,) = [r for r in facts.table() if r.name.startswith(prefix)]
    return row


# ---------------------------------------------------------------------------------------
# hand-computed values
# ---------------------------------------------------------------------------------------


def test_acf_by_hand():
    # x = 1,2,3,4: deviations -1.5,-.5,.5,1.5, sum of squares 5;
    # lag 1: .75 - .25 + .75 = 1.25; lag 2: -.75 - .75 = -1.5; lag 3: -2.25
    np.testing.assert_allclose(an.acf(np.array([1, 2, 3, 4]), 3), [1, 0.25, -0.3, -0.45],
                               atol=1e-12)
    # capped at len - 1
    assert an.acf(np.array([1.0, 0.0, 1.0]), 10).shape == (3,)


def test_acf_matches_the_direct_sum():
    x = np.random.default_rng(3).normal(size=257)
    dev = x - x.mean()
    direct = [np.sum(dev[: x.size - k] * dev[k:]) / np.sum(dev**2) for k in range(40)]
    np.testing.assert_allclose(an.acf(x, 39), direct, atol=1e-12)


def test_hill_by_hand():
    # |x| = 16, 8 (top k=2) over the threshold X_(3) = 4: mean(ln 4, ln 2) = 1.5 ln 2
    x = np.array([1.0, -2.0, 4.0, 8.0, -16.0])
    assert an.hill_tail_exponent(x, 2) == pytest.approx(1 / (1.5 * math.log(2)))
    assert an.hill_tail_exponent(x, 1) == pytest.approx(1 / math.log(2))


def test_moments_by_hand():
    # 0,0,0,4: mean 1, deviations -1,-1,-1,3: var 3, third 24/4 = 6, fourth 84/4 = 21
    std, skew, kurt = an.moments(np.array([0.0, 0.0, 0.0, 4.0]))
    assert std == pytest.approx(math.sqrt(3))
    assert skew == pytest.approx(6 / 3**1.5)
    assert kurt == pytest.approx(21 / 9 - 3)


def test_power_law_fit_recovers_an_exact_decay():
    lags = np.arange(2001, dtype=np.float64)
    values = np.r_[1.0, 0.3 * lags[1:] ** -0.45]
    fit = an.fit_power_law_decay(values)
    assert fit.exponent == pytest.approx(0.45, abs=0.01)
    assert fit.decades > 3


def test_log_returns_skip_missing_mids():
    mid = np.array([100.0, 101.0, np.nan, 103.0, 104.0])
    np.testing.assert_allclose(an.log_returns(mid, 1), [math.log(1.01), math.log(104 / 103)])
    assert an.log_returns(mid, 2).size == 0            # 100 -> nan -> 104
    np.testing.assert_allclose(an.log_returns(mid, 3), [math.log(1.03)])


def test_merge_fills_merges_one_takers_sweep():
    trades = an.merge_fills(t_ns=np.array([5, 5, 5, 6, 6]), price=np.array([10, 11, 11, 9, 9]),
                            qty=np.array([1, 1, 2, 3, 1]), sign=np.array([1, 1, 1, 1, -1]))
    assert trades.t_ns.tolist() == [5, 6, 6]
    assert trades.qty.tolist() == [4, 3, 1]
    assert trades.price.tolist() == [11, 9, 9]      # (10 + 11 + 22) / 4 = 10.75 -> 11
    assert trades.sign.tolist() == [1, 1, -1]


def test_sample_on_clock_takes_the_last_event_at_or_before():
    clock, at = an.sample_on_clock(np.array([10, 20, 20, 35]), 10)
    assert clock.tolist() == [10, 20, 30]
    assert at.tolist() == [0, 2, 2]


# ---------------------------------------------------------------------------------------
# known answers from synthetic series
# ---------------------------------------------------------------------------------------


def test_gaussian_returns_have_no_tails_and_no_memory():
    r = np.random.default_rng(1).normal(0, 1e-3, 100_000)
    facts = _facts(r)
    first = facts.returns[0]
    assert first.n == 100_000
    assert abs(first.excess_kurtosis) < 0.1
    assert abs(first.skew) < 0.05
    assert np.max(np.abs(facts.return_acf[1:50])) < 4 / math.sqrt(first.n)
    assert np.max(np.abs(facts.abs_return_acf[1:50])) < 4 / math.sqrt(first.n)
    assert _row(facts, "heavy tails").passed is False
    assert _row(facts, "no linear memory").passed is True
    assert _row(facts, "volatility clustering").passed is False


def test_student_t3_returns_have_heavy_tails():
    r = 1e-3 * np.random.default_rng(2).standard_t(3, 100_000)
    facts = _facts(r)
    first = facts.returns[0]
    assert first.excess_kurtosis > 5
    assert first.hill_alpha == pytest.approx(3.0, abs=0.4)
    assert _row(facts, "heavy tails").passed is True
    assert _row(facts, "tail exponent").passed is True


def _garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    r = np.empty(n)
    var = omega / (1 - alpha - beta)
    for t in range(n):
        r[t] = math.sqrt(var) * z[t]
        var = omega + alpha * r[t] ** 2 + beta * var
    return r


def test_garch_returns_cluster_in_volatility():
    r = _garch(50_000, omega=1e-8, alpha=0.08, beta=0.9, seed=4)
    facts = _facts(r)
    abs_acf = facts.abs_return_acf
    noise = 1 / math.sqrt(r.size)
    assert np.all(abs_acf[1:21] > 4 * noise)          # significant over 20 lags
    assert abs_acf[1] > abs_acf[20] > abs_acf[100]    # and decaying, slowly
    assert abs_acf[20] > 0.3 * abs_acf[1]
    assert np.max(np.abs(facts.return_acf[1:21])) < 4 * noise   # returns themselves: none
    assert _row(facts, "volatility clustering").passed is True
    assert _row(facts, "no linear memory").passed is True
    assert facts.returns[0].excess_kurtosis > 0.5


def test_long_memory_signs_give_the_decay_exponent():
    # sign(fGn) has ACF (2/pi) arcsin(rho(k)), rho(k) ~ H(2H-1) k^(2H-2): gamma = 2 - 2H
    hurst = 0.75
    signs = np.sign(fgn(1 << 17, hurst, np.random.default_rng(5))).astype(np.int8)
    trades = trades_of(signs)
    r = np.random.default_rng(6).normal(0, 1e-3, 1000)
    facts = an.stylized_facts(an.MarketData(quotes_from_returns(r), trades), horizons_s=(0.1,))
    fit = facts.sign_decay
    assert fit.decades >= 2
    assert fit.exponent == pytest.approx(2 - 2 * hurst, abs=0.1)
    k = np.arange(1, 11)
    rho = 0.5 * ((k + 1) ** 1.5 - 2 * k**1.5 + (k - 1) ** 1.5)
    np.testing.assert_allclose(facts.sign_acf[1:11], 2 / np.pi * np.arcsin(rho), atol=0.02)
    assert _row(facts, "order-sign ACF decay").passed is True
    assert _row(facts, "order-sign persistence").passed is True


def test_independent_signs_have_no_memory():
    signs = np.random.default_rng(7).choice(np.array([-1, 1], dtype=np.int8), 50_000)
    trades = trades_of(signs)
    r = np.random.default_rng(8).normal(0, 1e-3, 1000)
    facts = an.stylized_facts(an.MarketData(quotes_from_returns(r), trades), horizons_s=(0.1,))
    assert _row(facts, "order-sign persistence").passed is False


def test_square_root_impact_is_recovered_within_its_interval():
    fit = an.impact_fit(parents(0.5, 2000, seed=9))
    assert fit.delta_ci[0] <= 0.5 <= fit.delta_ci[1]
    assert fit.delta_ci[1] - fit.delta_ci[0] < 0.2
    assert fit.prefactor == pytest.approx(0.8, rel=0.3)
    assert fit.orders == 2000 and fit.bins == 10


def test_linear_impact_is_told_apart_from_the_square_root():
    fit = an.impact_fit(parents(1.0, 2000, seed=10, noise=0.05))
    assert fit.delta_ci[0] > 0.8
    quotes = quotes_from_returns(np.random.default_rng(0).normal(0, 1e-3, 1000))
    facts = an.stylized_facts(an.MarketData(quotes, parents=parents(1.0, 2000, seed=10)),
                              horizons_s=(0.1,))
    assert _row(facts, "square-root impact").passed is False


def test_the_vwap_measure_is_half_the_end_move_here():
    orders = parents(0.5, 100, seed=11)
    np.testing.assert_allclose(orders.impact("vwap"), 0.5 * orders.impact("end_mid"))


def test_too_little_data_is_not_graded():
    facts = _facts(np.random.default_rng(12).normal(0, 1e-3, 30))
    for row in facts.table():
        if row.name.startswith(("heavy", "order-sign", "square-root")):
            assert row.passed is None, row


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


def test_bad_records_raise_clearly():
    t = np.arange(4, dtype=np.int64) * 10
    ones = np.ones(4, dtype=np.int64)
    with pytest.raises(ValueError, match="uniform"):
        an.Quotes(np.array([0, 10, 25, 30]), ones, ones + 1, ones, ones)
    with pytest.raises(ValueError, match="differ in length"):
        an.Quotes(t, ones[:3], ones + 1, ones, ones)
    with pytest.raises(TypeError, match="Quotes.bid must hold integers"):
        an.Quotes(t, ones * 1.5, ones + 1, ones, ones)
    with pytest.raises(ValueError, match=r"shape \(n, 2, L\)"):
        an.Quotes(t, ones, ones + 1, ones, ones, depth=np.zeros((4, 3, 2), np.int64))
    with pytest.raises(ValueError, match="sign must be"):
        an.Trades(t, ones, ones, np.array([1, 0, 1, -1]))
    with pytest.raises(ValueError, match=r"Trades.qty must be > 0, got 0 at row 1"):
        an.merge_fills(t, ones, np.array([1, 0, 1, 1]), ones)
    with pytest.raises(ValueError, match="decreases at row 2"):
        an.Trades(np.array([0, 5, 4, 6]), ones, ones, ones)
    with pytest.raises(ValueError, match="daily_volatility must be > 0"):
        p = parents(0.5, 4, seed=0)
        an.ParentOrders(p.side, p.qty, p.start_ns, p.end_ns, p.arrival_mid, p.end_mid, p.vwap,
                        p.daily_volume, np.zeros(4))
    quotes = an.Quotes(t, ones, ones + 1, ones, ones)
    with pytest.raises(ValueError, match="whole number of clock steps"):
        an.stylized_facts(an.MarketData(quotes), horizons_s=(1.5e-8,))
    with pytest.raises(ValueError, match="constant"):
        an.acf(np.ones(5), 2)


def test_samples_without_a_quote_are_counted_not_used():
    r = np.random.default_rng(13).normal(0, 1e-3, 200)
    q = quotes_from_returns(r)
    ask = q.ask.copy()
    ask[50] = EMPTY_ASK
    facts = an.stylized_facts(an.MarketData(an.Quotes(q.t_ns, q.bid, ask, q.bid_qty, q.ask_qty)),
                              horizons_s=(0.1,))
    assert facts.quotes_without_mid == 1
    assert facts.returns[0].n == 198
    assert facts.spread_min == 2 and facts.spread_counts.sum() == 200


# ---------------------------------------------------------------------------------------
# real data: LOBSTER AAPL 2012-06-21 09:30-10:30
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aapl() -> tuple[an.MarketData, an.StylizedFacts]:
    market = an.lobster_market(lobster_file())
    return market, an.stylized_facts(market)


def test_aapl_record(aapl):
    market, facts = aapl
    q = market.quotes
    assert q.interval_ns == 100_000_000
    assert q.t_ns.size == 35_999                      # one hour at 100 ms from the first row
    assert facts.quotes_without_mid < 10              # only while the book fills at 09:30
    assert market.trades.sign.size == 4575            # 6268 executions, sweeps merged
    assert 58_000 < np.nanmedian(q.mid) < 59_000      # ticks of a cent: AAPL near $586
    assert facts.spread_min >= 1 and 15 < facts.spread_mean < 25


def test_aapl_passes_every_graded_fact(aapl):
    _, facts = aapl
    rows = {r.name: r for r in facts.table()}
    failed = [r.name for r in rows.values() if r.passed is False]
    assert failed == []
    graded = [name for name, r in rows.items() if r.passed]
    assert len(graded) >= 8
    assert rows["heavy tails: excess kurtosis"].value > 10
    assert rows["order-sign persistence: mean ACF"].value > 0.1
