"""Market data out in ITCH 5.0 (issue 17, item 6): a served market's books, published as a
BinaryFILE and as MoldUDP64 over loopback UDP, rebuild exactly, order by order, with the
project's own ITCH reader and ``rltrader replay itch`` of a capture."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rltrader import Books, preset
from rltrader.core.constants import BUY, SELL
from rltrader.data import itch
from rltrader.exchange.accounts import parse_accounts
from rltrader.exchange.engine import Exchange, Request
from rltrader.exchange.itch_out import (
    END_OF_SESSION,
    MOLD_HEADER,
    FileSink,
    ItchPublisher,
    MoldUdpSink,
)
from rltrader.exchange.server import specs_of
from rltrader.exchange.symbols import ApiError


def exchange() -> Exchange:
    config = preset("resilient").replace(copies=1)
    accounts = parse_accounts({"accounts": [
        {"name": n, "api_key": f"{n}-key", "secret": f"{n}-secret",
         "balances": {"USDT": "100000", "XYZ": "1000"}} for n in ("alice", "bob")]},
        specs_of(config, "USDT", "1"))
    return Exchange(config, accounts, seed=3)


def trade(ex: Exchange, batches: int, seed: int) -> None:
    """Background steps and random orders and cancels of both accounts."""
    rng = random.Random(seed)
    spec = ex.symbols["XYZUSDT"]
    for i in range(batches):
        requests = []
        for account in ex.accounts:
            if rng.random() < 0.5:
                continue
            bids, asks = ex.depth(spec, 1)
            side = rng.choice(["BUY", "SELL"])
            touch = (bids if side == "BUY" else asks)[0][0]
            if rng.random() < 0.2 and ex.open_orders[account.owner]:
                oid = rng.choice(list(ex.open_orders[account.owner]))
                requests.append(Request("cancel", account, {"symbol": spec.symbol,
                                                            "orderId": str(oid)}))
            elif rng.random() < 0.2:
                requests.append(Request("new", account, {
                    "symbol": spec.symbol, "side": side, "type": "MARKET",
                    "quantity": str(rng.randint(1, 6))}))
            else:
                offset = rng.randint(-2, 1) * (1 if side == "BUY" else -1)
                requests.append(Request("new", account, {
                    "symbol": spec.symbol, "side": side, "type": "LIMIT",
                    "timeInForce": rng.choice(["GTC", "GTC", "IOC"]),
                    "price": spec.price_str(touch + offset),
                    "quantity": str(rng.randint(1, 9))}))
        ex.run_batch(requests, step=i % 2 == 0, ts=10**15 + i * 50_000_000)
        assert all(not isinstance(r.result, ApiError) or r.result.code in (-2010, -2011)
                   for r in requests)


def same_books(books: Books, ex: Exchange) -> None:
    """Every level of both sides, order by order (ids, sizes, queue order)."""
    depth = 2048
    p1, q1, _ = books.top_levels(depth)
    p2, q2, _ = ex.books.top_levels(depth)
    np.testing.assert_array_equal(p1[0], p2[0])
    np.testing.assert_array_equal(q1[0], q2[0])
    for k, side in ((0, BUY), (1, SELL)):
        for price in p2[0, k][q2[0, k] > 0].tolist():
            mine = books.level_queue(0, side, price)
            theirs = ex.books.level_queue(0, side, price)
            np.testing.assert_array_equal(mine["order_id"], theirs["order_id"])
            np.testing.assert_array_equal(mine["qty"], theirs["qty"])


class Receiver:
    """A UDP socket on loopback that keeps every datagram (in a thread)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        self.address = self.sock.getsockname()
        self.packets: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            data = self.sock.recv(65536)
            self.packets.append(data)
            if len(data) == MOLD_HEADER.size and MOLD_HEADER.unpack(data)[2] == END_OF_SESSION:
                return

    def join(self) -> None:
        self.thread.join(timeout=10)
        self.sock.close()


def write_pcap(path: Path, payloads: list[bytes], port: int) -> None:
    """A classic pcap of Ethernet / IPv4 / UDP frames carrying ``payloads``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k, payload in enumerate(payloads):
        udp = struct.pack(">HHHH", 40000, port, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", k, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def test_the_itch_file_and_the_moldudp64_stream_rebuild_the_book_exactly(tmp_path) -> None:
    ex = exchange()
    trade(ex, 20, seed=1)                 # the feed starts from a book already trading
    receiver = Receiver()
    publisher = ItchPublisher(ex, [FileSink(tmp_path / "served.itch"),
                                   MoldUdpSink(receiver.address)])
    publisher.attach()
    trade(ex, 400, seed=2)
    publisher.close()
    receiver.join()
    assert publisher.messages > 500

    feed = itch.read_messages(tmp_path / "served.itch", tick_size=100)
    books = Books(1, window=4096, n_owners=1)
    events = books.process_all(feed.messages)
    assert not np.any(events["kind"] == 2)                 # nothing rejected: every
    same_books(books, ex)                                   # reference was known

    # the datagrams: in order, contiguous, ending the session; the same records
    sequences = [MOLD_HEADER.unpack(p[:20]) for p in receiver.packets]
    assert sequences[-1][2] == END_OF_SESSION
    expected = 1
    for _, sequence, count in sequences[:-1]:
        assert sequence == expected
        expected += count
    records = b"".join(p[20:] for p in receiver.packets)
    assert records == (tmp_path / "served.itch").read_bytes()[:len(records)]

    # a capture of the stream, rebuilt by the project's own command
    write_pcap(tmp_path / "served.pcap", receiver.packets, receiver.address[1])
    out = subprocess.run([sys.executable, "-m", "rltrader.tools.cli", "replay", "itch",
                          str(tmp_path / "served.pcap")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    from_pcap = itch.read_messages(tmp_path / "served.pcap", tick_size=100)
    np.testing.assert_array_equal(from_pcap.messages, feed.messages[:len(from_pcap.messages)])
    bids, asks = ex.depth(ex.symbols["XYZUSDT"], 1)
    assert f"{bids[0][0] / 100:.2f}" in out.stdout and f"{asks[0][0] / 100:.2f}" in out.stdout


def test_a_tick_itch_cannot_carry_is_refused() -> None:
    from decimal import Decimal

    from rltrader.exchange.itch_out import itch_tick

    assert itch_tick(Decimal("0.01")) == 100
    with pytest.raises(ValueError, match="0.0001"):
        itch_tick(Decimal("0.00001"))


def test_rltrader_serve_publishes_itch_that_rebuilds_its_book(tmp_path) -> None:
    """``rltrader serve --itch-file --itch-udp``: after ccxt clients trade and the server
    stops, the file and the datagrams rebuild the book REST showed last."""
    pytest.importorskip("ccxt")
    from _exchange import ccxt_client, running_server

    (tmp_path / "quiet.toml").write_text('symbols = ["XYZ"]\ntick_size = 0.01\n')
    receiver = Receiver()
    path = tmp_path / "served.itch"
    with running_server(tmp_path, "--config", str(tmp_path / "quiet.toml"), "--itch-file",
                        str(path), "--itch-udp", f"127.0.0.1:{receiver.address[1]}") as url:
        alice, bob = ccxt_client(url, "alice"), ccxt_client(url, "bob")
        for k in range(5):
            alice.create_order("XYZ/USDT", "limit", "sell", 2 + k, 100.00 + k / 100)
            bob.create_order("XYZ/USDT", "limit", "buy", 3, 99.00 - k / 100)
        bob.create_order("XYZ/USDT", "market", "buy", 4)
        alice.cancel_order(alice.fetch_open_orders("XYZ/USDT")[-1]["id"], "XYZ/USDT")
        shown = alice.fetch_order_book("XYZ/USDT", 20)
    receiver.join()
    feed = itch.read_messages(path, tick_size=100)
    books = Books(1, window=4096, n_owners=1)
    events = books.process_all(feed.messages)
    assert not np.any(events["kind"] == 2)
    prices, qtys, _ = books.top_levels(20)
    bids = [[p / 100, q] for p, q in zip(prices[0, 0], qtys[0, 0], strict=True) if q]
    asks = [[p / 100, q] for p, q in zip(prices[0, 1], qtys[0, 1], strict=True) if q]
    assert (bids, asks) == (shown["bids"], shown["asks"])
    records = b"".join(p[20:] for p in receiver.packets)
    assert records == path.read_bytes()[:len(records)] and len(records) > 200
