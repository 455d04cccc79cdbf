"""Bad input: malformed arrays raise; every invalid message is one REJECTED event that
changes nothing; random bytes never crash the core; bad constructor arguments raise."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import (
    accepted,
    as_dicts,
    assert_events,
    assert_same_state,
    cancelled,
    messages,
    msg,
    rejected,
    snapshot,
)

from rltrader import (
    BUY,
    CANCEL,
    EVENT_DTYPE,
    EXECUTE,
    FOK,
    LIMIT,
    MARKET,
    MAX_PRICE,
    MAX_QTY,
    MESSAGE_DTYPE,
    POST_ONLY,
    REDUCE,
    REPLACE,
    SELL,
    STOP,
    STOP_LIMIT,
    Books,
    EventKind,
    OrderBook,
    Reason,
)

R = Reason

# ---------------------------------------------------------------------------------------
# malformed arrays
# ---------------------------------------------------------------------------------------


def _calls(books: Books) -> list:
    good_m = np.zeros(2, dtype=MESSAGE_DTYPE)
    good_e = np.zeros(16, dtype=EVENT_DTYPE)
    return [
        lambda bad: books.process_all(bad),
        lambda bad: books.process(bad, good_e),
        lambda bad: books.process(good_m, bad),
    ]


@pytest.mark.parametrize("bad", [
    np.zeros(4, dtype=np.int64),
    np.zeros(4, dtype=MESSAGE_DTYPE.descr),          # same fields, unaligned layout
    np.zeros(4, dtype=[("timestamp", np.int64)]),
], ids=["int64", "unaligned", "one-field"])
def test_wrong_dtype_raises_type_error(bad: np.ndarray) -> None:
    books = Books()
    for call in _calls(books):
        with pytest.raises(TypeError, match="dtype"):
            call(bad)


def test_swapped_message_and_event_arrays_raise_type_error() -> None:
    books = Books()
    with pytest.raises(TypeError):
        books.process(np.zeros(2, dtype=EVENT_DTYPE), np.zeros(2, dtype=MESSAGE_DTYPE))


@pytest.mark.parametrize("bad", [[1, 2, 3], b"\x00" * 64, None, 3],
                         ids=["list", "bytes", "None", "int"])
def test_non_arrays_raise_type_error(bad: object) -> None:
    books = Books()
    for call in _calls(books):
        with pytest.raises(TypeError, match="numpy array"):
            call(bad)


def test_two_dimensional_arrays_raise_value_error() -> None:
    books = Books()
    calls = _calls(books)
    for call, dtype in zip(calls, (MESSAGE_DTYPE, MESSAGE_DTYPE, EVENT_DTYPE),
                           strict=True):
        with pytest.raises(ValueError, match="one-dimensional"):
            call(np.zeros((2, 8), dtype=dtype))
        with pytest.raises(ValueError, match="one-dimensional"):
            call(np.zeros((), dtype=dtype))


def test_non_contiguous_arrays_raise_value_error() -> None:
    books = Books()
    for call, dtype in zip(_calls(books), (MESSAGE_DTYPE, MESSAGE_DTYPE, EVENT_DTYPE),
                           strict=True):
        with pytest.raises(ValueError, match="contiguous"):
            call(np.zeros(16, dtype=dtype)[::2])


def test_nothing_is_processed_when_an_array_is_rejected() -> None:
    books = Books()
    m = messages(msg(LIMIT, 1, BUY, 100, 1))
    with pytest.raises(ValueError):
        books.process(m, np.zeros((4, 4), dtype=EVENT_DTYPE))
    assert books.live_orders() == 0


# ---------------------------------------------------------------------------------------
# one REJECTED event per invalid message, state unchanged
# ---------------------------------------------------------------------------------------


def _book() -> Books:
    """Book 0: bid 1 (owner 0) 100 x5, pending sell stop 2 (owner 1), filled orders 3 and 4.
    Book 1: ask 5 at 110."""
    books = Books(2, n_owners=2, window=64)
    events = books.process_all(messages(
        msg(LIMIT, 1, BUY, 100, 5, owner=0),
        msg(STOP, 2, SELL, qty=3, stop_price=90, owner=1),
        msg(LIMIT, 3, SELL, 105, 2),
        msg(LIMIT, 4, BUY, 105, 2),
        msg(LIMIT, 5, SELL, 110, 1, book=1),
    ))
    assert EventKind.REJECTED not in events["kind"]
    assert books.live_orders() == 3
    return books


TS = 123
REJECTS = {
    # 1. book
    "book-too-big": (msg(LIMIT, 9, BUY, 100, 1, book=2), R.BAD_BOOK),
    "book-negative": (msg(LIMIT, 9, BUY, 100, 1, book=-1), R.BAD_BOOK),
    "book-before-op": (msg(0, 9, book=7), R.BAD_BOOK),
    # 2. op
    "op-zero": (msg(0, 9, BUY, 100, 1), R.BAD_OP),
    "op-nine": (msg(9, 9, BUY, 100, 1), R.BAD_OP),
    "op-negative": (msg(-128, 9, BUY, 100, 1), R.BAD_OP),
    "op-before-owner": (msg(0, 9, owner=7), R.BAD_OP),
    # 3. owner, for every op
    "owner-too-big": (msg(LIMIT, 9, BUY, 100, 1, owner=2), R.BAD_OWNER),
    "owner-below-no-owner": (msg(LIMIT, 9, BUY, 100, 1, owner=-2), R.BAD_OWNER),
    "owner-cancel": (msg(CANCEL, 1, owner=2), R.BAD_OWNER),
    "owner-execute": (msg(EXECUTE, 1, qty=1, owner=-7), R.BAD_OWNER),
    "owner-before-id": (msg(LIMIT, 0, BUY, 100, 1, owner=9), R.BAD_OWNER),
    # 4. order id
    "id-zero": (msg(LIMIT, 0, BUY, 100, 1), R.BAD_ORDER_ID),
    "id-negative-cancel": (msg(CANCEL, -1), R.BAD_ORDER_ID),
    "id-zero-replace": (msg(REPLACE, 0, price=100, qty=1), R.BAD_ORDER_ID),
    "id-before-side": (msg(LIMIT, 0, 0, 100, 1), R.BAD_ORDER_ID),
    # 5. new orders: side, tif, qty, price, stop price, duplicate
    "side-zero": (msg(LIMIT, 9, 0, 100, 1), R.BAD_SIDE),
    "side-market": (msg(MARKET, 9, 2, qty=1), R.BAD_SIDE),
    "side-stop": (msg(STOP, 9, -2, qty=1, stop_price=90), R.BAD_SIDE),
    "side-stop-limit": (msg(STOP_LIMIT, 9, 127, 90, 1, stop_price=90), R.BAD_SIDE),
    "side-before-tif": (msg(LIMIT, 9, 0, 100, 1, tif=9), R.BAD_SIDE),
    "tif-limit-4": (msg(LIMIT, 9, BUY, 100, 1, tif=4), R.BAD_TIF),
    "tif-limit-negative": (msg(LIMIT, 9, BUY, 100, 1, tif=-1), R.BAD_TIF),
    "tif-stop-limit": (msg(STOP_LIMIT, 9, BUY, 100, 1, stop_price=90, tif=4), R.BAD_TIF),
    "tif-market-post-only": (msg(MARKET, 9, BUY, qty=1, tif=POST_ONLY), R.BAD_TIF),
    "tif-stop-post-only": (msg(STOP, 9, BUY, qty=1, stop_price=90, tif=POST_ONLY), R.BAD_TIF),
    "tif-before-qty": (msg(LIMIT, 9, BUY, 100, 0, tif=9), R.BAD_TIF),
    "qty-zero": (msg(LIMIT, 9, BUY, 100, 0), R.BAD_QTY),
    "qty-negative-market": (msg(MARKET, 9, SELL, qty=-1), R.BAD_QTY),
    "qty-too-big-stop": (msg(STOP, 9, BUY, qty=MAX_QTY + 1, stop_price=90), R.BAD_QTY),
    "qty-before-price": (msg(LIMIT, 9, BUY, 0, 0), R.BAD_QTY),
    "price-zero": (msg(LIMIT, 9, BUY, 0, 1), R.BAD_PRICE),
    "price-negative": (msg(LIMIT, 9, SELL, -1, 1), R.BAD_PRICE),
    "price-above-max": (msg(LIMIT, 9, SELL, MAX_PRICE + 1, 1), R.BAD_PRICE),
    "price-stop-limit": (msg(STOP_LIMIT, 9, BUY, 0, 1, stop_price=90), R.BAD_PRICE),
    "stop-price-zero": (msg(STOP, 9, BUY, qty=1, stop_price=0), R.BAD_PRICE),
    "stop-price-above-max": (msg(STOP, 9, BUY, qty=1, stop_price=MAX_PRICE + 1), R.BAD_PRICE),
    "stop-price-stop-limit": (msg(STOP_LIMIT, 9, BUY, 100, 1, stop_price=0), R.BAD_PRICE),
    "price-before-duplicate": (msg(LIMIT, 1, BUY, 0, 1), R.BAD_PRICE),
    "duplicate-resting": (msg(LIMIT, 1, SELL, 120, 1), R.DUPLICATE_ORDER_ID),
    "duplicate-market": (msg(MARKET, 1, SELL, qty=1), R.DUPLICATE_ORDER_ID),
    "duplicate-stop": (msg(STOP, 2, BUY, qty=1, stop_price=200), R.DUPLICATE_ORDER_ID),
    # CANCEL
    "cancel-unknown": (msg(CANCEL, 99), R.UNKNOWN_ORDER),
    "cancel-filled": (msg(CANCEL, 3), R.UNKNOWN_ORDER),
    "cancel-other-book": (msg(CANCEL, 5), R.UNKNOWN_ORDER),
    # REDUCE
    "reduce-unknown": (msg(REDUCE, 4, qty=1), R.UNKNOWN_ORDER),
    "reduce-unknown-before-qty": (msg(REDUCE, 99, qty=0), R.UNKNOWN_ORDER),
    "reduce-zero": (msg(REDUCE, 1, qty=0), R.BAD_QTY),
    "reduce-negative": (msg(REDUCE, 2, qty=-5), R.BAD_QTY),
    # EXECUTE
    "execute-unknown": (msg(EXECUTE, 99, qty=1), R.UNKNOWN_ORDER),
    "execute-filled": (msg(EXECUTE, 3, qty=1), R.UNKNOWN_ORDER),
    "execute-stop": (msg(EXECUTE, 2, qty=1), R.NOT_RESTING),
    "execute-stop-before-qty": (msg(EXECUTE, 2, qty=0), R.NOT_RESTING),
    "execute-zero": (msg(EXECUTE, 1, qty=0), R.BAD_QTY),
    "execute-above-leaves": (msg(EXECUTE, 1, qty=6), R.BAD_QTY),
    # an owner named on an existing order must be its owner (checked after UNKNOWN_ORDER)
    "not-owner-cancel": (msg(CANCEL, 1, owner=1), R.NOT_OWNER),
    "not-owner-stop-cancel": (msg(CANCEL, 2, owner=0), R.NOT_OWNER),
    "not-owner-before-qty": (msg(REDUCE, 1, qty=0, owner=1), R.NOT_OWNER),
    "not-owner-before-not-resting": (msg(REPLACE, 2, price=100, qty=1, owner=0), R.NOT_OWNER),
    "not-owner-execute": (msg(EXECUTE, 1, qty=1, owner=1), R.NOT_OWNER),
    "not-owner-unknown-first": (msg(CANCEL, 3, owner=1), R.UNKNOWN_ORDER),
    # REPLACE
    "replace-unknown": (msg(REPLACE, 99, price=100, qty=1), R.UNKNOWN_ORDER),
    "replace-filled-before-qty": (msg(REPLACE, 3, price=100, qty=0), R.UNKNOWN_ORDER),
    "replace-stop": (msg(REPLACE, 2, price=100, qty=1), R.NOT_RESTING),
    "replace-stop-before-qty": (msg(REPLACE, 2, price=100, qty=0), R.NOT_RESTING),
    "replace-qty-zero": (msg(REPLACE, 1, price=100, qty=0), R.BAD_QTY),
    "replace-qty-too-big": (msg(REPLACE, 1, price=100, qty=MAX_QTY + 1), R.BAD_QTY),
    "replace-qty-before-price": (msg(REPLACE, 1, price=0, qty=0), R.BAD_QTY),
    "replace-price-zero": (msg(REPLACE, 1, price=0, qty=1), R.BAD_PRICE),
    "replace-price-above-max": (msg(REPLACE, 1, price=MAX_PRICE + 1, qty=1), R.BAD_PRICE),
    "replace-price-before-new-id": (msg(REPLACE, 1, price=0, qty=1, new_order_id=-1),
                                    R.BAD_PRICE),
    "replace-new-id-negative": (msg(REPLACE, 1, price=99, qty=1, new_order_id=-1),
                                R.BAD_ORDER_ID),
    "replace-new-id-before-tif": (msg(REPLACE, 1, price=99, qty=1, new_order_id=-1, tif=9),
                                  R.BAD_ORDER_ID),
    "replace-new-id-live": (msg(REPLACE, 1, price=99, qty=1, new_order_id=2),
                            R.DUPLICATE_ORDER_ID),
    "replace-duplicate-before-tif": (msg(REPLACE, 1, price=99, qty=1, new_order_id=2, tif=9),
                                     R.DUPLICATE_ORDER_ID),
    "replace-tif": (msg(REPLACE, 1, price=99, qty=1, tif=4), R.BAD_TIF),
}


@pytest.mark.parametrize(("record", "reason"), list(REJECTS.values()), ids=list(REJECTS))
def test_invalid_message_is_rejected_and_changes_nothing(record: tuple[int, ...],
                                                         reason: int) -> None:
    books = _book()
    before = snapshot(books)
    live, volume = books.live_orders(), books.volume()
    m = messages(record)
    m["timestamp"] = TS
    events = books.process_all(m)
    r = m[0]
    assert_events(events, [rejected(int(r["order_id"]), int(r["side"]), int(r["price"]),
                                    int(r["qty"]), reason, owner=int(r["owner"]),
                                    book=int(r["book"]), timestamp=TS)])
    assert_same_state(before, books)
    assert (books.live_orders(), books.volume()) == (live, volume)
    books.check_integrity()


def test_every_reject_reason_is_covered() -> None:
    covered = {int(reason) for _, reason in REJECTS.values()}
    rejects = {int(r) for r in Reason if 1 <= r < Reason.CANCEL_REQUESTED}
    # POST_ONLY_WOULD_CROSS, CAPACITY and NOTIONAL_LIMIT have their own files
    assert rejects - covered == {R.POST_ONLY_WOULD_CROSS, R.CAPACITY, R.NOTIONAL_LIMIT}


def test_duplicate_is_checked_before_capacity() -> None:
    books = Books(capacity=1, max_orders=1)
    books.process_all(messages(msg(LIMIT, 1, BUY, 100, 1)))
    events = books.process_all(messages(msg(LIMIT, 1, BUY, 99, 1), msg(LIMIT, 2, BUY, 99, 1)))
    assert_events(events, [rejected(1, BUY, 99, 1, R.DUPLICATE_ORDER_ID, index=0),
                           rejected(2, BUY, 99, 1, R.CAPACITY, index=1)])


def test_fields_an_op_does_not_use_are_not_checked() -> None:
    books = _book()     # book 0 has no asks
    events = books.process_all(messages(
        msg(MARKET, 20, BUY, -5, 1, stop_price=-9, new_order_id=-3),        # price unused
        msg(CANCEL, 1, 7, -1, -1, stop_price=-1, new_order_id=-1, tif=9),   # side, qty, tif
        msg(LIMIT, 21, BUY, MAX_PRICE, MAX_QTY, stop_price=-1, tif=FOK),    # limits included
        msg(STOP, 22, BUY, -4, 2, stop_price=MAX_PRICE),                    # price unused
    ))
    assert_events(events, [
        accepted(20, BUY, 0, 1, index=0),
        cancelled(20, BUY, 0, 1, R.IOC_REMAINDER, index=0),
        cancelled(1, BUY, 100, 5, R.CANCEL_REQUESTED, owner=0, index=1),
        accepted(21, BUY, MAX_PRICE, MAX_QTY, index=2),
        cancelled(21, BUY, MAX_PRICE, MAX_QTY, R.FOK_UNFILLABLE, index=2),
        accepted(22, BUY, 0, 2, index=3),
    ])
    books.check_integrity()


def test_rejected_order_book_api_calls() -> None:
    ob = OrderBook()
    assert ob.submit(messages(msg(LIMIT, 5, 0, 100, 1))[0]) == 5   # a record: the core rejects
    assert_events(ob.events, [rejected(5, 0, 100, 1, R.BAD_SIDE)])
    ob.limit(BUY, 100, 1, owner=3)          # no accounts at all
    assert int(ob.events["reason"][0]) == R.BAD_OWNER
    assert ob.books.live_orders() == 0


# ---------------------------------------------------------------------------------------
# random bytes
# ---------------------------------------------------------------------------------------


def _steer(raw: np.ndarray, rng: np.random.Generator, n_books: int,
           n_owners: int) -> np.ndarray:
    """Random records with each field pulled, most of the time, into or near its range."""
    m = raw.copy()
    n = len(m)

    def pick(field: str, values: np.ndarray, p: float = 0.95) -> None:
        keep = rng.random(n) < p
        m[field][keep] = values[keep]

    pick("book", rng.integers(0, n_books, n))
    pick("op", rng.integers(1, 9, n))
    pick("side", rng.choice([-1, 1], n))
    pick("tif", rng.integers(0, 4, n))
    pick("owner", rng.integers(-1, n_owners, n))
    pick("order_id", rng.integers(1, 200, n))
    pick("new_order_id", rng.integers(0, 200, n))
    pick("price", rng.integers(900, 1100, n), 0.8)
    pick("price", rng.choice([1, MAX_PRICE, 5_000_000], n), 0.05)
    pick("stop_price", rng.integers(900, 1100, n))
    pick("qty", rng.integers(1, 30, n))
    pick("qty", rng.choice([MAX_QTY, MAX_QTY + 1, 0, -1], n), 0.03)
    return m


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_never_crash_and_keep_integrity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = np.frombuffer(rng.bytes(MESSAGE_DTYPE.itemsize * 3000), dtype=MESSAGE_DTYPE)
    for stream in (raw, _steer(raw, rng, n_books=3, n_owners=3)):
        books = Books(3, n_owners=3, window=64, capacity=4, max_orders=400,
                      self_trade_prevention=seed % 4, maker_fee_ppm=-7, taker_fee_ppm=11)
        small = Books(3, n_owners=3, window=64, capacity=4, max_orders=400,
                      self_trade_prevention=seed % 4, maker_fee_ppm=-7, taker_fee_ppm=11)
        buffer = np.zeros(4096, dtype=EVENT_DTYPE)
        for start in range(0, len(stream), 500):
            chunk = np.ascontiguousarray(stream[start:start + 500])
            events = books.process_all(chunk)
            index = events["message_index"]
            assert np.all(np.diff(index) >= 0)
            assert set(index.tolist()) == set(range(len(chunk)))   # >= 1 event each
            assert set(events["kind"].tolist()) <= {int(k) for k in EventKind}
            books.check_integrity()
            # the same chunk through process() with a bounded buffer gives the same events
            got, done = [], 0
            while done < len(chunk):
                consumed, written = small.process(chunk[done:], buffer)
                for e in as_dicts(buffer[:written]):
                    e["message_index"] += done
                    got.append(e)
                done += consumed
            assert got == as_dicts(events)
        small.check_integrity()
        for b in range(3):
            assert int(books.accounts[b]["volume"].sum()) <= 2 * books.volume(b)


# ---------------------------------------------------------------------------------------
# constructor and configuration arguments
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(n_books=0), dict(n_books=-1),
    dict(window=0), dict(window=63), dict(window=100), dict(window=-64),
    dict(capacity=0), dict(capacity=8, max_orders=4), dict(max_orders=(1 << 30) + 1),
    dict(n_owners=-1),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_bad_constructor_arguments_raise_value_error(kwargs: dict) -> None:
    n_books = kwargs.pop("n_books", 1)
    with pytest.raises(ValueError):
        Books(n_books, **kwargs)
    if n_books == 1:
        with pytest.raises(ValueError):
            OrderBook(**kwargs)


def test_constructor_argument_types() -> None:
    with pytest.raises(TypeError):
        Books(1, 64)                # type: ignore[call-arg]  # keyword-only
    with pytest.raises(TypeError):
        Books(window="64")          # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [4, -1, 100])
def test_bad_self_trade_mode_raises(mode: int) -> None:
    with pytest.raises(ValueError, match="self_trade_prevention"):
        Books(self_trade_prevention=mode)
    with pytest.raises(ValueError, match="self_trade_prevention"):
        OrderBook(self_trade_prevention=mode)
    books = Books(2, self_trade_prevention=1)
    with pytest.raises(ValueError, match="self_trade_prevention"):
        books.set_self_trade_prevention(mode)
    with pytest.raises(ValueError, match="self_trade_prevention"):
        books.set_self_trade_prevention(mode, book=0)
    assert books.book_array["stp"].tolist() == [1, 1]


def test_configuration_of_a_missing_book_raises_index_error() -> None:
    books = Books(2)
    with pytest.raises(IndexError):
        books.set_self_trade_prevention(1, book=2)
    with pytest.raises(IndexError):
        books.set_fees(1, 1, book=-1)
    for query in (books.best_bid, books.best_ask, books.last_price, books.volume,
                  books.trade_count, books.live_orders):
        with pytest.raises(IndexError):
            query(2)


@pytest.mark.parametrize("side", [0, 2, 5, -3])
def test_level_queue_with_a_bad_side_raises(side: int) -> None:
    # an unchecked side once indexed the per-side overflow lists out of bounds
    books = Books(window=64, taker_fee_ppm=10**6)
    books.process_all(messages(msg(LIMIT, 1, BUY, 10**6, 1), msg(LIMIT, 2, BUY, 10, 1)))
    for price in (10**6, 10, 10**9):
        with pytest.raises(ValueError, match="side"):
            books.level_queue(0, side, price)


def test_a_batch_too_long_for_message_index_is_refused(tmp_path) -> None:
    # events carry message_index as int32: 2**31 messages would wrap it. A sparse file
    # mapped read-only stands for the 128 GiB batch (refused before anything is read).
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(2**31 * MESSAGE_DTYPE.itemsize)
    huge = np.memmap(path, dtype=MESSAGE_DTYPE, mode="r")
    with pytest.raises(ValueError, match="2\\*\\*31 - 1 messages per call"):
        Books().process(huge, np.zeros(8, dtype=EVENT_DTYPE))
