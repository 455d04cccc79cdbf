# cython: language_level=3
"""Compiled kernel of the batched RL environment (:mod:`rltrader.envs.batched`).

``EnvKernel`` drives ``n_agents`` learning agents in each of ``n_envs`` books of one
``Books``: the agents of book ``e`` are owners ``first_owner .. first_owner + n_agents - 1``
of that book. Buffers (actions, observations, rewards, terminated, truncated, final
observations, the agents' message batch) are bound once at construction; every phase below
reads and writes them in place, inside ``nogil`` loops, with no Python object per agent.

A step, as :meth:`EnvKernel.step` runs it for a simulated market (a hybrid replay runs the
same phases from Python, with the replay in place of the core call and the flow):

1. ``act``: every agent's action becomes core messages (limit, market, replace, cancel).
2. the messages go through the core (``Books._run_known``: known arena slots in, where new
   orders rested out); the background flow advances one step (``Flow.decide_range``).
3. ``advance``: per book, the mid history and the trade-flow imbalance are updated and the
   episode clock ticks; books whose episode reaches the horizon are *ending*.
4. ``settle`` (``liquidate`` only): the agents of ending books cancel their orders and
   flatten their episode position with market orders, which go through the core.
5. ``observe``: observations, rewards and done flags of every agent; the rows of ending
   books are also copied to the final observations.
6. ``begin``: ending books start a new episode at once (same-step auto-reset): the agents'
   resting orders are cancelled, their PnL baseline is reset, and their rows of the
   observation buffer are overwritten with the new episode's first observation.

``step`` with the flow of the same books runs the phases per group of ``BOOK_GROUP``
books (``_step_books``), so that a group's data stays in cache across its phases.

Agents' orders are cached per slot: a new order's arena slot is where the core reports it
came to rest (``locate``; arena slots never move while an order lives), and the arena
is read again only for agents whose account volume moved (a fill). The queue ahead of an
agent's nearest order comes from its level's FIFO, walked again only when the nearest
order changed or its level lost or reduced an order since (the level's ``removals``
count, or the window moved); positions and cash come from the core's per-owner accounts
(fees included).
"""

cimport numpy as cnp
from libc.math cimport ceil, floor, sqrt
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from rltrader._book cimport (
    Account, BookState, Books, Core, Event, Level, Message, Order, find_order,
    BUY, SELL, LIMIT, MARKET, CANCEL, REPLACE, GTC, IOC, EMPTY_BID, EMPTY_ASK, NO_SLOT,
    MAX_PRICE, RESTING, prefetch,
)
from rltrader._flow cimport Flow

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

from operator import index

import numpy as np

from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE

cnp.import_array()


cpdef enum ActionMode:
    DISCRETE = 0          # one Discrete action: hold, limit at offsets, market, cancel all
    MARKET_MAKING = 1     # MultiDiscrete (bid offset, ask offset, size): one quote per side

cpdef enum RewardKind:
    PNL = 0                   # change of the marked-to-market PnL
    PNL_INVENTORY = 1         # PnL change minus a penalty on |position|
    DIFFERENTIAL_SHARPE = 2   # Moody & Saffell's differential Sharpe ratio of PnL changes

cpdef enum Layout:
    MAX_OFFSETS = 8       # limit offsets, quote offsets and quote sizes (each)
    MARKET_EXTRA = 4      # after the 4 x depth level features: spread, 2 returns, imbalance
    AGENT_FEATURES = 7    # inventory, cash, pnl, orders, queue ahead, time left, size class
    MESSAGES_PER_AGENT_EXTRA = 2   # per agent per phase: n_slots cancels + 2 messages


cdef struct Params:
    int32_t n_envs
    int32_t n_agents
    int32_t first_owner       # owner of agent 0 in every book
    int32_t depth             # price levels per side in the observation
    int32_t n_slots           # resting orders an agent may keep
    int32_t action_mode       # ActionMode
    int32_t reward_kind       # RewardKind
    int32_t liquidate         # 1: flatten at the episode end, 0: mark at the mid
    int32_t n_offsets         # limit offsets (DISCRETE)
    int32_t n_quotes          # quote offsets (MARKET_MAKING); index n_quotes = no quote
    int32_t n_sizes           # quote sizes (MARKET_MAKING)
    int32_t return_lag        # steps of the long return
    int32_t scan_ticks        # ticks beyond the touch searched for the top levels
    int32_t obs_dim
    int64_t horizon           # steps per episode
    int64_t id_base           # agent order ids are id_base + a per-book counter
    int64_t limit_offsets[8]  # ticks behind the own-side touch (< 0: inside the spread)
    int64_t quote_offsets[8]
    double quote_sizes[8]     # multiples of the agent's order size
    double qty_scale          # lots: level sizes and the queue ahead are divided by it
    double inventory_penalty  # reward per step per order size of |position|
    double sharpe_eta         # adaptation rate of the differential Sharpe ratio
    double flow_alpha         # EMA weight of the trade-flow imbalance per step


cdef struct State:
    Params p
    const Core* core
    # bound buffers
    const int64_t* actions    # [N, action_dims]
    float* obs                # [N, obs_dim]
    float* rewards            # [N]
    uint8_t* terminated       # [N]
    uint8_t* truncated        # [N]
    float* final_obs          # [N, obs_dim]
    Message* messages         # [N * (n_slots + 2)]
    int32_t* known            # [N * (n_slots + 2)] arena slot of each message's order (or
                              # NO_SLOT) for the core's lookup; after the core call, where
                              # its new order came to rest (Books._run_known)
    # per agent (N = n_envs * n_agents, agent a = env * n_agents + i)
    int64_t* order_qty        # lots per order
    int64_t* position_limit   # lots, |episode position| bound
    double* capital           # ticks x lots: cash and PnL are divided by it
    double* log_size          # log of the size class
    int64_t* slot_id          # [N, n_slots] live order ids (0: free)
    int32_t* slot_arena       # [N, n_slots] the order's arena slot once found (-1: not yet)
    int64_t* slot_price       # [N, n_slots] ticks (valid while slot_id != 0)
    int64_t* slot_leaves      # [N, n_slots] lots
    int8_t* slot_side         # [N, n_slots]
    int32_t* slot_next        # [N] next slot to reuse when all are taken
    int64_t* base_position    # [N] account position at the episode start, lots
    int64_t* base_cash        # [N] account cash at the episode start, ticks x lots
    double* prev_pnl          # [N] episode PnL at the last observation, ticks x lots
    double* sharpe_a          # [N] EMA of the reward's PnL change
    double* sharpe_b          # [N] EMA of its square
    int64_t* resting          # [N, 2] resting lots per side (0 buy, 1 sell)
    int32_t* n_live           # [N] live orders
    double* queue_ahead       # [N] lots ahead of the best order (-1: none)
    int64_t* queue_id         # [N] the order queue_ahead was walked for (0: none cached)
    int64_t* queue_base       # [N] its book's window base then, ticks
    uint32_t* queue_removals  # [N] its level's removal count then (Level.removals)
    int32_t* best_slot        # [N] arena slot of the order nearest its touch (NO_SLOT: none)
    int64_t* seen_volume      # [N] the account's volume at the last refresh, lots
    int64_t* new_slots        # [2 N] slots given a new order by the last act
    int64_t* new_messages     # [2 N] the index of each one's message
    int64_t n_new
    # per book
    int64_t* next_id          # [n_envs]
    int64_t* episode_step     # [n_envs]
    uint8_t* ending           # [n_envs]
    double* mid               # [n_envs] ticks (the last defined mid when a side is empty)
    double* mid_hist          # [n_envs, return_lag + 1] ring of mids
    int64_t* prev_volume      # [n_envs] lots
    double* flow_signed       # [n_envs] EMA of signed traded lots (tick rule vs the mid)
    double* flow_total        # [n_envs] EMA of traded lots
    float* market             # [n_envs, 4 * depth + MARKET_EXTRA]
    int64_t n_updates         # advance() calls (mid history ring position)


# ---------------------------------------------------------------------------------------
# Book queries
# ---------------------------------------------------------------------------------------

cdef inline int64_t own_touch(const State* s, int32_t e, int side) noexcept nogil:
    """The best price of ``side`` (the opposite best -/+ 1, or the mid, when empty)."""
    cdef const BookState* bs = &s.core.bk[e]
    if side == BUY:
        if bs.best_bid != EMPTY_BID:
            return bs.best_bid
        if bs.best_ask != EMPTY_ASK:
            return bs.best_ask - 1
        return <int64_t>floor(s.mid[e])
    if bs.best_ask != EMPTY_ASK:
        return bs.best_ask
    if bs.best_bid != EMPTY_BID:
        return bs.best_bid + 1
    return <int64_t>ceil(s.mid[e])


cdef inline int64_t passive_price(const State* s, int32_t e, int side,
                                  int64_t offset) noexcept nogil:
    """``offset`` ticks behind the own-side touch, never crossing the opposite best."""
    cdef const BookState* bs = &s.core.bk[e]
    cdef int64_t price = own_touch(s, e, side) - side * offset
    if side == BUY and bs.best_ask != EMPTY_ASK and price >= bs.best_ask:
        price = bs.best_ask - 1
    elif side == SELL and bs.best_bid != EMPTY_BID and price <= bs.best_bid:
        price = bs.best_bid + 1
    if price < 1:
        return 1
    return price if price <= MAX_PRICE else MAX_PRICE


cdef inline Account* account(const State* s, int32_t e, int32_t i) noexcept nogil:
    return &s.core.accounts[<int64_t>e * s.core.n_owners + s.p.first_owner + i]


cdef enum:
    BOOK_AHEAD = 2          # books ahead of the one being acted / observed whose
                            # scattered lines are requested (prefetch_book)
    PREFETCH_AGENTS = 8     # agents per book whose nearest orders it requests (more would
                            # flood the L1 with the lines of books with many agents)


cdef inline void prefetch_book(const State* s, int32_t e) noexcept nogil:
    """Start loading the lines of book ``e`` that the act and observe phases read at
    places the hardware prefetcher cannot guess: the agents' accounts, both sides' level
    bitmaps, the levels at each touch and ``depth`` levels behind it, and the order
    nearest the touch of each of its first ``PREFETCH_AGENTS`` agents (where a queue walk
    starts). With 1,024 books the step's data outgrows this VM's cache (docs/envs.md,
    "Performance"); requesting book ``e + BOOK_AHEAD``'s lines while book ``e`` is worked
    on overlaps their misses. Outputs are unchanged."""
    cdef const Core* c = s.core
    cdef const BookState* bs
    cdef int64_t idx, a
    cdef int32_t i, slot
    if e >= s.p.n_envs:
        return
    bs = &c.bk[e]
    prefetch(account(s, e, 0))
    prefetch(account(s, e, s.p.n_agents - 1))
    prefetch(&c.bits[<int64_t>e * 2 * c.words])
    prefetch(&c.bits[(<int64_t>e * 2 + 1) * c.words])
    idx = bs.best_bid - bs.base
    if 0 <= idx < c.window:
        prefetch(&c.lv[<int64_t>e * c.window + idx])
        if idx >= s.p.depth:
            prefetch(&c.lv[<int64_t>e * c.window + idx - s.p.depth])
    idx = bs.best_ask - bs.base
    if 0 <= idx < c.window:
        prefetch(&c.lv[<int64_t>e * c.window + idx])
        if idx + s.p.depth < c.window:
            prefetch(&c.lv[<int64_t>e * c.window + idx + s.p.depth])
    for i in range(min(s.p.n_agents, PREFETCH_AGENTS)):
        a = <int64_t>e * s.p.n_agents + i
        slot = s.best_slot[a]
        if <uint32_t>slot < <uint32_t>c.capacity:
            prefetch(&c.orders[slot])


cdef void queue_level(State* s, int32_t e, int32_t target) noexcept nogil:
    """Walk the level of arena slot ``target`` once from its head, giving every agent of
    book ``e`` whose nearest order rests there the lots queued ahead of it."""
    cdef const Core* c = s.core
    cdef int64_t price = c.orders[target].price, idx = price - c.bk[e].base, ahead = 0, a
    cdef int32_t slot = target, owner, lo = s.p.first_owner
    if 0 <= idx < c.window:
        slot = c.lv[<int64_t>e * c.window + idx].head
    else:                                   # out of the window: back along its list
        while c.orders[slot].prev != NO_SLOT and c.orders[c.orders[slot].prev].price == price:
            slot = c.orders[slot].prev
    while slot != NO_SLOT and c.orders[slot].price == price:
        owner = c.orders[slot].owner
        if lo <= owner < lo + s.p.n_agents:
            a = <int64_t>e * s.p.n_agents + owner - lo
            if s.best_slot[a] == slot:
                s.queue_ahead[a] = <double>ahead
        ahead += c.orders[slot].qty
        slot = c.orders[slot].next


cdef enum:
    BACKWARD_HOPS = 16      # orders walked back from an agent's order before walking its
                            # whole level instead (which serves every agent queued there)


cdef enum:
    BOOK_GROUP = 64         # books that _step_books takes through every phase together

cdef enum:
    GANG = 8                # queue walks advanced in lockstep (their cache misses overlap)


cdef void queue_walks(State* s, int32_t e) noexcept nogil:
    """Lots queued ahead of the nearest order of every agent of book ``e`` that has one
    and no value yet. An order in the dense window is walked from both ends of its level
    at once: back from the order (the lots ahead) and back from the level's tail (the lots
    behind; then ahead = level lots - behind - the order's own lots); the first walk to end
    gives the exact sum. Agents' orders are young, so the tail is usually a few hops away.
    Out of the window only the walk back from the order. Deep in a queue (``BACKWARD_HOPS``
    orders read, over both walks, without an end), one walk of the whole level (``queue_level``), which
    serves every agent queued there. Up to ``GANG`` agents' walks advance one hop at a
    time together, so that their arena reads are in flight at once; a lane whose value a
    level walk of another lane has set stops there."""
    cdef const Core* c = s.core
    cdef int64_t agent[GANG]
    cdef int64_t price[GANG]
    cdef int64_t ahead[GANG]
    cdef int64_t behind[GANG]
    cdef int64_t level_qty[GANG]
    cdef int32_t back[GANG]
    cdef int32_t front[GANG]         # tail walk cursor (NO_SLOT: out of the window)
    cdef int32_t hops[GANG]
    cdef int32_t i = 0, g, n, live, cur, target
    cdef int64_t a, idx
    cdef const Level* lv
    while i < s.p.n_agents:
        n = 0
        while i < s.p.n_agents and n < GANG:
            a = <int64_t>e * s.p.n_agents + i
            i += 1
            if s.best_slot[a] == NO_SLOT or s.queue_ahead[a] >= 0.0:
                continue
            target = s.best_slot[a]
            agent[n] = a
            price[n] = c.orders[target].price
            back[n] = c.orders[target].prev
            ahead[n] = 0
            behind[n] = 0
            hops[n] = 0
            front[n] = NO_SLOT
            idx = price[n] - c.bk[e].base
            if 0 <= idx < c.window:
                lv = &c.lv[<int64_t>e * c.window + idx]
                front[n] = lv.tail
                level_qty[n] = lv.qty - c.orders[target].qty
            n += 1
        live = n
        while live > 0:
            for g in range(n):
                if hops[g] < 0:                 # finished
                    continue
                target = s.best_slot[agent[g]]
                cur = back[g]
                if s.queue_ahead[agent[g]] >= 0.0:    # another lane walked its level
                    pass
                elif front[g] == target:
                    s.queue_ahead[agent[g]] = <double>(level_qty[g] - behind[g])
                elif cur == NO_SLOT or c.orders[cur].price != price[g]:
                    s.queue_ahead[agent[g]] = <double>ahead[g]
                elif hops[g] == (BACKWARD_HOPS if front[g] == NO_SLOT else BACKWARD_HOPS // 2):
                    queue_level(s, e, target)
                else:
                    ahead[g] += c.orders[cur].qty
                    back[g] = c.orders[cur].prev
                    if front[g] != NO_SLOT:
                        behind[g] += c.orders[front[g]].qty
                        front[g] = c.orders[front[g]].prev
                    hops[g] += 1
                    continue
                hops[g] = -1
                live -= 1


cdef void refresh(State* s, int32_t e) noexcept nogil:
    """Bring the agents' slots of book ``e`` up to date (finished orders dropped, leaves
    read) and compute per agent: resting lots per side, live orders, and the lots queued
    ahead of the order nearest its touch. The arena is read only for new orders and for
    agents whose account traded since the last refresh; the rest is cached, and so is the
    queue ahead while the order's level has lost no order (``Level.removals``). (Sums are
    kept in locals: stores through the state's arrays could alias it, which would make
    the compiler reload every field after each store.)"""
    cdef const Core* c = s.core
    cdef const Order* orders = c.orders
    cdef int64_t best_bid = c.bk[e].best_bid, best_ask = c.bk[e].best_ask
    cdef bint stp = c.bk[e].stp != 0
    cdef int32_t n_agents = s.p.n_agents, n_slots = s.p.n_slots
    cdef const Account* acc = account(s, e, 0)
    cdef int64_t* slot_id
    cdef int32_t* slot_arena
    cdef int64_t* slot_price
    cdef int64_t* slot_leaves
    cdef int8_t* slot_side
    cdef int64_t a, distance, best_distance, buy_lots, sell_lots, volume, best_id, idx
    cdef int64_t best_price = 0, base = c.bk[e].base
    cdef int32_t i, j, slot, best, live
    cdef uint32_t removals
    cdef bint trust
    cdef const Order* o
    for i in range(n_agents):
        a = <int64_t>e * n_agents + i
        slot_id = &s.slot_id[a * n_slots]
        slot_arena = &s.slot_arena[a * n_slots]
        slot_price = &s.slot_price[a * n_slots]
        slot_leaves = &s.slot_leaves[a * n_slots]
        slot_side = &s.slot_side[a * n_slots]
        volume = acc[i].volume
        trust = volume == s.seen_volume[a] and not stp   # no order of it can have traded
        buy_lots = 0
        sell_lots = 0
        live = 0
        best = NO_SLOT
        best_id = 0
        best_distance = MAX_PRICE
        for j in range(n_slots):
            if slot_id[j] == 0:
                continue
            slot = slot_arena[j]
            if slot == NO_SLOT or not trust:
                if slot == NO_SLOT:
                    slot = find_order(c, e, slot_id[j])
                    slot_arena[j] = slot
                elif orders[slot].order_id != slot_id[j] or orders[slot].book != e:
                    slot = NO_SLOT              # finished; the arena slot was reused
                if slot == NO_SLOT or orders[slot].state != RESTING:
                    slot_id[j] = 0
                    continue
                o = &orders[slot]
                slot_price[j] = o.price
                slot_leaves[j] = o.qty
                slot_side[j] = o.side
            live += 1
            if slot_side[j] == BUY:
                buy_lots += slot_leaves[j]
                distance = best_bid - slot_price[j]
            else:
                sell_lots += slot_leaves[j]
                distance = slot_price[j] - best_ask
            if distance < best_distance:
                best_distance = distance
                best = slot
                best_id = slot_id[j]
                best_price = slot_price[j]
        s.resting[2 * a] = buy_lots
        s.resting[2 * a + 1] = sell_lots
        s.n_live[a] = live
        s.best_slot[a] = best
        s.seen_volume[a] = volume
        # The lots ahead of an order only shrink, and only when an order of its level is
        # taken off or reduced (or the window recentred): a count in the level tells.
        idx = best_price - base
        if best == NO_SLOT or not 0 <= idx < c.window:
            s.queue_id[a] = 0                       # nothing cached out of the window
            s.queue_ahead[a] = -1.0
            continue
        removals = c.lv[<int64_t>e * c.window + idx].removals
        if (s.queue_id[a] != best_id or s.queue_base[a] != base
                or s.queue_removals[a] != removals):
            s.queue_id[a] = best_id
            s.queue_base[a] = base
            s.queue_removals[a] = removals
            s.queue_ahead[a] = -1.0                 # walked by queue_walks below
    queue_walks(s, e)


# ---------------------------------------------------------------------------------------
# Actions -> messages
# ---------------------------------------------------------------------------------------

cdef inline Message* new_message(State* s, int64_t* n, int32_t e, int32_t i, int op,
                                 int64_t timestamp) noexcept nogil:
    """The next message of the batch, every field set. Written field by field into the
    zeroed buffer, never as a whole struct copied from a local, whose padding bytes
    (uninitialised) would make equal batches differ in their bytes."""
    cdef Message* m = &s.messages[n[0]]
    s.known[n[0]] = NO_SLOT
    n[0] += 1
    m.timestamp = timestamp
    m.order_id = 0
    m.new_order_id = 0
    m.price = 0
    m.stop_price = 0
    m.qty = 0
    m.book = e
    m.owner = s.p.first_owner + i
    m.op = op
    m.side = 0
    m.tif = GTC
    return m


cdef inline void cancel_slot(State* s, int64_t* n, int32_t e, int32_t i, int64_t k,
                             int64_t timestamp) noexcept nogil:
    cdef Message* m
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    if s.slot_id[k] == 0:
        return
    m = new_message(s, n, e, i, CANCEL, timestamp)
    m.order_id = s.slot_id[k]
    s.known[n[0] - 1] = s.slot_arena[k]
    s.resting[2 * a + (s.slot_side[k] == SELL)] -= s.slot_leaves[k]
    s.slot_id[k] = 0


cdef inline void cancel_all(State* s, int64_t* n, int32_t e, int32_t i,
                            int64_t timestamp) noexcept nogil:
    cdef int64_t k, first = (<int64_t>e * s.p.n_agents + i) * s.p.n_slots
    for k in range(first, first + s.p.n_slots):
        cancel_slot(s, n, e, i, k, timestamp)


cdef inline void market_order(State* s, int64_t* n, int32_t e, int32_t i, int side,
                              int64_t qty, int64_t timestamp) noexcept nogil:
    """An IOC market order of ``qty`` lots (nothing when ``qty <= 0``)."""
    cdef Message* m
    if qty <= 0:
        return
    m = new_message(s, n, e, i, MARKET, timestamp)
    m.order_id = s.p.id_base + s.next_id[e]
    s.next_id[e] += 1
    m.side = side
    m.qty = qty
    m.tif = IOC


cdef inline int64_t allowed(const State* s, int32_t e, int32_t i, int side) noexcept nogil:
    """Lots the agent may still buy (side BUY) or sell within its position limit, counting
    its resting orders of that side."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int64_t position = account(s, e, i).position - s.base_position[a]
    return s.position_limit[a] - side * position - s.resting[2 * a + (side == SELL)]


cdef inline int64_t capped(int64_t want, int64_t room) noexcept nogil:
    return want if want < room else room


cdef void act_discrete(State* s, int64_t* n, int32_t e, int32_t i, int64_t action,
                       int64_t timestamp) noexcept nogil:
    cdef int32_t n_off = s.p.n_offsets, n_slots = s.p.n_slots, j
    cdef int64_t a = <int64_t>e * s.p.n_agents + i, first = a * n_slots, k = -1, qty, room
    cdef int side
    cdef Message* m
    if action == 0:
        return
    if action <= 2 * n_off:                                   # limit order
        side = BUY if action <= n_off else SELL
        for j in range(n_slots):                              # a free slot, else the next
            if s.slot_id[first + j] == 0:
                k = first + j
                break
        if k < 0:
            k = first + s.slot_next[a]
            s.slot_next[a] = (s.slot_next[a] + 1) % n_slots
        room = allowed(s, e, i, side)
        if s.slot_id[k] != 0 and s.slot_side[k] == side:     # its lots are freed first
            room += s.slot_leaves[k]
        qty = capped(s.order_qty[a], room)
        if qty <= 0:
            return
        cancel_slot(s, n, e, i, k, timestamp)
        m = new_message(s, n, e, i, LIMIT, timestamp)
        m.order_id = s.p.id_base + s.next_id[e]
        s.next_id[e] += 1
        m.side = side
        m.price = passive_price(s, e, side, s.p.limit_offsets[(action - 1) % n_off])
        m.qty = qty
        s.slot_id[k] = m.order_id
        s.slot_arena[k] = NO_SLOT
        s.slot_side[k] = side
        s.slot_price[k] = m.price
        s.slot_leaves[k] = qty
        s.resting[2 * a + (side == SELL)] += qty
        s.new_slots[s.n_new] = k
        s.new_messages[s.n_new] = n[0] - 1
        s.n_new += 1
    elif action <= 2 * n_off + 2:                             # market order
        side = BUY if action == 2 * n_off + 1 else SELL
        market_order(s, n, e, i, side, capped(s.order_qty[a], allowed(s, e, i, side)),
                     timestamp)
    else:
        cancel_all(s, n, e, i, timestamp)


cdef void quote(State* s, int64_t* n, int32_t e, int32_t i, int side, int64_t index,
                int64_t size, int64_t timestamp) noexcept nogil:
    """Keep, move (REPLACE) or withdraw the agent's quote of one side (slot 0 bid, 1 ask)."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int64_t k = a * s.p.n_slots + (side == SELL)
    cdef int64_t qty, price, new_id, held = s.slot_leaves[k] if s.slot_id[k] != 0 else 0
    cdef Message* m
    if index == s.p.n_quotes:
        cancel_slot(s, n, e, i, k, timestamp)
        return
    qty = capped(size, allowed(s, e, i, side) + held)
    if qty <= 0:
        cancel_slot(s, n, e, i, k, timestamp)
        return
    price = passive_price(s, e, side, s.p.quote_offsets[index])
    if s.slot_id[k] != 0 and s.slot_price[k] == price and held <= qty:
        return                                                # keeps its queue position
    new_id = s.p.id_base + s.next_id[e]
    s.next_id[e] += 1
    if s.slot_id[k] != 0:                                     # cancel + new order
        m = new_message(s, n, e, i, REPLACE, timestamp)
        m.order_id = s.slot_id[k]
        m.new_order_id = new_id
        s.known[n[0] - 1] = s.slot_arena[k]
    else:
        m = new_message(s, n, e, i, LIMIT, timestamp)
        m.order_id = new_id
    m.side = side
    m.price = price
    m.qty = qty
    s.slot_id[k] = new_id
    s.slot_arena[k] = NO_SLOT
    s.new_slots[s.n_new] = k
    s.new_messages[s.n_new] = n[0] - 1
    s.n_new += 1
    s.slot_side[k] = side
    s.slot_price[k] = price
    s.resting[2 * a + (side == SELL)] += qty - held
    s.slot_leaves[k] = qty


cdef void act_book(State* s, int64_t* n, int32_t e, int64_t timestamp) noexcept nogil:
    """The messages of book ``e``'s agents, appended at ``n``."""
    cdef int64_t a, size
    cdef const int64_t* act
    cdef int32_t i
    for i in range(s.p.n_agents):             # slots are as the last observe left them
        a = <int64_t>e * s.p.n_agents + i
        if s.p.action_mode == DISCRETE:
            act_discrete(s, n, e, i, s.actions[a], timestamp)
        else:
            act = &s.actions[3 * a]
            size = <int64_t>floor(s.p.quote_sizes[act[2]] * s.order_qty[a] + 0.5)
            size = size if size > 1 else 1
            quote(s, n, e, i, BUY, act[0], size, timestamp)
            quote(s, n, e, i, SELL, act[1], size, timestamp)


cdef int64_t act_all(State* s, int64_t timestamp) noexcept nogil:
    cdef int64_t n = 0
    cdef int32_t e
    s.n_new = 0
    for e in range(s.p.n_envs):
        act_book(s, &n, e, timestamp)
    return n


cdef void locate(State* s) noexcept nogil:
    """The arena slots of the last act's new orders, right after the core processed them:
    where the core says each came to rest, if it still holds the order (a live order
    never moves; one that did not rest, or was filled since, frees its agent slot)."""
    cdef const Core* c = s.core
    cdef int64_t j, k
    cdef int32_t e, slot
    for j in range(s.n_new):
        k = s.new_slots[j]
        if s.slot_id[k] == 0 or s.slot_arena[k] != NO_SLOT:
            continue
        e = <int32_t>(k // (<int64_t>s.p.n_agents * s.p.n_slots))
        slot = s.known[s.new_messages[j]]
        if slot != NO_SLOT and (c.orders[slot].order_id != s.slot_id[k]
                                or c.orders[slot].book != e
                                or c.orders[slot].state != RESTING):
            slot = NO_SLOT
        s.slot_arena[k] = slot
        if slot == NO_SLOT:
            s.slot_id[k] = 0
    s.n_new = 0


cdef void cancel_book(State* s, int64_t* n, int32_t e, int64_t timestamp) noexcept nogil:
    """Cancels of every order of book ``e``'s agents, appended at ``n``."""
    cdef int32_t i
    refresh(s, e)
    for i in range(s.p.n_agents):
        cancel_all(s, n, e, i, timestamp)


cdef int64_t cancel_ending(State* s, int64_t timestamp, bint every) noexcept nogil:
    """Cancel every order of the agents of ending books (all books if ``every``)."""
    cdef int64_t n = 0
    cdef int32_t e
    for e in range(s.p.n_envs):
        if every or s.ending[e]:
            cancel_book(s, &n, e, timestamp)
    return n


cdef void flatten_book(State* s, int64_t* n, int32_t e, int64_t timestamp) noexcept nogil:
    """Market orders that flatten the episode position of book ``e``'s agents."""
    cdef int64_t position, a
    cdef int32_t i
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        position = account(s, e, i).position - s.base_position[a]
        market_order(s, n, e, i, SELL if position > 0 else BUY,
                     position if position > 0 else -position, timestamp)


cdef int64_t close_positions(State* s, int64_t timestamp) noexcept nogil:
    """Ending books: every agent cancels its orders and sends a market order for its
    episode position."""
    cdef int64_t n = cancel_ending(s, timestamp, False)
    cdef int32_t e
    for e in range(s.p.n_envs):
        if s.ending[e]:
            flatten_book(s, &n, e, timestamp)
    return n


# ---------------------------------------------------------------------------------------
# Market features, observations, rewards
# ---------------------------------------------------------------------------------------

cdef inline double book_mid(const State* s, int32_t e) noexcept nogil:
    cdef const BookState* bs = &s.core.bk[e]
    if bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK:
        return 0.5 * (bs.best_bid + bs.best_ask)
    if s.mid[e] == s.mid[e]:                  # not NaN: keep the last defined mid
        return s.mid[e]
    return <double>bs.last_price


cdef void advance(State* s) noexcept nogil:
    """Once per step after the market moved: mid history, trade-flow imbalance, clock."""
    cdef int32_t e
    s.n_updates += 1
    for e in range(s.p.n_envs):
        advance_book(s, e)


cdef void advance_book(State* s, int32_t e) noexcept nogil:
    """``advance`` of book ``e`` (after ``n_updates`` counted the step)."""
    cdef int64_t lag = s.p.return_lag + 1, dv
    cdef double mid, sign
    cdef const BookState* bs
    bs = &s.core.bk[e]
    mid = book_mid(s, e)
    dv = bs.volume - s.prev_volume[e]
    sign = 0.0
    if dv > 0 and s.mid[e] == s.mid[e]:
        sign = 1.0 if bs.last_price > s.mid[e] else (-1.0 if bs.last_price < s.mid[e] else 0.0)
    s.flow_signed[e] += s.p.flow_alpha * (sign * dv - s.flow_signed[e])
    s.flow_total[e] += s.p.flow_alpha * (dv - s.flow_total[e])
    s.prev_volume[e] = bs.volume
    s.mid[e] = mid
    s.mid_hist[e * lag + s.n_updates % lag] = mid
    s.episode_step[e] += 1
    s.ending[e] = s.episode_step[e] >= s.p.horizon


cdef void top_levels(const State* s, int32_t e, int side, int64_t start, double mid,
                     float* prices, float* sizes) noexcept nogil:
    """The first ``depth`` non-empty levels of ``side`` from ``start`` (its best price)
    away from the touch, within ``scan_ticks`` ticks of it and at prices >= 1: price
    relative to ``mid`` and lots / ``qty_scale`` into ``prices[n]`` and ``sizes[n]``.
    The side's level bitmap gives each one bit-scan. Out-of-window levels are not
    searched."""
    cdef const Core* c = s.core
    cdef const Level* lv = &c.lv[<int64_t>e * c.window]
    cdef int64_t base = c.bk[e].base, i = start - base, stop, word, j
    cdef const uint64_t* bits = c.bits + (<int64_t>e * 2 + (side == SELL)) * c.words
    cdef uint64_t m
    cdef int32_t n = 0
    if i < 0 or i >= c.window:
        return
    if side == BUY:                         # downwards: i, i - 1, ... >= stop
        stop = i - s.p.scan_ticks
        if stop < 1 - base:
            stop = 1 - base
        if stop < 0:
            stop = 0
        word = i >> 6
        m = bits[word] & (((<uint64_t>2) << (i & 63)) - 1)
        while n < s.p.depth:
            if m == 0:
                word -= 1
                if word < 0 or (word << 6) + 63 < stop:
                    break
                m = bits[word]
                continue
            j = (word << 6) + 63 - __builtin_clzll(m)
            if j < stop:
                break
            prices[n] = <float>(base + j - mid)
            sizes[n] = <float>(lv[j].qty / s.p.qty_scale)
            n += 1
            m &= ~((<uint64_t>1) << (j & 63))
    else:                                   # upwards: i, i + 1, ... <= stop
        stop = i + s.p.scan_ticks
        if stop > c.window - 1:
            stop = c.window - 1
        word = i >> 6
        m = bits[word] & ((~(<uint64_t>0)) << (i & 63))
        while n < s.p.depth:
            if m == 0:
                word += 1
                if word >= c.words or (word << 6) > stop:
                    break
                m = bits[word]
                continue
            j = (word << 6) + __builtin_ctzll(m)
            if j > stop:
                break
            prices[n] = <float>(base + j - mid)
            sizes[n] = <float>(lv[j].qty / s.p.qty_scale)
            n += 1
            m &= m - 1


cdef void market_features(State* s, int32_t e) noexcept nogil:
    """The book's part of the observation: top levels, spread, returns, imbalance."""
    cdef const Core* c = s.core
    cdef const BookState* bs = &c.bk[e]
    cdef int32_t K = s.p.depth
    cdef int64_t lag = s.p.return_lag + 1
    cdef double mid = book_mid(s, e)
    cdef float* out = &s.market[<int64_t>e * (4 * K + MARKET_EXTRA)]
    s.mid[e] = mid
    memset(out, 0, (4 * K + MARKET_EXTRA) * sizeof(float))
    if bs.best_bid != EMPTY_BID:
        top_levels(s, e, BUY, bs.best_bid, mid, out, out + K)
    if bs.best_ask != EMPTY_ASK:
        top_levels(s, e, SELL, bs.best_ask, mid, out + 2 * K, out + 3 * K)
    if bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK:
        out[4 * K] = <float>(bs.best_ask - bs.best_bid)
    if s.n_updates >= 1:
        out[4 * K + 1] = <float>(mid - s.mid_hist[e * lag + (s.n_updates - 1) % lag])
    if s.n_updates >= lag - 1:
        out[4 * K + 2] = <float>(mid - s.mid_hist[e * lag + (s.n_updates + 1) % lag])
    if s.flow_total[e] > 0.0:
        out[4 * K + 3] = <float>(s.flow_signed[e] / s.flow_total[e])


cdef void observe_book(State* s, int32_t e, float* obs, bint reward) noexcept nogil:
    """Observation rows of book ``e``'s agents into ``obs``; rewards when ``reward``."""
    cdef int32_t K = s.p.depth, i, j, mlen = 4 * K + MARKET_EXTRA
    cdef int64_t a, position
    cdef double pnl, delta, r, da, db, var
    cdef const Account* acc
    cdef float* row
    cdef const float* market = &s.market[<int64_t>e * mlen]
    cdef double mark = s.mid[e]
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        acc = account(s, e, i)
        position = acc.position - s.base_position[a]
        pnl = <double>(acc.cash - s.base_cash[a]) + position * mark
        row = &obs[a * s.p.obs_dim]
        for j in range(mlen):           # ~100 bytes: cheaper than a call to memcpy
            row[j] = market[j]
        row[mlen] = <float>(<double>position / s.position_limit[a])
        row[mlen + 1] = <float>(1.0 + (acc.cash - s.base_cash[a]) / s.capital[a])
        row[mlen + 2] = <float>(pnl / s.capital[a])
        row[mlen + 3] = <float>(<double>s.n_live[a] / s.p.n_slots)
        row[mlen + 4] = <float>(s.queue_ahead[a] / s.p.qty_scale if s.queue_ahead[a] >= 0
                                else -1.0)
        row[mlen + 5] = <float>(<double>(s.p.horizon - s.episode_step[e]) / s.p.horizon)
        row[mlen + 6] = <float>s.log_size[a]
        if not reward:
            s.prev_pnl[a] = pnl
            continue
        delta = (pnl - s.prev_pnl[a]) / s.order_qty[a]
        s.prev_pnl[a] = pnl
        if s.p.reward_kind == PNL:
            r = delta
        elif s.p.reward_kind == PNL_INVENTORY:
            r = delta - s.p.inventory_penalty * (position if position >= 0 else -position) \
                / s.order_qty[a]
        else:
            da = delta - s.sharpe_a[a]
            db = delta * delta - s.sharpe_b[a]
            var = s.sharpe_b[a] - s.sharpe_a[a] * s.sharpe_a[a]
            r = (s.sharpe_b[a] * da - 0.5 * s.sharpe_a[a] * db) / (var * sqrt(var)) \
                if var > 1e-12 else 0.0
            s.sharpe_a[a] += s.p.sharpe_eta * da
            s.sharpe_b[a] += s.p.sharpe_eta * db
        s.rewards[a] = <float>r


cdef int32_t observe_all(State* s, bint truncate) noexcept nogil:
    """Observations, rewards and done flags of every agent; ending books' rows also go to
    the final observations. ``truncate`` ends every book (the data ran out). Returns the
    number of ending books."""
    cdef int32_t e, ended = 0
    for e in range(s.p.n_envs):
        if truncate:
            s.ending[e] = 1
        ended += finish_book(s, e, truncate)
    return ended


cdef int32_t finish_book(State* s, int32_t e, bint truncate) noexcept nogil:
    """``observe_all`` of book ``e``; returns 1 when it is ending."""
    cdef int64_t first = <int64_t>e * s.p.n_agents, rows = s.p.n_agents
    refresh(s, e)
    market_features(s, e)
    observe_book(s, e, s.obs, True)
    memset(&s.terminated[first], s.ending[e] and not truncate, rows)
    memset(&s.truncated[first], truncate, rows)
    if not s.ending[e]:
        return 0
    memcpy(&s.final_obs[first * s.p.obs_dim], &s.obs[first * s.p.obs_dim],
           rows * s.p.obs_dim * sizeof(float))
    return 1


cdef void begin_episodes(State* s, bint every) noexcept nogil:
    """New episodes for ending books (all if ``every``), after their orders were
    cancelled: baselines from the accounts, fresh first observations."""
    cdef int32_t e
    for e in range(s.p.n_envs):
        if every or s.ending[e]:
            begin_book(s, e)


cdef void begin_book(State* s, int32_t e) noexcept nogil:
    """``begin_episodes`` of book ``e``."""
    cdef int32_t i
    cdef int64_t a
    cdef const Account* acc
    s.episode_step[e] = 0
    s.ending[e] = 0
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        acc = account(s, e, i)
        s.base_position[a] = acc.position
        s.base_cash[a] = acc.cash
        s.sharpe_a[a] = 0.0
        s.sharpe_b[a] = 0.0
        s.slot_next[a] = 0
    refresh(s, e)
    market_features(s, e)
    observe_book(s, e, s.obs, False)


# ---------------------------------------------------------------------------------------
# Python-facing class
# ---------------------------------------------------------------------------------------

cdef object _bound(object a, object dtype, tuple shape, str name):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape \
            or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous {np.dtype(dtype)} array "
                         f"of shape {shape}")
    return a


cdef object _copy(object a, object dtype, int64_t n, str name):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a.copy()


def copy_actions(cnp.ndarray src, cnp.ndarray out, cnp.ndarray high):
    """Copy int64 actions ``src`` into ``out`` (both C-contiguous, shape ``(N,)`` or
    ``(N, d)``) if every value of column ``j`` lies in ``[0, high[j])``; returns -1, or
    the first row with a value outside (then ``out`` is left as it was). One pass, no
    temporaries: the fast path of ``rltrader.envs.batched.write_actions``."""
    cdef int64_t n = cnp.PyArray_DIM(out, 0), d = cnp.PyArray_SIZE(high), i, j
    cdef const int64_t* a
    cdef const int64_t* h
    cdef int64_t* o
    cdef int64_t bad = -1
    if (src.dtype != np.int64 or out.dtype != np.int64 or high.dtype != np.int64
            or not src.flags.c_contiguous or not out.flags.c_contiguous
            or not high.flags.c_contiguous or not out.flags.writeable
            or cnp.PyArray_SIZE(src) != n * d or cnp.PyArray_SIZE(out) != n * d):
        raise ValueError("copy_actions needs C-contiguous int64 arrays, src and out of "
                         "N x len(high) values")
    a = <const int64_t*>cnp.PyArray_DATA(src)
    h = <const int64_t*>cnp.PyArray_DATA(high)
    o = <int64_t*>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            for j in range(d):
                if <uint64_t>a[i * d + j] >= <uint64_t>h[j]:
                    bad = i
                    break
            if bad >= 0:
                break
        if bad < 0:
            memcpy(o, a, n * d * sizeof(int64_t))
    return bad


cdef class EnvKernel:
    """The per-step phases of the batched environment over one ``Books`` (module docstring).

    Built by :class:`rltrader.envs.batched.BatchedMarketEnv`, which validates the
    configuration and owns the buffers.

    Parameters
    ----------
    books : Books
        The core; books ``[0, n_envs)``, agents are owners ``first_owner + i``.
    order_qty, position_limit : int64 arrays, shape (n_envs * n_agents,)
        Lots per order and the bound on |episode position|, per agent.
    capital, size_class : float64 arrays, shape (n_envs * n_agents,)
    actions : int64 array (N,) (DISCRETE) or (N, 3) (MARKET_MAKING)
    obs, final_obs : float32 arrays (N, obs_dim)
    rewards : float32 array (N,)
    terminated, truncated : bool arrays (N,)
    n_envs, n_agents, first_owner, depth, n_slots, return_lag, scan_ticks, horizon, id_base : int
        Keyword-only, as the fields of ``Params`` (see the ``.pyx``); so are the rest.
    action_mode : ActionMode
    reward_kind : RewardKind
    liquidate : bool
        Flatten the agents' positions at the episode end (else mark them at the mid).
    qty_scale, inventory_penalty, sharpe_eta, flow_alpha : float
    limit_offsets, quote_offsets : sequence of int
        Ticks, 1 to 8 values each.
    quote_sizes : sequence of float
        Multiples of the order size, 1 to 8 values.
    """

    cdef State s
    cdef readonly Books books
    cdef readonly object buffers
    cdef readonly object messages
    cdef object known
    cdef readonly object events
    cdef readonly object agent_arrays
    cdef readonly object book_arrays

    def __init__(self, Books books, order_qty, position_limit, capital, size_class, actions,
                 obs, rewards, terminated, truncated, final_obs, *, n_envs, n_agents,
                 first_owner, depth, n_slots, action_mode, reward_kind, bint liquidate,
                 return_lag, scan_ticks, horizon, id_base, double qty_scale,
                 double inventory_penalty, double sharpe_eta, double flow_alpha,
                 limit_offsets, quote_offsets, quote_sizes):
        cdef Params* p = &self.s.p
        cdef int64_t n, j
        # operator.index: a C int argument would silently truncate 2.5 to 2
        p.n_envs = index(n_envs)
        p.n_agents = index(n_agents)
        p.first_owner = index(first_owner)
        p.depth = index(depth)
        p.n_slots = index(n_slots)
        p.action_mode = index(action_mode)
        p.reward_kind = index(reward_kind)
        p.liquidate = liquidate
        p.return_lag = index(return_lag)
        p.scan_ticks = index(scan_ticks)
        p.horizon = index(horizon)
        p.id_base = index(id_base)
        p.qty_scale = qty_scale
        p.inventory_penalty = inventory_penalty
        p.sharpe_eta = sharpe_eta
        p.flow_alpha = flow_alpha
        p.obs_dim = 4 * p.depth + MARKET_EXTRA + AGENT_FEATURES
        if p.n_envs > books.core.n_books:
            raise ValueError(f"books has {books.core.n_books} books, fewer than n_envs="
                             f"{p.n_envs}")
        if p.first_owner + p.n_agents > books.core.n_owners:
            raise ValueError(f"books has {books.core.n_owners} owners per book; agents need "
                             f"[{p.first_owner}, {p.first_owner + p.n_agents})")
        if p.n_slots < 2 or p.depth < 1 or p.horizon < 1 or p.return_lag < 1:
            raise ValueError("n_slots >= 2, depth >= 1, horizon >= 1, return_lag >= 1 needed")
        for name, values in (("limit_offsets", limit_offsets), ("quote_offsets", quote_offsets),
                             ("quote_sizes", quote_sizes)):
            if not 1 <= len(values) <= MAX_OFFSETS:
                raise ValueError(f"{name} must hold 1 to {MAX_OFFSETS} values")
        p.n_offsets = len(limit_offsets)
        p.n_quotes = len(quote_offsets)
        p.n_sizes = len(quote_sizes)
        for j in range(p.n_offsets):
            p.limit_offsets[j] = index(limit_offsets[j])
        for j in range(p.n_quotes):
            p.quote_offsets[j] = index(quote_offsets[j])
        for j in range(p.n_sizes):
            p.quote_sizes[j] = quote_sizes[j]
        n = <int64_t>p.n_envs * p.n_agents
        a_shape = (int(n),) if p.action_mode == DISCRETE else (int(n), 3)
        self.buffers = dict(
            actions=_bound(actions, np.int64, a_shape, "actions"),
            obs=_bound(obs, np.float32, (n, p.obs_dim), "obs"),
            rewards=_bound(rewards, np.float32, (n,), "rewards"),
            terminated=_bound(terminated, np.bool_, (n,), "terminated"),
            truncated=_bound(truncated, np.bool_, (n,), "truncated"),
            final_obs=_bound(final_obs, np.float32, (n, p.obs_dim), "final_obs"),
        )
        self.agent_arrays = dict(
            order_qty=_copy(order_qty, np.int64, n, "order_qty"),
            position_limit=_copy(position_limit, np.int64, n, "position_limit"),
            capital=_copy(capital, np.float64, n, "capital"),
            log_size=np.log(_copy(size_class, np.float64, n, "size_class")),
            slot_id=np.zeros((n, p.n_slots), dtype=np.int64),
            slot_arena=np.full((n, p.n_slots), NO_SLOT, dtype=np.int32),
            slot_price=np.zeros((n, p.n_slots), dtype=np.int64),
            slot_leaves=np.zeros((n, p.n_slots), dtype=np.int64),
            slot_side=np.zeros((n, p.n_slots), dtype=np.int8),
            slot_next=np.zeros(n, dtype=np.int32),
            base_position=np.zeros(n, dtype=np.int64),
            base_cash=np.zeros(n, dtype=np.int64),
            prev_pnl=np.zeros(n),
            sharpe_a=np.zeros(n),
            sharpe_b=np.zeros(n),
            resting=np.zeros((n, 2), dtype=np.int64),
            n_live=np.zeros(n, dtype=np.int32),
            queue_ahead=np.zeros(n),
            queue_id=np.zeros(n, dtype=np.int64),
            queue_base=np.zeros(n, dtype=np.int64),
            queue_removals=np.zeros(n, dtype=np.uint32),
            best_slot=np.zeros(n, dtype=np.int32),
            seen_volume=np.zeros(n, dtype=np.int64),
            new_slots=np.zeros(2 * n, dtype=np.int64),
            new_messages=np.zeros(2 * n, dtype=np.int64),
        )
        ag = self.agent_arrays
        if np.any(ag["order_qty"] < 1) or np.any(ag["position_limit"] < 1) \
                or not np.all(ag["capital"] > 0) or not np.all(np.isfinite(ag["log_size"])):
            raise ValueError("order_qty, position_limit >= 1 and capital, size_class > 0 needed")
        self.book_arrays = dict(
            next_id=np.zeros(p.n_envs, dtype=np.int64),
            episode_step=np.zeros(p.n_envs, dtype=np.int64),
            ending=np.zeros(p.n_envs, dtype=np.uint8),
            mid=np.full(p.n_envs, np.nan),
            mid_hist=np.zeros((p.n_envs, p.return_lag + 1)),
            prev_volume=np.zeros(p.n_envs, dtype=np.int64),
            flow_signed=np.zeros(p.n_envs),
            flow_total=np.zeros(p.n_envs),
            market=np.zeros((p.n_envs, 4 * p.depth + MARKET_EXTRA), dtype=np.float32),
        )
        self.messages = np.zeros(n * (p.n_slots + MESSAGES_PER_AGENT_EXTRA) + 1,
                                 dtype=MESSAGE_DTYPE)
        self.known = np.full(self.messages.shape[0], NO_SLOT, dtype=np.int32)
        self.events = np.zeros(max(4096, 4 * self.messages.shape[0]), dtype=EVENT_DTYPE)
        self._bind(books)

    cdef _bind(self, Books books):
        cdef State* s = &self.s
        b, ag, bk = self.buffers, self.agent_arrays, self.book_arrays
        self.books = books
        s.core = &books.core
        s.actions = <const int64_t*>cnp.PyArray_DATA(b["actions"])
        s.obs = <float*>cnp.PyArray_DATA(b["obs"])
        s.rewards = <float*>cnp.PyArray_DATA(b["rewards"])
        s.terminated = <uint8_t*>cnp.PyArray_DATA(b["terminated"])
        s.truncated = <uint8_t*>cnp.PyArray_DATA(b["truncated"])
        s.final_obs = <float*>cnp.PyArray_DATA(b["final_obs"])
        s.messages = <Message*>cnp.PyArray_DATA(self.messages)
        s.known = <int32_t*>cnp.PyArray_DATA(self.known)
        s.order_qty = <int64_t*>cnp.PyArray_DATA(ag["order_qty"])
        s.position_limit = <int64_t*>cnp.PyArray_DATA(ag["position_limit"])
        s.capital = <double*>cnp.PyArray_DATA(ag["capital"])
        s.log_size = <double*>cnp.PyArray_DATA(ag["log_size"])
        s.slot_id = <int64_t*>cnp.PyArray_DATA(ag["slot_id"])
        s.slot_arena = <int32_t*>cnp.PyArray_DATA(ag["slot_arena"])
        s.slot_price = <int64_t*>cnp.PyArray_DATA(ag["slot_price"])
        s.slot_leaves = <int64_t*>cnp.PyArray_DATA(ag["slot_leaves"])
        s.slot_side = <int8_t*>cnp.PyArray_DATA(ag["slot_side"])
        s.slot_next = <int32_t*>cnp.PyArray_DATA(ag["slot_next"])
        s.base_position = <int64_t*>cnp.PyArray_DATA(ag["base_position"])
        s.base_cash = <int64_t*>cnp.PyArray_DATA(ag["base_cash"])
        s.prev_pnl = <double*>cnp.PyArray_DATA(ag["prev_pnl"])
        s.sharpe_a = <double*>cnp.PyArray_DATA(ag["sharpe_a"])
        s.sharpe_b = <double*>cnp.PyArray_DATA(ag["sharpe_b"])
        s.resting = <int64_t*>cnp.PyArray_DATA(ag["resting"])
        s.n_live = <int32_t*>cnp.PyArray_DATA(ag["n_live"])
        s.queue_ahead = <double*>cnp.PyArray_DATA(ag["queue_ahead"])
        s.queue_id = <int64_t*>cnp.PyArray_DATA(ag["queue_id"])
        s.queue_base = <int64_t*>cnp.PyArray_DATA(ag["queue_base"])
        s.queue_removals = <uint32_t*>cnp.PyArray_DATA(ag["queue_removals"])
        s.best_slot = <int32_t*>cnp.PyArray_DATA(ag["best_slot"])
        s.seen_volume = <int64_t*>cnp.PyArray_DATA(ag["seen_volume"])
        s.new_slots = <int64_t*>cnp.PyArray_DATA(ag["new_slots"])
        s.new_messages = <int64_t*>cnp.PyArray_DATA(ag["new_messages"])
        s.n_new = 0
        s.next_id = <int64_t*>cnp.PyArray_DATA(bk["next_id"])
        s.episode_step = <int64_t*>cnp.PyArray_DATA(bk["episode_step"])
        s.ending = <uint8_t*>cnp.PyArray_DATA(bk["ending"])
        s.mid = <double*>cnp.PyArray_DATA(bk["mid"])
        s.mid_hist = <double*>cnp.PyArray_DATA(bk["mid_hist"])
        s.prev_volume = <int64_t*>cnp.PyArray_DATA(bk["prev_volume"])
        s.flow_signed = <double*>cnp.PyArray_DATA(bk["flow_signed"])
        s.flow_total = <double*>cnp.PyArray_DATA(bk["flow_total"])
        s.market = <float*>cnp.PyArray_DATA(bk["market"])

    def rebind(self, Books books):
        """Use a fresh ``Books`` (a data source that rebuilt its book): every agent order
        is forgotten, the mid history and flow statistics start over."""
        self._bind(books)
        self.agent_arrays["slot_id"][:] = 0
        self.agent_arrays["queue_id"][:] = 0
        for name in ("prev_volume", "flow_signed", "flow_total", "mid_hist"):
            self.book_arrays[name][:] = 0
        self.book_arrays["mid"][:] = np.nan
        self.s.n_updates = 0

    @property
    def obs_dim(self):
        return self.s.p.obs_dim

    # ---- phases (a data source that is not a Books runs them from Python) -------------

    # Every phase reads the core's arrays (some without the GIL): each holds the Books
    # (``Books._enter``) while it runs, so that another thread's call cannot resize the
    # arena under it; the core calls inside re-enter from the same thread.

    def act(self, int64_t timestamp):
        """Turn the bound actions into messages (``self.messages[:n]``); returns ``n``."""
        cdef int64_t n
        self.books._enter()
        try:
            with nogil:
                n = act_all(&self.s, timestamp)
        finally:
            self.books._leave()
        return n

    def advance(self):
        """After the market moved one step: mid history, flow imbalance, episode clock."""
        self.books._enter()
        try:
            advance(&self.s)
        finally:
            self.books._leave()

    def settle(self, int64_t timestamp):
        """Liquidation messages of ending books (``liquidate`` only); returns ``n``."""
        if not self.s.p.liquidate:
            return 0
        self.books._enter()
        try:
            return close_positions(&self.s, timestamp)
        finally:
            self.books._leave()

    def observe(self, bint truncate=False):
        """Observations, rewards, terminated/truncated and final observations; returns the
        number of ending books."""
        cdef int32_t n
        self.books._enter()
        try:
            with nogil:
                n = observe_all(&self.s, truncate)
        finally:
            self.books._leave()
        return n

    def cancel_orders(self, int64_t timestamp, bint every=False):
        """Cancels of every agent order of ending books (all books if ``every``)."""
        self.books._enter()
        try:
            return cancel_ending(&self.s, timestamp, every)
        finally:
            self.books._leave()

    def begin(self, bint every=False):
        """Start new episodes for ending books (all if ``every``) after their cancels were
        processed; writes their first observations into ``obs``."""
        self.books._enter()
        try:
            begin_episodes(&self.s, every)
        finally:
            self.books._leave()

    def submit(self, int64_t n):
        """Run ``self.messages[:n]`` through the core."""
        self._submit(n)

    cdef int _submit(self, int64_t n) except -1:
        cdef int64_t done = 0, consumed, written
        cdef Message* msgs = self.s.messages
        cdef cnp.ndarray events
        while done < n:         # the agents' order ids (id_base + a per-book counter) are
            # never reused and no other sender uses them: fresh
            events = self.events
            self.books._run_known(msgs + done, self.s.known + done, True, n - done, done,
                                  <Event*>cnp.PyArray_DATA(events),
                                  cnp.PyArray_DIM(events, 0), &consumed, &written)
            if consumed == 0 and written == 0:
                self.events = np.zeros(2 * cnp.PyArray_DIM(events, 0), dtype=EVENT_DTYPE)
            done += consumed
        return 0

    # ---- the whole step over a simulated market -------------------------------------

    def step(self, int64_t timestamp, flow):
        """One step: act, submit, advance the background ``flow`` (``Flow`` or None) one
        step, settle, observe, auto-reset ending books. Returns the number of ending
        books. With the flow of exactly these books, one book at a time
        (``_step_books``)."""
        self.books._enter()
        try:
            if (isinstance(flow, Flow) and (<Flow>flow).books is self.books
                    and (<Flow>flow).s.n_books == self.s.p.n_envs):
                return self._step_books(timestamp, <Flow>flow)
            return self._step(timestamp, flow)
        finally:
            self.books._leave()

    cdef int32_t _step(self, int64_t timestamp, flow) except -1:
        """``step`` phase by phase, with any data source (the Books held)."""
        cdef int32_t ended
        self._submit(self.act(timestamp))
        locate(&self.s)
        if flow is not None:
            flow.run(1)
        advance(&self.s)
        if self.s.p.liquidate:
            self._submit(close_positions(&self.s, timestamp))
        with nogil:
            ended = observe_all(&self.s, False)
        if ended:
            self._submit(cancel_ending(&self.s, timestamp, False))
            begin_episodes(&self.s, False)
        return ended

    cdef int32_t _step_books(self, int64_t timestamp, Flow flow) except -1:
        """``step`` run over groups of ``BOOK_GROUP`` books, every phase of a group before
        the next group, so that a group's data (small enough to stay in cache) is loaded
        once per step rather than once per phase, while each core call still holds enough
        messages to overlap their memory accesses. Books are independent, and each book
        goes through the same phases in the same order as in the phase-by-phase step: the
        results are identical."""
        cdef State* s = &self.s
        cdef int32_t first, stop, e, ending, ended = 0
        cdef int64_t n
        s.n_updates += 1                        # advance()'s once-per-step part
        for first in range(0, s.p.n_envs, BOOK_GROUP):
            stop = min(first + BOOK_GROUP, s.p.n_envs)
            n = 0
            s.n_new = 0
            for e in range(first, stop):
                if e + BOOK_AHEAD < stop:       # the next group's first books: below
                    prefetch_book(s, e + BOOK_AHEAD)
                act_book(s, &n, e, timestamp)
            self._submit(n)
            locate(s)
            flow._process(flow.decide_range(first, stop))
            n = 0
            for e in range(first, stop):
                advance_book(s, e)
                if s.p.liquidate and s.ending[e]:
                    cancel_book(s, &n, e, timestamp)
                    flatten_book(s, &n, e, timestamp)
            self._submit(n)
            n = 0
            ending = 0
            for e in range(first, stop):
                prefetch_book(s, e + BOOK_AHEAD)    # past stop: the next group's act
                if finish_book(s, e, False):
                    ending += 1
                    cancel_book(s, &n, e, timestamp)
            if ending:
                ended += ending
                self._submit(n)
                for e in range(first, stop):
                    if s.ending[e]:
                        begin_book(s, e)
        flow.end_step()
        return ended

    def reset(self, int64_t timestamp):
        """Cancel every agent order and start a new episode in every book."""
        self.books._enter()
        try:
            self._submit(cancel_ending(&self.s, timestamp, True))
            begin_episodes(&self.s, True)
        finally:
            self.books._leave()
