# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: read-only kernels behind Books' queries.

# ---------------------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------------------

cdef int32_t level_head(const Core* c, int32_t b, int side, int64_t price) noexcept nogil:
    """First order resting at `price` on `side`, or NO_SLOT."""
    cdef const BookState* bs = &c.bk[b]
    cdef int32_t slot
    if in_window(c, bs, price):
        slot = c.lv[<int64_t>b * c.window + (price - bs.base)].head
        return slot if slot != NO_SLOT and c.orders[slot].side == side else NO_SLOT
    slot = bs.overflow_head[side_index(side)]
    while slot != NO_SLOT and c.orders[slot].price != price:
        slot = c.orders[slot].next
    return slot


cdef void top_levels_kernel(const Core* c, int depth, int64_t* px, int64_t* qt,
                            int32_t* ct) noexcept nogil:
    cdef int32_t b, slot
    cdef int side, k
    cdef int64_t at, q
    cdef int32_t n
    cdef LevelCursor cur
    for b in range(c.n_books):
        for side in range(1, -2, -2):   # BUY, then SELL
            at = (<int64_t>b * 2 + side_index(side)) * depth
            k = 0
            cursor_start(c, b, side, &cur)
            while k < depth and cursor_next(c, &cur):
                if cur.level >= 0:
                    q = c.lv[<int64_t>b * c.window + cur.level].qty
                    n = c.lv[<int64_t>b * c.window + cur.level].count
                else:
                    q = 0
                    n = 0
                    slot = cur.head
                    while slot != NO_SLOT and c.orders[slot].price == cur.price:
                        q += c.orders[slot].qty
                        n += 1
                        slot = c.orders[slot].next
                px[at + k] = cur.price
                qt[at + k] = q
                ct[at + k] = n
                k += 1
            while k < depth:
                px[at + k] = 0
                qt[at + k] = 0
                ct[at + k] = 0
                k += 1
