# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: the per-message context, price comparisons by side sign, event emission.

# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

cdef struct Ctx:
    # where the events of the message being processed go
    Event* out
    int64_t w               # events written so far
    int64_t timestamp       # the causing message's timestamp
    int32_t message_index
    int32_t known           # arena slot the caller gave for the message's order, or NO_SLOT
    int32_t rested          # arena slot where the message's own new order came to rest
    bint fresh              # the caller vouches that new order ids are not live in the book
    int64_t hash_id         # the message's order id
    uint64_t hash           # id_hash(message's order id, message's book), whatever the two
                            # hold (the kernels set it for every message, before ``handle``)
    uint64_t free_bucket    # where validation's probe for the new order's id ended (the
                            # bucket its insert takes if the table is untouched meanwhile),
                            # NO_BUCKET when it did not probe


cdef extern from *:
    """
    #define RLTRADER_NO_BUCKET (~(unsigned long long)0)
    """
    const uint64_t NO_BUCKET "RLTRADER_NO_BUCKET"


cdef inline uint64_t ctx_hash(const Ctx* x, int64_t order_id, int32_t b) noexcept nogil:
    # id_hash(order_id, b) for the message's book b: the kernel's when it is the message's
    # id (a taker's, which may be a REPLACE's new id or a triggered stop's, is compared)
    if order_id == x.hash_id:
        return x.hash
    return id_hash(order_id, b)


cdef inline uint64_t own_hash(const Ctx* x, const Message* m) noexcept nogil:
    # id_hash(m.order_id, m.book) for the message being handled
    if RLTRADER_DEBUG_BUILD and x.hash != id_hash(m.order_id, m.book):
        abort()
    return x.hash


cdef inline int side_index(int side) noexcept nogil:
    # BUY -> 0, SELL -> 1
    return (1 - side) >> 1


cdef inline bint better(int side, int64_t a, int64_t b) noexcept nogil:
    # a is a strictly better price than b for resting orders of `side`
    return side * (a - b) > 0


cdef inline bint crosses(int side, int64_t limit, int64_t opposite_best) noexcept nogil:
    # a `side` order at `limit` trades against the opposite best (EMPTY_* never crosses)
    return side * (limit - opposite_best) >= 0


cdef inline bint in_window(const Core* c, const BookState* bs, int64_t price) noexcept nogil:
    return <uint64_t>(price - bs.base) < <uint64_t>c.window


cdef inline int64_t opposite_best(const BookState* bs, int side) noexcept nogil:
    return bs.best_ask if side == BUY else bs.best_bid


cdef inline int64_t shown_price(const Order* o) noexcept nogil:
    # market orders carry an internal limit (MAX_PRICE or 1); events show 0
    return 0 if o.op == MARKET else o.price


cdef extern from *:
    """
    #include <string.h>
    /* An event's last 8 bytes: kind, reason, side and 5 zero padding bytes (event logs
       compare bit for bit), in one store. */
    static inline void rltrader_event_tail(void* p, int kind, int reason, int side) {
        unsigned long long w;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = ((unsigned long long)(unsigned char)kind << 56)
            | ((unsigned long long)(unsigned char)reason << 48)
            | ((unsigned long long)(unsigned char)side << 40);
    #else
        w = (unsigned long long)(unsigned char)kind
            | ((unsigned long long)(unsigned char)reason << 8)
            | ((unsigned long long)(unsigned char)side << 16);
    #endif
        memcpy(p, &w, sizeof w);
    }
    """
    void event_tail "rltrader_event_tail"(void* p, int kind, int reason, int side) noexcept nogil


cdef inline void write_event(Ctx* x, int kind, int reason, int32_t book, int64_t order_id,
                             int side, int32_t owner, int64_t price, int64_t qty,
                             int64_t leaves, int64_t maker_order_id, int32_t maker_owner,
                             int64_t maker_leaves) noexcept nogil:
    """Append an event. Every field and padding byte is written exactly once (event logs
    compare bit for bit)."""
    cdef Event* e = &x.out[x.w]
    x.w += 1
    e.timestamp = x.timestamp
    e.order_id = order_id
    e.maker_order_id = maker_order_id
    e.price = price
    e.qty = qty
    e.leaves_qty = leaves
    e.maker_leaves_qty = maker_leaves
    e.book = book
    e.owner = owner
    e.maker_owner = maker_owner
    e.message_index = x.message_index
    event_tail(&e.kind, kind, reason, side)


cdef inline void emit(Ctx* x, int kind, int reason, int32_t book, int64_t order_id,
                      int side, int32_t owner, int64_t price, int64_t qty,
                      int64_t leaves) noexcept nogil:
    """Append an event without a maker (every kind but FILL)."""
    write_event(x, kind, reason, book, order_id, side, owner, price, qty, leaves, 0,
                NO_OWNER, 0)


cdef inline void emit_own(Ctx* x, int kind, int reason, const Message* m,
                          int64_t leaves) noexcept nogil:
    """``emit(x, kind, reason, m.book, m.order_id, m.side, m.owner, m.price, m.qty,
    leaves)``: an event about the message's own order (an accepted limit, a reject), in
    fewer moves: the two records share their first 16 bytes (timestamp, order id; the
    kernels set ``x.timestamp`` to the message's) and the book and owner pair (checked at
    import, ``_check_layout``)."""
    cdef Event* e = &x.out[x.w]
    x.w += 1
    if RLTRADER_DEBUG_BUILD and x.timestamp != m.timestamp:
        abort()
    memcpy(e, m, 2 * sizeof(int64_t))                   # timestamp, order_id
    e.maker_order_id = 0
    e.price = m.price
    e.qty = m.qty
    e.leaves_qty = leaves
    e.maker_leaves_qty = 0
    memcpy(&e.book, &m.book, 2 * sizeof(int32_t))       # book, owner
    e.maker_owner = NO_OWNER
    e.message_index = x.message_index
    event_tail(&e.kind, kind, reason, m.side)


cdef inline void emit_order(Ctx* x, int kind, int reason, int32_t book, const Order* o,
                            int64_t price, int64_t qty, int64_t leaves) noexcept nogil:
    emit(x, kind, reason, book, o.order_id, o.side, o.owner, price, qty, leaves)
