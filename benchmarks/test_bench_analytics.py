"""Streaming analytics throughput (issue 18's goal: >= 1 M events/s for bars and
microstructure features, with indicators per bar), with the core's rebuild of the same
stream as the yardstick measured in the same run.

=================================  =====================================================
benchmark                          what is timed
=================================  =====================================================
test_analytics_core_yardstick      the LOBSTER AAPL hour's 89,712 messages rebuilt by
                                   ``Books.process`` in one call (the yardstick)
test_analytics_events              its events (one call) through a fresh
                                   ``FeatureEngine``: level book, 1 s / 1 m / 5 m bars,
                                   1 s samples, TA-Lib indicators per closed bar and the
                                   book embedding per sample
test_analytics_events_no_extras    the same without indicators and embedding
test_analytics_records             level-2 records (a Binance-like depth diff stream:
                                   1,000,000 level updates and trades around a touch)
=================================  =====================================================

``extra_info["events_per_s"]`` is the median rate; the JSON (``--benchmark-json``) keeps
every number.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._analytics", reason="the compiled kernels are not built")

from rltrader import Books, empty_events  # noqa: E402
from rltrader.analytics import MD_DTYPE, MD_LEVEL, MD_TRADE, FeatureEngine  # noqa: E402
from rltrader.data import lobster  # noqa: E402
from rltrader.data.samples import AAPL_HOUR, sample_path  # noqa: E402


@pytest.fixture(scope="module")
def hour():
    feed = lobster.read_messages(sample_path(AAPL_HOUR))
    msgs = feed.messages.copy()
    msgs["book"] = 0
    events = empty_events(2 * msgs.shape[0] + 1024)
    _, written = Books(1, capacity=1 << 16).process(msgs, events)
    return msgs, events[:written].copy()


def _rate(benchmark, n: int, workload: str) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(events=n, workload=workload,
                                events_per_s=round(n / median))


@pytest.mark.benchmark(group="analytics")
def test_analytics_core_yardstick(benchmark, hour):
    msgs, _ = hour

    def setup():
        return (Books(1, capacity=1 << 16), empty_events(2 * msgs.shape[0] + 1024)), {}

    benchmark.pedantic(lambda books, events: books.process(msgs, events), setup=setup,
                       rounds=15, iterations=1, warmup_rounds=1)
    _rate(benchmark, msgs.shape[0], "Books.process, LOBSTER AAPL hour (messages)")


def _engine(extras: bool) -> FeatureEngine:
    return FeatureEngine(1, intervals=("1s", "1m", "5m"), sample="1s", indicators=extras,
                         embedding="default" if extras else None)


@pytest.mark.parametrize("extras", [True, False], ids=["", "no_extras"])
@pytest.mark.benchmark(group="analytics")
def test_analytics_events(benchmark, hour, extras):
    _, events = hour

    def run(eng: FeatureEngine) -> None:
        eng.process_events(events)
        eng.flush(int(events["timestamp"][-1]) + 1_000_000_000)

    benchmark.pedantic(run, setup=lambda: ((_engine(extras),), {}), rounds=15, iterations=1,
                       warmup_rounds=1)
    _rate(benchmark, events.shape[0], "LOBSTER AAPL hour events"
          + (" + indicators + embedding" if extras else ""))


def depth_diff_stream(n: int, seed: int = 0) -> np.ndarray:
    """Level updates within 50 ticks of a drifting touch (90 %) and trades (10 %), 1 ms
    apart: the shape of a crypto depth-diff feed."""
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, dtype=MD_DTYPE)
    recs["timestamp"] = np.arange(n, dtype=np.int64) * 1_000_000
    mid = 100_000 + np.cumsum(rng.integers(-1, 2, n))
    side = np.where(rng.random(n) < 0.5, 1, -1)
    recs["side"] = side
    recs["price"] = mid - side * rng.geometric(0.15, n)
    recs["qty"] = rng.integers(0, 20, n)
    trade = rng.random(n) < 0.1
    recs["kind"] = np.where(trade, MD_TRADE, MD_LEVEL)
    recs["qty"][trade] = rng.integers(1, 5, int(trade.sum()))
    return recs


@pytest.mark.benchmark(group="analytics")
def test_analytics_records(benchmark):
    recs = depth_diff_stream(1_000_000)
    benchmark.pedantic(lambda eng: eng.process_records(recs),
                       setup=lambda: ((_engine(True),), {}), rounds=7, iterations=1,
                       warmup_rounds=1)
    _rate(benchmark, recs.shape[0], "depth-diff records + indicators + embedding")
