"""Fixed, seeded message streams for benchmarks (``benchmarks/``, ``rltrader bench``).

Every generator returns a ``MESSAGE_DTYPE`` array and is deterministic: the same arguments
give a bit-identical array (one ``numpy.random.Generator`` per call, seeded from ``seed``).
The synthetic streams quote around ``MID`` ticks; order ids are unique per book.

- **W1** :func:`limit_cancel`: ~50% GTC limits that never cross, ~50% cancels of live
  orders.
- **W2** :func:`crossing_inserts`: alternating buy/sell limits in a narrow band; ~50% GTC
  that rest, ~50% IOC that cross and fill.
- **W3** :func:`lobster_aapl`: LOBSTER AAPL 2012-06-21 09:30-10:30; 49% limit, 46% cancel,
  4.5% execute, 0.5% reduce.
- **W3x512** :func:`lobster_aapl_books`: W3 truncated to 2,048 messages, 512 copies on
  512 books, interleaved round-robin (:func:`interleave`).

:func:`op_mix` reports the actual mix of any stream; :func:`replay` is the timed loop that
both the benchmarks and the CLI run.
"""

from __future__ import annotations

import os

import numpy as np

from rltrader.core.messages import MESSAGE_DTYPE, empty_messages
from rltrader.data.samples import AAPL_HOUR, sample_path

#: Price level (ticks) around which the synthetic workloads quote.
MID = 100_000

#: Seed of the published benchmark streams (``benchmarks/``, ``rltrader bench``, the
#: head-to-head comparison): change it and every quoted number changes with it.
SEED = 20240601

#: Message counts of the published W1 / W2 streams.
N_SYNTHETIC = 1 << 17

_LIMIT, _CANCEL, _REDUCE, _EXECUTE = 1, 3, 4, 8
_GTC, _IOC = 0, 1
_OP_NAMES = {1: "LIMIT", 2: "MARKET", 3: "CANCEL", 4: "REDUCE", 5: "REPLACE", 6: "STOP",
             7: "STOP_LIMIT", 8: "EXECUTE"}
_TIF_NAMES = {0: "GTC", 1: "IOC", 2: "FOK", 3: "POST_ONLY"}



def _touch_offsets(rng: np.random.Generator, n: int, depth: int) -> np.ndarray:
    """Ticks behind the touch: geometric (mean ~3), capped at ``depth - 1``."""
    return np.minimum(rng.geometric(0.3, n) - 1, depth - 1)


def limit_cancel(
    n: int,
    n_books: int = 1,
    seed: int = 0,
    *,
    target_depth: int = 500,
    depth: int = 32,
) -> np.ndarray:
    """W1: a limit + cancel feed that never trades.

    Mix: about 50% ``LIMIT`` GTC and 50% ``CANCEL``; every cancel targets an order that is
    live at that point (the generator tracks them), so none is rejected. Bids are priced
    ``MID - 1 - k`` and asks ``MID + k`` with ``k`` geometric (mean ~2.3 ticks, at most
    ``depth - 1``), so nothing ever crosses. Each message picks a book uniformly. While a
    book holds fewer than ``target_depth`` orders it adds with probability 0.55, else 0.45,
    so it settles around that size; the first ``~20 x target_depth`` messages of a book
    are mostly adds. Quantities are 1-100 lots; timestamps 1 us apart.

    Parameters
    ----------
    n : int
        Messages in total.
    n_books : int
        Books the messages are spread over.
    seed : int
        Seed of the generator.
    target_depth : int
        Resting orders per book the stream hovers around.
    depth : int
        Price levels per side used.
    """
    rng = np.random.default_rng(seed)
    msgs = empty_messages(n)
    book = rng.integers(0, n_books, n, dtype=np.int32) if n_books > 1 else np.zeros(n, np.int32)
    draw = rng.random(n)
    side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    offset = _touch_offsets(rng, n, depth)
    qty = rng.integers(1, 101, n)
    pick = rng.random(n)
    op = np.empty(n, dtype=np.int8)
    order_id = np.empty(n, dtype=np.int64)
    live: list[list[int]] = [[] for _ in range(n_books)]
    next_id = [1] * n_books
    for i in range(n):
        b = int(book[i])
        ids = live[b]
        p_add = 0.55 if len(ids) < target_depth else 0.45
        if not ids or draw[i] < p_add:
            op[i] = _LIMIT
            order_id[i] = next_id[b]
            ids.append(next_id[b])
            next_id[b] += 1
        else:
            # swap-remove a uniformly chosen live order: O(1)
            j = int(pick[i] * len(ids))
            order_id[i] = ids[j]
            ids[j] = ids[-1]
            ids.pop()
            op[i] = _CANCEL
    msgs["op"] = op
    msgs["order_id"] = order_id
    msgs["book"] = book
    is_limit = op == _LIMIT
    msgs["side"] = np.where(is_limit, side, 0)
    msgs["price"] = np.where(is_limit, np.where(side > 0, MID - 1 - offset, MID + offset), 0)
    msgs["qty"] = np.where(is_limit, qty, 0)
    msgs["tif"] = _GTC
    msgs["timestamp"] = np.arange(n, dtype=np.int64) * 1000
    return msgs


def crossing_inserts(
    n: int,
    n_books: int = 1,
    seed: int = 0,
    *,
    band: int = 8,
    target_qty: int = 5_000,
) -> np.ndarray:
    """W2: alternating buy/sell limit inserts in a narrow band; about half cross.

    Mix: 100% ``LIMIT``, buy and sell alternating per book. About half are passive ``GTC``:
    bids at ``MID - 1 - k``, asks at ``MID + k`` (``k`` geometric, at most ``band - 1``),
    which never cross and rest. The other half are aggressive ``IOC`` limits at the far
    edge of the band (buy ``MID + band``, sell ``MID - 1 - band``): they take liquidity from
    the touch outwards (usually one to three makers) and an unfilled remainder is cancelled,
    never rested, so the book stays inside ``2 x band`` ticks. The generator tracks the
    resting lots per side and leans the aggressive share to 60% / 40% when the opposite side
    holds more / fewer than ``target_qty`` lots, which keeps the book size bounded. An
    aggressive order meeting an empty side crosses nothing (rare after warm-up).
    Quantities are 1-20 lots; timestamps 1 us apart.
    """
    rng = np.random.default_rng(seed)
    msgs = empty_messages(n)
    book = rng.integers(0, n_books, n, dtype=np.int32) if n_books > 1 else np.zeros(n, np.int32)
    draw = rng.random(n)
    offset = _touch_offsets(rng, n, band)
    qty = rng.integers(1, 21, n)
    side = np.empty(n, dtype=np.int8)
    aggressive = np.empty(n, dtype=bool)
    resting = np.zeros((n_books, 2), dtype=np.int64)  # lots per book, [bid, ask]
    next_side = np.ones(n_books, dtype=np.int8)
    for i in range(n):
        b = int(book[i])
        s = int(next_side[b])
        next_side[b] = -s
        side[i] = s
        own, other = (0, 1) if s > 0 else (1, 0)
        p_aggressive = 0.6 if resting[b, other] > target_qty else 0.4
        q = int(qty[i])
        if draw[i] < p_aggressive and resting[b, other] > 0:
            aggressive[i] = True
            resting[b, other] -= min(q, int(resting[b, other]))
        else:
            aggressive[i] = False
            resting[b, own] += q
    msgs["op"] = _LIMIT
    msgs["order_id"] = np.arange(1, n + 1, dtype=np.int64)
    msgs["book"] = book
    msgs["side"] = side
    passive_price = np.where(side > 0, MID - 1 - offset, MID + offset)
    sweep_price = np.where(side > 0, MID + band, MID - 1 - band)
    msgs["price"] = np.where(aggressive, sweep_price, passive_price)
    msgs["qty"] = qty
    msgs["tif"] = np.where(aggressive, _IOC, _GTC)
    msgs["timestamp"] = np.arange(n, dtype=np.int64) * 1000
    return msgs


def lobster_aapl(path: str | os.PathLike[str] | None = None, n: int | None = None
                 ) -> np.ndarray:
    """W3: the LOBSTER AAPL 2012-06-21 09:30-10:30 message file as messages on book 0.

    Mix (89,712 messages from 91,997 rows): 44,256 ``LIMIT`` GTC (49.3%), 40,932
    ``CANCEL`` (45.6%), 4,055 ``EXECUTE`` (4.5%), 469 ``REDUCE`` (0.5%). The 2,201 hidden
    executions and the 84 references to orders placed before 09:30 are left out (see
    :mod:`rltrader.data.lobster`). Limits never cross; prices span 47,700-69,895 cent ticks
    (most within a few dollars of 585), so far orders exercise the overflow lists.

    Parameters
    ----------
    path : path-like, optional
        The message file; by default the packaged sample (``$RLTRADER_DATA/lobster/``
        first when set; :mod:`rltrader.data.samples`).
    n : int, optional
        Keep only the first ``n`` messages (truncation never creates unknown references).
    """
    from rltrader.data.lobster import read_messages

    if path is None:
        path = sample_path(AAPL_HOUR)
    msgs = read_messages(path).messages
    return msgs[:n].copy() if n is not None else msgs


def interleave(msgs: np.ndarray, n_books: int, per_book: int | None = None, *,
               max_messages: int | None = None) -> np.ndarray:
    """Copies of one single-book stream on ``n_books`` books, interleaved round-robin.

    Message ``i`` of copy ``b`` lands at ``i * n_books + b`` with ``book = b``, so
    consecutive messages hit different books and each book sees the stream in order (ids
    are per book, so the copies keep their ids). Each copy is the first ``per_book``
    messages of ``msgs`` (all of them by default), or as many as keep the total within
    ``max_messages``; W3x512 uses ``per_book=2048``, about one million messages in all.
    Truncating a stream never makes a later message refer to a missing order.
    """
    if n_books < 1:
        raise ValueError(f"n_books must be >= 1, got {n_books}")
    if msgs.dtype != MESSAGE_DTYPE:
        raise TypeError(f"msgs must have MESSAGE_DTYPE, got {msgs.dtype}")
    if max_messages is not None:
        cap = max(1, max_messages // n_books)
        per_book = cap if per_book is None else min(per_book, cap)
    src = msgs[:per_book] if per_book is not None else msgs
    out = np.repeat(src, n_books)
    out["book"] = np.tile(np.arange(n_books, dtype=np.int32), src.shape[0])
    return out


def lobster_aapl_books(n_books: int = 512, per_book: int = 2048,
                       path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """W3xN: :func:`lobster_aapl` truncated to ``per_book`` messages on ``n_books`` books."""
    return interleave(lobster_aapl(path, n=per_book), n_books)


#: Names of the published streams, in report order (see :func:`published`).
PUBLISHED = ("W1", "W2", "W3", "W3x512")


def published(name: str, n: int | None = None) -> tuple[np.ndarray, int]:
    """A published stream by name and its number of books: ``(messages, n_books)``.

    ``n`` shortens the stream (a ``--quick`` run): the synthetic ones are generated with
    ``n`` messages, W3 keeps its first ``n`` and W3x512 its first ``n // 512`` per book.
    """
    if name == "W1":
        return limit_cancel(n or N_SYNTHETIC, seed=SEED), 1
    if name == "W2":
        return crossing_inserts(n or N_SYNTHETIC, seed=SEED), 1
    if name == "W3":
        return lobster_aapl(n=n), 1
    if name == "W3x512":
        return lobster_aapl_books(512, per_book=max(1, n // 512) if n else 2048), 512
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(PUBLISHED)}")


def op_mix(msgs: np.ndarray) -> dict[str, object]:
    """The mix of a stream for reports: counts and shares per ``OP`` / ``OP TIF``.

    Returns ``{"messages": n, "books": distinct books, "counts": {...}, "shares": {...}}``
    where keys are like ``"LIMIT GTC"``, ``"LIMIT IOC"``, ``"CANCEL"``, ``"EXECUTE"``.
    """
    n = int(msgs.shape[0])
    ops = msgs["op"].astype(np.int64)
    new_order = (ops == _LIMIT) | (ops == 7)
    pairs = ops * 256 + np.where(new_order, msgs["tif"].astype(np.int64) & 255, 255)
    labels: dict[str, int] = {}
    values, counts = np.unique(pairs, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        op, tif = divmod(value, 256)
        name = _OP_NAMES.get(op, f"OP{op}")
        if tif != 255:
            name += " " + _TIF_NAMES.get(tif, f"TIF{tif}")
        labels[name] = int(count)
    return {
        "messages": n,
        "books": int(np.unique(msgs["book"]).size) if n else 0,
        "counts": labels,
        "shares": {k: round(v / n, 4) for k, v in labels.items()} if n else {},
    }


def events_needed(msgs: np.ndarray, batch: int, max_live: int | None = None) -> int:
    """An event-buffer size with which :func:`replay` never has to split a batch.

    The core returns early when the buffer might not hold the next message's worst case
    (6 + resting orders on the opposite side, for a limit), so the buffer needs room for
    the batch's own events plus that worst case.
    """
    if max_live is None:
        max_live = int(msgs.shape[0])
    return 4 * batch + max_live + 64


def replay(books, msgs: np.ndarray, events: np.ndarray, batch: int = 4096) -> int:
    """Feed ``msgs`` to ``books`` in batches of ``batch``, reusing ``events``.

    This is the timed loop of the batched benchmarks: one ``Books.process`` call per batch
    (more only when the events buffer fills). Returns the number of events written.
    """
    n = msgs.shape[0]
    written = 0
    start = 0
    while start < n:
        stop = min(start + batch, n)
        while start < stop:
            done, w = books.process(msgs[start:stop], events)
            start += done
            written += w
    return written


__all__ = [
    "MID",
    "N_SYNTHETIC",
    "PUBLISHED",
    "SEED",
    "crossing_inserts",
    "events_needed",
    "interleave",
    "limit_cancel",
    "lobster_aapl",
    "lobster_aapl_books",
    "op_mix",
    "published",
    "replay",
]
