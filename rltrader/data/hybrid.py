"""Hybrid replay: recorded order flow drives a book while agent orders trade in its queues.

Semantics (docs/hybrid.md has the full page):

- Historical flow is owned by ``history_owner = n_agents`` (a reserved account); agents are
  owners ``0 .. n_agents - 1``. Agent order ids must be ``>= AGENT_ID_BASE``.
- Historical adds join the queue at their arrival position (the tail of their level, in
  timestamp order with agent orders; on equal timestamps history goes first). One that
  crosses a resting agent order trades with it.
- A historical execution of order ``X`` (``s`` lots at ``X``'s price ``p``) is the trade of
  an aggressor that, in history, hit ``X``. Here it first fills the agent orders *ahead of X*
  in price-time priority (agent orders on ``X``'s side at a better price, then those queued
  before ``X`` at ``p``), each up to its size, and executes ``X`` for what is left, up to
  ``X``'s leaves. The lots ``X`` keeps are traded later, or not at all. With no agent order
  ahead this is exactly the recorded execution, so with no agents the replay is the record.
- Historical cancels, reductions and executions of liquidity that agents already took are
  trimmed to what is left (a cancel of a gone order, a reduction that removes the rest, an
  execution beyond the leaves) and counted in :attr:`HybridReplay.stats`, never raised.
- Trading halts (LOBSTER type 7: price -1 halt, 1 trading resumes; ITCH ``H`` trading
  actions; or ``halts=`` given): agent messages stamped inside a halt are held and
  submitted, in order, at the resume time.
- Simulated traders (``background=`` a one-book ``MarketConfig``): its populations trade
  in the recorded book, as owners after the history's, with ids from
  ``SIMULATED_ID_BASE``. Every ``background.dt_ns`` from the record's first message they
  decide on the book as it stands (from the first such time the book has both sides; their
  fundamental starts at that mid), and their messages arrive at uniform times within the
  next ``dt_ns``, merged with the record and the agents by time. In the queues they are
  what agents are: a historical execution fills them when they are ahead. New orders of
  theirs that arrive in a halt are refused (counted), cancels pass.

:func:`from_feed` builds the replay from any shipped reader's result (LOBSTER, ITCH,
Coinbase L3, Binance and tardis L2, the generic reader); :func:`feed_messages` returns
the messages it replays (docs/hybrid.md, "Every feed as a replay", says what each gives).

The driver is batched: each ``step`` merges the historical messages up to its end with the
agent messages by timestamp and runs them through ``Books.process`` in one call, split only
at *interaction points*: historical executions that an agent order may be ahead of (an agent
order rests on that side at the price or better) or whose order an agent may have traded
with. Only there does Python look at the queue. With no agent orders a step is one call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrader._book import Books
from rltrader.core.checks import is_int
from rltrader.core.constants import (
    AGENT_ID_BASE,
    CANCEL,
    CANCELLED,
    EMPTY_ASK,
    EMPTY_BID,
    EXECUTE,
    FILL,
    LEVEL_ID_BASE,
    LIMIT,
    MARKET,
    MAX_FEE_PPM,
    REDUCE,
    REJECTED,
    REPLACE,
    SIMULATED_ID_BASE,
    STOP,
    STOP_LIMIT,
    Op,
)
from rltrader.core.messages import MESSAGE_DTYPE, empty_events, empty_messages
from rltrader.data.lobster import LobsterMessages

if TYPE_CHECKING:
    from rltrader._flow import Flow
    from rltrader.sim.config import MarketConfig

_AGENT_OPS = (LIMIT, MARKET, CANCEL, REDUCE, REPLACE, STOP, STOP_LIMIT)
_TAKING_OPS = (LIMIT, MARKET, REPLACE, STOP, STOP_LIMIT)


@dataclass
class HybridStats:
    """Counters of one episode (since ``reset``)."""

    historical_messages: int = 0
    agent_messages: int = 0
    core_calls: int = 0
    interaction_points: int = 0
    trimmed_messages: int = 0   # historical messages that found less than history said
    trimmed_lots: int = 0       # lots of historical executions that found nothing to trade
    agent_lots_hit: int = 0     # lots of historical executions that filled agent orders
    held_for_halt: int = 0      # agent messages deferred to a trading resume
    background_messages: int = 0        # the simulated traders' messages run
    background_refused_in_halt: int = 0  # their new orders that arrived in a halt
    trimmed_by_kind: dict[str, int] = field(default_factory=dict)


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """An int (or numpy integer; not a bool or a float) in ``[low, high]``."""
    if not is_int(value) or value < low or (high is not None and value > high):
        rule = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def _halts(raw: np.ndarray | None) -> np.ndarray:
    """``(k, 2)`` int64 [halt, resume) timestamps from LOBSTER type-7 rows."""
    if raw is None:
        return np.zeros((0, 2), dtype=np.int64)
    rows = raw[raw["type"] == 7]
    starts = rows["timestamp"][rows["price"] == -1]
    ends = rows["timestamp"][rows["price"] == 1]
    out = []
    for start in starts.tolist():
        later = ends[ends >= start]
        out.append((start, int(later[0]) if later.size else np.iinfo(np.int64).max))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _check_halts(halts: Any) -> np.ndarray:
    out = np.asarray(halts)
    if out.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if out.ndim != 2 or out.shape[1] != 2 or not np.issubdtype(out.dtype, np.integer):
        raise ValueError(f"halts must be (k, 2) ints [halt, resume) in ns, got {out!r}")
    out = out.astype(np.int64)
    if np.any(out[:, 1] <= out[:, 0]) or np.any(out[1:, 0] < out[:-1, 1]):
        raise ValueError("halts must be ascending, disjoint [halt, resume) intervals")
    return out


class HybridReplay:
    """Recorded LOBSTER flow and agent orders in one book (see the module docstring).

    Parameters
    ----------
    feed : LobsterMessages, ExactFeed or ndarray of MESSAGE_DTYPE
        The historical flow, in time order (an ``ExactFeed`` rebuilds the visible book
        exactly; a plain ``LobsterMessages`` starts from an empty book). Other readers'
        results: :func:`from_feed`.
    n_agents : int
        Agent accounts ``0 .. n_agents - 1``; the history's account is ``n_agents``.
    window, capacity : int
        Passed to :class:`rltrader.Books`.
    maker_fee_ppm, taker_fee_ppm : int
        Fees of the book (ppm of notional; negative is a rebate).
    halts : array of int, shape (k, 2), optional
        The record's trading halts as ascending ``[halt, resume)`` ns; by default a
        LOBSTER feed's type-7 rows, none for an array.
    background : MarketConfig, optional
        Simulated traders mixed with the record (one book: one symbol, one copy): the
        config's populations, fundamental, size classes and ``dt_ns``; its clock (open,
        close, warm-up) is the record's. They are owners :attr:`background_owners`.
    seed : int
        Root seed of the simulated traders (the record has no randomness).
    start_ns : int
        Where each (re)start begins, in ns after the record's first message: the history
        before it is replayed into the book at reset, with no agent order (and the
        simulated traders, if any, deciding as usual), so that the agents meet the book
        as the record left it at that time. 0 (the default) starts at the first message.
        It must fall before the record's last message.

    The protocol an environment relies on: :meth:`reset`, :meth:`step`,
    :meth:`top_of_book`, :attr:`accounts`, :attr:`timestamp`, :attr:`done`.
    """

    def __init__(self, feed: object, n_agents: int = 1, *, window: int = 4096,
                 capacity: int = 1 << 16, maker_fee_ppm: int = 0, taker_fee_ppm: int = 0,
                 halts: Any = None, background: MarketConfig | None = None,
                 seed: int = 0, start_ns: int = 0) -> None:
        inner = getattr(feed, "feed", feed)
        if isinstance(inner, LobsterMessages):
            messages, raw = inner.messages, inner.raw
        elif isinstance(inner, np.ndarray) and inner.dtype == MESSAGE_DTYPE:
            messages, raw = inner, None
        else:
            raise TypeError("feed must be LobsterMessages, ExactFeed or a MESSAGE_DTYPE array")
        _check_int("n_agents", n_agents, 1)
        _check_int("window", window, 1)
        _check_int("capacity", capacity, 1)
        for name, fee in (("maker_fee_ppm", maker_fee_ppm), ("taker_fee_ppm", taker_fee_ppm)):
            _check_int(name, fee, -MAX_FEE_PPM, MAX_FEE_PPM)
        if messages.shape[0] and np.any(np.diff(messages["timestamp"]) < 0):
            raise ValueError("the historical messages' timestamps decrease")
        if messages.shape[0] and max(messages["order_id"].max(),
                                     messages["new_order_id"].max()) >= AGENT_ID_BASE:
            raise ValueError(f"historical order ids must stay below AGENT_ID_BASE={AGENT_ID_BASE}")
        self.n_agents = int(n_agents)
        self.history_owner = self.n_agents
        self._history = np.ascontiguousarray(messages).copy()
        self._history["book"] = 0
        self._history["owner"] = self.history_owner
        self._halts = _halts(raw) if halts is None else _check_halts(halts)
        self.background = _check_background(background)
        n_simulated = _n_traders(self.background)
        #: owner range ``(first, stop)`` of the simulated traders (empty without them)
        self.background_owners = (self.n_agents + 1, self.n_agents + 1 + n_simulated)
        self._book_args = dict(window=window, capacity=capacity,
                               n_owners=n_agents + 1 + n_simulated,
                               maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm)
        _check_int("seed", seed, 0)
        span = (int(self._history["timestamp"][-1] - self._history["timestamp"][0])
                if self._history.size else 0)
        _check_int("start_ns", start_ns, 0)
        if start_ns and start_ns >= span:
            raise ValueError(f"start_ns must fall before the record's last message "
                             f"({span} ns after its first), got {start_ns}")
        self.start_ns = int(start_ns)
        self._seed = np.random.SeedSequence(seed)
        self.reset()

    # ---- protocol -------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start over on an empty book at the first historical message (replaying the
        history up to :attr:`start_ns` after it, when set).

        The record has no randomness; the simulated traders (if any) draw a new day from
        the seed's stream at each reset, and ``seed`` restarts that stream.
        """
        if seed is not None:
            _check_int("seed", seed, 0)
            self._seed = np.random.SeedSequence(seed)
        self.books = Books(1, **self._book_args)
        self._events = empty_events(1 << 14)
        self._cursor = 0
        self._pending = empty_messages(0)
        self._touched = np.zeros(0, dtype=np.int64)
        self._agent_ids: set[int] = set()  # agent orders that may still be live
        self.timestamp = int(self._history["timestamp"][0]) if self._history.size else 0
        self.stats = HybridStats()
        self._flow: Flow | None = None
        if self.background is not None:
            self._day = self._seed.spawn(1)[0]
            self._next_decision = self.timestamp + self.background.dt_ns
        if self.start_ns:
            self.step(until_ts=self.timestamp + self.start_ns)

    @property
    def done(self) -> bool:
        """True once every historical message has been replayed."""
        return self._cursor >= self._history.shape[0]

    def top_of_book(self) -> tuple[int, int]:
        """``(best bid, best ask)`` in ticks (``EMPTY_BID`` / ``EMPTY_ASK`` when empty)."""
        return self.books.best_bid(0), self.books.best_ask(0)

    @property
    def accounts(self) -> np.ndarray:
        """Agent accounts, shape ``(n_agents,)`` of ACCOUNT_DTYPE (a view)."""
        return self.books.accounts[0, : self.n_agents]

    @property
    def fees(self) -> tuple[int, int]:
        """``(maker_fee_ppm, taker_fee_ppm)`` of the replay's book."""
        return self._book_args["maker_fee_ppm"], self._book_args["taker_fee_ppm"]

    @property
    def background_accounts(self) -> np.ndarray:
        """The simulated traders' accounts (ACCOUNT_DTYPE, a view; empty without them)."""
        return self.books.accounts[0, slice(*self.background_owners)]

    def step(self, until_ts: int | None = None, agent_messages: np.ndarray | None = None, *,
             n_messages: int | None = None) -> np.ndarray:
        """Advance the market and return the step's events (EVENT_DTYPE).

        Parameters
        ----------
        until_ts : int, optional
            Replay historical messages with ``timestamp <= until_ts`` (ns). An ``until_ts``
            before :attr:`timestamp` replays nothing (the clock never goes back; agent
            messages, which must be stamped in ``[timestamp, until_ts]``, are refused).
        agent_messages : ndarray of MESSAGE_DTYPE, optional
            Agent orders, timestamps in ``[self.timestamp, end of step]``, owners in
            ``[0, n_agents)``, ids ``>= AGENT_ID_BASE``; ``book`` is set to 0.
        n_messages : int, optional
            Instead of ``until_ts``: replay the next ``n_messages`` historical messages.

        Returns
        -------
        ndarray of EVENT_DTYPE
            Every event of the step in processing order; ``message_index`` counts the
            step's merged messages (history and agents by timestamp).
        """
        if (until_ts is None) == (n_messages is None):
            raise ValueError("pass exactly one of until_ts and n_messages")
        ts = self._history["timestamp"]
        if until_ts is None:
            _check_int("n_messages", n_messages, 0)
            hi = min(self._cursor + int(n_messages), ts.shape[0])  # type: ignore[arg-type]
            until_ts = int(ts[hi - 1]) if hi > self._cursor else self.timestamp
        else:
            _check_int("until_ts", until_ts, np.iinfo(np.int64).min, np.iinfo(np.int64).max)
            # the messages up to the cursor are replayed already: a past until_ts adds none
            hi = max(self._cursor, int(np.searchsorted(ts, until_ts, side="right")))
        agents = self._agent_batch(agent_messages, until_ts)
        history = self._history[self._cursor:hi]
        self.stats.historical_messages += hi - self._cursor
        self.stats.agent_messages += int(np.count_nonzero(agents["owner"] < self.n_agents))
        self._cursor = hi
        self.timestamp = max(self.timestamp, int(until_ts))
        if self.background is not None:
            return self._run_with_background(history, agents, int(until_ts))
        return self._run_merged(*self._merge(history, agents))

    # ---- simulated traders ----------------------------------------------------------

    def _run_with_background(self, history: np.ndarray, agents: np.ndarray,
                             until_ts: int) -> np.ndarray:
        """Run the step in pieces cut at the simulated traders' decision times: the
        messages before a decision time run, the traders decide on the book as it then
        stands, and their messages join the rest of the step (or a later one)."""
        out: list[np.ndarray] = []
        offset = 0
        dt = self.background.dt_ns  # type: ignore[union-attr]
        while self._next_decision <= until_ts:
            t = self._next_decision
            h = int(np.searchsorted(history["timestamp"], t, side="left"))
            a = int(np.searchsorted(agents["timestamp"], t, side="left"))
            out.append(self._run_merged(*self._merge(history[:h], agents[:a])))
            out[-1]["message_index"] += offset
            offset += h + a
            history, agents = history[h:], agents[a:]
            new = self._decide(t)
            later = new["timestamp"] > until_ts
            if later.any():
                queue = np.concatenate([self._pending, new[later]])
                self._pending = queue[np.argsort(queue["timestamp"], kind="stable")]
            if not later.all():
                queue = np.concatenate([agents, new[~later]])
                agents = queue[np.argsort(queue["timestamp"], kind="stable")]
            self._next_decision = t + dt
        out.append(self._run_merged(*self._merge(history, agents)))
        out[-1]["message_index"] += offset
        return np.concatenate(out)

    def _decide(self, t: int) -> np.ndarray:
        """The simulated traders' decisions at ``t`` on the book as it stands, stamped at
        uniform times in ``[t, t + dt_ns)`` (in the order the flow sent them: a trader's
        cancel stays ahead of its new quote); new orders inside a halt refused."""
        config = self.background
        assert config is not None
        if self._flow is None:
            bid, ask = self.top_of_book()
            if bid == EMPTY_BID or ask == EMPTY_ASK:
                return empty_messages(0)        # they start on a two-sided book
            from rltrader.sim.market import build_flow
            self._flow = build_flow(config, self.books, self._day,
                                    np.array([0.5 * (bid + ask)]), t,
                                    first_owner=self.background_owners[0])
            self._flow.next_id[:] = SIMULATED_ID_BASE
            self._arrivals = np.random.default_rng(self._day.spawn(1)[0])
        m = self._flow.decide()
        m["timestamp"] = t + np.sort(self._arrivals.integers(0, config.dt_ns, m.shape[0]))
        refused = self.halted(m["timestamp"]) & ~np.isin(m["op"], (CANCEL, REDUCE))
        if refused.any():
            self.stats.background_refused_in_halt += int(refused.sum())
            m = m[~refused]
        self.stats.background_messages += int(m.shape[0])
        return m

    # ---- merging --------------------------------------------------------------------

    def _agent_batch(self, agent_messages: np.ndarray | None, until_ts: int) -> np.ndarray:
        new = empty_messages(0) if agent_messages is None else agent_messages
        if new.dtype != MESSAGE_DTYPE or new.ndim != 1:
            raise TypeError("agent_messages must be a 1-D array of MESSAGE_DTYPE")
        new = new.copy()
        new["book"] = 0
        if new.size:
            self._check_agents(new, until_ts)
            held = self._hold_for_halts(new)
            self.stats.held_for_halt += int(held)
        queue = np.concatenate([self._pending, new])
        queue = queue[np.argsort(queue["timestamp"], kind="stable")]
        now = queue["timestamp"] <= until_ts
        self._pending = queue[~now]
        return queue[now]

    def _check_agents(self, m: np.ndarray, until_ts: int) -> None:
        if self.background is not None:
            bad = np.flatnonzero((m["order_id"] >= SIMULATED_ID_BASE)
                                 | (m["new_order_id"] >= SIMULATED_ID_BASE))
            if bad.size:
                raise ValueError(f"agent message {bad[0]}: order id at or above "
                                 f"SIMULATED_ID_BASE={SIMULATED_ID_BASE} (the simulated "
                                 "traders' ids)")
        bad = np.flatnonzero((m["owner"] < 0) | (m["owner"] >= self.n_agents))
        if bad.size:
            raise ValueError(f"agent message {bad[0]}: owner {m['owner'][bad[0]]} not in "
                             f"[0, {self.n_agents})")
        bad = np.flatnonzero(~np.isin(m["op"], _AGENT_OPS))
        if bad.size:
            raise ValueError(f"agent message {bad[0]}: op {m['op'][bad[0]]} is not open to "
                             "agents (EXECUTE is the record's)")
        bad = np.flatnonzero((m["order_id"] < AGENT_ID_BASE) | (
            (m["op"] == REPLACE) & (m["new_order_id"] != 0) & (m["new_order_id"] < AGENT_ID_BASE)))
        if bad.size:
            raise ValueError(f"agent message {bad[0]}: order id below "
                             f"AGENT_ID_BASE={AGENT_ID_BASE}")
        bad = np.flatnonzero((m["timestamp"] < self.timestamp) | (m["timestamp"] > until_ts))
        if bad.size:
            raise ValueError(f"agent message {bad[0]}: timestamp {m['timestamp'][bad[0]]} "
                             f"outside this step [{self.timestamp}, {until_ts}]")

    def halted(self, timestamps: np.ndarray) -> np.ndarray:
        """Which of ``timestamps`` (ns) fall inside a trading halt of the record (bool
        array of the same shape)."""
        t = np.asarray(timestamps, dtype=np.int64)
        if not self._halts.size:
            return np.zeros(t.shape, dtype=bool)
        k = np.searchsorted(self._halts[:, 0], t, side="right") - 1
        return (k >= 0) & (t < self._halts[np.maximum(k, 0), 1])

    def _hold_for_halts(self, m: np.ndarray) -> int:
        if not self._halts.size:
            return 0
        inside = self.halted(m["timestamp"])
        k = np.searchsorted(self._halts[:, 0], m["timestamp"][inside], side="right") - 1
        m["timestamp"][inside] = self._halts[k, 1]
        return int(inside.sum())

    def _merge(self, history: np.ndarray, agents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not agents.size:
            return history, np.ones(history.shape[0], dtype=bool)
        new = np.isin(agents["op"], (LIMIT, STOP_LIMIT))
        self._agent_ids.update(agents["order_id"][new].tolist())
        replaced = agents[agents["op"] == REPLACE]
        self._agent_ids.update(np.where(replaced["new_order_id"] != 0, replaced["new_order_id"],
                                        replaced["order_id"]).tolist())
        merged = np.concatenate([history, agents])
        order = np.argsort(merged["timestamp"], kind="stable")  # history first on ties
        return merged[order], order < history.shape[0]

    # ---- running --------------------------------------------------------------------

    def _interaction_points(self, merged: np.ndarray, from_history: np.ndarray) -> np.ndarray:
        """Indices of historical executions that may meet agent liquidity: an agent order
        may rest on the executed side at the price or better, or the executed order may
        have traded with an agent (before or during this step). Conservative: a flagged
        execution with no agent ahead runs as the record's."""
        if not (self._agent_ids or self._touched.size or not from_history.all()):
            return np.zeros(0, dtype=np.int64)  # no agent liquidity anywhere
        op, side, price = merged["op"], merged["side"], merged["price"]
        execs = np.flatnonzero(from_history & (op == EXECUTE))
        if not execs.size:
            return execs
        live = self._agent_orders()
        agent = np.flatnonzero(~from_history)
        resting = agent[np.isin(op[agent], (LIMIT, REPLACE, STOP_LIMIT))]
        # agent prices that may rest, per side: the step's own orders count from arrival
        flag = np.isin(merged["order_id"][execs], self._touched)
        for s in (1, -1):
            on = side[execs] == s
            at = np.concatenate([live["price"][live["side"] == s],
                                 price[resting][side[resting] == s]])
            if at.size:
                bound = (s * at).max()
                flag |= on & (s * price[execs] <= bound)
                # historical adds on the other side that may cross those agent orders
                adds = from_history & (op == LIMIT) & (side == -s) & (s * price <= bound)
                flag |= np.isin(merged["order_id"][execs], merged["order_id"][adds])
        for a in agent[np.isin(op[agent], _TAKING_OPS)].tolist():  # takers of this step
            m = merged[a]
            crosses = (m["op"] in (MARKET, STOP)) | (m["side"] * (m["price"] - price[execs]) >= 0)
            flag |= (execs > a) & (side[execs] == -m["side"]) & crosses
        return execs[flag]

    def _agent_orders(self) -> np.ndarray:
        """Live agent orders that may rest (not plain stops): ``side``, ``price`` arrays."""
        out = np.zeros(len(self._agent_ids), dtype=[("side", np.int8), ("price", np.int64)])
        n = 0
        for order_id in list(self._agent_ids):
            info = self.books.order(0, order_id)
            if info is None:
                self._agent_ids.discard(order_id)
            elif info["op"] != STOP:
                out[n] = (info["side"], info["price"])
                n += 1
        return out[:n]

    def _run_merged(self, merged: np.ndarray, from_history: np.ndarray) -> np.ndarray:
        points = self._interaction_points(merged, from_history)
        self.stats.interaction_points += int(points.size)
        out: list[np.ndarray] = []
        start = 0
        for k in points.tolist():
            out.append(self._process(merged[start:k], start))
            out.append(self._process(self._historical_execution(merged[k]), k, same_index=True))
            start = k + 1
        out.append(self._process(merged[start:], start))
        events = np.concatenate(out) if out else empty_events(0)
        self._count_trims(events, merged, from_history)
        return events

    def _process(self, msgs: np.ndarray, offset: int, same_index: bool = False) -> np.ndarray:
        """One ``Books.process`` call (more only if the events buffer fills); events'
        ``message_index`` shifted by ``offset`` (or all set to it)."""
        if not msgs.size:
            return empty_events(0)
        parts = []
        done = 0
        while done < msgs.shape[0]:
            self.stats.core_calls += 1
            try:
                consumed, written = self.books.process(msgs[done:], self._events)
            except ValueError as exc:
                if "cannot hold" not in str(exc):   # only a buffer short of one message's
                    raise                           # event bound is grown and retried
                self._events = empty_events(2 * self._events.shape[0])
                continue
            ev = self._events[:written].copy()
            ev["message_index"] = offset if same_index else ev["message_index"] + offset + done
            parts.append(ev)
            done += consumed
        events = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self.stats.agent_messages or self.stats.background_messages:
            self._note_touched(events)
        return events

    def _note_touched(self, ev: np.ndarray) -> None:
        """Remember historical orders that traded with an agent: their leaves now differ
        from the record's."""
        fills = ev[ev["kind"] == FILL]
        hist = self.history_owner
        agent_taker = (fills["owner"] >= 0) & (fills["owner"] != hist)
        agent_maker = (fills["maker_owner"] >= 0) & (fills["maker_owner"] != hist)
        ids = np.concatenate([
            fills["maker_order_id"][agent_taker & (fills["maker_owner"] == hist)],
            fills["order_id"][agent_maker & (fills["owner"] == hist)],
        ])
        if ids.size:
            self._touched = np.union1d(self._touched, ids)

    def _historical_execution(self, m: np.void) -> np.ndarray:
        """The record's execution of order ``X = m['order_id']``: agent orders ahead of
        ``X`` first (better prices, then earlier at ``X``'s price), then ``X`` up to its
        leaves; what finds nothing is trimmed (see the module docstring)."""
        side, target_id, left = int(m["side"]), int(m["order_id"]), int(m["qty"])
        target = self.books.order(0, target_id)
        price = int(target["price"]) if target is not None else int(m["price"])
        live = self._agent_orders()
        better = np.unique(live["price"][(live["side"] == side)
                                         & (side * (live["price"] - price) > 0)]).tolist()
        levels = sorted(better, key=lambda p: -side * p)
        if target is not None:  # a gone X has no queue position: only better prices count
            levels.append(price)
        fills: list[tuple[int, int]] = []
        for level in levels:
            for order_id, qty, _, owner in self.books.level_queue(0, side, level).tolist():
                if order_id == target_id or not left:
                    break
                if owner >= 0 and owner != self.history_owner:  # an agent or simulated
                    q = min(left, qty)
                    fills.append((order_id, q))
                    left -= q
                    self.stats.agent_lots_hit += q
        if target is not None and left:
            q = min(left, int(target["qty"]))
            fills.append((target_id, q))
            left -= q
        if left:
            self.stats.trimmed_messages += 1
            self.stats.trimmed_lots += left
            kinds = self.stats.trimmed_by_kind
            kinds["EXECUTE beyond what is left"] = kinds.get("EXECUTE beyond what is left", 0) + 1
        out = empty_messages(len(fills))
        out["timestamp"] = m["timestamp"]
        out["op"] = EXECUTE
        out["book"] = 0
        if fills:
            out["order_id"], out["qty"] = np.array(fills, dtype=np.int64).T
        return out

    def _count_trims(self, events: np.ndarray, merged: np.ndarray, from_history: np.ndarray
                     ) -> None:
        kind = events["kind"]
        if not (np.any(kind == REJECTED) or np.any(kind == CANCELLED)):
            return
        hist_event = from_history[events["message_index"]]
        op = merged["op"][events["message_index"]]
        kinds = self.stats.trimmed_by_kind
        gone = hist_event & (events["kind"] == REJECTED)    # UNKNOWN_ORDER: agents took it
        cut = hist_event & (op == REDUCE) & (events["kind"] == CANCELLED)
        names, counts = np.unique(op[gone], return_counts=True)
        trims = [(f"{Op(o).name} of a taken order", int(n))
                 for o, n in zip(names, counts, strict=True)]
        for name, n in (*trims, ("REDUCE cut to a cancel", int(cut.sum()))):
            if n:
                kinds[name] = kinds.get(name, 0) + n
                self.stats.trimmed_messages += n


def _check_background(config: object) -> MarketConfig | None:
    """``config`` as the replay's simulated traders: a one-book ``MarketConfig``, its
    warm-up dropped (the record is the warm-up; parents count from the traders' start)."""
    if config is None:
        return None
    from rltrader.sim.config import MarketConfig
    if not isinstance(config, MarketConfig):
        raise TypeError(f"background must be a MarketConfig, got {type(config).__name__}")
    if config.n_books != 1:
        raise ValueError(f"background: a replay is one book; the config has {config.n_books} "
                         "(symbols x copies)")
    return dataclasses.replace(config, warmup_s=0.0)


def _n_traders(config: MarketConfig | None) -> int:
    if config is None:
        return 0
    from rltrader.sim.params import POPULATIONS, owner_ranges
    return owner_ranges(config)[POPULATIONS[-1]][1]


# ---- every shipped feed as a replay ---------------------------------------------------


@dataclass(frozen=True)
class FeedMessages:
    """What :class:`HybridReplay` replays of one reader's result (:func:`feed_messages`).

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
        One book's historical flow, in time order, ids below ``AGENT_ID_BASE``.
    halts : ndarray of int64, shape (k, 2)
        The record's trading halts, ``[halt, resume)`` ns (LOBSTER type 7, ITCH ``H``).
    dropped : int
        Messages left out: ITCH references to orders added before the file started.
    trades : int
        L2 with ``trades=True``: the record's trades replayed as executions of the level
        they hit.
    unmatched_lots : int
        Their lots that found no level (or less than the level showed): not replayed.
    """

    messages: np.ndarray
    halts: np.ndarray
    dropped: int = 0
    trades: int = 0
    unmatched_lots: int = 0


def feed_messages(feed: object, *, book: int | str | None = None,
                  trades: bool = False) -> FeedMessages:
    """The messages, halts and drops that :func:`from_feed` replays for ``feed``.

    Parameters
    ----------
    feed : reader result or ndarray of MESSAGE_DTYPE
        ``lobster.LobsterMessages``, ``lobster_exact.ExactFeed``, ``itch.ItchFeed``,
        ``coinbase.CoinbaseFeed``, ``binance.BinanceFeed``, ``tardis.TardisFeed``,
        ``generic.GenericFeed`` or a message array of one book.
    book : int or str, optional
        ITCH: the stock to replay, by book number or symbol (needed when the feed holds
        several).
    trades : bool
        Binance: replay the record's trades too, each as an execution of the level it hit
        (see :func:`_level_trades`), so that a recorded aggressor fills the agent orders
        ahead of that level (inside the spread, say) as it would have.

    What changes on the way (docs/hybrid.md, "Every feed as a replay"):

    - ITCH: the stock's book only, as book 0; deletes, cancels, executions and replaces of
      orders added before the file started are dropped (as LOBSTER's reader does; in a
      replay the core's rejections would count as liquidity agents took); the others get
      the side and price of the order they name (ITCH leaves them out; the replay's
      executions need them); halts are the stock's trading actions from a halt, pause or
      quotation-only state to ``T``.
    - L2 (Binance, tardis, generic ``l2``): a level's increase (``REPLACE`` of its
      synthetic order) becomes ``CANCEL`` + ``LIMIT``: the same book, but a level that
      agents emptied comes back at the record's next increase instead of being refused.
    - Everything else (LOBSTER, Coinbase L3, generic ``l3``) as the reader made it.
    """
    from rltrader.data.itch import ItchFeed

    if isinstance(feed, ItchFeed):
        if trades:
            raise ValueError("trades=True is for L2 feeds with trades (Binance): ITCH "
                             "executions are replayed already")
        return _itch_messages(feed, book)
    if book is not None:
        raise ValueError("book selects a stock of an ITCH feed only (the others hold one)")
    inner = getattr(feed, "feed", feed)  # ExactFeed wraps LobsterMessages
    if isinstance(inner, LobsterMessages):
        messages, halts = inner.messages, _halts(inner.raw)
    else:
        found = inner if isinstance(inner, np.ndarray) else getattr(inner, "messages", None)
        if not isinstance(found, np.ndarray) or found.dtype != MESSAGE_DTYPE:
            raise TypeError(f"cannot replay {type(feed).__name__}: give a reader's result or "
                            "a MESSAGE_DTYPE array")
        messages, halts = found, np.zeros((0, 2), dtype=np.int64)
    if messages.size and np.any(messages["book"] != messages["book"][0]):
        raise ValueError("the messages hold several books: a replay is one book")
    if trades:
        recorded = getattr(inner, "trades", None)
        if not isinstance(recorded, np.ndarray) or "side" not in (recorded.dtype.names or ()):
            raise ValueError(f"trades=True needs an L2 feed with trades (Binance), not "
                             f"{type(feed).__name__}")
        merged, n, unmatched = _level_trades(messages, recorded)
        return FeedMessages(merged, halts, trades=n, unmatched_lots=unmatched)
    return FeedMessages(_split_level_increases(messages), halts)


def from_feed(feed: object, n_agents: int = 1, *, book: int | str | None = None,
              trades: bool = False, **replay_kwargs: Any) -> HybridReplay:
    """A :class:`HybridReplay` of any shipped reader's result (see :func:`feed_messages`,
    which ``book`` and ``trades`` go to); ``replay_kwargs`` (``window``, ``capacity``, fees,
    ``background``, ``seed``) go to :class:`HybridReplay`."""
    if "halts" in replay_kwargs:
        raise TypeError("from_feed takes the feed's own halts (use HybridReplay for others)")
    given = feed_messages(feed, book=book, trades=trades)
    return HybridReplay(given.messages, n_agents, halts=given.halts, **replay_kwargs)


def _level_trades(levels: np.ndarray, trades: np.ndarray) -> tuple[np.ndarray, int, int]:
    """An L2 record's level messages with its trades (``side``: the aggressor's) merged
    in by time, trades first on equal times (a depth update includes the trades up to its
    time). A trade becomes an ``EXECUTE`` of the level order it hit (the maker side's, at
    its price), up to what that order shows now; the level messages are rewritten against
    what the replay's level order holds, so that each depth update still sets the level to
    the record's size (an execution is not counted twice). Increases are ``CANCEL`` +
    ``LIMIT`` as in :func:`_split_level_increases`. Returns the messages, the trades
    replayed and the lots that found no level."""
    order = np.argsort(np.concatenate([trades["timestamp"], levels["timestamp"]]),
                       kind="stable")                       # trades first on ties
    n_trades = trades.shape[0]
    t_ts, t_price, t_qty, t_side = (trades[k].tolist() for k in
                                    ("timestamp", "price", "qty", "side"))
    l_ts, l_op, l_id, l_side, l_price, l_qty = (levels[k].tolist() for k in (
        "timestamp", "op", "order_id", "side", "price", "qty"))
    record: dict[int, int] = {}     # the record's level sizes
    shown: dict[int, int] = {}      # what the replay's level orders hold
    rows: list[tuple[int, int, int, int, int, int]] = []
    replayed = unmatched = 0
    for k in order.tolist():
        if k < n_trades:
            side = -t_side[k]
            oid = LEVEL_ID_BASE + 2 * t_price[k] + (side < 0)
            have = shown.get(oid, 0)
            q = min(t_qty[k], have)
            unmatched += t_qty[k] - q
            if q:
                rows.append((t_ts[k], EXECUTE, oid, side, t_price[k], q))
                shown[oid] = have - q
                replayed += 1
            continue
        k -= n_trades
        oid, op, qty = l_id[k], l_op[k], l_qty[k]
        old = record.get(oid, 0)
        new = (qty if op in (LIMIT, REPLACE) else old - qty if op == REDUCE else 0)
        record[oid] = new
        cur = shown.get(oid, 0)
        if new == cur:
            continue
        head = (l_ts[k], l_side[k], l_price[k])
        if new == 0 or (cur and new > cur):
            rows.append((head[0], CANCEL, oid, head[1], head[2], cur))
        if new > cur or (new and not cur):
            rows.append((head[0], LIMIT, oid, head[1], head[2], new))
        elif new:
            rows.append((head[0], REDUCE, oid, head[1], head[2], cur - new))
        shown[oid] = new
    out = empty_messages(len(rows))
    if rows:
        table = np.array(rows, dtype=np.int64)
        for j, name in enumerate(("timestamp", "op", "order_id", "side", "price", "qty")):
            out[name] = table[:, j]
    out["book"] = levels["book"][0] if levels.size else 0
    return out, replayed, unmatched


def _split_level_increases(messages: np.ndarray) -> np.ndarray:
    """L2 level orders: each ``REPLACE`` (a larger size, same price and id) as ``CANCEL``
    then ``LIMIT``; identical book, but a level that agents took is re-added."""
    grow = (messages["op"] == REPLACE) & (messages["order_id"] >= LEVEL_ID_BASE)
    if not grow.any():
        return messages
    at = np.repeat(np.arange(messages.shape[0]), np.where(grow, 2, 1))
    out = messages[at]
    second = np.zeros(at.shape[0], dtype=bool)
    second[1:] = at[1:] == at[:-1]
    split = grow[at]
    out["op"][split & ~second] = CANCEL
    out["op"][second] = LIMIT
    out["new_order_id"][split] = 0
    return out


def _itch_messages(feed: Any, book: int | str | None) -> FeedMessages:
    symbols = list(feed.book_symbols)
    if book is None:
        if len(symbols) != 1:
            raise ValueError(f"the ITCH feed holds {len(symbols)} stocks: pass book= (a "
                             f"number below {len(symbols)} or a symbol: "
                             f"{', '.join(symbols[:8])}{' ...' if len(symbols) > 8 else ''})")
        book = 0
    elif isinstance(book, str):
        if symbols.count(book) != 1:
            raise ValueError(f"symbol {book!r} names {symbols.count(book)} books of the ITCH "
                             "feed: pass its book number")
        book = symbols.index(book)
    elif not is_int(book) or not 0 <= book < len(symbols):
        raise ValueError(f"book must be a symbol or an int in [0, {len(symbols)}), got {book!r}")
    messages = feed.messages[feed.messages["book"] == book]  # a copy
    keep = _known_orders(messages)
    messages = messages[keep]
    messages["book"] = 0
    actions = feed.trading_actions[feed.trading_actions["book"] == book]
    return FeedMessages(messages, _itch_halts(actions), int((~keep).sum()))


def _known_orders(messages: np.ndarray) -> np.ndarray:
    """Mask of messages about orders added in the file (a ``LIMIT``, or a ``REPLACE``'s
    new id, earlier); fills in the side and price of the order each one names, which ITCH's
    ``E``/``C``/``X``/``D`` (and ``U``'s side) do not carry and the replay's executions
    need (the agent orders ahead of an order are on its side, at its price or better)."""
    orders: dict[int, tuple[int, int]] = {}
    keep = np.ones(messages.shape[0], dtype=bool)
    side, price = messages["side"], messages["price"]
    rows = zip(messages["op"].tolist(), messages["order_id"].tolist(),
               messages["new_order_id"].tolist(), side.tolist(), price.tolist(), strict=True)
    for i, (op, order_id, new_id, s, p) in enumerate(rows):
        if op == LIMIT:
            orders[order_id] = (s, p)
        elif order_id not in orders:
            keep[i] = False
        elif op == REPLACE:
            side[i] = orders[order_id][0]
            orders[new_id or order_id] = (int(side[i]), p)
        else:
            side[i], price[i] = orders[order_id]
    return keep


def _itch_halts(actions: np.ndarray) -> np.ndarray:
    """``[halt, resume)`` from one stock's ITCH trading actions: from a state other than
    ``T`` (halted, paused, quotation only) to the next ``T``; trading before the first."""
    out: list[tuple[int, int]] = []
    start = None
    for ts, state in zip(actions["timestamp"].tolist(), actions["state"].tolist(),
                         strict=True):
        if state != b"T" and start is None:
            start = ts
        elif state == b"T" and start is not None:
            if ts > start:
                out.append((start, ts))
            start = None
    if start is not None:
        out.append((start, int(np.iinfo(np.int64).max)))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


__all__ = ["AGENT_ID_BASE", "FeedMessages", "HybridReplay", "HybridStats", "feed_messages",
           "from_feed"]
