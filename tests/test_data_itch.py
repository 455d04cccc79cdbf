"""ITCH 5.0 reader and writer: real slices checked by hand against the spec, a struct-based
reference decoder over every record, malformed input, halts, streaming across chunk
boundaries, and a writer -> reader round trip over generated message logs.

The real samples are in ``shared/data/itch50`` (see its README): 200 consecutive order-flow
messages (tick_size=1: one stock there quotes under $1), the first 1000 messages of a day
file (directory spin), and the order-flow slice as a UDP pcap.
"""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from _data import data_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

rltrader = pytest.importorskip("rltrader")
pytest.importorskip("rltrader._itch")
from rltrader import (  # noqa: E402
    CANCEL,
    EXECUTE,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    MESSAGE_DTYPE,
    REDUCE,
    REPLACE,
    Books,
    empty_messages,
)
from rltrader.data import itch, pcap  # noqa: E402

DATA = data_dir("itch50", "keelan_200msg_orderflow.itch50")
FLOW = DATA / "keelan_200msg_orderflow.itch50"
FLOW_PCAP = DATA / "keelan_200msg_orderflow_udp.pcap"
DIRECTORY = DATA / "bbekele_first1000_directory.itch50"


@pytest.fixture(scope="module")
def flow() -> itch.ItchFeed:
    return itch.read_messages(FLOW, tick_size=1)


# ---------------------------------------------------------------------------------------
# a reference decoder: the spec's struct formats, pure Python
# ---------------------------------------------------------------------------------------

FORMATS = {"A": ">cHH6sQcI8sI", "F": ">cHH6sQcI8sI4s", "E": ">cHH6sQIQ", "C": ">cHH6sQIQcI",
           "X": ">cHH6sQI", "D": ">cHH6sQ", "U": ">cHH6sQQII", "P": ">cHH6sQcI8sIQ",
           "Q": ">cHH6sQ8sIQc", "S": ">cHH6sc", "R": ">cHH6s8sccIcc2scccccIc"}


def records(data: bytes) -> list[tuple[int, bytes]]:
    """``(offset, message)`` of every BinaryFILE record."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">H", data, pos)
        out.append((pos, data[pos + 2:pos + 2 + length]))
        pos += 2 + length
    return out


def decode(message: bytes) -> tuple:
    fields = struct.unpack(FORMATS[chr(message[0])], message)
    return (*fields[:3], int.from_bytes(fields[3], "big"), *fields[4:])


# ---------------------------------------------------------------------------------------
# the order-flow slice, by hand
# ---------------------------------------------------------------------------------------


def test_first_add_by_hand(flow):
    # record 2 at byte 92: 41 0acc 0000 0d18f891eecf 0000000000009e16 42 00000bb8
    #                      4643454c20202020 00003458
    # A, locate 2764, ts 0x0d18f891eecf = 14,400,900,689,615 ns (04:00:00.900689615),
    # ref 0x9e16 = 40470, 'B', 3000 shares, "FCEL", price 0x3458 = 13400 = $1.3400
    m = flow.messages[0]
    assert (m["op"], m["side"], m["tif"], m["owner"]) == (LIMIT, 1, GTC, -1)
    assert (m["timestamp"], m["order_id"], m["qty"], m["price"]) == (
        14_400_900_689_615, 40470, 3000, 13400)
    assert flow.book_symbols[m["book"]] == "FCEL"
    assert flow.book_locates[m["book"]] == 2764


def test_add_in_cent_ticks_by_hand():
    # record 3 at byte 130: 41 0bb2 0000 0d18f89c2798 0000000000009e1a 53 00000960
    #                       464d532020202020 0005a0a0
    # A, locate 2994, ref 40474, 'S', 2400 shares, "FMS", 0x5a0a0 = 368800 = $36.88
    feed = itch.read_messages(FLOW, ["FMS"])
    m = feed.messages[0]
    assert (m["op"], m["side"], m["order_id"], m["qty"], m["price"], m["book"]) == (
        LIMIT, -1, 40474, 2400, 3688, 0)
    assert m["timestamp"] == 0x0D18F89C2798 == 14_400_901_359_512
    assert feed.book_locates.tolist() == [2994]


def test_replace_by_hand(flow):
    # record at byte 1105: 55 03e0 0000 0d18fb4da89f 0000000000002705 000000000000e18d
    #                      000001f4 0005c6e8
    # U, locate 992, ts 14,400,946,546,847, old ref 0x2705 = 9989, new ref 0xe18d = 57741,
    # 500 shares at 0x5c6e8 = 378600 = $37.86
    m = flow.messages[flow.messages["op"] == REPLACE][0]
    assert (m["order_id"], m["new_order_id"], m["qty"], m["price"], m["side"]) == (
        9989, 57741, 500, 378600, 0)
    assert m["timestamp"] == 0x0D18FB4DA89F == 14_400_946_546_847
    assert flow.book_locates[m["book"]] == 992


def test_delete_and_cancel_by_hand(flow):
    # byte 966: 44 02e3 0000 0d18fb4b92c3 000000000000b6fd: D, locate 739, ref 46845
    # byte 1571: 58 1344 0000 0d18fc3567f7 000000000000bc2f 0000012c:
    #            X, locate 4932, ref 48175, 300 shares cancelled
    d = flow.messages[flow.messages["op"] == CANCEL][0]
    assert (d["order_id"], d["timestamp"], d["qty"]) == (46845, 0x0D18FB4B92C3, 0)
    assert flow.book_locates[d["book"]] == 739
    x = flow.messages[flow.messages["op"] == REDUCE][0]
    assert (x["order_id"], x["qty"], x["timestamp"]) == (48175, 300, 0x0D18FC3567F7)
    assert flow.book_locates[x["book"]] == 4932


def test_trade_by_hand(flow):
    # byte 0: 50 0acc 0002 0d18f89010b2 0000000000000000 42 0000000a 4643454c20202020
    #         00003390 0000000000004584
    # P, locate 2764, ts 14,400,900,567,218, ref 0, 'B', 10 shares, FCEL,
    # 0x3390 = 13200 = $1.32, match 0x4584 = 17796
    t = flow.trades[0]
    assert (t["kind"], t["timestamp"], t["order_ref"], t["side"], t["shares"]) == (
        b"P", 0x0D18F89010B2, 0, 1, 10)
    assert (t["price_e4"], t["match_number"], t["locate"], t["message_index"]) == (
        13200, 17796, 2764, 0)
    assert flow.book_symbols[t["book"]] == "FCEL"
    assert flow.trades["message_index"].tolist() == [0, 0]  # both precede the first add


def test_every_record_matches_the_struct_decoder(flow):
    data = FLOW.read_bytes()
    expected = []
    for _, message in records(data):
        f = decode(message)
        kind = chr(message[0])
        if kind == "A":
            expected.append((f[3], f[4], 0, f[8], 0, f[6], LIMIT, 1 if f[5] == b"B" else -1))
        elif kind == "D":
            expected.append((f[3], f[4], 0, 0, 0, 0, CANCEL, 0))
        elif kind == "X":
            expected.append((f[3], f[4], 0, 0, 0, f[5], REDUCE, 0))
        elif kind == "U":
            expected.append((f[3], f[4], f[5], f[7], 0, f[6], REPLACE, 0))
    got = flow.messages
    assert len(got) == len(expected) == 198
    names = ("timestamp", "order_id", "new_order_id", "price", "stop_price", "qty", "op", "side")
    assert got.dtype == MESSAGE_DTYPE
    assert list(zip(*(got[n].tolist() for n in names), strict=True)) == expected
    # book <-> locate agrees with every record's stock locate
    locates = [decode(m)[1] for _, m in records(data) if chr(m[0]) in "ADXU"]
    assert flow.book_locates[got["book"]].tolist() == locates
    assert flow.type_counts == {"A": 115, "D": 51, "X": 28, "U": 4, "P": 2}
    assert flow.nbytes == len(data) == 6381


def test_pcap_gives_the_same_records(flow):
    assert pcap.pcap_to_binaryfile(FLOW_PCAP) == FLOW.read_bytes()
    feed = itch.read_messages(FLOW_PCAP, tick_size=1)
    assert np.array_equal(feed.messages, flow.messages)
    assert np.array_equal(feed.trades, flow.trades)


def udp_frame(payload: bytes) -> bytes:
    """A pcap packet record: Ethernet / IPv4 (20-byte header) / UDP around ``payload``."""
    udp = struct.pack(">HHHH", 1234, 5678, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4),
                     bytes(4))
    frame = bytes(12) + b"\x08\x00" + ip + udp
    return struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame


def test_pcap_with_moldudp64_packets(flow, tmp_path):
    found = records(FLOW_BYTES)
    packets = [b"SESSION001" + struct.pack(">QH", 1, 0)]  # a heartbeat
    for start in range(0, len(found), 7):
        group = found[start:start + 7]
        packets.append(b"SESSION001" + struct.pack(">QH", start + 1, len(group)) + b"".join(
            struct.pack(">H", len(m)) + m for _, m in group))
    path = tmp_path / "mold.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(udp_frame(p) for p in packets))
    assert np.array_equal(itch.read_messages(path, tick_size=1).messages, flow.messages)
    path.write_bytes(header + udp_frame(b"\x00\x05abc"))
    with pytest.raises(itch.ItchFormatError, match="byte 24: .*neither MoldUDP64"):
        itch.read_messages(path)


def test_gzip_gives_the_same_records(flow, tmp_path):
    path = tmp_path / "flow.itch50.gz"
    path.write_bytes(gzip.compress(FLOW.read_bytes()))
    feed = itch.read_messages(path, tick_size=1, chunk_bytes=100)
    assert np.array_equal(feed.messages, flow.messages)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_bytes=st.integers(64, 7000), reuse=st.booleans())
def test_chunk_boundaries_change_nothing(flow, chunk_bytes, reuse):
    reader = itch.ItchReader(FLOW, tick_size=1, chunk_bytes=chunk_bytes, reuse_buffers=reuse)
    chunks = [(c.nbytes, c.messages.copy()) for c in reader]
    assert sum(nbytes for nbytes, _ in chunks) == 6381
    assert all(nbytes <= chunk_bytes + 46 for nbytes, _ in chunks)  # read + a carried partial
    assert np.array_equal(np.concatenate([m for _, m in chunks]), flow.messages)
    assert reader.book_symbols == flow.book_symbols


def test_symbol_selection_keeps_that_stock(flow):
    fms = flow.book_symbols.index("FMS")
    feed = itch.read_messages(FLOW, ["FMS", "NOPE"], tick_size=1)
    expected = flow.messages[flow.messages["book"] == fms].copy()
    expected["book"] = 0
    assert np.array_equal(feed.messages, expected)
    assert feed.book_symbols == ["FMS", ""]
    # records of other stocks: counted as not selected, or (refs on stock locates this
    # slice never names) unresolved
    assert feed.counters["not_selected"] + feed.counters["unresolved"] == 200 - len(expected)
    assert feed.counters["unresolved"] == 33


def test_rebuild_rejects_only_refs_to_orders_before_the_slice(flow):
    # README: 83 D/X/U refer to orders added before the slice; 13 of those orders are in it
    live: dict[int, int] = {}
    unknown = 0
    for _, message in records(FLOW.read_bytes()):
        kind, f = chr(message[0]), decode(message)
        if kind == "A":
            live[f[4]] = f[6]
        elif kind in "DXU" and f[4] not in live:
            unknown += 1
        elif kind == "D":
            del live[f[4]]
        elif kind == "X":
            live[f[4]] -= f[5]
            if live[f[4]] <= 0:
                del live[f[4]]
        elif kind == "U":
            del live[f[4]]
            live[f[5]] = f[6]
    assert unknown == 70
    books, stats = itch.rebuild_books(itch.ItchReader(FLOW, tick_size=1),
                                      n_books=len(flow.book_symbols))
    assert stats.rejected == {"UNKNOWN_ORDER": unknown}
    assert stats.messages == 198 and stats.trades == 2
    assert books.live_orders() == len(live)
    books.check_integrity()


# ---------------------------------------------------------------------------------------
# the directory file, by hand
# ---------------------------------------------------------------------------------------


def test_directory_by_hand():
    # byte 55: 52 0002 0000 0a53a289933e 4141202020202020 4e 20 00000064 4e 43 5a20 50 4e
    #          20 31 4e 00000001 4e
    # R, locate 2, ts 0x0a53a289933e, "AA", category N (NYSE), status ' ', lot 100,
    # round lots only N, class C, sub type "Z ", P, short sale N, ipo ' ', LULD 1, ETP N,
    # leverage 1, inverse N
    d = itch.read_directory(DIRECTORY)
    assert d.shape == (993,)
    aa = d[1]
    assert (aa["timestamp"], aa["locate"], aa["book"], aa["symbol"]) == (
        0x0A53A289933E, 2, 1, b"AA")
    assert (aa["market_category"], aa["financial_status"], aa["round_lot_size"],
            aa["round_lots_only"], aa["issue_classification"], aa["issue_sub_type"]) == (
        b"N", b" ", 100, b"N", b"C", b"Z")
    assert (aa["authenticity"], aa["short_sale_threshold"], aa["ipo_flag"],
            aa["luld_ref_price_tier"], aa["etp_flag"], aa["etp_leverage_factor"],
            aa["inverse_indicator"]) == (b"P", b"N", b" ", b"1", b"N", 1, b"N")
    assert np.array_equal(d["locate"], np.arange(1, 994))
    assert np.array_equal(d["book"], np.arange(993))


def test_directory_file_system_event_and_trading_actions():
    feed = itch.read_messages(DIRECTORY)
    # byte 0: 000c 53 0000 0000 0a11ea0e8c43 4f: S 'O' at 03:04:32.057543747
    assert feed.system_events.tolist() == [(11_072_057_543_747, b"O")]
    assert feed.type_counts == {"S": 1, "R": 993, "H": 3, "Y": 3}
    assert feed.messages.size == 0 and feed.trades.size == 0
    # byte 3294: 48 0001 0000 0a53a2ba7f6d 4120202020202020 54 20 20202020: H 'A' trading
    h = feed.trading_actions
    assert h.tolist()[0] == (0x0A53A2BA7F6D, 1, 0, b"A", b"T", b"")
    assert h["symbol"].tolist() == [b"A", b"AA", b"AAAU"]
    assert feed.book_symbols[:3] == ["A", "AA", "AAAU"] and len(feed.book_symbols) == 993


def test_directory_selection_names_the_books():
    feed = itch.read_messages(DIRECTORY, ["AAAU", "A"])
    assert feed.book_symbols == ["AAAU", "A"]
    assert feed.book_locates.tolist() == [3, 1]
    assert feed.directory["book"][:4].tolist() == [1, -1, 0, -1]
    assert feed.trading_actions["book"].tolist() == [1, -1, 0]


# ---------------------------------------------------------------------------------------
# hand-built records: halts, replace semantics, malformed input
# ---------------------------------------------------------------------------------------


def rec(fmt: str, kind: bytes, locate: int, ts: int, *fields: object) -> bytes:
    body = struct.pack(fmt, kind, locate, 0, ts.to_bytes(6, "big"), *fields)
    return struct.pack(">H", len(body)) + body


def directory_entry(locate: int, symbol: bytes) -> bytes:
    return rec(FORMATS["R"], b"R", locate, 1, symbol.ljust(8), b"Q", b"N", 100, b"N", b"C",
               b"Z ", b"P", b"N", b"N", b"1", b"N", 0, b"N")


def add(locate, ts, ref, side, shares, symbol, price):
    return rec(FORMATS["A"], b"A", locate, ts, ref, side, shares, symbol.ljust(8), price)


def action(locate, ts, symbol, state):
    return rec(">cHH6s8scc4s", b"H", locate, ts, symbol.ljust(8), state, b" ", b"    ")


def test_halt_keeps_adds_and_deletes_and_counts_executions(tmp_path):
    path = tmp_path / "halt.itch50"
    path.write_bytes(b"".join([
        directory_entry(7, b"XYZ"),
        add(7, 10, 1, b"B", 100, b"XYZ", 100_000),          # $10.00
        action(7, 20, b"XYZ", b"H"),                        # halted
        add(7, 30, 2, b"S", 50, b"XYZ", 100_100),           # add during the halt: rests
        rec(FORMATS["D"], b"D", 7, 31, 1),                  # delete during the halt
        rec(FORMATS["E"], b"E", 7, 32, 2, 10, 99),          # should not happen: counted
        action(7, 40, b"XYZ", b"T"),                        # resumed
        rec(FORMATS["E"], b"E", 7, 41, 2, 10, 100),
    ]))
    feed = itch.read_messages(path)
    assert feed.messages["op"].tolist() == [LIMIT, LIMIT, CANCEL, EXECUTE, EXECUTE]
    assert feed.trading_actions[["timestamp", "state"]].tolist() == [(20, b"H"), (40, b"T")]
    assert feed.counters["executions_while_halted"] == 1
    books = Books(1)
    books.process_all(feed.messages)
    assert books.order(0, 1) is None
    assert books.order(0, 2)["qty"] == 30
    assert (books.best_bid(), books.best_ask()) == (0, 1001)


def test_replace_keeps_side_and_loses_priority(tmp_path):
    path = tmp_path / "u.itch50"
    path.write_bytes(b"".join([
        add(1, 1, 11, b"B", 100, b"ABC", 50_000),
        add(1, 2, 12, b"B", 100, b"ABC", 50_000),
        rec(FORMATS["U"], b"U", 1, 3, 11, 13, 40, 50_000),
        rec(FORMATS["U"], b"U", 1, 4, 12, 14, 70, 50_100),
    ]))
    feed = itch.read_messages(path)
    books = Books(1)
    books.process_all(feed.messages)
    assert books.level_queue(0, 1, 500)["order_id"].tolist() == [13]
    assert books.level_queue(0, 1, 501)["order_id"].tolist() == [14]
    assert books.order(0, 11) is None and books.order(0, 13)["side"] == 1
    assert books.level_queue(0, 1, 501)["qty"].tolist() == [70]


FLOW_BYTES = FLOW.read_bytes()
RECORD_OFFSETS = [pos for pos, _ in records(FLOW_BYTES)]


@pytest.mark.parametrize("cut", [1, 2, 3, 40, 6380])
def test_truncated_file_names_the_last_record(tmp_path, cut):
    path = tmp_path / "cut.itch50"
    path.write_bytes(FLOW_BYTES[:cut])
    start = max(p for p in RECORD_OFFSETS if p < cut)
    with pytest.raises(itch.ItchFormatError, match=f"byte {start}: truncated record") as exc:
        itch.read_messages(path, tick_size=1, chunk_bytes=64)
    assert exc.value.offset == start


def patched(tmp_path, offset: int, new: bytes) -> Path:
    data = bytearray(FLOW_BYTES)
    data[offset:offset + len(new)] = new
    path = tmp_path / "bad.itch50"
    path.write_bytes(bytes(data))
    return path


def test_unknown_type_raises_or_is_skipped(tmp_path):
    path = patched(tmp_path, 966 + 2, b"Z")  # the D at byte 966 becomes type 'Z'
    with pytest.raises(itch.ItchFormatError, match="byte 966: record type 'Z'.*unknown"):
        itch.read_messages(path, tick_size=1)
    feed = itch.read_messages(path, tick_size=1, on_unknown="skip")
    assert feed.counters["unknown_skipped"] == 1 and feed.type_counts["Z"] == 1
    assert feed.messages.size == 197


def test_length_mismatch_raises(tmp_path):
    # the D at byte 966 becomes an 'E' (31 bytes) but keeps its 19-byte length
    path = patched(tmp_path, 966 + 2, b"E")
    with pytest.raises(itch.ItchFormatError, match="byte 966: .*length 19.*expected 31"):
        itch.read_messages(path, tick_size=1)


def test_bad_order_ref_side_and_tick_raise(tmp_path):
    with pytest.raises(itch.ItchFormatError, match="byte 966: .*order ref is 0"):
        itch.read_messages(patched(tmp_path, 966 + 2 + 11, bytes(8)), tick_size=1)
    with pytest.raises(itch.ItchFormatError, match="byte 966: .*does not fit int64"):
        itch.read_messages(patched(tmp_path, 966 + 2 + 11, b"\xff" * 8), tick_size=1)
    with pytest.raises(itch.ItchFormatError, match="byte 92: .*'B' or 'S'"):
        itch.read_messages(patched(tmp_path, 92 + 2 + 19, b"Z"), tick_size=1)
    with pytest.raises(itch.ItchFormatError, match="byte 5476: .*8990.*tick_size=1"):
        itch.read_messages(FLOW)


def test_end_of_session_record(tmp_path):
    path = tmp_path / "end.itch50"
    path.write_bytes(FLOW_BYTES + b"\x00\x00")
    assert itch.read_messages(path, tick_size=1).messages.size == 198
    path.write_bytes(FLOW_BYTES[:92] + b"\x00\x00" + FLOW_BYTES[92:])
    with pytest.raises(itch.ItchFormatError, match="byte 94: data after the end-of-session"):
        itch.read_messages(path, tick_size=1)


# ---------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------

PRICE_MAX = 0xFFFFFFFF // 100


@st.composite
def message_logs(draw):
    """A canonical message log on 1-3 books (fields ITCH does not carry left at 0/-1) and
    trades placed between its messages."""
    n_books = draw(st.integers(1, 3))
    n = draw(st.integers(0, 40))
    msgs = empty_messages(n)
    ids = iter(draw(st.lists(st.integers(1, 2**63 - 1), min_size=2 * n, max_size=2 * n,
                             unique=True)))
    msgs["timestamp"] = np.cumsum(draw(st.lists(st.integers(0, 2**40), min_size=n,
                                                max_size=n))) if n else 0
    rows = []
    for i in range(n):
        op = draw(st.sampled_from([LIMIT, CANCEL, REDUCE, REPLACE, EXECUTE]))
        msgs[i]["op"] = op
        msgs[i]["book"] = draw(st.integers(0, n_books - 1))
        msgs[i]["order_id"] = next(ids)
        if op in (LIMIT, REPLACE):
            msgs[i]["price"] = draw(st.integers(0, PRICE_MAX))
        if op != CANCEL:
            msgs[i]["qty"] = draw(st.integers(0, 2**32 - 1))
        if op == LIMIT:
            msgs[i]["side"] = draw(st.sampled_from([1, -1]))
        if op == REPLACE:
            msgs[i]["new_order_id"] = next(ids)
        rows.append(msgs[i])
    trades = []
    for index in sorted(draw(st.lists(st.integers(0, n), max_size=8))):
        kind = draw(st.sampled_from([b"P", b"Q", b"B", b"C"]))
        if kind == b"C" and (index == n or msgs[index]["op"] != EXECUTE
                             or any(t[0] == b"C" and t[1] == index for t in trades)):
            continue
        trades.append((kind, index))
    trades.sort(key=lambda t: (t[1], t[0] == b"C"))  # a C row comes right before its EXECUTE
    out = np.zeros(len(trades), itch.TRADE_DTYPE)
    for row, (kind, index) in zip(out, trades, strict=True):
        row["kind"], row["message_index"] = kind, index
        row["timestamp"] = msgs[index]["timestamp"] if index < n else draw(
            st.integers(0, 2**48 - 1))
        row["match_number"] = draw(st.integers(0, 2**63 - 1))
        if kind == b"C":
            row["book"] = msgs[index]["book"]
            row["order_ref"], row["shares"] = msgs[index]["order_id"], msgs[index]["qty"]
            row["price_e4"] = draw(st.integers(0, 2**32 - 1))
            row["printable"] = draw(st.sampled_from([b"Y", b"N"]))
        else:
            row["book"] = draw(st.integers(0, n_books - 1))
        if kind == b"P":
            row["order_ref"] = draw(st.integers(0, 2**63 - 1))
            row["side"] = draw(st.sampled_from([1, -1]))
            row["shares"] = draw(st.integers(0, 2**32 - 1))
            row["price_e4"] = draw(st.integers(0, 2**32 - 1))
        elif kind == b"Q":
            row["shares"] = draw(st.integers(0, 2**63 - 1))
            row["price_e4"] = draw(st.integers(0, 2**32 - 1))
            row["cross_type"] = draw(st.sampled_from([b"O", b"C", b"H"]))
        row["locate"] = row["book"] + 1
    symbols = draw(st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ.", min_size=1, max_size=8),
                            min_size=n_books, max_size=n_books, unique=True))
    return msgs, out, symbols


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=message_logs(), chunk_bytes=st.integers(64, 512))
def test_writer_reader_round_trip(tmp_path, log, chunk_bytes):
    msgs, trades, symbols = log
    path = tmp_path / "log.itch50"
    itch.write_itch(path, msgs, symbols, trades=trades)
    feed = itch.read_messages(path, chunk_bytes=chunk_bytes)
    assert np.array_equal(feed.messages, msgs)
    assert np.array_equal(feed.trades, trades)
    assert feed.book_symbols == symbols
    assert feed.system_events["code"].tolist() == [b"O", b"C"]
    selected = itch.read_messages(path, [symbols[-1]])
    keep = msgs[msgs["book"] == len(symbols) - 1].copy()
    keep["book"] = 0
    assert np.array_equal(selected.messages, keep)


def test_written_file_matches_the_spec_bytes(tmp_path):
    msgs = empty_messages(2)
    msgs[0] = (5, 40470, 0, 134, 0, 3000, 0, -1, LIMIT, 1, GTC)
    msgs[1] = (6, 40470, 57741, 135, 0, 500, 0, -1, REPLACE, 0, GTC)
    path = tmp_path / "two.itch50"
    itch.write_itch(path, msgs, ["FCEL"])
    found = records(path.read_bytes())
    assert [chr(m[0]) if m else "end" for _, m in found] == ["S", "R", "A", "U", "S", "end"]
    assert decode(found[2][1]) == (b"A", 1, 0, 5, 40470, b"B", 3000, b"FCEL    ", 13400)
    assert decode(found[3][1]) == (b"U", 1, 0, 6, 40470, 57741, 500, 13500)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("op", MARKET, "op has no ITCH record"),
    ("tif", IOC, "must be GTC"),
    ("price", PRICE_MAX + 1, "does not fit"),
    ("order_id", 0, "order id must be > 0"),
    ("book", 1, "book has no symbol"),
    ("timestamp", 1 << 48, "timestamp"),
])
def test_writer_rejects_what_itch_cannot_carry(tmp_path, field, value, problem):
    msgs = empty_messages(3)
    msgs["op"], msgs["side"], msgs["price"], msgs["qty"] = LIMIT, 1, 10, 1
    msgs["order_id"] = [1, 2, 3]
    msgs[2][field] = value
    with pytest.raises(ValueError, match=f"message 2: .*{problem}"):
        itch.write_itch(tmp_path / "x.itch50", msgs, ["A"])


def test_writer_rejects_a_replace_that_keeps_its_id(tmp_path):
    msgs = empty_messages(1)
    msgs[0] = (0, 5, 0, 10, 0, 1, 0, -1, REPLACE, 0, GTC)
    with pytest.raises(ValueError, match="message 0: .*REPLACE: a new id"):
        itch.write_itch(tmp_path / "x.itch50", msgs, ["A"])


def test_writer_in_pieces_equals_one_piece(tmp_path):
    from rltrader.tools.workloads import limit_cancel

    msgs = limit_cancel(3000, seed=3)
    one, two = tmp_path / "one.itch50", tmp_path / "two.itch50"
    itch.write_itch(one, msgs, ["SYNTH"])
    with itch.ItchWriter(two, ["SYNTH"], chunk_messages=700) as writer:
        writer.write(msgs[:1234])
        writer.write(msgs[1234:])
    assert one.read_bytes() == two.read_bytes()
    assert np.array_equal(itch.read_messages(two).messages, msgs)


def test_gzip_output(tmp_path):
    msgs = empty_messages(1)
    msgs[0] = (0, 5, 0, 10, 0, 1, 0, -1, LIMIT, -1, GTC)
    itch.write_itch(tmp_path / "x.itch50.gz", msgs, ["A"])
    assert gzip.decompress((tmp_path / "x.itch50.gz").read_bytes())[:3] == b"\x00\x0cS"
    assert np.array_equal(itch.read_messages(tmp_path / "x.itch50.gz").messages, msgs)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def test_cli_replay_itch(tmp_path, capsys):
    from rltrader.tools import cli

    out = tmp_path / "l2.csv"
    assert cli.main(["replay", "itch", str(FLOW), "--tick-size", "1", "--symbol", "FMS",
                     "--levels", "3", "--dump-l2", str(out)]) == 0
    text = capsys.readouterr().out
    assert "7 book messages" in text and "36.8200     200 |   36.8800    2400" in text
    rows = np.loadtxt(out, delimiter=",", dtype=np.int64, ndmin=2)
    assert rows.shape == (7, 12)
    # after the first message (FMS sell 2400 @ $36.88): ask 1 only
    assert rows[0, :4].tolist() == [368800, 2400, -9999999999, 0]


def test_cli_replay_itch_reports_bad_input(capsys):
    from rltrader.tools import cli

    assert cli.main(["replay", "itch", str(FLOW)]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"replay: {re.escape(str(FLOW))}: byte 5476: .*tick_size=1", err), err


def test_writer_rejects_a_c_row_that_is_not_last_before_its_execute(tmp_path):
    msgs = empty_messages(2)
    msgs[0] = (0, 5, 0, 10, 0, 9, 0, -1, LIMIT, 1, GTC)
    msgs[1] = (1, 5, 0, 0, 0, 4, 0, -1, EXECUTE, 0, GTC)
    trades = np.zeros(2, itch.TRADE_DTYPE)
    trades["message_index"], trades["locate"], trades["timestamp"] = 1, 1, 1
    trades["kind"] = [b"C", b"B"]
    trades["order_ref"][0], trades["shares"][0], trades["printable"][0] = 5, 4, b"Y"
    with pytest.raises(ValueError, match="trade 1: .*not the last row"):
        itch.write_itch(tmp_path / "x.itch50", msgs, ["A"], trades=trades)
    itch.write_itch(tmp_path / "x.itch50", msgs, ["A"], trades=trades[::-1].copy())
    assert np.array_equal(itch.read_messages(tmp_path / "x.itch50").trades, trades[::-1])


def test_writer_names_the_bad_message_by_its_index_in_the_whole_log(tmp_path):
    msgs = empty_messages(4)
    msgs["op"], msgs["side"], msgs["price"], msgs["qty"] = LIMIT, 1, 10, 1
    msgs["order_id"] = [1, 2, 3, 4]
    msgs["op"][3] = MARKET
    with pytest.raises(ValueError, match="message 3: op has no ITCH record"):
        with itch.ItchWriter(tmp_path / "x.itch50", ["A"]) as writer:
            writer.write(msgs[:2])
            writer.write(msgs[2:])


def test_a_reader_iterates_once():
    reader = itch.ItchReader(FLOW, tick_size=1)
    assert sum(c.messages.size for c in reader) == 198
    assert reader.nbytes == 6381
    with pytest.raises(RuntimeError, match="iterates once"):
        list(reader)
