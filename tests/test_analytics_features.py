"""Bars and microstructure features equal an independent batch recomputation (pandas and
numpy) on a real LOBSTER hour (AAPL 2012-06-21 09:30-10:30) and on a simulated day.

The reference never touches the engine: its book is the core's, rebuilt after every row
(``lobster.replay_depth``) or read between steps (``Books.top_levels``); its bars are
pandas resamples of the trades; its windows are pandas rolling sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rltrader as rl
from rltrader import Books
from rltrader.analytics import FeatureEngine
from rltrader.core.constants import EXECUTE, FILL
from rltrader.core.messages import empty_events
from rltrader.data import lobster
from rltrader.data._levels import process_every
from rltrader.data.samples import AAPL_HOUR, sample_path
from rltrader.sim.config import RecordConfig
from rltrader.sim.market import Market

S = 1_000_000_000
WINDOW = 30


def reference_bars(t: np.ndarray, price: np.ndarray, qty: np.ndarray, sign: np.ndarray,
                   interval: int, end: int) -> pd.DataFrame:
    """OHLCV by pandas: buckets [k*interval, (k+1)*interval) from the first trade's to the
    last one closed before ``end``; empty buckets repeat the last close with volume 0."""
    df = pd.DataFrame({"price": price, "qty": qty, "buy": np.where(sign > 0, qty, 0),
                       "notional": price.astype(float) * qty}, index=t // interval * interval)
    g = df.groupby(level=0)
    out = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                        "low": g["price"].min(), "close": g["price"].last(),
                        "volume": g["qty"].sum(), "n_trades": g["qty"].count(),
                        "buy_volume": g["buy"].sum(), "quote_volume": g["notional"].sum()})
    full = np.arange(out.index[0], end - interval + 1, interval)
    out = out.reindex(full)
    out["close"] = out["close"].ffill()
    for name in ("open", "high", "low"):
        out[name] = out[name].fillna(out["close"])
    return out.fillna(0).astype({"open": np.int64, "high": np.int64, "low": np.int64,
                                 "close": np.int64, "volume": np.int64, "n_trades": np.int64,
                                 "buy_volume": np.int64})


def assert_bars(bars: np.ndarray, want: pd.DataFrame) -> None:
    assert bars["t_open"].tolist() == want.index.tolist()
    for name in ("open", "high", "low", "close", "volume", "n_trades", "buy_volume"):
        assert bars[name].tolist() == want[name].tolist(), name
    np.testing.assert_allclose(bars["quote_volume"], want["quote_volume"], rtol=1e-12)


def reference_samples(ticks: np.ndarray, prices: np.ndarray, qtys: np.ndarray,
                      ofi: np.ndarray, signed: np.ndarray, buy: np.ndarray, sell: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Features at each tick from the book at the tick ((n, 2, 10) arrays), the bucket's
    OFI and aggressor volumes: numpy for the book, pandas rolling for the windows."""
    bid, ask = prices[:, 0, 0], prices[:, 1, 0]
    bq, aq = qtys[:, 0, 0], qtys[:, 1, 0]
    has = (bq > 0) & (aq > 0) & (ask > bid)
    mid = np.where(has, (bid + ask) / 2, np.nan)
    out = {"mid": mid, "spread": np.where(has, ask - bid, np.nan),
           "microprice": np.where(has, (bid * aq + ask * bq) / np.maximum(bq + aq, 1), np.nan),
           "ofi": ofi, "buy_volume": buy, "sell_volume": sell,
           "depth_bid": qtys[:, 0], "depth_ask": qtys[:, 1]}
    for k in (1, 5, 10):
        b, a = qtys[:, 0, :k].sum(1), qtys[:, 1, :k].sum(1)
        with np.errstate(invalid="ignore"):
            out[f"imbalance_{k}"] = np.where(b + a > 0, (b - a) / (b + a), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = buy + sell
        out["trade_sign_imbalance"] = np.where(total > 0, (buy - sell) / total, np.nan)
    m = pd.Series(mid)
    returns = np.log(m / m.shift(1))
    out["returns"] = returns.to_numpy()
    out["realized_vol"] = np.sqrt((returns ** 2).rolling(WINDOW, min_periods=1).sum()).where(
        returns.notna().astype(int).rolling(WINDOW, min_periods=1).sum() > 0).to_numpy()
    dmid = m.diff()
    x = pd.Series(signed, dtype=float).where(dmid.notna())
    y = dmid
    n = y.notna().astype(int).rolling(WINDOW, min_periods=1).sum()
    mx = x.rolling(WINDOW, min_periods=1).mean()
    my = y.rolling(WINDOW, min_periods=1).mean()
    sxy = (x * y).rolling(WINDOW, min_periods=1).sum() - n * mx * my
    sxx = (x * x).rolling(WINDOW, min_periods=1).sum() - n * mx * mx
    lam = (sxy / sxx).where((n >= 2) & (sxx > 1e-9 * np.maximum(1, (x * x).rolling(
        WINDOW, min_periods=1).sum())))
    out["kyle_lambda"] = lam.to_numpy()
    return out


def assert_samples(samples: np.ndarray, want: dict[str, np.ndarray]) -> None:
    for name, values in want.items():
        got = samples[name]
        if np.issubdtype(got.dtype, np.integer):
            assert np.array_equal(got, values), name
        else:
            rtol = 1e-6 if name == "kyle_lambda" else 1e-9
            np.testing.assert_allclose(got, values, rtol=rtol, atol=1e-12, equal_nan=True,
                                       err_msg=name)


def ofi_per_bucket(t: np.ndarray, bid: np.ndarray, bq: np.ndarray, ask: np.ndarray,
                   aq: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Cont-Kukanov-Stoikov e_n between consecutive book states (state n at time t[n]),
    summed per bucket [tick - 1 s, tick); an empty side is price 0 (bid) / +inf (ask)."""
    empty_ask = np.iinfo(np.int64).max // 2
    bid = np.where(bq > 0, bid, 0)
    ask = np.where(aq > 0, ask, empty_ask)
    pb, pa = np.r_[0, bid[:-1]], np.r_[empty_ask, ask[:-1]]
    pbq, paq = np.r_[0, bq[:-1]], np.r_[0, aq[:-1]]
    e = (np.where(bid >= pb, bq, 0) - np.where(bid <= pb, pbq, 0)
         - np.where(ask <= pa, aq, 0) + np.where(ask >= pa, paq, 0))
    bucket = np.searchsorted(ticks, t, side="right")     # bucket k ends at ticks[k]
    return np.bincount(bucket, weights=e, minlength=ticks.size + 1)[:ticks.size]


def per_bucket(t: np.ndarray, values: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    bucket = np.searchsorted(ticks, t, side="right")
    return np.bincount(bucket, weights=values, minlength=ticks.size + 1)[:ticks.size]


@pytest.fixture(scope="module")
def lobster_hour():
    feed = lobster.read_messages(sample_path(AAPL_HOUR))
    msgs = feed.messages.copy()
    msgs["book"] = 0
    eng = FeatureEngine(1, intervals=("1s", "1m"), sample="1s", window=WINDOW,
                        indicators=False, embedding=None)
    books, events = Books(1, capacity=1 << 16), empty_events(1 << 16)
    bars, samples = [], []

    def take(ev: np.ndarray, first: int) -> None:
        up = eng.process_events(ev)
        bars.append(up.bars)
        samples.append(up.samples)

    process_every(books, msgs, events, take)
    end = int(msgs["timestamp"][-1]) // S * S + S
    up = eng.flush(end)
    return feed, msgs, np.concatenate(bars + [up.bars]), np.concatenate(samples + [up.samples]), end


def test_lobster_hour_bars_equal_pandas(lobster_hour) -> None:
    feed, msgs, bars, _, end = lobster_hour
    ex = msgs[msgs["op"] == EXECUTE]
    sign = -ex["side"]                       # the aggressor hit a resting order of that side
    assert ex.size > 1000
    for interval in (S, 60 * S):
        got = bars[bars["interval_ns"] == interval]
        assert_bars(got, reference_bars(ex["timestamp"], ex["price"], ex["qty"], sign,
                                        interval, end))


def test_lobster_hour_features_equal_a_rebuild_after_every_row(lobster_hour) -> None:
    feed, msgs, _, samples, end = lobster_hour
    prices, qtys = lobster.replay_depth(feed, 10, capacity=1 << 16)
    has_message = np.zeros(feed.raw.shape[0], dtype=bool)
    has_message[feed.source_row[feed.source_row >= 0]] = True
    t_rows = feed.raw["timestamp"]
    ticks = samples["t"]
    assert np.all(np.diff(ticks) == S) and ticks.size > 3000
    # the book at each tick: after every row stamped before it
    at = np.searchsorted(t_rows, ticks, side="left") - 1
    book_p, book_q = prices[at], qtys[at]
    rows = np.flatnonzero(has_message)         # rows that changed something (a message)
    ofi = ofi_per_bucket(t_rows[rows], prices[rows, 0, 0], qtys[rows, 0, 0],
                         prices[rows, 1, 0], qtys[rows, 1, 0], ticks)
    ex = msgs[msgs["op"] == EXECUTE]
    buy = per_bucket(ex["timestamp"], np.where(ex["side"] < 0, ex["qty"], 0), ticks)
    sell = per_bucket(ex["timestamp"], np.where(ex["side"] > 0, ex["qty"], 0), ticks)
    want = reference_samples(ticks, book_p, book_q, ofi, buy - sell, buy, sell)
    want["ofi"] = ofi
    assert_samples(samples, want)
    assert samples["n_updates"].sum() == rows.size


@pytest.fixture(scope="module")
def simulated_day():
    config = rl.preset("thin").replace(record=RecordConfig(messages=True, sample_every=0))
    market = Market(config, seed=3)
    eng = FeatureEngine(1, intervals=("1m", "5m"), sample="10s", window=WINDOW,
                        indicators=False, embedding=None)
    tick = 10 * S
    log = market.flow
    done = 0
    bars, samples, book_p, book_q = [], [], [], []
    next_tick = (market.time_ns // tick + 1) * tick
    while market.steps_done < market.n_steps:
        steps = min(market.n_steps - market.steps_done,
                    max(1, -(-(next_tick - market.time_ns) // config.dt_ns)))
        market.step(steps)
        events = log.event_log[done:].copy()
        done += events.size
        up = eng.process_events(events)
        bars.append(up.bars)
        samples.append(up.samples)
        if market.time_ns >= next_tick:      # every event before the tick is in
            p, q, _ = market.books.top_levels(10)
            book_p.append(p[0])
            book_q.append(q[0])
            next_tick += tick
    end = market.time_ns // tick * tick
    up = eng.flush(end)
    return (log.event_log.copy(), np.concatenate(bars + [up.bars]),
            np.concatenate(samples + [up.samples]), np.array(book_p), np.array(book_q), end)


def test_simulated_day_bars_equal_pandas(simulated_day) -> None:
    events, bars, _, _, _, end = simulated_day
    fills = events[events["kind"] == FILL]
    assert fills.size > 10_000
    for interval in (60 * S, 300 * S):
        got = bars[bars["interval_ns"] == interval]
        assert_bars(got, reference_bars(fills["timestamp"], fills["price"], fills["qty"],
                                        fills["side"], interval, end))


def test_simulated_day_features_equal_the_core_book_between_steps(simulated_day) -> None:
    events, _, samples, book_p, book_q, _ = simulated_day
    n = min(samples.size, book_p.shape[0])
    assert n > 2000
    samples = samples[:n]
    ticks = samples["t"]
    fills = events[events["kind"] == FILL]
    buy = per_bucket(fills["timestamp"], np.where(fills["side"] > 0, fills["qty"], 0), ticks)
    sell = per_bucket(fills["timestamp"], np.where(fills["side"] < 0, fills["qty"], 0), ticks)
    want = reference_samples(ticks, book_p[:n], book_q[:n], samples["ofi"], buy - sell,
                             buy, sell)
    assert_samples(samples, want)
