"""``itch.rebuild_books(threads=2)``: a parse thread reads and parses the file into a ring
of message batches while the books process them in the caller's thread. The books must end
bit for bit as with one thread, errors of the parse thread must reach the caller, and the
thread must not outlive the call."""

from __future__ import annotations

import threading

import pytest
from _books import same_books
from _data import data_dir

pytest.importorskip("rltrader._itch", reason="the compiled ITCH parser is not built")

from rltrader.data import itch  # noqa: E402
from rltrader.tools.workloads import limit_cancel, lobster_aapl  # noqa: E402

FLOW = data_dir("itch50", "keelan_200msg_orderflow.itch50") / "keelan_200msg_orderflow.itch50"


def _rebuild(path, threads: int, **reader_kwargs):
    reader = itch.ItchReader(path, **reader_kwargs)
    books, stats = itch.rebuild_books(reader, n_books=1, threads=threads)
    return books, stats


def _no_parse_thread() -> bool:
    return not any(t.name == "itch-parse" for t in threading.enumerate())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("itch_threads")
    out = {}
    for name, msgs in (("w1", limit_cancel(20_000, seed=3)), ("w3", lobster_aapl(n=30_000))):
        path = folder / f"{name}.itch50"
        itch.write_itch(path, msgs, ["SYNTH"])
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["w1", "w3"])
@pytest.mark.parametrize("reuse", [False, True])
@pytest.mark.parametrize("chunk_bytes", [64, 4096, 1 << 20])
def test_two_threads_end_in_the_same_books(files, name, reuse, chunk_bytes):
    one, stats_one = _rebuild(files[name], 1, chunk_bytes=chunk_bytes, reuse_buffers=reuse)
    two, stats_two = _rebuild(files[name], 2, chunk_bytes=chunk_bytes, reuse_buffers=reuse)
    same_books(one, two)
    assert (stats_one.messages, stats_one.trades, stats_one.rejected) == (
        stats_two.messages, stats_two.trades, stats_two.rejected)
    two.check_integrity()
    assert _no_parse_thread()


def test_two_threads_on_the_real_slice_reject_the_same_refs():
    n_books = len(itch.read_messages(FLOW, tick_size=1).book_symbols)
    results = [itch.rebuild_books(itch.ItchReader(FLOW, tick_size=1, chunk_bytes=256,
                                                  reuse_buffers=True),
                                  n_books=n_books, threads=threads)
               for threads in (1, 2)]
    same_books(results[0][0], results[1][0])
    assert results[1][1].rejected == results[0][1].rejected == {"UNKNOWN_ORDER": 70}


def test_a_parse_error_reaches_the_caller(tmp_path):
    path = tmp_path / "cut.itch50"
    path.write_bytes(FLOW.read_bytes()[:6000])
    n_books = len(itch.read_messages(FLOW, tick_size=1).book_symbols)
    with pytest.raises(itch.ItchFormatError, match="truncated record"):
        itch.rebuild_books(itch.ItchReader(path, tick_size=1, chunk_bytes=64),
                           n_books=n_books, threads=2)
    assert _no_parse_thread()


def test_an_error_of_the_caller_stops_the_parse_thread():
    with pytest.raises(ValueError, match="needs book"):
        itch.rebuild_books(itch.ItchReader(FLOW, tick_size=1, chunk_bytes=64), n_books=1,
                           threads=2)
    assert _no_parse_thread()


@pytest.mark.parametrize("threads", [0, 3, 1.5])
def test_threads_must_be_one_or_two(files, threads):
    with pytest.raises(ValueError, match="threads must be 1 or 2"):
        itch.rebuild_books(itch.ItchReader(files["w1"]), n_books=1, threads=threads)
