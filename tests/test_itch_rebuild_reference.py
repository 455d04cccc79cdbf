"""``itch.rebuild_books`` against the reference: the whole file parsed by
``read_messages``, then ``Books.process``. ``threads=1`` parses straight into the books
(``_itch.Rebuilder.feed``), a small batch of messages at a time; ``threads=2`` parses in a
second thread into a ring of batches (``produce`` / ``consume``). Either way the books must
end bit for bit as the reference's and the counts agree, whatever the chunk, batch, ring and
events-buffer sizes; a bad record or a message on a missing book stops it after exactly the
messages before it, and the parse thread never outlives the call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _books import same_books
from _data import data_dir
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rltrader._itch", reason="the compiled ITCH parser is not built")

from rltrader import Books  # noqa: E402
from rltrader._itch import Parser, Rebuilder  # noqa: E402
from rltrader.core.constants import REJECTED, Reason  # noqa: E402
from rltrader.core.messages import EVENT_DTYPE, empty_events  # noqa: E402
from rltrader.data import itch  # noqa: E402
from rltrader.data._levels import process_every  # noqa: E402
from rltrader.tools.workloads import limit_cancel, lobster_aapl  # noqa: E402

FLOW = data_dir("itch50", "keelan_200msg_orderflow.itch50") / "keelan_200msg_orderflow.itch50"


def _reference(msgs: np.ndarray, n_books: int) -> tuple[Books, dict[str, int]]:
    """``msgs`` through ``Books.process`` (one call per buffer-full), rejections counted."""
    books = Books(n_books, window=itch.fit_window(itch.MAX_WINDOW, n_books))
    rejected: dict[str, int] = {}
    events = empty_events(1 << 12)
    done = 0
    while done < msgs.shape[0]:
        consumed, written = books.process(msgs[done:], events)
        for reason in events["reason"][:written][events["kind"][:written] == REJECTED]:
            name = Reason(int(reason)).name
            rejected[name] = rejected.get(name, 0) + 1
        done += consumed
    return books, rejected


def _process(books: Books, msgs: np.ndarray) -> None:
    events = empty_events(1 << 12)
    done = 0
    while done < msgs.shape[0]:
        done += books.process(msgs[done:], events)[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("itch_fused")
    out = {}
    for name, msgs, symbols in (("w1", limit_cancel(20_000, seed=5), ["SYNTH"]),
                                ("w3", lobster_aapl(n=30_000), ["SYNTH"]),
                                ("three", limit_cancel(6_000, n_books=3, seed=2),
                                 ["AAA", "BBB", "CCC"])):
        path = folder / f"{name}.itch50"
        itch.write_itch(path, msgs, symbols)
        out[name] = path
    return out


def _no_parse_thread() -> bool:
    return not any(t.name == "itch-parse" for t in threading.enumerate())


@pytest.mark.parametrize("name", ["w1", "w3", "three"])
@pytest.mark.parametrize("chunk_bytes", [64, 4096, 1 << 20])
@pytest.mark.parametrize("batch", [1, 7, 2048])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_rebuild_ends_in_the_reference_books(files, monkeypatch, name, chunk_bytes, batch,
                                                 threads):
    monkeypatch.setattr(itch, "FUSED_BATCH", batch)
    feed = itch.read_messages(files[name])
    n_books = len(feed.book_symbols)
    expected, rejected = _reference(feed.messages, n_books)
    books, stats = itch.rebuild_books(itch.ItchReader(files[name], chunk_bytes=chunk_bytes),
                                      n_books=n_books, threads=threads)
    same_books(books, expected)
    assert stats.messages == feed.messages.shape[0]
    assert stats.trades == feed.trades.shape[0]
    assert stats.rejected == rejected
    books.check_integrity()
    assert _no_parse_thread()


@pytest.mark.parametrize("slots", [2, 3, 8])
def test_any_ring_size_gives_the_same_books(files, monkeypatch, slots):
    monkeypatch.setattr(itch, "PIPELINE_SLOTS", slots)
    monkeypatch.setattr(itch, "FUSED_BATCH", 100)
    feed = itch.read_messages(files["w3"])
    expected, rejected = _reference(feed.messages, 1)
    books, stats = itch.rebuild_books(itch.ItchReader(files["w3"], chunk_bytes=1000),
                                      n_books=1, threads=2)
    same_books(books, expected)
    assert (stats.messages, stats.rejected) == (feed.messages.shape[0], rejected)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_real_slice_with_its_rejections_and_trades(threads):
    feed = itch.read_messages(FLOW, tick_size=1)
    expected, rejected = _reference(feed.messages, len(feed.book_symbols))
    assert rejected == {"UNKNOWN_ORDER": 70}
    books, stats = itch.rebuild_books(itch.ItchReader(FLOW, tick_size=1, chunk_bytes=256),
                                      n_books=len(feed.book_symbols), threads=threads)
    same_books(books, expected)
    assert (stats.messages, stats.trades, stats.rejected) == (198, 2, rejected)


@pytest.mark.parametrize("n_events", [64, 100, 1 << 16])
@pytest.mark.parametrize("threads", [1, 2])
def test_events_buffers_of_any_size_give_the_same_books(files, n_events, threads):
    """A buffer too small for the next message's worst case is replaced (the books grow
    deep: 20,000 limits and cancels leave hundreds resting)."""
    feed = itch.read_messages(files["w1"])
    expected, rejected = _reference(feed.messages, 1)
    books, stats = itch.rebuild_books(itch.ItchReader(files["w1"]), n_books=1,
                                      events=empty_events(n_events), threads=threads)
    same_books(books, expected)
    assert stats.rejected == rejected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3_000),
       n_books=st.integers(1, 3), chunk_bytes=st.sampled_from([64, 200, 4096]),
       batch=st.integers(1, 300), threads=st.sampled_from([1, 2]))
def test_random_streams_rebuild_as_the_reference(tmp_path_factory, seed, n, n_books,
                                                 chunk_bytes, batch, threads):
    path = tmp_path_factory.mktemp("random") / "flow.itch50"
    msgs = limit_cancel(n, n_books=n_books, seed=seed, target_depth=40, depth=8)
    itch.write_itch(path, msgs, [f"S{b}" for b in range(n_books)])
    feed = itch.read_messages(path)
    expected, rejected = _reference(feed.messages, n_books)
    old = itch.FUSED_BATCH
    itch.FUSED_BATCH = batch
    try:
        books, stats = itch.rebuild_books(itch.ItchReader(path, chunk_bytes=chunk_bytes),
                                          n_books=n_books, threads=threads)
    finally:
        itch.FUSED_BATCH = old
    same_books(books, expected)
    assert (stats.messages, stats.rejected) == (feed.messages.shape[0], rejected)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_message_on_a_missing_book_stops_right_before_it(files, threads):
    feed = itch.read_messages(files["three"])
    first = int(np.flatnonzero(feed.messages["book"] == 2)[0])
    expected = Books(2, window=itch.fit_window(itch.MAX_WINDOW, 2))
    _process(expected, feed.messages[:first])
    books = Books(2, window=itch.fit_window(itch.MAX_WINDOW, 2))
    with pytest.raises(ValueError, match="stock 'CCC' needs book 2, the Books has 2"):
        itch.rebuild_books(itch.ItchReader(files["three"], chunk_bytes=4096), books,
                           threads=threads)
    same_books(books, expected)
    assert _no_parse_thread()


def _record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos + 2 <= len(data):
        offsets.append(pos)
        pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
    return offsets


@pytest.mark.parametrize("threads", [1, 2])
def test_a_bad_record_stops_after_the_messages_before_it(files, tmp_path, threads):
    data = bytearray(files["w1"].read_bytes())
    offsets = _record_offsets(bytes(data))
    adds = [o for o in offsets if o + 2 < len(data) and data[o + 2] == ord("A")]
    bad = adds[len(adds) // 2]
    data[bad + 2 + 19] = ord("X")                   # buy/sell indicator
    path = tmp_path / "bad_side.itch50"
    path.write_bytes(bytes(data))
    good = itch.read_messages(files["w1"])
    # the messages of the records before the bad one (every record before it is a book
    # message or one of the writer's leading directory and system records)
    before = sum(1 for o in offsets if o < bad and data[o + 2] in b"ADEXCUF")
    expected = Books(1, window=itch.fit_window(itch.MAX_WINDOW, 1))
    _process(expected, good.messages[:before])
    books = Books(1, window=itch.fit_window(itch.MAX_WINDOW, 1))
    with pytest.raises(itch.ItchFormatError, match="buy/sell indicator") as info:
        itch.rebuild_books(itch.ItchReader(path, chunk_bytes=4096), books, threads=threads)
    assert info.value.offset == bad
    same_books(books, expected)
    assert _no_parse_thread()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_truncated_file_is_an_error(tmp_path, threads):
    path = tmp_path / "cut.itch50"
    path.write_bytes(FLOW.read_bytes()[:6000])
    n_books = len(itch.read_messages(FLOW, tick_size=1).book_symbols)
    with pytest.raises(itch.ItchFormatError, match="truncated record"):
        itch.rebuild_books(itch.ItchReader(path, tick_size=1, chunk_bytes=64), n_books=n_books,
                           threads=threads)


def test_rebuilder_arguments_are_checked():
    parser = Parser(None)
    books = Books(1)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        Rebuilder(parser, books, empty_events(16), 0)
    with pytest.raises(TypeError, match="events must be a numpy array of dtype"):
        Rebuilder(parser, books, np.zeros(16, np.int64))
    with pytest.raises(ValueError, match="events must be writeable"):
        events = empty_events(16)
        events.flags.writeable = False
        Rebuilder(parser, books, events)
    with pytest.raises(ValueError, match="at least one record"):
        Rebuilder(parser, books, np.zeros(0, EVENT_DTYPE))
    with pytest.raises(TypeError):
        Rebuilder(parser, None, empty_events(16))
    with pytest.raises(ValueError, match="slots must be 0 or at least 2"):
        Rebuilder(parser, books, empty_events(16), 8, 1)
    with pytest.raises(RuntimeError, match="fed by produce and consume"):
        Rebuilder(parser, books, empty_events(16), 8, 2).feed(b"", 0)
    with pytest.raises(RuntimeError, match="needs a Rebuilder with slots"):
        Rebuilder(parser, books, empty_events(16)).consume()


def test_process_every_is_the_same_reference(files):
    """The reference above agrees with ``process_every`` (the project's one-book loop)."""
    feed = itch.read_messages(files["w3"])
    a, _ = _reference(feed.messages, 1)
    b = Books(1, window=itch.fit_window(itch.MAX_WINDOW, 1))
    process_every(b, feed.messages, empty_events(1 << 12))
    same_books(a, b)
