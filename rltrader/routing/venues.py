"""Several venues trading one symbol: each its own book, fees, tick size, background
traders (or a replay of a real venue), and latency to each participant; arbitrageurs link
them.

:class:`MultiVenueMarket` steps every venue on one clock. A step ``[t, t + dt)`` on a
simulated venue: its background traders decide on their book (each decision stamped at a
uniformly random time within the step, seeded), the participants' and arbitrageurs'
messages that arrive within the step join them, and one core call runs the batch in time
order. A replayed venue (:meth:`MultiVenueMarket.binance_pair`) replays its record up to
``t + dt`` with the arrivals merged in by time (:class:`rltrader.data.hybrid.HybridReplay`).

Prices: every venue counts in its own ticks; across venues they meet on the common grid,
the gcd of the tick sizes (``common_tick``): venue ``v``'s price ``p`` is
``p * factor[v]`` common ticks. Quantities are lots of one lot size for all venues.

Latency: participant ``p`` (0 .. ``participants - 1``, then the arbitrageurs) reaches venue
``v`` in ``latency_ns[p, v]`` one way: a message it sends at ``t`` is processed at
``t + latency``, and an event at ``t`` reaches it at ``t + latency``
(:class:`~rltrader.routing.consolidated.ConsolidatedBook` applies that view).

The symbol has one latent value: the first venue's fundamental process (its ``r_bar`` the
config's reference ``price``), converted to each venue's tick at every step's start.

Arbitrageurs look at each venue's top of book as of ``t - latency`` (their own) at every
step's start; when a venue's bid beats another venue's ask by ``min_edge_ticks`` common
ticks net of both taker fees, they buy the cheap venue's ask and sell the dear venue's bid
with IOC orders of at most ``qty`` lots (and at most what the seen touches showed), within
a position limit per venue. Their orders travel like anyone's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.core.constants import (
    AGENT_ID_BASE,
    BUY,
    EMPTY_ASK,
    EMPTY_BID,
    IOC,
    LIMIT,
    MARKET,
    REPLACE,
    SELL,
    STOP,
    STOP_LIMIT,
)
from rltrader.core.messages import MESSAGE_DTYPE, empty_events, empty_messages
from rltrader.sim.config import MarketConfig, load_config, preset


@dataclass(frozen=True)
class Venue:
    """One venue of the symbol.

    Attributes
    ----------
    name : str
    market : str or MarketConfig
        Its background traders: a preset name or a config (one symbol, one copy); its
        ``dt_ns`` must be the other venues'.
    tick_size : str, optional
        The venue's tick in currency (default: the config's). Its value traders' ``r_bar``
        is the market's reference price in this tick.
    maker_fee_ppm, taker_fee_ppm : int
        Per million of notional; a negative maker fee is a rebate.
    latency_ns : int
        One-way latency of every participant to this venue unless
        :attr:`MultiVenueConfig.latency_ns` says otherwise.
    """

    name: str
    market: str | MarketConfig = "resilient"
    tick_size: str | None = None
    maker_fee_ppm: int = 0
    taker_fee_ppm: int = 0
    latency_ns: int = 0


@dataclass(frozen=True)
class Arbitrageurs:
    """A population keeping venues linked: ``n`` traders, trader ``i`` with one-way latency
    ``latency_ns[i % len]`` to every venue, IOC legs of at most ``qty`` lots when the edge
    net of taker fees is at least ``min_edge_ticks`` common ticks, positions within
    ``max_position`` lots per venue."""

    n: int = 2
    latency_ns: tuple[int, ...] = (500_000, 2_000_000)
    qty: int = 5
    min_edge_ticks: float = 1.0
    max_position: int = 200


@dataclass(frozen=True)
class MultiVenueConfig:
    """Venues of one symbol, the arbitrageurs linking them, and the participants.

    ``latency_ns``: one row per participant (``participants`` rows, one value per venue)
    overriding the venues' defaults; ``price``: the reference price in currency that every
    venue's fundamental reverts to.
    """

    symbol: str = "XYZ"
    venues: tuple[Venue, ...] = ()
    arbitrageurs: Arbitrageurs | None = field(default_factory=Arbitrageurs)
    participants: int = 1
    latency_ns: tuple[tuple[int, ...], ...] | None = None
    price: str = "100"

    def __post_init__(self) -> None:
        if len(self.venues) < 1:
            raise ValueError("a multi-venue market needs at least one venue")
        names = [v.name for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venue names repeat: {names}")
        if self.participants < 0:
            raise ValueError(f"participants must be >= 0, got {self.participants}")
        if self.latency_ns is not None and (
                len(self.latency_ns) != self.participants
                or any(len(row) != len(self.venues) for row in self.latency_ns)):
            raise ValueError(f"latency_ns must be {self.participants} rows of "
                             f"{len(self.venues)} values (participants x venues)")
        for v in self.venues:
            if v.latency_ns < 0:
                raise ValueError(f"venue {v.name}: latency_ns must be >= 0")


def _gcd_tick(ticks: list[Decimal]) -> Decimal:
    fractions = [Fraction(t) for t in ticks]
    num = 0
    den = 1
    for f in fractions:
        den = den * f.denominator // math.gcd(den, f.denominator)
    for f in fractions:
        num = math.gcd(num, f.numerator * (den // f.denominator))
    return Decimal(num) / Decimal(den)


class _SimVenue:
    """A venue whose background is a simulated population (one book)."""

    def __init__(self, venue: Venue, price: Decimal, n_extra: int, seed: int) -> None:
        from rltrader.sim.market import Market

        config = venue.market if isinstance(venue.market, MarketConfig) else (
            load_config(venue.market) if str(venue.market).endswith(".toml")
            else preset(str(venue.market)))
        if config.n_books != 1:
            raise ValueError(f"venue {venue.name}: its market must be one book (one symbol, "
                             "one copy)")
        tick = Decimal(venue.tick_size) if venue.tick_size is not None else Decimal(
            str(config.tick_size))
        scale = float(Decimal(str(config.tick_size)) / tick)   # the same value in this tick
        f = config.fundamental
        fundamental = dataclasses.replace(f, r_bar=float(price / tick), sigma=f.sigma * scale,
                                          jump_mean=f.jump_mean * scale,
                                          jump_sd=f.jump_sd * scale)
        self.config = config.replace(tick_size=float(tick), fundamental=fundamental,
                                     extra_owners=n_extra)
        self.market = Market(self.config, seed=seed)
        self.books = self.market.books
        self.books.set_fees(venue.maker_fee_ppm, venue.taker_fee_ppm)
        self.tick = tick
        self.first_owner = self.market.n_traders
        self._events = empty_events(1 << 14)

    def step(self, t: int, dt: int, arrivals: np.ndarray, rng: np.random.Generator
             ) -> np.ndarray:
        background = self.market.flow.decide()
        background["timestamp"] = t + rng.integers(0, dt, background.shape[0])
        batch = np.concatenate([background, arrivals]) if arrivals.size else background
        batch = batch[np.argsort(batch["timestamp"], kind="stable")]
        return _process(self.books, batch, self)


class _ReplayVenue:
    """A venue replaying a real record (a :class:`HybridReplay`)."""

    def __init__(self, replay: Any, tick: Decimal) -> None:
        self.replay = replay
        self.tick = tick
        self.first_owner = 0

    @property
    def books(self) -> Any:
        return self.replay.books

    def step(self, t: int, dt: int, arrivals: np.ndarray, rng: np.random.Generator
             ) -> np.ndarray:
        return self.replay.step(until_ts=t + dt - 1, agent_messages=arrivals)


def _process(books: Any, batch: np.ndarray, owner: Any) -> np.ndarray:
    """Run ``batch`` on a one-book ``books``, never leaving a message out; its events."""
    from rltrader.data._levels import process_every

    out: list[np.ndarray] = []

    def keep(events: np.ndarray, first: int) -> None:
        events = events.copy()
        events["message_index"] += first
        out.append(events)

    owner._events = process_every(books, batch, owner._events, keep)
    return np.concatenate(out) if out else empty_events(0)


class MultiVenueMarket:
    """``config``'s venues on one clock (the module docstring has the rules).

    Parameters
    ----------
    config : MultiVenueConfig
    seed : int
        Root seed: venue ``v``'s background draws from ``SeedSequence(seed).spawn(V)[v]``.
    """

    def __init__(self, config: MultiVenueConfig, seed: int = 0) -> None:
        self.config = config
        venues = config.venues
        arbs = config.arbitrageurs
        self.n_arbitrageurs = arbs.n if arbs is not None else 0
        self.n_participants = config.participants
        n_extra = self.n_participants + self.n_arbitrageurs
        seeds = np.random.SeedSequence(seed).spawn(len(venues) + 1)
        price = Decimal(config.price)
        self._venues: list[Any] = [
            _SimVenue(v, price, n_extra, int(s.generate_state(1)[0]))
            for v, s in zip(venues, seeds, strict=False)]
        dts = {int(v.config.dt_ns) for v in self._venues}
        if len(dts) != 1:
            raise ValueError(f"the venues' markets must share dt_ns, got {sorted(dts)}")
        self.dt_ns = dts.pop()
        self.time_ns = int(self._venues[0].market.time_ns)
        self._rng = np.random.default_rng(seeds[-1])
        self._setup(venues, [v.tick for v in self._venues])

    # ---- construction -----------------------------------------------------------------

    def _setup(self, venues: tuple[Venue, ...], ticks: list[Decimal]) -> None:
        self.names = [v.name for v in venues]
        self.n_venues = len(venues)
        self.ticks = ticks
        self.common_tick = _gcd_tick(ticks)
        self.factor = np.array([int(t / self.common_tick) for t in ticks], dtype=np.int64)
        self.fees = np.array([[v.maker_fee_ppm, v.taker_fee_ppm] for v in venues],
                             dtype=np.int64)
        n = self.n_participants + self.n_arbitrageurs
        latency = np.tile(np.array([v.latency_ns for v in venues], dtype=np.int64), (n, 1))
        if self.config.latency_ns is not None:
            latency[:self.n_participants] = np.array(self.config.latency_ns, dtype=np.int64)
        arbs = self.config.arbitrageurs
        for i in range(self.n_arbitrageurs):
            latency[self.n_participants + i] = arbs.latency_ns[i % len(arbs.latency_ns)]
        #: one-way latency (ns) of each participant (then each arbitrageur) to each venue
        self.latency_ns = latency
        self._pending: list[list[tuple[int, np.ndarray]]] = [[] for _ in venues]
        self._next_id = np.full(self.n_venues, AGENT_ID_BASE, dtype=np.int64)
        #: the venues' touch after each step: (time, bid, bid_qty, ask, ask_qty) in venue ticks
        self._quotes: list[tuple[int, np.ndarray]] = []
        self._record_quotes()
        self.last_events: list[np.ndarray] = [empty_events(0) for _ in venues]
        self.arbitrage_trades = 0

    @classmethod
    def binance_pair(cls, participants: int = 1, *, folder: str | Path | None = None,
                     latency_ns: tuple[int, int] = (1_000_000, 1_000_000),
                     arbitrageurs: Arbitrageurs | None = None, dt_ns: int = 100_000_000
                     ) -> MultiVenueMarket:
        """The real two-venue replay: Binance spot and USD-M futures BTCUSDT of the same
        345 s (2024-08-08, the package's samples, ``crypto/binance``, or ``folder``),
        ticks 0.01 and 0.1 (factors 1 and 10), one lot of 0.000001 BTC, Binance's VIP-0
        fees (spot 1000 / 1000 ppm, futures 200 / 500 ppm), each replay's own trades as
        executions of the levels they hit. No arbitrageurs by default: the record moves
        as it moved. The perpetual traded about 24 USD (4 bp) below spot in that window,
        so the two books' NBBO is crossed by the basis: routers compare them net of it
        (``basis``)."""
        from rltrader.data import binance
        from rltrader.data.hybrid import from_feed
        from rltrader.data.samples import sample_path

        files = [("spot", "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz", "0.01",
                  (1000, 1000)),
                 ("usdm", "hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz", "0.1",
                  (200, 500))]
        root = Path(folder) if folder is not None else sample_path(
            f"crypto/binance/{files[0][1]}").parent
        self = cls.__new__(cls)
        venues = tuple(Venue(name, tick_size=tick, maker_fee_ppm=fees[0],
                             taker_fee_ppm=fees[1], latency_ns=lat)
                       for (name, _, tick, fees), lat in zip(files, latency_ns, strict=True))
        self.config = MultiVenueConfig("BTC", venues, arbitrageurs, participants)
        self.n_participants = participants
        self.n_arbitrageurs = arbitrageurs.n if arbitrageurs is not None else 0
        n_agents = max(1, participants + self.n_arbitrageurs)
        self._venues = []
        for (_, name, tick, fees) in files:
            feed = binance.read_feed(root / name, tick_size=tick, lot_size="0.000001")
            replay = from_feed(feed, n_agents, trades=True, maker_fee_ppm=fees[0],
                               taker_fee_ppm=fees[1])
            self._venues.append(_ReplayVenue(replay, Decimal(tick)))
        self.dt_ns = dt_ns
        self.time_ns = max(int(v.replay.timestamp) for v in self._venues)
        self._rng = np.random.default_rng(0)
        self._setup(venues, [v.tick for v in self._venues])
        return self

    # ---- what a participant uses --------------------------------------------------------

    @property
    def books(self) -> list[Any]:
        """Each venue's core (one book, book 0)."""
        return [v.books for v in self._venues]

    @property
    def done(self) -> bool:
        """Every replayed venue has run out of record (simulated venues never do)."""
        replays = [v.replay for v in self._venues if isinstance(v, _ReplayVenue)]
        return bool(replays) and all(r.done for r in replays)

    def owner(self, venue: int, participant: int) -> int:
        """Participant ``participant``'s owner id in venue ``venue``'s book."""
        return self._venues[venue].first_owner + participant

    def accounts(self, participant: int) -> np.ndarray:
        """Participant's account on every venue (ACCOUNT_DTYPE, venue ticks)."""
        return np.array([v.books.accounts[0, v.first_owner + participant]
                         for v in self._venues])

    def touch(self, venue: int) -> tuple[int, int, int, int]:
        """``(bid, bid_qty, ask, ask_qty)`` of a venue now, in its ticks (``EMPTY_BID`` /
        ``EMPTY_ASK`` and 0 when a side is empty)."""
        books = self._venues[venue].books
        bid, ask = books.best_bid(0), books.best_ask(0)
        prices, qtys, _ = books.top_levels(1)
        return (bid, int(qtys[0, 0, 0]) if bid != EMPTY_BID else 0,
                ask, int(qtys[0, 1, 0]) if ask != EMPTY_ASK else 0)

    def submit(self, participant: int, venue: int, messages: np.ndarray) -> np.ndarray:
        """Send ``messages`` (MESSAGE_DTYPE, the venue's ticks) from ``participant`` to
        ``venue`` now: they are processed at ``time_ns + latency``. New orders
        (``LIMIT``/``MARKET``) with ``order_id`` 0 get fresh ids; returns the ids."""
        if not 0 <= participant < self.n_participants + self.n_arbitrageurs:
            raise ValueError(f"participant must be in [0, {self.n_participants}), got "
                             f"{participant}")
        if not 0 <= venue < self.n_venues:
            raise ValueError(f"venue must be in [0, {self.n_venues}), got {venue}")
        if not isinstance(messages, np.ndarray) or messages.dtype != MESSAGE_DTYPE:
            raise TypeError("messages must be a MESSAGE_DTYPE array")
        if np.isin(messages["op"], (STOP, STOP_LIMIT)).any():
            raise ValueError("stop orders are not routed across venues")
        msgs = messages.copy()
        new = ((msgs["op"] == LIMIT) | (msgs["op"] == MARKET)) & (msgs["order_id"] == 0)
        k = int(new.sum())
        msgs["order_id"][new] = self._next_id[venue] + np.arange(k)
        self._next_id[venue] += k
        renamed = (msgs["op"] == REPLACE) & (msgs["new_order_id"] != 0)
        if renamed.any():
            raise ValueError("a REPLACE keeps its order's id here (new_order_id 0)")
        msgs["book"] = 0
        msgs["owner"] = self.owner(venue, participant)
        msgs["timestamp"] = self.time_ns + self.latency_ns[participant, venue]
        self._pending[venue].append((int(msgs["timestamp"].min(initial=self.time_ns)), msgs))
        return msgs["order_id"].copy()

    # ---- the clock ------------------------------------------------------------------------

    def step(self) -> list[np.ndarray]:
        """One ``dt`` on every venue; each venue's events of the step (EVENT_DTYPE, its
        ticks, in processing order)."""
        t, dt = self.time_ns, self.dt_ns
        self._share_value()
        if self.n_arbitrageurs:
            self._arbitrage(t)
        out = []
        for v, venue in enumerate(self._venues):
            due = [m for at, m in self._pending[v] if at < t + dt]
            self._pending[v] = [(at, m) for at, m in self._pending[v] if at >= t + dt]
            arrivals = np.concatenate(due) if due else empty_messages(0)
            if arrivals.size:
                arrivals = arrivals[np.argsort(arrivals["timestamp"], kind="stable")]
            out.append(venue.step(t, dt, arrivals, self._rng))
        self.time_ns = t + dt
        self.last_events = out
        self._record_quotes()
        return out

    def _share_value(self) -> None:
        """One latent value for the symbol: the first simulated venue's process (in
        currency) is every simulated venue's fundamental at each step's start, so venues
        differ by their flow, not by their information."""
        sims = [v for v in self._venues if isinstance(v, _SimVenue)]
        if len(sims) < 2:
            return
        value = float(sims[0].market.flow.fundamental[0]) * float(sims[0].tick)
        for venue in sims[1:]:
            venue.market.flow.fundamental[0] = value / float(venue.tick)

    def _record_quotes(self) -> None:
        quotes = np.array([self.touch(v) for v in range(self.n_venues)], dtype=np.int64)
        self._quotes.append((self.time_ns, quotes))
        horizon = int(self.latency_ns.max(initial=0)) + 2 * self.dt_ns
        while len(self._quotes) > 2 and self._quotes[1][0] <= self.time_ns - horizon:
            self._quotes.pop(0)

    def _seen_quotes(self, t: int) -> np.ndarray | None:
        """The touches as of ``t`` (the newest record at or before it)."""
        seen = None
        for at, quotes in self._quotes:
            if at > t:
                break
            seen = quotes
        return seen

    def _arbitrage(self, t: int) -> None:
        arbs = self.config.arbitrageurs
        assert arbs is not None
        taker = self.fees[:, 1] / 1e6
        for i in range(self.n_arbitrageurs):
            p = self.n_participants + i
            seen = self._seen_quotes(t - int(self.latency_ns[p].max()))
            if seen is None:
                continue
            bid, bid_qty, ask, ask_qty = seen.T
            ok_bid = (bid != EMPTY_BID) & (bid_qty > 0)
            ok_ask = (ask != EMPTY_ASK) & (ask_qty > 0)
            net_bid = np.where(ok_bid, bid * self.factor * (1 - taker), -np.inf)
            net_ask = np.where(ok_ask, ask * self.factor * (1 + taker), np.inf)
            sell, buy = int(np.argmax(net_bid)), int(np.argmin(net_ask))
            if sell == buy or net_bid[sell] - net_ask[buy] < arbs.min_edge_ticks:
                continue
            position = self.accounts(p)["position"]
            qty = min(arbs.qty, int(bid_qty[sell]), int(ask_qty[buy]),
                      arbs.max_position - int(position[buy]),
                      arbs.max_position + int(position[sell]))
            if qty <= 0:
                continue
            for venue, side, price in ((buy, BUY, ask[buy]), (sell, SELL, bid[sell])):
                msg = empty_messages(1)
                msg["op"], msg["side"], msg["tif"] = LIMIT, side, IOC
                msg["price"], msg["qty"] = price, qty
                self.submit(p, venue, msg)
            self.arbitrage_trades += 1


__all__ = ["Arbitrageurs", "MultiVenueConfig", "MultiVenueMarket", "Venue"]
