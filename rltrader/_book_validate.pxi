# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: one message: validation (reject reasons), then its handling.

# ---------------------------------------------------------------------------------------
# one message
# ---------------------------------------------------------------------------------------

cdef inline bint is_new_order(int op) noexcept nogil:
    return op == LIMIT or op == MARKET or op == STOP or op == STOP_LIMIT


cdef inline bint may_wait(const Message* m) noexcept nogil:
    # new orders that need a slot of their own: resting limits and stops
    return ((m.op == LIMIT and (m.tif == GTC or m.tif == POST_ONLY))
            or m.op == STOP or m.op == STOP_LIMIT)


cdef inline bint valid_price(int64_t p) noexcept nogil:
    return 1 <= p <= MAX_PRICE


cdef inline int32_t find_known(const Core* c, const Ctx* x, const Message* m,
                               bint has_known) noexcept nogil:
    """The slot of the live order ``m.order_id`` of ``m.book`` (NO_SLOT: none): the
    caller's ``x.known`` when that slot holds it (a live order never moves), else through
    the hash table. ``has_known`` False: the kernel gave no slots (``x.known`` is NO_SLOT),
    a constant in its loop, so that the test goes."""
    cdef const Order* o
    cdef int32_t known = x.known
    if RLTRADER_DEBUG_BUILD and not has_known and known != NO_SLOT:
        abort()
    if has_known and <uint32_t>known < <uint32_t>c.capacity:
        o = &c.orders[known]
        if o.order_id == m.order_id and o.book == m.book and o.state != FREE:
            return known
    return find_order_hashed(c, m.book, m.order_id, own_hash(x, m))


cdef inline bint taken(const Core* c, Ctx* x, int32_t b, int64_t order_id,
                       uint64_t h) noexcept nogil:
    """A live order of the message's book ``b`` has this id (``h``: its id_hash). With
    ``x.fresh`` the caller vouches that none has, and the probe is skipped (debug builds
    still probe, and abort if it was wrong). A probe that finds none leaves where it ended
    in ``x.free_bucket``."""
    if not x.fresh:
        return probe_order(c, b, order_id, h, &x.free_bucket) != NO_SLOT
    x.free_bucket = NO_BUCKET
    if RLTRADER_DEBUG_BUILD and find_order(c, b, order_id) != NO_SLOT:
        abort()
    return False


cdef inline int check_addressing(const Core* c, const Message* m) noexcept nogil:
    """The reject reason of a message with a valid op from its book, owner and order id
    (in this order), NO_REASON when they are in range."""
    if <uint32_t>m.book >= <uint32_t>c.n_books:
        return BAD_BOOK
    if <uint64_t>(<int64_t>m.owner + 1) > <uint64_t>c.n_owners:    # [NO_OWNER, n_owners)
        return BAD_OWNER
    if m.order_id <= 0:
        return BAD_ORDER_ID
    return NO_REASON


cdef inline int new_order_reason(const Core* c, Ctx* x, const Message* m) noexcept nogil:
    """The reject reason of a new order by the checks in their order: addressing, then
    ``check_new_order``."""
    cdef int reason = check_addressing(c, m)
    return reason if reason != NO_REASON else check_new_order(c, x, m)


cdef inline bint limit_in_range(const Core* c, const Message* m) noexcept nogil:
    """Whether every field ``check_addressing`` and ``check_new_order`` range-check is in
    range for a LIMIT: book, owner, id, side, tif, qty, price. False sends the message
    through the checks in their order, which name its reject reason. A branch a test (a
    well-formed batch takes none): fewer instructions than the tests combined with ``&``
    into one branch (QuantCup feed, docs/envs.md, "Sixth core round")."""
    if <uint32_t>m.book >= <uint32_t>c.n_books:
        return False
    if <uint64_t>(<int64_t>m.owner + 1) > <uint64_t>c.n_owners:    # [NO_OWNER, n_owners)
        return False
    if m.order_id <= 0:
        return False
    if ((<int>m.side + 1) & ~2) != 0:                               # BUY or SELL
        return False
    if <uint8_t>m.tif > <uint8_t>POST_ONLY:                         # GTC .. POST_ONLY
        return False
    if <uint64_t>m.qty - 1 >= <uint64_t>MAX_QTY:                    # 1 .. MAX_QTY
        return False
    return <uint64_t>m.price - 1 < <uint64_t>MAX_PRICE             # valid_price


cdef inline int check_new_order(const Core* c, Ctx* x, const Message* m) noexcept nogil:
    """``validate`` for a new order (LIMIT, MARKET, STOP, STOP_LIMIT) whose book, owner and
    id are in range."""
    cdef int op = m.op
    if m.side != BUY and m.side != SELL:
        return BAD_SIDE
    if op == MARKET or op == STOP:
        if m.tif == POST_ONLY:
            return BAD_TIF      # any other tif means IOC, FOK means FOK
    elif m.tif < GTC or m.tif > POST_ONLY:
        return BAD_TIF
    if m.qty < 1 or m.qty > MAX_QTY:
        return BAD_QTY
    if (op == LIMIT or op == STOP_LIMIT) and not valid_price(m.price):
        return BAD_PRICE
    if (op == STOP or op == STOP_LIMIT) and not valid_price(m.stop_price):
        return BAD_PRICE
    if taken(c, x, m.book, m.order_id, own_hash(x, m)):
        return DUPLICATE_ORDER_ID
    if may_wait(m) and c.free_head == NO_SLOT:
        return CAPACITY         # Books grows the arena first while it may
    return NO_REASON


cdef inline int check_order_op(const Core* c, Ctx* x, const Message* m, int32_t* found,
                               bint has_known) noexcept nogil:
    """``validate`` for an op on an existing order (CANCEL, REDUCE, EXECUTE, REPLACE) whose
    book, owner and id are in range; ``found`` receives the order's slot; ``has_known`` as
    in ``find_known``."""
    cdef int op = m.op
    cdef int32_t slot = find_known(c, x, m, has_known)
    found[0] = slot
    if slot == NO_SLOT:
        return UNKNOWN_ORDER
    if m.owner != NO_OWNER and m.owner != c.orders[slot].owner:
        # a message that names an owner acts only on that owner's orders; feeds that
        # carry no owner (NO_OWNER) keep acting on any order, at no extra cost
        return NOT_OWNER
    if op == REDUCE:
        return BAD_QTY if m.qty <= 0 else NO_REASON
    if op == CANCEL:
        return NO_REASON
    if c.orders[slot].state != RESTING:
        return NOT_RESTING
    if op == EXECUTE:
        if m.qty < 1 or m.qty > c.orders[slot].qty:
            return BAD_QTY
        if product_exceeds(m.qty, c.orders[slot].price, MAX_NOTIONAL - c.bk[m.book].notional):
            return NOTIONAL_LIMIT
        return NO_REASON
    # REPLACE
    if m.qty < 1 or m.qty > MAX_QTY:
        return BAD_QTY
    if not valid_price(m.price):
        return BAD_PRICE
    if m.new_order_id < 0:
        return BAD_ORDER_ID
    if (m.new_order_id != 0 and m.new_order_id != m.order_id
            and taken(c, x, m.book, m.new_order_id, id_hash(m.new_order_id, m.book))):
        return DUPLICATE_ORDER_ID
    if m.tif < GTC or m.tif > POST_ONLY:
        return BAD_TIF
    return NO_REASON


cdef int validate(const Core* c, Ctx* x, const Message* m, int32_t* found) noexcept nogil:
    """The reject reason for a message, NO_REASON when it is valid (docs/semantics.md).

    For operations on an existing order, `found` receives its slot; ``x.known`` is the
    caller's guess of it (NO_SLOT: none; checked). ``x.fresh``: new order ids are known
    not to be live in the book (``taken``).
    """
    cdef int op = m.op
    if m.book < 0 or m.book >= c.n_books:
        return BAD_BOOK
    if op < LIMIT or op > EXECUTE:
        return BAD_OP
    cdef int reason = check_addressing(c, m)
    if reason != NO_REASON:
        return reason
    if is_new_order(op):
        return check_new_order(c, x, m)
    return check_order_op(c, x, m, found, True)


# The kernels' loops, by tag type (NULL pointers of these structs pick a copy of a fused
# function): process_loop has three copies, and each copy of the loop calls a copy of
# ``handle`` of its own, as does profile_kernel. GCC inlines a static function called from
# one place within far larger limits than one called from several (``FillCaller``):
# ``handle`` shared by four loops was inlined or not as its size crossed GCC's limits.

cdef struct AheadDefault:
    # process_loop's copy whose look-ahead distance is AHEAD_FAR
    char unused

cdef struct AheadCaller:
    # process_loop's copy whose look-ahead distance is the caller's
    char unused

cdef struct AheadUnknown:
    # process_loop's copy for the common call (Books.process): distance AHEAD_FAR and no
    # known slots (``known`` NULL), so that the loop tests neither per message (callgrind,
    # QuantCup feed: README, "Fifth core round")
    char unused

cdef struct InProfile:
    # profile_kernel
    char unused

ctypedef fused Ahead:
    AheadDefault
    AheadCaller
    AheadUnknown

ctypedef fused Loop:
    AheadDefault
    AheadCaller
    AheadUnknown
    InProfile


cdef struct InApply:
    # cancel_order's tag in apply
    char unused

ctypedef fused CancelCaller:
    # a copy of cancel_order for each loop's handle, where GCC inlines it (called from one
    # place), and one for apply: cancels that hit are a large part of real feeds (W3: a
    # call per cancel was 13 instructions a message, docs/envs.md, "Sixth core round")
    AheadDefault
    AheadCaller
    AheadUnknown
    InProfile
    InApply


cdef inline bint cancel_order(CancelCaller* caller, Core* c, Ctx* x, int32_t b, int32_t slot,
                              int reason) noexcept nogil:
    """Cancel the live order in ``slot``; True when the book's touch may have moved (a
    resting order's ``remove_order``; a pending stop is not on the book)."""
    cdef Order* o = &c.orders[slot]
    emit_order(x, CANCELLED, reason, b, o, o.price, o.qty, 0)
    if o.state == STOP_PENDING:
        stop_unlink(c, b, slot)
        hash_erase(c, slot)
        slot_free(c, slot)
        return False
    return remove_order(c, b, slot)


cdef inline void handle(Loop* loop, Core* c, Ctx* x, const Message* m) noexcept nogil:
    """One message: validation, then its effect. Cancels and limits that rest at once
    (most of any feed) run here, inline in the kernel's loop (``loop``, NULL, picks the
    loop's copy); everything else in ``apply``, which runs every op the same way."""
    # the loops of Books.process and of the profile give no known slots
    cdef bint has_known = not (Loop is AheadUnknown or Loop is InProfile)
    cdef int32_t slot = NO_SLOT
    cdef int op = m.op
    cdef int reason
    if op == CANCEL:
        reason = check_addressing(c, m)
        if reason == NO_REASON:
            reason = check_order_op(c, x, m, &slot, has_known)
            if reason == NO_REASON:
                # the book's touch moved only if it says so (touch_settled)
                if cancel_order(loop, c, x, m.book, slot, CANCEL_REQUESTED):
                    keep_touch_in_window(c, m.book)
                return
    elif op == LIMIT:
        if limit_in_range(c, m):
            # check_new_order's checks left after its range checks, in its order
            if taken(c, x, m.book, m.order_id, own_hash(x, m)):
                reason = DUPLICATE_ORDER_ID
            elif (m.tif == GTC or m.tif == POST_ONLY) and c.free_head == NO_SLOT:
                reason = CAPACITY
            else:
                reason = NO_REASON
            if RLTRADER_DEBUG_BUILD and reason != new_order_reason(c, x, m):
                abort()         # the fast path must name what the checks in order name
        else:
            reason = new_order_reason(c, x, m)
        if reason == NO_REASON:
            if ((m.tif == GTC or m.tif == POST_ONLY)
                    and not crosses(m.side, m.price, opposite_best(&c.bk[m.book], m.side))):
                # nothing to match: it rests, no trade; the touch moved only if it
                # says so (touch_settled)
                if rest_limit(c, x, m.book, m):
                    keep_touch_in_window(c, m.book)
            else:
                take_limit(c, x, m)
            return
    else:
        reason = validate(c, x, m, &slot)
        if reason == NO_REASON:
            apply(c, x, m, slot)
            return
    emit_own(x, REJECTED, reason, m, 0)


cdef void apply(Core* c, Ctx* x, const Message* m, int32_t slot) noexcept nogil:
    """A valid message's effect (``slot``: its order's, for an op on an existing order),
    then the stops its trades trigger, then the window follows the touch."""
    cdef int32_t b = m.book
    cdef BookState* bs
    cdef Order t
    cdef Order* o
    cdef TakerAccount ta
    cdef int64_t trades
    bs = &c.bk[b]
    trades = bs.trade_count
    if (m.op == LIMIT and (m.tif == GTC or m.tif == POST_ONLY)
            and not crosses(m.side, m.price, opposite_best(bs, m.side))):
        rest_limit(c, x, b, m)      # the common case: nothing to match, it rests
    elif m.op == LIMIT or m.op == MARKET:
        t.order_id = m.order_id
        t.side = m.side
        t.owner = m.owner
        t.qty = m.qty
        t.op = m.op
        t.book = b
        if m.op == MARKET:
            t.price = MAX_PRICE if m.side == BUY else 1
            t.tif = FOK if m.tif == FOK else IOC
        else:
            t.price = m.price
            t.tif = m.tif
        run_taker(c, x, b, &t, True)
    elif m.op == STOP or m.op == STOP_LIMIT:
        slot = slot_alloc(c)
        o = &c.orders[slot]
        o.order_id = m.order_id
        o.side = m.side
        o.owner = m.owner
        o.qty = m.qty
        o.book = b
        o.op = m.op
        o.state = STOP_PENDING
        o.clock.stop_price = m.stop_price
        if m.op == STOP:
            o.price = 0
            o.tif = FOK if m.tif == FOK else IOC
        else:
            o.price = m.price
            o.tif = m.tif
        o.next = NO_SLOT
        o.prev = bs.stop_tail
        if bs.stop_tail != NO_SLOT:
            c.orders[bs.stop_tail].next = slot
        else:
            bs.stop_head = slot
        bs.stop_tail = slot
        bs.n_stops += 1
        raise_book_load(c, bs)
        hash_insert_hashed(c, slot, own_hash(x, m))
        emit_order(x, ACCEPTED, NO_REASON, b, o, o.price, o.qty, o.qty)
        if bs.trade_count > 0:
            run_stops(c, x, b)
    elif m.op == CANCEL:
        cancel_order(<InApply*>NULL, c, x, b, slot, CANCEL_REQUESTED)
    elif m.op == REDUCE:
        o = &c.orders[slot]
        if m.qty >= o.qty:
            cancel_order(<InApply*>NULL, c, x, b, slot, CANCEL_REQUESTED)
        else:
            reduce_resting(c, b, slot, m.qty)
            emit_order(x, REDUCED, NO_REASON, b, o, o.price, m.qty, o.qty)
    elif m.op == EXECUTE:
        t.order_id = 0
        t.owner = NO_OWNER
        t.side = -c.orders[slot].side
        t.qty = m.qty
        ta.account = NULL       # outside trade: no taker account
        ta.fee_ppm = 0
        ta.fees = c.fees
        fill(<InExecute*>NULL, c, x, b, &t, &ta, slot, NULL)
    else:   # REPLACE
        o = &c.orders[slot]
        t.order_id = m.new_order_id if m.new_order_id != 0 else m.order_id
        t.side = o.side
        t.owner = o.owner
        t.book = b
        t.op = LIMIT
        t.price = m.price
        t.qty = m.qty
        t.tif = m.tif
        cancel_order(<InApply*>NULL, c, x, b, slot, REPLACED)
        run_taker(c, x, b, &t, True)
    if bs.trade_count != trades and bs.n_stops > 0:
        run_stops(c, x, b)
    keep_touch_in_window(c, b)
