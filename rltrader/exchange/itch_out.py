"""Market data out in ITCH 5.0: what a served market does, as NASDAQ would publish it.

The publisher listens to the sequencer. When it starts it sends the book as it stands: one
``A`` (add order) per resting order, level by level from the best price, each level in
queue order, so that a receiver's book has the same queues. Then, after every batch, it
sends the visible changes of every book, derived from the core's events as LOBSTER derives
them from ITCH (:func:`rltrader.data.lobster_writer.lobster_rows`):

- an ``A`` for what rests of a new order;
- an ``E`` (executed, with a match number) per fill of a resting order;
- an ``X`` (cancel) for a partial cancel, a ``D`` (delete) for a full one.

Book ``b`` is stock locate ``b + 1``; order reference numbers are the core's order ids.
ITCH prices are 4-decimal fixed point, so a symbol's tick must be a whole number of
$0.0001.

Sinks:

- ``--itch-file PATH``: an ITCH 5.0 BinaryFILE (records of a 2-byte length and the
  message). It is flushed after each batch and closed with the end-of-messages ``S``
  record. `rltrader replay itch PATH` rebuilds the server's books from it exactly.
- ``--itch-udp HOST:PORT``: MoldUDP64 datagrams. Each has a 20-byte header (a 10-byte
  session, the 8-byte sequence number of its first message, a 2-byte message count) and
  then message blocks (a 2-byte length and the message), at most 1,400 bytes in all. The
  last datagram at shutdown has count ``0xFFFF`` (end of session). A receiver orders the
  datagrams by sequence number; UDP may drop them, and nothing here retransmits.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, BinaryIO

import numpy as np

from rltrader.core.constants import BUY, CANCEL, EXECUTE, LIMIT, REDUCE, SELL
from rltrader.core.messages import empty_messages
from rltrader.data.itch import ItchWriter
from rltrader.data.lobster_writer import lobster_rows

#: LOBSTER row type -> the core message ItchWriter encodes (A, X, D, E)
_OPS = np.array([0, LIMIT, REDUCE, CANCEL, EXECUTE], dtype=np.int8)

#: Largest MoldUDP64 datagram (header included), below a common 1,500-byte MTU.
MOLD_PAYLOAD = 1400
MOLD_HEADER = struct.Struct(">10sQH")
END_OF_SESSION = 0xFFFF


class FileSink:
    """An ITCH 5.0 BinaryFILE."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close())

    def send(self, records: bytes) -> None:
        self.file.write(records)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class MoldUdpSink:
    """MoldUDP64 datagrams to ``address`` (see the module docstring)."""

    def __init__(self, address: tuple[str, int], session: bytes = b"RLTRADER01") -> None:
        self.address = address
        self.session = session.ljust(10)[:10]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sequence = 1
        self._blocks: list[bytes] = []
        self._size = MOLD_HEADER.size

    def send(self, records: bytes) -> None:
        view, at = memoryview(records), 0
        while at < len(view):
            n = 2 + int.from_bytes(view[at: at + 2], "big")
            if self._size + n > MOLD_PAYLOAD:
                self.flush()
            self._blocks.append(bytes(view[at: at + n]))
            self._size += n
            at += n

    def flush(self) -> None:
        if not self._blocks:
            return
        header = MOLD_HEADER.pack(self.session, self.sequence, len(self._blocks))
        self.sock.sendto(header + b"".join(self._blocks), self.address)
        self.sequence += len(self._blocks)
        self._blocks, self._size = [], MOLD_HEADER.size

    def close(self) -> None:
        self.flush()
        self.sock.sendto(MOLD_HEADER.pack(self.session, self.sequence, END_OF_SESSION),
                         self.address)
        self.sock.close()


def itch_tick(tick_size: Decimal) -> int:
    """A tick in ITCH price units ($0.0001)."""
    units = tick_size * 10_000
    if units != units.to_integral_value() or units < 1:
        raise ValueError(f"tick_size {tick_size} is not a whole number of $0.0001: ITCH "
                         "prices cannot carry it")
    return int(units)


class _Encoder(ItchWriter):
    """ItchWriter's encoding, its records handed to sinks instead of a file."""

    def __init__(self, symbols: Sequence[str], tick_size: int, sinks: list[Any]) -> None:
        super().__init__(os.devnull, symbols, tick_size=tick_size)
        self.sinks = sinks

    def _put(self, data: bytes | np.ndarray) -> None:
        records = bytes(data)
        self.nbytes += len(records)
        for sink in self.sinks:
            sink.send(records)


def resting_orders(books: Any, book: int) -> np.ndarray:
    """Every resting order of ``book`` as an add (MESSAGE_DTYPE ``LIMIT``), bids then asks,
    each side from its best level, each level in queue order."""
    depth = 256
    while True:
        prices, qtys, _ = books.top_levels(depth)
        if (qtys[book] > 0).sum(axis=1).max() < depth:
            break
        depth *= 4
    parts = []
    for k, side in ((0, BUY), (1, SELL)):
        for price in prices[book, k][qtys[book, k] > 0].tolist():
            queue = books.level_queue(book, side, price)
            m = empty_messages(queue.shape[0])
            m["op"] = LIMIT
            m["order_id"] = queue["order_id"]
            m["qty"] = queue["qty"]
            m["price"] = price
            m["side"] = side
            m["book"] = book
            m["timestamp"] = queue["timestamp"]
            parts.append(m)
    return np.concatenate(parts) if parts else empty_messages(0)


class ItchPublisher:
    """Publishes an :class:`~rltrader.exchange.engine.Exchange`'s books in ITCH 5.0 to
    ``sinks`` (see the module docstring); register with :meth:`attach`."""

    def __init__(self, exchange: Any, sinks: list[Any]) -> None:
        self.exchange = exchange
        specs = sorted(exchange.symbols.values(), key=lambda s: s.book)
        ticks = {itch_tick(s.tick_size) for s in specs}
        if len(ticks) != 1:
            raise ValueError("ITCH out needs one tick size for every symbol")
        self.encoder = _Encoder([s.base for s in specs], ticks.pop(), sinks)
        self.sinks = sinks
        self.books = [s.book for s in specs]
        self.messages = 0

    def attach(self) -> None:
        """Send the header and the current books, then follow every batch."""
        self._header()
        snapshot = [resting_orders(self.exchange.books, b) for b in self.books]
        self._send(np.concatenate(snapshot) if snapshot else empty_messages(0),
                   self.exchange.last_ns)
        self.exchange.listeners.append(self._on_batch)

    def _header(self) -> None:
        from rltrader.data.itch import _directory_entry, _system_event

        enc = self.encoder
        enc._put(_system_event(b"O", 0) + b"".join(
            _directory_entry(int(loc), sym, 0)
            for loc, sym in zip(enc._locates, enc._names, strict=True)))

    def _send(self, messages: np.ndarray, ts: int) -> None:
        if messages.size:
            messages = messages.copy()
            messages["timestamp"] = ts % (86_400 * 10**9)       # ns after midnight (UTC)
            self.encoder.write(messages)
            self.messages += messages.shape[0]
        for sink in self.sinks:
            sink.flush()

    def _on_batch(self, exchange: Any, public: Any) -> None:
        _, events = exchange.last_batch
        if not events.size:
            return
        parts = []
        for book in self.books:
            rows = lobster_rows(events, book=book, tick_size=1)
            if rows.size:
                m = empty_messages(rows.shape[0])
                for name, column in (("timestamp", "timestamp"), ("order_id", "order_id"),
                                     ("price", "price"), ("qty", "size"),
                                     ("side", "direction")):
                    m[name] = rows[column]
                m["op"] = _OPS[rows["type"]]
                m["book"] = book
                parts.append(m)
        if parts:
            self._send(np.concatenate(parts) if len(parts) > 1 else parts[0],
                       exchange.last_ns)

    def close(self) -> None:
        """End of messages and of the session."""
        from rltrader.data.itch import _system_event

        self.encoder._put(_system_event(b"C", 0) + b"\x00\x00")
        for sink in self.sinks:
            sink.close()
