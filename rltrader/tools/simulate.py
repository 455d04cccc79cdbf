"""``rltrader simulate``: run a market preset (or a TOML config) for a day and summarise."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from rltrader.core.constants import NS_PER_S
from rltrader.sim.market import Market, RecordConfig, load_config, preset


def main(name: str, *, config_path: str | None = None, seed: int = 0,
         copies: int | None = None, out: str | None = None, progress: bool = True) -> int:
    """Run the day; with ``out``, record it (messages, events, top of book every second) to
    ``OUT.npz`` and book 0 as ``OUT_book0_message.csv`` (LOBSTER layout).

    A config that cannot be read or built raises ``OSError`` or ``ValueError`` naming the
    file, before the day starts (the CLI reports it in one line, exit status 2)."""
    market = build_market(name, config_path=config_path, seed=seed, copies=copies,
                          record=bool(out))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)  # fails now, not after the day
    config = market.config
    with tqdm(total=market.n_steps, unit="step", disable=not progress,
              desc=config.name) as bar:
        summary = market.run(progress=bar.update)
    print(format_summary(market, summary))
    if out:
        recording = market.recording
        recording.save_npz(Path(out).with_suffix(".npz"))
        stem = Path(out).with_name(Path(out).stem + "_book0")
        message, orderbook = f"{stem}_message.csv", f"{stem}_orderbook_10.csv"
        rows = recording.to_lobster(0, message, orderbook)
        print(f"wrote {Path(out).with_suffix('.npz')}, {message} and {orderbook} ({rows} rows)")
    return 0


def build_market(name: str, *, config_path: str | None = None, seed: int = 0,
                 copies: int | None = None, record: bool = False) -> Market:
    """The preset ``name`` (or the TOML file ``config_path``) as a :class:`Market`.

    The config's own checks raise ``ValueError``; a value of the wrong type (``TypeError``)
    or too large for the core (``OverflowError``, e.g. ``count = 10000000000``) is raised
    again as a ``ValueError`` that names the file: both are the config's fault, found
    before anything runs."""
    try:
        config = load_config(config_path) if config_path else preset(name)
        if copies is not None:
            config = config.replace(copies=copies)
        if record:
            every = max(1, NS_PER_S // config.dt_ns)
            config = config.replace(record=RecordConfig(messages=True, sample_every=every))
        return Market(config, seed=seed)
    except (TypeError, OverflowError) as exc:
        where = config_path or f"preset {name!r}"
        raise ValueError(f"{where}: a value of the wrong type or size "
                         f"({type(exc).__name__}: {exc})") from exc


def format_summary(market: Market, s: dict) -> str:
    config = market.config
    books = market.books
    lines = [
        f"{config.name}: {config.n_books} book(s) x {market.n_traders} traders, "
        f"{config.open}-{config.close} in {market.n_steps} steps of "
        f"{config.dt_ns / 1e6:g} ms",
        f"  {s['seconds']:.3f} s wall: {s['messages_per_s']:,.0f} messages/s, "
        f"{s['wakeups_per_s']:,.0f} wake-ups/s, {s['book_steps_per_s']:,.0f} book-steps/s",
        f"  messages {s['messages']:,}  events {s['events']:,}  fills {s['fills']:,}  "
        f"stale cancels {s['stale_cancels']:,}  rejects {s['rejects']:,}  "
        f"dropped decisions {s['overflow']:,}",
        "  wake-ups: " + "  ".join(f"{k[8:]} {v:,}" for k, v in s.items()
                                   if k.startswith("wakeups_") and k != "wakeups_per_s"),
        f"  book 0 at the close: bid {books.best_bid(0)} ask {books.best_ask(0)} "
        f"last {books.last_price(0)} (ticks of ${config.tick_size}), volume "
        f"{books.volume(0):,} lots, fundamental {market.flow.fundamental[0]:.1f}",
    ]
    return "\n".join(lines)
