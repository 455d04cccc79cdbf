# cython: language_level=3
"""The compiled limit-order-book core: B books, one call per batch of messages.

Memory layout (see ``_book.pxd`` for every field):

- per book, a dense window of ``window`` price levels starting at ``base``; a price has one
  level, owned by whichever side rests there (the book is never crossed), so both sides
  share one ``Level`` array; one bitmap per side (plus a summary word per 64 words) finds
  the next non-empty level in a few instructions;
- orders outside the window rest on a best-first overflow list per side and match in the
  same price-time order; when the touch leaves the window the book re-centres;
- an order arena of ``Order`` structs with intrusive ``next``/``prev`` links (level FIFO,
  overflow list, stop list or free list) and an open-addressing hash table from
  ``(book, order_id)`` to slot, so cancel is O(1);
- per ``(book, owner)`` accounts.

Kernels are ``noexcept nogil`` functions over a ``Core`` struct of raw pointers. They never
allocate: a message that needs an order slot when the arena is full stops the kernel with
``ARENA_FULL`` before it is touched, and ``Books`` grows the arena outside the kernel.
Semantics and the exact event order are specified in ``docs/semantics.md``.
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport abort

import numpy as np

from rltrader.core.messages import ACCOUNT_DTYPE, EVENT_DTYPE, MESSAGE_DTYPE, QUEUE_DTYPE

cnp.import_array()

cdef extern from *:
    """
    #ifdef RLTRADER_DEBUG
    #define RLTRADER_DEBUG_BUILD 1
    #else
    #define RLTRADER_DEBUG_BUILD 0
    #endif
    """
    const bint RLTRADER_DEBUG_BUILD

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__i386__)
    #include <x86intrin.h>
    static inline unsigned long long rltrader_ticks(void) { return __rdtsc(); }
    #else
    #include <time.h>
    static inline unsigned long long rltrader_ticks(void) {
        struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
        return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
    }
    #endif
    """
    unsigned long long rltrader_ticks() nogil
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

DEBUG_BUILD = bool(RLTRADER_DEBUG_BUILD)

ORDER_DTYPE = np.dtype(
    [
        ("order_id", np.int64), ("price", np.int64), ("qty", np.int64),
        ("timestamp", np.int64),   # the OrderClock union: stop_price for pending stops
        ("next", np.int32), ("prev", np.int32), ("owner", np.int32), ("book", np.int32),
        ("side", np.int8), ("op", np.int8), ("tif", np.int8), ("state", np.int8),
        ("hash", np.uint32),
    ],
    align=True,
)
LEVEL_DTYPE = np.dtype(
    [("qty", np.int64), ("count", np.int32), ("head", np.int32), ("tail", np.int32),
     ("removals", np.uint32)],
    align=True,
)
BOOK_DTYPE = np.dtype(
    [
        ("base", np.int64), ("best_bid", np.int64), ("best_ask", np.int64),
        ("last_price", np.int64), ("volume", np.int64), ("trade_count", np.int64),
        ("maker_fee_ppm", np.int64), ("taker_fee_ppm", np.int64),
        ("overflow_head", np.int32, 2), ("overflow_tail", np.int32, 2),
        ("n_resting", np.int32, 2), ("stop_head", np.int32), ("stop_tail", np.int32),
        ("n_stops", np.int32), ("stp", np.int32),
    ],
    align=True,
)


def _check_layout():
    """Fail at import if a numpy dtype and its C struct disagree."""
    cdef Message m
    cdef Event e
    cdef Order o
    cdef Level lv
    pairs = [
        (MESSAGE_DTYPE, sizeof(Message), "price", <char*>&m.price - <char*>&m,
         "tif", <char*>&m.tif - <char*>&m),
        (EVENT_DTYPE, sizeof(Event), "leaves_qty", <char*>&e.leaves_qty - <char*>&e,
         "side", <char*>&e.side - <char*>&e),
        (ORDER_DTYPE, sizeof(Order), "timestamp", <char*>&o.clock - <char*>&o,
         "hash", <char*>&o.hash - <char*>&o),
        (LEVEL_DTYPE, sizeof(Level), "qty", 0, "removals", <char*>&lv.removals - <char*>&lv),
        (BOOK_DTYPE, sizeof(BookState), "base", 0, "base", 0),
        (ACCOUNT_DTYPE, sizeof(Account), "position", 0, "position", 0),
    ]
    for dtype, size, f1, off1, f2, off2 in pairs:
        if (dtype.itemsize != size or dtype.fields[f1][1] != off1
                or dtype.fields[f2][1] != off2):
            raise ImportError(f"rltrader: dtype {dtype} does not match its C struct")


_check_layout()


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
    int64_t hash_id         # the message's order id when ``hash`` holds its id_hash, else 0
    uint64_t hash           # id_hash(hash_id, message's book), computed once per message


cdef inline uint64_t ctx_hash(const Ctx* x, int64_t order_id, int32_t b) noexcept nogil:
    # id_hash(order_id, b) for the message's book b: the kernel's when it hashed this id
    if order_id == x.hash_id:
        return x.hash
    return id_hash(order_id, b)


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


cdef inline Event* emit(Ctx* x, int kind, int reason, int32_t book, int64_t order_id,
                        int side, int32_t owner, int64_t price, int64_t qty,
                        int64_t leaves) noexcept nogil:
    """Append an event (no maker: fills set the maker fields after). Every field is
    written once; the padding is zeroed with the last three (event logs compare bit for
    bit)."""
    cdef Event* e = &x.out[x.w]
    x.w += 1
    e.timestamp = x.timestamp
    e.order_id = order_id
    e.maker_order_id = 0
    e.price = price
    e.qty = qty
    e.leaves_qty = leaves
    e.maker_leaves_qty = 0
    e.book = book
    e.owner = owner
    e.maker_owner = NO_OWNER
    e.message_index = x.message_index
    memset(&e.kind, 0, sizeof(Event) - (<char*>&e.kind - <char*>e))
    e.kind = kind
    e.reason = reason
    e.side = side
    return e


cdef inline void emit_order(Ctx* x, int kind, int reason, int32_t book, const Order* o,
                            int64_t price, int64_t qty, int64_t leaves) noexcept nogil:
    emit(x, kind, reason, book, o.order_id, o.side, o.owner, price, qty, leaves)


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


# ---------------------------------------------------------------------------------------
# the order-id hash table: open addressing, linear probing, backward-shift deletion
# (id_hash and find_order are inline in _book.pxd)
# ---------------------------------------------------------------------------------------

cdef inline void hash_insert_hashed(Core* c, int32_t slot, uint64_t h) noexcept nogil:
    """Enter ``slot`` into the table; ``h`` is its ``id_hash``, kept in the order."""
    cdef uint64_t mask = c.hash_mask
    cdef uint32_t* table = c.table
    cdef uint64_t home = h & mask, p = home
    c.orders[slot].hash = <uint32_t>h      # the mask is < 2**32: the low bits suffice
    while table[p] != 0:
        p = (p + 1) & mask
    table[p] = (<uint32_t>slot + 1) | (HASH_DISPLACED if p != home else 0)


cdef inline void hash_insert(Core* c, int32_t slot) noexcept nogil:
    hash_insert_hashed(c, slot, id_hash(c.orders[slot].order_id, c.orders[slot].book))


cdef inline void hash_erase(Core* c, int32_t slot) noexcept nogil:
    """Remove ``slot``'s entry; later entries of its cluster shift back (no tombstones).
    Home buckets of displaced entries come from their orders' stored hashes."""
    cdef uint64_t mask = c.hash_mask
    cdef uint32_t* table = c.table
    cdef const Order* orders = c.orders
    cdef uint64_t i = orders[slot].hash & mask
    cdef uint64_t j, home
    cdef uint32_t entry
    while (table[i] & HASH_SLOT) != <uint32_t>slot + 1:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        entry = table[j]
        if entry == 0:
            break
        if not (entry & HASH_DISPLACED):
            continue        # at home in j, which lies in (i, j]: it stays
        home = orders[(entry & HASH_SLOT) - 1].hash & mask
        # the entry at j may move back to i unless its home lies cyclically in (i, j],
        # i.e. unless it is nearer (going forward) to j than i is
        if ((j - home) & mask) < ((j - i) & mask):
            continue
        table[i] = (entry & HASH_SLOT) | (HASH_DISPLACED if i != home else 0)
        i = j
    table[i] = 0


# ---------------------------------------------------------------------------------------
# arena
# ---------------------------------------------------------------------------------------

cdef inline int32_t slot_alloc(Core* c) noexcept nogil:
    cdef int32_t slot = c.free_head
    if slot != NO_SLOT:
        c.free_head = c.orders[slot].next
        c.n_live += 1
    return slot


cdef inline void slot_free(Core* c, int32_t slot) noexcept nogil:
    c.orders[slot].state = FREE
    c.orders[slot].next = c.free_head
    c.orders[slot].prev = NO_SLOT
    c.free_head = slot
    c.n_live -= 1


# ---------------------------------------------------------------------------------------
# resting orders: insert, remove, best prices, re-centring
# ---------------------------------------------------------------------------------------

cdef void refresh_best(const Core* c, int32_t b, int side) noexcept nogil:
    """Recompute the cached best price of `side` after its best level emptied."""
    cdef BookState* bs = &c.bk[b]
    cdef int32_t head = bs.overflow_head[side_index(side)]
    cdef int64_t i, best
    if side == BUY:
        i = dense_from(c, b, BUY, bs.best_bid - bs.base) if bs.best_bid >= bs.base else -1
        best = bs.base + i if i >= 0 else EMPTY_BID
        if head != NO_SLOT and c.orders[head].price > best:
            best = c.orders[head].price
        bs.best_bid = best
    else:
        i = (dense_from(c, b, SELL, bs.best_ask - bs.base)
             if bs.best_ask < bs.base + c.window else -1)
        best = bs.base + i if i >= 0 else EMPTY_ASK
        if head != NO_SLOT and c.orders[head].price < best:
            best = c.orders[head].price
        bs.best_ask = best


cdef inline void count_resting(BookState* bs, const Order* o) noexcept nogil:
    # a new resting order of bs's book: the side's count and cached best
    bs.n_resting[side_index(o.side)] += 1
    if o.side == BUY:
        if o.price > bs.best_bid:
            bs.best_bid = o.price
    elif o.price < bs.best_ask:
        bs.best_ask = o.price


cdef inline void rest_dense(Core* c, BookState* bs, int32_t b, int32_t slot,
                            Order* o) noexcept nogil:
    """``rest`` for an order inside the window: the tail of its level."""
    cdef int64_t i = o.price - bs.base
    cdef Level* lvl = &c.lv[<int64_t>b * c.window + i]
    o.prev = lvl.tail
    if lvl.tail != NO_SLOT:
        c.orders[lvl.tail].next = slot
    else:
        lvl.head = slot
        bit_set(c, b, o.side, i)
    lvl.tail = slot
    lvl.count += 1
    lvl.qty += o.qty
    count_resting(bs, o)


cdef void rest_outside(Core* c, BookState* bs, int32_t b, int32_t slot,
                       Order* o) noexcept nogil:
    """``rest`` for an order outside the window: an empty book re-centres on it for free,
    else it joins the best-first overflow list of its side, FIFO among equal prices."""
    cdef int side = o.side
    cdef int si = side_index(side)
    cdef int32_t at
    if bs.n_resting[0] == 0 and bs.n_resting[1] == 0:
        bs.base = o.price - c.window // 2
        rest_dense(c, bs, b, slot, o)
        return
    at = bs.overflow_tail[si]
    while at != NO_SLOT and better(side, o.price, c.orders[at].price):
        at = c.orders[at].prev
    o.prev = at
    if at == NO_SLOT:
        o.next = bs.overflow_head[si]
        bs.overflow_head[si] = slot
    else:
        o.next = c.orders[at].next
        c.orders[at].next = slot
    if o.next == NO_SLOT:
        bs.overflow_tail[si] = slot
    else:
        c.orders[o.next].prev = slot
    count_resting(bs, o)


cdef inline void rest(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Append a resting order at the back of its price level."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* o = &c.orders[slot]
    o.state = RESTING
    o.next = NO_SLOT
    if in_window(c, bs, o.price):
        rest_dense(c, bs, b, slot, o)
    else:
        rest_outside(c, bs, b, slot, o)


cdef inline void list_unlink(Order* orders, const Order* o, int32_t* head,
                             int32_t* tail) noexcept nogil:
    """Take ``o`` out of the doubly linked list ``head``..``tail`` (a level's FIFO, an
    overflow list or the stop list); its own links are left as they were."""
    if o.prev != NO_SLOT:
        orders[o.prev].next = o.next
    else:
        head[0] = o.next
    if o.next != NO_SLOT:
        orders[o.next].prev = o.prev
    else:
        tail[0] = o.prev


cdef void unrest_outside(Core* c, BookState* bs, int32_t b, int32_t slot,
                         Order* o) noexcept nogil:
    """``unrest`` for an order on its side's overflow list."""
    cdef int side = o.side
    cdef int si = side_index(side)
    cdef bint emptied
    list_unlink(c.orders, o, &bs.overflow_head[si], &bs.overflow_tail[si])
    emptied = ((o.prev == NO_SLOT or c.orders[o.prev].price != o.price)
               and (o.next == NO_SLOT or c.orders[o.next].price != o.price))
    bs.n_resting[si] -= 1
    if emptied and o.price == (bs.best_bid if side == BUY else bs.best_ask):
        refresh_best(c, b, side)


cdef inline void unrest(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Unlink a resting order from its level or overflow list; the slot stays allocated."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* o = &c.orders[slot]
    cdef int side = o.side
    cdef int64_t i = o.price - bs.base
    cdef Level* lvl
    if <uint64_t>i >= <uint64_t>c.window:
        unrest_outside(c, bs, b, slot, o)
        return
    lvl = &c.lv[<int64_t>b * c.window + i]
    list_unlink(c.orders, o, &lvl.head, &lvl.tail)
    lvl.count -= 1
    lvl.qty -= o.qty
    lvl.removals += 1
    bs.n_resting[side_index(side)] -= 1
    if lvl.count == 0:
        bit_clear(c, b, side, i)
        if o.price == (bs.best_bid if side == BUY else bs.best_ask):
            refresh_best(c, b, side)


cdef inline void remove_order(Core* c, int32_t b, int32_t slot) noexcept nogil:
    """Take a resting order off the book and free its slot."""
    unrest(c, b, slot)
    hash_erase(c, slot)
    slot_free(c, slot)


cdef inline void reduce_resting(Core* c, int32_t b, int32_t slot, int64_t q) noexcept nogil:
    """Lower a resting order's leaves by q (> 0, < leaves) in place: priority is kept."""
    cdef Order* o = &c.orders[slot]
    cdef const BookState* bs = &c.bk[b]
    cdef Level* lvl
    o.qty -= q
    if o.state == RESTING and in_window(c, bs, o.price):
        lvl = &c.lv[<int64_t>b * c.window + (o.price - bs.base)]
        lvl.qty -= q
        lvl.removals += 1


cdef void recenter(Core* c, int32_t b) noexcept nogil:
    """Move the dense window so that the touch sits in its middle.

    Rebuilds the book's levels from its orders in price-time order: O(window + orders in
    book). Runs only when the touch has left the window.
    """
    cdef BookState* bs = &c.bk[b]
    cdef int64_t bid = bs.best_bid, ask = bs.best_ask, centre, i
    cdef int32_t chain_head = NO_SLOT, chain_tail = NO_SLOT, slot, nxt
    cdef LevelCursor k
    cdef int side
    cdef Level* lvl
    if bid != EMPTY_BID and ask != EMPTY_ASK:
        if ask - bid >= c.window // 2:
            return      # the spread alone would not sit comfortably; overflow carries it
        centre = bid + (ask - bid) // 2
    else:
        centre = bid if bid != EMPTY_BID else ask
    # chain every resting order, bids best first then asks best first, FIFO within a level
    for side in range(1, -2, -2):   # BUY, then SELL
        cursor_start(c, b, side, &k)
        while cursor_next(c, &k):
            slot = k.head
            while slot != NO_SLOT and c.orders[slot].price == k.price:
                nxt = c.orders[slot].next
                if chain_tail == NO_SLOT:
                    chain_head = slot
                else:
                    c.orders[chain_tail].next = slot
                chain_tail = slot
                slot = nxt
    if chain_tail != NO_SLOT:
        c.orders[chain_tail].next = NO_SLOT
    for i in range(c.window):
        lvl = &c.lv[<int64_t>b * c.window + i]
        lvl.qty = 0
        lvl.count = 0
        lvl.head = NO_SLOT
        lvl.tail = NO_SLOT
        lvl.removals += 1       # every level's queues are rebuilt: none stays the same
    memset(c.bits + <int64_t>b * 2 * c.words, 0, 2 * c.words * sizeof(uint64_t))
    memset(c.summary + <int64_t>b * 2 * c.summary_words, 0,
           2 * c.summary_words * sizeof(uint64_t))
    for i in range(2):
        bs.overflow_head[i] = NO_SLOT
        bs.overflow_tail[i] = NO_SLOT
        bs.n_resting[i] = 0
    bs.best_bid = EMPTY_BID
    bs.best_ask = EMPTY_ASK
    bs.base = centre - c.window // 2
    slot = chain_head
    while slot != NO_SLOT:
        nxt = c.orders[slot].next
        rest(c, b, slot)
        slot = nxt


cdef inline void keep_touch_in_window(Core* c, int32_t b) noexcept nogil:
    cdef const BookState* bs = &c.bk[b]
    if ((bs.best_bid != EMPTY_BID and not in_window(c, bs, bs.best_bid))
            or (bs.best_ask != EMPTY_ASK and not in_window(c, bs, bs.best_ask))):
        recenter(c, b)


# ---------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------

cdef inline void account_fill(Core* c, int32_t b, int32_t owner, int side, int64_t price,
                              int64_t q, int64_t fee_ppm) noexcept nogil:
    if owner < 0:
        return
    cdef Account* a = &c.accounts[<int64_t>b * c.n_owners + owner]
    cdef int64_t notional = price * q
    cdef int64_t fee = notional * fee_ppm // 1000000      # C division: toward zero
    a.position += side * q
    a.cash -= side * notional + fee
    a.fees += fee
    a.volume += q


cdef inline void fill(Core* c, Ctx* x, int32_t b, Order* taker, int32_t maker) noexcept nogil:
    """Trade the taker against the head order `maker`; frees a maker that is done."""
    cdef BookState* bs = &c.bk[b]
    cdef Order* m = &c.orders[maker]
    cdef int64_t q = taker.qty if taker.qty < m.qty else m.qty
    cdef Event* e
    taker.qty -= q
    account_fill(c, b, taker.owner, taker.side, m.price, q, bs.taker_fee_ppm)
    account_fill(c, b, m.owner, m.side, m.price, q, bs.maker_fee_ppm)
    bs.last_price = m.price
    bs.volume += q
    bs.trade_count += 1
    e = emit(x, FILL, NO_REASON, b, taker.order_id, taker.side, taker.owner, m.price, q,
             taker.qty)
    e.maker_order_id = m.order_id
    e.maker_owner = m.owner
    e.maker_leaves_qty = m.qty - q
    if m.qty == q:
        remove_order(c, b, maker)
    else:
        reduce_resting(c, b, maker, q)


cdef inline int32_t best_head(const Core* c, int32_t b, int side) noexcept nogil:
    """The oldest order at the best level of resting side `side`."""
    cdef const BookState* bs = &c.bk[b]
    cdef int64_t best = bs.best_bid if side == BUY else bs.best_ask
    if in_window(c, bs, best):
        return c.lv[<int64_t>b * c.window + (best - bs.base)].head
    return bs.overflow_head[side_index(side)]


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


cdef void match(Core* c, Ctx* x, int32_t b, Order* t) noexcept nogil:
    """Trade taker `t` against the opposite side while it crosses."""
    cdef BookState* bs = &c.bk[b]
    cdef int32_t maker
    cdef Order* m
    while t.qty > 0 and crosses(t.side, t.price, opposite_best(bs, t.side)):
        maker = best_head(c, b, -t.side)
        m = &c.orders[maker]
        if bs.stp != NONE and t.owner >= 0 and m.owner == t.owner:
            if bs.stp != CANCEL_TAKER:
                emit_order(x, CANCELLED, SELF_TRADE, b, m, m.price, m.qty, 0)
                remove_order(c, b, maker)
            if bs.stp != CANCEL_MAKER:
                emit_order(x, CANCELLED, SELF_TRADE, b, t, shown_price(t), t.qty, 0)
                t.qty = 0
            continue
        fill(c, x, b, t, maker)


cdef void run_taker(Core* c, Ctx* x, int32_t b, Order* t, bint announce) noexcept nogil:
    """A new (or triggered) order: post-only check, ACCEPTED, FOK check, match, remainder."""
    cdef BookState* bs = &c.bk[b]
    cdef int32_t slot
    if t.tif == POST_ONLY and crosses(t.side, t.price, opposite_best(bs, t.side)):
        emit_order(x, REJECTED, POST_ONLY_WOULD_CROSS, b, t, t.price, t.qty, 0)
        return
    if announce:
        emit_order(x, ACCEPTED, NO_REASON, b, t, shown_price(t), t.qty, t.qty)
    if t.tif == FOK and not fok_fillable(c, b, t):
        emit_order(x, CANCELLED, FOK_UNFILLABLE, b, t, shown_price(t), t.qty, 0)
        return
    match(c, x, b, t)
    if t.qty == 0:
        return
    if t.tif == IOC or t.tif == FOK:
        emit_order(x, CANCELLED, IOC_REMAINDER, b, t, shown_price(t), t.qty, 0)
        return
    slot = slot_alloc(c)        # the caller made sure one is free
    memcpy(&c.orders[slot], t, sizeof(Order))
    c.orders[slot].clock.timestamp = x.timestamp
    c.orders[slot].book = b
    hash_insert_hashed(c, slot, ctx_hash(x, t.order_id, b))
    rest(c, b, slot)
    if announce:                # the message's own order (not a triggered stop)
        x.rested = slot


cdef inline void rest_limit(Core* c, Ctx* x, int32_t b, const Message* m) noexcept nogil:
    """A valid GTC or post-only limit that does not cross: what ``run_taker`` does with it
    (ACCEPTED, then it rests in a new slot), without the taker's steps that cannot apply."""
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
    emit(x, ACCEPTED, NO_REASON, b, m.order_id, m.side, m.owner, m.price, m.qty, m.qty)
    hash_insert_hashed(c, slot, ctx_hash(x, m.order_id, b))
    rest(c, b, slot)
    x.rested = slot


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


cdef inline int32_t find_known(const Core* c, const Ctx* x, const Message* m) noexcept nogil:
    """The slot of the live order ``m.order_id`` of ``m.book`` (NO_SLOT: none): the
    caller's ``x.known`` when that slot holds it (a live order never moves), else through
    the hash table."""
    cdef const Order* o
    cdef int32_t known = x.known
    if <uint32_t>known < <uint32_t>c.capacity:
        o = &c.orders[known]
        if o.order_id == m.order_id and o.book == m.book and o.state != FREE:
            return known
    return find_order_hashed(c, m.book, m.order_id, ctx_hash(x, m.order_id, m.book))


cdef inline bint taken(const Core* c, const Ctx* x, int32_t b, int64_t order_id) noexcept nogil:
    """A live order of the message's book ``b`` has this id. With ``x.fresh`` the caller
    vouches that none has, and the probe is skipped (debug builds still probe, and abort
    if it was wrong)."""
    if not x.fresh:
        return find_order_hashed(c, b, order_id, ctx_hash(x, order_id, b)) != NO_SLOT
    if RLTRADER_DEBUG_BUILD and find_order(c, b, order_id) != NO_SLOT:
        abort()
    return False


cdef int validate(const Core* c, const Ctx* x, const Message* m, int32_t* found) noexcept nogil:
    """The reject reason for a message, NO_REASON when it is valid (docs/semantics.md).

    For operations on an existing order, `found` receives its slot; ``x.known`` is the
    caller's guess of it (NO_SLOT: none; checked). ``x.fresh``: new order ids are known
    not to be live in the book (``taken``).
    """
    cdef int32_t slot
    cdef int op = m.op
    if m.book < 0 or m.book >= c.n_books:
        return BAD_BOOK
    if op < LIMIT or op > EXECUTE:
        return BAD_OP
    if m.owner < NO_OWNER or m.owner >= c.n_owners:
        return BAD_OWNER
    if m.order_id <= 0:
        return BAD_ORDER_ID
    if is_new_order(op):
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
        if taken(c, x, m.book, m.order_id):
            return DUPLICATE_ORDER_ID
        if may_wait(m) and c.free_head == NO_SLOT:
            return CAPACITY         # Books grows the arena first while it may
        return NO_REASON
    slot = find_known(c, x, m)
    found[0] = slot
    if slot == NO_SLOT:
        return UNKNOWN_ORDER
    if op == REDUCE:
        return BAD_QTY if m.qty <= 0 else NO_REASON
    if op == CANCEL:
        return NO_REASON
    if c.orders[slot].state != RESTING:
        return NOT_RESTING
    if op == EXECUTE:
        return BAD_QTY if m.qty < 1 or m.qty > c.orders[slot].qty else NO_REASON
    # REPLACE
    if m.qty < 1 or m.qty > MAX_QTY:
        return BAD_QTY
    if not valid_price(m.price):
        return BAD_PRICE
    if m.new_order_id < 0:
        return BAD_ORDER_ID
    if (m.new_order_id != 0 and m.new_order_id != m.order_id
            and taken(c, x, m.book, m.new_order_id)):
        return DUPLICATE_ORDER_ID
    if m.tif < GTC or m.tif > POST_ONLY:
        return BAD_TIF
    return NO_REASON


cdef inline void cancel_order(Core* c, Ctx* x, int32_t b, int32_t slot, int reason) noexcept nogil:
    cdef Order* o = &c.orders[slot]
    emit_order(x, CANCELLED, reason, b, o, o.price, o.qty, 0)
    if o.state == STOP_PENDING:
        stop_unlink(c, b, slot)
        hash_erase(c, slot)
        slot_free(c, slot)
    else:
        remove_order(c, b, slot)


cdef void handle(Core* c, Ctx* x, const Message* m) noexcept nogil:
    cdef int32_t b = m.book, slot = NO_SLOT
    cdef int reason = validate(c, x, m, &slot)
    cdef BookState* bs
    cdef Order t
    cdef Order* o
    cdef int64_t trades
    if reason != NO_REASON:
        emit(x, REJECTED, reason, m.book, m.order_id, m.side, m.owner, m.price, m.qty, 0)
        return
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
        hash_insert_hashed(c, slot, ctx_hash(x, m.order_id, b))
        emit_order(x, ACCEPTED, NO_REASON, b, o, o.price, o.qty, o.qty)
        if bs.trade_count > 0:
            run_stops(c, x, b)
    elif m.op == CANCEL:
        cancel_order(c, x, b, slot, CANCEL_REQUESTED)
    elif m.op == REDUCE:
        o = &c.orders[slot]
        if m.qty >= o.qty:
            cancel_order(c, x, b, slot, CANCEL_REQUESTED)
        else:
            reduce_resting(c, b, slot, m.qty)
            emit_order(x, REDUCED, NO_REASON, b, o, o.price, m.qty, o.qty)
    elif m.op == EXECUTE:
        t.order_id = 0
        t.owner = NO_OWNER
        t.side = -c.orders[slot].side
        t.qty = m.qty
        fill(c, x, b, &t, slot)
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
        cancel_order(c, x, b, slot, REPLACED)
        run_taker(c, x, b, &t, True)
    if bs.trade_count != trades and bs.n_stops > 0:
        run_stops(c, x, b)
    keep_touch_in_window(c, b)


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


cdef inline void look_ahead(const Core* c, const Message* m, const int32_t* known,
                            uint64_t* hash, int64_t* hash_id) noexcept nogil:
    """Start loading what message ``m`` will touch first: its book, the id's hash bucket
    and the order's known slot when the caller gave one in range; keep the id's hash for
    the message (``hash_id`` 0: not hashed)."""
    cdef uint64_t h
    hash_id[0] = 0
    if <uint32_t>m.book < <uint32_t>c.n_books:
        prefetch(&c.bk[m.book])
        h = id_hash(m.order_id, m.book)
        prefetch(&c.table[h & c.hash_mask])
        hash[0] = h
        hash_id[0] = m.order_id
        if known != NULL and <uint32_t>known[0] < <uint32_t>c.capacity:
            prefetch(&c.orders[known[0]])


cdef inline void prefetch_ahead(const Core* c, const Message* msgs, const int32_t* known,
                                int64_t i, int64_t n, uint64_t* hashes,
                                int64_t* hash_ids) noexcept nogil:
    """Start loading what the next messages will touch: across many books, matching time
    is mostly memory latency. Two ahead: ``look_ahead`` (into the ring ``hashes`` /
    ``hash_ids``, 4 entries); one ahead: the level (its book state arrived meanwhile)."""
    cdef const Message* m
    cdef const BookState* bs
    cdef int64_t level
    if i + 2 < n:
        look_ahead(c, &msgs[i + 2], known + (i + 2) if known != NULL else NULL,
                   &hashes[(i + 2) & 3], &hash_ids[(i + 2) & 3])
    if i + 1 < n:
        m = &msgs[i + 1]
        if <uint32_t>m.book < <uint32_t>c.n_books:
            bs = &c.bk[m.book]
            level = m.price - bs.base
            if <uint64_t>level < <uint64_t>c.window:
                prefetch(&c.lv[<int64_t>m.book * c.window + level])


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


cdef int process_kernel(Core* c, const Message* msgs, int32_t* known, bint fresh,
                        int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                        int64_t* consumed, int64_t* written) noexcept nogil:
    """Process ``msgs[:n]``; ``known`` (or NULL) and ``fresh`` as in ``Books._run_known``."""
    cdef Ctx x
    cdef int64_t i, w0, bound
    cdef const Message* m
    cdef int status = OK
    cdef uint64_t hashes[4]
    cdef int64_t hash_ids[4]
    x.out = out
    x.w = 0
    x.fresh = fresh
    for i in range(2 if n > 2 else n):
        look_ahead(c, &msgs[i], known + i if known != NULL else NULL, &hashes[i],
                   &hash_ids[i])
    for i in range(n):
        m = &msgs[i]
        prefetch_ahead(c, msgs, known, i, n, hashes, hash_ids)
        if not events_fit(c, m, x.w, out_cap):
            status = EVENTS_FULL
            break
        if (c.free_head == NO_SLOT and c.capacity < c.max_orders
                and is_new_order(m.op) and may_wait(m)):
            status = ARENA_FULL
            break
        x.timestamp = m.timestamp
        x.message_index = <int32_t>(i + index_offset)
        x.known = known[i] if known != NULL else NO_SLOT
        x.rested = NO_SLOT
        x.hash = hashes[i & 3]
        x.hash_id = hash_ids[i & 3]
        w0 = x.w
        bound = max_events(c, m) if RLTRADER_DEBUG_BUILD else 0
        handle(c, &x, m)
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
    range go to bin 0. The event buffer is reused from the start for every message.
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
    x.hash_id = 0
    for i in range(n):
        m = &msgs[i]
        if max_events(c, m) > out_cap:
            status = EVENTS_FULL
            break
        if c.free_head == NO_SLOT and c.capacity < c.max_orders and may_wait(m):
            status = ARENA_FULL
            break
        x.w = 0
        x.timestamp = m.timestamp
        x.message_index = <int32_t>i
        trades = c.bk[m.book].trade_count if 0 <= m.book < c.n_books else 0
        t0 = rltrader_ticks()
        handle(c, &x, m)
        t1 = rltrader_ticks()
        bin_ = m.op * 3 if LIMIT <= m.op <= EXECUTE else 0
        if x.out[0].kind == REJECTED:
            bin_ += 2
        elif c.bk[m.book].trade_count != trades:
            bin_ += 1
        ticks[bin_] += t1 - t0
        counts[bin_] += 1
    consumed[0] = i if status != OK else n
    return status


# ---------------------------------------------------------------------------------------
# Python-facing classes
# ---------------------------------------------------------------------------------------

cdef object _as_records(object array, object dtype, str name):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {name[:-1]} records, "
                        f"got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{name} has dtype {array.dtype}; expected rltrader's "
                        f"{'MESSAGE_DTYPE' if dtype is MESSAGE_DTYPE else 'EVENT_DTYPE'}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return array


cdef int _check_stp(int mode) except -1:
    if mode < NONE or mode > CANCEL_BOTH:
        raise ValueError(f"self_trade_prevention must be a SelfTradePrevention (0-3), "
                         f"got {mode}")
    return 0


cdef int _check_book(Books books, object book) except -1:
    if not 0 <= book < books.core.n_books:
        raise IndexError(f"book {book} out of range [0, {books.core.n_books})")
    return 0


cdef class Books:
    """``n_books`` independent limit order books processed by one call per batch.

    Parameters
    ----------
    n_books : int
        Number of books.
    window : int
        Dense price levels per book (ticks), a multiple of 64. Orders outside the window
        are still kept and matched (on an overflow list); it only bounds the fast path.
    capacity : int
        Initial order slots (resting orders plus pending stops, all books). The arena
        doubles outside the kernel when full, up to ``max_orders``.
    max_orders : int
        Hard limit on live orders; beyond it new orders are rejected with ``CAPACITY``.
    n_owners : int
        Accounts per book; message owners must be in ``[0, n_owners)`` or ``NO_OWNER``.
    self_trade_prevention : SelfTradePrevention
        Mode of every book (change per book with ``set_self_trade_prevention``).
    maker_fee_ppm, taker_fee_ppm : int
        Fees per million of notional (negative for rebates), for every book.
    """

    def __init__(self, int n_books=1, *, int window=4096, int capacity=1024,
                 int max_orders=1 << 30, int n_owners=0, int self_trade_prevention=0,
                 int64_t maker_fee_ppm=0, int64_t taker_fee_ppm=0):
        if n_books < 1:
            raise ValueError(f"n_books must be >= 1, got {n_books}")
        if window < 64 or window % 64:
            raise ValueError(f"window must be a positive multiple of 64, got {window}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if max_orders < capacity or max_orders > (1 << 30):
            raise ValueError(f"max_orders must be in [capacity, 2**30], got {max_orders}")
        if n_owners < 0:
            raise ValueError(f"n_owners must be >= 0, got {n_owners}")
        _check_stp(self_trade_prevention)
        cdef Core* c = &self.core
        c.n_books = n_books
        c.n_owners = n_owners
        c.window = window
        c.words = window // 64
        c.summary_words = (c.words + 63) // 64
        c.max_orders = max_orders
        c.capacity = 0
        c.free_head = NO_SLOT
        c.n_live = 0
        self.book_array = np.zeros(n_books, dtype=BOOK_DTYPE)
        self.book_array["best_ask"] = EMPTY_ASK
        self.book_array["best_bid"] = EMPTY_BID
        self.book_array["overflow_head"] = NO_SLOT
        self.book_array["overflow_tail"] = NO_SLOT
        self.book_array["stop_head"] = NO_SLOT
        self.book_array["stop_tail"] = NO_SLOT
        self.book_array["stp"] = self_trade_prevention
        self.book_array["maker_fee_ppm"] = maker_fee_ppm
        self.book_array["taker_fee_ppm"] = taker_fee_ppm
        self.level_array = np.zeros((n_books, window), dtype=LEVEL_DTYPE)
        self.level_array["head"] = NO_SLOT
        self.level_array["tail"] = NO_SLOT
        self.bitmap_array = np.zeros((n_books, 2, c.words), dtype=np.uint64)
        self.summary_array = np.zeros((n_books, 2, c.summary_words), dtype=np.uint64)
        self.account_array = np.zeros((n_books, n_owners), dtype=ACCOUNT_DTYPE)
        self.order_array = np.zeros(0, dtype=ORDER_DTYPE)
        self._resize_arena(capacity)

    cdef _bind(self):
        cdef Core* c = &self.core
        c.bk = <BookState*>cnp.PyArray_DATA(self.book_array)
        c.lv = <Level*>cnp.PyArray_DATA(self.level_array)
        c.bits = <uint64_t*>cnp.PyArray_DATA(self.bitmap_array)
        c.summary = <uint64_t*>cnp.PyArray_DATA(self.summary_array)
        c.orders = <Order*>cnp.PyArray_DATA(self.order_array)
        c.table = <uint32_t*>cnp.PyArray_DATA(self.hash_array)
        c.accounts = <Account*>cnp.PyArray_DATA(self.account_array)

    def _resize_arena(self, int capacity):
        """Grow the arena to `capacity` slots and rebuild the hash table (outside kernels)."""
        cdef Core* c = &self.core
        cdef int32_t old = c.capacity, slot
        orders = np.zeros(capacity, dtype=ORDER_DTYPE)
        orders[:old] = self.order_array
        orders["next"][old:capacity - 1] = np.arange(old + 1, capacity, dtype=np.int32)
        orders["next"][capacity - 1] = c.free_head
        orders["prev"][old:] = NO_SLOT
        self.order_array = orders
        size = 1
        while size < 2 * capacity:
            size *= 2
        self.hash_array = np.zeros(size, dtype=np.uint32)
        c.hash_mask = size - 1
        c.capacity = capacity
        c.free_head = old
        self._bind()
        for slot in range(old):
            if c.orders[slot].state != FREE:
                hash_insert(c, slot)

    cdef _grow(self):
        self._resize_arena(min(self.core.max_orders, 2 * self.core.capacity))

    cdef int _run(self, const Message* msgs, int64_t n, int64_t index_offset, Event* out,
                  int64_t out_cap, int64_t* consumed, int64_t* written) except -1:
        """Process messages, growing the arena as needed; stops early if `out` fills."""
        return self._run_known(msgs, NULL, False, n, index_offset, out, out_cap, consumed,
                               written)

    cdef int _run_known(self, const Message* msgs, int32_t* known, bint fresh,
                        int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                        int64_t* consumed, int64_t* written) except -1:
        """``_run`` for a caller that tracks its own orders. ``known`` (or NULL), in:
        ``known[i]`` is the arena slot of ``msgs[i].order_id`` for a cancel, reduce,
        replace or execute, or NO_SLOT (a wrong guess only costs the hash lookup it would
        have saved); out: the slot where message ``i``'s own new order (a limit or a
        replace's new order; not a triggered stop) came to rest, else NO_SLOT (later
        messages may have filled it since). ``fresh``: the caller vouches that no new
        order id it sends is live in its book (the duplicate-id probe is skipped; debug
        builds check it and abort)."""
        cdef int64_t done = 0, w = 0, step_n, c_done, c_written
        cdef int status
        cdef int32_t* k
        while done < n:
            step_n = 1 if RLTRADER_DEBUG_BUILD else n - done
            k = known + done if known != NULL else NULL
            if step_n >= 64:    # releasing the GIL costs more than a few messages
                with nogil:
                    status = process_kernel(&self.core, msgs + done, k, fresh, step_n,
                                            index_offset + done, out + w, out_cap - w,
                                            &c_done, &c_written)
            else:
                status = process_kernel(&self.core, msgs + done, k, fresh, step_n,
                                        index_offset + done, out + w, out_cap - w, &c_done,
                                        &c_written)
            done += c_done
            w += c_written
            if RLTRADER_DEBUG_BUILD:
                self.check_integrity()
            if status == ARENA_FULL:
                self._grow()
            elif status == EVENTS_FULL:
                break
        consumed[0] = done
        written[0] = w
        return 0

    def process(self, messages, events, known=None):
        """Process a batch of messages, writing events into a caller-owned buffer.

        Parameters
        ----------
        messages : ndarray of MESSAGE_DTYPE, 1-D, C-contiguous
        events : ndarray of EVENT_DTYPE, 1-D, C-contiguous
            Filled from index 0. Size it generously (a few times the batch): when the next
            message might not fit, the call returns early.
        known : writeable ndarray of int32, shape (len(messages),), optional
            A caller that tracks its orders' arena slots (``order_array`` rows; a live
            order never moves) may pass, per message, the slot of the order a cancel,
            reduce, replace or execute addresses, or ``NO_SLOT``: the core then checks
            that slot before probing its hash table. A wrong slot changes nothing but
            the time taken. On return, ``known[i]`` of every processed message is the
            slot where its own new order (a limit, or a replace's new order) came to
            rest, else ``NO_SLOT`` (a later message may have filled it since).

        Returns
        -------
        (consumed, written) : tuple of int
            Messages processed and events written. ``consumed < len(messages)`` means the
            buffer filled up: drain it and call again with ``messages[consumed:]``.
        """
        _as_records(messages, MESSAGE_DTYPE, "messages")
        _as_records(events, EVENT_DTYPE, "events")
        cdef int64_t n = messages.shape[0], cap = events.shape[0], done, w
        cdef int32_t* slots = NULL
        if known is not None:
            if (not isinstance(known, np.ndarray) or known.dtype != np.int32
                    or known.shape != (n,) or not known.flags.c_contiguous
                    or not known.flags.writeable):
                raise ValueError(f"known must be a writeable C-contiguous int32 array of "
                                 f"shape ({n},)")
            slots = <int32_t*>cnp.PyArray_DATA(known)
        self._run_known(<const Message*>cnp.PyArray_DATA(messages), slots, False, n, 0,
                        <Event*>cnp.PyArray_DATA(events), cap, &done, &w)
        if done < n and w == 0:
            need = max_events(&self.core, <const Message*>cnp.PyArray_DATA(messages) + done)
            raise ValueError(
                f"an events buffer of {cap} records cannot hold the {need} events that "
                f"message {done} may emit; pass a larger one")
        return done, w

    def process_all(self, messages):
        """Process every message and return all their events (allocates the result: a view
        of a buffer at most twice its size, else a copy)."""
        _as_records(messages, MESSAGE_DTYPE, "messages")
        cdef int64_t n = messages.shape[0], total = 0, done = 0, c_done, w
        cdef const Message* msgs = <const Message*>cnp.PyArray_DATA(messages)
        events = np.empty(n + 1024, dtype=EVENT_DTYPE)
        while done < n:
            need = total + max_events(&self.core, msgs + done)
            if need > events.shape[0]:
                events = np.resize(events, max(need, 2 * events.shape[0]))
            self._run(msgs + done, n - done, done,
                      <Event*>cnp.PyArray_DATA(events) + total, events.shape[0] - total,
                      &c_done, &w)
            done += c_done
            total += w
        return events[:total] if 2 * total >= events.shape[0] else events[:total].copy()

    def profile(self, messages):
        """Process messages one at a time under the cycle counter (slower than ``process``).

        Returns ``(ticks, counts)``: int64 arrays of shape ``(EXECUTE + 1, 3)`` indexed by
        op and outcome (0: no trade, 1: traded, 2: rejected). Convert ticks to seconds with
        ``ticks_per_second()``. Events are not kept.
        """
        _as_records(messages, MESSAGE_DTYPE, "messages")
        cdef int64_t n = messages.shape[0], done = 0, c_done, cap = 1024
        cdef const Message* msgs = <const Message*>cnp.PyArray_DATA(messages)
        ticks = np.zeros((EXECUTE + 1, 3), dtype=np.uint64)
        counts = np.zeros((EXECUTE + 1, 3), dtype=np.int64)
        events = np.empty(cap, dtype=EVENT_DTYPE)
        cdef uint64_t* tk = <uint64_t*>cnp.PyArray_DATA(ticks)
        cdef int64_t* ct = <int64_t*>cnp.PyArray_DATA(counts)
        cdef int status
        cdef Event* ev
        while done < n:
            ev = <Event*>cnp.PyArray_DATA(events)
            with nogil:
                status = profile_kernel(&self.core, msgs + done, n - done, ev, cap, &c_done,
                                        tk, ct)
            done += c_done
            if status == ARENA_FULL:
                self._grow()
            elif status == EVENTS_FULL:
                cap = max(2 * cap, max_events(&self.core, msgs + done))
                events = np.empty(cap, dtype=EVENT_DTYPE)
        return ticks.astype(np.int64), counts

    # ---- configuration ----------------------------------------------------------------

    def set_self_trade_prevention(self, int mode, book=None):
        """Set the self-trade prevention mode of one book (or of all when ``book=None``)."""
        _check_stp(mode)
        if book is not None:
            _check_book(self, book)
        self.book_array["stp"][slice(None) if book is None else book] = mode

    def set_fees(self, int64_t maker_fee_ppm, int64_t taker_fee_ppm, book=None):
        """Set maker/taker fees (per million of notional) of one book or of all."""
        if book is not None:
            _check_book(self, book)
        where = slice(None) if book is None else book
        self.book_array["maker_fee_ppm"][where] = maker_fee_ppm
        self.book_array["taker_fee_ppm"][where] = taker_fee_ppm

    # ---- queries ----------------------------------------------------------------------

    @property
    def n_books(self):
        return self.core.n_books

    @property
    def n_owners(self):
        return self.core.n_owners

    @property
    def window(self):
        return self.core.window

    @property
    def capacity(self):
        return self.core.capacity

    @property
    def max_orders(self):
        return self.core.max_orders

    def best_bid(self, int book=0):
        """Best bid in ticks, ``EMPTY_BID`` (0) when the book has no bids."""
        _check_book(self, book)
        return self.core.bk[book].best_bid

    def best_ask(self, int book=0):
        """Best ask in ticks, ``EMPTY_ASK`` when the book has no asks."""
        _check_book(self, book)
        return self.core.bk[book].best_ask

    def last_price(self, int book=0):
        """Price of the last trade in ticks, 0 before the first."""
        _check_book(self, book)
        return self.core.bk[book].last_price

    def volume(self, int book=0):
        """Lots traded in the book."""
        _check_book(self, book)
        return self.core.bk[book].volume

    def trade_count(self, int book=0):
        """Number of fills in the book."""
        _check_book(self, book)
        return self.core.bk[book].trade_count

    def live_orders(self, book=None):
        """Resting orders plus pending stops, of one book or of all."""
        if book is None:
            return self.core.n_live
        _check_book(self, book)
        cdef const BookState* bs = &self.core.bk[<int>book]
        return bs.n_resting[0] + bs.n_resting[1] + bs.n_stops

    def top_levels(self, int depth, prices=None, qtys=None, counts=None):
        """Top ``depth`` levels of every book, best first, in one call.

        Returns ``(prices, qtys, counts)`` of shape ``(n_books, 2, depth)``; side index 0
        holds bids and 1 asks; missing levels are zero. Pass arrays to reuse them.
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        shape = (self.core.n_books, 2, depth)
        prices = _out_array(prices, shape, np.int64, "prices")
        qtys = _out_array(qtys, shape, np.int64, "qtys")
        counts = _out_array(counts, shape, np.int32, "counts")
        cdef int64_t* px = <int64_t*>cnp.PyArray_DATA(prices)
        cdef int64_t* qt = <int64_t*>cnp.PyArray_DATA(qtys)
        cdef int32_t* ct = <int32_t*>cnp.PyArray_DATA(counts)
        with nogil:
            top_levels_kernel(&self.core, depth, px, qt, ct)
        return prices, qtys, counts

    def level_queue(self, int book, int side, int64_t price, out=None):
        """The FIFO queue of one level (L3 view) as QUEUE_DTYPE records, oldest first."""
        _check_book(self, book)
        if side != BUY and side != SELL:
            raise ValueError(f"side must be BUY (1) or SELL (-1), got {side}")
        cdef Core* c = &self.core
        cdef int32_t slot = level_head(c, book, side, price), s
        cdef int64_t n = 0, i = 0
        s = slot
        while s != NO_SLOT and c.orders[s].price == price:
            n += 1
            s = c.orders[s].next
        if out is None:
            out = np.empty(n, dtype=QUEUE_DTYPE)
        elif out.dtype != QUEUE_DTYPE or out.ndim != 1 or out.shape[0] < n:
            raise ValueError(f"out must be a 1-D QUEUE_DTYPE array of at least {n} records")
        s = slot
        while s != NO_SLOT and c.orders[s].price == price:
            out[i] = (c.orders[s].order_id, c.orders[s].qty, c.orders[s].clock.timestamp,
                      c.orders[s].owner)
            i += 1
            s = c.orders[s].next
        return out[:n]

    def order(self, int book, int64_t order_id):
        """A live order as a dict (``stop_price`` for pending stops), or None."""
        _check_book(self, book)
        cdef int32_t slot = find_order(&self.core, book, order_id)
        if slot == NO_SLOT:
            return None
        cdef const Order* o = &self.core.orders[slot]
        info = dict(order_id=o.order_id, price=o.price, qty=o.qty, side=o.side,
                    owner=o.owner, op=o.op, tif=o.tif, state=o.state)
        if o.state == STOP_PENDING:
            info["stop_price"] = o.clock.stop_price
        else:
            info["timestamp"] = o.clock.timestamp
        return info

    @property
    def accounts(self):
        """Per (book, owner) accounts, shape ``(n_books, n_owners)`` of ACCOUNT_DTYPE."""
        return self.account_array

    def memory_bytes(self):
        """Bytes the core holds, in all and per resting order / per price level."""
        per_order = (self.order_array.nbytes + self.hash_array.nbytes) / self.core.capacity
        levels = self.core.n_books * self.core.window
        per_level = (self.level_array.nbytes + self.bitmap_array.nbytes
                     + self.summary_array.nbytes) / levels
        total = sum(a.nbytes for a in (self.book_array, self.level_array, self.bitmap_array,
                                        self.summary_array, self.order_array,
                                        self.hash_array, self.account_array))
        return dict(total=total, per_order_slot=per_order, per_price_level=per_level)

    def check_integrity(self):
        """Verify every invariant of docs/semantics.md; raise AssertionError on the first
        violation, naming the book and what is wrong."""
        _check_integrity(self)


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


cdef object _out_array(object a, tuple shape, object dtype, str name):
    if a is None:
        return np.zeros(shape, dtype=dtype)
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape
            or not a.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype).name} array of "
                         f"shape {shape}")
    return a


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
            if ((c.table[h] & HASH_DISPLACED) != 0) != (h != (c.orders[slot].hash
                                                            & c.hash_mask)):
                _fail(f"hash entry {h}: displaced flag wrong")
            if c.orders[slot].hash != <uint32_t>id_hash(c.orders[slot].order_id,
                                                        c.orders[slot].book):
                _fail(f"slot {slot}: stored hash {c.orders[slot].hash} is stale")
            if find_order(c, c.orders[slot].book, c.orders[slot].order_id) != slot:
                _fail(f"order {c.orders[slot].order_id} of book {c.orders[slot].book} not "
                     "findable through the hash")
    if entries != n_live:
        _fail(f"hash has {entries} entries for {n_live} live orders")


# ---------------------------------------------------------------------------------------
# one book, one Python call per operation
# ---------------------------------------------------------------------------------------

cdef class OrderBook:
    """One limit order book with a method per operation, for users and tests.

    Each call processes one message; its events stay readable in ``events`` (a view that
    the next call overwrites). Order ids of 0 are assigned from a counter starting at
    2**48. Prices are ticks and quantities lots. Keyword arguments are as in ``Books``.
    """

    cdef readonly Books books
    cdef Message msg
    cdef object _events
    cdef Event* ev
    cdef int64_t ev_cap
    cdef int64_t n_events
    cdef int64_t next_id

    def __init__(self, *, int window=4096, int capacity=1024, int max_orders=1 << 30,
                 int n_owners=0, int self_trade_prevention=0, int64_t maker_fee_ppm=0,
                 int64_t taker_fee_ppm=0):
        self.books = Books(1, window=window, capacity=capacity, max_orders=max_orders,
                           n_owners=n_owners, self_trade_prevention=self_trade_prevention,
                           maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm)
        self._events = np.zeros(256, dtype=EVENT_DTYPE)
        self.ev = <Event*>cnp.PyArray_DATA(self._events)
        self.ev_cap = 256
        self.n_events = 0
        self.next_id = 1 << 48
        memset(&self.msg, 0, sizeof(Message))

    cdef int64_t _send(self, int op, int side, int64_t price, int64_t stop_price,
                       int64_t qty, int64_t order_id, int64_t new_order_id, int owner,
                       int tif, int64_t timestamp) except -1:
        cdef Message* m = &self.msg
        cdef int64_t done, w, need
        if order_id == 0 and is_new_order(op):
            order_id = self.next_id
            self.next_id += 1
        m.op = op
        m.side = side
        m.price = price
        m.stop_price = stop_price
        m.qty = qty
        m.order_id = order_id
        m.new_order_id = new_order_id
        m.owner = owner
        m.tif = tif
        m.timestamp = timestamp
        need = max_events(&self.books.core, m)
        if need > self.ev_cap:
            self._events = np.zeros(max(need, 2 * self.ev_cap), dtype=EVENT_DTYPE)
            self.ev = <Event*>cnp.PyArray_DATA(self._events)
            self.ev_cap = self._events.shape[0]
        self.books._run(m, 1, 0, self.ev, self.ev_cap, &done, &w)
        self.n_events = w
        return order_id

    def limit(self, int side, int64_t price, int64_t qty, int64_t order_id=0,
              int owner=-1, int tif=0, int64_t timestamp=0):
        """Submit a limit order; returns its id."""
        return self._send(LIMIT, side, price, 0, qty, order_id, 0, owner, tif, timestamp)

    def market(self, int side, int64_t qty, int64_t order_id=0, int owner=-1,
               int tif=1, int64_t timestamp=0):
        """Submit a market order (IOC, or FOK with ``tif=FOK``); returns its id."""
        return self._send(MARKET, side, 0, 0, qty, order_id, 0, owner, tif, timestamp)

    def stop(self, int side, int64_t stop_price, int64_t qty, int64_t order_id=0,
             int owner=-1, int tif=1, int64_t timestamp=0):
        """Submit a stop-market order; returns its id."""
        return self._send(STOP, side, 0, stop_price, qty, order_id, 0, owner, tif, timestamp)

    def stop_limit(self, int side, int64_t stop_price, int64_t price, int64_t qty,
                   int64_t order_id=0, int owner=-1, int tif=0, int64_t timestamp=0):
        """Submit a stop-limit order; returns its id."""
        return self._send(STOP_LIMIT, side, price, stop_price, qty, order_id, 0, owner, tif,
                          timestamp)

    def cancel(self, int64_t order_id, int64_t timestamp=0):
        """Cancel an order; False if it was rejected (unknown or finished)."""
        self._send(CANCEL, 0, 0, 0, 0, order_id, 0, NO_OWNER, 0, timestamp)
        return self.ev[0].kind != REJECTED

    def reduce(self, int64_t order_id, int64_t qty, int64_t timestamp=0):
        """Remove ``qty`` lots from an order, keeping its queue priority."""
        self._send(REDUCE, 0, 0, 0, qty, order_id, 0, NO_OWNER, 0, timestamp)
        return self.ev[0].kind != REJECTED

    def replace(self, int64_t order_id, int64_t price, int64_t qty, int64_t new_order_id=0,
                int tif=0, int64_t timestamp=0):
        """Cancel an order and submit a new one (loses priority); returns the new id."""
        self._send(REPLACE, 0, price, 0, qty, order_id, new_order_id, NO_OWNER, tif,
                   timestamp)
        return new_order_id if new_order_id != 0 else order_id

    def execute(self, int64_t order_id, int64_t qty, int64_t timestamp=0):
        """Trade ``qty`` lots of a resting order against outside flow."""
        self._send(EXECUTE, 0, 0, 0, qty, order_id, 0, NO_OWNER, 0, timestamp)
        return self.ev[0].kind != REJECTED

    def submit(self, message):
        """Process one MESSAGE_DTYPE record (its ``book`` is ignored); returns its id."""
        return self._send(message["op"], message["side"], message["price"],
                          message["stop_price"], message["qty"], message["order_id"],
                          message["new_order_id"], message["owner"], message["tif"],
                          message["timestamp"])

    @property
    def events(self):
        """The events of the last call (a view, overwritten by the next call)."""
        return self._events[:self.n_events]

    def fills(self):
        """The fills of the last call."""
        ev = self._events[:self.n_events]
        return ev[ev["kind"] == FILL]

    def best_bid(self):
        return self.books.core.bk[0].best_bid

    def best_ask(self):
        return self.books.core.bk[0].best_ask

    def last_price(self):
        return self.books.core.bk[0].last_price

    def volume(self):
        return self.books.core.bk[0].volume

    def depth(self, int levels=10):
        """``(bids, asks)``: int64 arrays of shape (k, 3) — price, qty, count — best first."""
        prices, qtys, counts = self.books.top_levels(levels)
        out = []
        for side in range(2):
            k = int(np.count_nonzero(counts[0, side]))
            out.append(np.stack([prices[0, side, :k], qtys[0, side, :k],
                                 counts[0, side, :k].astype(np.int64)], axis=1))
        return out[0], out[1]

    def queue(self, int side, int64_t price):
        """The FIFO queue at ``price`` on ``side`` (QUEUE_DTYPE records, oldest first)."""
        return self.books.level_queue(0, side, price)

    def order(self, int64_t order_id):
        return self.books.order(0, order_id)

    @property
    def accounts(self):
        return self.books.account_array[0]

    def check_integrity(self):
        self.books.check_integrity()
