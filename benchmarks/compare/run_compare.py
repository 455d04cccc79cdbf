"""Head-to-head: rltrader vs NautilusTrader vs hftbacktest on the same message streams.

Usage (see ``benchmarks/compare/README.md``)::

    # everything in one interpreter that has nautilus_trader and hftbacktest; rltrader is
    # taken from an installed copy or else from this checkout (built in place)
    /tmp/cmpvenv/bin/python benchmarks/compare/run_compare.py --json out.json

    # or in two steps: our numbers and the streams from the project's Python ...
    python benchmarks/compare/run_compare.py --engines rltrader \\
        --export-streams /tmp/streams.npz --json /tmp/ours.json
    # ... the others in the comparison venv, merged with ours
    /tmp/cmpvenv/bin/python benchmarks/compare/run_compare.py --engines nautilus,hftbacktest \\
        --streams /tmp/streams.npz --ours /tmp/ours.json --json out.json

Each engine gets a fresh book per repeat (built outside the timed region), one warm-up run,
then ``--repeats`` timed runs of the whole stream; the report gives the median (and the
minimum) in ns per message. After each run the best bid and ask are compared with
rltrader's, so an engine that mis-applied the stream shows up as ``agrees: false``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# an installed rltrader wins; else the checkout this file lives in (built in place)
sys.path.append(str(HERE.parents[1]))
from engines import Engine, all_engines  # noqa: E402

WORKLOADS = ("W1", "W3")


def make_streams(n_w1: int) -> dict[str, np.ndarray]:
    from rltrader.tools.workloads import SEED, limit_cancel, lobster_aapl

    return {"W1": limit_cancel(n_w1, seed=SEED), "W3": lobster_aapl()}


def load_streams(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def time_engine(engine: Engine, msgs: np.ndarray, repeats: int) -> dict[str, Any]:
    prepared = engine.prepare(msgs)
    seconds = []
    top: tuple[int | None, int | None] = (None, None)
    for r in range(repeats + 1):  # the first run warms up and is not counted
        state = engine.fresh(prepared)
        start = time.perf_counter()
        engine.run(state)
        elapsed = time.perf_counter() - start
        top = engine.top(state)
        engine.close(state)
        if r:
            seconds.append(elapsed)
    n = msgs.shape[0]
    median = statistics.median(seconds)
    return {
        "engine": engine.name,
        "version": engine.version(),
        "does": engine.does,
        "options": engine.options,
        "messages": int(n),
        "repeats": repeats,
        "median_ns_per_message": round(median * 1e9 / n, 1),
        "min_ns_per_message": round(min(seconds) * 1e9 / n, 1),
        "messages_per_second": round(n / median),
        "top": list(top),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def print_table(results: list[dict[str, Any]]) -> None:
    for workload in WORKLOADS:
        rows = [r for r in results if r["workload"] == workload]
        if not rows:
            continue
        ours = next((r for r in rows if r["engine"].startswith("rltrader Books")), None)
        print(f"\n{workload}: {rows[0]['messages']:,} messages")
        print(f"  {'engine':64s} {'ns/msg':>9s} {'min':>9s} {'Mmsg/s':>8s} {'x ours':>7s} "
              f"agrees")
        for r in rows:
            ratio = (r["median_ns_per_message"] / ours["median_ns_per_message"]
                     if ours else float("nan"))
            print(f"  {r['engine']:64s} {r['median_ns_per_message']:9.1f} "
                  f"{r['min_ns_per_message']:9.1f} {r['messages_per_second'] / 1e6:8.2f} "
                  f"{ratio:7.2f} {r.get('agrees', '-')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="rltrader,nautilus,hftbacktest",
                        help="comma list of engine families (rltrader, nautilus, hftbacktest)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-w1", type=int, default=1 << 17, help="W1 messages")
    parser.add_argument("--streams", help="npz with the streams (from --export-streams)")
    parser.add_argument("--export-streams", help="write the streams to this npz")
    parser.add_argument("--ours", help="JSON from an earlier run with rltrader results")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    families = {f.strip() for f in args.engines.split(",") if f.strip()}
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if args.streams:
        streams = load_streams(args.streams)
    else:
        try:
            streams = make_streams(args.n_w1)
        except ImportError as exc:
            parser.error(f"rltrader is not importable here ({exc}); pass --streams")
    if args.export_streams:
        np.savez(args.export_streams, **streams)

    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    if args.ours:
        previous = json.loads(Path(args.ours).read_text())
        results += [r for r in previous["results"] if r["engine"].startswith("rltrader")]
    for engine in all_engines():
        family = engine.name.split()[0]
        if family not in families:
            continue
        why = engine.available()
        if why:
            skipped.append({"engine": engine.name, "why": why})
            print(f"skip {engine.name}: {why}", file=sys.stderr)
            continue
        for workload in workloads:
            print(f"timing {engine.name} on {workload} ...", file=sys.stderr, flush=True)
            result = time_engine(engine, streams[workload], args.repeats)
            result["workload"] = workload
            results.append(result)

    for workload in workloads:
        ours = next((r for r in results if r["workload"] == workload
                     and r["engine"].startswith("rltrader Books")), None)
        for r in results:
            if r["workload"] == workload and ours is not None:
                r["agrees"] = r["top"] == ours["top"]

    print_table(results)
    report = {"machine": machine(), "workloads": {w: int(streams[w].shape[0]) for w in workloads},
              "results": results, "skipped": skipped}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r.get("agrees", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
