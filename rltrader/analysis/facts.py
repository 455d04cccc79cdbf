"""Stylized facts of a market, computed from plain numpy arrays.

The input is a :class:`~rltrader.sim.market_data.MarketData` (clocked quotes, trades, parent
orders; units in :mod:`rltrader.sim.market_data`, whose names are re-exported here).
:func:`stylized_facts` measures it and returns :class:`StylizedFacts`, whose ``table()``
gives one row per fact: value, the typical range reported in the literature
(``docs/stylized_facts.md`` cites each), and whether the value falls in it. Facts that a
record cannot support (too few samples, no parent orders) are reported as not measured
(``passed is None``), never silently passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rltrader.core.constants import NS_PER_S
from rltrader.sim.market_data import (
    MarketData,
    ParentOrders,
    Quotes,
    Trades,
    lobster_market,
    merge_fills,
    sample_on_clock,
)

#: Horizons (seconds) of the return statistics, kept when the clock and the record allow.
DEFAULT_HORIZONS_S = (1.0, 10.0, 60.0, 300.0)
#: A horizon's moments are reported only with at least this many non-overlapping returns.
MIN_RETURNS = 50
#: Share of the largest |r| behind the Hill estimate.
TAIL_FRACTION = 0.02
#: With fewer trades the order-sign facts are not measured.
MIN_TRADES = 100


# ---------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags 0..max_lag, by FFT.

    ``rho(k) = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2`` with m the sample mean
    (the usual biased estimator; rho(0) = 1). ``max_lag`` is capped at ``len(x) - 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"acf needs a 1-D series of at least 2 values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("acf: the series holds NaN or inf")
    dev = x - x.mean()
    if not np.any(dev):
        raise ValueError("acf: the series is constant")
    n = x.size
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(dev, size)
    cov = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(max_lag, n - 1) + 1]
    return cov / cov[0]


def moments(r: np.ndarray) -> tuple[float, float, float]:
    """(standard deviation, skewness, excess kurtosis) of ``r`` (population moments)."""
    r = np.asarray(r, dtype=np.float64)
    dev = r - r.mean()
    var = float(np.mean(dev**2))
    if var == 0.0:
        return 0.0, math.nan, math.nan
    return (math.sqrt(var), float(np.mean(dev**3)) / var**1.5,
            float(np.mean(dev**4)) / var**2 - 3.0)


def hill_tail_exponent(x: np.ndarray, k: int) -> float:
    """Hill estimator of the tail exponent alpha of ``|x|`` from its ``k`` largest values.

    ``alpha = 1 / mean_{i<=k} log(X_(i) / X_(k+1))`` with ``X_(1) >= X_(2) >= ...`` the
    order statistics of ``|x|``; alpha is the exponent of ``P(|X| > u) ~ u^-alpha``.
    """
    a = np.abs(np.asarray(x, dtype=np.float64))
    if not 1 <= k < a.size:
        raise ValueError(f"hill_tail_exponent needs 1 <= k < len(x) = {a.size}, got k={k}")
    top = -np.sort(-a)[: k + 1]
    if top[k] <= 0.0:
        raise ValueError(f"hill_tail_exponent: the {k + 1}-th largest |x| is 0; use a "
                         "smaller k")
    return float(1.0 / np.mean(np.log(top[:k] / top[k])))


@dataclass(frozen=True)
class PowerLawFit:
    """``y ~ prefactor * x^-exponent`` fitted by least squares on log-log points."""

    exponent: float
    prefactor: float
    stderr: float     # standard error of the exponent (OLS)
    points: int       # (x, y) points used
    x_min: float      # the smallest and largest x used
    x_max: float

    @property
    def decades(self) -> float:
        """How many decades of x the fit spans."""
        return math.log10(self.x_max / self.x_min)


#: A decay exponent is graded only when its fit spans this many decades of lags.
MIN_FIT_DECADES = 2.0


def fit_power_law_decay(acf_values: np.ndarray, floor: float = 0.0, per_decade: int = 8
                        ) -> PowerLawFit | None:
    """Fit ``acf(k) ~ A k^-exponent`` to an autocorrelation on log-spaced lag windows.

    ``acf_values[k]`` is the ACF at lag k (index 0 is ignored). Lags 1..K are cut into
    ``per_decade`` log-spaced windows per decade; each window gives one point (geometric-mean
    lag, mean ACF), which keeps long lags from dominating and averages their noise. Points
    are used up to (not including) the first whose mean is ``<= floor`` (e.g. the noise level
    ``2 / sqrt(n)``). Returns None with fewer than 3 points.
    """
    values = np.asarray(acf_values, dtype=np.float64)
    top = values.size - 1
    if top < 3:
        return None
    count = max(2, int(math.ceil(per_decade * math.log10(top + 1))) + 1)
    edges = np.unique(np.rint(np.logspace(0, math.log10(top + 1), count)).astype(np.int64))
    lags = np.arange(values.size, dtype=np.float64)
    windows = list(zip(edges[:-1], edges[1:], strict=True))
    x = np.array([np.exp(np.mean(np.log(lags[lo:hi]))) for lo, hi in windows])
    y = np.array([np.mean(values[lo:hi]) for lo, hi in windows])
    below = np.flatnonzero(y <= floor)
    stop = int(below[0]) if below.size else y.size
    if stop < 3:
        return None
    slope, intercept, stderr = _ols(np.log(x[:stop]), np.log(y[:stop]))
    return PowerLawFit(-slope, math.exp(intercept), stderr, stop, float(x[0]),
                       float(x[stop - 1]))


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, standard error of the slope) of y = a + b x."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym))) / sxx
    intercept = float(ym - slope * xm)
    resid = y - intercept - slope * x
    dof = max(x.size - 2, 1)
    return slope, intercept, math.sqrt(float(np.sum(resid**2)) / dof / sxx)


def log_returns(mid: np.ndarray, step: int) -> np.ndarray:
    """Non-overlapping log returns of ``mid`` over ``step`` samples.

    Returns that start or end on a NaN mid (no quote) are left out.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    r = np.diff(np.log(np.asarray(mid, dtype=np.float64)[::step]))
    return r[np.isfinite(r)]


@dataclass(frozen=True)
class ReturnStats:
    """Distribution of non-overlapping log mid returns at one horizon."""

    horizon_s: float
    n: int
    std: float
    skew: float
    excess_kurtosis: float
    hill_alpha: float       # NaN when too few non-zero returns for the tail
    zero_fraction: float    # share of returns exactly 0 (price discreteness)


def return_stats(mid: np.ndarray, step: int, horizon_s: float, tail_fraction: float
                 ) -> ReturnStats:
    r = log_returns(mid, step)
    std, skew, kurt = moments(r) if r.size else (math.nan,) * 3
    k = int(tail_fraction * r.size)
    nonzero = int(np.count_nonzero(r))
    alpha = hill_tail_exponent(r, k) if k >= 10 and nonzero > k else math.nan
    zero = 1.0 - nonzero / r.size if r.size else math.nan
    return ReturnStats(horizon_s, int(r.size), std, skew, kurt, alpha, zero)


@dataclass(frozen=True)
class ImpactFit:
    """``impact / sigma = Y * (Q / V)^delta``, fitted on log-log over equal-count bins."""

    delta: float
    delta_ci: tuple[float, float]   # bootstrap 95 % interval over orders
    prefactor: float                # Y
    orders: int
    bins: int                       # bins with positive mean impact used in the fit
    bin_participation: np.ndarray   # geometric mean Q/V per bin used
    bin_impact: np.ndarray          # mean impact / sigma per bin used


def _binned_power_fit(x: np.ndarray, y: np.ndarray, n_bins: int
                      ) -> tuple[float, float, np.ndarray, np.ndarray]:
    order = np.argsort(x, kind="stable")
    groups = np.array_split(order, n_bins)
    bx = np.array([np.exp(np.mean(np.log(x[g]))) for g in groups])
    by = np.array([np.mean(y[g]) for g in groups])
    keep = by > 0
    if np.count_nonzero(keep) < 3:
        return math.nan, math.nan, bx[keep], by[keep]
    slope, intercept, _ = _ols(np.log(bx[keep]), np.log(by[keep]))
    return slope, math.exp(intercept), bx[keep], by[keep]


def impact_fit(parents: ParentOrders, *, measure: str = "end_mid", n_bins: int = 10,
               bootstrap: int = 200, seed: int = 0) -> ImpactFit | None:
    """Fit the square-root law to parent orders (None with fewer than ``3 * n_bins`` orders).

    Orders are sorted by Q/V into ``n_bins`` bins of equal count; the mean impact/sigma of
    each bin with a positive mean is regressed on its geometric-mean Q/V on log-log
    (averaging within bins keeps the many orders whose own price move is negative). The 95 %
    interval resamples orders with replacement ``bootstrap`` times (seeded).
    """
    x, y = parents.participation(), parents.impact(measure)
    if x.size < 3 * n_bins:
        return None
    delta, prefactor, bx, by = _binned_power_fit(x, y, n_bins)
    if not math.isfinite(delta):
        return None
    rng = np.random.default_rng(seed)
    draws = np.array([_binned_power_fit(x[i], y[i], n_bins)[0]
                      for i in rng.integers(0, x.size, size=(bootstrap, x.size))])
    draws = draws[np.isfinite(draws)]
    lo, hi = np.percentile(draws, [2.5, 97.5]) if draws.size else (math.nan, math.nan)
    return ImpactFit(delta, (float(lo), float(hi)), prefactor, int(x.size), int(bx.size),
                     bx, by)


# ---------------------------------------------------------------------------------------
# the facts
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactRow:
    """One line of :meth:`StylizedFacts.table`."""

    name: str
    value: float
    typical: str            # the literature range, as text (see docs/stylized_facts.md)
    passed: bool | None     # None: not measured on this record
    detail: str


def _check(value: float, lo: float, hi: float) -> bool | None:
    return None if not math.isfinite(value) else bool(lo <= value <= hi)


@dataclass(frozen=True)
class StylizedFacts:
    """Everything measured on one :class:`MarketData`; :meth:`table` grades it."""

    name: str
    interval_s: float
    quotes_without_mid: int
    returns: list[ReturnStats]
    acf_horizon_s: float
    acf_n: int                          # returns behind the two ACFs below
    return_acf: np.ndarray              # lags 0..K of returns at acf_horizon_s
    abs_return_acf: np.ndarray          # lags 0..K of |returns|
    abs_return_decay: PowerLawFit | None
    spread_mean: float                  # ticks
    spread_median: float
    spread_p95: float
    spread_min: int
    spread_values: np.ndarray           # distinct spreads, ticks
    spread_counts: np.ndarray           # samples at each
    depth_profile: np.ndarray | None    # (2, L) mean lots per level, bids then asks
    trades: int
    sign_acf: np.ndarray | None         # lags 0..K of trade signs
    sign_decay: PowerLawFit | None
    impact: ImpactFit | None
    return_acf_lags: tuple[int, int] = field(default=(3, 20))   # lags of the no-memory test
    abs_acf_lags: int = 20              # lags 1..this summarise volatility clustering

    def _kurtosis_pair(self) -> tuple[ReturnStats | None, ReturnStats | None]:
        usable = [s for s in self.returns if s.n >= MIN_RETURNS and math.isfinite(
            s.excess_kurtosis)]
        return (usable[0], usable[-1]) if len(usable) >= 2 else (
            usable[0] if usable else None, None)

    def table(self) -> list[FactRow]:
        """One row per fact: name, value, typical range, pass/fail, detail."""
        rows: list[FactRow] = []
        short, long = self._kurtosis_pair()
        if short is not None:
            rows.append(FactRow(
                "heavy tails: excess kurtosis", short.excess_kurtosis, "> 1 (Cont 2001)",
                _check(short.excess_kurtosis, 1.0, math.inf),
                f"{short.horizon_s:g} s returns, n={short.n}"))
            rows.append(FactRow(
                "tail exponent (Hill)", short.hill_alpha, "2 to 5 (Cont 2001)",
                _check(short.hill_alpha, 2.0, 5.0),
                f"{short.horizon_s:g} s, largest {100 * TAIL_FRACTION:g} % of |r|"))
        else:
            rows.append(FactRow("heavy tails: excess kurtosis", math.nan, "> 1 (Cont 2001)",
                                None, f"fewer than {MIN_RETURNS} returns"))
        if short is not None and long is not None:
            ratio = long.excess_kurtosis / short.excess_kurtosis if short.excess_kurtosis > 0 \
                else math.nan
            rows.append(FactRow(
                "aggregational Gaussianity: kurtosis ratio", ratio,
                "< 0.5: kurtosis falls with horizon (Cont 2001)", _check(ratio, -math.inf, 0.5),
                f"{long.horizon_s:g} s ({long.excess_kurtosis:.2f}, n={long.n}) vs "
                f"{short.horizon_s:g} s ({short.excess_kurtosis:.2f})"))
        lo, hi = self.return_acf_lags
        tail = self.return_acf[lo:hi + 1]
        no_memory = float(np.max(np.abs(tail))) if tail.size else math.nan
        rows.append(FactRow(
            "no linear memory: max |ACF(r)|", no_memory, "< 0.1 beyond lag 2 (Cont 2001)",
            _check(no_memory, 0.0, 0.1),
            f"lags {lo}-{hi} of {self.acf_horizon_s:g} s returns, ACF(1) = "
            f"{self.return_acf[1]:.3f}, noise 2/sqrt(n) = {2 / math.sqrt(self.acf_n):.3f}"))
        k = self.abs_acf_lags
        clustering = float(np.mean(self.abs_return_acf[1:k + 1]))
        noise = 3.0 / math.sqrt(self.acf_n * k)
        rows.append(FactRow(
            "volatility clustering: mean ACF(|r|)", clustering,
            "> 0, significant (Cont 2001)", _check(clustering, noise, math.inf),
            f"lags 1-{k}, vs 3 sd of the mean under no memory = {noise:.3f}"))
        beta = self.abs_return_decay.exponent if self.abs_return_decay else math.nan
        rows.append(FactRow(
            "|r| ACF power-law decay exponent", beta, "0.2 to 0.5 (Cont 2001: 0.2-0.4)",
            _grade_decay(self.abs_return_decay, 0.2, 0.5), _fit_detail(self.abs_return_decay)))
        rows.append(FactRow(
            "spread: mean (ticks)", self.spread_mean, ">= 1 tick, never crossed",
            _check(float(self.spread_min), 1.0, math.inf) if self.spread_values.size else None,
            f"median {self.spread_median:g}, p95 {self.spread_p95:g}, min {self.spread_min}"))
        if self.depth_profile is not None:
            mean_depth = self.depth_profile.mean(axis=0)
            peak = int(np.argmax(mean_depth)) + 1
            rows.append(FactRow(
                "depth profile: peak level", float(peak),
                "> 1: hump away from the touch (Bouchaud et al. 2002)",
                _check(float(peak), 2.0, math.inf),
                f"mean lots at levels 1..{mean_depth.size}: "
                + " ".join(f"{q:.0f}" for q in mean_depth)))
        rows.extend(self._sign_rows())
        fit = self.impact
        rows.append(FactRow(
            "square-root impact exponent delta", fit.delta if fit else math.nan,
            "0.4 to 0.7 (Toth et al. 2011: 0.5)",
            _check(fit.delta, 0.4, 0.7) if fit else None,
            f"95 % CI [{fit.delta_ci[0]:.2f}, {fit.delta_ci[1]:.2f}], Y = "
            f"{fit.prefactor:.2f}, {fit.orders} orders in {fit.bins} bins" if fit
            else "no parent orders recorded"))
        return rows

    def _sign_rows(self) -> list[FactRow]:
        typical = "0.2 to 0.8 (Lillo-Farmer 2004; Bouchaud et al. 2004)"
        if self.sign_acf is None:
            why = f"{self.trades} trades (fewer than {MIN_TRADES})"
            return [FactRow("order-sign persistence: mean ACF", math.nan, "> 0, significant",
                            None, why),
                    FactRow("order-sign ACF decay exponent", math.nan, typical, None, why)]
        k = min(self.abs_acf_lags, self.sign_acf.size - 1)
        persistence = float(np.mean(self.sign_acf[1:k + 1]))
        noise = 3.0 / math.sqrt(self.trades * k)
        gamma = self.sign_decay.exponent if self.sign_decay else math.nan
        return [
            FactRow("order-sign persistence: mean ACF", persistence,
                    "> 0, significant (Lillo-Farmer 2004)", _check(persistence, noise, math.inf),
                    f"lags 1-{k} of {self.trades} trades, ACF(1) = {self.sign_acf[1]:.3f}, "
                    f"vs 3 sd of the mean under no memory = {noise:.3f}"),
            FactRow("order-sign ACF decay exponent", gamma, typical,
                    _grade_decay(self.sign_decay, 0.2, 0.8), _fit_detail(self.sign_decay)),
        ]

    def format_table(self, markdown: bool = False) -> str:
        """The table as aligned text, or as a Markdown table."""
        rows = self.table()
        cells = [(r.name, _fmt(r.value), r.typical, _verdict(r.passed), r.detail) for r in rows]
        head = ("fact", "value", "typical", "check", "detail")
        if markdown:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(x.replace("|", "\\|") for x in c) + " |" for c in cells]
            return "\n".join(lines)
        widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
        return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4]
                         for c in [head, *cells])

    def to_dict(self) -> dict:
        """JSON-ready summary: the table plus the per-horizon return statistics."""
        return {
            "name": self.name,
            "interval_s": self.interval_s,
            "quotes_without_mid": self.quotes_without_mid,
            "facts": [{"name": r.name, "value": _json_float(r.value), "typical": r.typical,
                       "passed": r.passed, "detail": r.detail} for r in self.table()],
            "returns": [{k: _json_float(v) for k, v in vars(s).items()} for s in self.returns],
            "spread": {"mean": self.spread_mean, "median": self.spread_median,
                       "p95": self.spread_p95, "min": self.spread_min},
            "depth_profile": None if self.depth_profile is None
            else self.depth_profile.tolist(),
            "trades": self.trades,
        }


def _grade_decay(fit: PowerLawFit | None, lo: float, hi: float) -> bool | None:
    """Pass/fail only for a fit over at least ``MIN_FIT_DECADES`` of lags."""
    if fit is None or fit.decades < MIN_FIT_DECADES:
        return None
    return _check(fit.exponent, lo, hi)


def _fit_detail(fit: PowerLawFit | None) -> str:
    if fit is None:
        return "too few lags above the noise to fit"
    short = (f"; spans {fit.decades:.1f} < {MIN_FIT_DECADES:g} decades, not graded"
             if fit.decades < MIN_FIT_DECADES else "")
    return (f"+/- {fit.stderr:.2f} (OLS s.e.), {fit.points} lag windows, lags "
            f"{fit.x_min:.3g}-{fit.x_max:.3g}{short}")


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3g}"


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def stylized_facts(market: MarketData, *, horizons_s: tuple[float, ...] = DEFAULT_HORIZONS_S,
                   max_lag: int = 1000, seed: int = 0) -> StylizedFacts:
    """Measure the stylized facts of ``market`` (see the module docstring).

    Parameters
    ----------
    market : MarketData
    horizons_s : tuple of float
        Return horizons, seconds; each must be a whole number of clock steps (others raise),
        horizons shorter than one step are skipped.
    max_lag : int
        Longest lag of the order-sign ACF (trades) and of the |r| ACF (clock steps at the
        shortest horizon); both are capped at a tenth of the series.
    seed : int
        Seed of the impact fit's bootstrap.
    """
    q = market.quotes
    interval_s = q.interval_ns / NS_PER_S
    steps = []
    for h in horizons_s:
        step = h / interval_s
        if step < 1:
            continue
        if abs(step - round(step)) > 1e-9:
            raise ValueError(f"horizon {h} s is not a whole number of clock steps "
                             f"({interval_s} s)")
        steps.append((float(h), int(round(step))))
    if not steps:
        raise ValueError(f"no horizon in {horizons_s} is at least one clock step "
                         f"({interval_s} s)")
    mid = q.mid
    returns = [return_stats(mid, step, h, TAIL_FRACTION) for h, step in steps]
    base = log_returns(mid, steps[0][1])
    lags = min(max_lag, max(base.size // 10, 20))
    abs_acf = acf(np.abs(base), lags)
    floor = 2.0 / math.sqrt(base.size)
    spread = q.spread
    values, counts = np.unique(spread, return_counts=True)
    depth = None if q.depth is None else q.depth[q.has_mid].mean(axis=0)
    sign_acf: np.ndarray | None = None
    sign_decay: PowerLawFit | None = None
    signs = np.zeros(0) if market.trades is None else market.trades.sign
    trades = int(signs.size)
    if trades >= MIN_TRADES:
        sign_acf = acf(signs, min(max_lag, trades // 10))
        sign_decay = fit_power_law_decay(sign_acf, 2.0 / math.sqrt(trades))
    return StylizedFacts(
        name=market.name,
        interval_s=interval_s,
        quotes_without_mid=int(np.count_nonzero(~q.has_mid)),
        returns=returns,
        acf_horizon_s=steps[0][0],
        acf_n=int(base.size),
        return_acf=acf(base, lags),
        abs_return_acf=abs_acf,
        abs_return_decay=fit_power_law_decay(abs_acf, floor),
        spread_mean=float(spread.mean()) if spread.size else math.nan,
        spread_median=float(np.median(spread)) if spread.size else math.nan,
        spread_p95=float(np.percentile(spread, 95)) if spread.size else math.nan,
        spread_min=int(spread.min()) if spread.size else 0,
        spread_values=values,
        spread_counts=counts,
        depth_profile=depth,
        trades=trades,
        sign_acf=sign_acf,
        sign_decay=sign_decay,
        impact=None if market.parents is None else impact_fit(market.parents, seed=seed),
    )


__all__ = [
    "DEFAULT_HORIZONS_S",
    "FactRow",
    "ImpactFit",
    "MarketData",
    "ParentOrders",
    "PowerLawFit",
    "Quotes",
    "ReturnStats",
    "StylizedFacts",
    "Trades",
    "acf",
    "fit_power_law_decay",
    "hill_tail_exponent",
    "impact_fit",
    "lobster_market",
    "log_returns",
    "merge_fills",
    "moments",
    "sample_on_clock",
    "stylized_facts",
]
