# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: resting orders in and out of levels, cached best prices, re-centring.

# ---------------------------------------------------------------------------------------
# resting orders: insert, remove, best prices, re-centring
# ---------------------------------------------------------------------------------------

cdef void refresh_best(const Core* c, int32_t b, int side) noexcept nogil:
    """Recompute the cached best price of `side` after its best level emptied."""
    cdef BookState* bs = &c.bk[b]
    cdef int32_t head = bs.overflow_head[side_index(side)]
    cdef int64_t i, best
    if side == BUY:
        i = dense_from(c, b, BUY, bs.best_bid - bs.base) if bs.best_bid >= bs.base else -1
        best = bs.base + i if i >= 0 else EMPTY_BID
        if head != NO_SLOT and c.orders[head].price > best:
            best = c.orders[head].price
        bs.best_bid = best
    else:
        i = (dense_from(c, b, SELL, bs.best_ask - bs.base)
             if bs.best_ask < bs.base + c.window else -1)
        best = bs.base + i if i >= 0 else EMPTY_ASK
        if head != NO_SLOT and c.orders[head].price < best:
            best = c.orders[head].price
        bs.best_ask = best


cdef inline void raise_book_load(Core* c, const BookState* bs) noexcept nogil:
    # the book's load may have grown: keep Core.max_book_load above it
    cdef int64_t load = (<int64_t>bs.n_resting[0] + bs.n_resting[1]
                         + 6 * <int64_t>bs.n_stops)
    if load > c.max_book_load:
        c.max_book_load = load


cdef inline bint count_resting(Core* c, BookState* bs, const Order* o) noexcept nogil:
    # a new resting order of bs's book: the side's count, the load bound and cached best;
    # True when it is the side's new best
    bs.n_resting[side_index(o.side)] += 1
    raise_book_load(c, bs)
    if o.side == BUY:
        if o.price > bs.best_bid:
            bs.best_bid = o.price
            return True
    elif o.price < bs.best_ask:
        bs.best_ask = o.price
        return True
    return False


cdef inline bint rest_dense(Core* c, BookState* bs, int32_t b, int32_t slot,
                            Order* o) noexcept nogil:
    """``rest`` for an order inside the window: the tail of its level. True when it is its
    side's new best."""
    cdef int64_t i = o.price - bs.base
    cdef Level* lvl = &c.lv[<int64_t>b * c.window + i]
    o.prev = lvl.tail
    if lvl.tail != NO_SLOT:
        c.orders[lvl.tail].next = slot
    else:
        lvl.head = slot
        bit_set(c, b, o.side, i)
    lvl.tail = slot
    lvl.count += 1
    lvl.qty += o.qty
    return count_resting(c, bs, o)


cdef void rest_outside(Core* c, BookState* bs, int32_t b, int32_t slot,
                       Order* o) noexcept nogil:
    """``rest`` for an order outside the window: an empty book re-centres on it for free,
    else it joins the best-first overflow list of its side, FIFO among equal prices."""
    cdef int side = o.side
    cdef int si = side_index(side)
    cdef int32_t at
    if bs.n_resting[0] == 0 and bs.n_resting[1] == 0:
        bs.base = o.price - c.window // 2
        rest_dense(c, bs, b, slot, o)
        return
    at = bs.overflow_tail[si]
    while at != NO_SLOT and better(side, o.price, c.orders[at].price):
        at = c.orders[at].prev
    o.prev = at
    if at == NO_SLOT:
        o.next = bs.overflow_head[si]
        bs.overflow_head[si] = slot
    else:
        o.next = c.orders[at].next
        c.orders[at].next = slot
    if o.next == NO_SLOT:
        bs.overflow_tail[si] = slot
    else:
        c.orders[o.next].prev = slot
    count_resting(c, bs, o)


cdef inline bint rest(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Append a resting order at the back of its price level. True when the book's touch
    or window may have moved (``keep_touch_in_window`` has something to check): the order
    is its side's new best, or it rests outside the window."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* o = &c.orders[slot]
    o.state = RESTING
    o.next = NO_SLOT
    if in_window(c, bs, o.price):
        return rest_dense(c, bs, b, slot, o)
    rest_outside(c, bs, b, slot, o)
    return True


cdef inline void list_unlink(Order* orders, const Order* o, int32_t* head,
                             int32_t* tail) noexcept nogil:
    """Take ``o`` out of the doubly linked list ``head``..``tail`` (a level's FIFO, an
    overflow list or the stop list); its own links are left as they were."""
    if o.prev != NO_SLOT:
        orders[o.prev].next = o.next
    else:
        head[0] = o.next
    if o.next != NO_SLOT:
        orders[o.next].prev = o.prev
    else:
        tail[0] = o.prev


cdef void unrest_outside(Core* c, BookState* bs, int32_t b, int32_t slot,
                         Order* o) noexcept nogil:
    """``unrest`` for an order on its side's overflow list."""
    cdef int side = o.side
    cdef int si = side_index(side)
    cdef bint emptied
    list_unlink(c.orders, o, &bs.overflow_head[si], &bs.overflow_tail[si])
    emptied = ((o.prev == NO_SLOT or c.orders[o.prev].price != o.price)
               and (o.next == NO_SLOT or c.orders[o.next].price != o.price))
    bs.n_resting[si] -= 1
    if emptied and o.price == (bs.best_bid if side == BUY else bs.best_ask):
        refresh_best(c, b, side)


cdef inline bint unrest_dense(Core* c, BookState* bs, int32_t b, const Order* o,
                              Level* lvl) noexcept nogil:
    """``unrest`` for an order in the window; ``lvl``: its level. True when it emptied its
    side's best level (the touch moved)."""
    cdef int side = o.side
    list_unlink(c.orders, o, &lvl.head, &lvl.tail)
    lvl.count -= 1
    lvl.qty -= o.qty
    lvl.removals += 1
    bs.n_resting[side_index(side)] -= 1
    if lvl.count == 0:
        bit_clear(c, b, side, o.price - bs.base)
        if o.price == (bs.best_bid if side == BUY else bs.best_ask):
            refresh_best(c, b, side)
            return True
    return False


cdef inline bint unrest(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Unlink a resting order from its level or overflow list; the slot stays allocated.
    True when the book's touch may have moved (as ``rest``)."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* o = &c.orders[slot]
    cdef int64_t i = o.price - bs.base
    if <uint64_t>i >= <uint64_t>c.window:
        unrest_outside(c, bs, b, slot, o)
        return True
    return unrest_dense(c, bs, b, o, &c.lv[<int64_t>b * c.window + i])


cdef inline bint remove_order(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Take a resting order off the book and free its slot. True when the book's touch
    may have moved (as ``rest``)."""
    cdef bint moved = unrest(c, b, slot)
    hash_erase(c, slot)
    slot_free(c, slot)
    return moved


cdef inline void reduce_resting(Core* c, int32_t b, int32_t slot, int64_t q) noexcept nogil:
    """Lower a resting order's leaves by q (> 0, < leaves) in place: priority is kept."""
    cdef Order* o = &c.orders[slot]
    cdef const BookState* bs = &c.bk[b]
    cdef Level* lvl
    o.qty -= q
    if o.state == RESTING and in_window(c, bs, o.price):
        lvl = &c.lv[<int64_t>b * c.window + (o.price - bs.base)]
        lvl.qty -= q
        lvl.removals += 1


cdef void recenter(Core* c, int32_t b) noexcept nogil:
    """Move the dense window so that the touch sits in its middle.

    Rebuilds the book's levels from its orders in price-time order: O(window + orders in
    book). Runs only when the touch has left the window.
    """
    cdef BookState* bs = &c.bk[b]
    cdef int64_t bid = bs.best_bid, ask = bs.best_ask, centre, i
    cdef int32_t chain_head = NO_SLOT, chain_tail = NO_SLOT, slot, nxt
    cdef LevelCursor k
    cdef int side
    cdef Level* lvl
    if bid != EMPTY_BID and ask != EMPTY_ASK:
        if ask - bid >= c.window // 2:
            return      # the spread alone would not sit comfortably; overflow carries it
        centre = bid + (ask - bid) // 2
    else:
        centre = bid if bid != EMPTY_BID else ask
    # chain every resting order, bids best first then asks best first, FIFO within a level
    for side in range(1, -2, -2):   # BUY, then SELL
        cursor_start(c, b, side, &k)
        while cursor_next(c, &k):
            slot = k.head
            while slot != NO_SLOT and c.orders[slot].price == k.price:
                nxt = c.orders[slot].next
                if chain_tail == NO_SLOT:
                    chain_head = slot
                else:
                    c.orders[chain_tail].next = slot
                chain_tail = slot
                slot = nxt
    if chain_tail != NO_SLOT:
        c.orders[chain_tail].next = NO_SLOT
    for i in range(c.window):
        lvl = &c.lv[<int64_t>b * c.window + i]
        lvl.qty = 0
        lvl.count = 0
        lvl.head = NO_SLOT
        lvl.tail = NO_SLOT
        lvl.removals += 1       # every level's queues are rebuilt: none stays the same
    memset(c.bits + <int64_t>b * 2 * c.words, 0, 2 * c.words * sizeof(uint64_t))
    memset(c.summary + <int64_t>b * 2 * c.summary_words, 0,
           2 * c.summary_words * sizeof(uint64_t))
    for i in range(2):
        bs.overflow_head[i] = NO_SLOT
        bs.overflow_tail[i] = NO_SLOT
        bs.n_resting[i] = 0
    bs.best_bid = EMPTY_BID
    bs.best_ask = EMPTY_ASK
    bs.base = centre - c.window // 2
    slot = chain_head
    while slot != NO_SLOT:
        nxt = c.orders[slot].next
        rest(c, b, slot)
        slot = nxt


cdef inline bint touch_settled(const Core* c, const BookState* bs) noexcept nogil:
    """Whether ``keep_touch_in_window`` would leave the book as it is: each touch in the
    window (or its side empty), or a spread of half a window or more, which ``recenter``
    declines. Every message leaves every book so (``check_integrity`` checks it), which is
    why a message that moved neither touch nor left one outside the window need not call
    ``keep_touch_in_window`` (``rest``, ``remove_order`` say whether it did)."""
    if ((bs.best_bid == EMPTY_BID or in_window(c, bs, bs.best_bid))
            and (bs.best_ask == EMPTY_ASK or in_window(c, bs, bs.best_ask))):
        return True
    return (bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK
            and bs.best_ask - bs.best_bid >= c.window // 2)


cdef inline void keep_touch_in_window(Core* c, int32_t b) noexcept nogil:
    cdef const BookState* bs = &c.bk[b]
    if ((bs.best_bid != EMPTY_BID and not in_window(c, bs, bs.best_bid))
            or (bs.best_ask != EMPTY_ASK and not in_window(c, bs, bs.best_ask))):
        recenter(c, b)
