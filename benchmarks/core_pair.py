"""Paired A/B runs of the matching core from two checkouts: ns per message on W3 (one
book), W3 x 512 books and, given its source, the QuantCup 1 contest feed.

    python benchmarks/core_pair.py A_DIR B_DIR [--pairs 11] [--per-book 390]
                                   [--grouped BATCH ...] [--quantcup-source /tmp/qc]

Each checkout (its compiled modules built in place) runs in a process of its own that
builds the streams once; then, pair after pair, the two processes replay each stream in
turn on a fresh ``Books``, alternating which goes first, so that both see the same
machine state. Times are the thread's CPU time (``time.thread_time_ns``): on a VM shared
with other jobs, wall time also counts the minutes the thread waits for a core, which
moves a 3 ms replay by 2x; CPU time does not (cache sharing still moves it).

Streams, as ``rltrader bench --quick`` builds them: W3 is ``workloads.lobster_aapl()``
(89,712 messages, one book, ``Books(1, window=4096, capacity=65536)``); W3 x 512 is
``workloads.interleave`` of it over 512 books, ``--per-book`` messages each (390: the
quick bench's 200,000 in all; 3,906: the full bench's 2 M), ``Books(512, window=4096,
capacity=65536)``; both in batches of ``rltrader.tools.bench.BATCH``. ``--grouped BATCH``
adds W3 x 512 in batches of ``BATCH`` messages, each batch's messages sorted by book
(stable: each book's in input order), which is what processing a batch book by book
would run, without the cost of the sort. W3x512alone replays W3 x 512's per-book stream
(W3's first ``--per-book`` messages) on 512 books one after the other, each on a fresh
``Books(1)``: the same work without the other books' memory, the yardstick of what
interleaving 512 books costs. QuantCup is the
contest feed as ``benchmarks/compare/quantcup.py`` sends it (batches of 4,096, window
4,096, 1,024 slots); the feed is read from ``--quantcup-source`` (not in this repository).

Prints each checkout's median ns per message per stream, the median of the per-pair
ratios B/A with its interquartile range, and each checkout's W3 x 512 / W3 ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
from pathlib import Path

from _pairing import offered_cases

_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import rltrader
from rltrader import Books
from rltrader.core.messages import EVENT_DTYPE
from rltrader.tools import workloads
from rltrader.tools.bench import BATCH

assert rltrader.__file__.startswith(sys.argv[1]), rltrader.__file__
one = workloads.lobster_aapl()
many = workloads.interleave(one, 512, per_book={per_book})
streams = {{
    "W3": (one, 1, 65536, BATCH),
    "W3x512": (many, 512, 65536, BATCH),
}}
for batch in {grouped}:
    # each batch's messages sorted by book, each book's in input order: what grouping a
    # batch by book would run (the sort itself not timed)
    streams[f"W3x512g{{batch}}"] = (np.concatenate([
        chunk[np.argsort(chunk["book"], kind="stable")]
        for chunk in (many[i:i + batch] for i in range(0, len(many), batch))]),
        512, 65536, batch)
if sys.argv[3]:
    sys.path.insert(0, sys.argv[2] + "/compare")
    import quantcup
    from pathlib import Path
    msgs, owners = quantcup.feed_messages(quantcup.parse_feed(Path(sys.argv[3]) /
                                                              "score_feed.h"))
    streams["QuantCup"] = (msgs, 1, 1024, 4096, owners)
events = np.empty(64 * max((BATCH, *{grouped})), dtype=EVENT_DTYPE)
head = one[:{per_book}].copy()


def alone():
    # W3 x 512's per-book stream on 512 books one at a time, each on a Books(1) built just
    # before its replay (construction not timed; its levels are still cached): the same
    # messages and work as W3 x 512 without the memory of 511 other books
    spent = 0
    for _ in range(512):
        books = Books(1, window=4096, capacity=1024)
        start = time.thread_time_ns()
        for i in range(0, len(head), BATCH):
            books.process(head[i:i + BATCH], events)
        spent += time.thread_time_ns() - start
    return spent / (512 * len(head))


streams["W3x512alone"] = None
print(" ".join(streams), flush=True)
for line in sys.stdin:
    if line.strip() == "W3x512alone":
        print(alone(), flush=True)
        continue
    msgs, n_books, capacity, batch, *owners = streams[line.strip()]
    books = Books(n_books, window=4096, capacity=capacity,
                  **({{"n_owners": owners[0]}} if owners else {{}}))
    chunks = [msgs[i:i + batch] for i in range(0, len(msgs), batch)]
    start = time.thread_time_ns()
    for chunk in chunks:
        done, _ = books.process(chunk, events)
        if done != len(chunk):
            raise RuntimeError("event buffer too small")
    print((time.thread_time_ns() - start) / len(msgs), flush=True)
"""


def pair(a_dir: str, b_dir: str, pairs: int, per_book: int, quantcup: str,
         grouped: list[int]) -> None:
    here = str(Path(__file__).resolve().parent)
    child = textwrap.dedent(_CHILD.format(per_book=per_book, grouped=tuple(grouped)))
    answers = offered_cases(child, (a_dir, b_dir), (here, quantcup), pairs, "streams")
    times = {name: tuple([float(x) for x in side] for side in sides)
             for name, sides in answers.items()}
    print(f"A = {a_dir}, B = {b_dir}; {pairs} pairs, thread CPU time")
    for name, (a, b) in times.items():
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        print(f"  {name:14s} A {statistics.median(a):7.2f} ns/msg  B {statistics.median(b):7.2f}"
              f" ns/msg  B/A median {statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f})")
    for j, label in enumerate("AB"):
        one = statistics.median(times["W3"][j])
        print(f"  {label}: " + ", ".join(
            f"{name} / W3 = {statistics.median(times[name][j]) / one:.2f}"
            for name in times if name.startswith("W3x512")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_dir")
    parser.add_argument("b_dir")
    parser.add_argument("--pairs", type=int, default=11)
    parser.add_argument("--per-book", type=int, default=390,
                        help="W3 x 512 messages per book (390: the quick bench's 200,000)")
    parser.add_argument("--grouped", type=int, action="append", default=[],
                        metavar="BATCH", help="also time W3 x 512 in batches of BATCH "
                        "messages, each batch grouped by book (repeatable)")
    parser.add_argument("--quantcup-source", default="",
                        help="checkout of ajtulloch/quantcup-orderbook, winning-c-engine")
    args = parser.parse_args(argv)
    if args.pairs < 2 or args.per_book < 1 or any(b < 1 for b in args.grouped):
        parser.error("--pairs must be >= 2, --per-book and --grouped >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rltrader.tools.bench import machine

    print("machine:", machine())
    pair(args.a_dir, args.b_dir, args.pairs, args.per_book, args.quantcup_source,
         args.grouped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
