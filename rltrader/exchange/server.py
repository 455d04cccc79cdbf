"""``rltrader serve``: a market on a clock, served to real clients (docs/exchange.md).

One process: uvicorn runs the gateway's ASGI app on an asyncio loop, and the exchange's
sequencer runs on the same loop as the app's lifespan task, so that it alone touches the
books while handlers only queue requests and read state between batches.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rltrader.exchange.accounts import Account, load_accounts
from rltrader.exchange.engine import Exchange
from rltrader.exchange.symbols import SymbolSpec
from rltrader.sim.config import MarketConfig, load_config, preset


def market_config(name: str | None, config_path: str | None) -> MarketConfig:
    config = load_config(config_path) if config_path else preset(name or "resilient")
    return config.replace(copies=1)


def specs_of(config: MarketConfig, quote: str, lot_size: str) -> list[SymbolSpec]:
    """The symbols a served ``config`` shows (``NAME + quote``), as the exchange builds
    them: for reading an accounts file before the market exists."""
    try:
        lot = Decimal(lot_size)
    except InvalidOperation:
        raise ValueError(f"--lot-size must be a decimal number, got {lot_size!r}") from None
    if not lot.is_finite() or lot <= 0 or not -18 <= lot.adjusted() <= 18:
        raise ValueError(f"--lot-size must be > 0, between 1e-18 and 1e18, got {lot_size!r}")
    return [SymbolSpec(f"{name}{quote}", name, quote, Decimal(str(config.tick_size)), lot,
                       book) for book, name in enumerate(config.symbols)]


#: Formats ``rltrader serve --replay`` takes: NASDAQ equities (ticks of $0.01, lots of
#: one share) and crypto L2 feeds (the feed's own price and size grids).
REPLAY_FORMATS = ("lobster", "itch", "binance", "tardis")


def read_replay(fmt: str, paths: Sequence[str], symbol: str | None = None
                ) -> tuple[Any, str, str | None, str, str]:
    """Recorded data for ``--replay FORMAT PATH...``: the reader's result, the symbol's
    name, the ITCH stock to replay, the tick and the lot (decimal strings).
    ``lobster MESSAGE [ORDERBOOK]`` (with the orderbook file the book is exact from the
    first row; the name is the file's, ``AAPL_...``), ``itch PATH`` (``symbol`` picks the
    stock when the file holds several): ticks of $0.01, lots of one share. ``binance
    PATH...`` (a depth snapshot and its diff stream, as ``rltrader replay binance``) and
    ``tardis PATH...``: the feed's own grids and symbol (``BTCUSDT``)."""
    from rltrader.data import binance, itch, lobster, tardis

    if fmt in ("binance", "tardis"):
        if not paths:
            raise ValueError(f"--replay {fmt} PATH...")
        feed = (binance if fmt == "binance" else tardis).read_feed(list(paths))
        name = symbol or feed.symbol
        if not name:
            raise ValueError("the feed names no symbol: give --replay-symbol")
        return feed, name, None, feed.tick_size.step, feed.lot_size.step

    if fmt == "lobster":
        if not 1 <= len(paths) <= 2:
            raise ValueError("--replay lobster MESSAGE [ORDERBOOK]")
        if len(paths) == 2:
            from rltrader.data.lobster_exact import exact_messages

            feed: Any = exact_messages(lobster.read_raw(paths[0]),
                                       lobster.read_orderbook(paths[1]))
        else:
            feed = lobster.read_messages(paths[0])
        return feed, symbol or Path(paths[0]).name.split("_")[0], None, "0.01", "1"
    if fmt == "itch":
        if len(paths) != 1:
            raise ValueError("--replay itch PATH")
        feed = itch.read_messages(paths[0], tick_size=100)
        stocks = list(feed.book_symbols)
        if symbol is None and len(stocks) == 1:
            symbol = stocks[0]
        if symbol is None:
            raise ValueError(f"the ITCH file holds {len(stocks)} stocks: pick one with "
                             "--replay-symbol")
        return feed, symbol, symbol, "0.01", "1"
    raise ValueError(f"--replay formats: {', '.join(REPLAY_FORMATS)} (got {fmt!r})")


def build(name: str | None = None, *, config_path: str | None = None,
          accounts_path: str | Path | None = None, seed: int = 0, speed: float = 1.0,
          quote: str = "USDT", lot_size: str = "1", maker_fee_ppm: int = 0,
          taker_fee_ppm: int = 0, journal: Any = None,
          journal_fsync: str = "batch", replay: Sequence[str] | None = None,
          replay_symbol: str | None = None, replay_step_ns: int = 100_000_000,
          venues: Sequence[tuple[str, int, int]] = ()) -> Exchange:
    """The exchange ``rltrader serve`` runs (a preset or a TOML config, and accounts).
    ``journal``: a directory (``--journal``: its journal is resumed, or one is started
    there; rltrader.exchange.journal), or an object with ``append(batch)``. ``replay``:
    ``[FORMAT, PATH, ...]`` serves recorded flow instead (:func:`replay_source`).
    ``venues``: ``(name, maker_fee_ppm, taker_fee_ppm)`` each, the one symbol served on
    several venues (:class:`Exchange`; not with ``replay`` or ``journal``)."""
    if venues and (replay or journal is not None):
        raise ValueError("--venues serves a simulated market without a journal (not with "
                         "--replay or --journal yet)")
    if not (quote.isascii() and quote.isalnum() and quote.isupper()) or len(quote) > 12:
        raise ValueError(f"--quote must be an upper-case asset name, got {quote!r}")
    if replay:
        if journal is not None:
            raise ValueError("--journal is not available with --replay yet (the journal's "
                             "header names a simulated market)")
        if config_path is not None:
            raise ValueError("give --replay or a market (PRESET / --config), not both")
        if lot_size != "1":
            raise ValueError("--lot-size is the feed's with --replay")
        from rltrader.data.hybrid import from_feed

        feed, symbol, book, tick, lot = read_replay(replay[0], replay[1:], replay_symbol)
        if symbol.endswith(quote) and len(symbol) > len(quote):
            symbol = symbol[: -len(quote)]              # BTCUSDT: base BTC, quote USDT
        config = MarketConfig(symbols=(symbol,), tick_size=float(tick))
        if Decimal(str(config.tick_size)) != Decimal(tick):
            raise ValueError(f"the feed's tick {tick} is not a float's exact decimal")
        accounts = (load_accounts(accounts_path, specs_of(config, quote, lot))
                    if accounts_path is not None else [])
        source = from_feed(feed, max(1, len(accounts)), book=book, window=1 << 18,
                           maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm)
        return Exchange(config, accounts, quote=quote, lot_size=lot, speed=speed,
                        replay=source, replay_step_ns=replay_step_ns)
    config = market_config(name, config_path)
    accounts: list[Account] = []
    if accounts_path is not None:
        accounts = load_accounts(accounts_path, specs_of(config, quote, lot_size))
    # journal (issue 17, item 5): a directory is opened after the exchange is built
    directory = journal if isinstance(journal, str | os.PathLike) else None
    exchange = Exchange(config, accounts, seed=seed, quote=quote, lot_size=lot_size,
                        maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm,
                        speed=speed, journal=None if directory is not None else journal,
                        venues=venues)
    if directory is not None:
        from rltrader.exchange.journal import open_journal

        open_journal(exchange, directory, fsync=journal_fsync)
    return exchange


def itch_publisher(exchange: Exchange, path: str | None,
                   udp: tuple[str, int] | None) -> Any:
    """An attached ITCH 5.0 publisher to a file and/or MoldUDP64 (None without either);
    the caller closes it."""
    if path is None and udp is None:
        return None
    from rltrader.exchange.itch_out import FileSink, ItchPublisher, MoldUdpSink

    sinks: list[Any] = []
    if path is not None:
        sinks.append(FileSink(path))
    if udp is not None:
        sinks.append(MoldUdpSink(udp))
    publisher = ItchPublisher(exchange, sinks)
    publisher.attach()
    return publisher


def serve(exchange: Exchange, host: str = "127.0.0.1", port: int = 8080, *,
          weight_per_minute: int = 6000, orders_per_10s: int = 100,
          binary_orders_per_10s: int = 5_000_000,
          on_shutdown: Sequence[Callable[[], None]] = (),
          also: Sequence[tuple[Any, int]] = ()) -> None:
    """Serve ``exchange`` until interrupted; ``on_shutdown`` runs as the server stops
    (uvicorn then re-raises the signal that stopped it). ``also``: more ASGI apps, each
    with its port, served by the same process and loop (``rltrader serve --analytics``
    passes the analytics server's)."""
    import asyncio

    import uvicorn

    from rltrader.exchange.binance import app

    options: dict[str, Any] = dict(
        log_level="warning", access_log=False,
        timeout_graceful_shutdown=3,        # idle keep-alive clients do not hold a
                                            # shutdown (and the journal's close)
        ws_per_message_deflate=False)       # compressing every frame cost 10 % of the
                                            # binary path's CPU
    gateway = app(exchange, weight_per_minute=weight_per_minute, orders_per_10s=orders_per_10s,
                  binary_orders_per_10s=binary_orders_per_10s, on_shutdown=on_shutdown)
    if not also:
        uvicorn.run(gateway, host=host, port=port, **options)
        return
    apps = [(gateway, port), *also]
    # every port bound before anything is served: a port in use is one clear OSError
    # (``rltrader serve: ...``), where a server failing inside the loop printed uvicorn's
    # traceback of the other's cancellation
    sockets: list[socket.socket] = []
    try:
        for _, at in apps:
            sockets.append(_bound(host, at))
        servers = [uvicorn.Server(uvicorn.Config(application, host=host, port=at, **options))
                   for application, at in apps]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise

    async def both() -> None:
        # each server stops on SIGINT/SIGTERM (uvicorn chains their handlers); when one
        # stops for any reason, so does the other
        tasks = [asyncio.create_task(s.serve(sockets=[sock]))
                 for s, sock in zip(servers, sockets, strict=True)]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks)

    try:
        asyncio.run(both())
    finally:
        for sock in sockets:
            sock.close()


def _bound(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (as uvicorn binds one) and listening, or an
    OSError naming the address. Listening at once makes a second bind of the same port
    fail here (two sockets with SO_REUSEADDR may both bind a port nobody listens on)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot serve on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
