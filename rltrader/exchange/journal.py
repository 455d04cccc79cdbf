"""The exchange's journal: every batch, appended before its requests are answered, so that
a crashed server is rebuilt exactly by replaying them (``rltrader serve --journal DIR``).

The sequencer is deterministic: the same seed, config and accounts and the same sequence
of batches (``ts``, ``step``, requests) give a bit-identical state (orders, balances,
trades, books). So the journal stores only the inputs: a header naming the market, and
one record per batch.

Layout of ``DIR``::

    header.json            format, version, the market config, seed, quote, lot size,
                           fees, a SHA-256 of the accounts (names, API keys, balances)
    segment-000000.log     records; a new segment each time the journal is opened and
    segment-000001.log     when one passes ``segment_bytes``

A segment starts with the 8 bytes ``RLTJSEG1``; a record is ``u32 length``, ``u32 CRC-32``
of the payload (little-endian), then the payload, whose first byte says what it is:

* ``0x01`` *steps*: ``varint k`` then ``k`` varint time deltas: ``k`` background steps
  without requests (the most frequent batch: one per step of the clock);
* ``0x02`` *batch*: ``varint`` time delta, one byte ``step``, then the requests as JSON
  ``[[kind, account name, params], ...]``.

Times are ns deltas from the previous batch of the segment (the sequencer's times never
decrease), from 0 for a segment's first. An empty step costs 14 bytes.

Durability (``fsync``):

* ``"batch"`` (default): a batch with requests is written and ``os.fsync``-ed before
  :meth:`Journal.append` returns, so before any of its requests is answered: one fsync
  per batch however many requests it holds (group commit). Steps without requests are
  written at once (a killed process loses nothing it showed a client: the sequencer
  yields to the gateways only after the append) and fsync-ed with the next batch, or when
  ``sync_interval`` seconds have passed since the last fsync: an OS crash or power loss
  can lose at most that much of the background, which no answered request depended on.
* ``"none"``: written, never fsync-ed (survives a killed process, not an OS crash; for
  benchmarks).

``buffer_steps > 1`` keeps up to that many empty steps in memory and writes them as one
record (smaller journals, fewer writes), but then a killed process loses the steps not yet
written, whose fills or trades clients may already have read: the server keeps the default
1.

Recovery (:func:`open_journal`): the header must match the market being built (else
:class:`JournalError`, one line naming what differs); every segment is read in order and
each batch replayed through :meth:`Exchange.run_batch`; a torn last record (a crash while
it was being written: too short for its length, a CRC that fails on the file's last
record, or zero bytes to the end) is cut off, and anything else that does not check is an
error naming the segment and the offset.

Snapshots. Every ``snapshot_every`` batches (default :data:`SNAPSHOT_EVERY`; 0: never) the
journal flushes and fsyncs its records, then writes ``snapshot-<batches>.pkl`` (a temporary
file, fsync-ed, renamed; the directory fsync-ed): the exchange's whole state after that
many batches (:meth:`Exchange.snapshot_state`) and where the journal stood then (segment,
offset, time). The newest :data:`SNAPSHOTS_KEPT` are kept. Recovery loads the newest
snapshot that checks (magic, CRC-32, its segment and offset, the exchange's own checks,
the books' integrity) and replays only the records after its position; one that does not
is skipped with a warning, for an older one or the full replay. A journal without
snapshots (older ones) is replayed from the start (tens of thousands of empty steps a
second). File layout: ``RLTJSNP1``, ``u32`` length and JSON meta, ``u64`` length and the
pickled state, ``u32`` CRC-32 of everything before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

FORMAT = "rltrader-journal"
VERSION = 1
HEADER = "header.json"
MAGIC = b"RLTJSEG1"
FSYNC_POLICIES = ("batch", "none")
STEPS, BATCH = 0x01, 0x02
_FRAME = struct.Struct("<II")
#: Largest record accepted on reading (a longer length is a torn or corrupt frame).
MAX_RECORD = 1 << 28
#: Batches between two snapshots (``Journal(snapshot_every=...)``; 0: no snapshots).
SNAPSHOT_EVERY = 10_000
#: Snapshots kept (the older ones are deleted once a new one is written).
SNAPSHOTS_KEPT = 2
SNAPSHOT_MAGIC = b"RLTJSNP1"
#: Header keys that say what the market is (the rest is information).
_MARKET_KEYS = ("format", "version", "config", "seed", "quote", "lot_size",
                "maker_fee_ppm", "taker_fee_ppm", "accounts_sha256")


class JournalError(ValueError):
    """A journal that cannot be used: corrupt, or for another market."""


# ---- encoding -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"journal times must not decrease (delta {value})")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes, prev_ts: int) -> tuple[list[dict], int]:
    """The batches of one record's payload, and the last time."""
    tag = payload[0]
    if tag == STEPS:
        k, pos = _read_varint(payload, 1)
        out = []
        for _ in range(k):
            delta, pos = _read_varint(payload, pos)
            prev_ts += delta
            out.append({"ts": prev_ts, "step": True, "requests": []})
        if pos != len(payload) or k == 0:
            raise ValueError("malformed steps record")
        return out, prev_ts
    if tag == BATCH:
        delta, pos = _read_varint(payload, 1)
        if pos >= len(payload) or payload[pos] not in (0, 1):
            raise ValueError("malformed batch record")
        step = bool(payload[pos])
        rows = json.loads(payload[pos + 1:].decode("utf-8"))
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
                and isinstance(r[1], str) and isinstance(r[2], dict) for r in rows):
            raise ValueError("malformed requests")
        prev_ts += delta
        return [{"ts": prev_ts, "step": step,
                 "requests": [(r[0], r[1], r[2]) for r in rows]}], prev_ts
    raise ValueError(f"unknown record type {tag}")


# ---- the header ------------------------------------------------------------------------------


def accounts_digest(accounts: list[Any]) -> str:
    """SHA-256 of the accounts in order: names, API keys and starting balances (what the
    state depends on; the secrets are not part of it)."""
    rows = [[a.name, a.api_key, sorted(a.balances.items())] for a in accounts]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def header_of(exchange: Any) -> dict:
    """The header that names ``exchange``'s market (JSON-ready)."""
    spec = next(iter(exchange.symbols.values()))
    header = {
        "format": FORMAT, "version": VERSION,
        "config": dataclasses.asdict(exchange.config),
        "seed": exchange.market.seed, "quote": spec.quote, "lot_size": str(spec.lot_size),
        "maker_fee_ppm": exchange.maker_fee_ppm, "taker_fee_ppm": exchange.taker_fee_ppm,
        "accounts_sha256": accounts_digest(exchange.accounts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return json.loads(json.dumps(header))        # tuples as lists, as read back


def read_header(directory: str | os.PathLike) -> dict:
    path = Path(directory) / HEADER
    try:
        header = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise JournalError(f"{os.fspath(directory)}: {HEADER} is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise JournalError(f"{os.fspath(directory)}: {HEADER} is not an rltrader journal "
                           "header")
    if header.get("version") != VERSION:
        raise JournalError(f"{os.fspath(directory)}: journal format version "
                           f"{header.get('version')!r}, this rltrader reads {VERSION}")
    return header


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in value:
            out.update(_flat(value[key], f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def _same_lot(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except InvalidOperation:
        return a == b


def check_header(directory: str | os.PathLike, stored: dict, wanted: dict) -> None:
    """Raise :class:`JournalError` (one line) unless ``stored`` names ``wanted``'s market."""
    diffs = []
    for key in _MARKET_KEYS:
        a, b = stored.get(key), wanted.get(key)
        if key == "lot_size" and _same_lot(a, b):
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            fa, fb = _flat(a, "config"), _flat(b, "config")
            diffs += [f"{k} ({fa.get(k)!r} in the journal, {fb.get(k)!r} now)"
                      for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
        elif key == "accounts_sha256" and a != b:
            diffs.append("the accounts (names, API keys or balances)")
        elif a != b:
            diffs.append(f"{key} ({a!r} in the journal, {b!r} now)")
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4
                                        else "")
        raise JournalError(f"{os.fspath(directory)}: the journal is of another market: "
                           f"{shown}")


# ---- reading ---------------------------------------------------------------------------------


def segments(directory: str | os.PathLike) -> list[Path]:
    """The segment files in order."""
    return sorted(Path(directory).glob("segment-*.log"))


def _segment_index(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


class Reader:
    """The batches of a journal in order (iterate once). A torn last record is noted in
    ``torn`` (``(path, offset)``: where the good part ends) instead of raised;
    :meth:`repair` cuts it off."""

    def __init__(self, directory: str | os.PathLike,
                 start: tuple[str, int, int] | None = None) -> None:
        self.directory = directory
        self.name = os.fspath(directory)
        self.torn: tuple[Path, int] | None = None
        self.records = 0
        #: (segment name, offset, time of the record before): read from there on (a
        #: snapshot's position: a record boundary)
        self.start = start

    def _bad(self, path: Path, offset: int, what: str) -> JournalError:
        return JournalError(f"{self.name}: {path.name} at offset {offset}: {what} "
                            "(corrupt journal)")

    def __iter__(self) -> Iterator[dict]:
        files = segments(self.directory)
        first = 0
        if self.start is not None:
            names = [p.name for p in files]
            if self.start[0] not in names:
                raise JournalError(f"{self.name}: no segment {self.start[0]}")
            first = names.index(self.start[0])
        for n, path in enumerate(files):
            if n < first:
                continue
            last = n == len(files) - 1
            data = path.read_bytes()
            if data[:len(MAGIC)] != MAGIC:
                if last and len(data) < len(MAGIC) and MAGIC.startswith(data):
                    self.torn = (path, 0)          # created, its magic never written
                    return
                raise self._bad(path, 0, "not a journal segment")
            pos, prev_ts = len(MAGIC), 0
            if self.start is not None and n == first:
                pos, prev_ts = self.start[1], self.start[2]
                if not len(MAGIC) <= pos <= len(data):
                    raise self._bad(path, pos, "a snapshot's position past the end")
            while pos < len(data):
                rest = len(data) - pos
                if last and not any(data[pos:]):
                    self.torn = (path, pos)         # zeros to the end: a torn extension
                    return
                if rest < _FRAME.size:
                    if last:
                        self.torn = (path, pos)
                        return
                    raise self._bad(path, pos, "truncated record header")
                length, crc = _FRAME.unpack_from(data, pos)
                end = pos + _FRAME.size + length
                if length == 0 or length > MAX_RECORD:
                    if last and end >= len(data):
                        self.torn = (path, pos)
                        return
                    raise self._bad(path, pos, f"impossible record length {length}")
                if end > len(data):
                    if last:
                        self.torn = (path, pos)
                        return
                    raise self._bad(path, pos, "record runs past the end of the segment")
                payload = data[pos + _FRAME.size:end]
                if zlib.crc32(payload) != crc:
                    if last and end == len(data):
                        self.torn = (path, pos)
                        return
                    raise self._bad(path, pos, "CRC mismatch")
                try:
                    batches, prev_ts = _decode(payload, prev_ts)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise self._bad(path, pos, f"undecodable record ({exc})") from None
                self.records += 1
                yield from batches
                pos = end

    def repair(self) -> None:
        """Cut off the torn tail found by iterating (and fsync it)."""
        if self.torn is None:
            return
        path, offset = self.torn
        if offset == 0:
            path.unlink()
        else:
            with open(path, "r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
        _fsync_dir(path.parent)


def read_batches(directory: str | os.PathLike) -> list[dict]:
    """Every batch of a journal (read only: a torn tail is left alone and skipped)."""
    return list(Reader(directory))


# ---- writing ---------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends batches to a new segment of ``directory`` (whose header exists): see the
    module docstring for the policies. ``exchange.journal = journal`` makes the exchange
    call :meth:`append` with every batch."""

    def __init__(self, directory: str | os.PathLike, *, fsync: str = "batch",
                 sync_interval: float = 1.0, segment_bytes: int = 64 << 20,
                 buffer_steps: int = 1, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        if buffer_steps < 1:
            raise ValueError(f"buffer_steps must be >= 1, got {buffer_steps}")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {snapshot_every}")
        self.snapshot_every = snapshot_every
        #: the exchange it journals (set by open_journal): snapshots are taken of it
        self.exchange: Any = None
        #: batches restored from a snapshot by open_journal (0: none; ``replayed`` then
        #: counts the batches replayed after it)
        self.snapshot_batches = 0
        self.directory = Path(directory)
        self.fsync, self.sync_interval = fsync, sync_interval
        self.segment_bytes, self.buffer_steps = segment_bytes, buffer_steps
        self.batches = 0                 # appended through this object
        self.replayed = 0                # replayed by open_journal before it
        self._steps: list[int] = []      # buffered empty steps (absolute times)
        self._prev = 0
        self._dirty = False
        self._synced_at = time.monotonic()
        self._file: Any = None
        self._size = 0
        existing = segments(self.directory)
        self._index = _segment_index(existing[-1]) + 1 if existing else 0
        self._open_segment()

    def _open_segment(self) -> None:
        path = self.directory / f"segment-{self._index:06d}.log"
        self._file = open(path, "xb", buffering=0)  # noqa: SIM115 (closed by close())
        self._file.write(MAGIC)
        if self.fsync != "none":
            os.fsync(self._file.fileno())
            _fsync_dir(self.directory)
        self._size, self._prev = len(MAGIC), 0
        self._index += 1

    def _roll_if_full(self) -> None:
        """A new segment once this one has ``segment_bytes`` (before encoding a record:
        times restart from 0 in a new segment)."""
        if self._size >= self.segment_bytes:
            self._sync()
            self._file.close()
            self._open_segment()

    def _write(self, payload: bytes) -> None:
        data = _frame(payload)
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]
        self._size += len(data)
        self._dirty = True

    def _flush_steps(self) -> None:
        if not self._steps:
            return
        self._roll_if_full()
        parts = [bytes((STEPS,)), _varint(len(self._steps))]
        for ts in self._steps:
            parts.append(_varint(ts - self._prev))
            self._prev = ts
        self._steps = []
        self._write(b"".join(parts))

    def _sync(self) -> None:
        if self._dirty and self.fsync != "none":
            os.fsync(self._file.fileno())
        self._dirty = False
        self._synced_at = time.monotonic()

    def append(self, batch: dict) -> None:
        """Journal one batch (``{"ts", "step", "requests": [(kind, account, params)]}``);
        durable as the policy says when this returns."""
        if self._file is None:
            raise ValueError("journal is closed")
        self.batches += 1
        ts, requests = int(batch["ts"]), batch["requests"]
        if batch["step"] and not requests:
            self._steps.append(ts)
            if len(self._steps) >= self.buffer_steps:
                self._flush_steps()
            if self._dirty and time.monotonic() - self._synced_at >= self.sync_interval:
                self._sync()
            self._maybe_snapshot()
            return
        self._flush_steps()
        rows = json.dumps([[kind, account, dict(params)] for kind, account, params in requests],
                          separators=(",", ":"), ensure_ascii=True).encode()
        self._roll_if_full()
        self._write(b"".join((bytes((BATCH,)), _varint(ts - self._prev),
                              b"\x01" if batch["step"] else b"\x00", rows)))
        self._prev = ts
        self._sync()
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        ex = self.exchange
        if (self.snapshot_every and ex is not None and ex.market is not None
                and ex.batches % self.snapshot_every == 0):
            self.snapshot()

    def snapshot(self) -> Path | None:
        """Snapshot the exchange now (between batches): flush and fsync the records, then
        write ``snapshot-<batches>.pkl`` (see the module docstring) and delete all but the
        newest :data:`SNAPSHOTS_KEPT`. A snapshot that cannot be made or written is only
        a warning (the journal alone still recovers everything); returns its path, or
        None."""
        ex = self.exchange
        if self._file is None or ex is None:
            raise ValueError("snapshot needs an open journal attached to an exchange")
        self._flush_steps()
        self._sync()
        meta = {"batches": ex.batches, "segment": f"segment-{self._index - 1:06d}.log",
                "offset": self._size, "prev_ts": self._prev, "market": market_digest(ex)}
        try:
            path = write_snapshot(self.directory, meta, ex.snapshot_state(),
                                  fsync=self.fsync != "none")
        except Exception as exc:       # noqa: BLE001 (an optimisation: never stop the exchange)
            warnings.warn(f"{self.directory}: no snapshot at batch {ex.batches} ({exc!r})",
                          RuntimeWarning, stacklevel=2)
            return None
        for _, old in snapshot_files(self.directory)[:-SNAPSHOTS_KEPT]:
            old.unlink(missing_ok=True)
        return path

    def flush(self) -> None:
        """Write the buffered steps and fsync (unless the policy is ``"none"``)."""
        if self._file is not None:
            self._flush_steps()
            self._sync()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(directory: str | os.PathLike, header: dict, **options: Any) -> Journal:
    """A new journal in ``directory`` (made if missing; it must hold no journal)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if (path / HEADER).exists() or segments(path):
        raise JournalError(f"{os.fspath(directory)}: already holds a journal")
    tmp = path / (HEADER + ".tmp")
    with open(tmp, "w") as f:
        json.dump(header, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / HEADER)
    _fsync_dir(path)
    return Journal(path, **options)


# ---- snapshots -------------------------------------------------------------------------------


def market_digest(exchange: Any) -> str:
    """SHA-256 of what names ``exchange``'s market in its header (a snapshot says which
    market it is of)."""
    header = header_of(exchange)
    market = {key: header.get(key) for key in _MARKET_KEYS}
    return hashlib.sha256(json.dumps(market, sort_keys=True).encode()).hexdigest()


def snapshot_files(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(batches, path)`` of the snapshots in ``directory``, oldest first."""
    out = []
    for path in Path(directory).glob("snapshot-*.pkl"):
        number = path.stem.split("-", 1)[1]
        if number.isdigit():
            out.append((int(number), path))
    return sorted(out)


def write_snapshot(directory: str | os.PathLike, meta: dict, payload: bytes, *,
                   fsync: bool = True) -> Path:
    """Write ``snapshot-<meta["batches"]>.pkl`` atomically (a temporary file, fsync-ed and
    renamed, the directory fsync-ed)."""
    directory = Path(directory)
    head = json.dumps(meta, sort_keys=True).encode()
    body = b"".join((SNAPSHOT_MAGIC, struct.pack("<I", len(head)), head,
                     struct.pack("<Q", len(payload)), payload))
    path = directory / f"snapshot-{meta['batches']}.pkl"
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(body)
            f.write(struct.pack("<I", zlib.crc32(body)))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(directory)
    return path


def read_snapshot(path: str | os.PathLike) -> tuple[dict, bytes]:
    """A snapshot's meta and pickled state; ``ValueError`` unless it checks (magic,
    lengths, CRC-32)."""
    data = Path(path).read_bytes()
    if data[:len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC or len(data) < len(SNAPSHOT_MAGIC) + 16:
        raise ValueError("not a snapshot")
    pos = len(SNAPSHOT_MAGIC)
    (head_len,) = struct.unpack_from("<I", data, pos)
    pos += 4
    head_end = pos + head_len
    if head_end + 12 > len(data):
        raise ValueError("truncated snapshot")
    (payload_len,) = struct.unpack_from("<Q", data, head_end)
    end = head_end + 8 + payload_len
    if end + 4 != len(data):
        raise ValueError("truncated snapshot")
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise ValueError("CRC mismatch")
    meta = json.loads(data[pos:head_end].decode())
    if not isinstance(meta, dict) or not {"batches", "segment", "offset", "prev_ts",
                                          "market"} <= meta.keys():
        raise ValueError("snapshot meta incomplete")
    return meta, data[head_end + 8:end]


def restore_snapshot(exchange: Any, directory: str | os.PathLike
                     ) -> tuple[int, tuple[str, int, int]] | None:
    """Load the newest snapshot of ``directory`` that checks into ``exchange`` (fresh);
    each one that does not is skipped with a ``RuntimeWarning``. Returns its batch count
    and journal position (for :class:`Reader`'s ``start``), or None."""
    digest = market_digest(exchange)
    for batches, path in reversed(snapshot_files(directory)):
        try:
            meta, payload = read_snapshot(path)
            if meta["batches"] != batches:
                raise ValueError(f"it holds {meta['batches']} batches, not {batches}")
            if meta["market"] != digest:
                raise ValueError("it is of another market")
            segment = Path(directory) / str(meta["segment"])
            if not segment.is_file() or segment.stat().st_size < meta["offset"]:
                raise ValueError(f"its journal position ({meta['segment']} at "
                                 f"{meta['offset']}) is gone")
            exchange.restore_state(payload)
        except Exception as exc:       # noqa: BLE001 (anything: fall back to older/full)
            warnings.warn(f"{os.fspath(directory)}: snapshot {path.name} ignored ({exc!r}); "
                          "an older one or the full replay is used", RuntimeWarning,
                          stacklevel=2)
            continue
        if exchange.batches != batches:
            raise JournalError(f"{os.fspath(directory)}: {path.name} restored "
                               f"{exchange.batches} batches, not {batches}")
        return batches, (str(meta["segment"]), int(meta["offset"]), int(meta["prev_ts"]))
    return None


# ---- recovery --------------------------------------------------------------------------------


def replay(exchange: Any, directory: str | os.PathLike, *, repair: bool = True,
           snapshots: bool = True) -> int:
    """Replay the journal in ``directory`` into ``exchange`` (built as the header says,
    with no journal attached and no batch run yet): from its newest good snapshot when
    ``snapshots`` (``exchange.batches`` then counts the snapshot's batches too), else from
    the start; cuts a torn tail off when ``repair``. Returns the number of batches
    replayed."""
    from rltrader.exchange.engine import Request

    if exchange.journal is not None:
        raise ValueError("replay into an exchange without a journal attached")
    if exchange.batches:
        raise ValueError("replay into an exchange that has run no batch")
    by_name = {a.name: a for a in exchange.accounts}
    restored = restore_snapshot(exchange, directory) if (
        snapshots and exchange.market is not None) else None
    reader = Reader(directory, start=None if restored is None else restored[1])
    n = 0
    for batch in reader:
        requests = []
        for kind, name, params in batch["requests"]:
            if name not in by_name:
                raise JournalError(f"{reader.name}: batch {n} names an unknown account "
                                   f"{name!r}")
            requests.append(Request(kind, by_name[name], params))
        exchange.run_batch(requests, step=batch["step"], ts=batch["ts"])
        n += 1
    if repair:
        reader.repair()
    return n


def open_journal(exchange: Any, directory: str | os.PathLike, **options: Any) -> Journal:
    """Journal ``exchange`` in ``directory``: if it holds a journal, check that its header
    names this market, replay it (from its newest good snapshot) and continue it in a new
    segment; else start one. Sets ``exchange.journal`` (and the journal's ``exchange``:
    it snapshots it every ``snapshot_every`` batches); the journal's ``snapshot_batches``
    says how many batches came from a snapshot and ``replayed`` how many were replayed
    after it. ``exchange`` must not have run a batch yet."""
    if exchange.batches:
        raise ValueError("journal an exchange before its first batch")
    path = Path(directory)
    wanted = header_of(exchange)
    if not (path / HEADER).exists():
        if path.is_dir() and segments(path):
            raise JournalError(f"{os.fspath(directory)}: segments without a {HEADER}")
        journal = create(path, wanted, **options)
    else:
        check_header(directory, read_header(directory), wanted)
        replayed = replay(exchange, directory)
        journal = Journal(path, **options)
        journal.replayed = replayed
        journal.snapshot_batches = exchange.batches - replayed
    journal.exchange = exchange
    exchange.journal = journal
    return journal


def recover(directory: str | os.PathLike, accounts: list[Any], *, speed: float = 1.0,
            **options: Any) -> Any:
    """An :class:`Exchange` rebuilt from the journal in ``directory`` (its header's market,
    ``accounts`` as the header's digest says) with every batch replayed, appending to the
    same journal."""
    from rltrader.exchange.engine import Exchange
    from rltrader.sim.config import config_from_dict

    header = read_header(directory)
    exchange = Exchange(config_from_dict(header["config"]), accounts, seed=header["seed"],
                        quote=header["quote"], lot_size=header["lot_size"],
                        maker_fee_ppm=header["maker_fee_ppm"],
                        taker_fee_ppm=header["taker_fee_ppm"], speed=speed)
    open_journal(exchange, directory, **options)
    return exchange
