"""The compiled core against the pure-Python reference book on random message streams.

Every stream is fed one message at a time to ``rltrader.Books`` and to ``ReferenceBooks``;
after each message the events, the top of every book, the counters and the accounts must be
identical and the core's ``check_integrity`` must pass. The same stream in one batched call
must give the same events. Configurations cover 1 and 3 books, small and large dense
windows, every self-trade-prevention mode, fees and rebates, and a tiny arena with a hard
``max_orders`` (so the arena grows and ``CAPACITY`` rejects happen).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._book")

from book_compare import (  # noqa: E402
    assert_same_events,
    assert_same_orders,
    assert_same_state,
    check_accounts_balance,
    check_order_conservation,
    format_message,
)
from reference_book import (  # noqa: E402
    BUY,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STOP,
    STOP_LIMIT,
    TRIGGERED,
    ReferenceBooks,
    ReferenceOrderBook,
)
from streams import random_stream  # noqa: E402

import rltrader  # noqa: E402

N_OWNERS = 4

# name: (books constructor kwargs, random_stream kwargs)
CONFIGS = {
    "1book-w64-none": (dict(n_books=1, window=64), dict()),
    "1book-w4096-taker-fees": (
        dict(n_books=1, window=4096, self_trade_prevention=1, maker_fee_ppm=-25, taker_fee_ppm=300),
        dict(),
    ),
    "3books-w64-maker-capacity": (
        dict(
            n_books=3,
            window=64,
            self_trade_prevention=2,
            capacity=4,
            max_orders=64,
            maker_fee_ppm=150,
            taker_fee_ppm=-40,
        ),
        dict(n_books=3, target_depth=25),
    ),
    "3books-w128-both": (
        dict(n_books=3, window=128, self_trade_prevention=3, maker_fee_ppm=-7, taker_fee_ppm=13),
        dict(n_books=3, far_rate=0.15, jump_rate=0.03),
    ),
    "1book-w64-capacity16": (
        dict(n_books=1, window=64, capacity=4, max_orders=16, self_trade_prevention=2),
        dict(target_depth=30),
    ),
    "3books-w4096-all-owned": (
        dict(n_books=3, window=4096, maker_fee_ppm=-111, taker_fee_ppm=333),
        dict(n_books=3, no_owner_rate=0.0, execute=False),
    ),
}
SEEDS = range(12)
N_MESSAGES = 3000


def make_pair(books_kwargs: dict) -> tuple[rltrader.Books, ReferenceBooks]:
    kwargs = dict(books_kwargs)
    n_books = kwargs.pop("n_books")
    core = rltrader.Books(n_books, n_owners=N_OWNERS, **kwargs)
    kwargs.pop("window", None)
    kwargs.pop("capacity", None)
    ref = ReferenceBooks(n_books, n_owners=N_OWNERS, **kwargs)
    return core, ref


def run_per_message(core, ref, msgs: np.ndarray, label: str) -> list[np.ndarray]:
    """Feed ``msgs`` one at a time to both books, comparing after every message."""
    all_events = []
    for i in range(len(msgs)):
        one = msgs[i : i + 1]
        got = core.process_all(one)
        want = ref.process_all(one)
        where = f"[{label}] at message {i}: {format_message(msgs[i])}"
        assert_same_events(got, want, where)
        core.check_integrity()
        assert_same_state(core, ref, where)
        if i % 97 == 0:
            assert_same_orders(core, ref, where)
        all_events.append(got)
    assert_same_orders(core, ref, f"[{label}] at the end")
    return all_events


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_random_stream(config: str, seed: int) -> None:
    books_kwargs, stream_kwargs = CONFIGS[config]
    msgs = random_stream(seed, N_MESSAGES, n_owners=N_OWNERS, **stream_kwargs)
    label = f"{config} seed={seed}"
    core, ref = make_pair(books_kwargs)
    per_message = run_per_message(core, ref, msgs, label)
    check_order_conservation(per_message, core)
    if stream_kwargs.get("no_owner_rate") == 0.0:
        check_accounts_balance(core)

    # the whole stream in one call: the same events, now with message indices
    expected = np.concatenate(per_message)
    expected["message_index"] = np.repeat(np.arange(len(msgs)), [len(e) for e in per_message])
    batched, _ = make_pair(books_kwargs)
    assert_same_events(batched.process_all(msgs), expected, f"[{label}] batched vs per message")
    batched.check_integrity()
    assert_same_state(batched, ref, f"[{label}] batched, at the end", depth=32)


def test_process_into_a_small_buffer_resumes() -> None:
    """``process`` with a small caller buffer, resumed until done, loses no event."""
    books_kwargs, stream_kwargs = CONFIGS["3books-w64-maker-capacity"]
    msgs = random_stream(101, 800, n_owners=N_OWNERS, **stream_kwargs)
    core, ref = make_pair(books_kwargs)
    want = ref.process_all(msgs)
    buffer = np.zeros(1024, dtype=rltrader.EVENT_DTYPE)  # >= any one message's bound
    got, done = [], 0
    while done < len(msgs):
        consumed, written = core.process(msgs[done:], buffer)
        chunk = buffer[:written].copy()
        chunk["message_index"] += done
        got.append(chunk)
        done += consumed
    assert_same_events(np.concatenate(got), want, "process() in chunks")
    assert_same_state(core, ref, "process() in chunks, at the end", depth=32)


def test_configuration_changes_midway() -> None:
    """Per-book self-trade mode and fee changes between batches act the same in both."""
    msgs = random_stream(7, 1500, n_books=3, n_owners=N_OWNERS)
    core, ref = make_pair(dict(n_books=3, window=64))
    events = []
    for start, (mode, maker, taker, book) in zip(
        range(0, 1500, 250),
        [
            (1, 0, 0, None),
            (2, 10, 20, 0),
            (3, -30, 50, 1),
            (0, 1000, -500, 2),
            (2, 0, 0, None),
            (1, -1, 1, 0),
        ],
        strict=True,
    ):
        for target in (core, ref):
            target.set_self_trade_prevention(mode, book)
            target.set_fees(maker, taker, book)
        events.append(run_per_message(core, ref, msgs[start : start + 250], f"from {start}"))
    check_order_conservation([e for chunk in events for e in chunk], core)


def test_market_and_stop_treat_unknown_tif_as_ioc() -> None:
    """docs/semantics.md: BAD_TIF for a tif outside TimeInForce is for LIMIT/STOP_LIMIT only;
    MARKET and STOP treat every tif other than FOK as IOC (POST_ONLY stays BAD_TIF)."""
    msgs = rltrader.empty_messages(6)
    msgs["order_id"] = np.arange(1, 7)
    msgs["qty"] = 1
    msgs["side"] = [SELL, BUY, BUY, BUY, BUY, BUY]
    msgs["op"] = [1, MARKET, MARKET, STOP, STOP, MARKET]
    msgs["price"][0] = 100
    msgs["stop_price"] = 100
    msgs["tif"] = [0, 4, -1, 9, 4, 3]
    core, ref = make_pair(dict(n_books=1, window=64))
    for i in range(len(msgs)):
        assert_same_events(
            core.process_all(msgs[i : i + 1]),
            ref.process_all(msgs[i : i + 1]),
            f"at message {i}: {format_message(msgs[i])}",
        )


def _random_calls(seed: int, n: int):
    """Random OrderBook method calls: (method name, positional args, keyword args)."""
    rng = np.random.default_rng(seed)
    ids = list(range(1, 40))
    for _ in range(n):
        r = rng.random()
        side = BUY if rng.random() < 0.5 else SELL
        price = int(100 - side * (rng.integers(-2, 8)))
        qty = int(rng.integers(1, 8))
        owner = int(rng.integers(-1, 3))
        order_id = int(rng.choice(ids)) if rng.random() < 0.8 else 0
        tif = int(rng.integers(0, 4))
        ts = int(rng.integers(0, 1 << 40))
        if r < 0.4:
            yield (
                "limit",
                (side, price, qty),
                dict(order_id=order_id, owner=owner, tif=tif, timestamp=ts),
            )
        elif r < 0.47:
            yield (
                "market",
                (side, qty),
                dict(order_id=order_id, owner=owner, tif=int(rng.choice([1, 2])), timestamp=ts),
            )
        elif r < 0.54:
            yield (
                "stop",
                (side, price, qty),
                dict(order_id=order_id, owner=owner, tif=int(rng.choice([1, 2])), timestamp=ts),
            )
        elif r < 0.6:
            yield (
                "stop_limit",
                (side, price, price - side, qty),
                dict(order_id=order_id, owner=owner, tif=tif, timestamp=ts),
            )
        elif r < 0.72:
            yield "cancel", (int(rng.choice(ids)),), dict(timestamp=ts)
        elif r < 0.8:
            yield "reduce", (int(rng.choice(ids)), qty), dict(timestamp=ts)
        elif r < 0.9:
            new_id = int(rng.choice(ids)) if rng.random() < 0.5 else 0
            yield (
                "replace",
                (int(rng.choice(ids)), price, qty),
                dict(new_order_id=new_id, tif=tif, timestamp=ts),
            )
        elif r < 0.95:
            yield "execute", (int(rng.choice(ids)), qty), dict(timestamp=ts)
        else:
            msg = rltrader.empty_messages(1)[0]
            msg["op"], msg["side"], msg["price"], msg["qty"] = 1, side, price, qty
            msg["order_id"], msg["owner"], msg["book"] = order_id, owner, 3
            yield "submit", (msg,), {}


@pytest.mark.parametrize("seed", range(3))
def test_order_book_api(seed: int) -> None:
    """``OrderBook`` against ``ReferenceOrderBook``, method call by method call."""
    kwargs = dict(n_owners=3, self_trade_prevention=seed, maker_fee_ppm=-3, taker_fee_ppm=9)
    core = rltrader.OrderBook(window=64, capacity=2, **kwargs)
    ref = ReferenceOrderBook(**kwargs)
    for i, (method, args, kw) in enumerate(_random_calls(seed, 1500)):
        got = getattr(core, method)(*args, **kw)
        want = getattr(ref, method)(*args, **kw)
        where = f"at call {i}: {method}{args} {kw}"
        assert got == want, f"return value {got} != {want} {where}"
        assert_same_events(core.events, ref.events, where)
        assert_same_events(core.fills(), ref.fills(), where)
        core.check_integrity()
        state = (core.best_bid(), core.best_ask(), core.last_price(), core.volume())
        assert state == (ref.best_bid(), ref.best_ask(), ref.last_price(), ref.volume()), where
        for x, y in zip(core.depth(5), ref.depth(5), strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y), f"depth {x} != {y} {where}"
        assert core.accounts.tolist() == ref.accounts.tolist(), where
        if i % 50 == 0:
            for order_id in range(1, 40):
                assert core.order(order_id) == ref.order(order_id), where
            for side in (BUY, SELL):
                for price in range(92, 109):
                    assert core.queue(side, price).tolist() == ref.queue(side, price).tolist()


@pytest.mark.parametrize("stp", range(4))
def test_long_stop_cascade(stp: int) -> None:
    """One message that triggers a long cascade of stops, depth first, on a 64-tick window."""
    rng = np.random.default_rng(stp)
    rows = []

    def add(op, side, price, stop_price, qty, owner, tif=0):
        rows.append((0, len(rows) + 1, 0, price, stop_price, qty, 0, owner, op, side, tif))

    add(LIMIT, SELL, 1000, 0, 1, -1)
    add(LIMIT, BUY, 1000, 0, 1, -1)  # last trade 1000
    for _ in range(300):  # bids over 200 ticks below the last trade, a few asks above it
        side = BUY if rng.random() < 0.9 else SELL
        price = int(rng.integers(800, 1000)) if side == BUY else int(rng.integers(1001, 1400))
        add(LIMIT, side, price, 0, int(rng.integers(1, 4)), int(rng.integers(-1, N_OWNERS)))
    for _ in range(300):  # stops of every kind; the sell stops trigger all the way down
        side = SELL if rng.random() < 0.8 else BUY
        stop_price = int(rng.integers(800, 1000)) if side == SELL else int(rng.integers(1001, 1100))
        op = STOP if rng.random() < 0.5 else STOP_LIMIT
        price = stop_price + side * int(rng.integers(0, 40)) if op == STOP_LIMIT else 0
        tif = int(rng.integers(0, 4)) if op == STOP_LIMIT else int(rng.choice([IOC, FOK]))
        qty, owner = int(rng.integers(2, 8)), int(rng.integers(-1, N_OWNERS))
        add(op, side, price, stop_price, qty, owner, tif)
    add(MARKET, SELL, 0, 0, 30, -1, IOC)  # the spark
    msgs = np.array(rows, dtype=rltrader.MESSAGE_DTYPE)
    core, ref = make_pair(dict(n_books=1, window=64, capacity=8, self_trade_prevention=stp))
    events = run_per_message(core, ref, msgs, f"cascade stp={stp}")
    assert (events[-1]["kind"] == TRIGGERED).sum() > 30  # the spark set off a long cascade
    check_order_conservation(events, core)
    batched, _ = make_pair(dict(n_books=1, window=64, capacity=8, self_trade_prevention=stp))
    expected = np.concatenate(events)
    expected["message_index"] = np.repeat(np.arange(len(msgs)), [len(e) for e in events])
    assert_same_events(batched.process_all(msgs), expected, "cascade, batched")
