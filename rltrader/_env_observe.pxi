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
    s.clock += 1


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
    if s.mid[e] == s.mid[e]:
        s.variance[e] += s.p.flow_alpha * ((mid - s.mid[e]) * (mid - s.mid[e]) - s.variance[e])
    s.prev_volume[e] = bs.volume
    s.mid[e] = mid
    s.mid_hist[e * lag + s.n_updates % lag] = mid
    s.episode_step[e] += 1
    s.ending[e] = s.episode_step[e] >= s.p.horizon


cdef inline int64_t next_level(const uint64_t* bits, int64_t words, int side, int64_t j,
                               int64_t stop) noexcept nogil:
    """The index of the first non-empty level of a side's bitmap from ``j`` on, away from
    the touch (BUY: down to ``stop``, SELL: up to ``stop``), or -1: one bit-scan per
    64 levels."""
    cdef int64_t word = j >> 6
    cdef uint64_t m
    if side == BUY:
        if j < stop:
            return -1
        m = bits[word] & (((<uint64_t>2) << (j & 63)) - 1)
        while m == 0:
            word -= 1
            if word < 0 or (word << 6) + 63 < stop:
                return -1
            m = bits[word]
        j = (word << 6) + 63 - __builtin_clzll(m)
        return j if j >= stop else -1
    if j > stop:
        return -1
    m = bits[word] & ((~(<uint64_t>0)) << (j & 63))
    while m == 0:
        word += 1
        if word >= words or (word << 6) > stop:
            return -1
        m = bits[word]
    j = (word << 6) + __builtin_ctzll(m)
    return j if j <= stop else -1


cdef inline int64_t scan_stop(const State* s, int32_t e, int side, int64_t i) noexcept nogil:
    """The last level index a scan from index ``i`` of ``side`` may reach: ``scan_ticks``
    away, inside the window, at prices >= 1."""
    cdef const Core* c = s.core
    cdef int64_t stop
    if side == BUY:
        stop = i - s.p.scan_ticks
        if stop < 1 - c.bk[e].base:
            stop = 1 - c.bk[e].base
        return stop if stop > 0 else 0
    stop = i + s.p.scan_ticks
    return stop if stop < c.window - 1 else c.window - 1


cdef inline void level(const State* s, const Level* lv, int64_t price, int64_t j,
                       double mid, float* prices, float* sizes, int64_t* cached,
                       int32_t n) noexcept nogil:
    """Level ``n`` of a side (dense index ``j``) into the features and the cache."""
    prices[n] = <float>((price - mid) / s.p.price_scale)
    sizes[n] = <float>(lv[j].qty / s.p.qty_scale)
    cached[2 * n] = price
    cached[2 * n + 1] = lv[j].qty


cdef void top_levels(const State* s, int32_t e, int side, int64_t start, double mid,
                     float* prices, float* sizes) noexcept nogil:
    """The first ``depth`` non-empty levels of ``side`` from ``start`` (its best price)
    away from the touch, within ``scan_ticks`` ticks of it and at prices >= 1: price
    relative to ``mid`` / ``price_scale`` and lots / ``qty_scale`` into ``prices[n]`` and
    ``sizes[n]``, and (price, lots) into ``levels`` (the book being observed). The side's
    level bitmap gives each one bit-scan (one word kept across levels, a loop per side:
    this runs for every book and step, ``next_level`` for the rare deep walks).
    Out-of-window levels are not searched."""
    cdef const Core* c = s.core
    cdef const Level* lv = &c.lv[<int64_t>e * c.window]
    cdef int64_t base = c.bk[e].base, i = start - base, stop, word, j
    cdef const uint64_t* bits = c.bits + (<int64_t>e * 2 + (side == SELL)) * c.words
    cdef int64_t* cached = &s.levels[(side == SELL) * s.p.depth * 2]
    cdef uint64_t m
    cdef int32_t n = 0
    if i < 0 or i >= c.window:
        s.n_levels[side == SELL] = 0
        return
    stop = scan_stop(s, e, side, i)
    word = i >> 6
    if side == BUY:                         # downwards: i, i - 1, ... >= stop
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
            m &= ~((<uint64_t>1) << (j & 63))
            level(s, lv, base + j, j, mid, prices, sizes, cached, n)
            n += 1
    else:                                   # upwards: i, i + 1, ... <= stop
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
            m &= m - 1
            level(s, lv, base + j, j, mid, prices, sizes, cached, n)
            n += 1
    s.n_levels[side == SELL] = n


cdef enum:
    OWN_CAP = 64            # own orders of a side the valuation excludes: the slots
                            # (MAX_ORDERS) and the ghosts found first


cdef void ghost_lots(const State* s, int32_t e, int64_t a, int side, int64_t* price,
                     int64_t* qty, int32_t* n) noexcept nogil:
    """Append agent ``a``'s ghosts on ``side`` still resting in book ``e`` (price, leaves)
    to ``price`` and ``qty`` (up to OWN_CAP entries in all)."""
    cdef const Core* c = s.core
    cdef int64_t g
    cdef int32_t slot
    for g in range(a * s.p.n_ghosts, (a + 1) * s.p.n_ghosts):
        if s.ghost_id[g] == 0 or s.ghost_side[g] != side or n[0] >= OWN_CAP:
            continue
        slot = s.ghost_arena[g]
        if slot < 0 or c.orders[slot].order_id != s.ghost_id[g] or c.orders[slot].book != e:
            slot = find_order(c, e, s.ghost_id[g])
        if slot == NO_SLOT or c.orders[slot].state != RESTING:
            continue
        price[n[0]] = c.orders[slot].price
        qty[n[0]] = c.orders[slot].qty
        n[0] += 1


cdef inline int64_t taker_fee(const State* s, int32_t e, int64_t a) noexcept nogil:
    """The taker fee (ppm) agent ``a`` of book ``e`` pays: its owner's tier, else the
    book's (``Books.set_owner_fees``)."""
    cdef int64_t ppm = s.core.owner_fees[2 * (s.p.first_owner + a - <int64_t>e * s.p.n_agents)
                                         + 1]
    return s.core.bk[e].taker_fee_ppm if ppm == BOOK_FEE else ppm


cdef double liquidation_value(const State* s, int32_t e, int64_t a,
                              int64_t position) noexcept nogil:
    """What ``position`` would fetch now: sold into the bids (bought back from the asks,
    a negative value) level by level from the touch, the agent's own orders excluded,
    net of the taker fee. Lots the levels within ``scan_ticks`` of the touch cannot take
    are valued ``scan_ticks`` beyond it. Ticks x lots. The observed levels (``levels``,
    written by ``market_features`` of this book just before) come first; the bitmap is scanned only
    beyond them. (The agent's own orders of that side are gathered once into locals:
    read through the state per level, they were most of the cost.)"""
    cdef const Core* c = s.core
    cdef const BookState* bs = &c.bk[e]
    cdef const Level* lv = &c.lv[<int64_t>e * c.window]
    cdef int side = BUY if position > 0 else SELL        # the side it trades against
    cdef int64_t left = position if position > 0 else -position, j, k, stop, lots, far
    cdef int64_t price = 0, base = bs.base
    cdef int32_t n = s.n_levels[side == SELL], level, n_own = 0, o
    cdef const int64_t* cached = &s.levels[(side == SELL) * s.p.depth * 2]
    cdef int32_t n_slots = s.p.n_slots
    cdef uint32_t held
    cdef const Slot* slots = &s.slots[a * n_slots]
    cdef int64_t own_price[OWN_CAP]
    cdef int64_t own_qty[OWN_CAP]
    cdef const uint64_t* bits
    cdef double notional = 0.0
    if position == 0:
        return 0.0
    k = 2 * a + (side == SELL)            # fast path: the touch takes it all even if every
    if n > 0 and cached[1] - s.resting[k] - s.cancelling[k] >= left:   # own lot sat there
        notional = <double>left * cached[0]
        return side * notional - notional * taker_fee(s, e, a) * 1e-6
    held = s.slot_mask[a]                 # n_slots <= MAX_ORDERS
    while held != 0:
        k = __builtin_ctzll(held)
        held &= held - 1
        if slots[k].arena >= 0 and slots[k].side == side:
            own_price[n_own] = slots[k].price
            own_qty[n_own] = slots[k].leaves
            n_own += 1
    if s.n_ghost[a] > 0:                  # orders whose cancel is in flight: still own
        ghost_lots(s, e, a, side, own_price, own_qty, &n_own)
    for level in range(n):
        price = cached[2 * level]
        lots = cached[2 * level + 1]
        for o in range(n_own):
            if own_price[o] == price:
                lots -= own_qty[o]
        if lots >= left:
            notional += <double>left * price
            left = 0
            break
        notional += <double>lots * price
        left -= lots
    if left > 0 and n == s.p.depth:         # beyond the observed levels
        bits = c.bits + (<int64_t>e * 2 + (side == SELL)) * c.words
        stop = scan_stop(s, e, side, cached[0] - base)
        j = price - base - side
        while left > 0:
            j = next_level(bits, c.words, side, j, stop)
            if j < 0:
                break
            lots = lv[j].qty
            for o in range(n_own):
                if own_price[o] == base + j:
                    lots -= own_qty[o]
            if lots > left:
                lots = left
            notional += <double>lots * (base + j)
            left -= lots
            j -= side
    if left > 0:
        far = own_touch(s, e, side) - side * s.p.scan_ticks
        notional += <double>left * (far if far > 0 else 0)
    return side * notional - notional * taker_fee(s, e, a) * 1e-6


cdef inline double position_value(const State* s, int32_t e, int64_t a,
                                  int64_t position) noexcept nogil:
    if s.p.action_mode == EXECUTION:        # shortfall against the arrival price
        return position * s.arrival[a]
    if s.p.valuation == MID:
        return position * s.mid[e]
    return liquidation_value(s, e, a, position)


cdef inline double parent_mark(const State* s, int32_t e, int64_t a,
                               int64_t position) noexcept nogil:
    """EXECUTION, ``mark_parent``: what completing the parent's unfilled lots now, into
    the book, would add to the shortfall account (``cash + position x arrival``): the
    walk of the book from the touch and the taker fee, against the arrival price (above
    0 only where the price has moved the parent's way by more than that cost)."""
    cdef int64_t unfilled = s.parent_lots[a] - s.parent_side[a] * (position
                                                                    - s.base_position[a])
    cdef int64_t q
    if unfilled <= 0:
        return 0.0
    q = -s.parent_side[a] * unfilled        # the position whose liquidation completes it
    return liquidation_value(s, e, a, q) - q * s.arrival[a]


cdef void market_features(State* s, int32_t e) noexcept nogil:
    """The book's part of the observation: top levels, spread, returns, imbalance."""
    cdef const Core* c = s.core
    cdef const BookState* bs = &c.bk[e]
    cdef int32_t K = s.p.depth
    cdef int64_t lag = s.p.return_lag + 1
    cdef double mid = book_mid(s, e)
    cdef float* out = s.market
    s.mid[e] = mid
    memset(out, 0, (4 * K + MARKET_EXTRA) * sizeof(float))
    s.n_levels[0] = 0
    s.n_levels[1] = 0
    if bs.best_bid != EMPTY_BID:
        top_levels(s, e, BUY, bs.best_bid, mid, out, out + K)
    if bs.best_ask != EMPTY_ASK:
        top_levels(s, e, SELL, bs.best_ask, mid, out + 2 * K, out + 3 * K)
    if bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK:
        out[4 * K] = <float>((bs.best_ask - bs.best_bid) / s.p.price_scale)
    if s.n_updates >= 1:
        out[4 * K + 1] = <float>((mid - s.mid_hist[e * lag + (s.n_updates - 1) % lag])
                                 / s.p.price_scale)
    if s.n_updates >= lag - 1:
        out[4 * K + 2] = <float>((mid - s.mid_hist[e * lag + (s.n_updates + 1) % lag])
                                 / s.p.price_scale)
    if s.flow_total[e] > 0.0:
        out[4 * K + 3] = <float>(s.flow_signed[e] / s.flow_total[e])
    out[4 * K + 4] = <float>(sqrt(s.variance[e]) / s.p.price_scale)
    out[4 * K + 5] = <float>(s.flow_total[e] / s.p.qty_scale)
    if bs.last_price > 0:
        out[4 * K + 6] = <float>((bs.last_price - mid) / s.p.price_scale)
    if s.p.day_ns > 0:
        out[4 * K + 7] = <float>(<double>((s.now_ns - s.p.day_open_ns) % s.p.day_ns
                                          + (s.p.day_ns if s.now_ns < s.p.day_open_ns else 0))
                                 / s.p.day_ns)


cdef double lots_ahead(const Core* c, int32_t e, int32_t target) noexcept nogil:
    """Lots queued ahead of the resting order in arena slot ``target`` of book ``e``: a
    walk back from the order and, in the dense window, one back from its level's tail
    (ahead = level lots - its own - behind); the first to end gives the exact sum."""
    cdef int64_t price = c.orders[target].price, idx = price - c.bk[e].base
    cdef int64_t ahead = 0, behind = 0, level_qty = 0
    cdef int32_t back = c.orders[target].prev, front = NO_SLOT
    cdef const Level* lv
    if 0 <= idx < c.window:
        lv = &c.lv[<int64_t>e * c.window + idx]
        front = lv.tail
        level_qty = lv.qty - c.orders[target].qty
    while True:
        if front == target:
            return <double>(level_qty - behind)
        if back == NO_SLOT or c.orders[back].price != price:
            return <double>ahead
        ahead += c.orders[back].qty
        back = c.orders[back].prev
        if front != NO_SLOT:
            behind += c.orders[front].qty
            front = c.orders[front].prev


cdef inline void slot_features(const State* s, int32_t e, int64_t a,
                               float* out) noexcept nogil:
    """ORDER mode: per order slot of agent ``a``, (price - mid) / ``price_scale``, lots x
    side / ``qty_scale``, 1 while in flight, and the lots queued ahead of it / ``qty_scale``
    while it rests (-1 otherwise); zeros and -1 for an empty slot."""
    cdef int64_t k, j
    cdef int32_t arena
    cdef float* o
    for j in range(s.p.n_slots):
        k = a * s.p.n_slots + j
        o = out
        out += SLOT_FEATURES
        if s.slots[k].order_id == 0:
            o[0] = 0.0
            o[1] = 0.0
            o[2] = 0.0
            o[3] = -1.0
            continue
        arena = s.slots[k].arena
        o[0] = <float>((s.slots[k].price - s.mid[e]) / s.p.price_scale)
        o[1] = <float>(s.slots[k].side * s.slots[k].leaves / s.p.qty_scale)
        o[2] = 1.0 if arena == IN_FLIGHT else 0.0
        if arena < 0:
            o[3] = -1.0
        elif arena == s.best_slot[a] and s.queue_ahead[a] >= 0.0:
            o[3] = <float>(s.queue_ahead[a] / s.p.qty_scale)   # walked already
        else:
            o[3] = <float>(lots_ahead(s.core, e, arena) / s.p.qty_scale)


cdef void observe_book(State* s, int32_t e, float* obs, bint reward) noexcept nogil:
    """Observation rows of book ``e``'s agents into ``obs``; rewards when ``reward``."""
    cdef int32_t K = s.p.depth, i, j, mlen = 4 * K + MARKET_EXTRA
    cdef int64_t a, position, dv, dp
    cdef double pnl, delta, x, r, da, db, var, mark = 0.0
    cdef bint marked = s.p.action_mode == EXECUTION and s.p.mark_parent
    cdef const Account* acc
    cdef float* row
    cdef const float* market = s.market
    cdef bint penalised = s.p.running_penalty != 0.0 or s.p.terminal_penalty != 0.0
    cdef float time_left = <float>(<double>(s.p.horizon - s.episode_step[e]) / s.p.horizon)
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        acc = account(s, e, i)
        position = acc.position
        pnl = (<double>(acc.cash - s.base_cash[a]) + position_value(s, e, a, position)
               - s.base_value[a])
        if marked:
            mark = parent_mark(s, e, a, position)
            pnl += mark
        row = &obs[a * s.p.obs_dim]
        for j in range(mlen):           # ~100 bytes: cheaper than a call to memcpy
            row[j] = market[j]
        row[mlen] = <float>(<double>position / s.position_limit[a])
        row[mlen + 1] = <float>(pnl / s.order_qty[a] / s.p.pnl_scale)
        row[mlen + 2] = <float>(<double>s.n_live[a] / s.p.n_slots)
        row[mlen + 3] = <float>(<double>s.n_inflight[a] / s.p.n_slots)
        row[mlen + 4] = <float>(s.queue_ahead[a] / s.p.qty_scale if s.queue_ahead[a] >= 0
                                else -1.0)
        row[mlen + 5] = time_left
        row[mlen + 6] = <float>s.log_size[a]
        row[mlen + 7] = <float>s.limited[a]
        dv = acc.volume - s.obs_volume[a]           # lots bought and sold since the last
        dp = position - s.obs_position[a]           # observation (volume = bought + sold)
        row[mlen + 8] = <float>(0.5 * (dv + dp) / s.order_qty[a])
        row[mlen + 9] = <float>(0.5 * (dv - dp) / s.order_qty[a])
        s.obs_volume[a] = acc.volume
        s.obs_position[a] = position
        if s.p.action_mode == ORDER:
            slot_features(s, e, a, row + mlen + AGENT_FEATURES)
        elif s.p.action_mode == EXECUTION:
            row[mlen + AGENT_FEATURES] = <float>s.parent_side[a]
            row[mlen + AGENT_FEATURES + 1] = <float>(<double>parent_left(s, e, a)
                                                     / s.parent_lots[a])
            row[mlen + AGENT_FEATURES + 2] = <float>(s.parent_side[a] * (s.mid[e] - s.arrival[a])
                                                     / s.p.price_scale)
        if not reward:                  # an episode's start: the first reward carries the
            s.prev_pnl[a] = pnl - mark  # whole parent's mark, so the rewards still sum
            continue                    # to the shortfall
        delta = (pnl - s.prev_pnl[a]) / (s.parent_lots[a] if s.p.action_mode == EXECUTION
                                         else s.order_qty[a])
        s.prev_pnl[a] = pnl
        if penalised:
            x = <double>position / s.order_qty[a]
            delta -= s.p.running_penalty * x * x
            if s.ending[e]:
                delta -= s.p.terminal_penalty * x * x
        if s.p.reward_kind == PNL:
            r = delta
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
    withdrawn: baselines from the accounts (cash, and the value of a carried position),
    fresh first observations."""
    cdef int32_t e
    for e in range(s.p.n_envs):
        if every or s.ending[e]:
            begin_book(s, e)


cdef inline void new_parent(State* s, int32_t e, int64_t a, int64_t position) noexcept nogil:
    """EXECUTION: the episode's parent order, priced at arrival at the mid: the carried
    position's unwind when there is one (so the account stays within one parent), else
    ``parent_default`` lots on a side drawn from the book's generator."""
    if position != 0:
        s.parent_side[a] = SELL if position > 0 else BUY
        s.parent_lots[a] = position if position > 0 else -position
    else:
        s.parent_side[a] = BUY if uniform(&s.arrival_rng[4 * e]) < 0.5 else SELL
        s.parent_lots[a] = s.parent_default[a]
    s.arrival[a] = s.mid[e]


cdef void begin_book(State* s, int32_t e) noexcept nogil:
    """``begin_episodes`` of book ``e``."""
    cdef int32_t i
    cdef int64_t a
    cdef const Account* acc
    s.episode_step[e] = 0
    s.ending[e] = 0
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        s.sharpe_a[a] = 0.0
        s.sharpe_b[a] = 0.0
        s.slot_next[a] = 0
        s.limited[a] = 0.0
    refresh(s, e)
    market_features(s, e)
    for i in range(s.p.n_agents):
        a = <int64_t>e * s.p.n_agents + i
        acc = account(s, e, i)
        s.base_cash[a] = acc.cash
        s.base_position[a] = acc.position
        if s.p.action_mode == EXECUTION:    # a parent order: the carried position's
            new_parent(s, e, a, acc.position)   # unwind, or a fresh one
        s.base_value[a] = position_value(s, e, a, acc.position)
    observe_book(s, e, s.obs, False)


