"""``rltrader replay FORMAT PATH``: rebuild a book from recorded data.

Reports messages/s of the rebuild (LOBSTER: one batched call; ITCH: parse-only and
parse + rebuild, streamed in chunks) and the final top of book. With
``--dump-l2 OUT`` it replays again one message at a time and writes the top ``--levels``
levels after every input row in LOBSTER's orderbook CSV layout
(``ask_px1, ask_sz1, bid_px1, bid_sz1, ...``, prices in $ x 10000, empty levels as
9999999999 / -9999999999 with size 0); for ITCH, after every book message of the one
selected book (``--symbol``, or a file with one stock).
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


def lobster_rows(prices: np.ndarray, qtys: np.ndarray, tick_size: int) -> np.ndarray:
    """Books in ``top_levels`` layout (rows, 2, L) as LOBSTER orderbook rows (rows, 4L)."""
    from rltrader.data.lobster import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, LobsterDepth
    from rltrader.data.lobster_writer import orderbook_table

    ask_q, bid_q = qtys[:, 1], qtys[:, 0]
    return orderbook_table(LobsterDepth(
        ask_price=np.where(ask_q > 0, prices[:, 1] * tick_size, EMPTY_ASK_PRICE), ask_qty=ask_q,
        bid_price=np.where(bid_q > 0, prices[:, 0] * tick_size, EMPTY_BID_PRICE), bid_qty=bid_q))


def main(fmt: str, path: str, *, symbol: str | None = None, levels: int = 5,
         dump_l2: str | None = None, tick_size: int = 100) -> int:
    if fmt == "itch":
        from rltrader.data.itch import ItchFormatError

        try:
            return _replay_itch(path, symbol=symbol, levels=levels, dump_l2=dump_l2,
                                tick_size=tick_size)
        except ItchFormatError as exc:
            raise SystemExit(f"replay: {exc}") from None
    if fmt != "lobster":
        raise SystemExit(f"replay: format {fmt!r} is not supported yet")
    if symbol is not None:
        raise SystemExit("replay: LOBSTER files hold one symbol; --symbol does not apply")
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
          f"{len(msgs) / rebuild_s / 1e6:.1f} M messages/s; {rejected} rejected")
    prices, qtys, _ = books.top_levels(levels)
    print("  level      bid     size |      ask     size")
    for k in range(levels):
        print(f"  {k + 1:5d} {prices[0, 0, k] * tick_size / 1e4:9.4f} {qtys[0, 0, k]:7d} | "
              f"{prices[0, 1, k] * tick_size / 1e4:9.4f} {qtys[0, 1, k]:7d}")
    if dump_l2:
        prices, qtys = lobster.replay_depth(feed, levels, capacity=1 << 16)
        np.savetxt(dump_l2, lobster_rows(prices, qtys, tick_size), fmt="%d", delimiter=",")
        print(f"wrote {len(prices):,} rows of {levels} levels to {dump_l2}")
    return 0


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
            raise SystemExit(f"replay: --dump-l2 needs one book; pick one with --symbol "
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
