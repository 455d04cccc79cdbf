"""Market: configuration, presets, determinism, integrity and recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rltrader import Books
from rltrader.data.lobster import read_messages, read_orderbook
from rltrader.sim.market import (
    MakerConfig,
    Market,
    MarketConfig,
    NoiseConfig,
    OrderSize,
    ParentOrderConfig,
    RecordConfig,
    load_config,
    preset,
    preset_names,
)
from rltrader.sim.record import load_npz

RECORDED = RecordConfig(messages=True, sample_every=50)


def small(steps: int | None = None, seed: int = 7) -> Market:
    market = Market(preset("small").replace(record=RECORDED), seed=seed)
    market.step(steps if steps is not None else market.n_steps)
    return market


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal record arrays, field by field (padding bytes are not part of a record)."""
    return a.shape == b.shape and all(np.array_equal(a[f], b[f]) for f in a.dtype.names)


@pytest.fixture(scope="module")
def day() -> Market:
    """The small preset's whole day, recorded."""
    return small()


# ---- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize("build, field", [
    (lambda: NoiseConfig(rate_per_s=-1.0), "NoiseConfig.rate_per_s"),
    (lambda: NoiseConfig(p_market=0.7, p_cancel=0.5), "NoiseConfig.p_cancel"),
    (lambda: OrderSize(min_lots=10.0, max_lots=5.0), "OrderSize.max_lots"),
    (lambda: MakerConfig(levels=0), "MakerConfig.levels"),
    (lambda: ParentOrderConfig(side="long"), "ParentOrderConfig.side"),
    (lambda: ParentOrderConfig(start_s=10.0, end_s=10.0), "ParentOrderConfig.end_s"),
    (lambda: MarketConfig(close="9h"), "MarketConfig.close"),
    (lambda: MarketConfig(open="10:00", close="09:30"), "MarketConfig.close"),
    (lambda: MarketConfig(window=100), "MarketConfig.window"),
    (lambda: MarketConfig(symbols=("A", "A")), "MarketConfig.symbols"),
    (lambda: MarketConfig(noise=NoiseConfig(rate_per_s=20.0)), "noise.rate_per_s"),
    (lambda: MarketConfig(close="09:31", parents=(ParentOrderConfig(end_s=120.0),)),
     "MarketConfig.parents"),
])
def test_bad_values_name_the_field(build, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_toml_round_trip_and_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('copies = 3\nclose = "10:00"\n[noise]\ncount = 5\nrate_per_s = 0.5\n'
                    'size = { min_lots = 2.0 }\n[[parents]]\nqty = 50\nend_s = 30.0\n')
    config = load_config(path)
    assert (config.copies, config.noise.count, config.noise.size.min_lots) == (3, 5, 2.0)
    assert config.parents == (ParentOrderConfig(qty=50, end_s=30.0),)
    assert config.n_steps == 18_000
    path.write_text("[noise]\ncount = 5\nrates = 1.0\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['rates'\] in \[noise\]"):
        load_config(path)
    path.write_text("[value]\nrate_per_s = -2.0\n")
    with pytest.raises(ValueError, match=r"ValueConfig\.rate_per_s"):
        load_config(path)


def test_rmsc04_preset_has_abides_populations() -> None:
    config = preset("rmsc04")
    assert {"rmsc04", "small"} <= set(preset_names())
    assert (config.noise.count, config.value.count, config.momentum.count,
            config.makers.count) == (1000, 102, 12, 2)
    assert config.n_books == 1
    assert config.close_ns - config.open_ns == 6.5 * 3600 * 1e9
    assert config.fundamental.r_bar == 100_000
    market = Market(config, seed=0)
    assert market.owners["makers"] == (1114, 1116)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("rmsc05")


# ---- running ----------------------------------------------------------------------------

def test_same_seed_gives_identical_logs_and_another_seed_differs() -> None:
    a, b, c = small(3000), small(3000), small(3000, seed=8)
    assert same(a.flow.message_log, b.flow.message_log)
    assert same(a.flow.event_log, b.flow.event_log)
    assert not same(a.flow.message_log, c.flow.message_log)


def test_stepping_in_pieces_equals_one_run() -> None:
    whole = small(2000)
    pieces = Market(preset("small").replace(record=RECORDED), seed=7)
    for n in (1, 499, 500, 1000):
        pieces.step(n)
    assert same(whole.flow.event_log, pieces.flow.event_log)
    assert np.array_equal(whole.recording.mid(), pieces.recording.mid(), equal_nan=True)


def test_books_stay_consistent_after_a_day(day: Market) -> None:
    day.books.check_integrity()
    accounts = day.books.account_array
    assert np.all(accounts["position"].sum(axis=1) == 0)
    assert np.all(accounts["cash"].sum(axis=1) == -accounts["fees"].sum(axis=1))
    counters = day.flow.counters
    assert counters["overflow"] == 0 and counters["rejects"] == 0
    assert counters["fills"] > 1000
    assert counters["messages"] == len(day.flow.message_log)


def test_cannot_step_past_the_close(day: Market) -> None:
    with pytest.raises(ValueError, match="steps left in the day"):
        day.step(1)


def test_messages_are_in_time_order_per_book(day: Market) -> None:
    messages = day.recording.messages
    for book in range(day.config.n_books):
        t = messages["timestamp"][messages["book"] == book]
        assert np.all(np.diff(t) >= 0)
        assert t[0] >= day.config.open_ns and t[-1] < day.config.close_ns


# ---- recording --------------------------------------------------------------------------

def test_samples_follow_the_clock(day: Market) -> None:
    rec = day.recording
    n = day.n_steps // 50 + 1
    assert rec.samples.t_ns.shape == (n,)
    assert np.all(np.diff(rec.samples.t_ns) == 50 * day.config.dt_ns)
    mid, spread = rec.mid(), rec.spread()
    assert mid.shape == spread.shape == (n, day.config.n_books)
    assert np.isnan(mid[0]).all()                # nothing rests before the first step
    assert np.nanmin(spread) >= 1
    last = rec.samples
    assert np.array_equal(last.volume[-1], day.books.book_array["volume"])
    assert np.array_equal(last.bid[-1], day.books.book_array["best_bid"])
    trades = rec.trades(0)
    assert trades["qty"].sum() == day.books.volume(0)
    assert set(np.unique(trades["sign"])) == {-1, 1}


def test_npz_round_trip(day: Market, tmp_path: Path) -> None:
    rec = day.recording
    rec.save_npz(tmp_path / "day.npz")
    back = load_npz(tmp_path / "day.npz")
    assert back.tick_size == rec.tick_size and back.symbols == rec.symbols
    assert same(back.events, rec.events) and same(back.messages, rec.messages)
    assert same(back.parents, rec.parents)
    assert np.array_equal(back.mid(), rec.mid(), equal_nan=True)


def test_lobster_export_rebuilds_the_book(day: Market, tmp_path: Path) -> None:
    path = tmp_path / "book2_message.csv"
    rows = day.recording.to_lobster(2, path, tmp_path / "book2_orderbook_10.csv")
    assert rows > 1000
    feed = read_messages(path, tick_size=100)      # $0.01 ticks in $0.0001 units
    depth = read_orderbook(tmp_path / "book2_orderbook_10.csv")
    assert len(depth) == rows
    assert len(feed.unknown_row) == 0
    replayed = Books(1)
    replayed.process_all(feed.messages)
    prices, qtys, _ = replayed.top_levels(10)
    sim_prices, sim_qtys, _ = day.books.top_levels(10)
    assert np.array_equal(prices[0], sim_prices[2])
    assert np.array_equal(qtys[0], sim_qtys[2])


def test_parent_records_report_execution() -> None:
    parent = ParentOrderConfig(side="buy", qty=100, start_s=60.0, end_s=300.0,
                               strategy="pov", participation=0.2, interval_s=2.0)
    config = preset("small").replace(parents=(parent,), close="09:40")
    market = Market(config, seed=3)
    market.run()
    records = market.recording.parents
    assert records.shape == (config.n_books,)
    assert np.all(records["executed"] > 0) and np.all(records["executed"] <= 100)
    assert np.all(np.isfinite(records["arrival_mid"]) & np.isfinite(records["end_mid"]))
    assert np.all(records["start_ns"] == config.open_ns + 60 * 10**9)
    owner = market.owners["parents"][0]
    position = market.books.account_array["position"][:, owner]
    assert np.array_equal(records["executed"], position)


def test_the_order_arena_grows_while_stepping() -> None:
    noise = NoiseConfig(count=400, rate_per_s=0.5, p_market=0.0, p_cancel=0.0, ring=8,
                        depth_max=200, size=OrderSize(1.0, 2.0, 10.0))
    market = Market(MarketConfig(copies=2, close="09:31", noise=noise), seed=1)
    start = market.books.capacity
    market.run()
    assert market.books.live_orders() > start
    assert market.books.capacity > start
    market.books.check_integrity()
    assert market.flow.counters["rejects"] == 0


def test_simulate_command_records_a_day(tmp_path: Path, capsys) -> None:
    from rltrader.tools.cli import main

    out = tmp_path / "run" / "day"
    assert main(["simulate", "small", "--copies", "1", "--no-progress", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "small: 1 book(s) x 65 traders" in text and "messages/s" in text
    recording = load_npz(out.with_suffix(".npz"))
    assert recording.samples.t_ns.shape == (1801,)
    assert (tmp_path / "run" / "day_book0_message.csv").stat().st_size > 0
