# ---------------------------------------------------------------------------------------
# Level mirrors: the queue ahead of the agents' orders at the long levels of a book with
# thousands of agents, from the core's events instead of walks
# ---------------------------------------------------------------------------------------
#
# With thousands of agents in a book, the levels at the touch hold about 2,000 orders
# each, most of them the agents', and each loses hundreds of orders a step (fills at its
# head, the agents' cancels anywhere): every agent queued there needs its queue ahead
# again, and ``queue_walks`` walks those levels whole, one cache miss per order
# (docs/envs.md, "Issue 20, third round"). A *mirror* is a copy of one such level's FIFO
# in an array (order id, lots, arena slot, agent), built by the walk that reads the level
# anyway (``walk_levels``) and then kept from the core's events of every call on the book
# (``follow_events``, the flow's ``event_hook`` and ``EnvKernel._submit``): a fill takes
# lots from its head; a cancel is noted by the arena slot its message named (a small
# table per book, and a bit per arena slot) and takes its entry out at the next pass; a
# new order that came to rest there (the core's ``known`` output) joins its tail with the
# lots its own fills left. No map from orders to entries is kept: the events and the
# arrays are read in order, and the table and bits stay in cache. At the next refresh the
# mirror is trusted only when it agrees with the level on its count, lots and
# ``removals`` (the core counts every order taken off or reduced there, and every
# recenter), the window has not moved, every noted cancel found its entry, and its
# entries' count and lots are the level's: an event it could not follow (a core call it
# did not see, a cancel that named no slot, a self-trade cancel, a stop) leaves a
# difference in one of them, or marks it invalid, and the level is walked again. Then
# one pass over the array gives the lots ahead of every agent's nearest order there, the
# same integer sums as the walk's. Outputs are unchanged.


cdef enum:
    MIRRORS = 8             # mirrored levels per book
    MIRROR_AGENTS = 1024    # books with at least this many agents mirror their levels
    MIRROR_BOOKS = 4        # ... when the kernel has at most this many books
    PENDING = 4096          # per book: cancels noted between two refreshes (at most half)
    PENDING_BITS = 12       # log2(PENDING)


cdef inline Mirror* mirror_at(State* s, int32_t e, int64_t price) noexcept nogil:
    """Book ``e``'s mirror of the level at ``price`` (valid or not), or NULL."""
    cdef Mirror* m = &s.mirrors[<int64_t>e * MIRRORS]
    cdef int32_t k
    for k in range(MIRRORS):
        if m[k].price == price:             # 0: unused (prices are >= 1)
            return &m[k]
    return NULL


cdef inline MEntry* mirror_entries(State* s, const Mirror* m) noexcept nogil:
    return &s.mentries[(m - s.mirrors) * <int64_t>s.mirror_cap]


cdef inline void free_mirror(State* s, int32_t e, Mirror* m) noexcept nogil:
    m.price = 0
    m.valid = 0
    s.n_mirrors[e] -= 1
    s.live_mirrors -= 1


cdef inline void invalidate_book(State* s, int32_t e) noexcept nogil:
    cdef int32_t k
    for k in range(MIRRORS):
        s.mirrors[<int64_t>e * MIRRORS + k].valid = 0


# ---- noted cancels: a table per book keyed by arena slot, and a bit per arena slot ------

cdef inline uint32_t pending_home(int32_t slot) noexcept nogil:
    return (<uint32_t>slot * 2654435761u) >> (32 - PENDING_BITS)


cdef inline bint pending_add(State* s, int32_t e, int32_t slot, int64_t order_id) noexcept nogil:
    """Note that order ``order_id`` at arena slot ``slot`` of book ``e`` was cancelled;
    False when it cannot be (no slot named, the table half full, a cancel of the slot
    still noted)."""
    cdef Pending* tab = &s.pending[<int64_t>e * PENDING]
    cdef uint32_t p
    if slot < 0 or slot >= s.bit_cap or s.pend_n[e] >= PENDING // 2:
        return False
    p = pending_home(slot)
    while tab[p].key != 0:
        if tab[p].key == slot + 1:
            if tab[p].order_id != 0:
                return False
            break                           # a cancel of the slot's last order, taken
        p = (p + 1) & (PENDING - 1)
    if tab[p].key == 0:
        s.pend_list[<int64_t>e * PENDING + s.pend_n[e]] = <int32_t>p
        s.pend_n[e] += 1
    tab[p].key = slot + 1
    tab[p].order_id = order_id
    s.pend_bits[<int64_t>e * s.bit_words + (slot >> 6)] |= (<uint64_t>1) << (slot & 63)
    return True


cdef inline bint pending_take(State* s, int32_t e, int32_t slot, int64_t order_id) noexcept nogil:
    """Whether order ``order_id`` at arena slot ``slot`` was noted cancelled (the note is
    taken)."""
    cdef Pending* tab
    cdef uint32_t p
    if slot >= s.bit_cap or not (s.pend_bits[<int64_t>e * s.bit_words + (slot >> 6)] >> (slot & 63)) & 1:
        return False
    tab = &s.pending[<int64_t>e * PENDING]
    p = pending_home(slot)
    while tab[p].key != 0:
        if tab[p].key == slot + 1:
            if tab[p].order_id == order_id:
                tab[p].order_id = 0
                return True
            return False
        p = (p + 1) & (PENDING - 1)
    return False


cdef void pending_clear(State* s, int32_t e) noexcept nogil:
    """Forget book ``e``'s noted cancels (after its refresh)."""
    cdef Pending* tab = &s.pending[<int64_t>e * PENDING]
    cdef int32_t k, p, slot
    for k in range(s.pend_n[e]):
        p = s.pend_list[<int64_t>e * PENDING + k]
        slot = tab[p].key - 1
        s.pend_bits[<int64_t>e * s.bit_words + (slot >> 6)] = 0
        tab[p].key = 0
        tab[p].order_id = 0
    s.pend_n[e] = 0


cdef void drop_mirrors(State* s) noexcept nogil:
    """Forget every mirror and noted cancel (the books were replaced, or the arena grew)."""
    cdef int64_t k
    if s.mirror_cap == 0:
        return
    for k in range(<int64_t>s.p.n_envs * MIRRORS):
        s.mirrors[k].price = 0
        s.mirrors[k].valid = 0
    for k in range(s.p.n_envs):
        s.n_mirrors[k] = 0
        pending_clear(s, <int32_t>k)
    s.live_mirrors = 0


# ---- following the core's calls ------------------------------------------------------

cdef inline void mirror_join(State* s, const Message* m, int32_t slot,
                             int64_t lots) noexcept nogil:
    """Message ``m``'s new order came to rest in arena slot ``slot`` with ``lots``: the
    tail of its level's mirror, if there is one."""
    cdef Mirror* mi
    cdef MEntry* en
    if m.op != LIMIT and m.op != REPLACE:
        return
    if <uint32_t>m.book >= <uint32_t>s.p.n_envs or s.n_mirrors[m.book] == 0:
        return
    mi = mirror_at(s, m.book, m.price)
    if mi == NULL or not mi.valid:
        return
    if mi.n == s.mirror_cap:
        mi.valid = 0                        # no room (walked again at the refresh)
        return
    en = &mirror_entries(s, mi)[mi.n]
    en.order_id = m.new_order_id if m.op == REPLACE and m.new_order_id != 0 else m.order_id
    en.qty = lots
    en.slot = slot
    en.agent = (m.owner - s.p.first_owner
                if s.p.first_owner <= m.owner < s.p.first_owner + s.p.n_agents else -1)
    mi.n += 1
    mi.count += 1
    mi.qty += lots


cdef inline void mirror_fill(State* s, int32_t e, Mirror* mi, const Event* ev) noexcept nogil:
    """A fill at the mirrored level: its maker is the level's head."""
    cdef MEntry* en = mirror_entries(s, mi)
    cdef int32_t r = mi.head
    while r < mi.n:
        if en[r].qty == 0:
            r += 1
        elif pending_take(s, e, en[r].slot, en[r].order_id):    # cancelled before
            en[r].qty = 0
            mi.pending -= 1
            r += 1
        else:
            break
    mi.head = r
    if (r == mi.n or en[r].order_id != ev.maker_order_id
            or en[r].qty - ev.qty != ev.maker_leaves_qty):
        mi.valid = 0
        return
    en[r].qty = ev.maker_leaves_qty
    mi.qty -= ev.qty
    mi.removals += 1
    if ev.maker_leaves_qty == 0:
        mi.count -= 1
        mi.head = r + 1


cdef inline int64_t new_order_id(const Message* m) noexcept nogil:
    return m.new_order_id if m.op == REPLACE and m.new_order_id != 0 else m.order_id


cdef void follow_events(void* ctx, const Message* msgs, const int32_t* known,
                        int64_t n_msgs, const Event* events, int64_t n_events,
                        int64_t index_offset) noexcept nogil:
    """The mirrors follow one chunk of a core call on the kernel's batch (``msgs`` lies in
    it; ``Flow.event_hook``, ``EnvKernel._submit``): fills, cancels and the new orders
    that came to rest, in the order the core processed them (a message's new order rests
    after its own fills). ``ctx`` is the ``State``."""
    cdef State* s = <State*>ctx
    cdef const Event* ev
    cdef const int32_t* hints
    cdef Mirror* mi
    cdef int64_t k, i = 0, at, rest, new_id
    if s.live_mirrors == 0 or n_msgs == 0:
        return
    hints = s.pre_known + (msgs - s.batch.messages)
    rest = msgs[0].qty
    new_id = new_order_id(&msgs[0])
    for k in range(n_events):
        ev = &events[k]
        at = ev.message_index - index_offset
        while i < at:                       # message i is done: did its order rest?
            if known != NULL and known[i] != NO_SLOT:
                mirror_join(s, &msgs[i], known[i], rest)
            i += 1
            rest = msgs[i].qty
            new_id = new_order_id(&msgs[i])
        if ev.kind == FILL and ev.order_id == new_id:
            rest = ev.leaves_qty            # the message's order took: what is left rests
        if <uint32_t>ev.book >= <uint32_t>s.p.n_envs or s.n_mirrors[ev.book] == 0:
            continue
        if ev.kind == FILL:
            mi = mirror_at(s, ev.book, ev.price)
            if mi != NULL and mi.valid:
                mirror_fill(s, ev.book, mi, ev)
        elif ev.kind == CANCELLED:
            if ev.reason == CANCEL_REQUESTED or ev.reason == REPLACED:
                mi = mirror_at(s, ev.book, ev.price)
                if mi != NULL and mi.valid:
                    if pending_add(s, ev.book, hints[at], ev.order_id):
                        mi.pending += 1
                        mi.count -= 1
                        mi.qty -= ev.qty
                        mi.removals += 1
                    else:
                        mi.valid = 0
            elif ev.reason != IOC_REMAINDER and ev.reason != FOK_UNFILLABLE:
                invalidate_book(s, ev.book)     # self-trade, a stop: not followed
        elif ev.kind != ACCEPTED and ev.kind != REJECTED:
            invalidate_book(s, ev.book)         # reduced, triggered: not followed
    while i < n_msgs:
        if known != NULL and known[i] != NO_SLOT:
            mirror_join(s, &msgs[i], known[i], rest)
        i += 1
        if i < n_msgs:
            rest = msgs[i].qty
            new_id = new_order_id(&msgs[i])


# ---- at the refresh --------------------------------------------------------------------

cdef bint mirror_trusted(State* s, int32_t e, Mirror* mi) noexcept nogil:
    """Whether mirror ``mi`` of book ``e`` followed every change of its level (else it
    is freed)."""
    cdef const Core* c = s.core
    cdef int64_t idx = mi.price - c.bk[e].base
    cdef const Level* lv
    if mi.valid and mi.base == c.bk[e].base and 0 <= idx < c.window:
        lv = &c.lv[<int64_t>e * c.window + idx]
        if lv.count == mi.count and lv.qty == mi.qty and lv.removals == mi.removals:
            return True
    free_mirror(s, e, mi)
    return False


cdef bint mirror_settle(State* s, int32_t e, Mirror* mi) noexcept nogil:
    """Take the cancelled entries out of mirror ``mi`` (the rest move to its front);
    whether every noted cancel found its entry and the entries' count and lots are the
    level's."""
    cdef const Core* c = s.core
    cdef const Level* lv = &c.lv[<int64_t>e * c.window + mi.price - c.bk[e].base]
    cdef MEntry* en = mirror_entries(s, mi)
    cdef int64_t lots = 0
    cdef int32_t r, w = 0
    for r in range(mi.head, mi.n):
        if en[r].qty == 0:
            continue
        if pending_take(s, e, en[r].slot, en[r].order_id):
            en[r].qty = 0
            mi.pending -= 1
            continue
        if w != r:
            en[w] = en[r]
        lots += en[w].qty
        w += 1
    mi.n = w
    mi.head = 0
    return mi.pending == 0 and w == lv.count and lots == lv.qty


cdef void mirror_aheads(State* s, int32_t e, const Mirror* mi) noexcept nogil:
    """The lots ahead of every agent's nearest order at the (settled) mirrored level."""
    cdef const MEntry* en = mirror_entries(s, mi)
    cdef int64_t ahead = 0, a, agents = <int64_t>e * s.p.n_agents
    cdef int32_t r
    for r in range(mi.n):
        if en[r].agent >= 0:
            a = agents + en[r].agent
            if s.best_slot[a] == en[r].slot:
                s.queue_ahead[a] = <double>ahead
        ahead += en[r].qty


cdef Mirror* new_mirror(State* s, int32_t e, int64_t price) noexcept nogil:
    """A free mirror of book ``e`` for the level at ``price`` (the walk fills it), or NULL
    (mirrors off, not following the calls, none free)."""
    cdef Mirror* m
    cdef int32_t k
    if s.mirror_cap == 0 or not s.following:
        return NULL
    m = &s.mirrors[<int64_t>e * MIRRORS]
    for k in range(MIRRORS):
        if m[k].price == 0:
            m[k].price = price
            m[k].valid = 1
            m[k].n = 0
            m[k].head = 0
            m[k].count = 0
            m[k].qty = 0
            m[k].pending = 0
            m[k].base = s.core.bk[e].base
            s.n_mirrors[e] += 1
            s.live_mirrors += 1
            return &m[k]
    return NULL
