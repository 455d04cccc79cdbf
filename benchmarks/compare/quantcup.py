"""rltrader's matching core against the QuantCup 1 winner ("voyager") on the contest feed.

Usage (see ``benchmarks/compare/README.md``)::

    git clone -b winning-c-engine https://github.com/ajtulloch/quantcup-orderbook /tmp/qc
    python benchmarks/compare/quantcup.py --source /tmp/qc --json quantcup.json

``--source`` is a checkout of ajtulloch/quantcup-orderbook, branch ``winning-c-engine``:
the winner's ``engine.cpp`` (plain C), the contest's ``engine.h``, ``limits.h``,
``types.h`` and its feed ``score_feed.h`` (35,759 limit orders and cancels). Neither the
engine nor the feed is copied into this project (the repository states no licence); both
are read from that path on every run.

Voyager is compiled with the system C compiler into a temporary shared library together
with a small driver (below) that replays the whole feed after ``init()`` and times the
replay with ``clock_gettime`` inside C. rltrader replays the same feed through
``Books.process`` in batches (``--batch``), as LIMIT GTC orders with voyager's order ids
(1, 2, ... per limit, as the contest assigns them) and the feed's traders as owners
(accounts are kept), cancels as CANCEL with no owner (a cancel of an order that has
traded away is REJECTED ``UNKNOWN_ORDER``; voyager ignores it). Each repeat times both
engines on a fresh book, alternating which goes first, after one warm-up repeat; the
report gives per-engine medians (ns per message) and the median of the per-repeat ratios.
Both engines must trade the same volume, or the run fails.

What each side does per message is not the same; read the numbers with it:

- voyager: a price-point array indexed by price, orders in a bump-allocated arena indexed
  by order id; a cancel sets the size to 0 and leaves the entry in its list; trades at the
  incoming order's price; no validation, one ``execution()`` callback per side of a fill.
- rltrader: validation of every field, price-time matching at the resting price, an order
  arena with a free list and an id hash table (any int64 ids), per-owner accounts, and at
  least one 80-byte event record per message written into a caller-owned buffer.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parents[1]))  # an installed rltrader wins; else this checkout

FEED_FILES = ("engine.cpp", "engine.h", "limits.h", "types.h", "score_feed.h")

# The driver: replays the contest feed (its own array, from score_feed.h) the way the
# contest's score.cpp does, but over the whole feed in one timed region.
DRIVER = r"""
#include <time.h>
#include "limits.h"
#include "types.h"
#include "engine.h"
#include "score_feed.h"

static long long traded, fills;

void execution(t_execution exec) {
    if (exec.side == 0) { traded += (long long)exec.size; fills += 1; }
}

long long qc_feed_length(void) { return (long long)(sizeof(raw_feed) / sizeof(t_order)); }

/* One replay on a fresh book; returns the nanoseconds of the replay alone. */
long long qc_replay(long long *volume, long long *n_fills) {
    struct timespec a, b;
    long long i, n = qc_feed_length();
    init();
    traded = 0; fills = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        if (raw_feed[i].price == 0) cancel(raw_feed[i].size);
        else limit(raw_feed[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    destroy();
    *volume = traded; *n_fills = fills;
    return (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}
"""

_ROW = re.compile(r'\{\s*"(\w*)"\s*,\s*"(\w*)"\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\}')


def check_source(source: Path) -> None:
    missing = [f for f in FEED_FILES if not (source / f).is_file()]
    if missing:
        raise SystemExit(
            f"--source {source} lacks {', '.join(missing)}: pass a checkout of "
            "ajtulloch/quantcup-orderbook on branch winning-c-engine")


def parse_feed(path: Path) -> dict[str, np.ndarray]:
    """The contest feed as arrays: trader, side (0 buy, 1 sell), price (0: a cancel of
    order ``size``), size."""
    text = path.read_text()
    body = text[text.index("raw_feed"):]
    rows = _ROW.findall(body)
    if not rows:
        raise SystemExit(f"{path}: no feed rows found")
    return {
        "trader": np.array([r[1] for r in rows]),
        "side": np.array([int(r[2]) for r in rows], dtype=np.int64),
        "price": np.array([int(r[3]) for r in rows], dtype=np.int64),
        "size": np.array([int(r[4]) for r in rows], dtype=np.int64),
    }


def feed_messages(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """The feed as rltrader messages: limits get the contest's ids (1, 2, ... in feed
    order), cancels name them; owners are the traders (in sorted order)."""
    from rltrader.core.constants import BUY, CANCEL, GTC, LIMIT, NO_OWNER, SELL
    from rltrader.core.messages import MESSAGE_DTYPE

    n = feed["price"].shape[0]
    is_limit = feed["price"] != 0
    traders, owner = np.unique(feed["trader"], return_inverse=True)
    msgs = np.zeros(n, dtype=MESSAGE_DTYPE)
    msgs["timestamp"] = np.arange(n)
    msgs["book"] = 0
    msgs["op"] = np.where(is_limit, LIMIT, CANCEL)
    msgs["tif"] = GTC
    msgs["order_id"] = np.where(is_limit, np.cumsum(is_limit), feed["size"])
    msgs["price"] = np.where(is_limit, feed["price"], 0)
    msgs["qty"] = np.where(is_limit, feed["size"], 0)
    msgs["side"] = np.where(is_limit, np.where(feed["side"] == 0, BUY, SELL), 0)
    msgs["owner"] = np.where(is_limit, owner, NO_OWNER)
    msgs.flags.writeable = False
    return msgs, len(traders)


def build_voyager(source: Path, workdir: Path, cc: str, cflags: list[str]) -> ctypes.CDLL:
    """Compile voyager's engine and the driver into ``workdir/voyager.so``."""
    driver = workdir / "driver.c"
    driver.write_text(DRIVER)
    lib = workdir / "voyager.so"
    objects = []
    for name, src in (("engine", source / "engine.cpp"), ("driver", driver)):
        obj = workdir / f"{name}.o"
        cmd = [cc, *cflags, "-fPIC", "-x", "c", "-I", str(source), "-c", str(src),
               "-o", str(obj)]
        subprocess.run(cmd, check=True)
        objects.append(str(obj))
    subprocess.run([cc, "-shared", "-o", str(lib), *objects], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.qc_replay.restype = ctypes.c_longlong
    dll.qc_replay.argtypes = [ctypes.POINTER(ctypes.c_longlong)] * 2
    dll.qc_feed_length.restype = ctypes.c_longlong
    return dll


def compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return out.stdout.splitlines()[0] if out.stdout else "?"


class Rltrader:
    """rltrader ``Books.process`` over the feed in batches, on a fresh book per run."""

    def __init__(self, msgs: np.ndarray, n_owners: int, batch: int, window: int,
                 capacity: int) -> None:
        from rltrader import Books
        from rltrader.core.messages import EVENT_DTYPE

        self.books_type = Books
        self.n_owners = n_owners
        self.window = window
        self.batches = [msgs[i:i + batch] for i in range(0, msgs.shape[0], batch)]
        self.events = np.zeros(8 * batch + 1024, dtype=EVENT_DTYPE)
        self.capacity = capacity
        self.books = None

    def fresh(self) -> None:
        self.books = self.books_type(1, window=self.window, capacity=self.capacity,
                                     n_owners=self.n_owners)

    def run(self) -> float:
        books, events = self.books, self.events
        process = books.process
        start = time.perf_counter_ns()
        for batch in self.batches:
            done, _ = process(batch, events)
            while done < batch.shape[0]:  # the buffer filled: carry on (never here)
                more, _ = process(batch[done:], events)
                done += more
        return time.perf_counter_ns() - start

    def volume(self) -> int:
        return int(self.books.volume(0))

    def fills(self) -> int:
        return int(self.books.trade_count(0))


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "platform": platform.platform(), "numpy": np.__version__}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def compare(source: Path, repeats: int, batch: int, window: int, capacity: int, cc: str,
            cflags: list[str]) -> dict[str, Any]:
    check_source(source)
    feed = parse_feed(source / "score_feed.h")
    msgs, n_owners = feed_messages(feed)
    n = msgs.shape[0]
    ours = Rltrader(msgs, n_owners, batch, window, capacity)
    workdir = Path(tempfile.mkdtemp(prefix="quantcup-"))
    try:
        dll = build_voyager(source, workdir, cc, cflags)
        if dll.qc_feed_length() != n:
            raise SystemExit(f"the driver sees {dll.qc_feed_length()} feed rows, the parser "
                             f"{n}")
        volume, fills = ctypes.c_longlong(), ctypes.c_longlong()
        voyager_ns: list[float] = []
        ours_ns: list[float] = []
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for r in range(repeats + 1):  # repeat 0 warms up and is not counted
                order = (0, 1) if r % 2 else (1, 0)
                times = {}
                for who in order:  # each engine's book is built just before its replay
                    if who == 0:
                        times[0] = dll.qc_replay(ctypes.byref(volume), ctypes.byref(fills))
                    else:
                        ours.fresh()
                        times[1] = ours.run()
                if volume.value != ours.volume():
                    raise SystemExit(f"traded volume differs: voyager {volume.value}, "
                                     f"rltrader {ours.volume()}")
                if r:
                    voyager_ns.append(times[0] / n)
                    ours_ns.append(times[1] / n)
        finally:
            if gc_was:
                gc.enable()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    import rltrader

    ratios = [o / v for o, v in zip(ours_ns, voyager_ns, strict=True)]
    return {
        "machine": machine(),
        "feed": {"messages": int(n), "limits": int((feed["price"] != 0).sum()),
                 "cancels": int((feed["price"] == 0).sum()), "source": str(source)},
        "traded_volume": volume.value, "fills_voyager": fills.value,
        "fills_rltrader": ours.fills(),
        "repeats": repeats,
        "voyager": {"compiler": compiler_version(cc), "cflags": " ".join(cflags),
                    "median_ns_per_message": round(statistics.median(voyager_ns), 2),
                    "min_ns_per_message": round(min(voyager_ns), 2)},
        "rltrader": {"version": rltrader.__version__, "path": f"Books.process, batch {batch}",
                     "window": window, "capacity": capacity,
                     "median_ns_per_message": round(statistics.median(ours_ns), 2),
                     "min_ns_per_message": round(min(ours_ns), 2)},
        "ratio_of_medians": round(statistics.median(ours_ns) / statistics.median(voyager_ns),
                                  3),
        "median_ratio": round(statistics.median(ratios), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=os.environ.get("QUANTCUP_SOURCE"),
                        help="checkout of ajtulloch/quantcup-orderbook, branch "
                             "winning-c-engine (or $QUANTCUP_SOURCE)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--batch", type=int, default=4096, help="messages per process call")
    parser.add_argument("--window", type=int, default=4096, help="rltrader's dense window")
    parser.add_argument("--capacity", type=int, default=1024,
                        help="rltrader's initial order slots (the feed has at most 674 live "
                             "orders: 1,024 never grows)")
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"))
    parser.add_argument("--cflags", default="-O3", help="voyager's compiler flags")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    if not args.source:
        parser.error("pass --source (a checkout of quantcup-orderbook, winning-c-engine)")
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1")
    report = compare(Path(args.source), args.repeats, args.batch, args.window, args.capacity,
                     args.cc,
                     args.cflags.split())
    m = report["machine"]
    print(f"machine: {m.get('cpu', '?')}, {m['cpus']} cpus; Python {m['python']}, "
          f"numpy {m['numpy']}; {report['voyager']['compiler']} {report['voyager']['cflags']}")
    print(f"QuantCup feed: {report['feed']['messages']:,} messages "
          f"({report['feed']['limits']:,} limits, {report['feed']['cancels']:,} cancels); "
          f"traded volume {report['traded_volume']:,} in both; {args.repeats} repeats")
    for name in ("voyager", "rltrader"):
        r = report[name]
        print(f"  {name:9s} median {r['median_ns_per_message']:7.2f} ns/msg   "
              f"min {r['min_ns_per_message']:7.2f}")
    print(f"  rltrader / voyager: {report['ratio_of_medians']:.2f}x (ratio of medians), "
          f"{report['median_ratio']:.2f}x (median of per-repeat ratios)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
