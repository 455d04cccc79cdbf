"""Bug 8: ``rltrader replay`` on corrupted, truncated or missing files never ends in a
traceback.

Every format's real sample (cut down where it is large, so that a case takes milliseconds)
is corrupted in many seeded ways: truncated at several points, bytes flipped, lines deleted
or repeated, gzip streams cut, fields replaced by NaN / inf / empty / 0 / negative values,
the file missing, a directory in its place, an empty file. Each case must end in one of:

- exit 0, and every ``Books`` the replay built passes ``check_integrity`` and is not crossed;
- exit 1, a failed known-answer check reported on stdout;
- exit 2 and exactly one line ``replay: <file>: <problem>`` on stderr.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import crypto_file, sample  # noqa: E402

import rltrader._book  # noqa: E402
from rltrader.data import itch, replay, replay_crypto  # noqa: E402
from rltrader.data.samples import AAPL_PAIR_MESSAGE, AAPL_PAIR_ORDERBOOK, sample_path  # noqa: E402
from rltrader.tools.cli import main  # noqa: E402

# ---------------------------------------------------------------------------------------
# the base samples: the real files, cut down to a few hundred records
# ---------------------------------------------------------------------------------------


def _lines(data: bytes, n: int) -> bytes:
    return b"\n".join(data.splitlines()[:n]) + b"\n"


def _records(data: bytes, most: int) -> bytes:
    """The whole ITCH records (u16 length + message) in the first ``most`` bytes."""
    end = 0
    while end + 2 <= len(data):
        nxt = end + 2 + int.from_bytes(data[end:end + 2], "big")
        if nxt > most:
            break
        end = nxt
    return data[:end]


def _coinbase_snapshot() -> bytes:
    snap = json.loads(gzip.decompress(crypto_file(
        "coinbase", "coinbase_gdax_btcusd_2018-07-13_l3_snapshot_begin.json.gz").read_bytes()))
    snap["bids"], snap["asks"] = snap["bids"][:200], snap["asks"][:200]
    return json.dumps(snap).encode()


def _coinbase_feed() -> bytes:
    feed = json.loads(gzip.decompress(crypto_file(
        "coinbase", "coinbase_gdax_btcusd_2018-07-13_l3_full_channel_messages.json.gz"
    ).read_bytes()))
    return b"\n".join(json.dumps(m).encode() for m in feed[:300]) + b"\n"


def _binance() -> bytes:
    raw = gzip.decompress(crypto_file(
        "binance", "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz").read_bytes())
    return _lines(raw, 400)


#: name -> (bytes of the file to corrupt, text?, argv with {f} for it and {s} for a helper)
BASES: dict[str, tuple[Callable[[], bytes], bool, list[str]]] = {
    "lobster": (lambda: _lines(sample_path(AAPL_PAIR_MESSAGE).read_bytes(), 300), True,
                ["lobster", "{f}"]),
    "lobster_pair_message": (lambda: sample_path(AAPL_PAIR_MESSAGE).read_bytes(), True,
                             ["lobster", "{f}", "{s}"]),
    "lobster_pair_orderbook": (lambda: sample_path(AAPL_PAIR_ORDERBOOK).read_bytes(), True,
                               ["lobster", "{s}", "{f}"]),
    "itch": (lambda: sample("itch50/keelan_200msg_orderflow.itch50").read_bytes(), False,
             ["itch", "{f}", "--tick-size", "1"]),
    "itch_directory": (lambda: _records(sample("itch50/bbekele_first1000_directory.itch50"
                                               ).read_bytes(), 8000), False, ["itch", "{f}"]),
    "pcap": (lambda: sample("itch50/keelan_200msg_orderflow_udp.pcap").read_bytes(), False,
             ["itch", "{f}", "--tick-size", "1"]),
    "coinbase_feed": (_coinbase_feed, True, ["coinbase", "{f}", "--snapshot", "{s}"]),
    "coinbase_snapshot": (_coinbase_snapshot, True, ["coinbase", "{s}", "--snapshot", "{f}"]),
    "binance": (_binance, True, ["binance", "{f}"]),
    "tardis_l2": (lambda: crypto_file(
        "tardis", "deribit_incremental_book_L2_BTC-PERPETUAL.csv").read_bytes(), True,
        ["tardis", "{f}"]),
    "tardis_snapshot": (lambda: crypto_file(
        "tardis", "binance-futures_book_snapshot_5_BTCUSDT.csv").read_bytes(), True,
        ["tardis", "{f}"]),
    "tardis_quotes": (lambda: crypto_file(
        "tardis", "huobi-dm-swap_quotes_BTC-USD.csv").read_bytes(), True, ["tardis", "{f}"]),
}

#: The partner file of a two-file base (unchanged in every case).
HELPERS: dict[str, Callable[[], bytes]] = {
    "lobster_pair_message": lambda: sample_path(AAPL_PAIR_ORDERBOOK).read_bytes(),
    "lobster_pair_orderbook": lambda: sample_path(AAPL_PAIR_MESSAGE).read_bytes(),
    "coinbase_feed": _coinbase_snapshot,
    "coinbase_snapshot": _coinbase_feed,
}

# ---------------------------------------------------------------------------------------
# corruptions: (bytes, random) -> bytes
# ---------------------------------------------------------------------------------------


def _truncate(frac: float) -> Callable[[bytes, random.Random], bytes]:
    return lambda data, rng: data[:int(len(data) * frac)]


def _flip(n: int) -> Callable[[bytes, random.Random], bytes]:
    def corrupt(data: bytes, rng: random.Random) -> bytes:
        out = bytearray(data)
        for _ in range(n):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    return corrupt


def _edit_line(how: str) -> Callable[[bytes, random.Random], bytes]:
    def corrupt(data: bytes, rng: random.Random) -> bytes:
        lines = data.splitlines()
        i = rng.randrange(len(lines))
        if how == "delete":
            del lines[i]
        elif how == "repeat":
            lines.insert(i, lines[i])
        else:  # swap with the next
            j = min(i + 1, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines) + b"\n"
    return corrupt


#: values a CSV field or a JSON number / numeric string is replaced with
BAD_VALUES = [b"nan", b"NaN", b"inf", b"-inf", b"", b"0", b"-5", b"1e30", b"abc",
              b"99999999999999999999999"]


def _field(value: bytes) -> Callable[[bytes, random.Random], bytes]:
    """Replace one number (a CSV field or a JSON number, quoted or not) by ``value``."""
    number = re.compile(rb'(?<=[,:\[\s"])-?\d+(\.\d+)?(?=[,"\]}\n])')

    def corrupt(data: bytes, rng: random.Random) -> bytes:
        lines = data.splitlines()
        for _ in range(20):  # a line with a number (not the header)
            i = rng.randrange(len(lines))
            found = list(number.finditer(b"," + lines[i] + b"\n"))
            if found:
                m = rng.choice(found)
                line = b"," + lines[i] + b"\n"
                lines[i] = (line[:m.start()] + value + line[m.end():])[1:-1]
                break
        return b"\n".join(lines) + b"\n"
    return corrupt


def _gzip_cut(frac: float) -> Callable[[bytes, random.Random], bytes]:
    return lambda data, rng: gzip.compress(data)[:max(int(len(gzip.compress(data)) * frac),
                                                      3)]


def _gzip_bad_crc(data: bytes, rng: random.Random) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF
    return bytes(packed)


def _gzip_garbage(data: bytes, rng: random.Random) -> bytes:
    packed = bytearray(gzip.compress(data))
    for _ in range(5):
        packed[rng.randrange(10, len(packed) - 8)] ^= 0x55
    return bytes(packed)


CORRUPTIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    **{f"truncate{f}": _truncate(f) for f in (0.0005, 0.3, 0.77, 0.999)},
    "chop1": lambda data, rng: data[:-1],
    **{f"flip{n}": _flip(n) for n in (1, 8)},
    "gzip_cut10": _gzip_cut(0.1), "gzip_cut95": _gzip_cut(0.95),
    "gzip_crc": _gzip_bad_crc, "gzip_garbage": _gzip_garbage,
    "empty": lambda data, rng: b"",
    "zeros": lambda data, rng: bytes(64),
    "not_utf8": lambda data, rng: b"\xff\xfe\x80" + data[3:],
}
TEXT_CORRUPTIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "delete_line": _edit_line("delete"), "repeat_line": _edit_line("repeat"),
    "swap_lines": _edit_line("swap"),
    **{f"field_{v.decode() or 'empty'}": _field(v) for v in BAD_VALUES},
}
SPECIAL = ("missing", "directory")
SEEDS = (0, 1)


def _cases() -> list[tuple[str, str, int]]:
    cases = []
    for base, (_, text, _) in BASES.items():
        names = [*CORRUPTIONS, *(TEXT_CORRUPTIONS if text else ())]
        for name in names:
            random_ = name.startswith(("flip", "field", "delete", "repeat", "swap", "gzip_g"))
            for seed in SEEDS if random_ else (0,):
                cases.append((base, name, seed))
        cases += [(base, special, 0) for special in SPECIAL]
    return cases


@pytest.fixture
def built_books(monkeypatch: pytest.MonkeyPatch) -> list[rltrader._book.Books]:
    """Every ``Books`` that the replay creates, kept to be checked afterwards."""
    made: list[rltrader._book.Books] = []

    class Recorded(rltrader._book.Books):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    def rebuild_books(*args: object, **kwargs: object) -> tuple[object, object]:
        books, stats = rebuild(*args, **kwargs)
        made.append(books)
        return books, stats

    rebuild = itch.rebuild_books
    monkeypatch.setattr(itch, "rebuild_books", rebuild_books)
    monkeypatch.setattr(replay, "Books", Recorded)
    monkeypatch.setattr(replay_crypto, "Books", Recorded)
    return made


def _argv(base: str, path: Path, helper: Path) -> list[str]:
    return ["replay", *(a.format(f=path, s=helper) for a in BASES[base][2])]


@pytest.mark.parametrize(("base", "corruption", "seed"), _cases())
def test_a_bad_file_ends_in_a_clean_exit(base: str, corruption: str, seed: int,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         built_books: list[rltrader._book.Books]) -> None:
    path, helper = tmp_path / f"{base}.dat", tmp_path / "helper.dat"
    if base in HELPERS:
        helper.write_bytes(HELPERS[base]())
    if corruption == "directory":
        path.mkdir()
    elif corruption != "missing":
        corrupt = {**CORRUPTIONS, **TEXT_CORRUPTIONS}[corruption]
        path.write_bytes(corrupt(BASES[base][0](), random.Random(seed)))
    code = main(_argv(base, path, helper))
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), code
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("replay: "), err
        assert re.match(r"replay: \S+: ", err) and str(path) in err, err  # names the file
        assert "Traceback" not in err
    elif code == 1:
        assert err == "" and out, "a failed check is reported on stdout"
    else:
        for books in built_books:
            books.check_integrity()
            state = books.book_array
            both = (state["n_resting"] > 0).all(axis=1)
            assert (state["best_bid"][both] < state["best_ask"][both]).all(), "crossed"


def test_the_bases_replay_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The uncorrupted cut-down samples exit 0 (so the corruptions are what fails)."""
    for base, (data, _, _) in BASES.items():
        path, helper = tmp_path / f"{base}.dat", tmp_path / f"{base}.helper"
        path.write_bytes(data())
        if base in HELPERS:
            helper.write_bytes(HELPERS[base]())
        assert main(_argv(base, path, helper)) == 0, (base, capsys.readouterr())


def test_nan_timestamps_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    lines = sample_path(AAPL_PAIR_MESSAGE).read_bytes().splitlines()[:20]
    for bad in (b"nan", b"inf", b"-1", b""):
        lines[5] = bad + lines[5][lines[5].index(b","):]
        path = tmp_path / "message.csv"
        path.write_bytes(b"\n".join(lines) + b"\n")
        assert main(["replay", "lobster", str(path)]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith(f"replay: {path}: ") and "row 5" in err, err
