"""Core instructions per message by callgrind: deterministic, so two checkouts compare on a
shared VM where their times do not (``benchmarks/core_pair.py`` pairs the times).

    python benchmarks/core_callgrind.py CHECKOUT [CHECKOUT ...] [--quantcup-source /tmp/qc]
                                       [--stream QuantCup] [--stream W3] [--repeats 10]

Each checkout (its compiled modules built in place) replays a stream under
``valgrind --tool=callgrind`` twice, once and ``1 + --repeats`` times, each replay on a fresh
``Books`` as the timing harnesses build it; the difference of the two runs' instructions in
``_book.c`` (by function, inlined code counted where it was inlined), over ``--repeats``
times the stream's messages, is what one message costs, without the import and set-up.
Prints each checkout's total and its largest functions.

Streams: ``QuantCup`` is the contest feed as ``benchmarks/compare/quantcup.py`` sends it
(batches of 4,096, window 4,096, 1,024 slots; the look-ahead is off), read from
``--quantcup-source``; ``W3`` is ``workloads.lobster_aapl()`` as ``core_pair.py`` replays
it (one book, window 4,096, 65,536 slots); ``W3x512`` is W3 interleaved over 512 books,
390 messages each, as ``core_pair.py`` replays it by default (``Books(512, window=4096,
capacity=65536)``; give it ``--repeats 2``: 200,000 messages a replay). Needs valgrind
(``callgrind_annotate``).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import rltrader
from rltrader import Books
from rltrader.core.messages import EVENT_DTYPE

assert rltrader.__file__.startswith(sys.argv[1]), rltrader.__file__
stream, repeats, source = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if stream == "QuantCup":
    sys.path.insert(0, sys.argv[5])
    import quantcup
    from pathlib import Path
    msgs, owners = quantcup.feed_messages(quantcup.parse_feed(Path(source) / "score_feed.h"))
    kwargs, batch = {"capacity": 1024, "n_owners": owners}, 4096
elif stream == "W3":
    from rltrader.tools import workloads
    from rltrader.tools.bench import BATCH
    msgs, kwargs, batch = workloads.lobster_aapl(), {"capacity": 65536}, BATCH
else:
    from rltrader.tools import workloads
    from rltrader.tools.bench import BATCH
    msgs = workloads.interleave(workloads.lobster_aapl(), 512, per_book=390)
    kwargs, batch = {"capacity": 65536}, BATCH
events = np.empty(8 * batch + 1024, dtype=EVENT_DTYPE)
print(len(msgs))
for _ in range(repeats):
    books = Books(512 if stream == "W3x512" else 1, window=4096, **kwargs)
    for i in range(0, len(msgs), batch):
        done, _ = books.process(msgs[i:i + batch], events)
        if done != len(msgs[i:i + batch]):
            raise RuntimeError("event buffer too small")
"""

_LINE = re.compile(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+):(\S+)")


def _functions(path: Path) -> collections.Counter[str]:
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)],
                         capture_output=True, text=True, check=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        m = _LINE.match(line)
        if m and m.group(2).endswith("_book.c"):
            counts[m.group(3)] += int(m.group(1).replace(",", ""))
    return counts


def per_message(checkout: str, stream: str, repeats: int,
                source: str) -> tuple[int, dict[str, float]]:
    here = str(Path(__file__).resolve().parent / "compare")
    with tempfile.TemporaryDirectory(prefix="core-callgrind-") as tmp:
        child = Path(tmp) / "child.py"
        child.write_text(textwrap.dedent(_CHILD))
        runs = []
        for n in (1, 1 + repeats):
            out = Path(tmp) / f"callgrind.{n}"
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                 str(child), checkout, stream, str(n), source, here],
                capture_output=True, text=True, check=True)
            n_msgs = int(proc.stdout.split()[0])
            runs.append(_functions(out))
    once, many = runs
    scale = repeats * n_msgs
    return n_msgs, {name: (many[name] - once[name]) / scale for name in many}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--stream", action="append", choices=("QuantCup", "W3", "W3x512"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quantcup-source", default="")
    parser.add_argument("--top", type=int, default=6, help="functions listed per checkout")
    args = parser.parse_args(argv)
    streams = args.stream or (["QuantCup", "W3"] if args.quantcup_source else ["W3"])
    if "QuantCup" in streams and not args.quantcup_source:
        parser.error("--stream QuantCup needs --quantcup-source")
    for stream in streams:
        for checkout in args.checkouts:
            n_msgs, counts = per_message(str(Path(checkout).resolve()), stream, args.repeats,
                                         args.quantcup_source)
            print(f"{stream} ({n_msgs:,} messages) {checkout}: "
                  f"{sum(counts.values()):.1f} core instructions per message")
            for name, value in sorted(counts.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"    {value:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
