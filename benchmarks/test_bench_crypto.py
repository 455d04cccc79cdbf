"""Crypto feed replay throughput on the real samples of ``tests/data/crypto``.

=============================  ========================================================
benchmark                      what is timed
=============================  ========================================================
test_coinbase_l3_rebuild       Coinbase BTC-USD L3: 66,811 snapshot orders + 23,926
                               feed messages (90,737), one book, 4,096 per call
test_binance_futures_rebuild   Binance USD-M BTCUSDT L2: 406,682 level messages
test_coinbase_parse            ``coinbase.read_feed``: JSON to message array (36,743
                               feed messages + the 66,811-order snapshot)
test_binance_spot_parse        ``binance.read_feed`` of the spot capture (41,249 lines)
=============================  ========================================================

The rebuilds use the dense window of ``rltrader replay`` (``replay_crypto.WINDOW``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader.data import binance, coinbase  # noqa: E402
from rltrader.data.replay_crypto import WINDOW  # noqa: E402
from rltrader.data.samples import sample_roots  # noqa: E402

CB = "coinbase_gdax_btcusd_2018-07-13_l3_"


def _sample(venue: str, name: str) -> Path:
    """``crypto/<venue>/<name>`` from ``$RLTRADER_DATA`` or the test tree's samples."""
    roots = [*sample_roots(), Path(__file__).resolve().parents[1] / "tests" / "data"]
    for root in roots:
        if (root / "crypto" / venue / name).is_file():
            return root / "crypto" / venue / name
    raise FileNotFoundError(f"crypto sample {venue}/{name} not found in {roots}")


@pytest.fixture(scope="module")
def coinbase_paths() -> tuple[Path, Path]:
    return (_sample("coinbase", CB + "snapshot_begin.json.gz"),
            _sample("coinbase", CB + "full_channel_messages.json.gz"))


@pytest.mark.benchmark(group="crypto rebuild")
def test_coinbase_l3_rebuild(run_batched, coinbase_paths):
    feed = coinbase.read_feed(*coinbase_paths)
    run_batched(feed.messages, window=WINDOW, rounds=10, workload="coinbase BTC-USD L3")


@pytest.mark.benchmark(group="crypto rebuild")
def test_binance_futures_rebuild(run_batched):
    feed = binance.read_feed(_sample("binance",
                                     "hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz"))
    run_batched(feed.messages, window=WINDOW, rounds=10, workload="binance BTCUSDT futures L2")


@pytest.mark.benchmark(group="crypto parse")
def test_coinbase_parse(benchmark, record_messages, coinbase_paths):
    result: list[Any] = []
    benchmark.pedantic(lambda: result.append(coinbase.read_feed(*coinbase_paths)), rounds=3,
                       iterations=1)
    record_messages(benchmark, result[-1].messages, feed_messages=result[-1].feed_messages)


@pytest.mark.benchmark(group="crypto parse")
def test_binance_spot_parse(benchmark, record_messages):
    path = _sample("binance", "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz")
    result: list[Any] = []
    benchmark.pedantic(lambda: result.append(binance.read_feed(path)), rounds=3, iterations=1)
    feed = result[-1]
    record_messages(benchmark, feed.messages,
                    feed_messages=feed.diffs + len(feed.trades) + len(feed.tickers))
