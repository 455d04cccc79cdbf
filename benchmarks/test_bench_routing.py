"""Multi-venue routing (issue 19): the consolidated book's update cost per venue event,
with the level book it wraps measured alone on the same stream as the yardstick.

The workload: the Binance BTCUSDT spot and USD-M futures captures of 2024-08-08
(``rltrader/data/samples/crypto/binance/``, about 345 s, ticks 0.01 and 0.1, one lot of 0.000001)
rebuilt by a one-book ``Books`` per venue, cut into depth diffs (one venue's messages
sharing a timestamp) and merged in time order: about 10,000 batches, 640,000 events.

=================================  =====================================================
benchmark                          what is timed
=================================  =====================================================
test_consolidated_update           per batch, ``ConsolidatedBook.on_events(v, events)``
                                   then ``advance(t)`` (zero latency): the copy, the
                                   queue, the level book and the NBBO
test_consolidated_engine_yardstick per batch, ``FeatureEngine.process_events`` of the
                                   same events (``book`` already the venue), alone
=================================  =====================================================

``extra_info["ns_per_event"]`` is the median time per venue event.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._analytics", reason="the compiled kernels are not built")

SPOT = "rltrader/data/samples/crypto/binance/hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz"
FUTURES = "rltrader/data/samples/crypto/binance/hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz"


@pytest.fixture(scope="module")
def pair_batches() -> list[tuple[int, int, np.ndarray]]:
    """``(timestamp, venue, events)`` per depth diff of either venue, in time order."""
    from rltrader import Books, empty_events
    from rltrader.data import binance
    from rltrader.data.hybrid import feed_messages

    runs = []
    for v, (path, tick) in enumerate(((SPOT, "0.01"), (FUTURES, "0.1"))):
        msgs = feed_messages(binance.read_feed(path, tick_size=tick,
                                               lot_size="0.000001")).messages
        books, events = Books(1), empty_events(1 << 16)
        starts = np.flatnonzero(np.diff(msgs["timestamp"], prepend=-1)).tolist()
        for a, b in zip(starts, starts[1:] + [msgs.shape[0]], strict=True):
            consumed, written = books.process(msgs[a:b], events)
            assert consumed == b - a
            runs.append((int(msgs["timestamp"][a]), v, events[:written].copy()))
    runs.sort(key=lambda run: run[:2])
    return runs


def _per_event(benchmark, batches: list, workload: str) -> None:
    if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
        return
    n = sum(events.shape[0] for _, _, events in batches)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(events=n, batches=len(batches), workload=workload,
                                ns_per_event=round(median / n * 1e9, 1),
                                events_per_s=round(n / median))


@pytest.mark.benchmark(group="routing")
def test_consolidated_update(benchmark, pair_batches):
    from rltrader.routing.consolidated import ConsolidatedBook

    def run(cb: ConsolidatedBook) -> None:
        for t, v, events in pair_batches:
            cb.on_events(v, events)
            cb.advance(t)

    benchmark.pedantic(run, setup=lambda: ((ConsolidatedBook(2, [1, 10]),), {}), rounds=7,
                       iterations=1, warmup_rounds=1)
    _per_event(benchmark, pair_batches, "ConsolidatedBook on_events + advance, Binance "
               "spot + futures BTCUSDT, per depth diff")


@pytest.mark.benchmark(group="routing")
def test_consolidated_engine_yardstick(benchmark, pair_batches):
    from rltrader.analytics import FeatureEngine

    batches = []
    for t, v, events in pair_batches:
        events = events.copy()
        events["book"] = v
        batches.append((t, v, events))

    def run(engine: FeatureEngine) -> None:
        for _, _, events in batches:
            engine.process_events(events)

    def setup():
        return (FeatureEngine(2, intervals=("1d",), sample="1d", indicators=False,
                              embedding=None, history=1),), {}

    benchmark.pedantic(run, setup=setup, rounds=7, iterations=1, warmup_rounds=1)
    _per_event(benchmark, batches, "FeatureEngine.process_events alone, the same batches")


# ---- router decisions ----------------------------------------------------------------------
#
# test_router_decisions[greedy]        greedy_sweep of a 50-lot buy over a fixed 3-venue
#                                      snapshot (10 levels a side; ticks 1, 1, 5; the
#                                      evaluation's fees and latencies), latency penalty on
# test_router_decisions[cont_kukanov]  cont_kukanov of the same parent: 600 outflow windows
#                                      per venue summed over 10 (591 paired samples), the
#                                      stochastic approximation (300 steps) and the integer
#                                      local search
#
# ``extra_info["decisions_per_s"]`` is the median rate.


def _router_snapshot():
    from rltrader.routing.router import VenueView

    rng = np.random.default_rng(19)
    views = []
    for factor, touch, (maker, taker), latency, rate in (
            (1, 10_000, (-20, 30), 200_000, 6.0), (1, 10_001, (0, 5), 1_000_000, 3.0),
            (5, 10_000, (0, 20), 5_000_000, 4.0)):
        steps = factor * np.arange(10)
        prices = np.stack([touch - factor - steps, touch + factor + steps])
        qtys = rng.integers(5, 60, (2, 10))
        views.append(VenueView(prices, qtys, factor, maker, taker, latency,
                               rng.poisson(rate, (2, 600)), 1_000_000))
    return tuple(views)


@pytest.mark.benchmark(group="routing")
@pytest.mark.parametrize("router", ["greedy", "cont_kukanov"])
def test_router_decisions(benchmark, router):
    from rltrader.routing.router import Parent, cont_kukanov, greedy_sweep

    views, parent = _router_snapshot(), Parent(+1, 50)
    if router == "greedy":
        def decide():
            return greedy_sweep(parent, views, latency_penalty_ticks_per_ms=0.1)
        rounds, iterations = 30, 100
    else:
        def decide():
            return cont_kukanov(parent, views, horizon_ns=10_000_000, lambda_under=3.0,
                                lambda_over=1.0, latency_penalty_ticks_per_ms=0.1)
        rounds, iterations = 15, 3
    route = benchmark.pedantic(decide, rounds=rounds, iterations=iterations,
                               warmup_rounds=1)
    assert sum(c.qty for c in route) + route.remainder == parent.qty
    if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(venues=len(views), parent_qty=parent.qty,
                                children=len(route), decisions_per_s=round(1 / median),
                                us_per_decision=round(median * 1e6, 1))
