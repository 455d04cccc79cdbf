"""A realistic simulated day and the paired measurement of parent-order impact.

:func:`impact_experiment` measures the square-root law the way a controlled experiment
would: it runs the market twice from one seed, once with execution agents working parent
orders and once without (the control), and takes as each order's impact the difference
the orders made, ``side * ((mid - control mid) at the end - (mid - control mid) at the
start) / arrival mid``. Both runs draw the same random numbers (:mod:`rltrader._flow` keeps
every trader's draws independent of the book), so the fundamental, the wake-ups and the
traders' choices are common to both and the difference is the orders' effect plus the
market's reaction to it. Sizes are set as fractions ``Q / V`` of the control's mean daily
volume; impact is normalised by the control's daily volatility (:func:`session_volatility`).

:func:`demo_day` runs the ``realistic`` preset's day, the experiment on it, measures the
stylized facts and writes the report (``rltrader.analysis.report.write_report``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rltrader.analysis.facts import StylizedFacts, stylized_facts
from rltrader.core.constants import NS_PER_S
from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE
from rltrader.sim.config import MarketConfig, ParentOrderConfig, RecordConfig
from rltrader.sim.market import Market, preset
from rltrader.sim.market_data import MarketData, ParentOrders
from rltrader.sim.record import VOLATILITY_HORIZON_S, Recording, session_volatility

#: Parent orders' Q / V of the demo: 15 sizes, log-spaced over two decades.
DEMO_PARTICIPATION = tuple(np.logspace(-3.3, -1.3, 15).tolist())
#: Return horizon of the daily volatility, seconds (long enough to be free of bid-ask bounce).


def parent_schedule(sizes: Sequence[int], *, first_s: float = 600.0, duration_s: float = 900.0,
                    gap_s: float = 600.0, interval_s: float = 5.0) -> tuple[ParentOrderConfig, ...]:
    """TWAP parent orders one after the other: order ``k`` of ``sizes[k]`` lots trades from
    ``first_s + k * (duration_s + gap_s)`` for ``duration_s`` seconds, a child every
    ``interval_s``; sides alternate buy, sell (a slot's drift does not add up over the day)."""
    return tuple(
        ParentOrderConfig(side="buy" if k % 2 == 0 else "sell", qty=int(q),
                          start_s=first_s + k * (duration_s + gap_s),
                          end_s=first_s + k * (duration_s + gap_s) + duration_s,
                          strategy="twap", interval_s=interval_s)
        for k, q in enumerate(sizes))


def spread_order(values: Sequence[float]) -> list[float]:
    """``values`` sorted, then reordered so that neighbours in time are far apart in size
    (the size is not confounded with the time of day): smallest, largest, second, ..."""
    ordered = sorted(values)
    out = []
    while ordered:
        out.append(ordered.pop(0))
        if ordered:
            out.append(ordered.pop())
    return out


def run_day(config: MarketConfig, seed: int, progress: Callable[[int], None] | None = None
            ) -> Market:
    """Build and run a whole day of ``config``."""
    market = Market(config, seed=seed)
    market.run(progress)
    return market


def _mid_at(recording: Recording, t_ns: np.ndarray) -> np.ndarray:
    """Sampled mid ``(len(t_ns), books)`` at clock times that must be on the sample grid."""
    samples = recording.samples
    if samples is None:
        raise ValueError("the run kept no samples: set record.sample_every")
    at = np.searchsorted(samples.t_ns, t_ns)
    if np.any(at >= samples.t_ns.size) or np.any(samples.t_ns[np.minimum(
            at, samples.t_ns.size - 1)] != t_ns):
        raise ValueError("parent orders must start and end on the sample clock "
                         "(a multiple of record.sample_every steps)")
    return recording.mid()[at]


def _samples_only(market: Market) -> Recording:
    """``market.recording`` without the message and event logs (not copied: the pairing
    reads only the samples)."""
    return Recording(market.config.tick_size, market.config.symbols, market.config.copies,
                     market.sampler.samples() if market.sampler else None,
                     np.zeros(0, MESSAGE_DTYPE), np.zeros(0, EVENT_DTYPE),
                     market.parent_records())


def _background(config: MarketConfig) -> MarketConfig:
    return config.replace(parents=(), record=RecordConfig())


def check_pair(treated: Market, control: Market) -> None:
    """Raise ``ValueError`` unless ``control`` is ``treated`` without its parent orders: the
    same configuration (what they record aside), the same seed, both at the close."""
    if _background(treated.config) != _background(control.config):
        raise ValueError("the treated and control runs must have the same configuration "
                         "apart from the parent orders and what they record")
    if control.config.parents:
        raise ValueError("the control run must have no parent orders")
    if treated.seed != control.seed:
        raise ValueError(f"seeds differ ({treated.seed} and {control.seed}): the pairing "
                         "needs the same random numbers")
    for run in (treated, control):
        if run.steps_done != run.n_steps:
            raise ValueError("both runs must have reached the close")


def paired_parent_orders(rec: Recording, ctl: Recording) -> ParentOrders:
    """The treated run's parent orders (``rec``) with the control's (``ctl``, the same
    market and seed without them, see :func:`check_pair`) mids at their start and end,
    daily volume and daily volatility; orders that did not trade or whose book had no
    two-sided quote at either instant are left out."""
    parents = rec.parents
    start, end = parents["start_ns"], parents["end_ns"]
    book = parents["book"]
    mid = _mid_at(rec, start)[np.arange(book.size), book]
    mid_end = _mid_at(rec, end)[np.arange(book.size), book]
    mid0 = _mid_at(ctl, start)[np.arange(book.size), book]
    mid0_end = _mid_at(ctl, end)[np.arange(book.size), book]
    every = ctl.samples.t_ns[1] - ctl.samples.t_ns[0]
    sigma = session_volatility(ctl.mid(), max(1, int(VOLATILITY_HORIZON_S * NS_PER_S // every)))
    volume = ctl.samples.volume[-1].astype(np.float64)
    ok = (parents["executed"] > 0) & np.isfinite(mid + mid_end + mid0 + mid0_end)
    p, b = parents[ok], book[ok]
    return ParentOrders(p["side"], p["executed"], p["start_ns"], p["end_ns"], mid[ok],
                        mid_end[ok], p["vwap"], volume[b], sigma[b],
                        control_arrival_mid=mid0[ok], control_end_mid=mid0_end[ok])


def impact_experiment(config: MarketConfig, participation: Sequence[float], seed: int, *,
                      control: Market | None = None,
                      progress: Callable[[int], None] | None = None, **schedule: float
                      ) -> ParentOrders:
    """Paired impact of TWAP parent orders of ``participation`` x daily volume lots.

    Parameters
    ----------
    config : MarketConfig
        The market, without parent orders; it must sample the top of book
        (``record.sample_every``) on a clock that the schedule's times fall on.
    participation : sequence of float
        Target Q / V of each parent order (one per slot of :func:`parent_schedule`, placed
        by :func:`spread_order`), V the control's mean daily volume over the books.
    seed : int
        Seed of both runs.
    control : Market, optional
        The finished control run of ``config`` and ``seed`` (run here when not given).
    progress : callable, optional
        Called with the steps done after each chunk of each run.
    **schedule
        ``first_s``, ``duration_s``, ``gap_s``, ``interval_s`` of :func:`parent_schedule`.

    Returns
    -------
    ParentOrders
        One row per (book, parent order) that traded, with the control's mids.
    """
    if config.parents:
        raise ValueError("config must have no parent orders: the experiment adds them")
    if not config.record.sample_every:
        raise ValueError("config.record.sample_every must be > 0 (the pairing reads mids)")
    if control is None:
        control = run_day(config, seed, progress)
    if control.sampler is None:
        raise ValueError("the control run kept no samples: set record.sample_every")
    volume = float(np.mean(control.sampler.samples().volume[-1]))
    sizes = [max(1, round(q * volume)) for q in spread_order(participation)]
    treated_config = config.replace(parents=parent_schedule(sizes, **schedule),
                                    record=RecordConfig(sample_every=config.record.sample_every))
    treated = run_day(treated_config, seed, progress)
    check_pair(treated, control)
    return paired_parent_orders(treated.recording, _samples_only(control))


def demo_day(out_dir: str | Path, seed: int = 1, progress: bool = True,
             config: MarketConfig | None = None) -> StylizedFacts:
    """The ``realistic`` preset's day, the paired impact experiment over all its books, the
    stylized facts and the report in ``out_dir``.

    The price and order-flow facts are those of book 0, run alone with its message log
    (a book's random stream does not depend on how many books run, so it is book 0 of the
    experiment's control; keeping every book's log would take a gigabyte). Returns the
    facts; ``facts.format_table()`` prints them.
    """
    from tqdm import tqdm

    from rltrader.analysis.report import write_report

    base = preset("realistic") if config is None else config
    every = base.record.sample_every or max(1, NS_PER_S // base.dt_ns)
    sampled = base.replace(record=RecordConfig(sample_every=every))
    start = time.perf_counter()
    with tqdm(total=3 * base.n_steps, unit="step", desc="realistic day + impact",
              disable=not progress) as bar:
        day = run_day(sampled.replace(copies=1, symbols=base.symbols[:1],
                                      record=RecordConfig(messages=True, sample_every=every)),
                      seed, bar.update)
        parents = impact_experiment(sampled, DEMO_PARTICIPATION, seed, progress=bar.update)
    record = day.recording.market_data(0)
    market = MarketData(record.quotes, record.trades, parents, name=f"realistic, {record.name}",
                        tick_size=record.tick_size)
    facts = stylized_facts(market, seed=seed)
    write_report(out_dir, market, facts)
    if progress:
        print(f"1 + 2 x {base.n_books} book-days in {time.perf_counter() - start:.1f} s")
    return facts
