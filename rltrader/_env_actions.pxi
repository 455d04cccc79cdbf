# ---------------------------------------------------------------------------------------
# Actions -> messages
# ---------------------------------------------------------------------------------------
#
# An agent's decision is written into a ``Sink``: the outbox cell of its arrival step
# (``act_book``), from where ``merge_book`` hands it to the core. What the env does on the
# agents' behalf at an episode's end (withdrawing their orders, flattening positions) goes
# straight into the batch. Position limits hold for the account: an order is cut to the
# lots that keep |position| plus the open orders of its side (resting, in flight, market
# orders in flight) within the limit, and the agent sees the share cut (``limited``).

cdef inline Message* new_message(State* s, Sink* out, int32_t e, int32_t i, int op,
                                 int64_t timestamp) noexcept nogil:
    """The next message of ``out``, every field set. Written field by field into the
    zeroed buffer, never as a whole struct copied from a local, whose padding bytes
    (uninitialised) would make equal batches differ in their bytes."""
    cdef Message* m = &out.messages[out.n]
    out.known[out.n] = NO_SLOT
    out.tags[out.n] = -1
    if out.release != NULL:
        out.release[out.n] = 0
    out.n += 1
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


cdef inline int32_t known_slot(const State* s, int64_t k) noexcept nogil:
    """The arena slot to hint for an order of agent slot ``k`` (NO_SLOT: unknown)."""
    return s.slots[k].arena if s.slots[k].arena >= 0 else NO_SLOT


cdef inline void holding(State* s, Sink* out, int64_t a, int64_t k) noexcept nogil:
    """The last message of ``out`` cancels (or replaces) the order of agent slot ``k``:
    sent through the outbox, its lots stay counted against the limit until it arrives
    (the order may fill meanwhile), and the order stays known as the agent's own (a
    ghost) for the valuation."""
    cdef int side = s.slots[k].side
    cdef int64_t lots = s.slots[k].leaves, g
    if out.release == NULL or lots <= 0:
        return
    out.release[out.n - 1] = side * lots
    s.cancelling[2 * a + (side == SELL)] += lots
    for g in range(a * s.p.n_ghosts, (a + 1) * s.p.n_ghosts):
        if s.ghost_id[g] == 0:                  # there is one: an agent has at most
            s.ghost_id[g] = s.slots[k].order_id  # n_slots orders cancelled per step,
                                                # delay steps long
            s.ghost_price[g] = s.slots[k].price
            s.ghost_arena[g] = known_slot(s, k)
            s.ghost_side[g] = side
            s.n_ghost[a] += 1
            return


cdef inline void free_slot(State* s, int64_t a, int64_t k) noexcept nogil:
    """Agent ``a``'s slot ``k`` (a global slot index) no longer holds an order."""
    s.slots[k].order_id = 0
    s.slot_mask[a] &= ~((<uint32_t>1) << (k - a * s.p.n_slots))


cdef inline void hold_slot(State* s, int64_t a, int64_t k, int64_t order_id) noexcept nogil:
    """Agent ``a``'s slot ``k`` holds order ``order_id`` (never 0)."""
    s.slots[k].order_id = order_id
    s.slot_mask[a] |= (<uint32_t>1) << (k - a * s.p.n_slots)


cdef inline void cancel_slot(State* s, Sink* out, int32_t e, int32_t i, int64_t k,
                             int64_t timestamp) noexcept nogil:
    """Cancel the order of agent slot ``k`` (one in flight is cancelled after it
    arrives: an agent's decisions arrive in the order it sent them)."""
    cdef Message* m
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    if s.slots[k].order_id == 0:
        return
    m = new_message(s, out, e, i, CANCEL, timestamp)
    m.order_id = s.slots[k].order_id
    out.known[out.n - 1] = known_slot(s, k)
    s.resting[2 * a + (s.slots[k].side == SELL)] -= s.slots[k].leaves
    holding(s, out, a, k)
    free_slot(s, a, k)


cdef inline void cancel_all(State* s, Sink* out, int32_t e, int32_t i,
                            int64_t timestamp) noexcept nogil:
    cdef int64_t a = <int64_t>e * s.p.n_agents + i, first = a * s.p.n_slots
    cdef uint32_t held = s.slot_mask[a]
    while held != 0:                        # the held slots, in order
        cancel_slot(s, out, e, i, first + __builtin_ctzll(held), timestamp)
        held &= held - 1


cdef inline void market_order(State* s, Sink* out, int32_t e, int32_t i, int side,
                              int64_t qty, int64_t timestamp) noexcept nogil:
    """An IOC market order of ``qty`` lots (nothing when ``qty <= 0``)."""
    cdef Message* m
    if qty <= 0:
        return
    m = new_message(s, out, e, i, MARKET, timestamp)
    m.order_id = s.p.id_base + s.next_id[e]
    s.next_id[e] += 1
    m.side = side
    m.qty = qty
    m.tif = IOC


cdef inline int64_t allowed(const State* s, int32_t e, int32_t i, int side) noexcept nogil:
    """Lots the agent may still buy (side BUY) or sell: its limit minus its account's
    position on that side, its open limit orders of that side (in flight included), its
    market orders of that side in flight and the orders whose cancel is in flight. The
    lots of an order being cancelled or replaced are never reused by the same decision:
    the order may fill before its cancel reaches the book."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i, j = 2 * a + (side == SELL)
    return (s.position_limit[a] - side * account(s, e, i).position - s.resting[j]
            - s.inflight_ioc[j] - s.cancelling[j])


cdef inline int64_t granted(State* s, int64_t a, int64_t want, int64_t room) noexcept nogil:
    """``want`` lots cut to ``room``; the share cut goes to ``limited`` (the largest of the
    decision's orders)."""
    cdef double cut
    if want <= room:
        return want
    cut = 1.0 if room <= 0 else 1.0 - <double>room / want
    if cut > s.limited[a]:
        s.limited[a] = cut
    return room


cdef inline void new_order(State* s, Sink* out, int64_t a, int64_t k,
                           Message* m) noexcept nogil:
    """Agent ``a``'s slot ``k`` now holds ``m``'s new order, in flight until it arrives."""
    cdef int64_t held = s.slots[k].leaves if s.slots[k].order_id != 0 else 0
    s.resting[2 * a + (m.side == SELL)] += m.qty - held
    hold_slot(s, a, k, m.new_order_id if m.op == REPLACE else m.order_id)
    s.slots[k].arena = NO_SLOT if out.direct else IN_FLIGHT
    s.slots[k].side = m.side
    s.slots[k].price = m.price
    s.slots[k].leaves = m.qty
    out.tags[out.n - 1] = k


cdef inline void act_discrete(State* s, Sink* out, int32_t e, int32_t i, int64_t action,
                              int64_t timestamp) noexcept nogil:
    cdef int32_t n_off = s.p.n_offsets, n_slots = s.p.n_slots
    cdef int64_t a = <int64_t>e * s.p.n_agents + i, first = a * n_slots, k = -1, qty
    cdef uint32_t free
    cdef int side
    cdef Message* m
    if action == 0:
        return
    if action <= 2 * n_off:                                   # limit order
        side = BUY if action <= n_off else SELL
        free = ~s.slot_mask[a] & ((<uint32_t>1 << n_slots) - 1)   # the first free slot,
        if free != 0:                                             # else the next
            k = first + __builtin_ctzll(free)
        else:
            k = first + s.slot_next[a]
            s.slot_next[a] = s.slot_next[a] + 1 if s.slot_next[a] + 1 < n_slots else 0
        qty = granted(s, a, s.order_qty[a], allowed(s, e, i, side))
        if qty <= 0:
            return
        cancel_slot(s, out, e, i, k, timestamp)
        m = new_message(s, out, e, i, LIMIT, timestamp)
        m.order_id = s.p.id_base + s.next_id[e]
        s.next_id[e] += 1
        m.side = side
        m.price = passive_price(s, e, side, s.p.limit_offsets[
            action - 1 if action <= n_off else action - 1 - n_off])   # (action - 1) % n_off
        m.qty = qty
        new_order(s, out, a, k, m)
    elif action <= 2 * n_off + 2:                             # market order
        side = BUY if action == 2 * n_off + 1 else SELL
        qty = granted(s, a, s.order_qty[a], allowed(s, e, i, side))
        if qty > 0:
            market_order(s, out, e, i, side, qty, timestamp)
            if not out.direct:
                s.inflight_ioc[2 * a + (side == SELL)] += qty
    else:
        cancel_all(s, out, e, i, timestamp)


cdef void quote(State* s, Sink* out, int32_t e, int32_t i, int side, bint withdraw,
                int64_t offset, int64_t size, int64_t timestamp) noexcept nogil:
    """Keep, move (REPLACE) or withdraw the agent's quote of one side (slot 0 bid, 1 ask):
    ``size`` lots ``offset`` ticks behind the own-side touch (never crossing)."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int64_t k = a * s.p.n_slots + (side == SELL)
    cdef int64_t qty, price, new_id, held = s.slots[k].leaves if s.slots[k].order_id != 0 else 0
    cdef Message* m
    if withdraw:
        cancel_slot(s, out, e, i, k, timestamp)
        return
    price = passive_price(s, e, side, offset)
    if (s.slots[k].order_id != 0 and s.slots[k].price == price and held <= size
            and allowed(s, e, i, side) >= 0):
        return                      # within the limit: keeps its queue position
    qty = granted(s, a, size, allowed(s, e, i, side))        # the held lots counted: the
    if qty <= 0:                                              # old quote may fill first
        cancel_slot(s, out, e, i, k, timestamp)
        return
    new_id = s.p.id_base + s.next_id[e]
    s.next_id[e] += 1
    if s.slots[k].order_id != 0:                                     # cancel + new order
        m = new_message(s, out, e, i, REPLACE, timestamp)
        m.order_id = s.slots[k].order_id
        m.new_order_id = new_id
        out.known[out.n - 1] = known_slot(s, k)
        holding(s, out, a, k)
    else:
        m = new_message(s, out, e, i, LIMIT, timestamp)
        m.order_id = new_id
    m.side = side
    m.price = price
    m.qty = qty
    new_order(s, out, a, k, m)


cdef inline int64_t any_price(const State* s, int32_t e, int side,
                              int64_t offset) noexcept nogil:
    """``offset`` ticks behind the own-side touch (< 0: toward the other side, and through
    it: a marketable limit), within [1, MAX_PRICE]."""
    cdef int64_t price = own_touch(s, e, side) - side * offset
    if price < 1:
        return 1
    return price if price <= MAX_PRICE else MAX_PRICE


cdef void act_order(State* s, Sink* out, int32_t e, int32_t i, const int64_t* act,
                    int64_t timestamp) noexcept nogil:
    """ORDER mode: ``act`` = (op, price offset index, size index, time in force, slot)."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int64_t k = a * s.p.n_slots + act[4], size, qty, new_id
    cdef int op = <int>act[0], side
    cdef Message* m
    if op == ORDER_HOLD:
        return
    if op == ORDER_CANCEL:
        cancel_slot(s, out, e, i, k, timestamp)
        return
    if op == ORDER_REPLACE:
        if s.slots[k].order_id == 0:
            return
        side = s.slots[k].side
    else:
        side = BUY if op == ORDER_BUY else SELL
    size = <int64_t>floor(s.p.quote_sizes[act[2]] * s.order_qty[a] + 0.5)
    qty = granted(s, a, size if size > 1 else 1, allowed(s, e, i, side))
    if qty <= 0:
        if op == ORDER_REPLACE:
            cancel_slot(s, out, e, i, k, timestamp)
        return
    new_id = s.p.id_base + s.next_id[e]
    s.next_id[e] += 1
    if op == ORDER_REPLACE:         # cancel + new order (the held lots counted above)
        m = new_message(s, out, e, i, REPLACE, timestamp)
        m.order_id = s.slots[k].order_id
        m.new_order_id = new_id
        out.known[out.n - 1] = known_slot(s, k)
        holding(s, out, a, k)
    else:
        cancel_slot(s, out, e, i, k, timestamp)
        m = new_message(s, out, e, i, LIMIT, timestamp)
        m.order_id = new_id
    m.side = side
    m.price = any_price(s, e, side, s.p.order_offsets[act[1]])
    m.qty = qty
    m.tif = <int8_t>act[3]
    new_order(s, out, a, k, m)


cdef inline int64_t parent_left(const State* s, int32_t e, int64_t a) noexcept nogil:
    """EXECUTION: lots of the parent order neither filled nor on their way (market
    orders in flight, orders whose cancel is in flight may still fill)."""
    cdef int side = s.parent_side[a]
    cdef int64_t j = 2 * a + (side == SELL)
    return (s.parent_lots[a] - side * (account(s, e, a - <int64_t>e * s.p.n_agents).position
                                       - s.base_position[a])
            - s.inflight_ioc[j] - s.cancelling[j])


cdef void act_execution(State* s, Sink* out, int32_t e, int32_t i, int64_t action,
                        int64_t timestamp) noexcept nogil:
    """EXECUTION: 0 waits (the resting child is withdrawn); ``1 .. R`` a market child,
    ``R + 1 .. 2R`` a child resting at the own-side touch (kept, or moved), of
    ``ceil(rate x lots left / steps left)`` lots (rate 1: what is left spread evenly over
    the steps left, TWAP)."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i
    cdef int side = s.parent_side[a]
    cdef int64_t k = a * s.p.n_slots + (side == SELL)    # where quote() keeps the child
    cdef int64_t left, steps, child, held = s.slots[k].leaves if s.slots[k].order_id != 0 else 0
    cdef double rate
    left = parent_left(s, e, a)
    if action == 0 or left <= 0:
        cancel_slot(s, out, e, i, k, timestamp)
        return
    rate = s.p.rates[(action - 1) % s.p.n_rates]
    steps = s.p.horizon - s.episode_step[e]
    child = <int64_t>ceil(rate * left / (steps if steps > 0 else 1))
    child = child if child < left else left
    if action > s.p.n_rates:                # passive: the child rests at the touch
        if held and s.slots[k].price != passive_price(s, e, side, 0):
            child = child if child < left - held else left - held   # the old child may
            if child <= 0:                  # fill before its replace lands: the two
                return                      # never pass the parent
        quote(s, out, e, i, side, False, 0, child, timestamp)
        return
    # a market child: the resting child is withdrawn, but may fill before its cancel lands
    child = granted(s, a, child if child < left - held else left - held,
                    allowed(s, e, i, side))
    cancel_slot(s, out, e, i, k, timestamp)
    if child > 0:
        market_order(s, out, e, i, side, child, timestamp)
        if not out.direct:
            s.inflight_ioc[2 * a + (side == SELL)] += child


cdef inline void decide(State* s, Sink* out, int32_t e, int32_t i,
                        int64_t timestamp) noexcept nogil:
    """Agent ``i`` of book ``e`` turns its action into messages at ``out``."""
    cdef int64_t a = <int64_t>e * s.p.n_agents + i, size
    cdef const int64_t* act
    s.limited[a] = 0.0
    cdef const double* f
    if s.p.action_mode == DISCRETE:
        act_discrete(s, out, e, i, s.actions[a], timestamp)
    elif s.p.action_mode == EXECUTION:
        act_execution(s, out, e, i, s.actions[a], timestamp)
    elif s.p.action_mode == ORDER:
        act_order(s, out, e, i, &s.actions[ORDER_FIELDS * a], timestamp)
    elif s.p.action_mode == CONTINUOUS:     # offsets rounded to ticks, sizes to lots (a
        f = &s.factions[CONTINUOUS_FIELDS * a]   # size under half a lot: no quote)
        size = <int64_t>floor(f[2] * s.order_qty[a] + 0.5)
        quote(s, out, e, i, BUY, size < 1, llround(f[0]), size, timestamp)
        size = <int64_t>floor(f[3] * s.order_qty[a] + 0.5)
        quote(s, out, e, i, SELL, size < 1, llround(f[1]), size, timestamp)
    else:
        act = &s.actions[3 * a]
        size = <int64_t>floor(s.p.quote_sizes[act[2]] * s.order_qty[a] + 0.5)
        size = size if size > 1 else 1
        quote(s, out, e, i, BUY, act[0] == s.p.n_quotes,
              s.p.quote_offsets[act[0]] if act[0] < s.p.n_quotes else 0, size, timestamp)
        quote(s, out, e, i, SELL, act[1] == s.p.n_quotes,
              s.p.quote_offsets[act[1]] if act[1] < s.p.n_quotes else 0, size, timestamp)


cdef void locate(State* s, const Sink* batch) noexcept nogil:
    """After the core ran ``batch``: the arena slot of every agent order that arrived in
    it, where the core says it came to rest (a live order never moves); one that did not
    rest frees its agent slot. One that rested and was filled since (later in the batch)
    keeps the slot it rested in: its account's volume moved, so the next ``refresh``
    reads that slot and drops the order, as it does for any order filled in full (no
    other event takes an agent's order off the book without a fill: its cancels free
    their slot when sent, and books with self-trade prevention are read every time). So
    nothing here reads the arena."""
    cdef const Message* m
    cdef int64_t j, k, order_id
    cdef int32_t slot
    for j in range(batch.n):
        k = batch.tags[j]
        if k < 0:
            continue
        m = &batch.messages[j]
        if not s.p.first_owner <= m.owner < s.p.first_owner + s.p.n_agents:
            continue                    # another group's agent (GroupStep)
        order_id = m.new_order_id if m.op == REPLACE else m.order_id
        if s.slots[k].order_id != order_id or s.slots[k].arena != NO_SLOT:
            continue                    # the slot moved on to a later order meanwhile
        slot = batch.known[j]
        s.slots[k].arena = slot
        if slot == NO_SLOT:
            free_slot(s, k // s.p.n_slots, k)


# ---------------------------------------------------------------------------------------
# At an episode's end: withdraw the agents' orders, flatten their positions
# ---------------------------------------------------------------------------------------

cdef inline void clear_ghosts(State* s, int64_t a) noexcept nogil:
    cdef int64_t g
    if s.n_ghost[a] == 0:
        return
    for g in range(a * s.p.n_ghosts, (a + 1) * s.p.n_ghosts):
        s.ghost_id[g] = 0
    s.n_ghost[a] = 0


cdef void withdraw_book(State* s, Sink* out, int32_t e, int64_t timestamp) noexcept nogil:
    """Every order of book ``e``'s agents leaves the book, cancels appended to ``out``.
    Decisions still in flight are dropped; the orders they would have cancelled (a cancel
    or a replace's old order) are cancelled now, so that no order is left behind."""
    cdef int32_t i, d, g
    cdef int64_t cell, j, a, k
    cdef const Message* m
    cdef Message* c
    for d in range(s.p.delay):
        cell = <int64_t>d * s.p.n_envs + e
        for j in range(s.out_n[cell]):
            m = &s.out_messages[cell * s.p.cell_messages + j]
            if m.op == CANCEL or m.op == REPLACE:
                c = new_message(s, out, e, m.owner - s.p.first_owner, CANCEL, timestamp)
                c.order_id = m.order_id
                out.known[out.n - 1] = s.out_known[cell * s.p.cell_messages + j]
        s.out_n[cell] = 0
        s.out_groups[cell] = 0
    refresh(s, e)
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        s.inflight_ioc[2 * a] = 0
        s.inflight_ioc[2 * a + 1] = 0
        s.cancelling[2 * a] = 0
        s.cancelling[2 * a + 1] = 0
        clear_ghosts(s, a)
        for k in range(a * s.p.n_slots, (a + 1) * s.p.n_slots):
            if s.slots[k].order_id != 0 and s.slots[k].arena == IN_FLIGHT:
                free_slot(s, a, k)              # dropped with its decision
        cancel_all(s, out, e, i, timestamp)
    refresh(s, e)


cdef int64_t withdraw_ending(State* s, int64_t timestamp, bint every) noexcept nogil:
    """Withdraw the orders of the agents of ending books (all books if ``every``) into the
    batch; returns its length."""
    cdef int32_t e
    s.batch.n = 0
    for e in range(s.p.n_envs):
        if every or s.ending[e]:
            withdraw_book(s, &s.batch, e, timestamp)
    return s.batch.n


cdef void flatten_book(State* s, Sink* out, int32_t e, int64_t timestamp) noexcept nogil:
    """Market orders that flatten the account position of book ``e``'s agents, in a
    random order (the book's arrival generator): the first to trade gets the best
    prices, and that must not be a row's privilege."""
    cdef int64_t position, j, a
    cdef int32_t i
    shuffle(s.keys, s.p.n_agents, &s.arrival_rng[4 * e])
    for j in range(s.p.n_agents):
        i = <int32_t>s.keys[j]
        a = <int64_t>e * s.p.n_agents + i
        if s.p.action_mode == EXECUTION:    # complete the parent order instead
            market_order(s, out, e, i, s.parent_side[a], parent_left(s, e, a), timestamp)
            continue
        position = account(s, e, i).position
        market_order(s, out, e, i, SELL if position > 0 else BUY,
                     position if position > 0 else -position, timestamp)


cdef int64_t close_positions(State* s, int64_t timestamp) noexcept nogil:
    """Ending books: every agent's orders are withdrawn and, with ``liquidate``, a market
    order is sent for its position. Returns the batch's length."""
    cdef int32_t e
    s.batch.n = 0
    for e in range(s.p.n_envs):
        if s.ending[e]:
            withdraw_book(s, &s.batch, e, timestamp)
            if s.p.liquidate or s.p.action_mode == EXECUTION:
                flatten_book(s, &s.batch, e, timestamp)
    return s.batch.n
