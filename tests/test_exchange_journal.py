"""The exchange's journal and crash recovery (rltrader.exchange.journal, issue 17 item 5):
the record format (round trip, torn tail, corruption, header checks), recovery that
rebuilds the exact state of an exchange driven in-process, and a real ``rltrader serve
--journal`` killed with SIGKILL under load and restarted on its journal."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

from rltrader.exchange import journal as jr
from rltrader.exchange.accounts import Account
from rltrader.exchange.engine import Exchange, Request
from rltrader.exchange.symbols import ApiError
from rltrader.sim.config import preset
from tests._exchange import free_port

SYMBOL = "XYZUSDT"


def _accounts() -> list[Account]:
    # units: XYZ in lots, USDT in cash units (0.01): alice can buy ~150 lots at 100.00
    return [Account("alice", "alice-key", "alice-secret",
                    balances={"USDT": 1_500_000, "XYZ": 200}),
            Account("bob", "bob-key", "bob-secret", balances={"USDT": 3_000_000, "XYZ": 60})]


def _exchange(seed: int = 0, accounts: list[Account] | None = None, **kw) -> Exchange:
    return Exchange(preset("resilient"), _accounts() if accounts is None else accounts,
                    seed=seed, **kw)


def _random_batches(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    out, ts = [], 1_000
    for _ in range(n):
        ts += rng.randrange(0, 10**8)
        if rng.random() < 0.7:
            out.append({"ts": ts, "step": True, "requests": []})
            continue
        requests = [("new" if rng.random() < 0.7 else "cancel", rng.choice(["alice", "bob"]),
                     {"symbol": SYMBOL, "price": f"{rng.randrange(9000, 11000) / 100:.2f}",
                      "note": "\u00e9\"\\", "quantity": str(rng.randrange(1, 99))})
                    for _ in range(rng.randrange(0, 4))]
        out.append({"ts": ts, "step": rng.random() < 0.5, "requests": requests})
    return out


# ---- the format --------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_steps", [1, 7])
@pytest.mark.parametrize("fsync", ["batch", "none"])
def test_round_trip(tmp_path: Path, buffer_steps: int, fsync: str) -> None:
    batches = _random_batches(600)
    with jr.create(tmp_path / "j", {"format": jr.FORMAT, "version": jr.VERSION},
                   fsync=fsync, buffer_steps=buffer_steps, segment_bytes=2000) as journal:
        for batch in batches:
            journal.append(batch)
    assert len(jr.segments(tmp_path / "j")) > 3           # rolled over: times restart
    assert jr.read_batches(tmp_path / "j") == batches
    # a second writer continues in a new segment
    more = _random_batches(50, seed=2)
    more = [{**b, "ts": b["ts"] + batches[-1]["ts"]} for b in more]
    with jr.Journal(tmp_path / "j", buffer_steps=buffer_steps) as journal:
        for batch in more:
            journal.append(batch)
    assert jr.read_batches(tmp_path / "j") == batches + more


def test_empty_steps_are_small(tmp_path: Path) -> None:
    with jr.create(tmp_path, {}) as journal:
        for k in range(1000):
            journal.append({"ts": k * 5_000_000, "step": True, "requests": []})
    size = jr.segments(tmp_path)[0].stat().st_size
    assert size <= len(jr.MAGIC) + 1000 * 14
    with jr.create(tmp_path / "b", {}, buffer_steps=100) as journal:
        for k in range(1000):
            journal.append({"ts": k * 5_000_000, "step": True, "requests": []})
    assert jr.segments(tmp_path / "b")[0].stat().st_size < size / 2


def _write(tmp_path: Path, n: int = 40) -> tuple[Path, list[dict]]:
    batches = [b for b in _random_batches(n, seed=3)]
    with jr.create(tmp_path / "j", {}) as journal:
        for batch in batches:
            journal.append(batch)
    return tmp_path / "j", batches


def _records(path: Path) -> list[tuple[int, int]]:
    """(offset, end) of each record of a segment."""
    data, pos, out = path.read_bytes(), len(jr.MAGIC), []
    while pos < len(data):
        length, _ = jr._FRAME.unpack_from(data, pos)
        out.append((pos, pos + 8 + length))
        pos += 8 + length
    return out


def _batches_of_records(path: Path) -> list[int]:
    """How many batches each record of a segment holds."""
    out = []
    data = path.read_bytes()
    for pos, end in _records(path):
        out.append(len(jr._decode(data[pos + 8:end], 0)[0]))
    return out


@pytest.mark.parametrize("cut", ["inside payload", "inside frame", "zeros", "garbage"])
def test_torn_tail_is_cut_off(tmp_path: Path, cut: str) -> None:
    directory, batches = _write(tmp_path)
    segment = jr.segments(directory)[0]
    last_start, last_end = _records(segment)[-1]
    lost = _batches_of_records(segment)[-1]
    data = segment.read_bytes()
    if cut == "inside payload":
        segment.write_bytes(data[:last_end - 3])
    elif cut == "inside frame":
        segment.write_bytes(data[:last_start + 5])
    elif cut == "zeros":                                    # the file grew, the data not
        segment.write_bytes(data[:last_start] + bytes(last_end - last_start + 100))
    else:                                                   # its last bytes are wrong
        segment.write_bytes(data[:last_end - 2] + b"\xff\xfe")
    reader = jr.Reader(directory)
    assert list(reader) == batches[:-lost]
    assert reader.torn == (segment, last_start)
    reader.repair()
    assert segment.stat().st_size == last_start
    # recovery continues the journal in a new segment; nothing is lost after it
    with jr.Journal(directory) as journal:
        journal.append({"ts": batches[-1]["ts"] + 1, "step": True, "requests": []})
    assert jr.read_batches(directory) == batches[:-lost] + [
        {"ts": batches[-1]["ts"] + 1, "step": True, "requests": []}]


def test_segment_without_its_magic_is_torn(tmp_path: Path) -> None:
    directory, batches = _write(tmp_path)
    (directory / "segment-000001.log").write_bytes(jr.MAGIC[:3])
    reader = jr.Reader(directory)
    assert list(reader) == batches and reader.torn is not None
    reader.repair()
    assert jr.segments(directory) == [directory / "segment-000000.log"]


@pytest.mark.parametrize("where", ["crc", "length", "payload type", "earlier segment"])
def test_corrupt_record_is_an_error(tmp_path: Path, where: str) -> None:
    directory, _ = _write(tmp_path)
    segment = jr.segments(directory)[0]
    start, end = _records(segment)[2]
    data = bytearray(segment.read_bytes())
    if where == "crc":
        data[end - 1] ^= 0x40
    elif where == "length":
        data[start:start + 4] = (10**6).to_bytes(4, "little")
    elif where == "payload type":                          # a valid CRC of a bad record
        payload = b"\x09junk"
        data[start:end] = jr._frame(payload)
    else:                                                   # a later segment exists:
        data[end - 1] ^= 0x40                               # the damage is not a torn tail
        (directory / "segment-000001.log").write_bytes(jr.MAGIC)
    segment.write_bytes(bytes(data))
    if where == "length":
        # a length past the end of a segment that goes on is corruption, not a torn tail
        (directory / "segment-000001.log").write_bytes(jr.MAGIC)
    with pytest.raises(jr.JournalError, match=f"segment-000000.log at offset {start}:"):
        list(jr.Reader(directory))
    ex = _exchange()
    with pytest.raises(jr.JournalError, match="corrupt journal"):
        jr.replay(ex, directory)


def test_header_mismatch_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    ex = _exchange()
    jr.open_journal(ex, directory).close()
    for other, what in ((_exchange(seed=1), "seed"),
                        (_exchange(taker_fee_ppm=10), "taker_fee_ppm"),
                        (_exchange(lot_size="10"), "lot_size"),
                        (_exchange(accounts=_accounts()[:1]), "accounts"),
                        (Exchange(preset("small").replace(copies=1), _accounts()), "config")):
        with pytest.raises(jr.JournalError, match=f"another market: .*{what}") as info:
            jr.open_journal(other, directory)
        assert "\n" not in str(info.value)
        assert other.journal is None and other.batches == 0
    # the same market, with an equal lot written otherwise, another speed: accepted
    again = _exchange(lot_size="1.0", speed=3.0)
    jr.open_journal(again, directory).close()
    # not a header at all / another version
    (directory / jr.HEADER).write_text('{"format": "rltrader-journal", "version": 99}')
    with pytest.raises(jr.JournalError, match="version 99"):
        jr.open_journal(_exchange(), directory)


def test_cli_refuses_another_market_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("uvicorn")
    from rltrader.tools import cli

    directory = tmp_path / "j"
    jr.open_journal(Exchange(preset("resilient"), [], seed=0), directory).close()
    status = cli.main(["serve", "resilient", "--seed", "4", "--port", "9", "--journal",
                       str(directory)])
    err = capsys.readouterr().err.strip()
    assert status == cli.BAD_INPUT
    assert err == (f"serve: {directory}: the journal is of another market: seed (0 in the "
                   "journal, 4 now)")


# ---- recovery is exact --------------------------------------------------------------------


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


def _requests(ex: Exchange, rng: random.Random, ids: list[int]) -> list[Request]:
    """0-4 random requests of alice and bob (orders of every kind, cancels, some refused)."""
    spec = ex.symbols[SYMBOL]
    bids, asks = ex.depth(spec, 1)
    mid = (bids[0][0] + asks[0][0]) // 2 if bids and asks else 10_000
    out = []
    for _ in range(rng.choice([0, 0, 1, 1, 2, 4])):
        account = rng.choice(ex.accounts)
        r = rng.random()
        side = rng.choice(["BUY", "SELL"])
        if r < 0.35:
            params = {"symbol": SYMBOL, "side": side, "type": "LIMIT",
                      "timeInForce": rng.choice(["GTC", "GTC", "GTC", "IOC", "FOK"]),
                      "price": _price(mid + rng.randrange(-8, 9)),
                      "quantity": str(rng.randrange(1, 40))}
            if rng.random() < 0.2:
                params["newClientOrderId"] = f"c{rng.randrange(5)}"   # duplicates refused
        elif r < 0.45:
            params = {"symbol": SYMBOL, "side": side, "type": "LIMIT_MAKER",
                      "price": _price(mid + rng.randrange(-3, 4)),
                      "quantity": str(rng.randrange(1, 20))}
        elif r < 0.6:
            params = {"symbol": SYMBOL, "side": side, "type": "MARKET",
                      "quantity": str(rng.randrange(1, 30))}
        elif r < 0.7:                                          # refused for funds
            params = {"symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "GTC",
                      "price": _price(mid), "quantity": str(rng.randrange(200, 5000))}
        elif r < 0.75:                                         # refused by a check
            params = {"symbol": SYMBOL, "side": side, "type": "LIMIT", "quantity": "1"}
        else:
            if not ids:
                continue
            out.append(Request("cancel", account, {"symbol": SYMBOL,
                                                   "orderId": str(rng.choice(ids))}))
            continue
        out.append(Request("new", account, params))
    return out


def _drive(ex: Exchange, rng: random.Random, n: int, ts: int) -> tuple[int, list]:
    """``n`` batches of random requests and background steps; the outcomes."""
    outcomes = []
    for _ in range(n):
        ids = list(ex.orders)[-30:]
        requests = _requests(ex, rng, ids)
        ts += rng.randrange(1, 2 * 10**8)
        ex.run_batch(requests, step=rng.random() < 0.8 or not requests, ts=ts)
        for req in requests:
            outcomes.append(req.result.code if isinstance(req.result, ApiError)
                            else req.result.order_id)
    return ts, outcomes


def _state(ex: Exchange) -> dict:
    """Everything the exchange serves or keeps, as plain values."""
    spec = ex.symbols[SYMBOL]
    orders = [(o.order_id, o.client_id, o.account.name, o.spec.symbol, o.side, o.type, o.tif,
               o.price, o.qty, o.time_ms, o.status, o.executed, o.quote, o.update_ms, o.lock,
               o.limit, [vars(f) for f in o.fills]) for o in ex.orders.values()]
    balances = {(a.name, asset): (ex.total(a, asset), ex.free(a, asset),
                                  ex.locked[a.owner].get(asset, 0))
                for a in ex.accounts for asset in ex.assets()}
    prices, qtys, counts = ex.books.top_levels(256)
    return {
        "orders": orders, "balances": balances,
        "open": {k: sorted(v) for k, v in ex.open_orders.items()},
        "client_ids": {k: v.order_id for k, v in ex.client_ids.items()},
        "locked": ex.locked,
        "trades": {s: [vars(t) for t in q] for s, q in ex.trades.items()},
        "my_trades": {k: [(o.order_id, vars(f), t) for o, f, t in q]
                      for k, q in ex.my_trades.items()},
        "bars": ex.bars,
        "books.accounts": ex.books.accounts.tobytes(),
        "depth": ex.depth(spec, 5000),
        "levels": (prices.tobytes(), qtys.tobytes(), np.asarray(counts).tobytes()),
        "counters": (ex.update_id, ex.batches, ex.steps, ex.next_order_id, ex.next_trade_id,
                     ex.last_ns),
    }


def test_recovery_rebuilds_the_exact_state(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    live = _exchange(seed=7)
    jr.open_journal(live, directory, segment_bytes=4096)
    ts, outcomes = _drive(live, random.Random(11), 2500, 34_200 * 10**9)
    codes = [x for x in outcomes if x < 0]
    assert -2010 in codes and -2011 in codes and -1102 in codes  # refused: funds, ...
    assert sum(x > 0 for x in outcomes) > 300
    assert any(o.fills for o in live.orders.values())
    assert {o.status for o in live.orders.values()} >= {
        "NEW", "FILLED", "CANCELED", "EXPIRED", "REJECTED"}
    live.journal.close()
    live.journal = None
    assert len(jr.segments(directory)) > 2

    rebuilt = jr.recover(directory, _accounts())
    assert rebuilt.journal.replayed == live.batches
    assert _state(rebuilt) == _state(live)

    # both go on alike (the background included); the rebuilt one keeps journaling
    ts2, out_live = _drive(live, random.Random(12), 500, ts)
    _, out_rebuilt = _drive(rebuilt, random.Random(12), 500, ts)
    assert out_live == out_rebuilt
    assert _state(rebuilt) == _state(live)
    rebuilt.journal.close()
    again = jr.recover(directory, _accounts())
    assert _state(again) == _state(live)


def test_recover_refuses_other_accounts(tmp_path: Path) -> None:
    ex = _exchange()
    jr.open_journal(ex, tmp_path).close()
    other = _accounts()
    other[1].balances["XYZ"] += 1
    with pytest.raises(jr.JournalError, match="the accounts"):
        jr.recover(tmp_path, other)


# ---- a real server killed under load ---------------------------------------------------------

ACCOUNTS = {"alice": ("alice-key", "alice-secret", {"USDT": "100000", "XYZ": "1000"}),
            "bob": ("bob-key", "bob-secret", {"USDT": "100000", "XYZ": "1000"})}
RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}          # anything else is final


class _Server:
    """``rltrader serve resilient --journal DIR`` in a subprocess (killed by the test)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.accounts = tmp / "accounts.toml"
        lines = []
        for name, (key, secret, balances) in ACCOUNTS.items():
            lines += ["[[accounts]]", f'name = "{name}"', f'api_key = "{key}"',
                      f'secret = "{secret}"', "[accounts.balances]"]
            lines += [f'{asset} = "{amount}"' for asset, amount in balances.items()]
        self.accounts.write_text("\n".join(lines) + "\n")
        self.starts = 0

    def start(self) -> str:
        import httpx

        port = free_port()
        self.starts += 1
        log = self.tmp / f"serve-{self.starts}.log"
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient", "--port",
                 str(port), "--accounts", str(self.accounts), "--journal",
                 str(self.tmp / "journal"), "--speed", "20", "--orders-per-10s", "1000000",
                 "--weight-per-minute", "100000000"], stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/v3/ping", timeout=1.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class _Client:
    def __init__(self, url: str, name: str) -> None:
        import httpx

        self.name = name
        self.key, self.secret, balances = ACCOUNTS[name]
        self.start = {a: Decimal(v) for a, v in balances.items()}
        self.http = httpx.Client(base_url=url, timeout=10.0)

    def call(self, method: str, path: str, **params: str):  # type: ignore[no-untyped-def]
        params = {**params, "timestamp": str(time.time_ns() // 1_000_000),
                  "recvWindow": "60000"}
        query = urlencode(params)
        signature = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        r = self.http.request(method, f"/api/v3/{path}?{query}&signature={signature}",
                              headers={"X-MBX-APIKEY": self.key})
        return r.status_code, r.json()

    def public(self, path: str, **params: str):  # type: ignore[no-untyped-def]
        return self.http.get(f"/api/v3/{path}", params=params).json()

    def close(self) -> None:
        self.http.close()


class _Record:
    """What the clients were told: acknowledged orders and fills seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[tuple[str, int], tuple[str, Decimal]] = {}   # status, executed
        self.fills: dict[tuple[str, int, int], tuple[str, str]] = {}    # price, qty
        self.errors: list[BaseException] = []
        self.refused = 0

    def order(self, name: str, view: dict) -> None:
        key = (name, int(view["orderId"]))
        status, executed = view["status"], Decimal(view["executedQty"])
        with self.lock:
            old = self.orders.get(key)
            if old is None or (RANK.get(status, 2), executed) >= (RANK.get(old[0], 2), old[1]):
                self.orders[key] = (status, executed)
            for f in view.get("fills", ()):
                self.fill(name, int(f["tradeId"]), key[1], f["price"], f["qty"])

    def fill(self, name: str, trade_id: int, order_id: int, price: str, qty: str) -> None:
        self.fills[(name, trade_id, order_id)] = (price, qty)


def _load(url: str, name: str, seed: int, record: _Record, stop: threading.Event) -> None:
    """Place, cancel and read until the server goes away (or ``stop``)."""
    import httpx

    rng = random.Random(seed)
    client = _Client(url, name)
    mine: list[int] = []
    mid = Decimal("100")
    try:
        while not stop.is_set():
            if rng.random() < 0.05 or not mine:
                book = client.public("depth", symbol=SYMBOL, limit="5")
                if book["bids"] and book["asks"]:
                    mid = (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2
            r = rng.random()
            side = rng.choice(["BUY", "SELL"])
            if r < 0.45:
                price = (mid + Decimal(rng.randrange(-6, 7)) / 100).quantize(Decimal("0.01"))
                status, body = client.call("POST", "order", symbol=SYMBOL, side=side,
                                           type="LIMIT", timeInForce="GTC", price=str(price),
                                           quantity=str(rng.randrange(1, 6)))
            elif r < 0.52:
                status, body = client.call("POST", "order", symbol=SYMBOL, side=side,
                                           type="MARKET", quantity=str(rng.randrange(1, 4)))
            elif r < 0.57:                                   # refused: insufficient funds
                status, body = client.call("POST", "order", symbol=SYMBOL, side=side,
                                           type="LIMIT", timeInForce="GTC",
                                           price=str(mid.quantize(Decimal("0.01"))),
                                           quantity="100000")
                assert status == 400 and body["code"] == -2010, body
                with record.lock:
                    record.refused += 1
                continue
            elif r < 0.9 and mine:
                oid = mine.pop(rng.randrange(len(mine)))
                status, body = client.call("DELETE", "order", symbol=SYMBOL, orderId=str(oid))
                if status != 200:
                    assert body["code"] == -2011, body           # filled meanwhile
                    continue
            elif r < 0.95:
                status, body = client.call("GET", "myTrades", symbol=SYMBOL, limit="1000")
                assert status == 200, body
                with record.lock:
                    for t in body:
                        record.fill(name, t["id"], t["orderId"], t["price"], t["qty"])
                continue
            else:
                continue
            assert status == 200, body
            record.order(name, body)
            if body["status"] in RANK:
                mine.append(int(body["orderId"]))
            time.sleep(0.003)
    except httpx.TransportError:
        pass                                                 # killed
    except BaseException as exc:  # noqa: BLE001 (reported by the test)
        record.errors.append(exc)
    finally:
        client.close()


def _accounting(start: dict[str, Decimal], trades: list, account: dict, open_orders: list
                ) -> tuple[dict, dict, dict, dict]:
    """From an account's ``myTrades``, ``account`` and ``openOrders``: its totals (free plus
    locked) and what its start plus its fills make them, its locks and what its open
    orders hold (no fees)."""
    expect = dict(start)
    for t in trades:
        sign = 1 if t["isBuyer"] else -1
        expect["XYZ"] += sign * Decimal(t["qty"])
        expect["USDT"] -= sign * Decimal(t["quoteQty"]) + Decimal(t["commission"])
    have = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"]))
            for b in account["balances"]}
    held = {"USDT": Decimal(0), "XYZ": Decimal(0)}
    for o in open_orders:
        leaves = Decimal(o["origQty"]) - Decimal(o["executedQty"])
        if o["side"] == "BUY":
            held["USDT"] += Decimal(o["price"]) * leaves
        else:
            held["XYZ"] += leaves
    return ({a: f + lk for a, (f, lk) in have.items()}, expect,
            {a: lk for a, (_, lk) in have.items()}, held)


def _quiet_view(client: _Client) -> tuple[list, dict, list]:
    """The account's trades, balances and open orders as of one state of the exchange.

    Each REST call reads the state between two batches, but the restarted server's clock
    runs: a background step may fill one of the account's resting orders between
    ``myTrades`` and ``account`` (a balance that the trades do not explain yet) or between
    ``account`` and ``openOrders`` (a lock for an order no longer open). With the clients
    stopped a fill is the only thing that changes an account, and it shows in
    ``myTrades``: a view is kept only when ``myTrades`` reads the same before and after
    it, else it is read again. Any view kept is one state's, so a mismatch in it is the
    exchange's (a recovery that lost or doubled something), never the clock's."""
    for _ in range(100):
        status, before = client.call("GET", "myTrades", symbol=SYMBOL, limit="1000")
        assert status == 200 and len(before) < 1000, "too many trades to check"
        status, account = client.call("GET", "account")
        assert status == 200, account
        status, open_orders = client.call("GET", "openOrders", symbol=SYMBOL)
        assert status == 200, open_orders
        status, after = client.call("GET", "myTrades", symbol=SYMBOL, limit="1000")
        assert status == 200, after
        if after == before:
            return before, account, open_orders
    raise AssertionError(f"{client.name} traded during each of 100 reads of its account")


class _Stepping:
    """A :class:`_Client` (``name``, ``start``, ``call``) on an in-process exchange whose
    clock runs between calls, as a restarted server's does: a background step, then the
    gateway's handler reads the state (deterministic, no server)."""

    def __init__(self, ex: Exchange, name: str, ts: int) -> None:
        from rltrader.exchange.binance import BinanceGateway

        self.ex, self.gateway, self.ts, self.name = ex, BinanceGateway(ex), ts, name
        self.account = next(a for a in ex.accounts if a.name == name)
        status, account = self.call("GET", "account")
        self.start = {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
                      for b in account["balances"]}

    def step(self, requests: list[Request] | None = None) -> None:
        self.ts += 5_000_000
        self.ex.run_batch(requests or [], step=True, ts=self.ts)

    def call(self, method: str, path: str, **params: str):  # type: ignore[no-untyped-def]
        import asyncio
        import json

        self.step()
        handler = {"myTrades": self.gateway.my_trades, "account": self.gateway.account,
                   "openOrders": self.gateway.open_orders}[path]
        body = asyncio.run(handler({"symbol": SYMBOL, **params}, self.account, method))
        return 200, json.loads(json.dumps(body))


def test_a_view_of_one_state_while_the_clock_runs() -> None:
    """Why :func:`_check` reads balances through :func:`_quiet_view`: the background fills
    an account's resting orders between two REST calls, so ``myTrades`` then ``account``
    (then ``openOrders``) read two states now and then and do not add up, recovery or
    not; a view that ``myTrades`` brackets is one state's and always adds up."""
    ex = _exchange(seed=3)
    client = _Stepping(ex, "alice", 34_200 * 10**9)
    for _ in range(50):
        client.step()
    torn = 0
    for _ in range(200):
        bids, asks = ex.depth(ex.symbols[SYMBOL], 1)
        orders = [] if len(ex.open_orders[client.account.owner]) >= 6 else [
            Request("new", client.account, {"symbol": SYMBOL, "side": side, "type": "LIMIT",
                                            "timeInForce": "GTC", "price": _price(px),
                                            "quantity": "1"})
            for side, px in (("BUY", bids[0][0]), ("SELL", asks[0][0]))]
        client.step(orders)                         # resting at the touch: filled soon
        _, trades = client.call("GET", "myTrades", limit="1000")
        _, account = client.call("GET", "account")
        _, open_orders = client.call("GET", "openOrders")
        totals, expect, locks, held = _accounting(client.start, trades, account, open_orders)
        torn += totals != expect or locks != held
        totals, expect, locks, held = _accounting(client.start, *_quiet_view(client))
        assert totals == expect
        assert locks == held
    assert len(trades) > 20
    assert torn, "no fill between two calls: this no longer shows the race"


def _check(url: str, record: _Record) -> None:
    """Every acknowledged order and seen fill is there, once; balances follow the fills."""
    for name in ACCOUNTS:
        client = _Client(url, name)
        try:
            status, trades = client.call("GET", "myTrades", symbol=SYMBOL, limit="1000")
            assert status == 200 and len(trades) < 1000, "too many trades to check"
            keys = [(name, t["id"], t["orderId"]) for t in trades]
            assert len(keys) == len(set(keys)), "a fill is duplicated"
            found = {(name, t["id"], t["orderId"]): (t["price"], t["qty"]) for t in trades}
            for key, fill in record.fills.items():
                if key[0] == name:
                    assert found.get(key) == fill, f"fill {key} {fill} lost or changed"
            status, orders = client.call("GET", "allOrders", symbol=SYMBOL, limit="1000")
            by_id = {o["orderId"]: o for o in orders}
            for (who, oid), (acked, executed) in record.orders.items():
                if who != name:
                    continue
                now = by_id.get(oid)
                if now is None:
                    status, now = client.call("GET", "order", symbol=SYMBOL, orderId=str(oid))
                    assert status == 200, f"acknowledged order {oid} lost: {now}"
                assert Decimal(now["executedQty"]) >= executed
                if acked in RANK:
                    assert RANK.get(now["status"], 2) >= RANK[acked], (oid, acked, now)
                else:
                    assert (now["status"], Decimal(now["executedQty"])) == (acked, executed)
            # balances: the start plus the fills (no fees); locks: the open orders, read
            # from one state (the background fills resting orders between two calls)
            totals, expect, locks, held = _accounting(client.start, *_quiet_view(client))
            assert totals == expect
            assert locks == held
        finally:
            client.close()


def _still_trades(url: str) -> None:
    client = _Client(url, "alice")
    try:
        first = client.public("depth", symbol=SYMBOL, limit="5")
        status, body = client.call("POST", "order", symbol=SYMBOL, side="BUY", type="LIMIT",
                                   timeInForce="GTC", price="1.00", quantity="1")
        assert status == 200 and body["status"] == "NEW", body
        status, body = client.call("DELETE", "order", symbol=SYMBOL,
                                   orderId=str(body["orderId"]))
        assert status == 200 and body["status"] == "CANCELED", body
        deadline = time.monotonic() + 5
        while client.public("depth", symbol=SYMBOL, limit="5")["lastUpdateId"] <= \
                first["lastUpdateId"] + 5:                  # the clock runs again
            assert time.monotonic() < deadline, "the background does not step"
            time.sleep(0.05)
    finally:
        client.close()


def test_kill_under_load_and_recover(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    rng = random.Random(20240517)
    server = _Server(tmp_path)
    record = _Record()
    try:
        url = server.start()
        for crash in range(3):
            stop = threading.Event()
            threads = [threading.Thread(target=_load, args=(url, name, 100 * crash + k,
                                                            record, stop), daemon=True)
                       for k, name in enumerate(ACCOUNTS)]
            for t in threads:
                t.start()
            # some load first, counted rather than timed (a busy machine places fewer
            # orders a second), then a random moment
            floor, deadline = len(record.orders) + 40, time.monotonic() + 60
            while len(record.orders) < floor:
                assert not record.errors, record.errors
                assert time.monotonic() < deadline, "the clients place no orders"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.6))
            server.kill()
            stop.set()
            for t in threads:
                t.join(timeout=15)
                assert not t.is_alive()
            assert not record.errors, record.errors
            url = server.start()                               # recovers from the journal
            _check(url, record)
            _still_trades(url)
        assert len(record.orders) > 100 and record.fills and record.refused
        assert any(status not in RANK for status, _ in record.orders.values())
        assert len(jr.segments(tmp_path / "journal")) == 4   # one per run
    finally:
        server.kill()
