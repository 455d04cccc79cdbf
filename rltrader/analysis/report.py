"""A stylized-facts report: PNG figures, ``report.md`` and ``facts.json``.

``write_report(out_dir, market, facts)`` draws what :func:`rltrader.analysis.facts.stylized_facts`
measured on ``market``: the price path with its bid/ask band, the spread over time and its
histogram, the depth profile, the return distributions against a Gaussian, the ACF of
returns against that of absolute returns, the order-sign ACF and the impact of parent orders
against their size (the last three on log-log axes, with their fitted power laws). Figures
for records the market lacks (depth, trades, parent orders) are left out and ``report.md``
says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rltrader.analysis.facts import (
    MIN_RETURNS,
    NS_PER_S,
    ImpactFit,
    MarketData,
    ParentOrders,
    PowerLawFit,
    StylizedFacts,
    log_returns,
)

BID_COLOUR, ASK_COLOUR, MID_COLOUR = "tab:green", "tab:red", "k"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _minutes(market: MarketData) -> np.ndarray:
    t = market.quotes.t_ns
    return (t - t[0]) / (60 * NS_PER_S)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_price(market: MarketData, path: Path) -> Path:
    """Mid price with the bid/ask band, in currency units, against minutes."""
    plt = _pyplot()
    q, minutes = market.quotes, _minutes(market)
    ok = q.has_mid
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.fill_between(minutes[ok], q.bid[ok] * market.tick_size, q.ask[ok] * market.tick_size,
                    color="tab:blue", alpha=0.3, lw=0, label="bid-ask")
    ax.plot(minutes[ok], q.mid[ok] * market.tick_size, color=MID_COLOUR, lw=0.5, label="mid")
    ax.set(title=f"{market.name}: price", xlabel="minutes from the first sample",
           ylabel=f"price (tick = {market.tick_size:g})")
    ax.legend(loc="best")
    return _save(fig, path)


def plot_spread(market: MarketData, facts: StylizedFacts, path: Path) -> Path:
    """Spread against time (samples and a one-minute mean) and its histogram, in ticks."""
    plt = _pyplot()
    q, minutes = market.quotes, _minutes(market)
    ok = q.has_mid
    spread = (q.ask - q.bid)[ok].astype(np.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=(2, 1))
    left.plot(minutes[ok], spread, lw=0.3, color="tab:purple", alpha=0.5, label="samples")
    window = max(1, int(round(60 * NS_PER_S / q.interval_ns)))
    if spread.size >= window:
        smooth = np.convolve(spread, np.ones(window) / window, mode="valid")
        left.plot(minutes[ok][window - 1:], smooth, color="k", lw=1.0, label="1-minute mean")
    left.set(title="spread", xlabel="minutes from the first sample", ylabel="ticks")
    left.legend(loc="upper right")
    right.bar(facts.spread_values, facts.spread_counts / max(facts.spread_counts.sum(), 1),
              width=0.9, color="tab:purple")
    right.axvline(facts.spread_mean, color="k", ls="--", lw=0.8,
                  label=f"mean {facts.spread_mean:.1f}")
    right.set(title="spread distribution", xlabel="ticks", ylabel="share of samples")
    right.legend(loc="upper right")
    return _save(fig, path)


def plot_depth(profile: np.ndarray, path: Path) -> Path:
    """Mean quantity at the k-th best level of each side (bids left, asks right).

    ``profile``: (2, L) mean lots, bids then asks (``StylizedFacts.depth_profile``).
    """
    plt = _pyplot()
    levels = np.arange(1, profile.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(-levels, profile[0], color=BID_COLOUR, label="bids")
    ax.bar(levels, profile[1], color=ASK_COLOUR, label="asks")
    ax.set_xticks(np.r_[-levels[::-1], levels], [str(k) for k in np.r_[levels[::-1], levels]])
    ax.set(title="depth profile: mean quantity by level from the touch",
           xlabel="level (1 = best)", ylabel="mean lots")
    ax.legend(loc="upper center")
    return _save(fig, path)


def plot_returns(market: MarketData, facts: StylizedFacts, path: Path) -> Path:
    """Histograms of standardised log returns per horizon on a log density axis vs N(0, 1)."""
    plt = _pyplot()
    usable = [s for s in facts.returns if s.n >= MIN_RETURNS]
    fig, axes = plt.subplots(1, max(len(usable), 1), figsize=(4 * max(len(usable), 1), 3.8),
                             squeeze=False)
    grid = np.linspace(-8, 8, 400)
    mid = market.quotes.mid
    for ax, stats in zip(axes[0], usable, strict=False):
        r = log_returns(mid, int(round(stats.horizon_s / facts.interval_s)))
        z = (r - r.mean()) / stats.std
        bins = np.linspace(-8, 8, 65 if r.size > 2000 else 33)
        ax.hist(np.clip(z, -8, 8), bins=bins, density=True, color="tab:blue", alpha=0.7,
                label="returns")
        ax.plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), color="k", lw=1,
                label="Gaussian")
        ax.set_yscale("log")
        ax.set_ylim(0.5 / r.size, 2)
        ax.set(title=f"{stats.horizon_s:g} s: excess kurtosis {stats.excess_kurtosis:.1f}, "
               f"n={stats.n}", xlabel="return / std (clipped at 8)", ylabel="density")
        ax.legend(loc="upper right", fontsize=8)
    if not usable:
        axes[0, 0].set_title(f"fewer than {MIN_RETURNS} returns at every horizon")
    return _save(fig, path)


def _loglog_acf(ax, acf: np.ndarray, n: int, fit: PowerLawFit | None, label: str,
                fit_label: str, colour: str) -> None:
    """The positive lags of ``acf`` on log-log, the noise level ``2/sqrt(n)``, the fit."""
    lags = np.arange(1, acf.size)
    positive = acf[1:] > 0
    ax.loglog(lags[positive], acf[1:][positive], ".", ms=3, color=colour, label=label)
    ax.axhline(2 / math.sqrt(n), color="0.5", ls=":", label="2/sqrt(n)")
    if fit is not None:
        x = np.logspace(math.log10(fit.x_min), math.log10(fit.x_max), 50)
        ax.plot(x, fit.prefactor * x**-fit.exponent, color="k", ls="--", lw=1.2,
                label=f"{fit_label} = {fit.exponent:.2f} +/- {fit.stderr:.2f}")
    ax.set(xlabel="lag", ylabel="autocorrelation")
    ax.legend(loc="lower left")


def plot_acf(facts: StylizedFacts, path: Path) -> Path:
    """ACF of returns and of |returns|: linear axes over 50 lags, and |r| on log-log."""
    plt = _pyplot()
    noise = 2 / math.sqrt(facts.acf_n)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    lags = np.arange(1, min(50, facts.return_acf.size - 1) + 1)
    left.axhspan(-noise, noise, color="0.85", label="+/- 2/sqrt(n)")
    left.plot(lags, facts.return_acf[lags], "o-", ms=3, label="returns")
    left.plot(lags, facts.abs_return_acf[lags], "s-", ms=3, label="|returns|")
    left.axhline(0, color="k", lw=0.5)
    left.set(title=f"ACF of {facts.acf_horizon_s:g} s returns", xlabel="lag (returns)",
             ylabel="autocorrelation")
    left.legend(loc="upper right")
    _loglog_acf(right, facts.abs_return_acf, facts.acf_n, facts.abs_return_decay,
                "|returns|", "decay exponent", "tab:orange")
    right.set(title="ACF of |returns|, log-log")
    return _save(fig, path)


def plot_sign_acf(sign_acf: np.ndarray, trades: int, fit: PowerLawFit | None, path: Path
                  ) -> Path:
    """Order-sign ACF (lags 0..K) of ``trades`` trades on log-log with its fitted power law."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _loglog_acf(ax, sign_acf, trades, fit, "trade signs", "gamma", "tab:blue")
    ax.set(title=f"order-sign ACF ({trades:,} trades)", xlabel="lag (trades)")
    return _save(fig, path)


def plot_impact(parents: ParentOrders, fit: ImpactFit, path: Path) -> Path:
    """Impact / sigma against Q / V per parent order and per bin, with the fitted law."""
    plt = _pyplot()
    x, y = parents.participation(), parents.impact()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.loglog(x[y > 0], y[y > 0], ".", ms=2, color="0.6", alpha=0.5,
              label="orders (positive impact)")
    ax.loglog(fit.bin_participation, fit.bin_impact, "o", color="tab:blue", label="bin means")
    line = np.logspace(math.log10(x.min()), math.log10(x.max()), 50)
    ax.plot(line, fit.prefactor * line**fit.delta, "k--",
            label=f"Y (Q/V)^delta: delta = {fit.delta:.2f} "
            f"[{fit.delta_ci[0]:.2f}, {fit.delta_ci[1]:.2f}], Y = {fit.prefactor:.2f}")
    ax.set(title=f"impact of {fit.orders:,} parent orders", xlabel="Q / V",
           ylabel="impact / daily volatility")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _returns_table(facts: StylizedFacts) -> str:
    lines = ["| horizon (s) | n | std | skew | excess kurtosis | Hill alpha | zero returns |",
             "|---|---|---|---|---|---|---|"]
    for s in facts.returns:
        lines.append(f"| {s.horizon_s:g} | {s.n} | {s.std:.3g} | {s.skew:.2f} | "
                     f"{s.excess_kurtosis:.2f} | {s.hill_alpha:.2f} | {s.zero_fraction:.1%} |")
    return "\n".join(lines)


def write_report(out_dir: str | Path, market: MarketData, facts: StylizedFacts) -> Path:
    """Write the figures, ``report.md`` and ``facts.json`` for ``market`` into ``out_dir``.

    Returns the path of ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [("price path, bid-ask band", plot_price(market, out / "price.png")),
               ("spread", plot_spread(market, facts, out / "spread.png"))]
    missing = []
    if facts.depth_profile is not None:
        figures.append(("depth profile", plot_depth(facts.depth_profile, out / "depth.png")))
    else:
        missing.append("depth (no depth recorded)")
    figures.append(("return distributions", plot_returns(market, facts, out / "returns.png")))
    figures.append(("autocorrelations", plot_acf(facts, out / "acf.png")))
    if facts.sign_acf is not None:
        figures.append(("order signs", plot_sign_acf(facts.sign_acf, facts.trades,
                                                     facts.sign_decay, out / "sign_acf.png")))
    else:
        missing.append(f"order signs ({facts.trades} trades)")
    if facts.impact is not None and market.parents is not None:
        figures.append(("impact", plot_impact(market.parents, facts.impact,
                                              out / "impact.png")))
    else:
        missing.append("impact (no parent orders, or too few)")
    (out / "facts.json").write_text(json.dumps(facts.to_dict(), indent=2) + "\n")
    parts = [
        f"# Stylized facts: {market.name}",
        f"Clock {facts.interval_s:g} s, {market.quotes.t_ns.size:,} samples "
        f"({facts.quotes_without_mid} without a two-sided quote), {facts.trades:,} trades. "
        "Typical ranges and their sources: docs/stylized_facts.md. `n/a`: not measurable "
        "on this record.",
        facts.format_table(markdown=True),
        "## Returns by horizon (non-overlapping log mid returns)",
        _returns_table(facts),
        *(f"## {title}\n\n![{title}]({png.name})" for title, png in figures),
    ]
    if missing:
        parts.append("Not drawn: " + "; ".join(missing) + ".")
    report = out / "report.md"
    report.write_text("\n\n".join(parts) + "\n")
    return report


__all__ = ["write_report"]
