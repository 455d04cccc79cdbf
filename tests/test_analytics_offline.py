"""Offline analytics (``rltrader.analytics.offline.run``) on real files and a simulated day:
the files are written, Parquet and CSV hold the same table, and the bars and samples add
up to what the input holds, counted independently from the reader's rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("talib")

from rltrader.analytics import offline  # noqa: E402
from rltrader.core.constants import FILL  # noqa: E402
from rltrader.data import binance, lobster  # noqa: E402
from rltrader.data.samples import AAPL_HOUR, PACKAGED, sample_path  # noqa: E402

SECOND, MINUTE = 1_000_000_000, 60_000_000_000
BINANCE_SPOT = (PACKAGED / "crypto" / "binance"
                / "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz")


@pytest.fixture(scope="module")
def aapl(tmp_path_factory):
    out = tmp_path_factory.mktemp("aapl")
    summary = offline.run([sample_path(AAPL_HOUR)], format="lobster", out=out,
                          progress=False)
    return out, summary


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    out = tmp_path_factory.mktemp("spot")
    summary = offline.run([BINANCE_SPOT], format="binance", out=out, intervals=("1s", "5m"),
                          sample="100ms", levels=5, progress=False)
    return out, summary


def read_both(out: Path, stem: str):
    """The Parquet and the CSV table, which must be equal."""
    parquet = pd.read_parquet(out / f"{stem}.parquet")
    csv = pd.read_csv(out / f"{stem}.csv")
    assert list(csv.columns) == list(parquet.columns)
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False, check_exact=True)
    return parquet


def test_files_and_summary(aapl) -> None:
    out, summary = aapl
    names = {p.name for p in out.iterdir()}
    assert names == {"bars_1s.parquet", "bars_1s.csv", "bars_1m.parquet", "bars_1m.csv",
                     "samples.parquet", "samples.csv", "summary.json"}
    assert json.loads((out / "summary.json").read_text())["events"] == summary["events"]
    assert summary["symbols"] == ["AAPL"] and summary["tick_size"] == "0.01"
    assert summary["rejected"] == 0 and summary["events_per_s"] > 0
    for stem, rows in (("bars_1s", summary["bars"]["1s"]), ("bars_1m", summary["bars"]["1m"]),
                       ("samples", summary["samples"])):
        assert len(read_both(out, stem)) == rows


def test_lobster_bars_hold_every_execution_of_the_file(aapl) -> None:
    out, summary = aapl
    feed = lobster.read_messages(sample_path(AAPL_HOUR))
    raw = feed.raw
    replayed = np.ones(raw.shape[0], dtype=bool)
    replayed[feed.unknown_row] = False       # executions of orders from before 09:30
    trades = raw[((raw["type"] == 4) & replayed) | (raw["type"] == 5)]
    buyer = trades["direction"] == -1        # the resting order sold: a buyer hit it
    ticks = np.where(buyer, -(-trades["price"] // 100), trades["price"] // 100)
    for interval in ("1s", "1m"):
        bars = read_both(out, f"bars_{interval}")
        assert bars["volume"].sum() == trades["size"].sum() == summary["volume"]
        assert bars["n_trades"].sum() == trades.shape[0]
        assert bars["buy_volume"].sum() == trades["size"][buyer].sum()
        assert bars["quote_volume"].sum() == pytest.approx(float(ticks @ trades["size"]),
                                                           rel=1e-12)
    # one 1 s bar per second from the first trade's to the last data's (empty ones too)
    bars = read_both(out, "bars_1s")
    last = max(raw["timestamp"][-1], trades["timestamp"][-1])
    assert len(bars) == last // SECOND - trades["timestamp"][0] // SECOND + 1
    assert (np.diff(bars["t_open"]) == SECOND).all() and bars["closed"].all()
    # the first minute's bar: open, high, low, close of its trades
    minute = read_both(out, "bars_1m")
    first = trades[trades["timestamp"] // MINUTE == minute["t_open"][0] // MINUTE]
    first_ticks = ticks[: first.shape[0]]
    assert (minute["open"][0], minute["close"][0]) == (first_ticks[0], first_ticks[-1])
    assert (minute["high"][0], minute["low"][0]) == (first_ticks.max(), first_ticks.min())
    # the data end (10:29:59.8) closes its second, 10:30:00 ends the last minute too
    assert len(minute) == 60 and minute["closed"].all()
    # the indicators warm up as TA-Lib's do: SMA 20 from the 20th bar
    assert minute["sma"][:19].isna().all() and minute["sma"][19:].notna().all()


def test_lobster_samples(aapl) -> None:
    out, _ = aapl
    samples = read_both(out, "samples")
    assert len(samples) == 3600                       # 09:30:01 … 10:30:00
    assert (np.diff(samples["t"]) == SECOND).all() and samples["t"].iloc[-1] == 37_800 * SECOND
    depth = samples[[f"depth_bid_{j}" for j in range(1, 11)]].to_numpy()
    assert (depth.sum(axis=1) > 0).all()
    assert samples[[f"embedding_{j}" for j in range(1, 5)]].notna().all().all()
    with_mid = samples[samples["has_mid"] == 1]
    assert (with_mid["ask"] > with_mid["bid"]).all()
    np.testing.assert_allclose(with_mid["spread"], with_mid["ask"] - with_mid["bid"])
    # the book at 10:00:00 is the reader's own replay of every message before it
    prices, qtys = lobster.replay_depth(lobster.read_messages(sample_path(AAPL_HOUR)), 10)
    raw = lobster.read_raw(sample_path(AAPL_HOUR))
    row = np.searchsorted(raw["timestamp"], 36_000 * SECOND) - 1
    at = samples[samples["t"] == 36_000 * SECOND].iloc[0]
    assert (at["bid"], at["ask"]) == (prices[row, 0, 0], prices[row, 1, 0])
    assert [at[f"depth_ask_{j}"] for j in range(1, 11)] == qtys[row, 1].tolist()


def test_binance_bars_hold_the_captures_trades(spot) -> None:
    out, summary = spot
    feed = binance.read_feed([BINANCE_SPOT])
    trades = feed.trades
    assert summary["symbols"] == ["BTCUSDT"] and summary["off_book_trades"] == trades.size
    for stem in ("bars_1s", "bars_5m"):
        bars = read_both(out, stem)
        assert bars["volume"].sum() == trades["qty"].sum()
        assert bars["n_trades"].sum() == trades.shape[0]
        assert bars["buy_volume"].sum() == trades["qty"][trades["side"] == 1].sum()
    # 23:54:15 to 00:00:01: the 00:00 bar was still open at the end, kept with closed 0
    five = 5 * MINUTE
    last = max(trades["timestamp"].max(), feed.messages["timestamp"].max())
    assert len(bars) == last // five - trades["timestamp"].min() // five + 1 == 3
    assert bars["closed"].tolist() == [1, 1, 0] and bars["sma"].isna().all()
    samples = read_both(out, "samples")
    assert "depth_bid_5" in samples.columns and "depth_bid_6" not in samples.columns
    assert (np.diff(samples["t"]) == 100_000_000).all()
    assert samples["n_trades"].sum() <= trades.shape[0]


def test_simulated_day(tmp_path) -> None:
    from dataclasses import replace

    from rltrader.sim import Market, RecordConfig, preset

    summary = offline.run("small", format="simulate", out=tmp_path, seed=5, csv=False,
                          progress=False)
    assert not list(tmp_path.glob("*.csv"))
    config = preset("small")
    market = Market(replace(config, record=RecordConfig(messages=True)), 5)
    market.run()
    fills = market.recording.events
    fills = fills[fills["kind"] == FILL]
    bars = pd.read_parquet(tmp_path / "bars_1m.parquet")
    assert summary["events"] == market.recording.events.shape[0]
    assert bars["volume"].sum() == fills["qty"].sum()
    for book in range(config.n_books):
        mine = fills[fills["book"] == book]
        assert bars["volume"][bars["book"] == book].sum() == mine["qty"].sum()
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert set(samples["book"]) == set(range(config.n_books))


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="format"):
        offline.run([sample_path(AAPL_HOUR)], format="csv", out=tmp_path)
    with pytest.raises(ValueError, match="levels"):
        offline.run([sample_path(AAPL_HOUR)], format="lobster", out=tmp_path, levels=11)
    with pytest.raises(ValueError, match="book"):
        offline.run([sample_path(AAPL_HOUR)], format="lobster", out=tmp_path, book=1)
    with pytest.raises(ValueError, match="tick_size"):
        offline.run([sample_path(AAPL_HOUR)], format="lobster", out=tmp_path,
                    tick_size="0.00001")
