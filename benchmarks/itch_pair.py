"""Paired A/B runs of ITCH 5.0 parse + rebuild from two checkouts: W1 and W3 written as
ITCH, ``rebuild_books`` with one thread and with two, and parse only.

    python benchmarks/itch_pair.py A_DIR B_DIR [--pairs 21]

The files are written once, by this checkout's ``itch.write_itch`` (W1: 131,072
limit/cancel messages, W3: LOBSTER AAPL, 89,712 messages; as ``benchmarks/test_bench_itch.py``
writes them). Each checkout (its compiled modules built in place) runs each of the three modes in a
process of its own (what one mode leaves in the allocator moved another's figures by 20%);
then, pair after pair, the two processes of a mode run each workload in turn, alternating
which goes first, so that both see the same machine state. A case is what the benchmark times: a new
``ItchReader(path, reuse_buffers=True)`` and ``rebuild_books(reader, n_books=1,
events=EVENTS, threads=T)`` (the events buffer allocated once), or iterating a new reader's
chunks (parse only).

Each run reports wall time and CPU time: the thread's for one thread, the process's (both
threads) for two, and then also the caller's thread alone (the books' side: what the wall
time would be with the parse thread on a free core). On a VM shared with other jobs wall
time also counts the time a thread waits for a core (it moves a 5 ms run by 2x); one
thread's CPU time does not (cache and core sharing still move it). Prints each checkout's
medians (ns per message and M messages/s) and the median of the per-pair ratios B/A with
its interquartile range.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _pairing import alternate, stop

_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import rltrader
from rltrader.core.messages import EVENT_DTYPE
from rltrader.data import itch

assert rltrader.__file__.startswith(sys.argv[1]), rltrader.__file__
mode = sys.argv[2]
files = dict(arg.split("=", 1) for arg in sys.argv[3:])
events = np.empty(itch.REBUILD_EVENTS, EVENT_DTYPE)
print("ready", flush=True)
for line in sys.stdin:
    path = files[line.strip()]
    wall, thread, process = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
    if mode == "parse":
        n = sum(chunk.messages.shape[0] for chunk in itch.ItchReader(path, reuse_buffers=True))
    else:
        _, stats = itch.rebuild_books(itch.ItchReader(path, reuse_buffers=True), n_books=1,
                                      events=events, threads=int(mode[-1]))
        n = stats.messages
    wall = time.perf_counter_ns() - wall
    thread = time.thread_time_ns() - thread
    cpu = time.process_time_ns() - process if mode == "threads=2" else thread
    print(wall / n, cpu / n, thread / n, flush=True)
"""

MODES = ("threads=1", "threads=2", "parse")
CASES = [(name, mode) for name in ("W1", "W3") for mode in MODES]


def pair(a_dir: str, b_dir: str, pairs: int, files: dict[str, Path]) -> None:
    child = textwrap.dedent(_CHILD)
    procs = {(mode, j): subprocess.Popen([sys.executable, "-c", child, str(Path(d).resolve()),
                                          mode, *(f"{k}={v}" for k, v in files.items())],
                                         cwd=d, text=True, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
             for mode in MODES for j, d in enumerate((a_dir, b_dir))}
    try:
        for p in procs.values():
            if p.stdout is None or p.stdout.readline().strip() != "ready":
                raise RuntimeError("a checkout's run did not start")
        answers = alternate(CASES, pairs, lambda case, j: (procs[case[1], j], case[0]),
                            (a_dir, b_dir))
    finally:
        stop(procs.values())
    times = {case: tuple([tuple(map(float, x.split())) for x in side] for side in sides)
             for case, sides in answers.items()}
    print(f"A = {a_dir}, B = {b_dir}; {pairs} pairs; ns per message (M messages/s); "
          f"CPU: the thread's (threads=1, parse), the process's (threads=2)")
    for (name, mode), (a, b) in times.items():
        row = f"  {name} {mode:9s}"
        for what, i in (("wall", 0), ("CPU", 1)) + ((("books' thread", 2),)
                                                    if mode == "threads=2" else ()):
            ma, mb = (statistics.median(x[i] for x in runs) for runs in (a, b))
            ratios = [y[i] / x[i] for x, y in zip(a, b, strict=True)]
            low, _, high = statistics.quantiles(ratios, n=4)
            row += (f" | {what} A {ma:6.1f} ({1e3 / ma:4.1f} M/s) B {mb:6.1f} ({1e3 / mb:4.1f}"
                    f" M/s) B/A {statistics.median(ratios):.3f} ({low:.3f}-{high:.3f})")
        print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_dir")
    parser.add_argument("b_dir")
    parser.add_argument("--pairs", type=int, default=21)
    args = parser.parse_args(argv)
    if args.pairs < 2:
        parser.error("--pairs must be >= 2")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rltrader.data import itch
    from rltrader.tools.bench import machine
    from rltrader.tools.workloads import published

    print("machine:", machine())
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for name in ("W1", "W3"):
            files[name] = Path(folder) / f"{name}.itch50"
            itch.write_itch(files[name], published(name)[0], ["SYNTH"])
        pair(args.a_dir, args.b_dir, args.pairs, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
