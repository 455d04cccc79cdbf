# ---------------------------------------------------------------------------------------
# Arrival: the outbox and the merge of a step's decisions
# ---------------------------------------------------------------------------------------
#
# Each decision an agent sends leaves at a uniformly random time within the step (like
# the background traders', whose decisions the flow spreads over their arrival step) and
# arrives ``latency_ns`` plus uniform [0, jitter_ns) later, but never before the agent's
# previous decision (a session delivers in order, as an exchange gateway does). It waits
# in the outbox cell of its arrival step. When a book's step runs, the decisions arriving
# in it, agents' and background's, reach the book in the order of their arrival times:
# for equal latencies a uniformly random order, drawn from the book's own generator.

cdef inline int64_t this_cell(const State* s, int32_t e) noexcept nogil:
    """The outbox cell of book ``e``'s decisions that arrive in this step."""
    return (s.clock % s.p.delay) * s.p.n_envs + e


cdef void act_book_instant(State* s, int32_t e, int64_t cell,
                           int64_t timestamp) noexcept nogil:
    """``act_book`` when nothing has a latency (``instant``): the agents decide in row
    order (their arrays are read in sequence; a random order here cost a cache miss per
    agent array at 4,096 agents) into outbox cell ``cell``, as decisions that reach the
    book in this step's batch (``direct``: never in flight). ``merge_book`` then puts them
    in a random order. Nothing waits in a cell past the step, so ``_step_books`` gives the
    books of a group the group's first cells (book ``first + j`` cell ``j``): the same
    few kilobytes for every group, which stay in cache, instead of a cell per book, each
    a cache miss on 1,024 books."""
    cdef Sink out
    cdef int64_t first
    cdef int32_t i
    out.messages = &s.out_messages[cell * s.p.cell_messages]
    out.known = &s.out_known[cell * s.p.cell_messages]
    out.tags = &s.out_tags[cell * s.p.cell_messages]
    out.release = NULL
    out.direct = True
    out.n = s.out_n[cell]
    for i in range(s.p.n_agents):
        first = out.n
        decide(s, &out, e, i, timestamp)
        if out.n > first:
            s.group_start[cell * s.p.cell_groups + s.out_groups[cell]] = <int32_t>first
            s.out_groups[cell] += 1
    s.out_n[cell] = out.n


cdef void act_book(State* s, int32_t e, int64_t timestamp) noexcept nogil:
    """Book ``e``'s agents decide (the step began at ``timestamp``); each decision goes to
    the outbox cell of its arrival step, stamped with its arrival time. (Without a
    latency, ``_step_books`` calls ``act_book_instant`` instead.)"""
    cdef int64_t a, offset, arrival, k, cell, first, dt = s.p.dt_ns
    cdef int64_t now = s.clock % s.p.delay   # this step's cell
    cdef uint64_t* rng = &s.arrival_rng[4 * e]
    cdef int32_t i, g
    cdef double u
    cdef Sink out
    for i in range(s.p.n_agents):             # slots are as the last observe left them
        a = <int64_t>e * s.p.n_agents + i
        u = uniform(rng)                      # drawn whatever the agent does
        offset = <int64_t>(u * dt) + s.latency_ns[a]
        if s.p.jitter_ns > 0:
            offset += <int64_t>(uniform(rng) * s.p.jitter_ns)
        arrival = timestamp + offset
        if arrival <= s.last_arrival[a]:
            arrival = s.last_arrival[a] + 1
        k = 0 if arrival - timestamp < dt else (arrival - timestamp) // dt
        if k >= s.p.delay:                    # unreachable (delay covers the latencies)
            k = s.p.delay - 1
            arrival = timestamp + k * dt + dt - 1
        cell = now + k
        cell = (cell - s.p.delay if cell >= s.p.delay else cell) * s.p.n_envs + e
        first = s.out_n[cell]
        out.messages = &s.out_messages[cell * s.p.cell_messages]
        out.known = &s.out_known[cell * s.p.cell_messages]
        out.tags = &s.out_tags[cell * s.p.cell_messages]
        out.release = &s.out_release[cell * s.p.cell_messages]
        out.n = first
        out.direct = False
        decide(s, &out, e, i, arrival)
        if out.n == first:
            continue
        g = s.out_groups[cell]
        s.group_start[cell * s.p.cell_groups + g] = <int32_t>first
        s.group_key[cell * s.p.cell_groups + g] = <uint64_t>(
            <double>(arrival - timestamp - k * dt) / dt * (<uint64_t>1 << KEY_BITS))
        s.out_groups[cell] = g + 1
        s.out_n[cell] = out.n
        s.last_arrival[a] = arrival


cdef inline void landed(State* s, const Message* m, int64_t tag) noexcept nogil:
    """An agent's message arrives: its market order is no longer in flight, its new order
    is in the book (located after the core call)."""
    cdef int64_t a = <int64_t>m.book * s.p.n_agents + m.owner - s.p.first_owner
    cdef int64_t order_id
    if m.op == MARKET:
        s.inflight_ioc[2 * a + (m.side == SELL)] -= m.qty
    if tag >= 0:
        order_id = m.new_order_id if m.op == REPLACE else m.order_id
        if s.slots[tag].order_id == order_id and s.slots[tag].arena == IN_FLIGHT:
            s.slots[tag].arena = NO_SLOT


cdef inline void arrive(State* s, Sink* out, const Message* m, int32_t known,
                        int64_t tag, int64_t release) noexcept nogil:
    """Append an agent's message that arrives now; the lots its cancel held are free,
    and the cancelled order is no longer a ghost."""
    cdef int64_t a = <int64_t>m.book * s.p.n_agents + m.owner - s.p.first_owner, g
    out.messages[out.n] = m[0]
    out.known[out.n] = known
    out.tags[out.n] = tag
    out.n += 1
    landed(s, m, tag)
    if release != 0:
        s.cancelling[2 * a + (release < 0)] -= release if release > 0 else -release
        for g in range(a * s.p.n_ghosts, (a + 1) * s.p.n_ghosts):
            if s.ghost_id[g] == m.order_id:
                s.ghost_id[g] = 0
                s.n_ghost[a] -= 1
                break


cdef inline void copy_background(FlowState* f, int64_t at, int32_t g, int32_t groups,
                                 Sink* out) noexcept nogil:
    """Append the messages of background decision ``g`` of delay-line cell ``at``."""
    cdef const Message* src = &f.pending[at * f.bucket_cap]
    cdef const int32_t* starts = &f.group_start[at * f.bucket_cap]
    cdef int64_t first = starts[g], stop = starts[g + 1] if g + 1 < groups else f.pending_n[at]
    while first < stop:
        out.messages[out.n] = src[first]
        out.known[out.n] = NO_SLOT
        out.tags[out.n] = -1
        out.n += 1
        first += 1


cdef void merge_book(State* s, FlowState* f, int32_t e, int64_t cell, Sink* out,
                     bint instant) noexcept nogil:
    """Append to ``out`` the decisions that reach book ``e`` in this step, in the order of
    their arrival times: the agents' from outbox cell ``cell`` and, with a flow ``f``
    (else NULL), the background's from its delay line (each given a uniform arrival time
    within the step). Both cells are emptied. ``instant``: the cell was filled by
    ``act_book_instant`` (a uniform permutation instead of arrival times)."""
    cdef int64_t at = 0, j, n_keys = 0
    cdef int64_t first, stop, base = cell * s.p.cell_messages, gbase = cell * s.p.cell_groups
    cdef int32_t background = 0, g, n_groups = s.out_groups[cell]
    cdef uint64_t* rng = &s.arrival_rng[4 * e]
    cdef uint64_t mask = (<uint64_t>1 << GROUP_BITS) - 1
    if f != NULL:
        at = <int64_t>f.now * f.n_books + e
        if f.pending_n[at] > 0:
            background = f.group_n[at]
    if instant:                             # equal (zero) latencies: a uniform permutation
        n_keys = background + n_groups
        shuffle(s.keys, n_keys, rng)
    else:
        for g in range(background):
            s.keys[n_keys] = ((next_u64(rng) >> (64 - KEY_BITS)) << GROUP_BITS) | <uint64_t>g
            n_keys += 1
        for g in range(n_groups):
            s.keys[n_keys] = ((s.group_key[gbase + g] << GROUP_BITS)
                              | <uint64_t>(background + g))
            n_keys += 1
        if n_keys > 1:
            sort_keys(s.keys, s.keys_tmp, n_keys)
    for j in range(n_keys):
        g = <int32_t>(s.keys[j] & mask)
        if g < background:                  # a background decision: its messages, in order
            copy_background(f, at, g, background, out)
        else:
            g -= background
            first = s.group_start[gbase + g]
            stop = s.group_start[gbase + g + 1] if g + 1 < n_groups else s.out_n[cell]
            if instant:                     # decided as direct: nothing was in flight
                while first < stop:
                    out.messages[out.n] = s.out_messages[base + first]
                    out.known[out.n] = s.out_known[base + first]
                    out.tags[out.n] = s.out_tags[base + first]
                    out.n += 1
                    first += 1
            while first < stop:
                arrive(s, out, &s.out_messages[base + first], s.out_known[base + first],
                       s.out_tags[base + first], s.out_release[base + first])
                first += 1
    if f != NULL:
        f.pending_n[at] = 0
        f.group_n[at] = 0
    s.out_n[cell] = 0
    s.out_groups[cell] = 0


cdef int64_t act_all(State* s, int64_t timestamp) noexcept nogil:
    """Every agent decides; the agents' decisions arriving in this step go into the batch,
    in arrival order, stamped with their arrival times. Returns the batch's length. (The
    phase-by-phase path of a data source that merges by timestamp, a hybrid replay: every
    decision gets its random time within the step even without a latency, so that it
    interleaves with the recorded flow instead of going first.)"""
    cdef int32_t e
    s.batch.n = 0
    for e in range(s.p.n_envs):
        act_book(s, e, timestamp)
        merge_book(s, NULL, e, this_cell(s, e), &s.batch, False)
    return s.batch.n
