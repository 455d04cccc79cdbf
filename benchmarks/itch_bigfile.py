"""Stream a ~1 GB ITCH file and show that memory is bounded by the chunk size.

    python benchmarks/itch_bigfile.py bigfile [PATH] [--gb 1] [--chunk-mb 1] [--keep]

writes ~``--gb`` GB of W1 limit/cancel flow (``rltrader.tools.workloads.limit_cancel``, 2**20
messages repeated with shifted ids and times) as one ITCH 5.0 file with
:class:`rltrader.data.itch.ItchWriter`, then streams it in two fresh processes (parse only;
parse + book rebuild), each printing messages/s (wall and CPU) and its peak resident set,
and deletes the file unless ``--keep``. ``stream PATH [--chunk-mb M] [--rebuild]`` runs one
streaming pass. Not part of the test suite (it writes a gigabyte); needs ~1 GB free in the
target folder (default ``/tmp``).
"""

from __future__ import annotations

import os
import sys
import time

from rltrader.data import itch


def _write_big_file(path: str, target_bytes: int) -> None:
    """Write ~``target_bytes`` of W1 limit/cancel flow (copies with shifted ids)."""
    from rltrader.tools.workloads import limit_cancel

    msgs = limit_cancel(1 << 20, seed=1)
    id_span = int(msgs["order_id"].max())
    time_span = int(msgs["timestamp"][-1]) + 1000
    start = time.perf_counter()
    with itch.ItchWriter(path, ["SYNTH"]) as writer:
        copy = 0
        while writer.nbytes < target_bytes:
            part = msgs.copy()
            part["order_id"] += copy * id_span
            part["timestamp"] += copy * time_span
            writer.write(part)
            copy += 1
    print(f"wrote {path}: {writer.nbytes / 1e9:.2f} GB, {writer.messages_written:,} messages "
          f"in {time.perf_counter() - start:.1f} s", flush=True)


def _peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``; unlike ``ru_maxrss`` it is not carried
    over from the parent across ``exec``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _stream(path: str, chunk_bytes: int, rebuild: bool) -> None:
    """Stream ``path`` (parse only, or parse + rebuild); print rate and this process's peak
    RSS."""
    reader = itch.ItchReader(path, chunk_bytes=chunk_bytes, reuse_buffers=True)
    start, cpu = time.perf_counter(), time.process_time()
    if rebuild:
        books, stats = itch.rebuild_books(reader, n_books=1)
        n, what = stats.messages, f"parse + rebuild ({books.live_orders():,} orders left)"
    else:
        n, what = sum(chunk.messages.shape[0] for chunk in reader), "parse only"
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = _peak_rss_mib()
    print(f"{what}: {n:,} messages in {elapsed:.2f} s = {n / elapsed / 1e6:.1f} M/s "
          f"({cpu:.2f} s CPU = {n / cpu / 1e6:.1f} M/s); "
          f"chunk_bytes={chunk_bytes:,}; peak RSS {rss:.0f} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line (see the module docstring) and run."""
    import argparse
    import subprocess

    parser = argparse.ArgumentParser(prog="python benchmarks/itch_bigfile.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bigfile", help="write a large ITCH file, stream it, report peak RSS")
    p.add_argument("path", nargs="?", default="/tmp/rltrader_big.itch50")
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--chunk-mb", type=float, default=itch.CHUNK_BYTES / (1 << 20))
    p.add_argument("--keep", action="store_true", help="keep the file afterwards")
    p = sub.add_parser("stream", help="stream one ITCH file; report messages/s and peak RSS")
    p.add_argument("path")
    p.add_argument("--chunk-mb", type=float, default=itch.CHUNK_BYTES / (1 << 20))
    p.add_argument("--rebuild", action="store_true", help="rebuild the books too")
    args = parser.parse_args(argv)
    chunk_bytes = int(args.chunk_mb * (1 << 20))
    if args.command == "stream":
        _stream(args.path, chunk_bytes, args.rebuild)
        return 0
    try:
        _write_big_file(args.path, int(args.gb * 1e9))
        for extra in ([], ["--rebuild"]):
            subprocess.run([sys.executable, __file__, "stream", args.path,
                            "--chunk-mb", str(args.chunk_mb), *extra], check=True)
    finally:
        if not args.keep and os.path.exists(args.path):
            os.remove(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
