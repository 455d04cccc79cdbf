"""A simulated market day: background trader populations on a batch of books.

``Market(config, seed)`` builds one core (:class:`rltrader.Books`) with ``config.n_books``
books and the compiled populations of :mod:`rltrader._flow`; ``step(n)`` advances every
book ``n`` steps of ``config.dt_ns``, ``run()`` the rest of the day. The same seed gives
bit-identical messages and events; each book's generator comes from
``SeedSequence(seed).spawn(n_books)``.

Time: step ``k`` starts at ``open + k * dt_ns``. A decision taken in step ``k`` by a
population with latency ``L`` steps (``latency_ns`` rounded up) is processed in step
``k + L``, and its messages carry that step's start as ``timestamp``; within a step the
arriving decisions of a book are processed in a random order.

Owners (accounts) per book: the background traders ``[0, n_traders)`` in the order noise,
value, momentum, market makers, liquidity providers, splitters, execution parents
(:attr:`Market.owners`), then ``config.extra_owners`` free accounts (for learning agents)
from ``n_traders`` on.

Example::

    market = Market(preset("small"), seed=1)
    summary = market.run()
    market.recording.mid()          # (samples, books) float64 mid in ticks
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from rltrader._book import Books
from rltrader._flow import Flow
from rltrader.core.constants import NS_PER_S
from rltrader.sim.config import (
    FundamentalConfig,
    LiquidityConfig,
    MakerConfig,
    MarketConfig,
    MomentumConfig,
    NoiseConfig,
    OrderSize,
    ParentOrderConfig,
    Population,
    RecordConfig,
    SizeClassConfig,
    SplitterConfig,
    ValueConfig,
    config_from_dict,
    load_config,
    preset,
    preset_names,
)
from rltrader.sim.params import POPULATIONS, flow_params, owner_ranges
from rltrader.sim.record import PARENT_DTYPE, Recording, Sampler, copy_records

__all__ = [
    "Market", "MarketConfig", "FundamentalConfig", "NoiseConfig", "ValueConfig",
    "MomentumConfig", "MakerConfig", "LiquidityConfig", "SplitterConfig", "ParentOrderConfig",
    "OrderSize", "SizeClassConfig", "RecordConfig", "Population", "config_from_dict",
    "build_flow", "flow_params", "load_config", "pareto_multipliers", "preset",
    "preset_names",
]


def bucket_capacity(config: MarketConfig) -> int:
    """Messages one book may receive in one step: per population the wake-ups' Poisson
    mean plus 8 standard deviations plus 8, times its messages per wake-up (a cancel and a
    new order; a maker's ``4 * levels``), summed over populations."""
    dt_s = config.dt_ns / NS_PER_S
    total = 4 * config.makers.levels * config.makers.count + len(config.parents)
    for pop, per_wake in ((config.noise, 2), (config.value, 2), (config.momentum, 1),
                          (config.liquidity, 2), (config.splitters, 1)):
        lam = pop.count * pop.rate_per_s * dt_s
        if pop.count:
            total += per_wake * int(lam + 8 * np.sqrt(lam) + 8)
    return max(total, 16)


def pareto_multipliers(u: np.ndarray, alpha: float, cap: float) -> np.ndarray:
    """``min(cap, (1 - u) ** (-1 / alpha))`` element by element, through the C library's
    ``pow``: heavy-tailed size classes (Pareto, minimum 1) from uniforms ``u``.

    Not numpy's ``**``: numpy's float64 power is machine-dependent (on CPUs with AVX-512
    it runs SIMD code whose last bits differ from the C library's), so the same seed drew
    other size classes, hence other order sizes and another market, on another machine.
    The C library's ``pow`` is the one the compiled flow draws its order sizes with."""
    base = 1.0 - np.asarray(u, dtype=np.float64)
    exponent = -1.0 / alpha
    out = np.fromiter((math.pow(x, exponent) for x in base.flat), np.float64, base.size)
    return np.minimum(cap, out.reshape(base.shape))


def build_flow(config: MarketConfig, books: Books, seed: np.random.SeedSequence,
               r_bar: np.ndarray, t0_ns: int, first_owner: int = 0) -> Flow:
    """``config``'s populations over the ``config.n_books`` books of ``books``: traders
    are owners ``first_owner ..`` (:func:`owner_ranges` order), book ``b`` draws from
    ``seed.spawn(n_books)[b]`` (its decisions, then its traders' size classes), its
    fundamental starts at ``r_bar[b]`` ticks, step 0 is at ``t0_ns``."""
    n_traders = owner_ranges(config)[POPULATIONS[-1]][1]
    streams = [child.spawn(2) for child in seed.spawn(config.n_books)]
    seeds = np.array([s[0].generate_state(4, np.uint64) for s in streams])
    alpha, cap = config.size_class.alpha, config.size_class.max
    if alpha == 0:
        size_class = np.ones((config.n_books, n_traders))
    else:
        uniforms = np.array([np.random.default_rng(s[1]).random(n_traders) for s in streams])
        size_class = pareto_multipliers(uniforms, alpha, cap)
    p = flow_params(config)
    return Flow(books, n_traders, seeds, r_bar, size_class, t0_ns, config.dt_ns,
                bucket_capacity(config), record=config.record.messages,
                noise=p.noise, value=p.value, momentum=p.momentum, maker=p.maker,
                liquidity=p.liquidity, splitter=p.splitter, fundamental=p.fundamental,
                parents=p.parents, copies=config.copies, first_owner=first_owner)


class Market:
    """``config.n_books`` books driven by background traders over one market day.

    Parameters
    ----------
    config : MarketConfig
        Symbols, copies, clock, populations and what to record.
    seed : int
        Root seed; books draw from ``SeedSequence(seed).spawn(n_books)``.
    """

    def __init__(self, config: MarketConfig, seed: int = 0) -> None:
        if not isinstance(config, MarketConfig):
            raise TypeError(f"config must be a MarketConfig, got {type(config).__name__}")
        self.config = config
        self.seed = seed
        #: owner range ``(first, stop)`` of each population in every book
        self.owners: dict[str, tuple[int, int]] = owner_ranges(config)
        n = self.n_traders = self.owners[POPULATIONS[-1]][1]
        n_books = config.n_books
        self.books = Books(n_books, window=config.window, n_owners=n + config.extra_owners,
                           capacity=max(1024, 8 * n_books))
        self.flow = build_flow(config, self.books, np.random.SeedSequence(seed),
                               np.full(n_books, config.fundamental.r_bar),
                               config.open_ns - config.warmup_steps * config.dt_ns)
        start = time.perf_counter()
        self.flow.run(config.warmup_steps)
        every = config.record.sample_every
        self.sampler = Sampler(n_books, config.n_steps // every + 1) if every else None
        self.elapsed_s = time.perf_counter() - start   # the warm-up's steps are counted too

    # ---- clock ------------------------------------------------------------------------

    @property
    def n_steps(self) -> int:
        """Steps in the day."""
        return self.config.n_steps

    @property
    def steps_done(self) -> int:
        """Steps since the open (the warm-up is not counted)."""
        return self.flow.step - self.config.warmup_steps

    @property
    def time_ns(self) -> int:
        """The clock (ns after midnight) of the next step."""
        return self.config.open_ns + self.steps_done * self.config.dt_ns

    def step(self, n: int = 1) -> None:
        """Advance every book ``n`` steps (at most to the close)."""
        if not 0 <= n <= self.n_steps - self.steps_done:
            raise ValueError(f"n must be in [0, {self.n_steps - self.steps_done}] (steps "
                             f"left in the day), got {n}")
        start = time.perf_counter()
        every = self.config.record.sample_every
        while n > 0:
            chunk = n if not every else min(n, every - self.steps_done % every)
            if every and self.steps_done % every == 0:
                self.sampler.sample(self.books, self.time_ns)
            self.flow.run(chunk)
            n -= chunk
        if every and self.steps_done == self.n_steps and self.n_steps % every == 0:
            self.sampler.sample(self.books, self.time_ns)   # the close, on the grid
        self.elapsed_s += time.perf_counter() - start

    def run(self, progress: Callable[[int], None] | None = None, chunk: int = 10_000) -> dict:
        """Run the rest of the day; ``progress(steps)`` is called after each chunk."""
        while self.steps_done < self.n_steps:
            n = min(chunk, self.n_steps - self.steps_done)
            self.step(n)
            if progress is not None:
                progress(n)
        return self.summary()

    # ---- results ----------------------------------------------------------------------

    def summary(self) -> dict:
        """Counters so far, with throughput over the time spent in ``step``."""
        out = self.flow.counters
        wakeups = sum(v for k, v in out.items() if k.startswith("wakeups_"))
        seconds = max(self.elapsed_s, 1e-12)
        out.update(books=self.config.n_books, traders_per_book=self.n_traders,
                   seconds=self.elapsed_s, messages_per_s=out["messages"] / seconds,
                   wakeups_per_s=wakeups / seconds,
                   book_steps_per_s=out["steps"] * self.config.n_books / seconds)
        return out

    def parent_records(self) -> np.ndarray:
        """One ``PARENT_DTYPE`` record per (book, parent order); executed lots and VWAP come
        from the parent's account (it trades for nothing else)."""
        n_books, parents = self.config.n_books, self.config.parents
        out = np.zeros(n_books * len(parents), dtype=PARENT_DTYPE)
        if not parents:
            return out
        progress = self.flow.parent_progress
        lo, hi = self.owners["parents"]
        accounts = self.books.account_array[:, lo:hi]
        position = accounts["position"]
        with np.errstate(invalid="ignore", divide="ignore"):
            vwap = -(accounts["cash"] + accounts["fees"]) / position
        out["book"] = np.repeat(np.arange(n_books), len(parents))
        out["parent"] = np.tile(np.arange(len(parents)), n_books)
        out["side"] = np.tile([1 if p.side == "buy" else -1 for p in parents], n_books)
        out["qty"] = np.tile([p.qty for p in parents], n_books)
        out["executed"] = np.abs(position).ravel()
        out["arrival_mid"] = progress["arrival_mid"].ravel()
        out["end_mid"] = progress["end_mid"].ravel()
        out["vwap"] = np.where(position != 0, vwap, np.nan).ravel()
        open_ns = self.config.open_ns
        out["start_ns"] = np.tile([open_ns + int(p.start_s * NS_PER_S) for p in parents],
                                  n_books)
        out["end_ns"] = np.tile([open_ns + int(p.end_s * NS_PER_S) for p in parents], n_books)
        return out

    @property
    def recording(self) -> Recording:
        """What was kept so far (samples, messages and events if configured, parents)."""
        empty = self.sampler is None
        return Recording(
            tick_size=self.config.tick_size,
            symbols=self.config.symbols,
            copies=self.config.copies,
            samples=None if empty else self.sampler.samples(),
            messages=copy_records(self.flow.message_log),
            events=copy_records(self.flow.event_log),
            parents=self.parent_records(),
        )
