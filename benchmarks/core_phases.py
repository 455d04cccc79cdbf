"""W3 x 512 by phase, two checkouts paired: the batches in which the order arena grows and
the others, in thread CPU time, with the page faults of the others.

    python benchmarks/core_phases.py A_DIR B_DIR [--pairs 15] [--per-book 3906]

Each checkout (its compiled modules built in place) runs in a process of its own that
builds W3 x 512 once as ``rltrader bench`` does (``workloads.interleave`` of
``workloads.lobster_aapl()`` over 512 books, ``--per-book`` messages each: 3,906 is the
full bench's 2 M, 390 the quick one's 200,000) and replays it, pair after pair, on a fresh
``Books(512, window=4096, capacity=65536)`` in batches of ``rltrader.tools.bench.BATCH``,
the two checkouts alternating which goes first (``_pairing.py``). A batch during which
``Books.capacity`` changed is a growth batch (the stream grows the arena twice at the
full size, once at the quick one). Prints each checkout's medians: ns per message over
the whole stream, milliseconds in growth batches, ns per message over the other batches
and their minor page faults; and the median of the per-pair ratios B/A of the whole
stream with its interquartile range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
from pathlib import Path

from _pairing import offered_cases

_CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import rltrader
from rltrader import Books
from rltrader.core.messages import EVENT_DTYPE
from rltrader.tools import workloads
from rltrader.tools.bench import BATCH

assert rltrader.__file__.startswith(sys.argv[1]), rltrader.__file__
many = workloads.interleave(workloads.lobster_aapl(), 512, per_book={per_book})
chunks = [many[i:i + BATCH] for i in range(0, len(many), BATCH)]
events = np.empty(64 * BATCH, dtype=EVENT_DTYPE)
print("W3x512", flush=True)
for line in sys.stdin:
    books = Books(512, window=4096, capacity=65536)
    total = grow = grown = faults = 0
    for chunk in chunks:
        capacity = books.capacity
        f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        start = time.thread_time_ns()
        done, _ = books.process(chunk, events)
        spent = time.thread_time_ns() - start
        if done != len(chunk):
            raise RuntimeError("event buffer too small")
        total += spent
        if books.capacity != capacity:
            grow += spent
            grown += len(chunk)
        else:
            faults += resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0
    print(total / len(many), grow / 1e6, (total - grow) / (len(many) - grown), faults,
          flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_dir")
    parser.add_argument("b_dir")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--per-book", type=int, default=3906)
    args = parser.parse_args(argv)
    if args.pairs < 2 or args.per_book < 1:
        parser.error("--pairs must be >= 2, --per-book >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rltrader.tools.bench import machine

    print("machine:", machine())
    child = textwrap.dedent(_CHILD.format(per_book=args.per_book))
    answers = offered_cases(child, (args.a_dir, args.b_dir), (), args.pairs, "streams")
    n = 512 * args.per_book
    a, b = ([[float(x) for x in line.split()] for line in side]
            for side in answers["W3x512"])
    print(f"A = {args.a_dir}, B = {args.b_dir}; {args.pairs} pairs, thread CPU time, "
          f"W3 x 512 of {n:,} messages")
    for label, runs in (("A", a), ("B", b)):
        total, grow, rest, faults = (statistics.median(col)
                                     for col in zip(*runs, strict=True))
        print(f"  {label}: {total:6.2f} ns/msg in all, growth batches {grow:5.2f} ms, "
              f"the other batches {rest:6.2f} ns/msg with {faults:.0f} page faults")
    ratios = [y[0] / x[0] for x, y in zip(a, b, strict=True)]
    low, _, high = statistics.quantiles(ratios, n=4)
    print(f"  B/A in all: median {statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
