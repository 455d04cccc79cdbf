"""Simulated market days: the rmsc04-shaped day on one book, and 1,024 books at once.

Each round builds a fresh :class:`rltrader.sim.market.Market` in ``setup`` (untimed) and times
``run()``. ``extra_info`` gets messages, agent wake-ups and book-steps per second at the
median.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rltrader._flow", reason="the compiled core is not built")

from rltrader.sim.market import Market, preset  # noqa: E402


def _bench_day(benchmark: Any, name: str, rounds: int) -> None:
    config = preset(name)
    markets: list[Market] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        markets.append(Market(config, seed=len(markets)))
        return (markets[-1],), {}

    benchmark.pedantic(lambda m: m.run(), setup=setup, rounds=rounds, iterations=1,
                       warmup_rounds=1)
    if benchmark.stats is None:
        return
    median = benchmark.stats.stats.median
    counters = markets[-1].flow.counters
    wakeups = sum(v for k, v in counters.items() if k.startswith("wakeups_"))
    benchmark.extra_info.update(
        preset=name, books=config.n_books, traders_per_book=markets[-1].n_traders,
        steps=config.n_steps, messages=counters["messages"], wakeups=wakeups,
        messages_per_second=round(counters["messages"] / median),
        wakeups_per_second=round(wakeups / median),
        steps_per_second=round(config.n_steps / median),
        book_steps_per_second=round(config.n_steps * config.n_books / median))


def test_rmsc04_day(benchmark: Any) -> None:
    """1,000 noise, 102 value, 12 momentum, 2 makers; 09:30-16:00 in 100 ms steps."""
    _bench_day(benchmark, "rmsc04", rounds=5)


def test_wide_1024_books(benchmark: Any) -> None:
    """1,024 books x 100 traders, five minutes in 100 ms steps."""
    _bench_day(benchmark, "wide", rounds=3)
