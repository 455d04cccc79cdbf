"""LOBSTER replay throughput on the 50-level AAPL file (09:30-10:30, 91,997 rows).

================================  ======================================================
benchmark                         what is timed
================================  ======================================================
test_lobster_rebuild              the parsed message array (89,712 messages) replayed on
                                  a fresh book in one ``Books.process`` call
test_lobster_parse_and_rebuild    gunzip + parse + ``to_messages`` + the rebuild above
                                  (arena and events buffer allocated inside)
test_lobster_exact_build          the exact rebuild's message build for the 999-row
                                  10-level pair (``exact_messages``)
test_hybrid_no_agents             ``HybridReplay`` over the whole 50-level file with no
                                  agent orders, one ``step`` per 10 s of market time
================================  ======================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader import Books, empty_events  # noqa: E402
from rltrader.data import lobster  # noqa: E402
from rltrader.data.samples import (  # noqa: E402
    AAPL_HOUR,
    AAPL_PAIR_MESSAGE,
    AAPL_PAIR_ORDERBOOK,
    sample_path,
)

MESSAGE_50 = sample_path(AAPL_HOUR)
MESSAGE_999 = sample_path(AAPL_PAIR_MESSAGE)
ORDERBOOK_999 = sample_path(AAPL_PAIR_ORDERBOOK)


@pytest.mark.benchmark(group="LOBSTER")
def test_lobster_rebuild(run_batched):
    feed = lobster.read_messages(MESSAGE_50)
    run_batched(feed.messages, batch=feed.messages.shape[0], rounds=20,
                workload="LOBSTER AAPL 50 levels, one call")


@pytest.mark.benchmark(group="LOBSTER")
def test_lobster_parse_and_rebuild(benchmark, record_messages):
    path = MESSAGE_50

    def target() -> int:
        feed = lobster.read_messages(path)
        msgs = feed.messages
        books = Books(1, capacity=1 << 16)
        events = empty_events(2 * msgs.shape[0] + 1024)
        return books.process(msgs, events)[0]

    done = benchmark.pedantic(target, rounds=5, iterations=1, warmup_rounds=1)
    record_messages(benchmark, lobster.read_messages(path).messages, rows=done,
                    workload="gunzip + parse + rebuild")


@pytest.mark.benchmark(group="LOBSTER exact")
def test_lobster_exact_build(benchmark, record_messages):
    from rltrader.data.lobster_exact import exact_messages

    raw = lobster.read_raw(MESSAGE_999)
    depth = lobster.read_orderbook(ORDERBOOK_999)
    exact = benchmark.pedantic(exact_messages, args=(raw, depth), rounds=20, iterations=1,
                               warmup_rounds=1)
    record_messages(benchmark, exact.messages, rows=len(raw), workload="exact build, 999 rows")


@pytest.mark.benchmark(group="hybrid")
def test_hybrid_no_agents(benchmark, record_messages):
    from rltrader.data.hybrid import HybridReplay

    feed = lobster.read_messages(MESSAGE_50)
    ends = np.arange(feed.messages["timestamp"][0], feed.messages["timestamp"][-1] + 10**10,
                     10**10)

    def target() -> Any:
        replay = HybridReplay(feed, n_agents=1)
        replay.reset()
        for end in ends:
            replay.step(until_ts=int(end))
        return replay

    replay = benchmark.pedantic(target, rounds=5, iterations=1, warmup_rounds=1)
    assert replay.done
    record_messages(benchmark, feed.messages, steps=int(ends.size), workload="hybrid, 10 s steps")
