"""One sampler of the top levels after groups of messages (``levels_after``) and the loop
under it (``process_every``): no message is ever left out, however many events its worst
case needs, and the callers built on it (``replay_depth``, ``rltrader replay itch
--dump-l2``, ``rltrader replay <crypto>``) keep such messages too."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader import BUY, IOC, LIMIT, MAX_PRICE, MAX_QTY, REPLACE, SELL, STOP, Books  # noqa: E402
from rltrader.core.messages import empty_events, empty_messages  # noqa: E402
from rltrader.data import lobster  # noqa: E402
from rltrader.data._decimal import DecimalGrid  # noqa: E402
from rltrader.data._levels import (  # noqa: E402
    depth_after,
    levels_after,
    process_every,
    worst_case_events,
)
from rltrader.data.itch import write_itch  # noqa: E402
from rltrader.data.replay import _dump_itch_l2  # noqa: E402

#: More resting orders than the 4,096-event buffer ``_dump_itch_l2`` used to have.
DEEP = 5000


def _bids(n: int) -> np.ndarray:
    """``n`` buy limits of 100 lots, ids 1..n, at prices 1..n ticks."""
    msgs = empty_messages(n)
    msgs["op"], msgs["side"], msgs["qty"] = LIMIT, BUY, 100
    msgs["order_id"] = msgs["price"] = msgs["timestamp"] = np.arange(1, n + 1)
    return msgs


def _pending_stops(n: int) -> np.ndarray:
    """``n`` buy stops far above any trade (they wait), then one resting sell limit, whose
    worst case is 6 + 6 * n events (every stop could trigger)."""
    msgs = empty_messages(n + 1)
    msgs["op"][:n], msgs["side"][:n], msgs["tif"][:n] = STOP, BUY, IOC
    msgs["stop_price"][:n], msgs["qty"] = 1000, 1
    msgs["order_id"] = msgs["timestamp"] = np.arange(1, n + 2)
    msgs["op"][n], msgs["side"][n], msgs["price"][n] = LIMIT, SELL, 10
    return msgs


def test_dump_itch_l2_keeps_a_replace_whose_bound_exceeds_4096_events(tmp_path):
    """A ``U`` (replace) on a book of 5,000 orders may emit 6 + 5,000 events; the dump used
    a 4,096-event buffer, on which ``Books.process`` raised instead of processing it."""
    msgs = np.concatenate([_bids(DEEP), empty_messages(1)])
    last = msgs[DEEP]
    last["op"], last["order_id"], last["new_order_id"] = REPLACE, DEEP, DEEP + 1
    last["price"], last["qty"], last["timestamp"] = DEEP - 1, 50, DEEP + 1
    path, out = tmp_path / "deep.itch50", tmp_path / "l2.csv"
    write_itch(path, msgs, ["DEEP"], tick_size=1)
    assert _dump_itch_l2(str(path), None, 2, 1, str(out)) == DEEP + 1
    rows = np.loadtxt(out, delimiter=",", dtype=np.int64)
    assert rows.shape == (DEEP + 1, 8)
    no_ask = [lobster.EMPTY_ASK_PRICE, 0]
    # before: bids 5000 x 100, 4999 x 100; after: order 5000 moved to 4999 for 50 lots
    assert rows[-2].tolist() == no_ask + [DEEP, 100] + no_ask + [DEEP - 1, 100]
    assert rows[-1].tolist() == no_ask + [DEEP - 1, 150] + no_ask + [DEEP - 2, 100]


def test_replay_depth_keeps_a_sweep_whose_bound_exceeds_4096_events():
    """A LOBSTER sell for 5,001 shares against 5,000 one-share bids may emit 6 + 5,000
    events: replay_depth's 4,096-event buffer made ``Books.process`` raise."""
    raw = np.zeros(DEEP + 1, dtype=lobster.RAW_DTYPE)
    raw["type"], raw["size"], raw["direction"] = 1, 1, BUY
    raw["order_id"] = raw["timestamp"] = np.arange(1, DEEP + 2)
    raw["price"][:DEEP] = 100 * np.arange(1, DEEP + 1)        # $0.0001 units: 1..5000 ticks
    raw[DEEP]["size"], raw[DEEP]["price"], raw[DEEP]["direction"] = DEEP + 1, 100, SELL
    prices, qtys = lobster.replay_depth(lobster.to_messages(raw), levels=1)
    assert prices[-2].tolist() == [[DEEP], [0]] and qtys[-2].tolist() == [[1], [0]]
    # every bid filled; one share rests at 1 tick
    assert prices[-1].tolist() == [[0], [1]] and qtys[-1].tolist() == [[0], [1]]


def test_levels_after_matches_one_process_all_and_reports_every_event():
    """Pending stops (6 events each in a message's worst case) outgrow the default buffer
    (len(messages) + 1,024) after 220 of them: it grows. ``check`` sees every event once,
    with the index of the first message of its call."""
    msgs = _pending_stops(300)
    books = Books(1)
    seen: list[np.ndarray] = []

    def check(events: np.ndarray, first: int) -> None:
        events = events.copy()
        events["message_index"] += first
        seen.append(events)

    ends = np.array([0, 0, 150, 300, 300, 301])
    prices, qtys = levels_after(books, msgs, ends, 2, check)
    reference = Books(1).process_all(msgs)
    assert np.array_equal(np.concatenate(seen), reference)
    assert prices.shape == qtys.shape == (6, 2, 2)
    assert not qtys[:5].any()                     # stops wait off the book
    assert prices[5].tolist() == [[0, 0], [10, 0]] and qtys[5].tolist() == [[0, 0], [1, 0]]
    assert books.live_orders(0) == 301
    assert worst_case_events(books) == 6 + 1 + 6 * 300


def test_depth_after_keeps_a_message_its_first_buffer_cannot_hold():
    """depth_after's buffer (len(messages) + 1,024 = 1,325 events) is too small for a
    message's worst case once 220 stops are pending; it made ``Books.process`` raise."""
    prices, qtys = depth_after(_pending_stops(300), np.arange(301), np.array([299, 300]), 1)
    assert prices.tolist() == [[[0], [0]], [[0], [10]]]
    assert qtys.tolist() == [[[0], [0]], [[0], [1]]]


def test_process_every_grows_a_buffer_too_small_for_one_message():
    books = Books(1)
    process_every(books, _bids(DEEP), empty_events(DEEP + 1024))
    sweep = empty_messages(1)
    sweep["op"], sweep["side"], sweep["qty"], sweep["order_id"] = LIMIT, SELL, MAX_QTY, 1 << 40
    sweep["price"] = 1
    with pytest.raises(ValueError, match="cannot hold"):
        books.process(sweep, empty_events(4096))   # what the old fixed buffers did
    events = process_every(books, sweep, empty_events(4096))
    assert events.shape[0] >= 6 + DEEP
    assert books.best_bid(0) == 0 and books.best_ask(0) == 1


@pytest.mark.parametrize("ends, match", [
    ([2, 1], "ascend"), ([-1], "ascend"), ([302], r"ascend within \[0, 301\]"),
    ([[1]], "1-D"),
])
def test_levels_after_rejects_bad_ends(ends, match):
    with pytest.raises(ValueError, match=match):
        levels_after(Books(1), _pending_stops(300), np.array(ends), 1)


def test_levels_after_needs_a_one_book_books():
    with pytest.raises(ValueError, match="one book, got 2"):
        levels_after(Books(2), _bids(3), np.array([3]), 1)


def test_crypto_replay_keeps_messages_a_3n_buffer_cannot_hold(monkeypatch, capsys):
    """``rltrader replay`` sized its buffer 3 * n + 1,024 and, when a call returned early,
    called again on the same (too small) remainder, which raised."""
    from rltrader.data import replay_crypto

    msgs = _pending_stops(300)
    grid = DecimalGrid("1", "price", MAX_PRICE)
    loaded = replay_crypto.Loaded(None, msgs, np.arange(msgs.shape[0]), grid,
                                  DecimalGrid("1", "size", MAX_QTY), msgs.shape[0], "stops")
    monkeypatch.setattr(replay_crypto, "load", lambda *args, **kwargs: loaded)
    assert replay_crypto.main("tardis", ["unused.csv"], levels=1) == 0
    text = capsys.readouterr().out
    assert "301 book messages" in text and "0 rejected" in text
    bid, ask = text.splitlines()[-1].split("|")          # level 1: no bid, 1 lot at 10
    assert bid.split() == ["1", "-", "-"] and ask.split() == ["10", "1", "1"]


def test_rebuild_books_grows_a_buffer_too_small_for_a_deep_book(tmp_path):
    """``itch.rebuild_books`` with a 64-event buffer on a book of 5,000 orders and a
    replace whose bound is 5,006 events: the buffer is replaced, every message processed,
    none rejected (it used to raise on the replace)."""
    from rltrader.data.itch import ItchReader, rebuild_books

    msgs = np.concatenate([_bids(DEEP), empty_messages(1)])
    last = msgs[DEEP]
    last["op"], last["order_id"], last["new_order_id"] = REPLACE, DEEP, DEEP + 1
    last["price"], last["qty"], last["timestamp"] = DEEP - 1, 50, DEEP + 1
    path = tmp_path / "deep.itch50"
    write_itch(path, msgs, ["DEEP"], tick_size=1)
    books, stats = rebuild_books(ItchReader(path, tick_size=1), events=empty_events(64))
    assert stats.messages == DEEP + 1 and stats.rejected == {}
    assert books.live_orders() == DEEP and books.best_bid(0) == DEEP - 1
