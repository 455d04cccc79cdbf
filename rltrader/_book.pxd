# cython: language_level=3
"""State layout and constants of the compiled order-book core.

Every constant the project uses is declared here once, as a ``cpdef enum`` (visible to C
and, as an ``IntEnum``, to Python); ``rltrader.core.constants`` re-exports them. The structs
below are mirrored by numpy dtypes in ``rltrader.core.messages``; ``Books`` checks at import that
sizes and offsets agree.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint32_t, uint64_t


# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------

cpdef enum Side:
    BUY = 1
    SELL = -1

cpdef enum Op:
    LIMIT = 1
    MARKET = 2
    CANCEL = 3
    REDUCE = 4        # remove qty lots, keeping queue priority
    REPLACE = 5       # cancel + new order: loses priority, may trade at once
    STOP = 6          # stop-market: waits off the book for the trigger price
    STOP_LIMIT = 7
    EXECUTE = 8       # a trade against a resting order from outside (ITCH E/C, LOBSTER 4)

cpdef enum TimeInForce:
    GTC = 0
    IOC = 1
    FOK = 2
    POST_ONLY = 3     # GTC that is rejected if it would cross

cpdef enum SelfTradePrevention:
    NONE = 0
    CANCEL_TAKER = 1
    CANCEL_MAKER = 2
    CANCEL_BOTH = 3

cpdef enum EventKind:
    ACCEPTED = 1
    REJECTED = 2
    FILL = 3
    CANCELLED = 4
    TRIGGERED = 5
    REDUCED = 6

cpdef enum Reason:
    NO_REASON = 0
    # rejects
    BAD_BOOK = 1
    BAD_OP = 2
    BAD_OWNER = 3
    BAD_ORDER_ID = 4
    BAD_SIDE = 5
    BAD_TIF = 6
    BAD_QTY = 7
    BAD_PRICE = 8
    DUPLICATE_ORDER_ID = 9
    UNKNOWN_ORDER = 10
    NOT_RESTING = 11
    POST_ONLY_WOULD_CROSS = 12
    CAPACITY = 13
    NOT_OWNER = 14              # cancel/reduce/replace/execute naming another owner's order
    NOTIONAL_LIMIT = 15         # the trade could push the book's gross notional past
                                # MAX_NOTIONAL (also the cancel reason of a triggered stop)
    # cancels
    CANCEL_REQUESTED = 20
    IOC_REMAINDER = 21
    FOK_UNFILLABLE = 22
    SELF_TRADE = 23
    REPLACED = 24

cpdef enum Limits:
    NO_OWNER = -1
    MAX_PRICE = 1099511627775       # 2**40 - 1 ticks
    MAX_QTY = 1099511627775         # 2**40 - 1 lots
    EMPTY_BID = 0                   # best_bid of a book without bids
    EMPTY_ASK = 1099511627776       # best_ask of a book without asks (MAX_PRICE + 1)
    NO_SLOT = -1                    # end of an intrusive list
    MAX_NOTIONAL = 4611686018427387903  # 2**62 - 1 ticks x lots: a book's gross traded
                                    # notional never exceeds it (takers that could push it
                                    # past are rejected), so every account stays exact
    MAX_FEE_PPM = 1000000           # |fee rate| <= 100 %: a fee is at most its notional
    BOOK_FEE = 1000001              # an owner's fee tier entry: pay the book's fee

cpdef enum OrderState:
    FREE = 0          # slot on the free list
    RESTING = 1       # in a dense level FIFO or on an overflow list
    STOP_PENDING = 2  # on the book's stop list, off the book

cpdef enum Status:
    # kernel return codes; Books turns them into growth, early return or exceptions
    OK = 0
    ARENA_FULL = 1    # a new order needs a slot: grow, then resume at the same message
    EVENTS_FULL = 2   # the event buffer may not hold the next message's events


# ---------------------------------------------------------------------------------------
# Records (mirrored by MESSAGE_DTYPE / EVENT_DTYPE in rltrader.core.messages)
# ---------------------------------------------------------------------------------------

cdef struct Message:
    int64_t timestamp       # caller's clock, ns
    int64_t order_id        # > 0, unique among the book's live orders
    int64_t new_order_id    # REPLACE: id of the new order (0 keeps order_id)
    int64_t price           # limit price, ticks
    int64_t stop_price      # trigger price, ticks (STOP, STOP_LIMIT)
    int64_t qty             # lots (REDUCE: lots removed; EXECUTE: lots traded)
    int32_t book            # [0, n_books)
    int32_t owner           # [0, n_owners) or NO_OWNER
    int8_t op               # Op
    int8_t side             # Side
    int8_t tif              # TimeInForce

cdef struct Event:
    int64_t timestamp       # the causing message's timestamp
    int64_t order_id        # subject order (the taker, for a fill)
    int64_t maker_order_id  # fill: resting order
    int64_t price           # ticks (see docs/semantics.md per kind)
    int64_t qty             # lots (see docs/semantics.md per kind)
    int64_t leaves_qty      # subject order's open lots after the event
    int64_t maker_leaves_qty  # fill: maker's open lots after the fill
    int32_t book
    int32_t owner           # subject order's owner
    int32_t maker_owner     # fill: maker's owner, else NO_OWNER
    int32_t message_index   # index of the causing message in the call's batch
    int8_t kind             # EventKind
    int8_t reason           # Reason
    int8_t side             # subject order's side


# ---------------------------------------------------------------------------------------
# Core state (struct-of-arrays per concern; every array is a numpy array owned by Books)
# ---------------------------------------------------------------------------------------

cdef union OrderClock:
    int64_t timestamp       # resting order: when it joined its level (ns)
    int64_t stop_price      # pending stop: trigger price (ticks); it has no queue time yet

cdef struct Order:
    int64_t order_id        # external id (unique among the book's live orders)
    int64_t price           # limit price, ticks (0 for a pending stop-market)
    int64_t qty             # leaves, lots
    OrderClock clock
    int32_t next            # FIFO / overflow / stop / free list link, NO_SLOT at the end
    int32_t prev            # FIFO / overflow / stop list link, NO_SLOT at the start
    int32_t owner           # account index or NO_OWNER
    int32_t book            # book index
    int8_t side             # Side
    int8_t op               # LIMIT, STOP or STOP_LIMIT (what it becomes when triggered)
    int8_t tif              # TimeInForce
    int8_t state            # OrderState
    uint32_t hash           # id_hash(order_id, book) (32 bits), set by hash_insert
                            # (fills the struct's padding; the hash table's deletion reads
                            # it instead of re-hashing)

cdef struct Level:
    int64_t qty             # sum of leaves of its resting orders, lots
    int32_t count           # number of resting orders
    int32_t head            # oldest order slot (first to match), NO_SLOT when empty
    int32_t tail            # newest order slot
    uint32_t removals       # orders taken off or reduced here, +1 per recenter (wraps): the
                            # lots ahead of a resting order change only when this does

cdef struct BookState:
    int64_t base            # price of dense level 0, ticks
    int64_t best_bid        # ticks, EMPTY_BID when no bids
    int64_t best_ask        # ticks, EMPTY_ASK when no asks
    int64_t last_price      # last trade price, ticks (0 before the first trade)
    int64_t volume          # lots traded
    int64_t trade_count     # number of fills
    int64_t maker_fee_ppm   # fee per million of notional charged to makers (< 0: rebate)
    int64_t taker_fee_ppm
    int64_t notional        # gross traded notional, sum of price x qty over fills, ticks x
                            # lots, in [0, MAX_NOTIONAL]: bounds |cash| of every account
                            # by 2 x MAX_NOTIONAL < 2**63 (fees are at most the notional)
    int64_t outside_position  # net lots bought by orders without an owner (NO_OWNER): with
    int64_t outside_cash    # the accounts, positions sum to 0 and cash to -fees (integrity)
    int32_t overflow_head[2]  # per side (0 bid, 1 ask): best-first list of out-of-window orders
    int32_t overflow_tail[2]
    int32_t n_resting[2]    # resting orders per side
    int32_t stop_head       # pending stops in submission order
    int32_t stop_tail
    int32_t n_stops
    int32_t stp             # SelfTradePrevention

cdef struct Account:
    # exact: |cash| <= 2 x the book's notional <= 2 x MAX_NOTIONAL (BookState.notional)
    int64_t position        # lots, buys positive
    int64_t cash            # ticks x lots, fees included
    int64_t volume          # lots traded
    int64_t fees            # ticks x lots paid (< 0: rebates earned)


cdef struct Core:
    # sizes
    int32_t n_books
    int32_t n_owners
    int32_t window          # dense levels per book (multiple of 64)
    int32_t words           # bitmap words per book side = window / 64
    int32_t summary_words   # summary words per book side = ceil(words / 64)
    int32_t capacity        # order slots in the arena
    int32_t max_orders      # the arena never grows past this
    int32_t free_head       # free slot list through Order.next
    int32_t n_live          # orders resting or pending, all books
    int64_t max_book_load   # at least n_resting[0] + n_resting[1] + 6 x n_stops of every
                            # book (the most any book has held; it never decreases, and
                            # Books recomputes it from the books when it binds): the batch
                            # kernels' quick bound on one message's events (max_events)
    uint64_t hash_mask      # hash table size - 1 (a power of two >= 2 x capacity)
    int32_t hash_shift      # 32 - log2(hash table size): an id's home bucket is its
                            # 32-bit id_hash >> hash_shift (hash_home)
    # raw views of the numpy arrays owned by Books
    BookState* bk           # [n_books]
    Level* lv               # [n_books, window]; a price has one level, owned by one side
    uint64_t* bits          # [n_books, 2, words]: bit set = level non-empty on that side
    uint64_t* summary       # [n_books, 2, summary_words]: bit set = bits word non-zero
    Order* orders           # [capacity]
    uint32_t* table         # [hash_mask + 1]: (slot + 1) | HASH_DISPLACED flag, 0 = empty
    Account* accounts       # [n_books, n_owners]
    int64_t* owner_fees     # [n_owners, 2]: an owner's maker and taker fee (ppm) in every
                            # book, BOOK_FEE: the book's (fee tiers)
    bint fees               # some book has a fee or some owner a fee tier (Books
                            # recomputes it whenever either is set, and when it binds its
                            # arrays): False lets fills skip the fee look-ups


# ---------------------------------------------------------------------------------------
# Software prefetch (shared with the kernels that cimport this file). Inline assembly on
# x86: GCC 12 drops ``__builtin_prefetch`` from these modules (none was in the binaries).
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    static inline void rltrader_prefetch(const void* p) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __asm__ volatile("prefetcht0 %0" : : "m"(*(const char*)p));
    #else
        __builtin_prefetch(p);
    #endif
    }
    """
    void prefetch "rltrader_prefetch"(const void* p) nogil


# ---------------------------------------------------------------------------------------
# Order lookup (inline here so that other kernels, e.g. rltrader._env, share it)
# ---------------------------------------------------------------------------------------

cdef inline uint64_t id_hash(int64_t order_id, int32_t book) noexcept nogil:
    """The hash of an order id in its book, 32 bits: the high half of a multiplicative
    (Fibonacci) hash of the id mixed with the book. A table of 2**k buckets takes its top
    k bits (``hash_home``), the product's best mixed: every bit of the id and the book
    reaches them, and sequential or strided ids spread evenly (``tests/test_book_hash.py``).
    Seven instructions where a finalizer of three multiplies took sixteen, on every
    message (docs/envs.md, "Seventh core round")."""
    return ((<uint64_t>order_id ^ (<uint64_t>book * 0xC2B2AE3D27D4EB4FULL))
            * 0x9E3779B97F4A7C15ULL) >> 32


cdef inline uint64_t hash_home(const Core* c, uint64_t h) noexcept nogil:
    """The home bucket of an id whose ``id_hash`` is ``h``: its top bits, as many as the
    table has (``hash_shift`` = 32 - log2 of the table's size)."""
    return h >> c.hash_shift


cdef extern from *:
    """
    #define RLTRADER_HASH_DISPLACED 0x80000000u
    #define RLTRADER_HASH_SLOT 0x7fffffffu
    """
    # a hash table entry is (slot + 1) | HASH_DISPLACED when the entry does not sit in
    # its home bucket (slots are < 2**30): an entry at home elsewhere cannot be the one a
    # probe or the backward shift looks for, so its order need not be read
    const uint32_t HASH_DISPLACED "RLTRADER_HASH_DISPLACED"
    const uint32_t HASH_SLOT "RLTRADER_HASH_SLOT"


cdef inline int32_t find_order_hashed(const Core* c, int32_t b, int64_t order_id,
                                      uint64_t h) noexcept nogil:
    """``find_order`` for a caller that has ``h = id_hash(order_id, b)`` already."""
    cdef uint64_t mask = c.hash_mask
    cdef uint64_t home = hash_home(c, h), p = home
    cdef uint32_t entry
    cdef const Order* o
    while True:
        entry = c.table[p]
        if entry == 0:
            return NO_SLOT
        # only an entry at home in our home bucket, or a displaced one past it, can match
        if (p == home) != ((entry & HASH_DISPLACED) != 0):
            o = &c.orders[(entry & HASH_SLOT) - 1]
            if o.order_id == order_id and o.book == b:
                return <int32_t>((entry & HASH_SLOT) - 1)
        p = (p + 1) & mask


cdef inline int32_t find_order(const Core* c, int32_t b, int64_t order_id) noexcept nogil:
    """The arena slot of the live order ``order_id`` of book ``b``, or NO_SLOT."""
    return find_order_hashed(c, b, order_id, id_hash(order_id, b))


cdef class Books:
    # single-threaded: every method that runs a kernel, resizes the arena or walks the
    # order links enters (``_enter``, with the GIL held) and leaves on its way out; a call
    # from another thread while one is inside raises RuntimeError instead of racing it.
    # The same thread may enter again (the env and flow kernels hold the Books for a whole
    # step and run their batches through it).
    cdef Core core
    cdef int busy                       # calls in progress on busy_thread (0: none)
    cdef unsigned long busy_thread      # PyThread_get_thread_ident() of that thread
    cdef readonly object book_array
    cdef readonly object level_array
    cdef readonly object bitmap_array
    cdef readonly object summary_array
    cdef readonly object order_array
    cdef readonly object hash_array
    cdef readonly object account_array
    cdef readonly object owner_fee_array
    cdef object arena_memory            # the reservation order_array views (_ArenaMemory),
                                        # or None when order_array owns its memory

    cdef int _run(self, const Message* msgs, int64_t n, int64_t index_offset, Event* out,
                  int64_t out_cap, int64_t* consumed, int64_t* written) except -1
    cdef int _run_known(self, const Message* msgs, int32_t* known, bint fresh,
                        int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                        int64_t* consumed, int64_t* written) except -1
    cdef int _run_known_ahead(self, const Message* msgs, int32_t* known, bint fresh,
                              int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                              int64_t* consumed, int64_t* written,
                              int32_t far) except -1
    cdef int _run_loop(self, const Message* msgs, int32_t* known, bint fresh, int64_t n,
                       int64_t index_offset, Event* out, int64_t out_cap, int64_t* done_out,
                       int64_t* written_out, int32_t far) except -1
    cdef int _enter(self) except -1
    cdef void _leave(self) noexcept
    cdef _set_book_field(self, str field, object book, object value)
    cdef _grow(self)
    cdef _resize(self, int capacity)
    cdef _bind(self)
