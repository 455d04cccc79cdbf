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

cimport cython
cimport numpy as cnp
from cpython.long cimport PyLong_CheckExact
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdint cimport INT32_MAX, INT32_MIN, int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport abort

import operator

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
        ("maker_fee_ppm", np.int64), ("taker_fee_ppm", np.int64), ("notional", np.int64),
        ("outside_position", np.int64), ("outside_cash", np.int64),
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
    cdef BookState bs
    pairs = [
        (MESSAGE_DTYPE, sizeof(Message), "price", <char*>&m.price - <char*>&m,
         "tif", <char*>&m.tif - <char*>&m),
        (EVENT_DTYPE, sizeof(Event), "leaves_qty", <char*>&e.leaves_qty - <char*>&e,
         "side", <char*>&e.side - <char*>&e),
        (ORDER_DTYPE, sizeof(Order), "timestamp", <char*>&o.clock - <char*>&o,
         "hash", <char*>&o.hash - <char*>&o),
        (LEVEL_DTYPE, sizeof(Level), "qty", 0, "removals", <char*>&lv.removals - <char*>&lv),
        (BOOK_DTYPE, sizeof(BookState), "notional", <char*>&bs.notional - <char*>&bs,
         "stp", <char*>&bs.stp - <char*>&bs),
        (ACCOUNT_DTYPE, sizeof(Account), "position", 0, "position", 0),
    ]
    for dtype, size, f1, off1, f2, off2 in pairs:
        if (dtype.itemsize != size or dtype.fields[f1][1] != off1
                or dtype.fields[f2][1] != off2):
            raise ImportError(f"rltrader: dtype {dtype} does not match its C struct")
    if (<char*>&m.order_id - <char*>&m != sizeof(int64_t)
            or <char*>&e.order_id - <char*>&e != sizeof(int64_t)
            or <char*>&m.owner - <char*>&m.book != sizeof(int32_t)
            or <char*>&e.owner - <char*>&e.book != sizeof(int32_t)):
        raise ImportError("rltrader: emit_own's copies need Message and Event to lead with "
                          "timestamp, order_id and to hold book, owner side by side")


_check_layout()


# ---------------------------------------------------------------------------------------
# The parts, in dependency order. ``include`` pastes them here: one C translation unit, so
# ``cdef inline`` helpers inline across parts and cythonize rebuilds when a part changes.
# ---------------------------------------------------------------------------------------

include "_book_helpers.pxi"      # message context, side-sign price comparisons, event emission
include "_book_levels.pxi"       # bitmaps of non-empty levels, the level cursor
include "_book_arena.pxi"        # order-id hash table, arena free list
include "_book_resting.pxi"      # resting orders in/out of levels, best prices, re-centring
include "_book_matching.pxi"     # fills and accounts, matching loop, takers, stops
include "_book_validate.pxi"     # one message: validation (reject reasons), then handling
include "_book_kernels.pxi"      # batch kernels (process, profile), event bounds, prefetching
include "_book_books.pxi"        # Books: the Python-facing class and its argument checks
include "_book_queries.pxi"      # read-only kernels behind Books' queries
include "_book_integrity.pxi"    # check_integrity: every invariant, from scratch
include "_book_orderbook.pxi"    # OrderBook: one book, one method per operation
