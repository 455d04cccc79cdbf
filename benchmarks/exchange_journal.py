"""Cost of the exchange's journal (rltrader.exchange.journal): batches and orders
appended per second with an fsync per batch (the server's default) and with none, and
what recovery replays per second.

    python benchmarks/exchange_journal.py [--seconds 1.0] [--dir DIR]

``append``: ``Journal.append`` alone, of batches made in advance: empty background steps
(never fsync-ed on their own, see the policy), and batches of 1 and 10 new-order requests
(each fsync-ed under ``"batch"``). ``exchange``: ``Exchange.run_batch`` of the
``resilient`` preset with two accounts, one background step and ``k`` limit orders per
batch, without a journal and with each policy: what journaling adds to a batch.
``replay``: a journal of background steps and order batches read back and replayed
(recovery's speed). ``--dir`` puts the journals on another file system (the default is a
temporary directory; fsync's cost is the disk's).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rltrader.exchange import journal as jr
from rltrader.exchange.accounts import Account
from rltrader.exchange.engine import Exchange, Request
from rltrader.sim.config import preset

SYMBOL = "XYZUSDT"


def _order(k: int) -> dict[str, str]:
    return {"symbol": SYMBOL, "side": "BUY" if k % 2 else "SELL", "type": "LIMIT",
            "timeInForce": "GTC",
            "price": f"99.{80 + k % 7}" if k % 2 else f"100.{14 + k % 7}",
            "quantity": "1", "newClientOrderId": f"b{k}"}


def _accounts() -> list[Account]:
    return [Account(name, f"{name}-key", f"{name}-secret",
                    balances={"USDT": 10**15, "XYZ": 10**12}) for name in ("alice", "bob")]


def _timed(seconds: float, one) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(64):
            one(n)
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n, elapsed


def bench_append(root: Path, seconds: float) -> None:
    print("append (Journal.append alone)")
    print(f"  {'batch':<22}{'fsync':<7}{'batches/s':>12}{'orders/s':>12}{'bytes/batch':>13}")
    for label, k in (("empty step", 0), ("1 order", 1), ("10 orders", 10)):
        for policy in ("batch", "none"):
            directory = Path(tempfile.mkdtemp(dir=root))
            journal = jr.create(directory, {}, fsync=policy)
            requests = [("new", "alice", _order(j)) for j in range(k)]

            def one(n: int, journal=journal, requests=requests, k=k) -> None:
                journal.append({"ts": n * 5_000_000, "step": k == 0, "requests": requests})

            n, elapsed = _timed(seconds, one)
            journal.close()
            size = sum(p.stat().st_size for p in jr.segments(directory))
            print(f"  {label:<22}{policy:<7}{n / elapsed:>12,.0f}{n * k / elapsed:>12,.0f}"
                  f"{size / n:>13.1f}")
            shutil.rmtree(directory)


def bench_exchange(root: Path, seconds: float) -> None:
    print("exchange (run_batch: one background step + k limit orders of two accounts)")
    print(f"  {'k':<4}{'journal':<9}{'batches/s':>12}{'orders/s':>12}{'us/batch':>11}")
    for k in (1, 10):
        for policy in (None, "batch", "none"):
            ex = Exchange(preset("resilient"), _accounts(), seed=0)
            directory = Path(tempfile.mkdtemp(dir=root))
            if policy is not None:
                jr.open_journal(ex, directory, fsync=policy)

            def one(n: int, ex=ex, k=k) -> None:
                requests = [Request("new", ex.accounts[j % 2], _order(n * k + j))
                            for j in range(k)]
                ex.run_batch(requests, step=True, ts=n * 5_000_000)

            n, elapsed = _timed(seconds, one)
            if ex.journal is not None:
                ex.journal.close()
            print(f"  {k:<4}{policy or '-':<9}{n / elapsed:>12,.0f}{n * k / elapsed:>12,.0f}"
                  f"{elapsed / n * 1e6:>11.1f}")
            shutil.rmtree(directory)


def bench_replay(root: Path) -> None:
    directory = Path(tempfile.mkdtemp(dir=root))
    ex = Exchange(preset("resilient"), _accounts(), seed=0)
    jr.open_journal(ex, directory, fsync="none")
    for n in range(20_000):               # one batch of 2 orders every 10 steps
        requests = ([Request("new", ex.accounts[j], _order(n + j)) for j in range(2)]
                    if n % 10 == 0 else [])
        ex.run_batch(requests, step=True, ts=n * 5_000_000)
    ex.journal.close()
    start = time.perf_counter()
    batches = jr.read_batches(directory)
    read = time.perf_counter() - start
    start = time.perf_counter()
    again = jr.recover(directory, _accounts(), fsync="none")
    total = time.perf_counter() - start
    again.journal.close()
    size = sum(p.stat().st_size for p in jr.segments(directory))
    print(f"replay: {len(batches):,} batches ({size / 1e6:.2f} MB), read {len(batches) / read:,.0f}"
          f" batches/s, recover (read + replay) {len(batches) / total:,.0f} batches/s")
    shutil.rmtree(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--dir", default=None, help="where the journals go")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="rltrader-journal-bench-"))
    try:
        bench_append(root, args.seconds)
        bench_exchange(root, args.seconds)
        bench_replay(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
