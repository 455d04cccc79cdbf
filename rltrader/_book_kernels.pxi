# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: the batch kernels (process, profile), event bounds, prefetching, cycle counter.

# ---------------------------------------------------------------------------------------
# kernels: event bounds, prefetching, the batch loops
# ---------------------------------------------------------------------------------------

cdef int64_t max_events(const Core* c, const Message* m) noexcept nogil:
    """An upper bound on the events one message can emit (docs/semantics.md).

    Each taker emits at most 4 events besides fills and maker cancels, and every fill or
    maker cancel but one per taker removes a resting order; triggered stops are takers too.
    """
    if m.book < 0 or m.book >= c.n_books:
        return 1
    cdef const BookState* bs = &c.bk[m.book]
    if m.op == CANCEL or m.op == REDUCE:
        return 1
    cdef int64_t makers
    if bs.n_stops == 0:
        # one taker: its fills and maker cancels each remove an opposite order but one;
        # each fill takes at least one lot, and only self-trade prevention cancels makers
        # without filling, so without it a taker of q lots fills at most q makers
        if m.op == EXECUTE:
            return 1
        if (m.op == LIMIT or m.op == MARKET) and (m.side == BUY or m.side == SELL):
            makers = bs.n_resting[side_index(-m.side)]
            if (bs.stp == NONE or m.owner < 0) and 0 < m.qty < makers:
                makers = m.qty
            return 6 + makers
    return 6 + bs.n_resting[0] + bs.n_resting[1] + 6 * <int64_t>bs.n_stops


cdef inline void prefetch_record(const void* p, size_t size) noexcept nogil:
    """Request both ends of a record: an order (56 bytes) or a level (24 bytes) straddles
    two cache lines at most slots, and the arrays need not start on a line."""
    prefetch(p)
    prefetch(<const char*>p + size - 1)


cdef inline void prefetch_address(uintptr_t address) noexcept nogil:
    """Request the line at ``address``, which may lie past the end of an array (a
    prefetch never faults): the batch loop requests the message ``AHEAD_MESSAGES`` ahead
    without testing that it exists (3 instructions a message fewer)."""
    prefetch(<const void*>address)


cdef inline void look_ahead(const Core* c, const Message* m, const int32_t* known,
                            uint64_t* hash) noexcept nogil:
    """Start loading what message ``m`` will touch first: its book, its price's level,
    the id's hash bucket and the order's known slot when the caller gave one in range;
    keep the id's hash for the message (``Ctx.hash``; computed whatever the book, as the
    loop without look-ahead does). The level's address needs the book's ``base`` now: the
    book states (128 bytes a book) stay cached while the levels, orders and hash table of
    many books do not, and a level requested only half as far ahead (``AHEAD_FAR / 2``)
    arrived late (W3 x 512: -8 %)."""
    cdef uint64_t h = id_hash(m.order_id, m.book)
    cdef int64_t level
    hash[0] = h
    if <uint32_t>m.book < <uint32_t>c.n_books:
        level = m.price - c.bk[m.book].base     # loads the book's first line
        if <uint64_t>level < <uint64_t>c.window:
            prefetch_record(&c.lv[<int64_t>m.book * c.window + level], sizeof(Level))
        prefetch(&c.table[hash_home(c, h)])
        if known != NULL and <uint32_t>known[0] < <uint32_t>c.capacity:
            prefetch_record(&c.orders[known[0]], sizeof(Order))


cdef enum:
    # look-ahead distances in messages: the book, the level and the id's hash bucket are
    # loaded FAR messages ahead; NEAR (FAR / 2) ahead, once the bucket has arrived, the
    # order it points to. FAR is the caller's (``Books._run_known_ahead``): AHEAD_FAR by
    # default, at most AHEAD_FAR_MAX. RING: size of the ring of hashes kept for the
    # messages in between (a power of two > AHEAD_FAR_MAX)
    AHEAD_FAR = 4
    AHEAD_FAR_MAX = 12
    AHEAD_RING = 16
    # the message records themselves (64 bytes, one cache line each) are requested MESSAGES
    # ahead, whatever the core's size: a batch is read once, front to back, and on this
    # project's VM the hardware prefetcher does not keep up with it (W3 x 512: -14 % time,
    # W3 and QuantCup a few %; benchmarks/core_pair.py)
    AHEAD_MESSAGES = 16


cdef inline void prefetch_ahead(const Core* c, const Message* msgs, const int32_t* known,
                                int64_t i, int64_t n, uint64_t* hashes, bint fresh,
                                int64_t far) noexcept nogil:
    """Start loading what the next messages will touch: across many books, matching time
    is mostly memory latency. ``far`` ahead: ``look_ahead`` (into the ring ``hashes``);
    ``far / 2`` ahead: the order in the id's home bucket, which the message will read (its
    bucket arrived meanwhile). ``fresh`` as in ``process_kernel``."""
    cdef const Message* m
    cdef int64_t j
    cdef uint32_t entry
    if i + far < n:
        j = i + far
        look_ahead(c, &msgs[j], known + j if known != NULL else NULL,
                   &hashes[j & (AHEAD_RING - 1)])
    if i + (far >> 1) < n:
        j = i + (far >> 1)
        m = &msgs[j]
        if <uint32_t>m.book < <uint32_t>c.n_books:
            entry = c.table[hash_home(c, hashes[j & (AHEAD_RING - 1)])]
            # an op on an existing order reads the order its id leads to; a new order's
            # duplicate-id probe (none when ``fresh``) reads an order only where another
            # id sits at home in its home bucket (HASH_DISPLACED clear), to compare it
            if entry != 0 and (not is_new_order(m.op)
                               or not (fresh or (entry & HASH_DISPLACED))):
                prefetch_record(&c.orders[(entry & HASH_SLOT) - 1], sizeof(Order))


cdef extern from *:
    """
    #define RLTRADER_PREFETCH_BYTES (1024 * 1024)
    """
    # a core whose levels, live orders and id hash fit in this many bytes stays in the
    # caches (L2 is at least this big on the machines we target, 2 MiB on this project's
    # reference VM): look-ahead prefetching then only costs instructions, and the kernels
    # skip it
    const int64_t PREFETCH_BYTES "RLTRADER_PREFETCH_BYTES"


cdef inline bint prefetch_pays(const Core* c) noexcept nogil:
    """Whether the core's hot state outgrows the caches, so that loading the next
    messages' book, level, hash bucket and order ahead of time pays. The arena counts by
    its live orders, not its capacity: free slots are not touched (a freed slot is reused
    first, while it is still cached)."""
    return (<int64_t>c.n_books * c.window * sizeof(Level)
            + <int64_t>c.n_live * sizeof(Order)
            + <int64_t>(c.hash_mask + 1) * sizeof(uint32_t)) > PREFETCH_BYTES


cdef inline bint events_fit(const Core* c, const Message* m, int64_t w,
                            int64_t out_cap) noexcept nogil:
    """``w + max_events(m) <= out_cap``, through a cheaper bound first: no message emits
    more than 6 + the book's resting orders + 6 x its pending stops (``max_events``)."""
    cdef const BookState* bs
    if <uint32_t>m.book < <uint32_t>c.n_books:
        bs = &c.bk[m.book]
        if w + 6 + bs.n_resting[0] + bs.n_resting[1] + 6 * <int64_t>bs.n_stops <= out_cap:
            return True
    return w + max_events(c, m) <= out_cap


cdef inline int admit(const Core* c, const Message* m, int64_t w,
                      int64_t out_cap) noexcept nogil:
    """The prologue of every kernel, per message: ``OK`` when message ``m`` may run now;
    ``EVENTS_FULL`` when its events might not fit after the ``w`` already written;
    ``ARENA_FULL`` when it needs an order slot, none is free and the arena may still grow
    (``Books`` grows it and resumes at ``m``; at ``max_orders`` validation rejects it with
    ``CAPACITY`` instead)."""
    if not events_fit(c, m, w, out_cap):
        return EVENTS_FULL
    if c.free_head == NO_SLOT and c.capacity < c.max_orders and may_wait(m):
        return ARENA_FULL
    return OK


cdef inline int profile_bin(int op) noexcept nogil:
    """Row-major bin ``op * 3`` of the profile's ``(EXECUTE + 1, 3)`` arrays. The comparison
    is on a signed int: an int8 op below LIMIT or above EXECUTE (any of -128..127) goes to
    row 0, the row of no valid op, so it can never index outside the arrays."""
    if op < <int>LIMIT or op > <int>EXECUTE:
        return 0
    return op * 3


cdef int process_kernel(Core* c, const Message* msgs, int32_t* known, bint fresh,
                        int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                        int64_t* consumed, int64_t* written,
                        int64_t far=AHEAD_FAR) noexcept nogil:
    """Process ``msgs[:n]``; ``known`` (or NULL) and ``fresh`` as in ``Books._run_known``;
    ``far``: the look-ahead distance in messages (clamped to [2, AHEAD_FAR_MAX]), when the
    core is large enough for it (``prefetch_pays``).

    Three copies of the loop run it: two with the default distance a compile-time constant
    (without known slots, the common call, and with them), one with the caller's. A
    distance only known at run time cost the loop about 9 instructions a message with the look-ahead on and 3.5 with it off (a
    register held through the loop; callgrind on the QuantCup feed, docs/envs.md)."""
    if far == AHEAD_FAR and known == NULL:
        return process_loop(<AheadUnknown*>NULL, c, msgs, NULL, fresh, n, index_offset,
                            out, out_cap, consumed, written, AHEAD_FAR)
    if far == AHEAD_FAR:
        return process_loop(<AheadDefault*>NULL, c, msgs, known, fresh, n, index_offset,
                            out, out_cap, consumed, written, AHEAD_FAR)
    return process_loop(<AheadCaller*>NULL, c, msgs, known, fresh, n, index_offset, out,
                        out_cap, consumed, written, far)


cdef int process_loop(Ahead* tag, Core* c, const Message* msgs, int32_t* known, bint fresh,
                      int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                      int64_t* consumed, int64_t* written, int64_t far) noexcept nogil:
    """``process_kernel``'s loop; ``tag`` (NULL) picks the specialisation: with
    ``AheadDefault`` the distance is the constant AHEAD_FAR whatever ``far`` says."""
    cdef Ctx x
    cdef int64_t i, w0, bound
    cdef const Message* m
    cdef int status = OK
    cdef uint64_t hashes[AHEAD_RING]
    cdef bint ahead = prefetch_pays(c)
    x.out = out
    x.w = 0
    x.fresh = fresh
    x.known = NO_SLOT       # per message only when the caller gives slots
    x.rested = NO_SLOT
    if Ahead is AheadUnknown:
        known = NULL        # so the compiler drops every test of it
    if Ahead is AheadDefault or Ahead is AheadUnknown:
        far = AHEAD_FAR
    else:
        far = 2 if far < 2 else (AHEAD_FAR_MAX if far > AHEAD_FAR_MAX else far)
    for i in range(AHEAD_MESSAGES if n > AHEAD_MESSAGES else n):
        prefetch(&msgs[i])      # the loop requests the rest AHEAD_MESSAGES ahead
    if ahead:
        for i in range(far if n > far else n):
            look_ahead(c, &msgs[i], known + i if known != NULL else NULL, &hashes[i])
    for i in range(n):
        m = &msgs[i]
        prefetch_address(<uintptr_t>msgs + <uintptr_t>(i + AHEAD_MESSAGES) * sizeof(Message))
        if ahead:
            prefetch_ahead(c, msgs, known, i, n, hashes, fresh, far)
            x.hash = hashes[i & (AHEAD_RING - 1)]
        else:
            x.hash = id_hash(m.order_id, m.book)
        x.hash_id = m.order_id
        # no message emits more than 6 + its book's resting orders + 6 x its pending
        # stops (max_events), which max_book_load bounds for every book: most messages
        # pass this before admit's per-book bound is needed (a bound by the live orders of
        # all books failed for every message across 512 books: admit ran per message)
        if (x.w + 6 + c.max_book_load > out_cap or c.free_head == NO_SLOT
                or RLTRADER_DEBUG_BUILD):
            status = admit(c, m, x.w, out_cap)
            if status != OK:
                break
        x.timestamp = m.timestamp
        x.message_index = <int32_t>(i + index_offset)
        if known != NULL:
            x.known = known[i]
            x.rested = NO_SLOT
        w0 = x.w
        bound = max_events(c, m) if RLTRADER_DEBUG_BUILD else 0
        handle(tag, c, &x, m)
        if known != NULL:
            known[i] = x.rested
        if RLTRADER_DEBUG_BUILD and x.w - w0 > bound:
            abort()         # the event bound is wrong: the caller's buffer may overflow
    consumed[0] = i if status != OK else n
    written[0] = x.w
    return status


cdef int profile_kernel(Core* c, const Message* msgs, int64_t n, Event* out, int64_t out_cap,
                        int64_t* consumed, uint64_t* ticks, int64_t* counts) noexcept nogil:
    """process_kernel, timing every message with the cycle counter.

    Bins are ``op * 3 + outcome`` (outcome 0: no trade, 1: traded, 2: rejected); ops out of
    range go to row 0 (``profile_bin``), where they are always rejected (``BAD_OP``). The event buffer is reused from the start for every message.
    """
    cdef Ctx x
    cdef int64_t i, trades
    cdef const Message* m
    cdef uint64_t t0, t1
    cdef int bin_, status = OK
    x.out = out
    x.known = NO_SLOT
    x.rested = NO_SLOT
    x.fresh = False
    for i in range(n):
        m = &msgs[i]
        x.hash = id_hash(m.order_id, m.book)
        x.hash_id = m.order_id
        status = admit(c, m, 0, out_cap)   # the buffer is reused from 0 per message
        if status != OK:
            break
        x.w = 0
        x.timestamp = m.timestamp
        x.message_index = <int32_t>i
        trades = c.bk[m.book].trade_count if 0 <= m.book < c.n_books else 0
        t0 = rltrader_ticks()
        handle(<InProfile*>NULL, c, &x, m)
        t1 = rltrader_ticks()
        bin_ = profile_bin(m.op)
        if x.out[0].kind == REJECTED:
            bin_ += 2
        elif c.bk[m.book].trade_count != trades:
            bin_ += 1
        ticks[bin_] += t1 - t0
        counts[bin_] += 1
    consumed[0] = i if status != OK else n
    return status


def ticks_per_second(double seconds=0.05):
    """Rate of the cycle counter behind ``Books.profile``, measured over ``seconds``."""
    import time
    cdef unsigned long long t0 = rltrader_ticks()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass
    return (rltrader_ticks() - t0) / (time.perf_counter() - start)


def timer_overhead_ticks(int repeats=1001):
    """Median cycle-counter ticks of an empty timed region (subtracted by profilers)."""
    cdef int i
    cdef unsigned long long t0
    samples = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        t0 = rltrader_ticks()
        samples[i] = rltrader_ticks() - t0
    return float(np.median(samples))
