# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: fills and accounts, the matching loop, takers, stops.

# ---------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    static inline int rltrader_product_exceeds(long long a, long long b, long long limit) {
        return (__int128)a * b > limit;     /* a, b < 2**41: the product needs 82 bits */
    }
    """
    bint product_exceeds "rltrader_product_exceeds"(int64_t a, int64_t b,
                                                    int64_t limit) noexcept nogil


cdef inline int64_t fee_of(int64_t notional, int64_t fee_ppm) noexcept nogil:
    """``trunc(notional * fee_ppm / 10**6)`` exactly, for ``0 <= notional <= MAX_NOTIONAL``
    and ``|fee_ppm| <= MAX_FEE_PPM``, where the plain product would need 82 bits: split
    notional = hi * 10**6 + lo; ``hi * fee_ppm`` is exact and has the sign of ``lo *
    fee_ppm``, so truncating only the second term truncates the sum (C division rounds
    toward zero, as the docs specify). Division by a constant compiles to a multiply."""
    cdef int64_t hi = notional // 1000000
    cdef int64_t lo = notional - hi * 1000000
    return hi * fee_ppm + lo * fee_ppm // 1000000


cdef inline void account_add(Account* a, int side, int64_t notional, int64_t q,
                             int64_t fee_ppm) noexcept nogil:
    """One owned side of a fill: ``q`` lots for ``notional`` ticks x lots, and its fee.
    Nothing here can overflow: the book's notional stays within MAX_NOTIONAL
    (``taker_exceeds_notional``)."""
    cdef int64_t fee = fee_of(notional, fee_ppm) if fee_ppm != 0 else 0  # common: no fee
    a.position += side * q
    a.cash -= side * notional + fee
    a.fees += fee
    a.volume += q


cdef inline void account_trade(Account* a, int side, int64_t notional,
                               int64_t q) noexcept nogil:
    """``account_add`` without a fee (``Core.fees`` False: none is charged anywhere)."""
    a.position += side * q
    a.cash -= side * notional
    a.volume += q


cdef inline int64_t fee_rate(const Core* c, int32_t owner, int taker,
                             int64_t book_ppm) noexcept nogil:
    """The fee (ppm) ``owner`` pays as taker (``taker``) or maker: its tier, else the
    book's."""
    cdef int64_t ppm = c.owner_fees[2 * owner + taker]
    return book_ppm if ppm == BOOK_FEE else ppm


cdef struct TakerAccount:
    # a taker's account and fee rate, looked up once per taker rather than once per fill
    Account* account        # NULL when the taker has no owner
    int64_t fee_ppm
    bint fees               # Core.fees (a local: the fills' stores may alias the Core)


cdef inline void taker_account(const Core* c, int32_t b, const Order* t,
                               TakerAccount* ta) noexcept nogil:
    ta.fees = c.fees
    if t.owner >= 0:
        ta.account = &c.accounts[<int64_t>b * c.n_owners + t.owner]
        ta.fee_ppm = fee_rate(c, t.owner, 1, c.bk[b].taker_fee_ppm) if c.fees else 0
    else:
        ta.account = NULL
        ta.fee_ppm = 0


cdef struct InRunTaker:
    # match_taker's and fill's tag in run_taker
    char unused

cdef struct InTakeLimit:
    # match_taker's and fill's tag in take_limit
    char unused

cdef struct InExecute:
    # fill's tag in apply's EXECUTE
    char unused

ctypedef fused MatchCaller:
    # a copy of match_taker for each caller, so that GCC inlines each (as ``FillCaller``)
    InRunTaker
    InTakeLimit


ctypedef fused FillCaller:
    # fill is fused on its caller so that each caller has a copy of its own: GCC inlines a
    # static function called from one place more readily (within its growth limits, which
    # fill meets in this build: no `fill` symbol in the module), and fill called from two
    # was not inlined into the matching loop (a call, and its registers, per fill). The
    # copies of the two matching loops are alike: setup.py keeps GCC from folding them
    # back into one (-fno-ipa-icf)
    InRunTaker
    InTakeLimit
    InExecute


cdef inline bint fill(FillCaller* caller, Core* c, Ctx* x, int32_t b, Order* taker,
                      const TakerAccount* ta, int32_t maker, Level* lvl) noexcept nogil:
    """Trade the taker against the head order `maker`; frees a maker that is done.
    ``ta``: the taker's account (``taker_account``); ``lvl``: the maker's level, which the
    matching loop found it by (NULL: out of the window, or not known); ``caller`` (NULL)
    picks the copy. True when the book's touch may have moved (``remove_order``)."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* m = &c.orders[maker]
    cdef int64_t q = taker.qty if taker.qty < m.qty else m.qty
    cdef int64_t notional = m.price * q
    cdef int32_t maker_owner = m.owner
    cdef int side
    cdef bint moved
    taker.qty -= q
    bs.notional += notional
    if ta.fees:
        if FillCaller is not InExecute:     # an EXECUTE's taker is outside (no account)
            if ta.account != NULL:
                account_add(ta.account, taker.side, notional, q, ta.fee_ppm)
        if maker_owner >= 0:
            account_add(&c.accounts[<int64_t>b * c.n_owners + maker_owner], m.side, notional,
                        q, fee_rate(c, maker_owner, 0, bs.maker_fee_ppm))
    else:                       # no fee anywhere: no look-ups (most flows)
        if FillCaller is not InExecute:
            if ta.account != NULL:
                account_trade(ta.account, taker.side, notional, q)
        if maker_owner >= 0:
            account_trade(&c.accounts[<int64_t>b * c.n_owners + maker_owner], m.side,
                          notional, q)
    if (taker.owner < 0) != (maker_owner < 0):
        # one side has no owner (feed flow, outside trades): the book's outside position
        # and cash take it, so that integrity can check the accounting identity; when
        # neither side has an owner the two entries would cancel, so none is made
        side = taker.side if taker.owner < 0 else m.side
        bs.outside_position += side * q
        bs.outside_cash -= side * notional
    bs.last_price = m.price
    bs.volume += q
    bs.trade_count += 1
    write_event(x, FILL, NO_REASON, b, taker.order_id, taker.side, taker.owner, m.price, q,
                taker.qty, m.order_id, maker_owner, m.qty - q)
    if lvl == NULL:
        if m.qty == q:
            return remove_order(c, b, maker)
        reduce_resting(c, b, maker, q)
        return False
    if m.qty == q:                      # remove_order, its level known
        moved = unrest_dense(c, bs, b, m, lvl)
        hash_erase(c, maker)
        slot_free(c, maker)
        return moved
    m.qty -= q                          # reduce_resting, its level known
    lvl.qty -= q
    lvl.removals += 1
    return False


cdef int64_t highest_ask(const Core* c, int32_t b) noexcept nogil:
    """The highest resting ask price (the worst a buy can pay), 0 when there are no asks:
    the highest dense ask level or the overflow list's tail (it is sorted best first),
    whichever is higher."""
    cdef const BookState* bs = &c.bk[b]
    cdef int64_t i = scan_down(c, b, SELL, c.window - 1)
    cdef int64_t worst = bs.base + i if i >= 0 else 0
    cdef int32_t tail = bs.overflow_tail[side_index(SELL)]
    if tail != NO_SLOT and c.orders[tail].price > worst:
        worst = c.orders[tail].price
    return worst


cdef bint taker_exceeds_notional(const Core* c, int32_t b, const Order* t) noexcept nogil:
    """Whether taker ``t``'s fills could push the book's gross notional past MAX_NOTIONAL.

    Each fill is at most ``t.qty`` lots at a price no worse than ``worst``: for a sell, the
    best bid (it trades down from there); for a buy, its limit or the highest ask, whichever
    is lower. A taker that does not cross cannot trade now (worst = 0). The common case
    costs one 128-bit multiply and compare, with the buy's limit as its worst price; only
    when that fails is the highest ask looked up (docs/semantics.md, Accounting)."""
    cdef const BookState* bs = &c.bk[b]
    cdef int64_t room = MAX_NOTIONAL - bs.notional
    cdef int64_t worst = opposite_best(bs, t.side)
    if not crosses(t.side, t.price, worst):
        return False
    if t.side == BUY:
        worst = t.price
    if not product_exceeds(t.qty, worst, room):
        return False
    if t.side == BUY:
        worst = highest_ask(c, b)
        if worst > t.price:
            worst = t.price
    return product_exceeds(t.qty, worst, room)


cdef bint fok_fillable(const Core* c, int32_t b, const Order* t) noexcept nogil:
    """Whether a FOK taker can fill completely, self-trade prevention included."""
    cdef int stp = c.bk[b].stp
    cdef int64_t need = t.qty
    cdef int32_t slot
    cdef LevelCursor k
    cursor_start(c, b, -t.side, &k)
    while cursor_next(c, &k) and crosses(t.side, t.price, k.price):
        slot = k.head
        while slot != NO_SLOT and c.orders[slot].price == k.price:
            if stp != NONE and t.owner >= 0 and c.orders[slot].owner == t.owner:
                if stp != CANCEL_MAKER:
                    return False
            else:
                need -= c.orders[slot].qty
                if need <= 0:
                    return True
            slot = c.orders[slot].next
    return False


cdef inline bint match_taker(MatchCaller* caller, Core* c, Ctx* x, int32_t b,
                       Order* t) noexcept nogil:
    """Trade taker `t` against the opposite side while it crosses. True when the book's
    touch may have moved (a maker left its level empty, or the overflow)."""
    cdef BookState* bs = &c.bk[b]
    cdef int stp = bs.stp       # read once: the fills' stores may alias the book state
    cdef int64_t best
    cdef int32_t maker
    cdef Order* m
    cdef Level* lvl
    cdef TakerAccount ta
    cdef bint moved = False
    taker_account(c, b, t, &ta)
    while t.qty > 0:
        best = opposite_best(bs, t.side)
        if not crosses(t.side, t.price, best):
            break
        # the oldest order at the best price: its level's head, or the overflow list's
        if in_window(c, bs, best):
            lvl = &c.lv[<int64_t>b * c.window + (best - bs.base)]
            maker = lvl.head
        else:
            lvl = NULL
            maker = bs.overflow_head[side_index(-t.side)]
        m = &c.orders[maker]
        if stp != NONE and t.owner >= 0 and m.owner == t.owner:
            if stp != CANCEL_TAKER:
                emit_order(x, CANCELLED, SELF_TRADE, b, m, m.price, m.qty, 0)
                moved |= remove_order(c, b, maker)
            if stp != CANCEL_MAKER:
                emit_order(x, CANCELLED, SELF_TRADE, b, t, shown_price(t), t.qty, 0)
                t.qty = 0
            continue
        moved |= fill(caller, c, x, b, t, &ta, maker, lvl)
    return moved


cdef inline int32_t rest_taker(Core* c, Ctx* x, int32_t b, const Order* t) noexcept nogil:
    """A GTC taker's remainder rests in a new slot, returned (the caller made sure one is
    free)."""
    cdef int32_t slot = slot_alloc(c)
    memcpy(&c.orders[slot], t, sizeof(Order))
    c.orders[slot].clock.timestamp = x.timestamp
    c.orders[slot].book = b
    hash_insert_hashed(c, slot, ctx_hash(x, t.order_id, b))
    rest(c, b, slot)
    return slot


cdef void run_taker(Core* c, Ctx* x, int32_t b, Order* t, bint announce) noexcept nogil:
    """A new (or triggered) order: post-only check, ACCEPTED, FOK check, match, remainder.
    A message's own LIMIT takes ``take_limit``, a copy of these steps."""
    cdef BookState* bs = &c.bk[b]
    cdef int32_t slot
    if t.tif == POST_ONLY and crosses(t.side, t.price, opposite_best(bs, t.side)):
        emit_order(x, REJECTED, POST_ONLY_WOULD_CROSS, b, t, t.price, t.qty, 0)
        return
    if taker_exceeds_notional(c, b, t):
        # refused before it trades, so no account can wrap; a triggered stop has been
        # announced (TRIGGERED), so it ends cancelled rather than rejected
        emit_order(x, REJECTED if announce else CANCELLED, NOTIONAL_LIMIT, b, t,
                   shown_price(t), t.qty, 0)
        return
    if announce:
        emit_order(x, ACCEPTED, NO_REASON, b, t, shown_price(t), t.qty, t.qty)
    if t.tif == FOK and not fok_fillable(c, b, t):
        emit_order(x, CANCELLED, FOK_UNFILLABLE, b, t, shown_price(t), t.qty, 0)
        return
    match_taker(<InRunTaker*>NULL, c, x, b, t)
    if t.qty == 0:
        return
    if t.tif == IOC or t.tif == FOK:
        emit_order(x, CANCELLED, IOC_REMAINDER, b, t, shown_price(t), t.qty, 0)
        return
    slot = rest_taker(c, x, b, t)
    if announce:                # the message's own order (not a triggered stop)
        x.rested = slot


cdef void take_limit(Core* c, Ctx* x, const Message* m) noexcept nogil:
    """A valid limit that may trade (it crosses, or is IOC / FOK): ``run_taker``'s steps for
    the message's own order, and then ``apply``'s (stops, the window), in a copy of their
    own for the most common taker: the announcements copy the message (``emit_own``), and
    the calls to run_taker and match_taker go (callgrind, QuantCup feed: docs/envs.md,
    "Sixth core round")."""
    cdef int32_t b = m.book
    cdef BookState* bs = &c.bk[b]
    cdef int64_t trades = bs.trade_count
    cdef Order t
    cdef bint moved = False
    t.order_id = m.order_id
    t.side = m.side
    t.owner = m.owner
    t.qty = m.qty
    t.op = LIMIT
    t.book = b
    t.price = m.price
    t.tif = m.tif
    if m.tif == POST_ONLY:
        # handle sends a post-only limit here only when it crosses (run_taker's test)
        if RLTRADER_DEBUG_BUILD and not crosses(m.side, m.price, opposite_best(bs, m.side)):
            abort()
        emit_own(x, REJECTED, POST_ONLY_WOULD_CROSS, m, 0)
    elif taker_exceeds_notional(c, b, &t):
        emit_own(x, REJECTED, NOTIONAL_LIMIT, m, 0)
    else:
        emit_own(x, ACCEPTED, NO_REASON, m, m.qty)
        if m.tif == FOK and not fok_fillable(c, b, &t):
            emit_own(x, CANCELLED, FOK_UNFILLABLE, m, 0)
        else:
            moved = match_taker(<InTakeLimit*>NULL, c, x, b, &t)
            if t.qty > 0:
                if m.tif == IOC or m.tif == FOK:
                    emit(x, CANCELLED, IOC_REMAINDER, b, m.order_id, m.side, m.owner, m.price,
                         t.qty, 0)
                else:
                    x.rested = rest_taker(c, x, b, &t)
                    moved = True    # its side's new best: it crossed the other's
    if bs.trade_count != trades and bs.n_stops > 0:
        run_stops(c, x, b)
        moved = True
    if moved:               # else the touch is as the message found it (touch_settled)
        keep_touch_in_window(c, b)


cdef inline bint rest_limit(Core* c, Ctx* x, int32_t b, const Message* m) noexcept nogil:
    """A valid GTC or post-only limit that does not cross: what ``run_taker`` does with it
    (ACCEPTED, then it rests in a new slot), without the taker's steps that cannot apply.
    True when the book's touch may have moved (``rest``)."""
    cdef int32_t slot = slot_alloc(c)      # validate made sure one is free
    cdef Order* o = &c.orders[slot]
    o.order_id = m.order_id
    o.price = m.price
    o.qty = m.qty
    o.clock.timestamp = x.timestamp
    o.owner = m.owner
    o.book = b
    o.side = m.side
    o.op = LIMIT
    o.tif = m.tif
    emit_own(x, ACCEPTED, NO_REASON, m, m.qty)     # b is m.book
    if x.free_bucket != NO_BUCKET:      # validation's probe ended there; nothing since
        hash_insert_at(c, slot, own_hash(x, m), x.free_bucket)
    else:
        hash_insert_hashed(c, slot, own_hash(x, m))
    x.rested = slot
    return rest(c, b, slot)


# ---------------------------------------------------------------------------------------
# stops
# ---------------------------------------------------------------------------------------

cdef inline void stop_unlink(Core* c, int32_t b, int32_t slot) noexcept nogil:
    cdef BookState* bs = &c.bk[b]
    cdef Order* o = &c.orders[slot]
    list_unlink(c.orders, o, &bs.stop_head, &bs.stop_tail)
    bs.n_stops -= 1


cdef int32_t collect_triggered(Core* c, int32_t b, int32_t queue) noexcept nogil:
    """Move every stop whose condition holds to the front of `queue`, in submission order.

    A collected stop keeps its slot; its clock now holds the price that triggered it.
    Returns the new queue head (linked through `next`).
    """
    cdef BookState* bs = &c.bk[b]
    cdef int64_t last = bs.last_price
    cdef int32_t slot = bs.stop_head, nxt, head = NO_SLOT, tail = NO_SLOT
    cdef Order* o
    while slot != NO_SLOT:
        o = &c.orders[slot]
        nxt = o.next
        if o.side * (last - o.clock.stop_price) >= 0:
            stop_unlink(c, b, slot)
            o.clock.stop_price = last
            o.next = NO_SLOT
            if tail == NO_SLOT:
                head = slot
            else:
                c.orders[tail].next = slot
            tail = slot
        slot = nxt
    if tail == NO_SLOT:
        return queue
    c.orders[tail].next = queue
    return head


cdef void run_stops(Core* c, Ctx* x, int32_t b) noexcept nogil:
    """Trigger and run stops, depth first, until the last trade price triggers no more."""
    cdef int32_t queue = collect_triggered(c, b, NO_SLOT), slot
    cdef int64_t trades
    cdef Order t
    while queue != NO_SLOT:
        slot = queue
        queue = c.orders[slot].next
        memcpy(&t, &c.orders[slot], sizeof(Order))
        emit_order(x, TRIGGERED, NO_REASON, b, &t, t.clock.stop_price, t.qty, t.qty)
        hash_erase(c, slot)
        slot_free(c, slot)
        if t.op == STOP:
            t.op = MARKET
            t.price = MAX_PRICE if t.side == BUY else 1
        else:
            t.op = LIMIT
        trades = c.bk[b].trade_count
        run_taker(c, x, b, &t, False)
        if c.bk[b].trade_count != trades:
            queue = collect_triggered(c, b, queue)
