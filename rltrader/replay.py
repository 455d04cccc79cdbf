"""``rltrader replay FORMAT PATH``: rebuild a book from recorded data.

Reports messages/s of the rebuild (one batched call) and the final top of book. With
``--dump-l2 OUT`` it replays again one message at a time and writes the top ``--levels``
levels after every input row in LOBSTER's orderbook CSV layout
(``ask_px1, ask_sz1, bid_px1, bid_sz1, ...``, prices in $ x 10000, empty levels as
9999999999 / -9999999999 with size 0).
"""

from __future__ import annotations

import time

import numpy as np

from rltrader._book import Books
from rltrader.constants import REJECTED


def lobster_rows(prices: np.ndarray, qtys: np.ndarray, tick_size: int) -> np.ndarray:
    """Books in ``top_levels`` layout (rows, 2, L) as LOBSTER orderbook rows (rows, 4L)."""
    from rltrader.data.lobster import EMPTY_ASK_PRICE, EMPTY_BID_PRICE

    rows, _, levels = prices.shape
    out = np.empty((rows, levels, 4), dtype=np.int64)
    ask_q, bid_q = qtys[:, 1], qtys[:, 0]
    out[:, :, 0] = np.where(ask_q > 0, prices[:, 1] * tick_size, EMPTY_ASK_PRICE)
    out[:, :, 1] = ask_q
    out[:, :, 2] = np.where(bid_q > 0, prices[:, 0] * tick_size, EMPTY_BID_PRICE)
    out[:, :, 3] = bid_q
    return out.reshape(rows, 4 * levels)


def main(fmt: str, path: str, *, symbol: str | None = None, levels: int = 5,
         dump_l2: str | None = None, tick_size: int = 100) -> int:
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
