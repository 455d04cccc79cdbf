"""NASDAQ TotalView-ITCH 5.0 BinaryFILE files as the core's message array, and back.

A BinaryFILE (``MMDDYYYY.NASDAQ_ITCH50[.gz]``) is a run of records, each a big-endian
``u16`` length (not counting itself) and one ITCH message; a zero length marks the end of
the session. Field layouts: ``shared/reference/itch50.md``. The parsing and writing loops
are compiled (:mod:`rltrader._itch`, ``nogil``); this module streams files through them.

How ITCH messages become messages (``owner = NO_OWNER``, ``tif = GTC``, timestamps = ITCH
ns since midnight, ``book`` = the stock's book):

=======  ============================  ==============================================
type     ITCH                          message
=======  ============================  ==============================================
A, F     add order (F: with MPID)      ``LIMIT`` GTC, ``order_id = order ref``, side
                                       B/S as ``BUY``/``SELL``, ``price = Price(4) /
                                       tick_size``, ``qty = shares``
E        order executed                ``EXECUTE`` ``qty = executed shares``
C        executed with price           ``EXECUTE`` as E, plus a ``C`` row in ``trades``
                                       with the execution price, match number and
                                       printable flag (the core prints at the resting
                                       price; the C price can differ)
X        order cancel (partial)        ``REDUCE`` by ``cancelled shares`` (keeps
                                       priority; the core cancels when it reaches 0)
D        order delete                  ``CANCEL``
U        order replace                 ``REPLACE`` with ``new_order_id = new order
                                       ref``, new price and shares, ``GTC``: the core
                                       cancels the old ref and adds the new one with
                                       the old side at the back of the queue, which is
                                       exactly ITCH's U (side, stock, MPID kept,
                                       priority lost). One message, so ``CANCEL`` +
                                       ``LIMIT`` is not needed.
P, Q, B  trade, cross trade, broken    ``trades`` rows (``TRADE_DTYPE``): they do not
                                       change the visible book
R        stock directory               ``directory`` rows; names the stock locate
H        trading action                ``trading_actions`` rows
S        system event                  ``system_events`` rows
others   Y L V W K J h I N O           counted in ``type_counts`` only
=======  ============================  ==============================================

Order ids. ITCH order refs are unique for the day across all stocks, so they are used as
the core's ids unchanged. The core reserves ``order_id <= 0`` (invalid) and
``new_order_id == 0`` (a ``REPLACE`` that keeps its id), and ids are ``int64``: an
``A``/``F``/``E``/``C``/``X``/``D``/``U`` with ref 0 or ref ``>= 2**63`` raises
:class:`ItchFormatError`. No other id range is reserved (LOBSTER's snapshot ids
``>= 2**52`` are not used here; ITCH refs of a real day stay far below).

Books. ``symbols=None`` keeps every stock, numbering books in the order their stock locate
first appears (the ``R`` directory spin at the start of a day file gives directory order;
the writer below writes book ``b`` as locate ``b + 1``). ``symbols=[...]`` keeps those
stocks only, ``book = position in the list``; a stock locate is matched to a symbol by its
``R`` message, or by the stock field of its first ``A``/``F``/``P``/``Q``/``H``. Records
of other stocks are counted (``counters["not_selected"]``); ``E``/``X``/``D``/``U``/``C``
on a locate never named yet (only possible in a slice that starts mid-day) are counted as
``counters["unresolved"]`` and left out, since they cannot name a selected stock.

Prices. ``Price(4)`` is dollars x 10^4; book prices become ticks by ``tick_size`` (default
100 = $0.01). A book price that is not a multiple raises :class:`ItchFormatError` (stocks
under $1 quote in $0.0001: use ``tick_size=1``). Trade prices stay in Price(4) units
(``price_e4``): hidden and cross executions can fall between ticks.

Halts. While a stock is halted or paused (last ``H`` state ``H`` or ``P``) the book is
rebuilt exactly as ITCH reports it: deletes and cancels still apply, adds rest in the book
(they are live when trading resumes), and ITCH sends no executions; any ``E``/``C`` that
does arrive is still applied and counted in ``counters["executions_while_halted"]``. The
halt and resume times are the ``trading_actions`` rows; the reopening cross is a ``Q`` row
with ``cross_type = b'H'``.

Unknown order refs. A slice that starts mid-day deletes and executes orders added before
it; they reach the core, which rejects them with ``UNKNOWN_ORDER`` (a ``REPLACE`` of such
an order is rejected too, so its new ref stays unknown). Nothing is dropped silently.

Malformed input raises :class:`ItchFormatError` (a ``ValueError``) naming the byte offset
of the record and the problem: a record cut short at the end of the file, an unknown
message type (``on_unknown="skip"`` counts and skips them instead, as Nasdaq adds types),
a length that is not the type's fixed length, a bad order ref, side or tick, or bytes after
the end-of-session record.

Streaming. :class:`ItchReader` reads ``chunk_bytes`` at a time (plain or gzip, detected
from the content) into one reused buffer; a record that straddles two reads is carried to
the next. Memory is bounded by a few times ``chunk_bytes`` whatever the file size
(``benchmarks/itch_bigfile.py`` checks it on a 1 GB file). :func:`rebuild_books` does not
go through chunks of messages: it parses straight into the books, 2,048 messages at a time
(:class:`rltrader._itch.Rebuilder`), in this thread or, with ``threads=2``, in a parse
thread that stays a few batches ahead. Classic libpcap captures
(Ethernet/IPv4/UDP, bare records or MoldUDP64 per datagram) are unwrapped whole in memory
first by :mod:`rltrader.data.pcap`: meant for small captures.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from rltrader import _itch
from rltrader._itch import (
    DIRECTORY_DTYPE,
    MESSAGE_LENGTHS,
    SYSTEM_EVENT_DTYPE,
    TRADE_DTYPE,
    TRADING_ACTION_DTYPE,
    ParseStatus,
    WriteStatus,
)
from rltrader.core.constants import PathLike
from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE
from rltrader.data import pcap
from rltrader.data._io import GZIP_ERRORS, FormatError

if TYPE_CHECKING:
    from rltrader._book import Books

#: Default bytes read per chunk.
CHUNK_BYTES = 1 << 20

#: Largest record: a u16 length prefix plus up to 65,535 message bytes.
_MAX_RECORD = 2 + 0xFFFF

_PARSE_PROBLEMS = {
    ParseStatus.UNKNOWN_TYPE: "unknown message type",
    ParseStatus.BAD_LENGTH: "length does not match the message type",
    ParseStatus.BAD_ORDER_REF: "order ref is 0 or does not fit int64",
    ParseStatus.BAD_SIDE: "buy/sell indicator is not 'B' or 'S'",
    ParseStatus.BAD_TICK: "price ($0.0001 units) is not a multiple of tick_size (stocks "
                          "under $1 quote in $0.0001: pass tick_size=1)",
    ParseStatus.BAD_SHARES: "cross shares do not fit int64",
    ParseStatus.OUTPUT_FULL: "output buffer too small (a bug in rltrader)",
}

_WRITE_PROBLEMS = {
    WriteStatus.BAD_OP: "op has no ITCH record (only LIMIT, CANCEL, REDUCE, REPLACE, EXECUTE)",
    WriteStatus.BAD_TIF: "LIMIT / REPLACE must be GTC",
    WriteStatus.BAD_MESSAGE_SIDE: "LIMIT side must be BUY or SELL",
    WriteStatus.BAD_PRICE: "price x tick_size does not fit ITCH's u32 Price(4)",
    WriteStatus.BAD_QTY: "qty must be in [0, 2**32)",
    WriteStatus.BAD_ID: "order id must be > 0 (REPLACE: a new id, not 0 or the old one)",
    WriteStatus.BAD_BOOK: "book has no symbol in the directory",
    WriteStatus.BAD_TIMESTAMP: "timestamp must be in [0, 2**48) ns",
    WriteStatus.BAD_TRADE: "trade row is malformed (kind, field range, message_index order, "
                           "or a C row not on an EXECUTE of the same ref and shares, or "
                           "not the last row of its message_index)",
    WriteStatus.WRITE_FULL: "output buffer too small (a bug in rltrader)",
}

_COUNTERS = ("not_selected", "unresolved", "executions_while_halted", "unknown_skipped")


class ItchFormatError(FormatError):
    """Malformed ITCH input (or the capture around it); ``offset`` is the byte offset of the
    bad record."""


@dataclass(frozen=True)
class ItchChunk:
    """What one read of the file decoded.

    ``trades["message_index"]`` indexes ``messages`` of the same chunk. ``offset`` is the
    file offset of the chunk's first record and ``nbytes`` the bytes it covers.
    """

    messages: np.ndarray
    trades: np.ndarray
    directory: np.ndarray
    trading_actions: np.ndarray
    system_events: np.ndarray
    offset: int
    nbytes: int


@dataclass(frozen=True)
class ItchFeed:
    """A whole file decoded (see :func:`read_messages`).

    ``trades["message_index"]`` indexes ``messages``. ``book_symbols[b]`` and
    ``book_locates[b]`` name book ``b`` (``""`` / 0 if a selected symbol never appeared).
    """

    messages: np.ndarray
    trades: np.ndarray
    directory: np.ndarray
    trading_actions: np.ndarray
    system_events: np.ndarray
    book_symbols: list[str]
    book_locates: np.ndarray
    type_counts: dict[str, int]
    counters: dict[str, int]
    nbytes: int


def _symbol_bytes(symbol: str | bytes) -> bytes:
    raw = symbol.encode("ascii") if isinstance(symbol, str) else bytes(symbol)
    raw = raw.rstrip(b" ")
    if not 0 < len(raw) <= 8:
        raise ValueError(f"symbol {symbol!r} must be 1-8 ASCII characters")
    return raw


def _open(path: PathLike) -> BinaryIO:
    """Open a BinaryFILE, gunzipping or unwrapping a pcap as the first bytes say."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if head in pcap.PCAP_MAGIC:
        try:
            return io.BytesIO(pcap.pcap_to_binaryfile(path))
        except pcap.PcapFormatError as exc:
            raise ItchFormatError(exc.path, exc.offset, exc.problem) from None
    return open(path, "rb", buffering=0)


def _read_into(f: BinaryIO, view: memoryview, path: str, offset: int) -> int:
    """Fill ``view`` from ``f`` as far as the file allows; return the bytes read. A damaged
    gzip stream raises :class:`ItchFormatError` at ``offset`` (the uncompressed bytes so
    far)."""
    got = 0
    while got < len(view):
        try:
            n = f.readinto(view[got:])  # type: ignore[attr-defined]
        except GZIP_ERRORS as exc:
            raise ItchFormatError(path, offset + got, f"damaged or truncated gzip stream "
                                  f"({exc})") from None
        if not n:
            break
        got += n
    return got


class ItchReader:
    """Stream an ITCH 5.0 BinaryFILE as :class:`ItchChunk` objects.

    Parameters
    ----------
    path : path-like
        Plain, gzip or pcap (see the module docstring).
    symbols : sequence of str, optional
        Stocks to keep (``book = position``); ``None`` keeps all.
    tick_size : int
        Price(4) units ($0.0001) per tick for book prices.
    chunk_bytes : int
        Bytes read per chunk (memory is a few times this).
    on_unknown : {"raise", "skip"}
        Unknown message types: raise :class:`ItchFormatError`, or count and skip.
    reuse_buffers : bool
        Decode every chunk into the same output arrays, allocated once: faster (no fresh
        pages per chunk), but a chunk's arrays are overwritten by the next one, so copy
        what you keep. Off by default: each chunk gets its own arrays.

    A reader iterates once (its book numbering and counts carry across chunks). After (or
    during) iteration, :attr:`book_symbols`, :attr:`book_locates`, :attr:`type_counts`,
    :attr:`counters` and :attr:`nbytes` describe what was read so far.
    """

    def __init__(self, path: PathLike, symbols: Sequence[str] | None = None, *,
                 tick_size: int = 100, chunk_bytes: int = CHUNK_BYTES,
                 on_unknown: str = "raise", reuse_buffers: bool = False) -> None:
        if on_unknown not in ("raise", "skip"):
            raise ValueError(f"on_unknown must be 'raise' or 'skip', got {on_unknown!r}")
        if chunk_bytes < 64:
            raise ValueError(f"chunk_bytes must be >= 64, got {chunk_bytes}")
        self.path = os.fspath(path)
        self.chunk_bytes = int(chunk_bytes)
        selected = None if symbols is None else [_symbol_bytes(s) for s in symbols]
        self._parser = _itch.Parser(selected, tick_size=tick_size,
                                    skip_unknown=on_unknown == "skip")
        self.nbytes = 0             # bytes decoded so far
        self.reuse_buffers = reuse_buffers
        self._reused: tuple[np.ndarray, ...] | None = None  # the one set (reuse_buffers)
        self._started = False

    @property
    def n_books(self) -> int:
        return int(self._parser.n_books)

    @property
    def book_symbols(self) -> list[str]:
        return [s.decode("ascii") for s in self._parser.book_symbol_array[:self.n_books]]

    @property
    def book_locates(self) -> np.ndarray:
        return self._parser.locate_of_book[:self.n_books].astype(np.uint16)

    @property
    def type_counts(self) -> dict[str, int]:
        counts = self._parser.type_counts
        return {chr(t): int(counts[t]) for t in np.flatnonzero(counts)}

    @property
    def counters(self) -> dict[str, int]:
        return dict(zip(_COUNTERS, self._parser.counters.tolist(), strict=True))

    def _error(self, status: int) -> ItchFormatError:
        offset, kind, length, value = self._parser.error()
        what = f"record type {chr(kind)!r} (0x{kind:02x}), length {length}"
        problem = _PARSE_PROBLEMS[ParseStatus(status)]
        if status == ParseStatus.BAD_LENGTH:
            problem += f": expected {MESSAGE_LENGTHS[bytes([kind])]}"
        elif status != ParseStatus.UNKNOWN_TYPE:
            problem = f"{value}: {problem}"
        return ItchFormatError(self.path, offset, f"{what}: {problem}")

    def _buffers(self, n: int) -> tuple[np.ndarray, ...]:
        """Output arrays that can hold the records of ``n`` bytes (sizes: ``Parser.parse``)."""
        if self.reuse_buffers:
            if self._reused is not None:
                return self._reused
            n = self.chunk_bytes + _MAX_RECORD
        out = (np.empty(n // 21 + 2, MESSAGE_DTYPE), np.empty(n // 21 + 2, TRADE_DTYPE),
               np.empty(n // 41 + 1, DIRECTORY_DTYPE),
               np.empty(n // 27 + 1, TRADING_ACTION_DTYPE),
               np.empty(n // 14 + 1, SYSTEM_EVENT_DTYPE))
        if self.reuse_buffers:
            self._reused = out
        return out

    def _decode(self, data: memoryview, base: int) -> tuple[int, int, ItchChunk]:
        out = self._buffers(len(data))
        status, consumed, *counts = self._parser.parse(data, base, *out)
        if status > ParseStatus.END_OF_SESSION:
            raise self._error(status)
        arrays = [a[:k] for a, k in zip(out, counts, strict=True)]
        return status, consumed, ItchChunk(*arrays, offset=base, nbytes=consumed)

    def __iter__(self) -> Iterator[ItchChunk]:
        for chunk in self._stream(self._decode):
            if chunk is not None:
                yield chunk

    def _stream(self, decode: Callable[[memoryview, int], tuple[int, int, Any]],
                read_bytes: int | None = None) -> Iterator[Any]:
        """Read the file ``read_bytes`` (default ``chunk_bytes``) at a time and
        ``decode(view, base)`` each (returning ``(status, consumed, item)``); yield the
        items of the calls that consumed bytes."""
        if self._started:
            raise RuntimeError("an ItchReader iterates once; make a new one to read again")
        self._started = True
        read_bytes = self.chunk_bytes if read_bytes is None else read_bytes
        # np.empty, not bytearray: a bytearray's zero fill was a page fault and a memset
        # per 4 KiB before the first read overwrote it
        view = memoryview(np.empty(read_bytes + _MAX_RECORD, np.uint8))
        held = 0       # bytes at the front of view not decoded yet (a partial record)
        base = 0       # file offset of view[0]
        with _open(self.path) as f:
            while True:
                got = _read_into(f, view[held:held + read_bytes], self.path, base + held)
                filled = held + got
                status, consumed, item = decode(view[:filled], base)
                if consumed:
                    self.nbytes = base + consumed
                    yield item
                if status == ParseStatus.END_OF_SESSION:
                    self._check_end(f, filled - consumed, base + consumed)
                    base += consumed
                    break
                held = filled - consumed
                view[:held] = view[consumed:filled]
                base += consumed
                if not got:
                    if held:
                        raise self._truncated(view[:held], base)
                    break
        self.nbytes = base

    def _check_end(self, f: BinaryIO, left: int, offset: int) -> None:
        if left or f.read(1):
            raise ItchFormatError(self.path, offset, "data after the end-of-session record")

    def _truncated(self, rest: memoryview, offset: int) -> ItchFormatError:
        if len(rest) < 2:
            need = "a 2-byte length prefix"
        else:
            need = f"a {int.from_bytes(rest[:2], 'big')}-byte message"
        return ItchFormatError(self.path, offset,
                               f"truncated record: {len(rest)} bytes left, expected {need}")


def iter_messages(path: PathLike, symbols: Sequence[str] | None = None, *,
                  tick_size: int = 100, chunk_bytes: int = CHUNK_BYTES,
                  on_unknown: str = "raise") -> Iterator[np.ndarray]:
    """Yield the book messages of an ITCH file chunk by chunk (see :class:`ItchReader`)."""
    for chunk in ItchReader(path, symbols, tick_size=tick_size, chunk_bytes=chunk_bytes,
                            on_unknown=on_unknown):
        if chunk.messages.size:
            yield chunk.messages


def read_messages(path: PathLike, symbols: Sequence[str] | None = None, *,
                  tick_size: int = 100, chunk_bytes: int = CHUNK_BYTES,
                  on_unknown: str = "raise") -> ItchFeed:
    """Decode a whole ITCH file into one :class:`ItchFeed` (holds it all in memory)."""
    reader = ItchReader(path, symbols, tick_size=tick_size, chunk_bytes=chunk_bytes,
                        on_unknown=on_unknown)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("messages", "trades", "directory",
                                           "trading_actions", "system_events")}
    n_before = 0
    for chunk in reader:
        trades = chunk.trades.copy()
        trades["message_index"] += n_before
        n_before += chunk.messages.shape[0]
        for name, part in parts.items():
            part.append(trades if name == "trades" else getattr(chunk, name))
    dtypes = {"messages": MESSAGE_DTYPE, "trades": TRADE_DTYPE, "directory": DIRECTORY_DTYPE,
              "trading_actions": TRADING_ACTION_DTYPE, "system_events": SYSTEM_EVENT_DTYPE}
    merged = {k: np.concatenate(v) if v else np.zeros(0, dtypes[k]) for k, v in parts.items()}
    return ItchFeed(**merged, book_symbols=reader.book_symbols,
                    book_locates=reader.book_locates, type_counts=reader.type_counts,
                    counters=reader.counters, nbytes=reader.nbytes)


def read_directory(path: PathLike, *, full: bool = False,
                   chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """The ``R`` Stock Directory records of an ITCH file (``DIRECTORY_DTYPE``).

    A day file sends its directory spin before any order, so by default reading stops at
    the first chunk that holds book messages; ``full=True`` reads the whole file.
    ``book`` numbers the stocks in directory order (as ``read_messages(symbols=None)``).
    """
    parts = []
    # tick_size=1: prices never fail here
    for chunk in ItchReader(path, tick_size=1, chunk_bytes=chunk_bytes, on_unknown="skip"):
        parts.append(chunk.directory)
        if chunk.messages.size and not full:
            break
    return np.concatenate(parts) if parts else np.zeros(0, DIRECTORY_DTYPE)


#: Dense price window of a rebuilt book when its prices need it (the core's default).
MAX_WINDOW = 4096

#: Bytes that :func:`fit_window` lets the dense levels of all books take together. A file
#: can name up to 65,535 stocks; with the full window each book costs ~100 KB of levels.
LEVEL_BUDGET = 64 << 20

_LEVEL_BYTES = 24  # LEVEL_DTYPE.itemsize (checked in tests)


class PriceSpans:
    """Lowest and highest book price (ticks) seen per book, gathered chunk by chunk.

    :func:`fit_window` turns them into the dense window of the ``Books`` that rebuilds the
    file, so that a file with many stocks and narrow books does not pay ~100 KB per book.
    """

    def __init__(self) -> None:
        self.low = np.zeros(0, dtype=np.int64)
        self.high = np.zeros(0, dtype=np.int64)

    def add(self, messages: np.ndarray) -> None:
        """Widen the spans by the priced messages (``price > 0``) of one chunk."""
        priced = messages[messages["price"] > 0]
        if not priced.size:
            return
        book, price = priced["book"].astype(np.int64), priced["price"]
        n = int(book.max()) + 1
        if n > self.low.size:
            grow = n - self.low.size
            self.low = np.concatenate([self.low, np.full(grow, np.iinfo(np.int64).max)])
            self.high = np.concatenate([self.high, np.full(grow, np.iinfo(np.int64).min)])
        np.minimum.at(self.low, book, price)
        np.maximum.at(self.high, book, price)

    @property
    def widest(self) -> int:
        """Ticks between the lowest and highest price of the widest book (0: none priced)."""
        seen = self.high >= self.low
        return int((self.high[seen] - self.low[seen]).max()) if seen.any() else 0


def fit_window(widest: int, n_books: int, *, budget: int = LEVEL_BUDGET) -> int:
    """The dense window (ticks, a multiple of 64) for ``n_books`` books of ``widest`` span.

    Twice the span, so that every price stays dense wherever the core centres the window;
    at most :data:`MAX_WINDOW` and at most what keeps ``n_books`` books' levels within
    ``budget`` bytes, at least 64. Prices outside the window still rest and match correctly
    (on the core's overflow lists), only slower, so the window is a speed/memory trade.
    """
    need = min(MAX_WINDOW, 2 * widest + 64)
    afford = budget // (max(n_books, 1) * _LEVEL_BYTES)
    return max(64, min(need, afford) // 64 * 64)


@dataclass
class RebuildStats:
    """What :func:`rebuild_books` did: book messages fed to the core, trades decoded, the
    core's rejections by ``Reason`` name (``UNKNOWN_ORDER``: refs to orders from before a
    slice), and wall seconds of the whole parse + rebuild."""

    messages: int = 0
    trades: int = 0
    rejected: dict[str, int] | None = None
    seconds: float = 0.0


#: Default events buffer of :func:`rebuild_books` (records; reused for every call).
REBUILD_EVENTS = 1 << 16

#: Messages parsed per call of the core by :func:`rebuild_books` with ``threads=1``
#: (:class:`rltrader._itch.Rebuilder`): 128 KiB of records, still in the cache when the
#: core reads them.
FUSED_BATCH = 1 << 11

#: Bytes read at a time by :func:`rebuild_books` (at most the reader's ``chunk_bytes``):
#: the file's bytes too are still in the cache when they are parsed.
FUSED_READ_BYTES = 1 << 18

#: Batches of :data:`FUSED_BATCH` messages that the parse thread of
#: ``rebuild_books(threads=2)`` may be ahead of the books (1 MiB of messages).
PIPELINE_SLOTS = 8


def rebuild_books(reader: ItchReader, books: Books | None = None, *,
                  events: np.ndarray | None = None, threads: int = 1, **book_kwargs: int
                  ) -> tuple[Books, RebuildStats]:
    """Stream ``reader`` into ``books`` (default: a new ``Books`` with one book per symbol
    of the reader's selection, or ``book_kwargs["n_books"]``). Events are counted, not
    kept.

    ``threads=1`` parses straight into the books (:class:`rltrader._itch.Rebuilder`):
    :data:`FUSED_READ_BYTES` of the file at a time, :data:`FUSED_BATCH` messages per call
    of the core, so that neither the bytes nor the decoded messages leave the cache before
    they are used. ``threads=2`` reads and parses in a second thread, up to
    :data:`PIPELINE_SLOTS` batches ahead of the books, which process them in this one
    (parsing and matching overlap on two free cores; on a busy machine the handoffs cost
    more than they save). Either way the books end in the state that ``Books.process``
    over ``read_messages(...).messages`` would leave them in, and when the input has a
    malformed record, or a message on a book the ``Books`` lacks, exactly the messages
    before it have been processed when the error is raised.

    ``events`` is the ``EVENT_DTYPE`` buffer reused for every call (default: a new one of
    ``REBUILD_EVENTS`` records; a larger one replaces it when a book grows so deep that
    one message could emit more events). With ``symbols=None`` the number of books is only known
    after reading: count it first with a parse-only pass (``ItchReader(...).n_books``
    after iterating) and pass ``n_books``, and, to size the dense window by the prices the
    books use, ``window=fit_window(spans.widest, n_books)`` with :class:`PriceSpans` filled
    in the same pass (default: :data:`MAX_WINDOW`, cut to :data:`LEVEL_BUDGET`). A
    message on a book the ``Books`` does not have raises ``ValueError``.
    """
    from rltrader._book import Books as _Books
    from rltrader.core.constants import Reason

    if books is None:
        n_books = max(int(book_kwargs.pop("n_books", reader.n_books)), 1)
        book_kwargs.setdefault("window", fit_window(MAX_WINDOW, n_books))
        books = _Books(n_books, **book_kwargs)
    if events is None:
        events = np.empty(REBUILD_EVENTS, EVENT_DTYPE)
    if threads not in (1, 2):
        raise ValueError(f"threads must be 1 or 2, got {threads!r}")
    stats = RebuildStats()
    start = time.perf_counter()
    if threads == 1:
        reasons = _rebuild_fused(reader, books, events, stats)
    else:
        reasons = _rebuild_pipelined(reader, books, events, stats)
    stats.seconds = time.perf_counter() - start
    stats.rejected = {Reason(r).name: int(reasons[r]) for r in np.flatnonzero(reasons)}
    return books, stats


def _missing_book(reader: ItchReader, book: int, books: Books) -> ValueError:
    return ValueError(f"{reader.path}: stock {reader.book_symbols[book]!r} needs book {book}, "
                      f"the Books has {books.n_books}")


def _rebuild_fused(reader: ItchReader, books: Books, events: np.ndarray,
                   stats: RebuildStats) -> np.ndarray:
    """``rebuild_books(threads=1)``: every chunk parsed straight into ``books`` by a
    :class:`rltrader._itch.Rebuilder`; returns the rejections per reason."""
    from rltrader.data._levels import worst_case_events

    rebuilder = _itch.Rebuilder(reader._parser, books, events, FUSED_BATCH)

    def feed(view: memoryview, base: int) -> tuple[int, int, None]:
        pos = 0
        while True:
            status, consumed = rebuilder.feed(view[pos:], base + pos)
            pos += consumed
            if status == _itch.FeedStatus.FEED_NEED_EVENTS:
                cap = rebuilder_events[0].shape[0]
                rebuilder_events[0] = np.empty(max(worst_case_events(books), 2 * cap),
                                               EVENT_DTYPE)
                rebuilder.set_events(rebuilder_events[0])
                continue
            if status == _itch.FeedStatus.FEED_MISSING_BOOK:
                raise _missing_book(reader, rebuilder.missing_book, books)
            if status == _itch.FeedStatus.FEED_BAD_RECORD:
                raise reader._error(rebuilder.parse_status)
            end = status == _itch.FeedStatus.FED_TO_END
            return (ParseStatus.END_OF_SESSION if end else ParseStatus.PARSED), pos, None

    rebuilder_events = [events]
    for _ in reader._stream(feed, min(reader.chunk_bytes, FUSED_READ_BYTES)):
        pass
    stats.messages, stats.trades = rebuilder.messages, rebuilder.trades
    return np.asarray(rebuilder.reasons)


class _Stopped(Exception):
    """The parse thread of :func:`_rebuild_pipelined` was told to stop."""


def _rebuild_pipelined(reader: ItchReader, books: Books, events: np.ndarray,
                       stats: RebuildStats) -> np.ndarray:
    """``rebuild_books(threads=2)``: a parse thread reads the file and parses it into a
    ring of :data:`PIPELINE_SLOTS` batches of :data:`FUSED_BATCH` messages; this thread
    processes them in order as they come. Returns the rejections per reason."""
    from rltrader.data._levels import worst_case_events

    if reader._started:
        raise RuntimeError("an ItchReader iterates once; make a new one to read again")
    status_ = _itch.FeedStatus
    rebuilder = _itch.Rebuilder(reader._parser, books, events, FUSED_BATCH, PIPELINE_SLOTS)
    failure: list[BaseException] = []

    def produce(view: memoryview, base: int) -> tuple[int, int, None]:
        status, consumed = rebuilder.produce(view, base)
        if status in (status_.FEED_STOPPED, status_.FEED_BAD_RECORD):
            raise _Stopped      # a bad record: the caller's thread raises it after the
                                # messages before it
        end = status == status_.FED_TO_END
        return (ParseStatus.END_OF_SESSION if end else ParseStatus.PARSED), consumed, None

    def parse() -> None:
        try:
            for _ in reader._stream(produce, min(reader.chunk_bytes, FUSED_READ_BYTES)):
                pass
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            failure.append(exc)
        finally:
            rebuilder.finish()

    thread = threading.Thread(target=parse, name="itch-parse", daemon=True)
    thread.start()
    try:
        while True:
            status = rebuilder.consume()
            if status != status_.FEED_NEED_EVENTS:
                break
            events = np.empty(max(worst_case_events(books), 2 * events.shape[0]),
                              EVENT_DTYPE)
            rebuilder.set_events(events)
    finally:
        rebuilder.stop()
        thread.join()
    if status == status_.FEED_MISSING_BOOK:
        raise _missing_book(reader, rebuilder.missing_book, books)
    if status == status_.FEED_BAD_RECORD:
        raise reader._error(rebuilder.parse_status)
    if failure:
        raise failure[0]
    stats.messages, stats.trades = rebuilder.messages, rebuilder.trades
    return np.asarray(rebuilder.reasons)


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _system_event(code: bytes, timestamp: int) -> bytes:
    return struct.pack(">HcHH", 12, b"S", 0, 0) + timestamp.to_bytes(6, "big") + code


def _directory_entry(locate: int, symbol: bytes, timestamp: int) -> bytes:
    """An 'R' record for a plain Nasdaq Global Select common stock, 100-share round lot."""
    body = struct.pack(">cHH6s8sccIcc2scccccIc", b"R", locate, 0, timestamp.to_bytes(6, "big"),
                       symbol.ljust(8), b"Q", b"N", 100, b"N", b"C", b"Z ", b"P", b"N", b"N",
                       b"1", b"N", 0, b"N")
    return struct.pack(">H", len(body)) + body


class ItchWriter:
    """Write a message log as an ITCH 5.0 BinaryFILE, in as many pieces as you like.

    Use as a context manager: the header (``S`` start of messages, one ``R`` per book: book
    ``b`` is stock locate ``b + 1`` with symbol ``symbols[b]``) is written on entry, each
    :meth:`write` appends messages and trades, and exit writes ``S`` (end of messages) and
    the zero-length end-of-session record. gzip when ``path`` ends in ``.gz``.

    Messages map back as :func:`read_messages` maps them: ``LIMIT`` GTC -> ``A``,
    ``EXECUTE`` -> ``E`` (or ``C`` when a ``C`` trade row names it), ``REDUCE`` -> ``X``,
    ``CANCEL`` -> ``D``, ``REPLACE`` with a new id -> ``U``; trade rows -> ``P``/``Q``/``B``
    before the message they index (a trade row's ``locate`` is its book's when ``book >= 0``;
    a ``C`` row takes its ``EXECUTE``'s timestamp). ``E`` records get match numbers 1, 2,
    ...; tracking numbers are 0; the ``S`` and ``R`` records have timestamp 0. Fields ITCH
    has no place for (``owner``, ``stop_price``, the ``qty`` of a ``CANCEL``, the ``side``
    of anything but a ``LIMIT``) are not written, so :func:`read_messages` gives them back
    as 0 / -1. A message ITCH cannot carry raises ``ValueError`` naming it.
    """

    def __init__(self, path: PathLike, symbols: Sequence[str], *, tick_size: int = 100,
                 chunk_messages: int = 1 << 20) -> None:
        self.path = os.fspath(path)
        self._names = np.array([_symbol_bytes(s) for s in symbols], dtype="S8")
        if self._names.size > 0xFFFF:
            raise ValueError(f"{self._names.size} symbols; ITCH stock locates allow 65,535")
        self._locates = np.arange(1, self._names.size + 1, dtype=np.uint16)
        self.tick_size = tick_size
        self.chunk_messages = chunk_messages
        self.messages_written = 0   # messages written so far (the log's next index)
        self.nbytes = 0             # bytes written so far (uncompressed)
        self._match_number = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> ItchWriter:
        opener = gzip.open if self.path.endswith(".gz") else open
        self._file = opener(self.path, "wb")  # type: ignore[assignment]
        self._put(_system_event(b"O", 0) + b"".join(
            _directory_entry(int(loc), sym, 0)
            for loc, sym in zip(self._locates, self._names, strict=True)))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._file is not None
        try:
            if exc[0] is None:
                self._put(_system_event(b"C", 0) + b"\x00\x00")
        finally:
            self._file.close()
            self._file = None

    def _put(self, data: bytes | np.ndarray) -> None:
        if self._file is None:
            raise RuntimeError("ItchWriter is not open: use it in a with statement")
        self.nbytes += self._file.write(data)

    def write(self, messages: np.ndarray, trades: np.ndarray | None = None) -> None:
        """Append ``messages``, and ``trades`` (``TRADE_DTYPE``) whose ``message_index``
        counts from the first message of *this* call, sorted, in ``[0, len(messages)]``
        (``len(messages)``: after the last one)."""
        if messages.dtype != MESSAGE_DTYPE or messages.ndim != 1:
            raise TypeError("messages must be a 1-D array of MESSAGE_DTYPE")
        if trades is None:
            trades = np.zeros(0, TRADE_DTYPE)
        if trades.dtype != TRADE_DTYPE or trades.ndim != 1:
            raise TypeError("trades must be a 1-D array of TRADE_DTYPE")
        index = trades["message_index"]
        n = messages.shape[0]
        if index.size and (np.any(np.diff(index) < 0) or index[0] < 0 or index[-1] > n):
            raise ValueError("trades must be sorted by message_index, in [0, len(messages)]")
        for start in range(0, max(n, 1), self.chunk_messages):
            stop = min(start + self.chunk_messages, n)
            lo = int(np.searchsorted(index, start, "left"))
            hi = int(np.searchsorted(index, stop, "right" if stop == n else "left"))
            status, data, bad, self._match_number = _itch.encode(
                messages[start:stop], trades[lo:hi], start, self._locates, self._names,
                self.tick_size, self._match_number)
            if status != WriteStatus.WRITTEN:
                where = (f"trade {lo + bad}" if status == WriteStatus.BAD_TRADE
                         else f"message {self.messages_written + start + bad}")
                raise ValueError(f"{where}: {_WRITE_PROBLEMS[WriteStatus(status)]}")
            self._put(data)
        self.messages_written += n


def write_itch(path: PathLike, messages: np.ndarray, symbols: Sequence[str], *,
               trades: np.ndarray | None = None, tick_size: int = 100) -> int:
    """Write ``messages`` (and ``trades``) as one ITCH 5.0 BinaryFILE (see
    :class:`ItchWriter`); return the bytes written (uncompressed)."""
    with ItchWriter(path, symbols, tick_size=tick_size) as writer:
        writer.write(messages, trades)
    return writer.nbytes


__all__ = [
    "CHUNK_BYTES",
    "DIRECTORY_DTYPE",
    "SYSTEM_EVENT_DTYPE",
    "TRADE_DTYPE",
    "TRADING_ACTION_DTYPE",
    "ItchChunk",
    "ItchFeed",
    "ItchFormatError",
    "ItchReader",
    "ItchWriter",
    "LEVEL_BUDGET",
    "MAX_WINDOW",
    "PriceSpans",
    "FUSED_BATCH",
    "FUSED_READ_BYTES",
    "PIPELINE_SLOTS",
    "REBUILD_EVENTS",
    "RebuildStats",
    "iter_messages",
    "read_directory",
    "read_messages",
    "rebuild_books",
    "fit_window",
    "write_itch",
]
