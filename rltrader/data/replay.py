"""``rltrader replay FORMAT PATH``: rebuild a book from recorded data.

Reports messages/s of the rebuild (LOBSTER: one batched call; ITCH: parse-only and
parse + rebuild, streamed in chunks) and the final top of book. With
``--dump-l2 OUT`` it replays again one message at a time and writes the top ``--levels``
levels after every input row in LOBSTER's orderbook CSV layout
(``ask_px1, ask_sz1, bid_px1, bid_sz1, ...``, prices in $ x 10000, empty levels as
9999999999 / -9999999999 with size 0); for ITCH, after every book message of the one
selected book (``--symbol``, or a file with one stock).

LOBSTER ``MESSAGE ORDERBOOK`` (a download's pair) rebuilds the book exactly
(:mod:`rltrader.data.lobster_exact`) and checks every level of every orderbook row: the
report says how many rows differ and names the first (exit status 1). The dump then holds
the file's own ``--levels`` (default: all of them) and, for a consistent pair, equals the
orderbook file (the same integers and commas; it always ends in a newline).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from rltrader._book import Books
from rltrader.core.constants import REJECTED
from rltrader.data._levels import levels_after

if TYPE_CHECKING:
    from rltrader.data.itch import ItchReader, PriceSpans
    from rltrader.data.lobster_exact import ExactFeed


def lobster_rows(prices: np.ndarray, qtys: np.ndarray, tick_size: int) -> np.ndarray:
    """Books in ``top_levels`` layout (rows, 2, L) as LOBSTER orderbook rows (rows, 4L)."""
    from rltrader.data.lobster import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, LobsterDepth
    from rltrader.data.lobster_writer import orderbook_table

    ask_q, bid_q = qtys[:, 1], qtys[:, 0]
    return orderbook_table(LobsterDepth(
        ask_price=np.where(ask_q > 0, prices[:, 1] * tick_size, EMPTY_ASK_PRICE), ask_qty=ask_q,
        bid_price=np.where(bid_q > 0, prices[:, 0] * tick_size, EMPTY_BID_PRICE), bid_qty=bid_q))


def main(fmt: str, path: str, *, orderbook: str | None = None, symbol: str | None = None,
         levels: int | None = None, dump_l2: str | None = None, tick_size: int = 100) -> int:
    """Rebuild, report (and with ``orderbook``, check) one LOBSTER or ITCH file.

    Returns the exit status: 0, or 1 when the rebuilt book differs from the LOBSTER
    orderbook file. Malformed input raises ``ValueError`` / ``OSError`` / ``EOFError``
    naming the file (the CLI turns them into one line and exit status 2).
    """
    if fmt == "itch":
        if orderbook is not None:
            raise ValueError("replay itch: one file")
        return _replay_itch(path, symbol=symbol, levels=5 if levels is None else levels,
                            dump_l2=dump_l2,
                            tick_size=tick_size)
    if fmt != "lobster":
        raise ValueError(f"format {fmt!r} is not supported yet")
    if symbol is not None:
        raise ValueError("LOBSTER files hold one symbol; --symbol does not apply")
    if orderbook is not None:
        return _replay_lobster_pair(path, orderbook, levels=levels, dump_l2=dump_l2,
                                    tick_size=tick_size)
    return _replay_lobster(path, levels=5 if levels is None else levels, dump_l2=dump_l2,
                           tick_size=tick_size)


def _replay_lobster(path: str, *, levels: int, dump_l2: str | None, tick_size: int) -> int:
    """A message file alone: old orders are unknown, so the book is what the file shows."""
    from rltrader.data import lobster

    start = time.perf_counter()
    feed = lobster.read_messages(path, tick_size=tick_size)
    parse_s = time.perf_counter() - start
    msgs = feed.messages
    books = Books(1, capacity=1 << 16)
    start = time.perf_counter()
    events = books.process_all(msgs)
    rebuild_s = time.perf_counter() - start
    rejected = int(np.count_nonzero(events["kind"] == REJECTED))
    print(f"{path}: {len(feed.raw):,} rows -> {len(msgs):,} book messages "
          f"({len(feed.off_book_row):,} off-book rows: hidden executions, crosses, halts; "
          f"{len(feed.unknown_row):,} references to orders from before the file dropped)")
    print(f"parse {parse_s:.3f} s; rebuild {rebuild_s * 1e3:.1f} ms = "
          f"{len(msgs) / max(rebuild_s, 1e-9) / 1e6:.1f} M messages/s; {rejected} rejected")
    _print_top(books, 0, levels, tick_size)
    if dump_l2:
        prices, qtys = lobster.replay_depth(feed, levels, capacity=1 << 16)
        _write_rows(dump_l2, lobster_rows(prices, qtys, tick_size))
        print(f"wrote {len(prices):,} rows of {levels} levels to {dump_l2}")
    return 0


def _replay_lobster_pair(message: str, orderbook: str, *, levels: int | None,
                         dump_l2: str | None, tick_size: int) -> int:
    """Message + orderbook file: the exact rebuild (:mod:`rltrader.data.lobster_exact`),
    checked against every orderbook row, all its levels."""
    from rltrader.data import lobster
    from rltrader.data.lobster_exact import exact_messages

    start = time.perf_counter()
    raw, depth = lobster.read_raw(message), lobster.read_orderbook(orderbook)
    try:
        want_prices, want_qtys = depth.in_ticks(tick_size)
    except ValueError as exc:
        raise ValueError(f"{orderbook}: {exc}") from None
    if len(depth) != raw.shape[0]:
        raise ValueError(f"{orderbook}: {len(depth):,} rows, but {message} has "
                         f"{raw.shape[0]:,} (a pair has one orderbook row per message row)")
    levels = depth.levels if levels is None else levels
    if not 1 <= levels <= depth.levels:
        raise ValueError(f"--levels {levels}: the orderbook file shows 1..{depth.levels}")
    try:
        exact = exact_messages(raw, depth, tick_size=tick_size)
    except ValueError as exc:  # a row that the pair cannot explain
        raise ValueError(f"{message}: {exc}") from None
    parse_s = time.perf_counter() - start
    books = Books(1, capacity=1 << 16)
    start = time.perf_counter()
    events = books.process_all(exact.messages)
    rebuild_s = time.perf_counter() - start
    rejected = int(np.count_nonzero(events["kind"] == REJECTED))
    stats = exact.stats()
    print(f"{message}: {raw.shape[0]:,} rows -> {exact.messages.shape[0]:,} book messages "
          f"({stats['synthetic_orders']:,} synthetic orders for liquidity the files show "
          f"but never add, {stats['redirected_rows']:,} rows redirected to them)")
    print(f"parse + exact method {parse_s:.3f} s; rebuild {rebuild_s * 1e3:.1f} ms = "
          f"{exact.messages.shape[0] / max(rebuild_s, 1e-9) / 1e6:.1f} M messages/s; "
          f"{rejected} rejected")
    _print_top(books, 0, min(levels, 5), tick_size)
    prices, qtys = lobster.replay_depth(exact.feed, depth.levels, capacity=1 << 16)
    bad = _pair_mismatches(prices, qtys, want_prices, want_qtys, exact)
    print(f"orderbook check: {len(depth):,} rows x {depth.levels} levels checked against "
          f"{orderbook}, {bad.size:,} differ")
    if bad.size:
        print("  " + _describe_row(int(bad[0]), prices, qtys, want_prices, want_qtys,
                                   tick_size))
    if dump_l2:
        _write_rows(dump_l2, lobster_rows(prices[:, :, :levels], qtys[:, :, :levels],
                                          tick_size))
        print(f"wrote {len(prices):,} rows of {levels} levels to {dump_l2}")
    return 1 if bad.size or rejected else 0


def _pair_mismatches(prices: np.ndarray, qtys: np.ndarray, want_prices: np.ndarray,
                     want_qtys: np.ndarray, exact: ExactFeed) -> np.ndarray:
    """Rows whose rebuilt levels differ from the file, and rows where the exact method had
    to correct the message's own level (the pair breaks LOBSTER's rule that a level moves
    by the message's size, so a later row may match only thanks to the correction)."""
    from rltrader.data.lobster_exact import POST_CHECK

    differ = ((prices != want_prices) | (qtys != want_qtys)).any(axis=(1, 2))
    fixed = exact.feed.source_row[exact.reason == POST_CHECK]
    return np.union1d(np.flatnonzero(differ), fixed)


def _describe_row(row: int, prices: np.ndarray, qtys: np.ndarray, want_prices: np.ndarray,
                  want_qtys: np.ndarray, tick_size: int) -> str:
    """The first bad row in words: its line in both files and the first level that differs."""
    where = f"first bad row: line {row + 1} of both files"
    for si, side in ((0, "bid"), (1, "ask")):
        for k in range(prices.shape[2]):
            got = (int(prices[row, si, k]) * tick_size, int(qtys[row, si, k]))
            want = (int(want_prices[row, si, k]) * tick_size, int(want_qtys[row, si, k]))
            if got != want:
                return (f"{where}: {side} level {k + 1} is {want[1]} @ {want[0]} in the "
                        f"orderbook file, rebuilt {got[1]} @ {got[0]}")
    return f"{where}: the message's level moved by other than its size (LOBSTER's rule)"


def _write_rows(path: str, rows: np.ndarray) -> None:
    """LOBSTER orderbook rows as its CSV: integers, comma-separated, one row per line."""
    np.savetxt(path, rows, fmt="%d", delimiter=",")


def _print_top(books: Books, book: int, levels: int, tick_size: int) -> None:
    prices, qtys, _ = books.top_levels(levels)
    print("  level      bid     size |      ask     size")
    for k in range(levels):
        print(f"  {k + 1:5d} {prices[book, 0, k] * tick_size / 1e4:9.4f} {qtys[book, 0, k]:7d} | "
              f"{prices[book, 1, k] * tick_size / 1e4:9.4f} {qtys[book, 1, k]:7d}")


def _replay_itch(path: str, *, symbol: str | None, levels: int, dump_l2: str | None,
                 tick_size: int) -> int:
    from rltrader.data import itch

    symbols = None if symbol is None else [symbol]
    reader = itch.ItchReader(path, symbols, tick_size=tick_size, reuse_buffers=True)
    n_messages, spans, parse_s = _count_itch(reader)
    if symbol is not None and not reader.book_symbols[0]:
        raise ValueError(f"{path}: no stock {symbol!r} in the file (no stock directory "
                         f"record names it)")
    # the window from the prices used: a file naming thousands of narrow books must not
    # cost the full window (~100 KB of levels) per book
    books, stats = itch.rebuild_books(
        itch.ItchReader(path, symbols, tick_size=tick_size, reuse_buffers=True),
        n_books=reader.n_books, window=itch.fit_window(spans.widest, reader.n_books))
    counts = ", ".join(f"{k}={v:,}" for k, v in sorted(reader.type_counts.items()))
    print(f"{path}: {reader.nbytes:,} bytes, records {counts}")
    print(f"{stats.messages:,} book messages and {stats.trades:,} trades on "
          f"{reader.n_books:,} books; skipped: {reader.counters}")
    print(f"parse only {parse_s:.3f} s = {n_messages / max(parse_s, 1e-9) / 1e6:.1f} M "
          f"messages/s; parse + rebuild {stats.seconds:.3f} s = "
          f"{stats.messages / max(stats.seconds, 1e-9) / 1e6:.1f} M messages/s")
    print(f"rejected by the core: {stats.rejected or 'none'}")
    if reader.n_books == 0:
        return 0
    live = books.book_array["n_resting"].sum(axis=1)
    book = 0 if symbol is not None else int(np.argmax(live))
    print(f"book {book} ({reader.book_symbols[book] or '?'}), {int(live[book])} resting "
          f"orders:")
    _print_top(books, book, levels, tick_size)
    if dump_l2:
        if reader.n_books != 1:
            raise ValueError(f"--dump-l2 needs one book; pick one with --symbol "
                             f"(the file has {reader.n_books})")
        rows = _dump_itch_l2(path, symbols, levels, tick_size, dump_l2)
        print(f"wrote {rows:,} rows of {levels} levels to {dump_l2}")
    return 0


def _count_itch(reader: ItchReader) -> tuple[int, PriceSpans, float]:
    """Parse-only pass: book messages, their :class:`~rltrader.data.itch.PriceSpans`, and
    the seconds spent parsing (the span bookkeeping is not counted)."""
    from rltrader.data import itch

    spans = itch.PriceSpans()
    n_messages, extra = 0, 0.0
    start = time.perf_counter()
    for chunk in reader:
        n_messages += chunk.messages.shape[0]
        mark = time.perf_counter()
        spans.add(chunk.messages)
        extra += time.perf_counter() - mark
    return n_messages, spans, time.perf_counter() - start - extra


def _dump_itch_l2(path: str, symbols: list[str] | None, levels: int, tick_size: int,
                  out: str) -> int:
    """Top ``levels`` of book 0 after every book message, as LOBSTER orderbook rows."""
    from rltrader.data import itch

    books = Books(1, capacity=1 << 16)
    rows = 0
    with open(out, "w") as f:
        for msgs in itch.iter_messages(path, symbols, tick_size=tick_size):
            ends = np.arange(1, msgs.shape[0] + 1)
            prices, qtys = levels_after(books, msgs, ends, levels)
            np.savetxt(f, lobster_rows(prices, qtys, tick_size), fmt="%d", delimiter=",")
            rows += msgs.shape[0]
    return rows
