# cython: language_level=3
"""Background order flow: compiled trader populations over a batch of books.

One ``Flow.run(n_steps)`` call advances every book by ``n_steps`` steps of ``dt`` ns. Each
step, for every book: the latent fundamental value moves (Ornstein-Uhlenbeck with
compound-Poisson jumps), every population draws its wake-ups, the woken traders decide and
write their messages into a delay line (``latency`` steps per population), and the
decisions that arrive this step are put in a random order (Fisher-Yates with the book's own
generator; each decision's messages stay together and in order) and handed, for all books
at once, to the core (``Books._run``). Traders see fills through the core's per-owner
accounts (position), never through Python objects.

Each book has its own xoshiro256** generator, seeded by the caller (``SeedSequence.spawn``),
and a second stream (the first jumped by 2^128) for the arrival order. Every wake-up draws
the same count of numbers whatever the state of the book, so two runs from one seed that
differ only by an execution agent's orders see the same fundamental, wake-ups and trader
draws (common random numbers: the paired impact measurement relies on it).
Nothing here allocates while stepping, except the optional message/event logs, which grow
outside the kernels.
"""

cimport numpy as cnp
from libc.math cimport ceil, cos, exp, floor, fabs, log, pow, sqrt
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy

from rltrader._random cimport below, next_u64, uniform
from rltrader._book cimport (
    Account, BookState, Books, Core, Event, Message,
    BUY, SELL, LIMIT, MARKET, CANCEL, GTC, IOC, FILL, REJECTED, UNKNOWN_ORDER,
    EMPTY_BID, EMPTY_ASK, MAX_PRICE, prefetch,
)

import dataclasses
from operator import index

import numpy as np

from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE

cnp.import_array()

cdef double TWO_PI = 6.283185307179586


# ---------------------------------------------------------------------------------------
# Per-book random numbers (rltrader/_random.pxd: xoshiro256**, 4 x uint64 per book)
# ---------------------------------------------------------------------------------------

cdef void jump(uint64_t* s) noexcept nogil:
    """Advance ``s`` by 2^128 draws (the generator's jump polynomial): a second stream from
    the same seed that never overlaps the first."""
    cdef uint64_t[4] poly = [0x180ec6d33cfd0aba, 0xd5a61266f0c9392c,
                             0xa9582618e03fc9aa, 0x39abdc4529b1661c]
    cdef uint64_t[4] acc = [0, 0, 0, 0]
    cdef int i, bit, j
    for i in range(4):
        for bit in range(64):
            if poly[i] & ((<uint64_t>1) << bit):
                for j in range(4):
                    acc[j] ^= s[j]
            next_u64(s)
    for j in range(4):
        s[j] = acc[j]


cdef inline double normal(uint64_t* s) noexcept nogil:
    """Standard normal (Box-Muller, one of the pair)."""
    return sqrt(-2.0 * log(uniform(s))) * cos(TWO_PI * uniform(s))


cdef Arrivals arrivals(double lam) noexcept nogil:
    """The Poisson(lam) draw's constants; lam <= 0 (or nan): no arrivals, nothing drawn."""
    cdef Arrivals a
    a.lam = lam if lam > 0.0 else 0.0
    a.limit = exp(-a.lam)
    return a


cdef inline int64_t poisson(uint64_t* s, const Arrivals* a) noexcept nogil:
    """Poisson(a.lam): inversion by multiplication below 30, rounded normal above."""
    cdef double p = 1.0
    cdef int64_t k = 0
    if a.lam <= 0.0:
        return 0
    if a.lam >= 30.0:
        k = <int64_t>floor(a.lam + sqrt(a.lam) * normal(s) + 0.5)
        return k if k > 0 else 0
    while True:
        p *= uniform(s)
        if p <= a.limit:
            return k
        k += 1


cdef inline int64_t pareto_lots(uint64_t* s, const Sizes* z, double scale) noexcept nogil:
    """Heavy-tailed order size: floor(scale * min * U^(-1/alpha)) in [1, max] lots."""
    cdef double x = scale * z.min_lots * pow(uniform(s), -1.0 / z.alpha)
    if x > z.max_lots:
        x = z.max_lots
    return <int64_t>x if x >= 1.0 else 1


# Below this cap, alpha = 1 depths are floor(1 / u) - 1 instead of floor(pow(u, -1)) - 1:
# the same number. The two floors can differ only where 1/u lies within pow's error
# (0.54 ulp, glibc) of half an ulp below an integer n; for u on the uniform's grid
# ((j + 0.5) / 2^53) no such u exists for n <= 480 (exact check:
# tests/test_flow.py::test_reciprocal_depths_match_pow), and at depths >= the cap both
# are capped.
cdef enum:
    RECIPROCAL_DEPTH_MAX = 479


cdef inline int64_t power_depth(uint64_t* s, double alpha, int64_t max_depth) noexcept nogil:
    """Ticks from the touch, P(depth >= d) = (d + 1)^-alpha, capped at max_depth."""
    cdef double u = uniform(s), d
    if alpha == 1.0 and max_depth <= RECIPROCAL_DEPTH_MAX:
        d = floor(1.0 / u) - 1.0
    else:
        d = floor(pow(u, -1.0 / alpha)) - 1.0
    return <int64_t>d if d < max_depth else max_depth


cdef inline int64_t clamp_price(double p) noexcept nogil:
    if p < 1.0:
        return 1
    if p > <double>MAX_PRICE:
        return MAX_PRICE
    return <int64_t>p


# ---------------------------------------------------------------------------------------
# Parameters (dataclasses from rltrader.sim.params; rates and times are per step)
# ---------------------------------------------------------------------------------------

# Zeroed structs (C statics), whose conversion to dicts gives each struct's field names
# (a nested struct as a nested dict): what a parameter dataclass must hold, no more, no less.
cdef Noise _NOISE
cdef Value _VALUE
cdef Momentum _MOMENTUM
cdef Maker _MAKER
cdef Liquidity _LIQUIDITY
cdef Splitter _SPLITTER
cdef Fundamental _FUNDAMENTAL
cdef Parent _PARENT

_LAYOUTS = {"noise": _NOISE, "value": _VALUE, "momentum": _MOMENTUM, "maker": _MAKER,
            "liquidity": _LIQUIDITY, "splitter": _SPLITTER, "fundamental": _FUNDAMENTAL,
            "parents": _PARENT}


cdef dict _struct_fields(object params, str name, dict layout):
    """The fields of the dataclass ``params`` as a dict for the C struct whose zeroed
    dict is ``layout`` (nested structs are nested dataclasses). TypeError unless the
    dataclass has exactly the struct's fields: nothing is dropped or left at zero because
    a name differs on one side."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise TypeError(f"{name} must be a dataclass instance (rltrader.sim.params), got "
                        f"{type(params).__name__}")
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    missing = sorted(layout.keys() - values.keys())
    unknown = sorted(values.keys() - layout.keys())
    if missing or unknown:
        raise TypeError(f"{name} ({type(params).__name__}) must have the fields of the C "
                        f"struct: missing {missing}, unknown {unknown}")
    for key, zero in layout.items():
        if isinstance(zero, dict):
            values[key] = _struct_fields(values[key], f"{name}.{key}", zero)
        elif isinstance(zero, int):     # an integer field: 2.5 would be truncated to 2
            try:
                values[key] = index(values[key])
            except TypeError:
                raise TypeError(f"{name}.{key} must be an integer, got "
                                f"{values[key]!r}") from None
    return values

# Counter indices (Flow.counters)
cdef enum:
    C_STEPS = 0
    C_MESSAGES = 1
    C_EVENTS = 2
    C_FILLS = 3
    C_STALE_CANCELS = 4     # cancels of orders that had already filled (UNKNOWN_ORDER)
    C_REJECTS = 5           # every other reject
    C_OVERFLOW = 6          # decisions dropped because a delay-line bucket was full
    C_WAKE_NOISE = 7
    C_WAKE_VALUE = 8
    C_WAKE_MOMENTUM = 9
    C_WAKE_MAKER = 10
    C_WAKE_EXECUTION = 11
    C_WAKE_LIQUIDITY = 12
    C_WAKE_SPLITTER = 13
    N_COUNTERS = 14

COUNTER_NAMES = ("steps", "messages", "events", "fills", "stale_cancels", "rejects",
                 "overflow", "wakeups_noise", "wakeups_value", "wakeups_momentum",
                 "wakeups_maker", "wakeups_execution",
                 "wakeups_liquidity", "wakeups_splitters")


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------

cdef inline double mid_of(const BookState* bs, double fallback) noexcept nogil:
    """Mid in ticks; the last trade, then ``fallback``, when a side is empty."""
    if bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK:
        return 0.5 * (bs.best_bid + bs.best_ask)
    if bs.last_price > 0:
        return <double>bs.last_price
    return fallback


cdef struct Outbox:
    Message* msgs           # the delay-line cell (book, arrival step) of a decision
    int32_t* n              # messages in it
    int32_t cap             # bucket_cap
    int32_t book
    int64_t timestamp       # ns of the arrival step


cdef inline int64_t bucket(const State* f, int32_t latency) noexcept nogil:
    """The delay-line bucket of the step ``latency`` (in [0, delay)) steps from now:
    ``(step + latency) % delay``."""
    cdef int64_t slot = f.now + latency
    return slot - f.delay if slot >= f.delay else slot


cdef inline Outbox begin(State* f, int32_t b, int32_t latency) noexcept nogil:
    """Start a decision of book ``b`` arriving ``latency`` steps from now: its messages go
    to the returned outbox, and stay together and in order when a step's arrivals are
    shuffled (a trader's cancel always reaches the book before its new quote)."""
    cdef int64_t at = bucket(f, latency) * f.n_books + b
    cdef Outbox o
    if f.group_n[at] < f.bucket_cap:
        f.group_start[at * f.bucket_cap + f.group_n[at]] = f.pending_n[at]
        f.group_n[at] += 1
    o.msgs = &f.pending[at * f.bucket_cap]
    o.n = &f.pending_n[at]
    o.cap = f.bucket_cap
    o.book = b
    o.timestamp = f.t0 + (f.step + latency) * f.dt
    return o


cdef inline Message* push(State* f, const Outbox* o) noexcept nogil:
    """A free message of the decision's outbox, or NULL if its bucket is full."""
    cdef Message* m
    if o.n[0] >= o.cap:
        f.counters[C_OVERFLOW] += 1
        return NULL
    m = &o.msgs[o.n[0]]
    o.n[0] += 1
    m.timestamp = o.timestamp
    m.book = o.book
    m.new_order_id = 0
    m.stop_price = 0
    m.price = 0
    m.tif = GTC
    m.side = 0
    return m


cdef inline int64_t send(State* f, const Outbox* o, int32_t owner, int op, int side,
                         int64_t price, int64_t qty, int tif) noexcept nogil:
    """Queue a new order; returns its id (0 when the bucket was full)."""
    cdef Message* m = push(f, o)
    if m == NULL:
        return 0
    m.op = op
    m.side = side
    m.price = price
    m.qty = qty
    m.tif = tif
    m.owner = owner + f.first_owner
    m.order_id = f.next_id[o.book]
    f.next_id[o.book] += 1
    return m.order_id


cdef inline bint cancel(State* f, const Outbox* o, int32_t owner,
                        int64_t order_id) noexcept nogil:
    """Queue a cancel; False when the bucket was full (counted, nothing queued)."""
    cdef Message* m = push(f, o)
    if m == NULL:
        return False
    m.op = CANCEL
    m.qty = 0
    m.owner = owner + f.first_owner
    m.order_id = order_id
    return True


cdef inline bint free_slot(State* f, const Outbox* o, int32_t trader,
                           int64_t* slot) noexcept nogil:
    """Cancel the order a ring slot holds, if any. False when it cannot be cancelled now,
    and the slot keeps the id, so the order is never lost track of (the caller skips its
    new order rather than overwrite the slot): when the bucket is full, or when the order
    was sent in this step by an earlier wake-up of the same trader (its cancel could be
    shuffled ahead of its arrival and miss it)."""
    if slot[0] >= f.step_first_id:
        return False
    if slot[0] != 0:
        if not cancel(f, o, trader, slot[0]):
            return False
        slot[0] = 0
    return True


cdef inline int64_t* ring_of(State* f, int32_t b, int32_t trader) noexcept nogil:
    return &f.live[(<int64_t>b * f.n_traders + trader) * f.ring]


cdef inline void cancel_all(State* f, const Outbox* o, int32_t trader,
                            int32_t slots) noexcept nogil:
    cdef int64_t* ids = ring_of(f, o.book, trader)
    cdef int32_t j
    for j in range(slots):
        free_slot(f, o, trader, &ids[j])


cdef void noise_trader(State* f, int32_t b, int32_t trader, const BookState* bs,
                       double mid) noexcept nogil:
    """Zero intelligence: a market, cancel or limit order around the touch."""
    cdef const Noise* p = &f.noise
    cdef Outbox o
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double u = uniform(rng)
    cdef int side = BUY if uniform(rng) < 0.5 else SELL
    cdef int64_t qty = pareto_lots(rng, &p.size, f.size_class[<int64_t>b * f.n_traders + trader])
    cdef int64_t* ids = ring_of(f, b, trader)
    cdef int32_t* pos = &f.ring_pos[<int64_t>b * f.n_traders + trader]
    cdef int64_t base, depth, j
    o = begin(f, b, p.latency)
    if u < p.p_market:
        send(f, &o, trader, MARKET, side, 0, qty, IOC)
        return
    if u < p.p_market + p.p_cancel:
        free_slot(f, &o, trader, &ids[below(rng, p.ring)])
        return
    if side == BUY:
        base = bs.best_bid if bs.best_bid != EMPTY_BID else (
            bs.best_ask - 1 if bs.best_ask != EMPTY_ASK else <int64_t>floor(mid) - 1)
    else:
        base = bs.best_ask if bs.best_ask != EMPTY_ASK else (
            bs.best_bid + 1 if bs.best_bid != EMPTY_BID else <int64_t>ceil(mid) + 1)
    depth = power_depth(rng, p.depth_alpha, p.depth_max)
    if not free_slot(f, &o, trader, &ids[pos[0]]):   # at most `ring` resting
        return
    ids[pos[0]] = send(f, &o, trader, LIMIT, side,
                       clamp_price(<double>(base - side * depth)), qty, GTC)
    pos[0] = (pos[0] + 1) % p.ring


cdef void value_trader(State* f, int32_t b, int32_t trader, const BookState* bs,
                       double mid) noexcept nogil:
    """Trade toward a noisy view of the fundamental: take beyond a threshold, else rest."""
    cdef const Value* p = &f.value
    cdef Outbox o
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double estimate = f.fundamental[b] + p.obs_sd * normal(rng)
    cdef int64_t qty = pareto_lots(rng, &p.size, f.size_class[<int64_t>b * f.n_traders + trader])
    cdef int64_t* ids = ring_of(f, b, trader)
    cdef int64_t price
    cdef int side
    o = begin(f, b, p.latency)
    cancel_all(f, &o, trader, 1)
    if bs.best_ask != EMPTY_ASK and estimate - bs.best_ask > p.threshold:
        side, price = BUY, bs.best_ask
    elif bs.best_bid != EMPTY_BID and bs.best_bid - estimate > p.threshold:
        side, price = SELL, bs.best_bid
    elif estimate >= mid:
        side = BUY
        price = clamp_price(floor(estimate - p.passive_offset))
        if bs.best_ask != EMPTY_ASK and price >= bs.best_ask:
            price = bs.best_ask - 1
    else:
        side = SELL
        price = clamp_price(ceil(estimate + p.passive_offset))
        if bs.best_bid != EMPTY_BID and price <= bs.best_bid:
            price = bs.best_bid + 1
    if ids[0] == 0:         # else its cancel could not be queued: keep track of that order
        ids[0] = send(f, &o, trader, LIMIT, side, clamp_price(<double>price), qty,
                      GTC)


cdef void momentum_trader(State* f, int32_t b, int32_t trader,
                          const BookState* bs) noexcept nogil:
    """Follow the trend: a marketable IOC limit at the touch when the EMAs diverge."""
    cdef const Momentum* p = &f.momentum
    cdef Outbox o
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double trend = f.ema[3 * b] - f.ema[3 * b + 1]
    cdef int64_t qty = pareto_lots(rng, &p.size, f.size_class[<int64_t>b * f.n_traders + trader])
    o = begin(f, b, p.latency)
    if trend > p.threshold and bs.best_ask != EMPTY_ASK:
        send(f, &o, trader, LIMIT, BUY, bs.best_ask, qty, IOC)
    elif trend < -p.threshold and bs.best_bid != EMPTY_BID:
        send(f, &o, trader, LIMIT, SELL, bs.best_bid, qty, IOC)


cdef void market_maker(State* f, int32_t b, int32_t k, double mid) noexcept nogil:
    """Cancel the old quotes and quote ``levels`` per side around the mid, skewed against
    the inventory; one side only beyond ``max_inventory``. The skew moves the centre at
    most ``half_spread`` from the mid, so that the first quote of each side stays on its
    side of the mid: a maker with a large inventory keeps making, it never turns taker
    and buys every ask (which drove the price away on thin books)."""
    cdef const Maker* p = &f.maker
    cdef Outbox o
    cdef int32_t trader = p.first + k, i
    cdef int64_t position = f.core.accounts[
        <int64_t>b * f.core.n_owners + f.first_owner + trader].position
    cdef int64_t* ids = ring_of(f, b, trader)
    cdef double shift = p.skew * position
    cdef double centre
    cdef double scale = f.size_class[<int64_t>b * f.n_traders + trader]
    cdef int64_t qty = <int64_t>floor(p.qty * scale + 0.5)
    cdef double offset
    if shift > p.half_spread:
        shift = p.half_spread
    elif shift < -p.half_spread:
        shift = -p.half_spread
    centre = mid - shift
    if qty < 1:
        qty = 1
    o = begin(f, b, p.latency)
    cancel_all(f, &o, trader, 2 * p.levels)
    f.maker_mid[<int64_t>b * p.count + k] = mid
    for i in range(p.levels):
        offset = p.half_spread + i * p.spacing
        if position < p.max_inventory and ids[2 * i] == 0:
            ids[2 * i] = send(f, &o, trader, LIMIT, BUY,
                              clamp_price(floor(centre - offset)), qty, GTC)
        if position > -p.max_inventory and ids[2 * i + 1] == 0:
            ids[2 * i + 1] = send(f, &o, trader, LIMIT, SELL,
                                  clamp_price(ceil(centre + offset)), qty, GTC)


cdef void liquidity_trader(State* f, int32_t b, int32_t trader) noexcept nogil:
    """Latent liquidity: a limit order ``x`` ticks on its side of the anchor, with x drawn
    with density ``2x / depth^2`` on [0, depth], so that the resting book grows linearly away
    from the anchor (Toth et al. 2011). An order beyond the opposite touch trades at once
    (a buyer whose price is above the ask buys), which pulls the price back to the anchor."""
    cdef const Liquidity* p = &f.liquidity
    cdef Outbox o
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double anchor = ((1.0 - p.price_weight) * f.fundamental[b]
                          + p.price_weight * f.ema[3 * b + 2])
    cdef int side = BUY if uniform(rng) < 0.5 else SELL
    cdef double x = p.depth * sqrt(uniform(rng))
    cdef int64_t qty = pareto_lots(rng, &p.size, f.size_class[<int64_t>b * f.n_traders + trader])
    cdef int64_t* ids = ring_of(f, b, trader)
    cdef int32_t* pos = &f.ring_pos[<int64_t>b * f.n_traders + trader]
    cdef double price = floor(anchor - x) if side == BUY else ceil(anchor + x)
    o = begin(f, b, p.latency)
    if not free_slot(f, &o, trader, &ids[pos[0]]):
        return
    ids[pos[0]] = send(f, &o, trader, LIMIT, side, clamp_price(price), qty, GTC)
    pos[0] = (pos[0] + 1) % p.ring


cdef void splitter(State* f, int32_t b, int32_t k) noexcept nogil:
    """Order splitting (Lillo, Mike, Farmer 2005): work a metaorder of a Pareto number of
    child market orders, one per wake-up, then draw the next (side at random). The order
    signs then have ACF ~ lag^-(alpha - 1). Every wake-up draws the same numbers."""
    cdef const Splitter* p = &f.splitter
    cdef Outbox o
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef int64_t at = <int64_t>b * p.count + k
    cdef int32_t trader = p.first + k
    cdef double u_side = uniform(rng)
    cdef double children = floor(pow(uniform(rng), -1.0 / p.alpha))
    cdef int64_t qty = pareto_lots(rng, &p.size, f.size_class[<int64_t>b * f.n_traders + trader])
    if f.meta_left[at] <= 0:
        f.meta_side[at] = BUY if u_side < 0.5 else SELL
        f.meta_left[at] = <int64_t>(children if children < p.max_children else p.max_children)
    o = begin(f, b, p.latency)
    send(f, &o, trader, MARKET, f.meta_side[at], 0, qty, IOC)
    f.meta_left[at] -= 1


cdef void execution(State* f, int32_t b, const BookState* bs, double mid) noexcept nogil:
    """Work each parent order: market child orders on a TWAP or POV schedule."""
    cdef const Parent* p
    cdef Outbox o
    cdef ParentState* s
    cdef int32_t j
    cdef int64_t elapsed, target
    for j in range(f.n_parents):
        p = &f.parents[j]
        s = &f.progress[<int64_t>b * f.n_parents + j]
        if f.step == p.start:
            s.arrival_mid = mid
            s.volume0 = bs.volume
        if f.step == p.end:
            s.end_mid = mid
        if f.step < p.start or f.step >= p.end or (f.step - p.start) % p.interval != 0:
            continue
        elapsed = f.step - p.start + p.interval
        if p.pov:
            target = <int64_t>floor(p.participation * (bs.volume - s.volume0))
        elif elapsed >= p.end - p.start:
            target = p.qty
        else:
            target = p.qty * elapsed // (p.end - p.start)
        if target > p.qty:
            target = p.qty
        f.counters[C_WAKE_EXECUTION] += 1
        if target > s.sent:
            o = begin(f, b, p.latency)
            if send(f, &o, p.owner, MARKET, p.side, 0, target - s.sent, IOC):
                s.sent = target     # else nothing was queued: the next child sends it


cdef void move_fundamental(State* f, int32_t b) noexcept nogil:
    """One step of Ornstein-Uhlenbeck plus compound-Poisson jumps of random sign; with a
    ``correlation``, the diffusion shocks of one copy's symbols share a common factor."""
    cdef const Fundamental* p = &f.fund
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double v = f.fundamental[b], z
    cdef int64_t jumps
    cdef int32_t copy
    v += p.kappa * (f.r_bar[b] - v)
    if p.sigma > 0.0:
        z = normal(rng)
        if p.correlation > 0.0:             # symbol 0's book draws its copy's common shock;
            copy = b % f.copies             # the others (later in every step) share it
            if b < f.copies:
                f.common_z[copy] = normal(&f.common_rng[4 * copy])
            z = sqrt(p.correlation) * f.common_z[copy] + sqrt(1.0 - p.correlation) * z
        v += p.sigma * z
    if p.jump_rate > 0.0:
        jumps = poisson(rng, &f.jumps)
        while jumps > 0:
            v += (1.0 if uniform(rng) < 0.5 else -1.0) * (p.jump_mean + p.jump_sd * normal(rng))
            jumps -= 1
    f.fundamental[b] = v if v >= 1.0 else 1.0


cdef inline int32_t wakers(State* f, uint64_t* rng, const Arrivals* a,
                           int counter) noexcept nogil:
    cdef int64_t k = poisson(rng, a)
    f.counters[counter] += k
    return <int32_t>k


cdef void decide_book(State* f, int32_t b) noexcept nogil:
    """Every population of book ``b`` decides for the current step."""
    cdef const BookState* bs = &f.core.bk[b]
    cdef uint64_t* rng = &f.rng[4 * b]
    cdef double mid
    cdef int32_t k, n
    f.step_first_id = f.next_id[b]
    move_fundamental(f, b)
    mid = mid_of(bs, f.fundamental[b])
    f.ema[3 * b] += f.momentum.alpha_short * (mid - f.ema[3 * b])
    f.ema[3 * b + 1] += f.momentum.alpha_long * (mid - f.ema[3 * b + 1])
    f.ema[3 * b + 2] += f.liquidity.alpha_anchor * (mid - f.ema[3 * b + 2])
    n = wakers(f, rng, &f.wake_noise, C_WAKE_NOISE)
    for k in range(n):
        noise_trader(f, b, f.noise.first + <int32_t>below(rng, f.noise.count), bs, mid)
    n = wakers(f, rng, &f.wake_value, C_WAKE_VALUE)
    for k in range(n):
        value_trader(f, b, f.value.first + <int32_t>below(rng, f.value.count), bs, mid)
    n = wakers(f, rng, &f.wake_momentum, C_WAKE_MOMENTUM)
    for k in range(n):
        momentum_trader(f, b, f.momentum.first + <int32_t>below(rng, f.momentum.count), bs)
    for k in range(f.maker.count):
        if (uniform(rng) < f.maker.rate or (f.maker.requote_ticks > 0 and fabs(
                mid - f.maker_mid[<int64_t>b * f.maker.count + k]) >= f.maker.requote_ticks)):
            f.counters[C_WAKE_MAKER] += 1
            market_maker(f, b, k, mid)
    n = wakers(f, rng, &f.wake_liquidity, C_WAKE_LIQUIDITY)
    for k in range(n):
        liquidity_trader(f, b, f.liquidity.first + <int32_t>below(rng, f.liquidity.count))
    n = wakers(f, rng, &f.wake_splitter, C_WAKE_SPLITTER)
    for k in range(n):
        splitter(f, b, <int32_t>below(rng, f.splitter.count))
    if f.n_parents > 0:
        execution(f, b, bs, mid)


cdef enum:
    FLOW_AHEAD = 2          # books ahead of the one deciding whose lines are requested
    # the core's look-ahead in the flow's batches (and the env's merged batches, which
    # run through _run_batch), in messages (Books._run_known_ahead; Flow.look_ahead): a
    # message of the background or of the env's agents across a thousand books costs
    # about twice the core's per-message time on W3 x 512 and touches lines a memory
    # access away, so the core's default lead of 4 messages (tuned on W3 x 512) arrives
    # late. In one process, the env at 1,024 x 4 and its background alone, per book-step
    # against 4: 6 and 8 -6 to -8 % and -10 to -13 %, 10 and 12 about 4's time (the
    # message records themselves are requested only 16 ahead)
    FLOW_LOOK_AHEAD = 8


cdef inline void skip(uint64_t* r, int64_t n) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        next_u64(r)


cdef void prefetch_decisions(State* f, int32_t b) noexcept nogil:
    """Start loading the ring slots that ``decide_book`` will read for book ``b``'s
    wake-ups: every woken trader reads one of its resting-order ids (a line of its own,
    far from the last book's; with a thousand books a cache miss each), the maker its
    account too. Which traders wake, and which slot each reads, comes from a copy of the
    book's generator drawing the numbers ``decide_book`` will draw: their count depends
    on the draws alone, never on the book (module docstring), so the copy follows the
    same sequence. The book's own generator is untouched: outputs are unchanged, and a
    wrong guess would only cost a useless load. Every woken trader also reads its size
    class (``size_class``, 216 bytes a book in the default preset, out of cache with a
    thousand books: the load the liquidity providers' draw waited on most)."""
    cdef uint64_t r[4]
    cdef int64_t n, k, j
    cdef int32_t trader
    cdef double u
    cdef const double* size_class = &f.size_class[<int64_t>b * f.n_traders]
    memcpy(r, &f.rng[4 * b], 4 * sizeof(uint64_t))
    if f.fund.sigma > 0.0:                          # move_fundamental: normal()
        skip(r, 2)
    if f.fund.jump_rate > 0.0:
        skip(r, 3 * poisson(r, &f.jumps))           # each jump: sign, normal()
    n = poisson(r, &f.wake_noise)
    for k in range(n):
        trader = f.noise.first + <int32_t>below(r, f.noise.count)
        prefetch(&size_class[trader])
        u = uniform(r)
        skip(r, 2)                                  # side, size
        if u < f.noise.p_market:
            continue
        if u < f.noise.p_market + f.noise.p_cancel:
            j = below(r, f.noise.ring)
        else:
            skip(r, 1)                              # depth
            j = f.ring_pos[<int64_t>b * f.n_traders + trader]
        prefetch(ring_of(f, b, trader) + j)
    n = poisson(r, &f.wake_value)
    for k in range(n):
        trader = f.value.first + <int32_t>below(r, f.value.count)
        skip(r, 3)                                  # normal(), size
        prefetch(ring_of(f, b, trader))
        prefetch(&size_class[trader])
    n = poisson(r, &f.wake_momentum)
    for k in range(n):
        prefetch(&size_class[f.momentum.first + <int32_t>below(r, f.momentum.count)])
        skip(r, 1)                                  # size
    for k in range(f.maker.count):
        if uniform(r) < f.maker.rate:
            trader = f.maker.first + <int32_t>k
            prefetch(ring_of(f, b, trader))
            prefetch(&f.core.accounts[<int64_t>b * f.core.n_owners + f.first_owner + trader])
            prefetch(&size_class[trader])
    n = poisson(r, &f.wake_liquidity)
    for k in range(n):
        trader = f.liquidity.first + <int32_t>below(r, f.liquidity.count)
        prefetch(&size_class[trader])
        skip(r, 3)                                  # side, depth, size
        prefetch(ring_of(f, b, trader) + f.ring_pos[<int64_t>b * f.n_traders + trader])


cdef inline void decide_ahead(State* f, int32_t b, int32_t first, int32_t stop) noexcept nogil:
    """Before book ``b`` decides: the lines of book ``b + FLOW_AHEAD`` (and, for the
    range's first book, of those before it) are requested (``prefetch_decisions``), and
    the ring positions of book ``b + 2 FLOW_AHEAD``, which that book's peek reads."""
    cdef int32_t k
    cdef int64_t later = <int64_t>(b + 2 * FLOW_AHEAD) * f.n_traders
    if b == first:
        for k in range(first, min(first + FLOW_AHEAD, stop)):
            prefetch_decisions(f, k)
    if b + FLOW_AHEAD < stop:
        prefetch_decisions(f, b + FLOW_AHEAD)
    if b + 2 * FLOW_AHEAD < f.n_books:      # the ring positions its peek will read
        prefetch(&f.ring_pos[later])
        prefetch(&f.ring_pos[later + f.n_traders - 1])


cdef inline int64_t gather_book(State* f, int32_t b, int64_t at, int32_t n,
                                Message* out) noexcept nogil:
    """Move the ``n`` (> 0) arrivals of book ``b`` in delay-line cell ``at`` into ``out``:
    its decisions in a random order (Fisher-Yates with the book's generator), each
    decision's messages in the order its trader sent them. Returns ``n``."""
    cdef int64_t total = 0
    cdef int32_t g = f.group_n[at], i, j, tmp, first, stop
    cdef const Message* src = &f.pending[at * f.bucket_cap]
    cdef const int32_t* starts = &f.group_start[at * f.bucket_cap]
    for i in range(g):
        f.order[i] = i
    i = g - 1
    while i > 0:
        j = <int32_t>below(&f.shuffle_rng[4 * b], i + 1)
        tmp = f.order[i]
        f.order[i] = f.order[j]
        f.order[j] = tmp
        i -= 1
    for i in range(g):
        first = starts[f.order[i]]
        stop = starts[f.order[i] + 1] if f.order[i] + 1 < g else n
        while first < stop:     # a decision sends a message or a few: no memcpy call
            out[total] = src[first]
            total += 1
            first += 1
    return total


cdef int64_t gather(State* f, int32_t first, int32_t stop) noexcept nogil:
    """This step's arrivals of books ``first .. stop - 1`` into the batch (from its start,
    book by book), and their delay-line cells emptied. Returns the number of messages."""
    cdef int64_t base = <int64_t>f.now * f.n_books, at, total = 0
    cdef int32_t b, n
    for b in range(first, stop):
        at = base + b
        n = f.pending_n[at]
        if n > 0:
            total += gather_book(f, b, at, n, &f.batch[total])
            f.pending_n[at] = 0
        f.group_n[at] = 0
    return total


cdef int64_t decide_all(State* f) noexcept nogil:
    """Every book decides, then every book's arrivals go into the batch, book by book."""
    cdef int32_t b
    for b in range(f.n_books):
        decide_ahead(f, b, 0, f.n_books)
        decide_book(f, b)
    return gather(f, 0, f.n_books)


cdef void tally(State* f, const Event* events, int64_t n) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        if events[i].kind == FILL:
            f.counters[C_FILLS] += 1
        elif events[i].kind == REJECTED:
            if events[i].reason == UNKNOWN_ORDER:
                f.counters[C_STALE_CANCELS] += 1
            else:
                f.counters[C_REJECTS] += 1
    f.counters[C_EVENTS] += n


# ---------------------------------------------------------------------------------------
# Python-facing class
# ---------------------------------------------------------------------------------------

cdef object _array(object a, object dtype, tuple shape, str name):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a.copy()


#: Version of ``Flow.state()``'s layout.
_STATE_VERSION = 1
_STATE_ARRAYS = ("rng_state", "shuffle_state", "common_state", "common_z", "meta_left",
                 "meta_side", "next_id", "fundamental", "r_bar", "ema", "size_class",
                 "live", "ring_pos", "maker_mid", "parent_array", "progress_array",
                 "pending_array", "pending_n", "group_start", "group_n", "order_scratch",
                 "batch_array", "counter_array")


def _flow_from_state(cls, state):
    """Unpickle a ``Flow`` (``Flow.__reduce__``)."""
    return cls.from_state(state)


cdef void _bind(Flow self):
    """Point the ``State`` struct at the flow's arrays and at its books' core (``__init__``
    and ``from_state``)."""
    cdef State* f = &self.s
    f.rng = <uint64_t*>cnp.PyArray_DATA(self.rng_state)
    f.shuffle_rng = <uint64_t*>cnp.PyArray_DATA(self.shuffle_state)
    f.common_rng = <uint64_t*>cnp.PyArray_DATA(self.common_state)
    f.common_z = <double*>cnp.PyArray_DATA(self.common_z)
    f.meta_left = <int64_t*>cnp.PyArray_DATA(self.meta_left)
    f.meta_side = <int32_t*>cnp.PyArray_DATA(self.meta_side)
    f.next_id = <int64_t*>cnp.PyArray_DATA(self.next_id)
    f.fundamental = <double*>cnp.PyArray_DATA(self.fundamental)
    f.r_bar = <double*>cnp.PyArray_DATA(self.r_bar)
    f.ema = <double*>cnp.PyArray_DATA(self.ema)
    f.size_class = <double*>cnp.PyArray_DATA(self.size_class)
    f.live = <int64_t*>cnp.PyArray_DATA(self.live)
    f.ring_pos = <int32_t*>cnp.PyArray_DATA(self.ring_pos)
    f.maker_mid = <double*>cnp.PyArray_DATA(self.maker_mid)
    f.parents = <Parent*>cnp.PyArray_DATA(self.parent_array)
    f.progress = <ParentState*>cnp.PyArray_DATA(self.progress_array)
    f.pending = <Message*>cnp.PyArray_DATA(self.pending_array)
    f.pending_n = <int32_t*>cnp.PyArray_DATA(self.pending_n)
    f.group_start = <int32_t*>cnp.PyArray_DATA(self.group_start)
    f.group_n = <int32_t*>cnp.PyArray_DATA(self.group_n)
    f.order = <int32_t*>cnp.PyArray_DATA(self.order_scratch)
    f.batch = <Message*>cnp.PyArray_DATA(self.batch_array)
    f.counters = <int64_t*>cnp.PyArray_DATA(self.counter_array)
    f.core = &self.books.core


cdef class Flow:
    """Background trader populations driving the books of a ``Books``.

    Built by :class:`rltrader.sim.market.Market`, which turns its typed configuration into the
    per-step parameters below (:func:`rltrader.sim.params.flow_params`). Owners ``[0, n_traders)`` of every book are the background
    traders, in the order noise, value, momentum, market makers, liquidity providers,
    splitters, execution parents.

    Parameters
    ----------
    books : Books
        The core; its ``n_owners`` must be at least ``n_traders``.
    n_traders : int
        Background traders per book.
    seeds : ndarray of uint64, shape (n_books, 4)
        Initial xoshiro256** state of each book (from ``SeedSequence.spawn``; not all zero).
    r_bar : ndarray of float64, shape (n_books,)
        Long-run mean (and start) of each book's fundamental, ticks.
    size_class : ndarray of float64, shape (n_books, n_traders)
        Order-size multiplier of each trader.
    t0_ns, dt_ns : int
        Time of step 0 and step length, ns.
    bucket_cap : int
        Messages one book may receive per step and per delay bucket.
    record : bool
        Keep every message and event (``message_log``, ``event_log``).
    noise, value, momentum, maker, liquidity, splitter, fundamental : dataclass
        Keyword-only: the populations and the fundamental, rates per step
        (``rltrader.sim.params.NoiseParams`` ... ``FundamentalParams``), each with exactly
        the fields of its C struct in ``_flow.pxd`` (else ``TypeError``).
    parents : sequence of dataclass
        Keyword-only: the execution agents' parent orders (``ParentParams``).
    first_owner : int
        Keyword-only: trader ``t`` is owner ``first_owner + t`` (a replay's simulated
        traders follow its agents and its history owner).

    Attributes
    ----------
    look_ahead : int
        How many messages ahead the core starts loading a message's book, level, hash
        bucket and order in this flow's batches (``Books._run_known_ahead``, clamped to
        [2, 12]; 8 by default, the core's own default is 4). A tuning knob: the results
        do not depend on it. Not part of ``state()``.
    """

    def __init__(self, Books books, int n_traders, seeds, r_bar, size_class,
                 int64_t t0_ns, int64_t dt_ns, int bucket_cap, bint record=False, *,
                 noise, value, momentum, maker, liquidity, splitter, fundamental, parents,
                 copies=None, first_owner=0):
        cdef int32_t n_books = books.core.n_books
        first_owner = index(first_owner)
        if first_owner < 0 or n_traders + first_owner > books.core.n_owners:
            raise ValueError(f"books has {books.core.n_owners} owners per book: too few for "
                             f"{n_traders} background traders from owner {first_owner}")
        if dt_ns < 1:
            raise ValueError(f"dt_ns must be >= 1, got {dt_ns}")
        if bucket_cap < 1:
            raise ValueError(f"bucket_cap must be >= 1, got {bucket_cap}")
        parents = [_struct_fields(p, f"parents[{j}]", _LAYOUTS["parents"])
                   for j, p in enumerate(parents)]
        self.books = books
        self.record = record
        self.look_ahead = FLOW_LOOK_AHEAD
        cdef State* f = &self.s
        f.noise = _struct_fields(noise, "noise", _LAYOUTS["noise"])
        f.value = _struct_fields(value, "value", _LAYOUTS["value"])
        f.momentum = _struct_fields(momentum, "momentum", _LAYOUTS["momentum"])
        f.maker = _struct_fields(maker, "maker", _LAYOUTS["maker"])
        f.liquidity = _struct_fields(liquidity, "liquidity", _LAYOUTS["liquidity"])
        f.splitter = _struct_fields(splitter, "splitter", _LAYOUTS["splitter"])
        f.fund = _struct_fields(fundamental, "fundamental", _LAYOUTS["fundamental"])
        # a population of 0 traders gets lam 0 (arrivals: no draw), whatever its rate
        f.wake_noise = arrivals(f.noise.count * f.noise.rate)
        f.wake_value = arrivals(f.value.count * f.value.rate)
        f.wake_momentum = arrivals(f.momentum.count * f.momentum.rate)
        f.wake_liquidity = arrivals(f.liquidity.count * f.liquidity.rate)
        f.wake_splitter = arrivals(f.splitter.count * f.splitter.rate)
        f.jumps = arrivals(f.fund.jump_rate)
        f.n_books = n_books
        f.n_traders = n_traders
        f.first_owner = <int32_t>first_owner
        f.n_owners = books.core.n_owners
        f.n_parents = len(parents)
        f.ring = max(1, f.noise.ring, 2 * f.maker.levels,
                     f.liquidity.ring if f.liquidity.count else 1)
        latencies = [f.noise.latency, f.value.latency, f.momentum.latency, f.maker.latency,
                     f.liquidity.latency, f.splitter.latency] + [p["latency"] for p in parents]
        if min(latencies) < 0:
            raise ValueError(f"latencies must be >= 0 steps, got {latencies}")
        f.delay = 1 + max(latencies)
        f.bucket_cap = bucket_cap
        f.t0 = t0_ns
        f.dt = dt_ns
        f.step = 0
        f.now = 0
        self.rng_state = _array(seeds, np.uint64, (n_books, 4), "seeds")
        if np.any(~self.rng_state.any(axis=1)):
            raise ValueError("a book's seed state is all zero (xoshiro256** needs one bit)")
        self.shuffle_state = self.rng_state.copy()
        cdef uint64_t* sh = <uint64_t*>cnp.PyArray_DATA(self.shuffle_state)
        for j in range(n_books):
            jump(&sh[4 * j])
        f.copies = n_books if copies is None else index(copies)
        if f.copies < 1 or n_books % f.copies:
            raise ValueError(f"copies must divide the {n_books} books, got {copies}")
        if not 0.0 <= f.fund.correlation <= 1.0:
            raise ValueError(f"fundamental.correlation must be in [0, 1], got "
                             f"{f.fund.correlation}")
        # the common factor: symbol 0's streams jumped twice (the arrival order is once)
        self.common_state = self.rng_state[:f.copies].copy()
        for j in range(f.copies):
            jump(&(<uint64_t*>cnp.PyArray_DATA(self.common_state))[4 * j])
            jump(&(<uint64_t*>cnp.PyArray_DATA(self.common_state))[4 * j])
        self.common_z = np.zeros(f.copies)
        self.r_bar = _array(r_bar, np.float64, (n_books,), "r_bar")
        self.size_class = _array(size_class, np.float64, (n_books, n_traders), "size_class")
        self.fundamental = self.r_bar.copy()
        self.ema = np.repeat(self.r_bar, 3).reshape(n_books, 3)
        self.meta_left = np.zeros((n_books, max(f.splitter.count, 1)), dtype=np.int64)
        self.meta_side = np.zeros((n_books, max(f.splitter.count, 1)), dtype=np.int32)
        self.next_id = np.ones(n_books, dtype=np.int64)
        self.live = np.zeros((n_books, n_traders, f.ring), dtype=np.int64)
        self.ring_pos = np.zeros((n_books, n_traders), dtype=np.int32)
        self.maker_mid = np.full((n_books, max(f.maker.count, 1)), np.nan)
        self.parent_array = np.zeros(max(f.n_parents, 1) * sizeof(Parent), dtype=np.uint8)
        cdef Parent* pa = <Parent*>cnp.PyArray_DATA(self.parent_array)
        for j, p in enumerate(parents):
            pa[j] = p
        self.progress_array = np.zeros(max(f.n_parents, 1) * n_books * sizeof(ParentState),
                                       dtype=np.uint8)
        cdef ParentState* ps = <ParentState*>cnp.PyArray_DATA(self.progress_array)
        for j in range(f.n_parents * n_books):
            ps[j].arrival_mid = np.nan
            ps[j].end_mid = np.nan
        self.pending_array = np.zeros(f.delay * n_books * bucket_cap, dtype=MESSAGE_DTYPE)
        self.pending_n = np.zeros((f.delay, n_books), dtype=np.int32)
        self.group_start = np.zeros((f.delay, n_books, bucket_cap), dtype=np.int32)
        self.group_n = np.zeros((f.delay, n_books), dtype=np.int32)
        self.order_scratch = np.zeros(bucket_cap, dtype=np.int32)
        self.batch_array = np.zeros(n_books * bucket_cap, dtype=MESSAGE_DTYPE)
        self.events_array = np.zeros(max(4096, 4 * n_books * bucket_cap), dtype=EVENT_DTYPE)
        self.counter_array = np.zeros(N_COUNTERS, dtype=np.int64)
        self._messages = np.zeros(0, dtype=MESSAGE_DTYPE)
        self._events = np.zeros(0, dtype=EVENT_DTYPE)
        self._n_messages = 0
        self._n_events = 0
        _bind(self)

    @property
    def step(self):
        """The next step to run (steps run so far)."""
        return self.s.step

    @property
    def n_traders(self):
        return self.s.n_traders

    @property
    def counters(self):
        """Counts so far as a dict: steps, messages, events, fills, stale cancels (cancels
        of orders already filled), other rejects, decisions dropped for a full delay
        bucket (``overflow``) and wake-ups per population."""
        return dict(zip(COUNTER_NAMES, self.counter_array.tolist()))

    @property
    def parent_progress(self):
        """Per (book, parent) ``arrival_mid``, ``end_mid`` (ticks), ``volume0``, ``sent``."""
        dtype = np.dtype([("arrival_mid", np.float64), ("end_mid", np.float64),
                          ("volume0", np.int64), ("sent", np.int64)])
        n = self.s.n_parents * self.s.n_books
        return np.frombuffer(self.progress_array, dtype=dtype, count=n).reshape(
            self.s.n_books, self.s.n_parents).copy()

    @property
    def message_log(self):
        """Every message sent so far, in processing order (``record=True``)."""
        return self._messages[:self._n_messages]

    @property
    def event_log(self):
        """Every event so far; ``message_index`` indexes ``message_log``."""
        return self._events[:self._n_events]

    # ---- state (pickling, the exchange's snapshots) ------------------------------------

    def state(self):
        """Everything the flow holds, as a dict: its ``State`` struct's scalars (sizes,
        parameters, clock ``step``/``now``, the current step's first id) as raw bytes
        with its pointers zeroed, copies of every array they point into (generators,
        rings, delay-line cells and counts, parents and their progress, counters ...),
        the message/event logs and its ``Books`` (the object itself: a pickle of the
        flow holds its books, restored once however many refer to them). The event
        buffer is scratch (written by the core before every read): only its size is kept.
        ``from_state`` rebuilds an identical flow; ``pickle`` uses the pair."""
        cdef State copy = self.s
        copy.rng = NULL
        copy.common_rng = NULL
        copy.common_z = NULL
        copy.shuffle_rng = NULL
        copy.next_id = NULL
        copy.fundamental = NULL
        copy.r_bar = NULL
        copy.ema = NULL
        copy.meta_left = NULL
        copy.meta_side = NULL
        copy.size_class = NULL
        copy.live = NULL
        copy.ring_pos = NULL
        copy.maker_mid = NULL
        copy.parents = NULL
        copy.progress = NULL
        copy.pending = NULL
        copy.pending_n = NULL
        copy.group_start = NULL
        copy.group_n = NULL
        copy.order = NULL
        copy.batch = NULL
        copy.counters = NULL
        copy.core = NULL
        out = {name: getattr(self, name).copy() for name in _STATE_ARRAYS}
        out.update(version=_STATE_VERSION, struct=(<char*>&copy)[:sizeof(State)],
                   books=self.books, record=self.record,
                   events_size=self.events_array.shape[0],
                   messages=self.message_log.copy(), events=self.event_log.copy())
        return out

    @classmethod
    def from_state(cls, dict state):
        """A ``Flow`` holding ``state`` (from ``state()``), bound to ``state["books"]``;
        the arrays are copied."""
        cdef Flow flow = cls.__new__(cls)
        cdef bytes raw = state["struct"]
        cdef Books books = state["books"]
        cdef State* f = &flow.s
        if state.get("version") != _STATE_VERSION or len(raw) != sizeof(State):
            raise ValueError(f"Flow state version {state.get('version')!r} of "
                             f"{len(raw)} bytes; this build reads version "
                             f"{_STATE_VERSION} of {sizeof(State)}")
        memcpy(f, <const char*>raw, sizeof(State))
        if (f.n_books != books.core.n_books or f.n_owners != books.core.n_owners
                or f.n_books < 1 or f.n_traders < 0 or f.ring < 1 or f.delay < 1
                or f.bucket_cap < 1 or f.n_parents < 0 or f.copies < 1
                or not 0 <= f.now < f.delay):
            raise ValueError("inconsistent Flow state (sizes, or another Books)")
        nb, nt, cap, d = f.n_books, f.n_traders, f.bucket_cap, f.delay
        shapes = dict(
            rng_state=(nb, 4), shuffle_state=(nb, 4), common_state=(f.copies, 4),
            common_z=(f.copies,), meta_left=(nb, max(f.splitter.count, 1)),
            meta_side=(nb, max(f.splitter.count, 1)), next_id=(nb,), fundamental=(nb,),
            r_bar=(nb,), ema=(nb, 3), size_class=(nb, nt), live=(nb, nt, f.ring),
            ring_pos=(nb, nt), maker_mid=(nb, max(f.maker.count, 1)),
            parent_array=(max(f.n_parents, 1) * sizeof(Parent),),
            progress_array=(max(f.n_parents, 1) * nb * sizeof(ParentState),),
            pending_array=(d * nb * cap,), pending_n=(d, nb), group_start=(d, nb, cap),
            group_n=(d, nb), order_scratch=(cap,), batch_array=(nb * cap,),
            counter_array=(N_COUNTERS,))
        arrays = {}
        for name in _STATE_ARRAYS:
            a = state[name]
            if not isinstance(a, np.ndarray) or a.shape != shapes[name]:
                raise ValueError(f"inconsistent Flow state: {name} must be of shape "
                                 f"{shapes[name]}")
            arrays[name] = np.zeros(a.shape, dtype=a.dtype)    # padding bytes zero
            arrays[name][...] = a
        # dtypes as __init__ makes them
        for name, dtype in (("rng_state", np.uint64), ("shuffle_state", np.uint64),
                            ("common_state", np.uint64), ("common_z", np.float64),
                            ("meta_left", np.int64), ("meta_side", np.int32),
                            ("next_id", np.int64), ("fundamental", np.float64),
                            ("r_bar", np.float64), ("ema", np.float64),
                            ("size_class", np.float64), ("live", np.int64),
                            ("ring_pos", np.int32), ("maker_mid", np.float64),
                            ("parent_array", np.uint8), ("progress_array", np.uint8),
                            ("pending_array", MESSAGE_DTYPE), ("pending_n", np.int32),
                            ("group_start", np.int32), ("group_n", np.int32),
                            ("order_scratch", np.int32), ("batch_array", MESSAGE_DTYPE),
                            ("counter_array", np.int64)):
            if arrays[name].dtype != dtype:
                raise ValueError(f"inconsistent Flow state: {name} must be of "
                                 f"{np.dtype(dtype)}")
        flow.books = books
        flow.record = state["record"]
        flow.look_ahead = FLOW_LOOK_AHEAD
        flow.rng_state = arrays["rng_state"]
        flow.shuffle_state = arrays["shuffle_state"]
        flow.common_state = arrays["common_state"]
        flow.common_z = arrays["common_z"]
        flow.meta_left = arrays["meta_left"]
        flow.meta_side = arrays["meta_side"]
        flow.next_id = arrays["next_id"]
        flow.fundamental = arrays["fundamental"]
        flow.r_bar = arrays["r_bar"]
        flow.ema = arrays["ema"]
        flow.size_class = arrays["size_class"]
        flow.live = arrays["live"]
        flow.ring_pos = arrays["ring_pos"]
        flow.maker_mid = arrays["maker_mid"]
        flow.parent_array = arrays["parent_array"]
        flow.progress_array = arrays["progress_array"]
        flow.pending_array = arrays["pending_array"]
        flow.pending_n = arrays["pending_n"]
        flow.group_start = arrays["group_start"]
        flow.group_n = arrays["group_n"]
        flow.order_scratch = arrays["order_scratch"]
        flow.batch_array = arrays["batch_array"]
        flow.counter_array = arrays["counter_array"]
        flow.events_array = np.zeros(max(int(state["events_size"]), 1), dtype=EVENT_DTYPE)
        messages = np.zeros(len(state["messages"]), dtype=MESSAGE_DTYPE)
        messages[...] = state["messages"]
        events = np.zeros(len(state["events"]), dtype=EVENT_DTYPE)
        events[...] = state["events"]
        flow._messages, flow._n_messages = messages, messages.shape[0]
        flow._events, flow._n_events = events, events.shape[0]
        _bind(flow)
        return flow

    def __reduce__(self):
        return _flow_from_state, (type(self), self.state())

    def run(self, int64_t n_steps):
        """Advance every book by ``n_steps`` steps (one decision round and one core batch
        per step)."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        cdef State* f = &self.s
        cdef int64_t i, n
        cdef bint release = f.n_books >= 32
        # the decisions read the books without the GIL: hold the Books (another thread's
        # call must not resize its arena meanwhile); _process's core calls re-enter
        self.books._enter()
        try:
            for i in range(n_steps):
                if release:
                    with nogil:
                        n = decide_all(f)
                else:
                    n = decide_all(f)
                self._process(n)
                self.end_step()
        finally:
            self.books._leave()

    def decide(self):
        """One step's decisions, without running them: every book decides on its book as
        it stands, and the step's arrivals come back (MESSAGE_DTYPE, a copy; book by book,
        each book's decisions in a random order, all stamped with the step's time). The
        caller runs them (a hybrid replay merges them with the record). The same draws as
        ``run(1)``."""
        cdef int64_t n
        self.books._enter()
        try:
            n = decide_all(&self.s)
        finally:
            self.books._leave()
        self.s.counters[C_MESSAGES] += n
        self.end_step()
        return self.batch_array[:n].copy()

    cdef int64_t decide_range(self, int32_t first, int32_t stop) noexcept nogil:
        """Books ``first .. stop - 1``'s part of a step: they decide, and their arrivals of
        this step go into the batch (from its start, book by book; the caller runs them
        with ``_process`` before the next range). A step is consecutive ranges covering
        every book, then ``end_step``: the same draws and per-book messages as
        ``run(1)``. Returns the number of messages."""
        cdef int32_t b
        for b in range(first, stop):
            decide_ahead(&self.s, b, first, stop)
            decide_book(&self.s, b)
        return gather(&self.s, first, stop)

    cdef void decide_books(self, int32_t first, int32_t stop) noexcept nogil:
        """Books ``first .. stop - 1`` decide for this step, and their arrivals of this
        step stay in the delay line: the caller merges them with its own and empties
        their cells (the env kernel's ``merge_book``), then runs them with
        ``_run_batch``. A step is consecutive ranges covering every book, then
        ``end_step``: the same draws as ``run(1)``."""
        cdef int32_t b
        for b in range(first, stop):
            decide_ahead(&self.s, b, first, stop)
            decide_book(&self.s, b)

    cdef void end_step(self) noexcept nogil:
        self.s.step += 1
        self.s.now = self.s.now + 1 if self.s.now + 1 < self.s.delay else 0
        self.s.counters[C_STEPS] += 1

    cdef _process(self, int64_t n):
        self._run_batch(self.s.batch, NULL, False, n)

    cdef _run_batch(self, Message* msgs, int32_t* known, bint fresh, int64_t n):
        """Run ``msgs[:n]`` through the core (``known`` and ``fresh`` as in
        ``Books._run_known``), counting (and, when recording, logging) messages and
        events."""
        cdef State* f = &self.s
        cdef int64_t done = 0, consumed, written, offset = 0
        cdef Event* events = <Event*>cnp.PyArray_DATA(self.events_array)
        cdef int64_t cap = cnp.PyArray_DIM(<cnp.ndarray>self.events_array, 0)
        if n == 0:
            return
        f.counters[C_MESSAGES] += n
        if self.record:
            offset = self._append_messages(msgs, n)
        while done < n:
            self.books._run_known_ahead(msgs + done,
                                        known + done if known != NULL else NULL, fresh,
                                        n - done, offset + done, events, cap, &consumed,
                                        &written, self.look_ahead)
            if consumed == 0 and written == 0:
                cap = 2 * cap
                self.events_array = np.zeros(cap, dtype=EVENT_DTYPE)
                events = <Event*>cnp.PyArray_DATA(self.events_array)
                continue
            tally(f, events, written)
            if self.record:
                self._append_events(written)
            done += consumed

    cdef int64_t _append_messages(self, const Message* msgs, int64_t n) except -1:
        cdef int64_t start = self._n_messages
        if start + n > 2**31 - 1:
            raise OverflowError("the message log passed 2**31 messages; record less")
        if start + n > self._messages.shape[0]:
            grown = np.zeros(max(2 * self._messages.shape[0], start + n, 4096),
                             dtype=MESSAGE_DTYPE)
            grown[:start] = self._messages[:start]
            self._messages = grown
        memcpy(<Message*>cnp.PyArray_DATA(self._messages) + start, msgs, n * sizeof(Message))
        self._n_messages = start + n
        return start

    cdef _append_events(self, int64_t n):
        cdef int64_t start = self._n_events
        if start + n > self._events.shape[0]:
            grown = np.zeros(max(2 * self._events.shape[0], start + n, 4096), dtype=EVENT_DTYPE)
            grown[:start] = self._events[:start]
            self._events = grown
        memcpy(<Event*>cnp.PyArray_DATA(self._events) + start,
               <Event*>cnp.PyArray_DATA(self.events_array), n * sizeof(Event))
        self._n_events = start + n
