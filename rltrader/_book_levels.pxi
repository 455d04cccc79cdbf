# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: per-side bitmaps of non-empty levels; the cursor over levels in price order.

# ---------------------------------------------------------------------------------------
# bitmaps: per book side, one bit per dense level, one summary bit per bitmap word
# ---------------------------------------------------------------------------------------

cdef inline uint64_t* side_bits(const Core* c, int32_t b, int side) noexcept nogil:
    return c.bits + (<int64_t>b * 2 + side_index(side)) * c.words


cdef inline uint64_t* side_summary(const Core* c, int32_t b, int side) noexcept nogil:
    return c.summary + (<int64_t>b * 2 + side_index(side)) * c.summary_words


cdef inline void bit_set(const Core* c, int32_t b, int side, int64_t i) noexcept nogil:
    cdef int64_t word = i >> 6
    side_bits(c, b, side)[word] |= (<uint64_t>1) << (i & 63)
    side_summary(c, b, side)[word >> 6] |= (<uint64_t>1) << (word & 63)


cdef inline void bit_clear(const Core* c, int32_t b, int side, int64_t i) noexcept nogil:
    cdef int64_t word = i >> 6
    cdef uint64_t* bits = side_bits(c, b, side)
    bits[word] &= ~((<uint64_t>1) << (i & 63))
    if bits[word] == 0:
        side_summary(c, b, side)[word >> 6] &= ~((<uint64_t>1) << (word & 63))


cdef int64_t scan_down(const Core* c, int32_t b, int side, int64_t i) noexcept nogil:
    """Highest set level index <= i, or -1."""
    if i < 0:
        return -1
    cdef uint64_t* bits = side_bits(c, b, side)
    cdef uint64_t* summ = side_summary(c, b, side)
    cdef int64_t word = i >> 6
    cdef uint64_t m = bits[word] & (((<uint64_t>2) << (i & 63)) - 1)
    if m:
        return (word << 6) + 63 - __builtin_clzll(m)
    word -= 1
    if word < 0:
        return -1
    cdef int64_t s = word >> 6
    m = summ[s] & (((<uint64_t>2) << (word & 63)) - 1)
    while True:
        if m:
            word = (s << 6) + 63 - __builtin_clzll(m)
            return (word << 6) + 63 - __builtin_clzll(bits[word])
        s -= 1
        if s < 0:
            return -1
        m = summ[s]


cdef int64_t scan_up(const Core* c, int32_t b, int side, int64_t i) noexcept nogil:
    """Lowest set level index >= i, or -1."""
    if i >= c.window:
        return -1
    cdef uint64_t* bits = side_bits(c, b, side)
    cdef uint64_t* summ = side_summary(c, b, side)
    cdef int64_t word = i >> 6
    cdef uint64_t m = bits[word] & ((~(<uint64_t>0)) << (i & 63))
    if m:
        return (word << 6) + __builtin_ctzll(m)
    word += 1
    if word >= c.words:
        return -1
    cdef int64_t s = word >> 6
    m = summ[s] & ((~(<uint64_t>0)) << (word & 63))
    while True:
        if m:
            word = (s << 6) + __builtin_ctzll(m)
            return (word << 6) + __builtin_ctzll(bits[word])
        s += 1
        if s >= c.summary_words:
            return -1
        m = summ[s]


cdef inline int64_t dense_from(const Core* c, int32_t b, int side, int64_t i) noexcept nogil:
    """The best non-empty dense level of `side` at index i or worse, or -1."""
    if side == BUY:
        return scan_down(c, b, side, i if i < c.window else c.window - 1)
    return scan_up(c, b, side, i if i > 0 else 0)


# ---------------------------------------------------------------------------------------
# levels in price order across the dense window and the overflow list
# ---------------------------------------------------------------------------------------

cdef struct LevelCursor:
    int32_t book
    int32_t side
    int64_t dense           # next dense level index to visit, -1 when done
    int32_t overflow        # next overflow order to visit, NO_SLOT when done
    int64_t price           # current level
    int64_t level           # its dense index, -1 for an overflow level
    int32_t head            # its first order; the level's orders follow `next` while
                            # they have this price


cdef inline void cursor_start(const Core* c, int32_t b, int side, LevelCursor* k) noexcept nogil:
    k.book = b
    k.side = side
    k.dense = dense_from(c, b, side, c.window - 1 if side == BUY else 0)
    k.overflow = c.bk[b].overflow_head[side_index(side)]


cdef bint cursor_next(const Core* c, LevelCursor* k) noexcept nogil:
    """Advance to the next level, best first; False when the side is exhausted."""
    cdef const BookState* bs = &c.bk[k.book]
    cdef int64_t dense_price
    if k.dense < 0 and k.overflow == NO_SLOT:
        return False
    if k.dense >= 0:
        dense_price = bs.base + k.dense
        if k.overflow == NO_SLOT or better(k.side, dense_price, c.orders[k.overflow].price):
            k.price = dense_price
            k.level = k.dense
            k.head = c.lv[<int64_t>k.book * c.window + k.dense].head
            k.dense = dense_from(c, k.book, k.side, k.dense - k.side)
            return True
    k.price = c.orders[k.overflow].price
    k.level = -1
    k.head = k.overflow
    while k.overflow != NO_SLOT and c.orders[k.overflow].price == k.price:
        k.overflow = c.orders[k.overflow].next
    return True
