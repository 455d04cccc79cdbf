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
    starts); and the book state of book ``e + BOOK_AHEAD``, which the call for that book
    reads to find its levels. With 1,024 books the step's data outgrows this VM's cache (docs/envs.md,
    "Performance"); requesting book ``e + BOOK_AHEAD``'s lines while book ``e`` is worked
    on overlaps their misses. Outputs are unchanged."""
    cdef const Core* c = s.core
    cdef const BookState* bs
    cdef int64_t idx, a
    cdef int32_t i, slot
    if e >= s.p.n_envs:
        return
    if e + BOOK_AHEAD < s.p.n_envs:         # the state the next call reads first
        prefetch(&c.bk[e + BOOK_AHEAD])
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
    LEVEL_WALKS = 16        # whole-level walks advanced in lockstep (walk_levels)


cdef void walk_levels(State* s, int32_t e, const int32_t* targets, int32_t n) noexcept nogil:
    """``queue_level`` for the levels (in the dense window, distinct) of the ``n`` arena
    slots ``targets``, one hop of every level at a time: a level is a linked list whose
    every hop is a cache miss on a large book, and the misses of different levels
    overlap."""
    cdef const Core* c = s.core
    cdef int32_t slot[LEVEL_WALKS]
    cdef int64_t price[LEVEL_WALKS]
    cdef int64_t ahead[LEVEL_WALKS]
    cdef int32_t g, live = n, cur, owner, lo = s.p.first_owner
    cdef int64_t a
    cdef const Order* o
    for g in range(n):
        price[g] = c.orders[targets[g]].price
        slot[g] = c.lv[<int64_t>e * c.window + price[g] - c.bk[e].base].head
        ahead[g] = 0
        if slot[g] == NO_SLOT:
            live -= 1
    while live > 0:
        for g in range(n):
            cur = slot[g]
            if cur == NO_SLOT:
                continue
            o = &c.orders[cur]
            if o.price != price[g]:
                slot[g] = NO_SLOT
                live -= 1
                continue
            owner = o.owner
            if lo <= owner < lo + s.p.n_agents:
                a = <int64_t>e * s.p.n_agents + owner - lo
                if s.best_slot[a] == cur:
                    s.queue_ahead[a] = <double>ahead[g]
            ahead[g] += o.qty
            slot[g] = o.next
            if slot[g] == NO_SLOT:
                live -= 1


cdef void queue_walks(State* s, int32_t e) noexcept nogil:
    """Lots queued ahead of the nearest order of every agent of book ``e`` that has one
    and no value yet. An order in the dense window is walked from both ends of its level
    at once: back from the order (the lots ahead) and back from the level's tail (the lots
    behind; then ahead = level lots - behind - the order's own lots); the first walk to end
    gives the exact sum. Agents' orders are young, so the tail is usually a few hops away.
    Out of the window only the walk back from the order. Deep in a queue (``BACKWARD_HOPS``
    orders read, over both walks, without an end), one walk of the whole level, which
    serves every agent queued there: in the window the level is *parked*, and agents whose
    order rests at a parked price skip their own walk; parked levels are walked together
    (``walk_levels``) once ``LEVEL_WALKS`` are parked and at the end; out of the window at
    once (``queue_level``). Up to ``GANG`` agents' walks advance one hop at a time
    together, so that their arena reads are in flight at once; a lane whose value a level
    walk of another lane has set, or whose price got parked, stops there. Every value is
    the exact sum, whichever walk gives it."""
    cdef const Core* c = s.core
    cdef int64_t agent[GANG]
    cdef int64_t price[GANG]
    cdef int64_t ahead[GANG]
    cdef int64_t behind[GANG]
    cdef int64_t level_qty[GANG]
    cdef int32_t back[GANG]
    cdef int32_t front[GANG]         # tail walk cursor (NO_SLOT: out of the window)
    cdef int32_t hops[GANG]
    cdef int32_t parked[LEVEL_WALKS]     # an arena slot of each parked level
    cdef int64_t parked_price[LEVEL_WALKS]
    cdef int32_t n_parked = 0, i = 0, g, h, n, live, cur, target
    cdef int64_t a, idx, p
    cdef bint skip
    cdef const Level* lv
    while i < s.p.n_agents:
        n = 0
        while i < s.p.n_agents and n < GANG:
            a = <int64_t>e * s.p.n_agents + i
            i += 1
            if s.best_slot[a] == NO_SLOT or s.queue_ahead[a] >= 0.0:
                continue
            target = s.best_slot[a]
            p = s.best_price[a]             # (its order's price: no arena read to skip it)
            skip = False
            for h in range(n_parked):
                if parked_price[h] == p:
                    skip = True
                    break
            if skip:                        # its level will be walked whole
                continue
            agent[n] = a
            price[n] = p
            back[n] = c.orders[target].prev
            ahead[n] = 0
            behind[n] = 0
            hops[n] = 0
            front[n] = NO_SLOT
            idx = p - c.bk[e].base
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
                    if front[g] == NO_SLOT:     # out of the window: walked now
                        queue_level(s, e, target)
                    else:                       # parked, with the lanes of its price
                        if n_parked == LEVEL_WALKS:
                            walk_levels(s, e, parked, n_parked)
                            n_parked = 0
                        parked[n_parked] = target
                        parked_price[n_parked] = price[g]
                        n_parked += 1
                        for h in range(n):
                            if h != g and hops[h] >= 0 and price[h] == price[g]:
                                hops[h] = -1
                                live -= 1
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
    if n_parked > 0:
        walk_levels(s, e, parked, n_parked)


cdef enum:
    REFRESH_AHEAD = 4       # agents ahead of the one refreshed whose orders are requested


cdef inline void prefetch_slots(const State* s, const Account* acc, int32_t e, int32_t i,
                                bint stp) noexcept nogil:
    """Start loading the arena lines that ``refresh`` will read for agent ``i`` of book
    ``e``: its resting orders' when its account traded since the last refresh (an agent's
    orders are scattered over the arena; with thousands of agents in a book each read is
    a miss). Outputs are unchanged."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int32_t slot
    cdef uint32_t held = s.slot_mask[a]
    if acc[i].volume == s.seen_volume[a] and not stp:
        return
    while held != 0:
        slot = s.slots[a * s.p.n_slots + __builtin_ctzll(held)].arena
        held &= held - 1
        if slot >= 0:
            prefetch(&s.core.orders[slot])


cdef void refresh(State* s, int32_t e) noexcept nogil:
    """Bring the agents' slots of book ``e`` up to date (finished orders dropped, leaves
    read) and compute per agent: open lots per side (orders in flight included), orders
    resting and in flight, and the lots queued ahead of the resting order nearest its
    touch. The arena is read only for new orders and for
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
    cdef Slot* slots
    cdef int64_t a, distance, best_distance, buy_lots, sell_lots, volume, best_id, idx
    cdef int64_t best_price = 0, base = c.bk[e].base
    cdef int32_t i, j, slot, best, live, flying
    cdef uint32_t removals, occupied
    cdef int64_t buy
    cdef bint trust
    cdef const Order* o
    cdef const Level* lv
    for i in range(n_agents):
        a = <int64_t>e * n_agents + i
        if i + REFRESH_AHEAD < n_agents:
            prefetch_slots(s, acc, e, i + REFRESH_AHEAD, stp)
        slots = &s.slots[a * n_slots]
        volume = acc[i].volume
        trust = volume == s.seen_volume[a] and not stp   # no order of it can have traded
        buy_lots = 0
        sell_lots = 0
        live = 0
        flying = 0
        best = NO_SLOT
        best_id = 0
        best_distance = MAX_PRICE
        occupied = s.slot_mask[a]
        while occupied != 0:                # the held slots, in order
            j = __builtin_ctzll(occupied)
            occupied &= occupied - 1
            slot = slots[j].arena
            if slot == IN_FLIGHT:               # not in the book yet: its lots count
                flying += 1
                buy = slots[j].side == BUY
                buy_lots += slots[j].leaves * buy
                sell_lots += slots[j].leaves * (1 - buy)
                continue
            if slot == NO_SLOT or not trust:
                if slot == NO_SLOT:
                    slot = find_order(c, e, slots[j].order_id)
                    slots[j].arena = slot
                elif orders[slot].order_id != slots[j].order_id or orders[slot].book != e:
                    slot = NO_SLOT              # finished; the arena slot was reused
                if slot == NO_SLOT or orders[slot].state != RESTING:
                    slots[j].order_id = 0
                    s.slot_mask[a] &= ~((<uint32_t>1) << j)
                    continue
                o = &orders[slot]
                slots[j].price = o.price
                slots[j].leaves = o.qty
                slots[j].side = o.side
            live += 1
            buy = slots[j].side == BUY           # sides are random: no branch on them
            buy_lots += slots[j].leaves * buy
            sell_lots += slots[j].leaves * (1 - buy)
            distance = buy * (best_bid - slots[j].price) + (1 - buy) * (slots[j].price - best_ask)
            if distance < best_distance:
                best_distance = distance
                best = slot
                best_id = slots[j].order_id
                best_price = slots[j].price
        s.resting[2 * a] = buy_lots
        s.resting[2 * a + 1] = sell_lots
        s.n_live[a] = live
        s.n_inflight[a] = flying
        s.best_slot[a] = best
        s.best_price[a] = best_price
        s.seen_volume[a] = volume
        # The lots ahead of an order only shrink, and only when an order of its level is
        # taken off or reduced (or the window recentred): a count in the level tells.
        idx = best_price - base
        if best == NO_SLOT or not 0 <= idx < c.window:
            s.queue_id[a] = 0                       # nothing cached out of the window
            s.queue_ahead[a] = -1.0
            continue
        lv = &c.lv[<int64_t>e * c.window + idx]
        removals = lv.removals
        if (s.queue_id[a] != best_id or s.queue_base[a] != base
                or s.queue_removals[a] != removals):
            s.queue_id[a] = best_id
            s.queue_base[a] = base
            s.queue_removals[a] = removals
            s.queue_ahead[a] = -1.0                 # walked by queue_walks below
            if lv.count <= 2 * BACKWARD_HOPS:       # where its walk starts (a longer
                prefetch(&orders[best])             # level is mostly walked whole)
    queue_walks(s, e)


