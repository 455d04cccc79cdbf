"""``rltrader replay coinbase|binance|tardis PATH...``: rebuild a crypto book from a feed.

PATH is one or more feed files in stream order (a shell glob works):

- ``coinbase``: ``full`` channel files; ``--snapshot`` (required) is the REST level-3
  snapshot they start from; ``--end-snapshot`` checks the rebuilt book against a later one,
  order by order (exit status 1 when they differ).
- ``binance``: websocket captures (depth diffs, trades, bookTicker); ``--snapshot`` when the
  REST depth snapshot is a separate file. The rebuilt best bid/ask is checked against every
  ``bookTicker`` with a matching update id (exit status 1 on a mismatch).
- ``tardis``: tardis.dev ``incremental_book_L2``, ``book_snapshot_N`` or ``quotes`` CSV.
- ``generic``: one CSV or Parquet file of any venue's L3 order events or L2 level updates,
  read with ``--mapping MAPPING.toml`` (:mod:`rltrader.data.generic`); ``--tick-size`` and
  ``--lot-size`` override the mapping's.

It reports the parse time, the rebuild time (``Books.process`` into a buffer allocated
beforehand, normally one call; rejections are counted after each call) as messages/s, and
the final top of book. ``--dump-l2 OUT`` writes the top ``--levels`` levels after each feed
event that changed the book as CSV with a header, ``tag,timestamp,ask_price_1,ask_size_1,
bid_price_1,bid_size_1,...`` in ticks and lots of the feed's grid (missing levels 0); ``tag``
is the event's sequence (Coinbase), final update id (Binance), first file line (tardis) or the
line (row, for Parquet) of the message's row (generic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader._book import Books
from rltrader.core.constants import REJECTED
from rltrader.core.messages import empty_events
from rltrader.data._decimal import DecimalGrid
from rltrader.data._levels import depth_after, process_every

CRYPTO_FORMATS = ("coinbase", "binance", "tardis")

#: Formats read with a column mapping (``--mapping``).
MAPPED_FORMATS = ("generic",)

#: Dense price window (ticks): crypto books hold many orders far from the touch, which the
#: core keeps on slower overflow lists when they fall outside the window.
WINDOW = 1 << 18


@dataclass
class Loaded:
    """A feed read into core messages, with what the report needs."""

    feed: Any  # the reader's result (CoinbaseFeed, BinanceFeed, TardisFeed)
    messages: np.ndarray
    tags: np.ndarray  # per message: sequence / update id / line, ascending
    tick_size: DecimalGrid
    lot_size: DecimalGrid
    feed_events: int
    summary: str
    trades_expected: bool = False  # L3 EXECUTE messages trade; an L2 book must not


def load(fmt: str, paths: list[str], *, symbol: str | None = None,
         tick_size: str | None = None, lot_size: str | None = None,
         snapshot: str | None = None, mapping: str | None = None) -> Loaded:
    """Read ``paths`` in format ``fmt`` (see the module docstring)."""
    if fmt == "generic":
        return _load_generic(paths, mapping, tick_size=tick_size, lot_size=lot_size)
    if fmt == "coinbase":
        from rltrader.data import coinbase

        if snapshot is None:
            raise ValueError("coinbase: --snapshot FILE (the REST level-3 snapshot the "
                             "messages start from) is required")
        cb = coinbase.read_feed(snapshot, paths, product_id=symbol,
                                tick_size=tick_size or coinbase.DEFAULT_TICK_SIZE,
                                lot_size=lot_size or coinbase.DEFAULT_LOT_SIZE)
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(cb.type_counts.items()))
        return Loaded(cb, cb.messages, cb.sequence, cb.tick_size, cb.lot_size, cb.feed_messages,
                      f"sequences {cb.snapshot_sequence + 1}..{cb.last_sequence}: {counts}; "
                      f"{cb.stale:,} older than the snapshot skipped; "
                      f"{len(cb.order_ids):,} order ids mapped", trades_expected=True)
    if fmt == "binance":
        from rltrader.data import binance

        bn = binance.read_feed(paths, snapshot=snapshot, symbol=symbol, tick_size=tick_size,
                               lot_size=lot_size)
        market = "futures (pu chain)" if bn.futures else "spot (U = previous u + 1)"
        return Loaded(bn, bn.messages, bn.update_id, bn.tick_size, bn.lot_size,
                      bn.diffs + len(bn.trades) + len(bn.tickers),
                      f"{bn.symbol} {market}: snapshot lastUpdateId {bn.snapshot_update_id}, "
                      f"{bn.diffs:,} diffs applied up to u={bn.last_update_id} "
                      f"({bn.stale:,} older dropped), {len(bn.trades):,} trades and "
                      f"{len(bn.tickers):,} bookTickers kept aside")
    if fmt == "tardis":
        from rltrader.data import tardis

        td = tardis.read_feed(paths, symbol=symbol, tick_size=tick_size, lot_size=lot_size)
        return Loaded(td, td.messages, td.line, td.tick_size, td.lot_size, td.rows,
                      f"{td.exchange} {td.symbol}: {td.rows:,} rows, {td.events:,} events, "
                      f"{td.resets:,} full-book resets")
    raise ValueError(f"unknown crypto format {fmt!r} (one of {CRYPTO_FORMATS})")


def _load_generic(paths: list[str], mapping_path: str | None, *, tick_size: str | None,
                  lot_size: str | None) -> Loaded:
    from dataclasses import replace

    from rltrader.data import generic

    if mapping_path is None:
        raise ValueError("generic: --mapping MAPPING.toml (the file's column mapping) is "
                         "required")
    if len(paths) != 1:
        raise ValueError(f"generic: one file, got {len(paths)}")
    mapping = generic.ColumnMapping.from_toml(mapping_path)
    steps = {k: v for k, v in (("tick_size", tick_size), ("lot_size", lot_size)) if v}
    if steps:
        mapping = replace(mapping, **steps)
    feed = generic.load(paths[0], mapping)
    counts = ", ".join(f"{k} {v:,}" for k, v in feed.event_counts.items() if v)
    summary = f"{mapping.kind.upper()} {feed.path}: {feed.rows:,} rows ({counts or 'none'})"
    if mapping.kind == "l3":
        summary += (f"; {len(feed.unknown_rows):,} about orders from before the file "
                    f"dropped; {feed.held_orders:,} crossing orders held until the book "
                    f"uncrossed, {feed.still_held:,} never sent")
    return Loaded(feed, feed.messages, feed.row, feed.tick_size, feed.lot_size, feed.rows,
                  summary, trades_expected=mapping.kind == "l3")


def _checks(fmt: str, loaded: Loaded, books: Books, end_snapshot: str | None,
            window: int) -> list[str]:
    """Known-answer checks of the rebuilt book; prints them and returns the failures."""
    failures: list[str] = []
    if fmt == "coinbase" and end_snapshot:
        from rltrader.data import coinbase

        end = coinbase.read_snapshot(end_snapshot)
        failures = coinbase.compare_snapshot(books, loaded.feed, end)
        verdict = "DIFFERS" if failures else "every order id, price, size and queue equal"
        print(f"end snapshot (sequence {end.sequence}, {len(end):,} orders): {verdict}")
    elif fmt == "binance":
        from rltrader.data import binance

        check = binance.compare_tickers(loaded.feed, window=window)
        print(f"bookTicker check: {check.checked:,} tickers at applied update ids, "
              f"{len(check.mismatched):,} differ from the rebuilt best bid/ask")
        failures = [f"bookTicker {t} != rebuilt {r}"
                    for t, r in zip(check.mismatched[:5], check.rebuilt[:5], strict=True)]
    elif end_snapshot:
        raise ValueError(f"{fmt}: --end-snapshot applies to coinbase only")
    return failures


def dump_depth(path: str, loaded: Loaded, levels: int, window: int) -> int:
    """Write the top ``levels`` after each feed event (see the module docstring); rows."""
    tags = np.unique(loaded.tags)
    prices, qtys = depth_after(loaded.messages, loaded.tags, tags, levels,
                               allow_trades=loaded.trades_expected, window=window)
    last = np.searchsorted(loaded.tags, tags, side="right") - 1
    table = np.empty((tags.shape[0], levels, 4), dtype=np.int64)
    table[:, :, 0], table[:, :, 1] = prices[:, 1], qtys[:, 1]
    table[:, :, 2], table[:, :, 3] = prices[:, 0], qtys[:, 0]
    columns = [f"{name}_{k}" for k in range(1, levels + 1)
               for name in ("ask_price", "ask_size", "bid_price", "bid_size")]
    out = np.column_stack([tags, loaded.messages["timestamp"][last],
                           table.reshape(tags.shape[0], 4 * levels)])
    np.savetxt(path, out, fmt="%d", delimiter=",", header=",".join(["tag", "timestamp",
               *columns]), comments="")
    return int(tags.shape[0])


def main(fmt: str, paths: list[str], *, symbol: str | None = None, levels: int = 5,
         dump_l2: str | None = None, tick_size: str | None = None,
         lot_size: str | None = None, snapshot: str | None = None,
         end_snapshot: str | None = None, window: int = WINDOW,
         mapping: str | None = None) -> int:
    """Rebuild, report and check one crypto feed; returns the exit status (0, or 1 when a
    check fails). Malformed input raises ``ValueError`` / ``OSError`` naming the file, and
    so does a ``symbol`` the feed has no event for."""
    start = time.perf_counter()
    loaded = load(fmt, paths, symbol=symbol, tick_size=tick_size, lot_size=lot_size,
                  snapshot=snapshot, mapping=mapping)
    parse_s = time.perf_counter() - start
    if symbol is not None and loaded.feed_events == 0:
        raise ValueError(f"no feed event for symbol {symbol!r}")
    msgs = loaded.messages
    n = msgs.shape[0]
    books = Books(1, capacity=1 << 16, window=window)
    # room for the usual one or two events a message, allocated outside the timing; the
    # buffer is drained (rejections counted) and reused when a call returns early
    events = empty_events(n + 1024)
    rejected = 0

    def count_rejected(written: np.ndarray, first: int) -> None:
        nonlocal rejected
        rejected += int(np.count_nonzero(written["kind"] == REJECTED))

    start = time.perf_counter()
    process_every(books, msgs, events, count_rejected)
    rebuild_s = time.perf_counter() - start
    print(f"{fmt}: {loaded.summary}")
    print(f"{loaded.feed_events:,} feed events -> {n:,} book messages; parse {parse_s:.3f} s; "
          f"rebuild {rebuild_s * 1e3:.1f} ms = {n / rebuild_s / 1e6:.2f} M messages/s "
          f"({n / (parse_s + rebuild_s) / 1e6:.3f} M/s with parsing); {rejected} rejected")
    _print_top(books, loaded, levels)
    failures = _checks(fmt, loaded, books, end_snapshot, window)
    for failure in failures:
        print(f"  {failure}")
    if dump_l2:
        rows = dump_depth(dump_l2, loaded, levels, window)
        print(f"wrote {rows:,} rows of {levels} levels to {dump_l2}")
    return 1 if failures or rejected else 0


def _print_top(books: Books, loaded: Loaded, levels: int) -> None:
    prices, qtys, counts = books.top_levels(levels)
    px, sz = loaded.tick_size.text, loaded.lot_size.text
    print(f"  level {'bid':>14} {'size':>16} {'orders':>6} | {'ask':>14} {'size':>16} "
          f"{'orders':>6}")
    for k in range(levels):
        cells = []
        for side in (0, 1):
            if qtys[0, side, k]:
                cells.append(f"{px(int(prices[0, side, k])):>14} "
                             f"{sz(int(qtys[0, side, k])):>16} {counts[0, side, k]:>6}")
            else:
                cells.append(f"{'-':>14} {'-':>16} {'':>6}")
        print(f"  {k + 1:5d} {cells[0]} | {cells[1]}")
