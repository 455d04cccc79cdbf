"""File access shared by the crypto readers: gzip detection and JSON records with locations."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rltrader.core.constants import PathLike


class FormatError(ValueError):
    """Malformed input; ``offset`` is where the bad record is, in ``unit``s: the byte offset
    of a binary record (the default), or a text file's ``"line"`` or a table's ``"row"``."""

    def __init__(self, path: str, offset: int, problem: str, unit: str = "byte") -> None:
        super().__init__(f"{path}: {unit} {offset}: {problem}")
        self.path = path
        self.offset = offset
        self.problem = problem
        self.unit = unit


def as_paths(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path or a sequence of them, as a list."""
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


#: What a damaged gzip stream raises while it is read (``BadGzipFile`` is an ``OSError``).
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def read_bytes(path: PathLike) -> bytes:
    """The whole file, gunzipped when it starts with the gzip magic bytes; a truncated or
    damaged gzip stream raises ``ValueError`` naming the file."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"\x1f\x8b":
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except GZIP_ERRORS as exc:
        raise ValueError(f"{os.fspath(path)}: damaged or truncated gzip stream ({exc})"
                         ) from None


def read_text(path: PathLike) -> str:
    """:func:`read_bytes` decoded as UTF-8; ``ValueError`` names the file and byte."""
    try:
        return read_bytes(path).decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: byte {exc.start}: not UTF-8 text") from None


def read_json(path: PathLike) -> Any:
    """The one JSON document in ``path`` (plain or gzip); ``ValueError`` names the file."""
    try:
        return json.loads(read_bytes(path))
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: bad JSON ({exc})") from None


@dataclass(frozen=True)
class Record:
    """One JSON object of a feed file and where it came from.

    ``where`` names the file and the 1-based line (JSON lines) or the 0-based element
    (a JSON array file), for error messages. ``local_ns`` is the receive time that
    hftbacktest-style captures put before the JSON (``<ns> <json>``), else ``None``.
    """

    obj: Any
    where: str
    local_ns: int | None


def iter_records(path: PathLike) -> Iterator[Record]:
    """The JSON objects of ``path`` in file order.

    Accepts a JSON array of objects (``[{...},{...}]``) or JSON lines, each line either
    ``<json>`` or ``<integer receive ns> <json>``; blank lines are skipped. A line that does
    not parse raises ``ValueError`` naming the file and line.
    """
    name = os.fspath(path)
    data = read_bytes(path)
    if data.lstrip()[:1] == b"[":
        try:
            array = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"{name}: not a JSON array ({exc})") from None
        for i, obj in enumerate(array):
            yield Record(obj, f"{name}: element {i}", None)
        return
    numbers, stamps, texts = [], [], []
    for number, line in enumerate(data.splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        local_ns = None
        if text[:1].isdigit():
            stamp, _, text = text.partition(b" ")
            try:
                local_ns = int(stamp)
            except ValueError:
                raise ValueError(f"{name}: line {number}: bad receive time {stamp[:40]!r}"
                                 ) from None
        numbers.append(number)
        stamps.append(local_ns)
        texts.append(text)
    for number, local_ns, obj in zip(numbers, stamps, _parse_lines(name, numbers, texts),
                                     strict=True):
        yield Record(obj, f"{name}: line {number}", local_ns)


def _parse_lines(name: str, numbers: list[int], texts: list[bytes]) -> list[Any]:
    """The JSON value of each line: one parse of them all as an array (fast), or, when that
    fails or splits differently, line by line to name the bad line."""
    try:
        values = json.loads(b"[" + b",".join(texts) + b"]")
        if len(values) == len(texts):
            return values
    except ValueError:
        pass
    values = []
    for number, text in zip(numbers, texts, strict=True):
        try:
            values.append(json.loads(text))
        except ValueError as exc:
            raise ValueError(f"{name}: line {number}: bad JSON ({exc})") from None
    return values
