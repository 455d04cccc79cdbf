"""What a simulated market day leaves behind, as plain numpy arrays.

:class:`Recording` holds

- ``samples``: the top of every book on a clock (every ``sample_every`` steps):
  ``t_ns`` (ns after midnight, shape ``(n,)``) and, shape ``(n, n_books)``, ``bid`` and
  ``ask`` (ticks, 0 when that side is empty), ``bid_qty``/``ask_qty`` (lots at the best
  level), ``last_price`` (ticks, 0 before the first trade) and ``volume`` (lots traded
  since the open);
- ``messages`` / ``events``: every message (``MESSAGE_DTYPE``) and event (``EVENT_DTYPE``) in
  processing order when the market was built with ``record.messages``; an event's
  ``message_index`` is the row of its message;
- ``parents``: one ``PARENT_DTYPE`` record per (book, parent order).

Derived series for analytics (:meth:`Recording.mid`, :meth:`Recording.spread`,
:meth:`Recording.depth`, :meth:`Recording.trades`) are float64 in ticks; multiply by
``tick_size`` for dollars. :meth:`Recording.save_npz` / :func:`load_npz` round-trip all of
it; :meth:`Recording.to_lobster` writes one book's messages as a LOBSTER message file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rltrader.constants import (
    ACCEPTED,
    CANCELLED,
    FILL,
    GTC,
    LIMIT,
    POST_ONLY,
    REDUCED,
    Reason,
)
from rltrader.messages import EVENT_DTYPE, MESSAGE_DTYPE

#: One parent order of an execution agent in one book.
PARENT_DTYPE = np.dtype(
    [
        ("book", np.int32),
        ("parent", np.int32),       # index in MarketConfig.parents
        ("side", np.int8),          # +1 buy, -1 sell
        ("qty", np.int64),          # parent size, lots
        ("executed", np.int64),     # lots filled
        ("arrival_mid", np.float64),  # mid at the start, ticks (nan: not started)
        ("end_mid", np.float64),    # mid at the end, ticks (nan: not ended)
        ("vwap", np.float64),       # fill VWAP incl. fees, ticks (nan: nothing filled)
        ("start_ns", np.int64),     # ns after midnight
        ("end_ns", np.int64),
    ]
)

SAMPLE_FIELDS = ("bid", "ask", "bid_qty", "ask_qty", "last_price", "volume")


@dataclass
class Samples:
    """Top of book of every book on a clock; see the module docstring for units."""

    t_ns: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    last_price: np.ndarray
    volume: np.ndarray


class Sampler:
    """Preallocated storage for ``capacity`` samples of ``n_books`` books."""

    def __init__(self, n_books: int, capacity: int) -> None:
        self.n = 0
        self.t_ns = np.zeros(capacity, dtype=np.int64)
        self.data = {name: np.zeros((capacity, n_books), dtype=np.int64)
                     for name in SAMPLE_FIELDS}
        self._prices = np.zeros((n_books, 2, 1), dtype=np.int64)
        self._qtys = np.zeros((n_books, 2, 1), dtype=np.int64)
        self._counts = np.zeros((n_books, 2, 1), dtype=np.int32)

    def sample(self, books, t_ns: int) -> None:
        """Append the current top of book (once per ``t_ns``)."""
        if self.n and self.t_ns[self.n - 1] == t_ns:
            return
        if self.n == self.t_ns.shape[0]:
            raise IndexError(f"the sampler holds {self.n} samples and is full")
        books.top_levels(1, self._prices, self._qtys, self._counts)
        i = self.n
        self.t_ns[i] = t_ns
        self.data["bid"][i] = self._prices[:, 0, 0]
        self.data["ask"][i] = self._prices[:, 1, 0]
        self.data["bid_qty"][i] = self._qtys[:, 0, 0]
        self.data["ask_qty"][i] = self._qtys[:, 1, 0]
        self.data["last_price"][i] = books.book_array["last_price"]
        self.data["volume"][i] = books.book_array["volume"]
        self.n += 1

    def samples(self) -> Samples:
        n = self.n
        return Samples(self.t_ns[:n].copy(), **{k: v[:n].copy() for k, v in self.data.items()})


@dataclass
class Recording:
    """A market day's record (see the module docstring)."""

    tick_size: float
    symbols: tuple[str, ...]
    copies: int
    samples: Samples | None
    messages: np.ndarray
    events: np.ndarray
    parents: np.ndarray

    def _need_samples(self) -> Samples:
        if self.samples is None:
            raise ValueError("no samples: build the market with record.sample_every > 0")
        return self.samples

    def mid(self) -> np.ndarray:
        """Mid price in ticks, float64 ``(samples, books)``; nan when a side is empty."""
        s = self._need_samples()
        both = (s.bid > 0) & (s.ask > 0)
        return np.where(both, 0.5 * (s.bid + s.ask), np.nan)

    def spread(self) -> np.ndarray:
        """Best ask minus best bid in ticks, float64 ``(samples, books)``; nan when a side
        is empty."""
        s = self._need_samples()
        return np.where((s.bid > 0) & (s.ask > 0), (s.ask - s.bid).astype(np.float64), np.nan)

    def depth(self) -> np.ndarray:
        """Lots at the best bid plus the best ask, float64 ``(samples, books)``."""
        s = self._need_samples()
        return (s.bid_qty + s.ask_qty).astype(np.float64)

    def trades(self, book: int) -> dict[str, np.ndarray]:
        """Fills of ``book`` in order: ``t_ns``, ``price`` (ticks), ``qty`` (lots) and
        ``sign`` (+1 when the taker bought, -1 when it sold)."""
        fills = self.events[(self.events["kind"] == FILL) & (self.events["book"] == book)]
        return {"t_ns": fills["timestamp"].copy(), "price": fills["price"].copy(),
                "qty": fills["qty"].copy(), "sign": fills["side"].astype(np.int8)}

    def save_npz(self, path: str | Path) -> None:
        """Write everything to one compressed ``.npz``."""
        arrays = {"tick_size": np.float64(self.tick_size), "symbols": np.array(self.symbols),
                  "copies": np.int64(self.copies), "messages": self.messages,
                  "events": self.events, "parents": self.parents}
        if self.samples is not None:
            arrays["t_ns"] = self.samples.t_ns
            arrays.update({name: getattr(self.samples, name) for name in SAMPLE_FIELDS})
        np.savez_compressed(path, **arrays)

    def to_lobster(self, book: int, path: str | Path) -> int:
        """Write ``book``'s visible order flow as a LOBSTER message file; returns rows.

        Columns: time (s after midnight), type (1 new order resting, 2 partial cancel,
        3 deletion, 4 execution of a resting order), order id, size (lots), price
        ($ x 10000, from ``tick_size``) and direction (the resting order's side). A
        marketable limit order shows as its executions, then a type 1 row for the part
        that rests. Needs the message log (``record.messages``).
        """
        rows = lobster_rows(self.messages, self.events, book)
        scale = self.tick_size * 10_000
        with open(path, "w") as f:
            for t_ns, kind, order_id, qty, price, side in rows:
                f.write(f"{t_ns // 1_000_000_000}.{t_ns % 1_000_000_000:09d},{kind},"
                        f"{order_id},{qty},{round(price * scale)},{side}\n")
        return len(rows)


def lobster_rows(messages: np.ndarray, events: np.ndarray,
                 book: int) -> list[tuple[int, int, int, int, int, int]]:
    """``(t_ns, type, order_id, qty, price_ticks, direction)`` LOBSTER rows of one book."""
    rows: list[tuple[int, int, int, int, int, int]] = []
    resting: set[int] = set()
    entering: dict[int, list[int]] = {}    # order id -> [t_ns, leaves, price, side]

    def flush() -> None:
        for order_id, (t_ns, leaves, price, side) in entering.items():
            if leaves > 0:
                rows.append((t_ns, 1, order_id, leaves, price, side))
                resting.add(order_id)
        entering.clear()

    deletions = (Reason.CANCEL_REQUESTED, Reason.REPLACED, Reason.SELF_TRADE)
    current = -1
    for e in events[events["book"] == book]:
        if e["message_index"] != current:
            flush()
            current = e["message_index"]
        kind, order_id = int(e["kind"]), int(e["order_id"])
        t_ns, price, qty = int(e["timestamp"]), int(e["price"]), int(e["qty"])
        if kind == ACCEPTED:
            m = messages[current]
            if m["op"] == LIMIT and m["tif"] in (GTC, POST_ONLY):
                entering[order_id] = [t_ns, qty, price, int(e["side"])]
        elif kind == FILL:
            maker = int(e["maker_order_id"])
            rows.append((t_ns, 4, maker, qty, price, -int(e["side"])))
            if int(e["maker_leaves_qty"]) == 0:
                resting.discard(maker)
            if order_id in entering:
                entering[order_id][1] = int(e["leaves_qty"])
        elif kind == CANCELLED:
            entering.pop(order_id, None)
            if e["reason"] in deletions and order_id in resting:
                rows.append((t_ns, 3, order_id, qty, price, int(e["side"])))
                resting.discard(order_id)
        elif kind == REDUCED and order_id in resting:
            rows.append((t_ns, 2, order_id, qty, price, int(e["side"])))
    flush()
    return rows


def load_npz(path: str | Path) -> Recording:
    """Read a :meth:`Recording.save_npz` file."""
    with np.load(path) as f:
        samples = None
        if "t_ns" in f:
            samples = Samples(f["t_ns"], **{name: f[name] for name in SAMPLE_FIELDS})
        messages, events = f["messages"], f["events"]
        if messages.dtype != MESSAGE_DTYPE or events.dtype != EVENT_DTYPE:
            raise ValueError(f"{path}: messages/events do not have rltrader's dtypes")
        return Recording(tick_size=float(f["tick_size"]), symbols=tuple(f["symbols"].tolist()),
                         copies=int(f["copies"]), samples=samples, messages=messages,
                         events=events, parents=f["parents"])
