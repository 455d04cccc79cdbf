# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: check_integrity: every invariant of docs/semantics.md, checked from scratch.

# ---------------------------------------------------------------------------------------
# integrity
# ---------------------------------------------------------------------------------------

def _fail(str msg):
    raise AssertionError(f"integrity: {msg}")


cdef _check_integrity(Books books):
    cdef Core* c = &books.core
    cdef int32_t b, slot, prev, n_bid, n_ask, n_seen, n_stops, free_count, entries
    cdef int64_t i, q, best, lvl_price, last_price
    cdef int side
    cdef Level* lvl
    cdef const BookState* bs
    cdef const Order* o
    cdef LevelCursor cur
    cdef uint64_t word, h
    cdef bint has, expect
    cdef unsigned char[::1] live_seen = np.zeros(c.capacity, dtype=np.uint8)

    for b in range(c.n_books):
        bs = &c.bk[b]
        if bs.best_bid != EMPTY_BID and bs.best_ask != EMPTY_ASK and bs.best_bid >= bs.best_ask:
            _fail(f"book {b} crossed: bid {bs.best_bid} >= ask {bs.best_ask}")
        if not touch_settled(c, bs):
            # every message ends with the touch where keep_touch_in_window leaves it; the
            # kernels call it only when a message may have moved the touch
            _fail(f"book {b}: touch {bs.best_bid}/{bs.best_ask} outside the window at base "
                 f"{bs.base}, spread under half a window: a re-centre was skipped")
        # dense levels: FIFO links, aggregates, bitmaps
        for i in range(c.window):
            lvl = &c.lv[<int64_t>b * c.window + i]
            q = 0
            n_seen = 0
            prev = NO_SLOT
            slot = lvl.head
            while slot != NO_SLOT:
                o = &c.orders[slot]
                if o.state != RESTING or o.book != b or o.price != bs.base + i or o.qty <= 0:
                    _fail(f"book {b} level {bs.base + i}: bad order in slot {slot}")
                if o.prev != prev:
                    _fail(f"book {b} level {bs.base + i}: broken prev link at slot {slot}")
                if live_seen[slot]:
                    _fail(f"slot {slot} linked twice")
                live_seen[slot] = True
                q += o.qty
                n_seen += 1
                prev = slot
                slot = o.next
                if n_seen > c.capacity:
                    _fail(f"book {b} level {bs.base + i}: cycle")
            if prev != lvl.tail or q != lvl.qty or n_seen != lvl.count:
                _fail(f"book {b} level {bs.base + i}: qty/count/tail {lvl.qty}/{lvl.count}/"
                     f"{lvl.tail} but orders give {q}/{n_seen}/{prev}")
            for side in range(1, -2, -2):   # BUY, then SELL
                word = side_bits(c, b, side)[i >> 6]
                has = (word >> (i & 63)) & 1
                expect = n_seen > 0 and c.orders[lvl.head].side == side
                if has != expect:
                    _fail(f"book {b} level {bs.base + i}: bitmap bit {has} for side {side}")
        for side in range(1, -2, -2):   # BUY, then SELL
            for i in range(c.words):
                word = side_bits(c, b, side)[i]
                has = (side_summary(c, b, side)[i >> 6] >> (i & 63)) & 1
                if has != (word != 0):
                    _fail(f"book {b} side {side}: summary bit of word {i} is {has}")
            # overflow list: out of window, sorted best first, links consistent
            prev = NO_SLOT
            slot = bs.overflow_head[side_index(side)]
            while slot != NO_SLOT:
                o = &c.orders[slot]
                if (o.state != RESTING or o.book != b or o.side != side or o.qty <= 0
                        or in_window(c, bs, o.price) or o.prev != prev):
                    _fail(f"book {b} side {side}: bad overflow order in slot {slot}")
                if prev != NO_SLOT and better(side, o.price, c.orders[prev].price):
                    _fail(f"book {b} side {side}: overflow list out of order")
                if live_seen[slot]:
                    _fail(f"slot {slot} linked twice")
                live_seen[slot] = True
                prev = slot
                slot = o.next
            if prev != bs.overflow_tail[side_index(side)]:
                _fail(f"book {b} side {side}: overflow tail")
            # counts and cached best
            n_seen = 0
            best = EMPTY_BID if side == BUY else EMPTY_ASK
            cursor_start(c, b, side, &cur)
            while cursor_next(c, &cur):
                if n_seen == 0:
                    best = cur.price
                slot = cur.head
                while slot != NO_SLOT and c.orders[slot].price == cur.price:
                    if c.orders[slot].side != side:
                        _fail(f"book {b}: order of side {-side} among side {side}")
                    n_seen += 1
                    slot = c.orders[slot].next
            if n_seen != bs.n_resting[side_index(side)]:
                _fail(f"book {b} side {side}: n_resting {bs.n_resting[side_index(side)]} "
                     f"but {n_seen} orders")
            if best != (bs.best_bid if side == BUY else bs.best_ask):
                _fail(f"book {b} side {side}: cached best "
                     f"{bs.best_bid if side == BUY else bs.best_ask}, actual {best}")
        # pending stops
        n_stops = 0
        prev = NO_SLOT
        slot = bs.stop_head
        while slot != NO_SLOT:
            o = &c.orders[slot]
            if o.state != STOP_PENDING or o.book != b or o.prev != prev or o.qty <= 0:
                _fail(f"book {b}: bad stop in slot {slot}")
            if live_seen[slot]:
                _fail(f"slot {slot} linked twice")
            live_seen[slot] = True
            n_stops += 1
            prev = slot
            slot = o.next
        if n_stops != bs.n_stops or prev != bs.stop_tail:
            _fail(f"book {b}: n_stops {bs.n_stops} / tail {bs.stop_tail}, list has {n_stops}")
        if bs.n_resting[0] + bs.n_resting[1] + 6 * <int64_t>bs.n_stops > c.max_book_load:
            _fail(f"book {b}: load {bs.n_resting[0] + bs.n_resting[1] + 6 * bs.n_stops} "
                  f"above the core's max_book_load {c.max_book_load}")
    if _any_fee(c) and not c.fees:
        _fail("a book or owner has a fee, and the core's fees flag is off")
    # arena: live + free = capacity, every live order findable through the hash
    free_count = 0
    slot = c.free_head
    while slot != NO_SLOT:
        if c.orders[slot].state != FREE or live_seen[slot]:
            _fail(f"free list holds slot {slot} in state {c.orders[slot].state}")
        free_count += 1
        if free_count > c.capacity:
            _fail("free list cycle")
        slot = c.orders[slot].next
    n_live = int(np.asarray(live_seen).sum())
    if n_live != c.n_live or n_live + free_count != c.capacity:
        _fail(f"{n_live} linked live + {free_count} free != capacity {c.capacity} "
             f"(n_live counter {c.n_live})")
    entries = 0
    for h in range(c.hash_mask + 1):
        if c.table[h] != 0:
            entries += 1
            slot = (c.table[h] & HASH_SLOT) - 1
            if not live_seen[slot]:
                _fail(f"hash entry {h} points at dead slot {slot}")
            if ((c.table[h] & HASH_DISPLACED) != 0) != (h != hash_home(c,
                                                                c.orders[slot].hash)):
                _fail(f"hash entry {h}: displaced flag wrong")
            if c.orders[slot].hash != <uint32_t>id_hash(c.orders[slot].order_id,
                                                        c.orders[slot].book):
                _fail(f"slot {slot}: stored hash {c.orders[slot].hash} is stale")
            if find_order(c, c.orders[slot].book, c.orders[slot].order_id) != slot:
                _fail(f"order {c.orders[slot].order_id} of book {c.orders[slot].book} not "
                     "findable through the hash")
    if entries != n_live:
        _fail(f"hash has {entries} entries for {n_live} live orders")
    _check_accounts(books)


cdef _check_accounts(Books books):
    """The accounting identity per book, summed in Python ints (exact, so an int64 that
    wrapped breaks it): the accounts' positions plus the outside position sum to 0, their
    cash plus the outside cash to minus their fees; the gross notional is within
    ``[0, MAX_NOTIONAL]``, which bounds every account (docs/semantics.md, Accounting)."""
    cdef Core* c = &books.core
    cdef const BookState* bs
    cdef int32_t b
    accounts = books.account_array
    for b in range(c.n_books):
        bs = &c.bk[b]
        if not 0 <= bs.notional <= MAX_NOTIONAL:
            _fail(f"book {b}: gross notional {bs.notional} outside [0, MAX_NOTIONAL]")
        row = accounts[b]
        position = sum(row["position"].tolist()) + bs.outside_position
        cash = sum(row["cash"].tolist()) + bs.outside_cash
        fees = sum(row["fees"].tolist())
        # each account within what the book's notional allows (a fee is at most its
        # notional); compared without abs(), which int64's minimum would overflow
        bound = 2 * bs.notional
        bad = ((row["cash"] > bound) | (row["cash"] < -bound)
               | (row["fees"] > bs.notional) | (row["fees"] < -bs.notional)
               | (row["position"] > row["volume"]) | (row["position"] < -row["volume"]))
        if bad.any():
            a = int(np.flatnonzero(bad)[0])
            _fail(f"book {b} owner {a}: cash/fees/position {row[a]} beyond what the book's "
                  f"gross notional {bs.notional} allows")
        if position != 0:
            _fail(f"book {b}: positions (outside ones included) sum to {position}, not 0")
        if cash != -fees:
            _fail(f"book {b}: cash sums to {cash}, not minus the fees {-fees}")
