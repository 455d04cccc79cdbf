"""Offline analytics: real data files (or a simulated day) through :class:`FeatureEngine`,
written as Parquet and CSV (``rltrader analytics PATH… --out DIR``).

:func:`run` reads the files with the project's readers, turns them into the core's messages
(:func:`rltrader.data.hybrid.feed_messages`), rebuilds the book with a one-book
:class:`rltrader.Books` (every message processed: :func:`~rltrader.data._levels.process_every`)
and feeds its events to the engine, which gives bars at each interval, with TA-Lib's
indicators, and one sample of microstructure features per sample tick.

Trades that never touched the visible book are fed to the engine as trade records at
their time, so bars hold every trade of the file: LOBSTER hidden executions (type 5; a
midpoint one, between cents, at the cent its aggressor would have paid), ITCH non-displayed
trades (``P``) and the trades of an L2 capture (Binance; its depth diffs already include
what the trades took from the levels). LOBSTER cross trades (type 6) and
ITCH crosses (``Q``) are auctions, not continuous trading, and are left out.

The end of the data closes the sample bucket the last message falls in (nothing more can
come); a bar still open then (a longer interval) is written with ``closed`` 0, its
indicators NaN.

Files in ``out``: ``bars_<interval>.parquet|csv`` (one per interval), ``samples.parquet|csv``
and ``summary.json`` (the returned summary). Columns are ``BAR_DTYPE``'s and
``SAMPLE_DTYPE``'s (docs/analytics.md) with arrays spread over numbered columns
(``depth_bid_1`` … ``depth_bid_<levels>``, ``embedding_1`` …); prices are ticks and
quantities lots of the source's grid (``tick_size`` and ``lot_size`` in the summary and the
Parquet metadata), times ns as the source stamps them (LOBSTER and simulated days: since
midnight; ITCH: since midnight; crypto: since the epoch).

Formats and their paths:

============  ===========================================================================
``lobster``   a message file, or a message and an orderbook file (the book is then
              rebuilt exactly: :mod:`rltrader.data.lobster_exact`)
``itch``      one ITCH 5.0 file (plain, gzip, pcap); ``book`` picks the stock
``binance``   websocket captures (``snapshot=`` a REST depth file if separate)
``tardis``    tardis.dev CSV files
``coinbase``  ``full`` channel files; ``snapshot=`` the level-3 snapshot (required)
``generic``   one CSV/Parquet file; ``mapping=`` its column mapping (TOML)
``simulate``  a preset name: a ``Market`` day (``seed=``), every book
============  ===========================================================================
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.analytics.engine import (
    BAR_DTYPE,
    MD_DTYPE,
    MD_TRADE,
    SAMPLE_DTYPE,
    FeatureEngine,
    Update,
    interval_name,
    parse_interval,
)
from rltrader.core.constants import REJECTED, PathLike

FORMATS = ("lobster", "itch", "binance", "tardis", "coinbase", "generic", "simulate")
#: Messages per core call (the progress bar moves this often).
CHUNK = 1 << 16

#: Column order of the written bars and samples (the contract's); other fields follow.
BAR_COLUMNS = ("book", "closed", "interval_ns", "t_open", "open", "high", "low", "close",
               "volume", "quote_volume", "n_trades", "buy_volume", "vwap", "sma", "ema",
               "rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle",
               "bb_lower", "atr", "session_vwap")
SAMPLE_COLUMNS = ("book", "t", "bid", "ask", "bid_qty", "ask_qty", "has_mid", "mid",
                  "spread", "microprice", "imbalance_1", "imbalance_5", "imbalance_10",
                  "depth_bid", "depth_ask", "ofi", "n_trades", "buy_volume", "sell_volume",
                  "trade_sign_imbalance", "returns", "realized_vol", "kyle_lambda",
                  "n_updates", "embedding")


@dataclass
class Source:
    """A file's book messages and off-book trades, ready for the core and the engine."""

    messages: np.ndarray            # MESSAGE_DTYPE, book 0, in time order
    trades: np.ndarray              # MD_DTYPE MD_TRADE records that bypass the book
    tick_size: str                  # price of a tick, as decimal text
    lot_size: str
    symbol: str
    window: int | None = None       # Books' dense window (crypto: wide)
    notes: dict[str, Any] = field(default_factory=dict)


def _trade_records(timestamp: Any, price: Any, qty: Any, side: Any) -> np.ndarray:
    records = np.zeros(np.shape(timestamp)[0], dtype=MD_DTYPE)
    records["timestamp"], records["price"], records["qty"] = timestamp, price, qty
    records["side"], records["kind"] = side, MD_TRADE
    order = np.argsort(records["timestamp"], kind="stable")
    return records[order]


def _e4_units(tick_size: str | None) -> int:
    """A tick (decimal dollars, default ``"0.01"``) in LOBSTER's and ITCH's $0.0001."""
    text = "0.01" if tick_size is None else str(tick_size)
    try:
        units = Decimal(text) * 10_000
    except InvalidOperation:
        units = Decimal(0)
    if units <= 0 or units != units.to_integral_value():
        raise ValueError(f"tick_size must be a positive multiple of $0.0001 as decimal text "
                         f"(\"0.01\"), got {tick_size!r}")
    return int(units)


def _off_book(stamps: np.ndarray, price_e4: np.ndarray, qty: np.ndarray,
              aggressor: np.ndarray, units: int) -> tuple[np.ndarray, int]:
    """Off-book trades as records, and how many fell between ticks: a midpoint execution
    goes to the tick its aggressor would have paid (up for a buyer, down for a seller)."""
    ticks = np.where(aggressor > 0, -(-price_e4 // units), price_e4 // units)
    return (_trade_records(stamps, ticks, qty, aggressor),
            int(np.count_nonzero(price_e4 % units)))


def _lobster(paths: list[Path], tick_size: str | None) -> Source:
    from rltrader.data import lobster
    from rltrader.data.hybrid import feed_messages

    units = _e4_units(tick_size)
    if len(paths) == 1:
        feed: Any = lobster.read_messages(paths[0], tick_size=units)
        raw = feed.raw
        notes: dict[str, Any] = {"unknown_rows_dropped": int(feed.unknown_row.size)}
    elif len(paths) == 2:
        from rltrader.data.lobster_exact import exact_messages

        raw = lobster.read_raw(paths[0])
        feed = exact_messages(raw, lobster.read_orderbook(paths[1]), tick_size=units)
        notes = {"rebuilt": "exactly, from the orderbook file"}
    else:
        raise ValueError(f"lobster: a message file, or a message and an orderbook file; got "
                         f"{len(paths)} paths")
    hidden = raw[raw["type"] == 5]       # direction: the hidden resting order's side
    trades, off_grid = _off_book(hidden["timestamp"], hidden["price"], hidden["size"],
                                 -hidden["direction"].astype(np.int64), units)
    notes.update(hidden_executions=int(hidden.shape[0]), hidden_between_ticks=off_grid)
    return Source(feed_messages(feed).messages, trades, str(Decimal(units) / 10_000), "1",
                  paths[0].name.split("_")[0], notes=notes)


def _itch(paths: list[Path], book: int | str | None, tick_size: str | None) -> Source:
    from rltrader.data import itch
    from rltrader.data.hybrid import feed_messages

    if len(paths) != 1:
        raise ValueError(f"itch: one file, got {len(paths)}")
    units = _e4_units(tick_size)
    symbols = [book] if isinstance(book, str) else None
    feed = itch.read_messages(paths[0], symbols, tick_size=units)
    given = feed_messages(feed, book=0 if isinstance(book, str) else book)
    number = 0 if isinstance(book, str) or book is None else int(book)
    kept = feed.trades[(feed.trades["book"] == number) & (feed.trades["kind"] == b"P")]
    # ITCH's side of a non-displayed trade is the resting order's
    trades, off_grid = _off_book(kept["timestamp"], kept["price_e4"], kept["shares"],
                                 -kept["side"].astype(np.int64), units)
    return Source(given.messages, trades, str(Decimal(units) / 10_000), "1",
                  feed.book_symbols[number] if feed.book_symbols else "",
                  notes={"dropped_before_file": given.dropped,
                         "non_displayed_trades": int(kept.shape[0]),
                         "non_displayed_between_ticks": off_grid})


def _crypto(fmt: str, paths: list[Path], options: dict[str, Any]) -> Source:
    from rltrader.data.hybrid import feed_messages
    from rltrader.data.replay_crypto import WINDOW, load

    loaded = load(fmt, [str(p) for p in paths], **options)
    trades = np.zeros(0, dtype=MD_DTYPE)
    recorded = getattr(loaded.feed, "trades", None)
    if fmt == "binance" and recorded is not None:
        trades = _trade_records(recorded["timestamp"], recorded["price"], recorded["qty"],
                                recorded["side"])
    symbol = (getattr(loaded.feed, "symbol", None) or getattr(loaded.feed, "product_id", None)
              or options.get("symbol") or paths[0].name.split(".")[0])
    return Source(feed_messages(loaded.feed).messages, trades, loaded.tick_size.step,
                  loaded.lot_size.step, str(symbol), window=WINDOW,
                  notes={"reader": loaded.summary})


def load_source(paths: Sequence[PathLike], fmt: str, *, book: int | str | None = None,
                **options: Any) -> Source:
    """Read ``paths`` in format ``fmt`` (not ``simulate``) into a :class:`Source`;
    ``options`` (``snapshot``, ``symbol``, ``tick_size``, ``lot_size``, ``mapping``) go to
    the crypto and generic readers; LOBSTER and ITCH take ``tick_size`` (decimal dollars,
    default ``"0.01"``; ``"0.0001"`` for stocks under $1)."""
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("no input file")
    if fmt != "itch" and book is not None:
        raise ValueError("book picks a stock of an ITCH file only")
    if fmt in ("lobster", "itch"):
        tick_size = options.pop("tick_size", None)
        if options:
            raise ValueError(f"{fmt} takes no {', '.join(sorted(options))}")
        return _lobster(files, tick_size) if fmt == "lobster" else _itch(files, book, tick_size)
    if fmt in ("binance", "tardis", "coinbase", "generic"):
        return _crypto(fmt, files, options)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


class _Collector:
    """The engine's output of a whole run, and how long the engine took."""

    def __init__(self, engine: FeatureEngine) -> None:
        self.engine = engine
        self.bars: list[np.ndarray] = []
        self.samples: list[np.ndarray] = []
        self.events = 0
        self.rejected = 0
        self.seconds = 0.0

    def take(self, update: Update) -> None:
        if update.bars.size:
            self.bars.append(update.bars)
        if update.samples.size:
            self.samples.append(update.samples)

    def events_in(self, events: np.ndarray, first: int = 0) -> None:
        start = time.perf_counter()
        self.take(self.engine.process_events(events))
        self.seconds += time.perf_counter() - start
        self.events += events.shape[0]
        self.rejected += int(np.count_nonzero(events["kind"] == REJECTED))

    def records_in(self, records: np.ndarray) -> None:
        start = time.perf_counter()
        self.take(self.engine.process_records(records))
        self.seconds += time.perf_counter() - start
        self.events += records.shape[0]

    def finish(self, last_ns: int) -> None:
        """Close the sample bucket ``last_ns`` (the data's last time) falls in; keep the
        bars still open that began by then."""
        sample_ns = self.engine.sample_ns
        self.take(self.engine.flush((last_ns // sample_ns + 1) * sample_ns))
        still_open = [self.engine.open_bar(b, iv) for b in range(self.engine.n_books)
                      for iv in self.engine.intervals]
        rows = [row for row in still_open if row is not None and row["t_open"] <= last_ns]
        if rows:
            self.bars.append(np.array(rows, dtype=rows[0].dtype))


def _replay(source: Source, collector: _Collector, bar: Any) -> int:
    """Every message through the core, its events and the off-book trades (each before
    the events of the first message stamped after it) through the engine; returns the
    messages. The core runs in calls of ``CHUNK`` messages; the trades split only the
    engine's calls."""
    from rltrader import Books, empty_events
    from rltrader.data._levels import process_every

    messages, trades = source.messages, source.trades
    n = messages.shape[0]
    books = Books(1, capacity=1 << 16, **({"window": source.window} if source.window else {}))
    stamps = np.maximum.accumulate(messages["timestamp"]) if n else messages["timestamp"]
    at = np.searchsorted(stamps, trades["timestamp"], side="right")   # message positions
    taken = 0

    def feed(written: np.ndarray, first: int) -> None:
        nonlocal taken
        if written.size == 0:
            return
        message = written["message_index"].astype(np.int64) + first
        upto = int(np.searchsorted(at, message[-1], side="right"))
        cut = 0
        while taken < upto:
            position = int(at[taken])
            group_end = int(np.searchsorted(at, position, side="right"))
            split = int(np.searchsorted(message, position, side="left"))
            if split > cut:
                collector.events_in(written[cut:split])
                cut = split
            collector.records_in(trades[taken:group_end])
            taken = group_end
        if cut < written.shape[0]:
            collector.events_in(written[cut:])

    events = empty_events(2 * CHUNK + 1024)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        events = process_every(books, messages, events, feed, start=start, stop=stop)
        bar.update(stop - start)
    if taken < trades.shape[0]:
        collector.records_in(trades[taken:])
    return n


def _simulate(name: str, seed: int, collector: _Collector, bar: Any) -> dict[str, Any]:
    """A ``Market`` day of preset ``name``, its events through the engine step by step."""
    from rltrader.sim import Market, RecordConfig, preset

    config = preset(name)
    market = Market(replace(config, record=RecordConfig(messages=True)), seed)
    done = 0
    chunk = max(1, CHUNK // 64)
    while market.steps_done < market.n_steps:
        n = min(chunk, market.n_steps - market.steps_done)
        market.step(n)
        log = market.flow.event_log
        collector.events_in(log[done:])
        done = log.shape[0]
        bar.update(n)
    collector.finish(market.time_ns - 1)
    symbols = [f"{s}" if config.copies == 1 else f"{s}-{c}"
               for s in config.symbols for c in range(config.copies)]
    return {"symbols": symbols, "tick_size": str(config.tick_size), "lot_size": "1",
            "messages": market.flow.message_log.shape[0], "seed": seed}


def _columns(array: np.ndarray, order: Sequence[str], levels: int) -> dict[str, np.ndarray]:
    """Flat columns of a structured array: arrays spread over ``name_1`` … (``depth_*`` to
    ``levels``)."""
    fields = array.dtype.names or ()
    names = [n for n in order if n in fields]
    names += [n for n in fields if n not in names]
    out: dict[str, np.ndarray] = {}
    for name in names:
        column = array[name]
        if column.ndim == 1:
            out[name] = np.ascontiguousarray(column)
            continue
        width = min(levels, column.shape[1]) if name.startswith("depth_") else column.shape[1]
        for j in range(width):
            out[f"{name}_{j + 1}"] = np.ascontiguousarray(column[:, j])
    return out


def _write(columns: dict[str, np.ndarray], stem: Path, parquet: bool, csv: bool,
           metadata: dict[str, Any]) -> list[str]:
    import pyarrow as pa

    table = pa.table(columns).replace_schema_metadata({"rltrader": json.dumps(metadata)})
    written = []
    if parquet:
        import pyarrow.parquet as pq

        pq.write_table(table, stem.with_suffix(".parquet"))
        written.append(str(stem.with_suffix(".parquet")))
    if csv:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, stem.with_suffix(".csv"))
        written.append(str(stem.with_suffix(".csv")))
    return written


def run(paths: Sequence[PathLike] | PathLike, *, format: str, out: PathLike,
        intervals: Sequence[str | int] = ("1s", "1m"), sample: str | int = "1s",
        levels: int = 10, parquet: bool = True, csv: bool = True, progress: bool = True,
        book: int | str | None = None, seed: int = 0, **options: Any) -> dict[str, Any]:
    """Bars and features of a data file (or a simulated day), written to ``out``.

    Parameters
    ----------
    paths : path or sequence of paths
        The input (module docstring's table); for ``simulate``, a preset name.
    format : str
        One of :data:`FORMATS`.
    out : path
        Folder for the files (created).
    intervals, sample : str or int
        Bar intervals and the sample clock (``"100ms"``, ``"1s"``, ``"1m"`` or ns).
    levels : int
        Depth levels per side written to the samples (1-10).
    parquet, csv : bool
        Which files to write.
    progress : bool
        Show a tqdm bar (messages, or simulated steps).
    book : int or str, optional
        ITCH: the stock (book number or symbol).
    seed : int
        ``simulate``: the market's seed.
    **options
        ``snapshot``, ``symbol``, ``tick_size``, ``lot_size``, ``mapping``: the crypto and
        generic readers' (see ``rltrader replay``).

    Returns
    -------
    dict
        What was read and written (also ``out/summary.json``): ``messages``, ``events``
        (core events and off-book trades fed to the engine), ``bars`` (rows per interval),
        ``samples``, ``volume`` (lots in the bars), timings (``read_s``: the reader;
        ``process_s``: the core, or the simulation, and the engine; ``write_s``),
        ``events_per_s`` (over ``process_s``),
        ``engine_events_per_s`` (the engine alone), ``files`` and the source's units.
    """
    from tqdm import tqdm

    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 10:
        raise ValueError(f"levels must be an int in [1, 10], got {levels!r}")
    if not (parquet or csv):
        raise ValueError("nothing to write: parquet and csv are both off")
    given: list[PathLike] = ([paths] if isinstance(paths, (str, os.PathLike))
                             else list(paths))
    out_dir = Path(out)
    intervals_ns = tuple(parse_interval(v) for v in intervals)
    summary: dict[str, Any] = {"format": format, "inputs": [str(p) for p in given],
                               "intervals": [interval_name(v) for v in intervals_ns],
                               "sample": interval_name(parse_interval(sample))}
    started = time.perf_counter()
    source: Source | None = None
    if format == "simulate":
        if len(given) != 1 or options or book is not None:
            raise ValueError("simulate: one preset name (and seed=), nothing else")
        from rltrader.sim import preset

        config = preset(str(given[0]))
        n_books, total, unit, label = config.n_books, config.n_steps, "step", str(given[0])
    else:
        source = load_source(given, format, book=book, **options)
        n_books, total, unit = 1, source.messages.shape[0], "msg"
        label = source.symbol or format
    read_s = time.perf_counter() - started
    engine = FeatureEngine(n_books, intervals_ns, sample)
    collector = _Collector(engine)
    started = time.perf_counter()
    with tqdm(total=total, unit=unit, unit_scale=True, disable=not progress,
              desc=label) as bar:
        if source is None:
            summary.update(_simulate(str(given[0]), seed, collector, bar))
        else:
            summary["messages"] = _replay(source, collector, bar)
            last = [a["timestamp"].max() for a in (source.messages, source.trades) if a.size]
            if last:
                collector.finish(int(max(last)))
            summary.update(symbols=[source.symbol], tick_size=source.tick_size,
                           lot_size=source.lot_size,
                           off_book_trades=int(source.trades.shape[0]), **source.notes)
    process_s = time.perf_counter() - started

    begin = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    bars = np.concatenate(collector.bars) if collector.bars else np.zeros(0, BAR_DTYPE)
    samples = (np.concatenate(collector.samples) if collector.samples
               else np.zeros(0, SAMPLE_DTYPE))
    units = ("format", "symbols", "tick_size", "lot_size")
    meta: dict[str, Any] = {k: summary[k] for k in units if k in summary}
    files: list[str] = []
    counts: dict[str, int] = {}
    for interval in intervals_ns:
        rows = bars[bars["interval_ns"] == interval]
        rows = rows[np.lexsort((rows["t_open"], rows["book"]))]
        name = interval_name(interval)
        counts[name] = int(rows.shape[0])
        files += _write(_columns(rows, BAR_COLUMNS, levels), out_dir / f"bars_{name}",
                        parquet, csv, {**meta, "interval": name})
    samples = samples[np.lexsort((samples["book"], samples["t"]))]
    files += _write(_columns(samples, SAMPLE_COLUMNS, levels), out_dir / "samples", parquet,
                    csv, {**meta, "sample": summary["sample"]})
    write_s = time.perf_counter() - begin
    finest = bars[bars["interval_ns"] == min(intervals_ns)] if bars.size else bars
    summary.update(
        events=collector.events, rejected=collector.rejected, bars=counts,
        samples=int(samples.shape[0]), volume=int(finest["volume"].sum()),
        buy_volume=int(finest["buy_volume"].sum()), read_s=round(read_s, 4),
        process_s=round(process_s, 4), write_s=round(write_s, 4),
        events_per_s=round(collector.events / max(process_s, 1e-9)),
        engine_events_per_s=round(collector.events / max(collector.seconds, 1e-9)),
        counters=engine.counters, files=files + [str(out_dir / "summary.json")])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_plain) + "\n")
    return summary


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


__all__ = ["FORMATS", "Source", "load_source", "run"]
