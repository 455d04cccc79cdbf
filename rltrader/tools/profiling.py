"""``rltrader profile``: where matching time goes, per operation type and outcome.

Each message runs under the CPU's cycle counter (``Books.profile``); the cost of reading the
counter is measured and subtracted, so the figures are the kernel's own time per message.
"""

from __future__ import annotations

import numpy as np

from rltrader._book import Books, ticks_per_second, timer_overhead_ticks
from rltrader.core.constants import Op
from rltrader.tools import workloads

OUTCOMES = ("no trade", "traded", "rejected")


def profile_messages(messages: np.ndarray, n_books: int = 1) -> list[dict]:
    """Per (op, outcome) rows: count, ns/message and share of the total time."""
    books = Books(n_books, capacity=1 << 16)
    ticks, counts = books.profile(messages)
    rate = ticks_per_second()
    overhead = timer_overhead_ticks()
    net = np.maximum(ticks - overhead * counts, 0)
    total = net.sum()
    rows = []
    for op in range(ticks.shape[0]):
        for outcome, label in enumerate(OUTCOMES):
            n = int(counts[op, outcome])
            if n == 0:
                continue
            rows.append({
                "op": Op(op).name if op else "unknown",
                "outcome": label,
                "count": n,
                "ns_per_message": float(net[op, outcome] / n / rate * 1e9),
                "share_of_time": float(net[op, outcome] / total) if total else 0.0,
            })
    return rows


def workloads_to_profile(name: str, quick: bool) -> list[tuple[str, np.ndarray, int]]:
    n = 100_000 if quick else 1_000_000
    table = {
        "W1": lambda: ("W1 limit+cancel", workloads.limit_cancel(n, seed=1), 1),
        "W2": lambda: ("W2 crossing inserts", workloads.crossing_inserts(n, seed=2), 1),
        "W3": lambda: ("W3 LOBSTER AAPL", workloads.lobster_aapl(), 1),
    }
    names = list(table) if name == "all" else [name]
    return [table[k]() for k in names]


def format_rows(title: str, rows: list[dict]) -> str:
    lines = [f"{title}", "",
             "| op | outcome | messages | ns/msg | share of time |", "|---|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["share_of_time"]):
        lines.append(f"| {r['op']} | {r['outcome']} | {r['count']:,} | "
                     f"{r['ns_per_message']:.1f} | {100 * r['share_of_time']:.1f} % |")
    total_n = sum(r["count"] for r in rows)
    mean = sum(r["ns_per_message"] * r["count"] for r in rows) / max(total_n, 1)
    lines.append(f"| all | | {total_n:,} | {mean:.1f} | 100 % |")
    return "\n".join(lines)
