# cython: language_level=3
"""NASDAQ TotalView-ITCH 5.0 BinaryFILE kernels: parse records into the core's messages, and
write messages back as records.

A BinaryFILE is a run of records ``u16 length (big-endian, not counting itself) + message``;
the first message byte is its type. Field layouts: ``shared/reference/itch50.md`` (the
official spec's tables). How ITCH messages become ``MESSAGE_DTYPE`` records, and everything
else a caller needs, is documented in :mod:`rltrader.data.itch`; this module holds the two
``nogil`` loops (parse, write), the record dtypes they fill, and ``Rebuilder``, which hands
the parse loop's messages to a ``Books`` batch by batch (in the same thread, or from a parse
thread through a ring of batches) for ``rebuild_books``.

Both loops are ``noexcept nogil`` over caller-owned numpy buffers and never allocate. They
report malformed input by a status code plus the byte offset and values in ``ParseError``;
``Parser.parse`` turns that into an exception after leaving ``nogil``.
"""

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import numpy as np

from rltrader._book cimport (
    CANCEL, EXECUTE, GTC, LIMIT, REDUCE, REJECTED, REPLACE, Books, Event, Message,
)
from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE

cnp.import_array()


# ---------------------------------------------------------------------------------------
# Records decoded besides book messages (mirrored by the dtypes below)
# ---------------------------------------------------------------------------------------

cdef struct Trade:
    int64_t timestamp       # ns since midnight
    int64_t shares          # P, C: shares executed; Q: cross shares; B: 0
    int64_t price_e4        # $ x 10^4 (ITCH Price(4)): P price, Q cross price, C price; B: 0
    int64_t match_number    # the execution's match number (B: the broken one)
    int64_t order_ref       # P: order ref (0 in feeds since 2010); C: executed order; else 0
    int64_t message_index   # index, in the same chunk's messages, of the next book message
                            # (C: its own EXECUTE); where the trade sits in the stream
    int32_t book            # book index, -1 when the stock locate has no book
    int32_t locate          # stock locate
    int8_t side             # P: BUY / SELL; else 0
    char kind               # b'P' non-cross trade, b'Q' cross, b'B' broken, b'C' exec+price
    char cross_type         # Q: b'O' open, b'C' close, b'H' halt/IPO; else 0
    char printable          # C: b'Y' / b'N'; else 0

cdef struct DirectoryEntry:  # one 'R' Stock Directory message
    int64_t timestamp
    int32_t locate
    int32_t book            # -1 when the symbol is not selected
    uint32_t round_lot_size
    uint32_t etp_leverage_factor
    char symbol[8]          # trailing spaces removed (NUL-padded)
    char market_category
    char financial_status
    char round_lots_only
    char issue_classification
    char issue_sub_type[2]
    char authenticity
    char short_sale_threshold
    char ipo_flag
    char luld_ref_price_tier
    char etp_flag
    char inverse_indicator

cdef struct TradingAction:  # one 'H' Stock Trading Action message
    int64_t timestamp
    int32_t locate
    int32_t book            # -1 when the symbol is not selected
    char symbol[8]          # NUL-padded
    char state              # b'H' halted, b'P' paused, b'Q' quotation only, b'T' trading
    char reason[4]          # NUL-padded

cdef struct SystemEvent:    # one 'S' System Event message
    int64_t timestamp
    char code               # O S Q M E C (see the spec)

TRADE_DTYPE = np.dtype(
    [("timestamp", np.int64), ("shares", np.int64), ("price_e4", np.int64),
     ("match_number", np.int64), ("order_ref", np.int64), ("message_index", np.int64),
     ("book", np.int32), ("locate", np.int32), ("side", np.int8), ("kind", "S1"),
     ("cross_type", "S1"), ("printable", "S1")], align=True)

DIRECTORY_DTYPE = np.dtype(
    [("timestamp", np.int64), ("locate", np.int32), ("book", np.int32),
     ("round_lot_size", np.uint32), ("etp_leverage_factor", np.uint32), ("symbol", "S8"),
     ("market_category", "S1"), ("financial_status", "S1"), ("round_lots_only", "S1"),
     ("issue_classification", "S1"), ("issue_sub_type", "S2"), ("authenticity", "S1"),
     ("short_sale_threshold", "S1"), ("ipo_flag", "S1"), ("luld_ref_price_tier", "S1"),
     ("etp_flag", "S1"), ("inverse_indicator", "S1")], align=True)

TRADING_ACTION_DTYPE = np.dtype(
    [("timestamp", np.int64), ("locate", np.int32), ("book", np.int32), ("symbol", "S8"),
     ("state", "S1"), ("reason", "S4")], align=True)

SYSTEM_EVENT_DTYPE = np.dtype([("timestamp", np.int64), ("code", "S1")], align=True)

for _dtype, _size in ((TRADE_DTYPE, sizeof(Trade)), (DIRECTORY_DTYPE, sizeof(DirectoryEntry)),
                      (TRADING_ACTION_DTYPE, sizeof(TradingAction)),
                      (SYSTEM_EVENT_DTYPE, sizeof(SystemEvent))):
    if _dtype.itemsize != _size:
        raise ImportError(f"dtype {_dtype} is {_dtype.itemsize} bytes, its struct {_size}")


# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------

cpdef enum ParseStatus:
    PARSED = 0            # every complete record consumed; a partial one may remain
    END_OF_SESSION = 1    # a zero-length record (BinaryFILE end marker) was consumed
    UNKNOWN_TYPE = 2      # message type not in ITCH 5.0
    BAD_LENGTH = 3        # length prefix differs from the type's fixed length
    BAD_ORDER_REF = 4     # order ref 0 (the core's "keep the id") or >= 2**63 (not int64)
    BAD_SIDE = 5          # buy/sell indicator not 'B' / 'S'
    BAD_TICK = 6          # a book price that is not a multiple of tick_size
    BAD_SHARES = 7        # a Q cross with >= 2**63 shares
    OUTPUT_FULL = 8       # an output buffer is too small (a caller bug, never the data)

cpdef enum WriteStatus:
    WRITTEN = 0
    BAD_OP = 1            # not LIMIT / CANCEL / REDUCE / REPLACE / EXECUTE
    BAD_TIF = 2           # LIMIT or REPLACE that is not GTC
    BAD_MESSAGE_SIDE = 3  # LIMIT whose side is not BUY / SELL
    BAD_PRICE = 4         # price x tick_size outside ITCH's u32 Price(4)
    BAD_QTY = 5           # qty outside [0, 2**32)
    BAD_ID = 6            # order id <= 0; REPLACE new id 0 or equal to the old one
    BAD_BOOK = 7          # book outside the symbol directory
    BAD_TIMESTAMP = 8     # timestamp outside [0, 2**48) ns
    BAD_TRADE = 9         # trade kind not P/Q/B/C, C not on its EXECUTE, bad field range
    WRITE_FULL = 10       # output buffer too small (a caller bug)

cpdef enum Counter:
    NOT_SELECTED = 0            # records on stocks outside the selection
    UNRESOLVED = 1              # book records on a stock locate never named by R, A or F
    EXECUTIONS_WHILE_HALTED = 2 # E/C while the stock's last H state was 'H' or 'P'
    UNKNOWN_SKIPPED = 3         # records of unknown type skipped (on_unknown="skip")
    N_COUNTERS = 4

cdef enum:
    NO_BOOK = -1              # book_of_locate: not seen yet
    SKIP_BOOK = -2            # book_of_locate: seen, not selected
    N_LOCATES = 65536         # stock locates are u16

cdef extern from *:
    """
    #define RLTRADER_MAX_REF 0x7FFFFFFFFFFFFFFFULL
    #define RLTRADER_MAX_U32 0xFFFFFFFFLL
    """
    # constants, not module variables: the parse loop compares with immediates
    const uint64_t MAX_REF "RLTRADER_MAX_REF"   # order refs must fit the core's int64 ids
    const int64_t MAX_U32 "RLTRADER_MAX_U32"    # ITCH share counts and Price(4) fields

#: Fixed message length per type byte, type byte included (0: not an ITCH 5.0 type).
MESSAGE_LENGTHS = {b"S": 12, b"R": 39, b"H": 25, b"Y": 20, b"L": 26, b"V": 35, b"W": 12,
                   b"K": 28, b"J": 35, b"h": 21, b"A": 36, b"F": 40, b"E": 31, b"C": 36,
                   b"X": 23, b"D": 19, b"U": 35, b"P": 44, b"Q": 40, b"B": 19, b"I": 50,
                   b"N": 20, b"O": 48}

cdef int16_t LENGTH[256]
memset(LENGTH, 0, sizeof(LENGTH))
for _t, _n in MESSAGE_LENGTHS.items():
    LENGTH[_t[0]] = _n

# Per order-record type (A F D X U E C), what ``decode_order_fast`` reads, so that it decodes
# every type with the same instructions: a branch per type was a misprediction per record
# on a mixed stream. Offsets of fields a type lacks point at its order ref (inside every
# order record) and the value is masked to 0.
cdef enum:
    ADD = 1                   # A, F: side and price
    REPLACES = 2              # U: new ref and price
    HAS_QTY = 4               # all but D
    EXECUTES = 8              # E, C
cdef uint8_t ORDER_FLAGS[256]
cdef int8_t ORDER_OP[256]
cdef uint8_t SIDE_AT[256]     # 0 (the type byte, never B/S) when there is no side
cdef uint8_t QTY_AT[256]
cdef uint8_t PRICE_AT[256]
cdef uint8_t NEW_REF_AT[256]
memset(ORDER_FLAGS, 0, sizeof(ORDER_FLAGS))
memset(ORDER_OP, 0, sizeof(ORDER_OP))
memset(SIDE_AT, 0, sizeof(SIDE_AT))
memset(QTY_AT, 11, sizeof(QTY_AT))
memset(PRICE_AT, 11, sizeof(PRICE_AT))
memset(NEW_REF_AT, 11, sizeof(NEW_REF_AT))
for _t, _flags, _op, _qty, _price in ((b"A", ADD | HAS_QTY, LIMIT, 20, 32),
                                      (b"F", ADD | HAS_QTY, LIMIT, 20, 32),
                                      (b"D", 0, CANCEL, 11, 11),
                                      (b"X", HAS_QTY, REDUCE, 19, 11),
                                      (b"U", REPLACES | HAS_QTY, REPLACE, 27, 31),
                                      (b"E", EXECUTES | HAS_QTY, EXECUTE, 19, 11),
                                      (b"C", EXECUTES | HAS_QTY, EXECUTE, 19, 11)):
    ORDER_FLAGS[_t[0]] = _flags
    ORDER_OP[_t[0]] = _op
    QTY_AT[_t[0]] = _qty
    PRICE_AT[_t[0]] = _price
SIDE_AT[b"A"[0]] = SIDE_AT[b"F"[0]] = 19
NEW_REF_AT[b"U"[0]] = 19


# ---------------------------------------------------------------------------------------
# Big-endian field access
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    #include <string.h>
    /* unaligned big-endian loads: one load and one byte swap each (the shifts and ors
       of single bytes that they replace took more instructions than the rest of a
       record's decoding) */
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define RLTRADER_BE16(v) (v)
    #define RLTRADER_BE32(v) (v)
    #define RLTRADER_BE64(v) (v)
    #else
    #define RLTRADER_BE16(v) __builtin_bswap16(v)
    #define RLTRADER_BE32(v) __builtin_bswap32(v)
    #define RLTRADER_BE64(v) __builtin_bswap64(v)
    #endif
    static inline unsigned long long rltrader_be16(const unsigned char* p) {
        unsigned short v; memcpy(&v, p, 2); return RLTRADER_BE16(v);
    }
    static inline unsigned long long rltrader_be32(const unsigned char* p) {
        unsigned int v; memcpy(&v, p, 4); return RLTRADER_BE32(v);
    }
    static inline unsigned long long rltrader_be48(const unsigned char* p) {
        /* two loads: one 8-byte load of 6 bytes copied into a zeroed u64 on the stack
           stalled on store forwarding (the costliest instruction of a parse) */
        return (rltrader_be16(p) << 32) | rltrader_be32(p + 2);
    }
    static inline unsigned long long rltrader_be64(const unsigned char* p) {
        unsigned long long v; memcpy(&v, p, 8); return RLTRADER_BE64(v);
    }
    """
    uint64_t be16 "rltrader_be16"(const uint8_t* p) noexcept nogil
    uint64_t be32 "rltrader_be32"(const uint8_t* p) noexcept nogil
    uint64_t be48 "rltrader_be48"(const uint8_t* p) noexcept nogil
    uint64_t be64 "rltrader_be64"(const uint8_t* p) noexcept nogil

cdef inline void put16(uint8_t* p, uint64_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v

cdef inline void put32(uint8_t* p, uint64_t v) noexcept nogil:
    put16(p, v >> 16)
    put16(p + 2, v)

cdef inline void put48(uint8_t* p, uint64_t v) noexcept nogil:
    put16(p, v >> 32)
    put32(p + 2, v)

cdef inline void put64(uint8_t* p, uint64_t v) noexcept nogil:
    put32(p, v >> 32)
    put32(p + 4, v)

cdef inline void copy_alpha(char* dst, const uint8_t* src, int n) noexcept nogil:
    """Copy an ITCH Alpha field, turning its right padding (spaces) into NULs."""
    cdef int end = n
    memcpy(dst, src, n)
    while end > 0 and dst[end - 1] == 32:
        end -= 1
        dst[end] = 0


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------

cdef struct Outputs:
    Message* msgs
    Trade* trades
    DirectoryEntry* directory
    TradingAction* actions
    SystemEvent* system
    int64_t cap_msgs, cap_trades, cap_directory, cap_actions, cap_system
    int64_t n_msgs, n_trades, n_directory, n_actions, n_system
    bint pause_when_full    # a full output ends the call (PARSED, before the record) instead
                            # of failing with OUTPUT_FULL: the Rebuilder's small batches
    bint paused             # set when the call ended that way

cdef struct ParserState:
    int32_t* book_of_locate     # [N_LOCATES] book, NO_BOOK or SKIP_BOOK
    int32_t* locate_of_book     # [N_LOCATES]
    char* book_symbol           # [N_LOCATES, 8] NUL-padded
    char* book_state            # [N_LOCATES] last H trading state per book (0: none yet)
    const char* selected        # [n_selected, 8] NUL-padded symbols (all_symbols = 0)
    int64_t* type_counts        # [256] records per type byte
    int64_t* counters           # [N_COUNTERS]
    int32_t n_selected
    int32_t n_books
    bint all_symbols
    bint skip_unknown
    int64_t tick_size
    uint64_t tick_magic         # ceil(2**64 / tick_size) for 2 <= tick_size < 2**32, else 0
    # the first error
    int64_t err_offset          # byte offset of the bad record (its length prefix)
    int64_t err_value           # the offending value
    int32_t err_type            # its type byte
    int32_t err_length          # its length prefix


cdef inline int32_t resolve(ParserState* st, uint16_t locate, const uint8_t* stock
                            ) noexcept nogil:
    """Book of a stock locate, learning it from ``stock`` (8-byte Alpha) when given."""
    cdef int32_t b = st.book_of_locate[locate], i
    cdef char sym[8]
    if b != NO_BOOK:
        if b >= 0 and stock != NULL and st.book_symbol[8 * b] == 0:
            copy_alpha(st.book_symbol + 8 * b, stock, 8)
        return b
    if locate == 0:  # "not about one stock"
        return NO_BOOK
    if st.all_symbols:
        # a new book's entries are set here: the per-book tables are not zeroed up front
        b = st.n_books
        st.n_books += 1
        st.locate_of_book[b] = locate
        st.book_state[b] = 0
        if stock != NULL:
            copy_alpha(st.book_symbol + 8 * b, stock, 8)
        else:
            memset(st.book_symbol + 8 * b, 0, 8)
        st.book_of_locate[locate] = b
        return b
    if stock == NULL:
        return NO_BOOK
    copy_alpha(sym, stock, 8)
    b = SKIP_BOOK
    for i in range(st.n_selected):
        if memcmp(st.selected + 8 * i, sym, 8) == 0:
            b = i
            st.locate_of_book[i] = locate
            memcpy(st.book_symbol + 8 * i, sym, 8)
            break
    st.book_of_locate[locate] = b
    return b


cdef extern from *:
    """
    static inline unsigned long long rltrader_mulhi64(unsigned long long a,
                                                      unsigned long long b) {
        return (unsigned long long)(((unsigned __int128)a * b) >> 64);
    }
    """
    uint64_t mulhi64 "rltrader_mulhi64"(uint64_t a, uint64_t b) noexcept nogil


cdef inline uint64_t tick_magic(int64_t tick_size) noexcept nogil:
    """The multiplier of ``to_ticks``'s division (0: divide plainly): for a 32-bit
    numerator and divisor, ``mulhi64(n, ceil(2**64 / d))`` is ``n // d`` exactly (Lemire,
    Kaser & Kurz, "Faster remainder by direct computation", 2019)."""
    cdef uint64_t all_ones = ~(<uint64_t>0)
    if tick_size < 2 or tick_size > <int64_t>MAX_U32:
        return 0
    return all_ones // <uint64_t>tick_size + 1


cdef inline bint to_ticks(const ParserState* st, int64_t price, int64_t* ticks) noexcept nogil:
    """Price(4) ``price`` (a u32) in ticks; false when it is not a whole number of them.
    The division is a multiply (``tick_magic``): an idiv per add was a tenth of a parse."""
    if st.tick_magic != 0:
        ticks[0] = <int64_t>mulhi64(<uint64_t>price, st.tick_magic)
    else:
        ticks[0] = price // st.tick_size
    return ticks[0] * st.tick_size == price


cdef inline bint skipped(ParserState* st, int32_t b) noexcept nogil:
    if b >= 0:
        return False
    st.counters[<int>NOT_SELECTED if b == SKIP_BOOK else <int>UNRESOLVED] += 1
    return True


cdef inline int fail(ParserState* st, int status, int64_t offset, const uint8_t* m,
                     int32_t length, int64_t value) noexcept nogil:
    st.err_offset = offset
    st.err_type = m[0] if length > 0 else -1
    st.err_length = length
    st.err_value = value
    return status


cdef inline bint is_order(uint8_t kind) noexcept nogil:
    return (kind == b'A' or kind == b'F' or kind == b'E' or kind == b'C' or kind == b'X'
            or kind == b'D' or kind == b'U')


cdef inline bint bad_ref(uint64_t ref) noexcept nogil:
    """Ref 0 is the core's "keep the id" in a REPLACE; ids are int64."""
    return ref - 1 >= MAX_REF      # ref == 0 wraps to 2**64 - 1


cdef inline Trade* executed(ParserState* st, const uint8_t* m, uint8_t kind, int32_t b,
                            int64_t qty, uint64_t ref, Outputs* out) noexcept nogil:
    """An execution's (E, C) bookkeeping: counted when its book is halted or paused, and
    for a C (executed with price) the next trade row, zeroed, with the record's shares,
    price, match number, order ref and printable flag; returns that row (NULL for an E).
    The row's timestamp, message index, book and locate are the caller's."""
    cdef Trade* tr
    if st.book_state[b] == b'H' or st.book_state[b] == b'P':
        st.counters[<int>EXECUTIONS_WHILE_HALTED] += 1
    if kind != b'C':
        return NULL
    tr = out.trades + out.n_trades
    out.n_trades += 1
    memset(tr, 0, sizeof(Trade))
    tr.kind = b'C'
    tr.shares = qty
    tr.price_e4 = <int64_t>be32(m + 32)
    tr.match_number = <int64_t>be64(m + 23)
    tr.order_ref = <int64_t>ref
    tr.printable = <char>m[31]
    return tr


cdef int decode_order(ParserState* st, const uint8_t* m, int32_t b, Outputs* out,
                      int64_t* bad) noexcept nogil:
    """A/F/E/C/X/D/U -> the next message (and a trade row for C); timestamp, book, owner
    and tif are the caller's."""
    cdef Message* msg = out.msgs + out.n_msgs
    cdef uint64_t ref = be64(m + 11), new_ref
    cdef uint8_t kind = m[0]
    cdef int64_t price
    # ``bad`` is written on the error paths only: it lives in the caller's memory
    if bad_ref(ref):
        bad[0] = <int64_t>ref
        return BAD_ORDER_REF
    msg.order_id = <int64_t>ref
    msg.new_order_id = 0
    msg.price = 0
    msg.side = 0
    if kind == b'A' or kind == b'F':
        if m[19] != b'B' and m[19] != b'S':
            bad[0] = m[19]
            return BAD_SIDE
        price = <int64_t>be32(m + 32)
        if not to_ticks(st, price, &msg.price):
            bad[0] = price
            return BAD_TICK
        msg.op = LIMIT
        msg.side = 1 if m[19] == b'B' else -1
        msg.qty = <int64_t>be32(m + 20)
    elif kind == b'D':
        msg.op = CANCEL
        msg.qty = 0
    elif kind == b'X':
        msg.op = REDUCE
        msg.qty = <int64_t>be32(m + 19)
    elif kind == b'U':
        new_ref = be64(m + 19)
        if bad_ref(new_ref):
            bad[0] = <int64_t>new_ref
            return BAD_ORDER_REF
        price = <int64_t>be32(m + 31)
        if not to_ticks(st, price, &msg.price):
            bad[0] = price
            return BAD_TICK
        msg.op = REPLACE
        msg.new_order_id = <int64_t>new_ref
        msg.qty = <int64_t>be32(m + 27)
    else:
        msg.op = EXECUTE
        msg.qty = <int64_t>be32(m + 19)
        executed(st, m, kind, b, msg.qty, ref, out)
    return PARSED


cdef inline bint decode_order_fast(ParserState* st, const uint8_t* m, uint8_t kind,
                                   int32_t b, int64_t ts, uint16_t locate, Outputs* out
                                   ) noexcept nogil:
    """``decode_order`` and the caller's part of the message, without a branch on the
    record type; false (and nothing written) for a record that ``decode_order`` rejects,
    which then tells why."""
    cdef uint64_t flags = ORDER_FLAGS[kind]
    cdef uint64_t add = flags & ADD, replaces = (flags >> 1) & 1
    cdef uint64_t ref = be64(m + 11)
    cdef uint64_t new_ref = be64(m + NEW_REF_AT[kind]) & (0 - replaces)
    cdef uint64_t qty = be32(m + QTY_AT[kind]) & (0 - ((flags >> 2) & 1))
    cdef uint64_t price = be32(m + PRICE_AT[kind]) & (0 - (add | replaces))
    cdef uint8_t side_byte = m[SIDE_AT[kind]]
    cdef uint64_t buy = side_byte == b'B', sell = side_byte == b'S'
    cdef int64_t ticks
    cdef uint64_t ok = ((ref - 1) < MAX_REF) & ((buy | sell) | (add ^ 1))
    cdef Message* msg
    cdef Trade* tr
    ok &= ((new_ref - 1) < MAX_REF) | (replaces ^ 1)
    ok &= <uint64_t>to_ticks(st, <int64_t>price, &ticks)
    if not ok:
        return False
    msg = out.msgs + out.n_msgs
    msg.timestamp = ts
    msg.order_id = <int64_t>ref
    msg.new_order_id = <int64_t>new_ref
    msg.price = ticks
    msg.stop_price = 0
    msg.qty = <int64_t>qty
    msg.book = b
    msg.owner = -1
    msg.op = ORDER_OP[kind]
    msg.side = <int8_t>((<int64_t>buy - <int64_t>sell) * <int64_t>add)
    msg.tif = GTC
    if flags & EXECUTES:
        tr = executed(st, m, kind, b, <int64_t>qty, ref, out)
        if tr != NULL:
            tr.timestamp = ts
            tr.message_index = out.n_msgs
            tr.book = b
            tr.locate = locate
    out.n_msgs += 1
    return True


cdef int decode_trade(Trade* tr, const uint8_t* m, int64_t* bad) noexcept nogil:
    """P/Q/B -> the kind-specific fields of a zeroed trade row."""
    cdef uint8_t kind = m[0]
    tr.kind = <char>kind
    if kind == b'P':
        bad[0] = m[19]
        if m[19] != b'B' and m[19] != b'S':
            return BAD_SIDE
        bad[0] = <int64_t>be64(m + 11)
        if be64(m + 11) > MAX_REF:
            return BAD_ORDER_REF
        tr.order_ref = bad[0]
        tr.side = 1 if m[19] == b'B' else -1
        tr.shares = <int64_t>be32(m + 20)
        tr.price_e4 = <int64_t>be32(m + 32)
        tr.match_number = <int64_t>be64(m + 36)
    elif kind == b'Q':
        bad[0] = <int64_t>be64(m + 11)
        if be64(m + 11) > MAX_REF:
            return BAD_SHARES
        tr.shares = bad[0]
        tr.price_e4 = <int64_t>be32(m + 27)
        tr.match_number = <int64_t>be64(m + 31)
        tr.cross_type = <char>m[39]
    else:
        tr.match_number = <int64_t>be64(m + 11)
    return PARSED


cdef void decode_directory(DirectoryEntry* de, const uint8_t* m) noexcept nogil:
    """R -> the body fields of a directory row."""
    copy_alpha(de.symbol, m + 11, 8)
    de.market_category = <char>m[19]
    de.financial_status = <char>m[20]
    de.round_lot_size = <uint32_t>be32(m + 21)
    de.round_lots_only = <char>m[25]
    de.issue_classification = <char>m[26]
    copy_alpha(de.issue_sub_type, m + 27, 2)
    de.authenticity = <char>m[29]
    de.short_sale_threshold = <char>m[30]
    de.ipo_flag = <char>m[31]
    de.luld_ref_price_tier = <char>m[32]
    de.etp_flag = <char>m[33]
    de.etp_leverage_factor = <uint32_t>be32(m + 34)
    de.inverse_indicator = <char>m[38]


cdef inline int64_t output_room(const Outputs* out) noexcept nogil:
    """Records that certainly fit: a record adds at most one row to each output, and the
    trades keep one row spare (``Parser.parse`` sizes them ``// 21 + 2``)."""
    cdef int64_t room = out.cap_msgs - out.n_msgs
    room = min(room, out.cap_trades - 1 - out.n_trades)
    room = min(room, out.cap_directory - out.n_directory)
    room = min(room, out.cap_actions - out.n_actions)
    room = min(room, out.cap_system - out.n_system)
    return room if room > 0 else 0


cdef int parse_records(ParserState* st, const uint8_t* buf, int64_t n, int64_t base,
                       Outputs* out, int64_t* consumed) noexcept nogil:
    """Decode the complete records of ``buf[:n]`` (``base``: file offset of ``buf[0]``).

    Stops before a record that is not complete in ``buf`` (``consumed`` tells where), after
    a zero-length end-of-session record, or at the first malformed record.
    """
    cdef int64_t pos = 0, ts, bad = 0
    cdef int64_t room = 0   # records that fit in every output before they are counted again
    cdef int32_t length, b
    cdef uint16_t locate
    cdef uint8_t kind
    cdef const uint8_t* m
    cdef uint64_t add
    cdef Message* msg
    cdef Trade* tr
    cdef DirectoryEntry* de
    cdef TradingAction* ta
    cdef int status = PARSED
    while pos + 2 <= n:
        length = <int32_t>be16(buf + pos)
        if length == 0:
            pos += 2
            status = END_OF_SESSION
            break
        if pos + 2 + length > n:
            break
        m = buf + pos + 2
        kind = m[0]
        if length != LENGTH[kind]:  # never 0 here: so also every unknown type
            if LENGTH[kind] != 0:
                status = fail(st, BAD_LENGTH, base + pos, m, length, length)
                break
            if not st.skip_unknown:
                status = fail(st, UNKNOWN_TYPE, base + pos, m, length, kind)
                break
            st.counters[<int>UNKNOWN_SKIPPED] += 1
            st.type_counts[kind] += 1
            pos += 2 + length
            continue
        if room == 0:
            room = output_room(out)
            if room == 0:
                if out.pause_when_full:
                    out.paused = True
                    break
                status = fail(st, OUTPUT_FULL, base + pos, m, length, 0)
                break
        room -= 1
        st.type_counts[kind] += 1
        locate = <uint16_t>be16(m + 1)
        ts = <int64_t>be48(m + 5)
        if is_order(kind):
            # only adds name the stock; a known book whose symbol is learnt already
            # skips the call
            add = ORDER_FLAGS[kind] & ADD
            b = st.book_of_locate[locate]
            # one branch, taken only for a new locate or a symbol to learn: a branch on
            # the record type would mispredict on a mixed stream
            if (b < 0) | (add & (st.book_symbol[8 * (b if b >= 0 else 0)] == 0)):
                b = resolve(st, locate, m + 24 if add else NULL)
            if not skipped(st, b) and not decode_order_fast(st, m, kind, b, ts, locate, out):
                # a record the fast path declines: decode_order says why
                tr = out.trades + out.n_trades  # filled by a C
                status = decode_order(st, m, b, out, &bad)
                if status != PARSED:
                    status = fail(st, status, base + pos, m, length, bad)
                    break
                if kind == b'C':
                    tr.timestamp = ts
                    tr.message_index = out.n_msgs
                    tr.book = b
                    tr.locate = locate
                msg = out.msgs + out.n_msgs
                out.n_msgs += 1
                msg.timestamp = ts
                msg.stop_price = 0
                msg.book = b
                msg.owner = -1
                msg.tif = GTC
        elif kind == b'P' or kind == b'Q' or kind == b'B':
            b = resolve(st, locate, m + 24 if kind == b'P' else
                        (m + 19 if kind == b'Q' else NULL))
            if b == SKIP_BOOK:
                st.counters[<int>NOT_SELECTED] += 1
            else:
                tr = out.trades + out.n_trades
                memset(tr, 0, sizeof(Trade))
                status = decode_trade(tr, m, &bad)
                if status != PARSED:
                    status = fail(st, status, base + pos, m, length, bad)
                    break
                out.n_trades += 1
                tr.timestamp = ts
                tr.message_index = out.n_msgs
                tr.book = b if b >= 0 else -1
                tr.locate = locate
        elif kind == b'R':
            b = resolve(st, locate, m + 11)
            de = out.directory + out.n_directory
            out.n_directory += 1
            decode_directory(de, m)
            de.timestamp = ts
            de.locate = locate
            de.book = b if b >= 0 else -1
        elif kind == b'H':
            b = resolve(st, locate, m + 11)
            if b >= 0:
                st.book_state[b] = <char>m[19]
            ta = out.actions + out.n_actions
            out.n_actions += 1
            ta.timestamp = ts
            ta.locate = locate
            ta.book = b if b >= 0 else -1
            copy_alpha(ta.symbol, m + 11, 8)
            ta.state = <char>m[19]
            copy_alpha(ta.reason, m + 21, 4)
        elif kind == b'S':
            out.system[out.n_system].timestamp = ts
            out.system[out.n_system].code = <char>m[11]
            out.n_system += 1
        pos += 2 + length
    consumed[0] = pos
    return status


cdef object _records(object array, object dtype, str name, bint writeable=True):
    if not isinstance(array, np.ndarray) or array.dtype != dtype:
        raise TypeError(f"{name} must be a numpy array of dtype {dtype}")
    if array.ndim != 1 or not array.flags.c_contiguous:
        raise ValueError(f"{name} must be a one-dimensional, C-contiguous array")
    if writeable and not array.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return array


cdef class Parser:
    """Decoding state that carries across the chunks of one ITCH file.

    Parameters
    ----------
    symbols : list of bytes, optional
        Symbols to keep (``book = position in the list``); ``None`` keeps every stock,
        numbering books in order of first appearance of their stock locate.
    tick_size : int
        Price(4) units ($0.0001) per tick.
    skip_unknown : bool
        Count and skip records of an unknown type instead of stopping at them.
    """

    cdef ParserState st
    cdef readonly object book_of_locate     # [65536] book per stock locate (-1: not seen,
                                            # -2: not selected)
    # per book, [65536]: entries at and past n_books are not initialised
    cdef readonly object locate_of_book
    cdef readonly object book_symbol_array
    cdef readonly object book_state_array
    cdef readonly object type_counts
    cdef readonly object counters
    cdef object _selected

    def __init__(self, symbols=None, *, int64_t tick_size=100, bint skip_unknown=False):
        if tick_size < 1:
            raise ValueError(f"tick_size must be >= 1, got {tick_size}")
        self.book_of_locate = np.full(N_LOCATES, NO_BOOK, dtype=np.int32)
        self.locate_of_book = np.empty(N_LOCATES, dtype=np.int32)
        self.book_symbol_array = np.empty(N_LOCATES, dtype="S8")
        self.book_state_array = np.empty(N_LOCATES, dtype="S1")
        self.type_counts = np.zeros(256, dtype=np.int64)
        self.counters = np.zeros(N_COUNTERS, dtype=np.int64)
        memset(&self.st, 0, sizeof(ParserState))
        if symbols is None:
            self._selected = np.zeros(0, dtype="S8")
            self.st.all_symbols = True
        else:
            self._selected = np.array([bytes(s) for s in symbols], dtype="S8")
            if len(set(self._selected.tolist())) != len(self._selected):
                raise ValueError(f"symbols are not distinct: {list(symbols)}")
            self.st.n_selected = len(self._selected)
            self.st.n_books = self.st.n_selected
        # per book: only the first n_books entries mean anything; zeroing all 65,536 (832
        # KiB of fresh pages) took two thirds of a Parser's construction
        self.locate_of_book[:self.st.n_books] = 0
        self.book_symbol_array[:self.st.n_books] = b""
        self.book_state_array[:self.st.n_books] = b""
        self.st.book_of_locate = <int32_t*>cnp.PyArray_DATA(self.book_of_locate)
        self.st.locate_of_book = <int32_t*>cnp.PyArray_DATA(self.locate_of_book)
        self.st.book_symbol = <char*>cnp.PyArray_DATA(self.book_symbol_array)
        self.st.book_state = <char*>cnp.PyArray_DATA(self.book_state_array)
        self.st.selected = <const char*>cnp.PyArray_DATA(self._selected)
        self.st.type_counts = <int64_t*>cnp.PyArray_DATA(self.type_counts)
        self.st.counters = <int64_t*>cnp.PyArray_DATA(self.counters)
        self.st.tick_size = tick_size
        self.st.tick_magic = tick_magic(tick_size)
        self.st.skip_unknown = skip_unknown

    @property
    def n_books(self):
        """Books so far: the selection's size, or the stocks seen (``symbols=None``)."""
        return self.st.n_books

    def error(self):
        """``(offset, type byte or -1, length prefix, value)`` of the last failed record."""
        return self.st.err_offset, self.st.err_type, self.st.err_length, self.st.err_value

    def parse(self, const uint8_t[::1] data, int64_t base, messages, trades, directory,
              actions, system):
        """Decode the complete records of ``data`` into the output arrays (from index 0).

        ``base`` is the file offset of ``data[0]`` (for error reports). Returns
        ``(status, consumed, n_messages, n_trades, n_directory, n_actions, n_system)``;
        ``consumed < len(data)`` with status ``PARSED`` means the rest is an incomplete
        record. Output arrays must hold ``len(data) // 21 + 2`` (messages, trades),
        ``// 41 + 1`` (directory), ``// 27 + 1`` (actions) and ``// 14 + 1`` (system) records.
        """
        cdef Outputs out
        cdef int64_t consumed = 0, n = data.shape[0]
        cdef int status
        memset(&out, 0, sizeof(Outputs))
        out.msgs = <Message*>cnp.PyArray_DATA(_records(messages, MESSAGE_DTYPE, "messages"))
        out.trades = <Trade*>cnp.PyArray_DATA(_records(trades, TRADE_DTYPE, "trades"))
        out.directory = <DirectoryEntry*>cnp.PyArray_DATA(
            _records(directory, DIRECTORY_DTYPE, "directory"))
        out.actions = <TradingAction*>cnp.PyArray_DATA(
            _records(actions, TRADING_ACTION_DTYPE, "actions"))
        out.system = <SystemEvent*>cnp.PyArray_DATA(
            _records(system, SYSTEM_EVENT_DTYPE, "system"))
        out.cap_msgs, out.cap_trades = messages.shape[0], trades.shape[0]
        out.cap_directory, out.cap_actions = directory.shape[0], actions.shape[0]
        out.cap_system = system.shape[0]
        if n == 0:
            return PARSED, 0, 0, 0, 0, 0, 0
        with nogil:
            status = parse_records(&self.st, &data[0], n, base, &out, &consumed)
        return (status, consumed, out.n_msgs, out.n_trades, out.n_directory, out.n_actions,
                out.n_system)


# ---------------------------------------------------------------------------------------
# Parsing straight into books
# ---------------------------------------------------------------------------------------

cpdef enum FeedStatus:
    FED = 0               # every complete record parsed and its messages processed
    FED_TO_END = 1        # the same, up to an end-of-session record (consumed)
    FEED_BAD_RECORD = 2   # stopped at a malformed record (``parse_status`` says why, the
                          # parser's ``error()`` where); the messages before it are processed
    FEED_NEED_EVENTS = 3  # the events buffer cannot hold the next message's worst case:
                          # ``set_events`` a larger one and feed the rest again
    FEED_MISSING_BOOK = 4 # a message names a book the Books does not have
                          # (``missing_book``); the messages before it are processed
    FEED_STOPPED = 5      # (parse thread) the caller stopped the pipeline


cdef struct Slot:           # one batch of the pipeline's ring
    int64_t n_msgs          # messages parsed into the slot's part of the ring
    int64_t n_trades        # trade rows decoded with them (counted, not kept)
    int32_t n_books         # the parser's books after them
    int32_t status          # FED, FED_TO_END or FEED_BAD_RECORD (after the messages)
    int32_t parse_status    # ParseStatus of FEED_BAD_RECORD

cdef struct Pipeline:       # threads=2: a parse thread fills slots, the caller's thread
                            # processes them; a single producer and a single consumer
    Slot* slots             # [n_slots]
    Message* msgs           # [n_slots, batch]
    int64_t n_slots
    int64_t batch
    int64_t produced        # slots published; written by the parse thread (release)
    int64_t released        # slots processed; written by the caller's thread (release)
    int64_t stop            # 1: the parse thread must stop (set by the caller's thread)
    int64_t finished        # 1: the parse thread publishes no more slots


cdef extern from *:
    """
    #include <stdint.h>
    #include <sched.h>
    #include <unistd.h>
    static inline int64_t rltrader_load_acquire(const int64_t* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void rltrader_store_release(int64_t* p, int64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline void rltrader_backoff(int* spins) {
        /* a few spins, then yield, then sleep: the waiting thread must not take a core
           from the other one (or from other work) on a machine with two */
        *spins += 1;
        if (*spins <= 64) {
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #endif
        } else if (*spins <= 96) {
            sched_yield();
        } else {
            usleep(20);
        }
    }
    """
    int64_t load_acquire "rltrader_load_acquire"(const int64_t* p) noexcept nogil
    void store_release "rltrader_store_release"(int64_t* p, int64_t v) noexcept nogil
    void backoff "rltrader_backoff"(int* spins) noexcept nogil


cdef int produce_records(Pipeline* p, ParserState* st, Outputs* out, const uint8_t* data,
                         int64_t n, int64_t base, int64_t* consumed) noexcept nogil:
    """The parse thread's loop: parse ``data[:n]`` into free slots, publishing each;
    returns FED (the rest is an incomplete record), FED_TO_END, FEED_BAD_RECORD or
    FEED_STOPPED."""
    cdef int64_t pos = 0, got, k
    cdef int status, spins
    cdef Slot* slot
    while True:
        spins = 0
        while p.produced - load_acquire(&p.released) >= p.n_slots:
            if load_acquire(&p.stop):
                consumed[0] = pos
                return FEED_STOPPED
            backoff(&spins)
        if load_acquire(&p.stop):
            consumed[0] = pos
            return FEED_STOPPED
        k = p.produced % p.n_slots
        out.msgs = p.msgs + k * p.batch
        out.n_msgs = out.n_trades = out.n_directory = out.n_actions = out.n_system = 0
        out.paused = False
        got = 0
        status = parse_records(st, data + pos, n - pos, base + pos, out, &got)
        pos += got
        slot = p.slots + k
        slot.n_msgs, slot.n_trades, slot.n_books = out.n_msgs, out.n_trades, st.n_books
        slot.parse_status = status
        slot.status = (FED if status == PARSED else
                       FED_TO_END if status == END_OF_SESSION else FEED_BAD_RECORD)
        if got > 0 or slot.status != FED:
            store_release(&p.produced, p.produced + 1)
        if status != PARSED or not out.paused:
            consumed[0] = pos
            return slot.status


cdef class Rebuilder:
    """Parse ITCH records straight into a ``Books``: the loop of ``rebuild_books``.

    Each call of :meth:`feed` parses a few thousand messages at a time into a small buffer
    and hands them to the core while they are still in the cache (a whole chunk's messages
    would be ~2 MiB of records written, evicted and read back), counting rejections from
    the events as they are written. The books end as ``Books.process`` over the parsed
    messages would leave them: the same messages, in the same order.

    Parameters
    ----------
    parser : Parser
        The reader's parser (its book numbering and counts carry on across calls).
    books : Books
        Processes every message; ``book`` must be below its ``n_books``.
    events : ndarray of EVENT_DTYPE
        Reused for every call of the core; replace it with :meth:`set_events` when
        :meth:`feed` returns ``FEED_NEED_EVENTS``.
    batch : int
        Messages parsed per call of the core.
    slots : int
        0: :meth:`feed` parses and processes in the caller's thread. More: a pipeline of
        that many batches; a parse thread calls :meth:`produce` and the caller's thread
        :meth:`consume` (``rebuild_books(threads=2)``).
    """

    cdef Parser parser
    cdef Books books
    cdef Outputs out
    cdef Pipeline pipe
    cdef object _events, _buffers, _ring
    cdef Event* ev
    cdef int64_t ev_cap
    cdef int64_t pending        # messages in out.msgs waiting for the core
    cdef int64_t processed      # of them, processed
    cdef int held               # FeedStatus to return once the pending ones are processed
    cdef int64_t* reason_counts
    cdef readonly int64_t messages      # book messages parsed and processed
    cdef readonly int64_t trades        # trade rows decoded (P, Q, B, C)
    cdef readonly object reasons        # int64[256]: the core's rejections per Reason
    cdef readonly int parse_status      # ParseStatus of FEED_BAD_RECORD
    cdef readonly int32_t missing_book  # the book of FEED_MISSING_BOOK

    def __init__(self, Parser parser not None, Books books not None, events,
                 Py_ssize_t batch=2048, Py_ssize_t slots=0):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if slots < 0 or slots == 1:
            raise ValueError(f"slots must be 0 or at least 2, got {slots}")
        self.parser = parser
        self.books = books
        self.set_events(events)
        self._buffers = (np.empty(batch, MESSAGE_DTYPE), np.empty(batch + 2, TRADE_DTYPE),
                         np.empty(64, DIRECTORY_DTYPE), np.empty(64, TRADING_ACTION_DTYPE),
                         np.empty(64, SYSTEM_EVENT_DTYPE))
        memset(&self.out, 0, sizeof(Outputs))
        self.out.msgs = <Message*>cnp.PyArray_DATA(self._buffers[0])
        self.out.trades = <Trade*>cnp.PyArray_DATA(self._buffers[1])
        self.out.directory = <DirectoryEntry*>cnp.PyArray_DATA(self._buffers[2])
        self.out.actions = <TradingAction*>cnp.PyArray_DATA(self._buffers[3])
        self.out.system = <SystemEvent*>cnp.PyArray_DATA(self._buffers[4])
        self.out.cap_msgs, self.out.cap_trades = batch, batch + 2
        self.out.cap_directory = self.out.cap_actions = self.out.cap_system = 64
        self.out.pause_when_full = True
        self.reasons = np.zeros(256, dtype=np.int64)
        self.reason_counts = <int64_t*>cnp.PyArray_DATA(self.reasons)
        self.held = FED
        self.missing_book = -1
        memset(&self.pipe, 0, sizeof(Pipeline))
        if slots:
            self._ring = (np.empty(slots * batch, MESSAGE_DTYPE),
                          np.zeros(slots * sizeof(Slot), np.uint8))
            self.pipe.msgs = <Message*>cnp.PyArray_DATA(self._ring[0])
            self.pipe.slots = <Slot*>cnp.PyArray_DATA(self._ring[1])
            self.pipe.n_slots, self.pipe.batch = slots, batch

    def set_events(self, events):
        """Use ``events`` (``EVENT_DTYPE``, writeable) for the core's calls from now on."""
        _records(events, EVENT_DTYPE, "events")
        if events.shape[0] < 1:
            raise ValueError("events must hold at least one record")
        self._events = events
        self.ev = <Event*>cnp.PyArray_DATA(events)
        self.ev_cap = events.shape[0]

    cdef int _process_pending(self, bint* stuck) except -1:
        return self._process(self.out.msgs, self.pending, stuck)

    cdef int _process(self, const Message* msgs, int64_t n, bint* stuck) except -1:
        """Hand ``msgs[processed:n]`` to the core, counting its rejections; ``stuck`` when
        it could not take the next one (the events buffer is too small for it)."""
        cdef int64_t done, written, i
        stuck[0] = False
        while self.processed < n:
            self.books._run(msgs + self.processed, n - self.processed,
                            0, self.ev, self.ev_cap, &done, &written)
            for i in range(written):
                if self.ev[i].kind == REJECTED:
                    self.reason_counts[<uint8_t>self.ev[i].reason] += 1
            self.processed += done
            if done == 0:
                stuck[0] = True
                return 0
        return 0

    def feed(self, const uint8_t[::1] data, int64_t base):
        """Parse the complete records of ``data`` (``base``: its file offset) and process
        their messages. Returns ``(status, consumed)``, a ``FeedStatus`` and the bytes
        parsed (``FED`` with ``consumed < len(data)``: the rest is an incomplete record).
        Messages parsed before a ``FEED_NEED_EVENTS`` are kept and processed first by the
        next call."""
        cdef int64_t n = data.shape[0], consumed = 0, got, i
        cdef int status
        cdef int32_t n_books = self.books.core.n_books
        cdef bint stuck
        cdef ParserState* st
        cdef Outputs* out
        cdef const uint8_t* start
        if self.pipe.n_slots:
            raise RuntimeError("a Rebuilder with slots is fed by produce and consume")
        while True:
            self._process_pending(&stuck)
            if stuck:
                return FEED_NEED_EVENTS, consumed
            if self.held != FED:
                status, self.held = self.held, FED
                return status, consumed
            if consumed >= n:
                return FED, consumed
            self.out.n_msgs = self.out.n_trades = 0
            self.out.n_directory = self.out.n_actions = self.out.n_system = 0
            self.out.paused = False
            got = 0
            st, out, start = &self.parser.st, &self.out, &data[consumed]
            with nogil:
                status = parse_records(st, start, n - consumed, base + consumed, out, &got)
            consumed += got
            self.pending, self.processed = self.out.n_msgs, 0
            self.trades += self.out.n_trades
            if self.parser.st.n_books > n_books:
                # the parser has met more stocks than the Books holds: stop before the
                # first message on one of them (cheap: only then is the batch scanned)
                for i in range(self.pending):
                    if self.out.msgs[i].book >= n_books:
                        self.missing_book = self.out.msgs[i].book
                        self.pending = i
                        self.held = FEED_MISSING_BOOK
                        break
            self.messages += self.pending
            if status == END_OF_SESSION:
                if self.held == FED:
                    self.held = FED_TO_END
            elif status != PARSED:
                self.parse_status = status
                if self.held == FED:
                    self.held = FEED_BAD_RECORD
            elif not self.out.paused and self.held == FED:
                # the rest of data is an incomplete record
                self._process_pending(&stuck)
                if stuck:
                    return FEED_NEED_EVENTS, consumed
                return FED, consumed


    def produce(self, const uint8_t[::1] data, int64_t base):
        """(Parse thread.) Parse the complete records of ``data`` into the pipeline's
        slots, waiting for free ones. Returns ``(status, consumed)``: ``FED`` (the rest is
        an incomplete record), ``FED_TO_END``, ``FEED_BAD_RECORD`` (published with the
        messages before it) or ``FEED_STOPPED``."""
        cdef int64_t n = data.shape[0], consumed = 0
        cdef int status
        cdef Pipeline* p = &self.pipe
        cdef ParserState* st = &self.parser.st
        cdef Outputs* out = &self.out
        if not p.n_slots:
            raise RuntimeError("produce needs a Rebuilder with slots")
        if n == 0:
            return FED, 0
        with nogil:
            status = produce_records(p, st, out, &data[0], n, base, &consumed)
        return status, consumed

    def finish(self):
        """(Parse thread.) No more slots will be published."""
        store_release(&self.pipe.finished, 1)

    def stop(self):
        """(Caller's thread.) Make the parse thread's :meth:`produce` return
        ``FEED_STOPPED``."""
        store_release(&self.pipe.stop, 1)

    def consume(self):
        """(Caller's thread.) Process the slots in order as they are published. Returns
        a ``FeedStatus``: ``FED`` once the parse thread has finished and every slot is
        processed; ``FEED_NEED_EVENTS`` (``set_events``, then call again),
        ``FEED_MISSING_BOOK`` or ``FEED_BAD_RECORD`` after the messages before it."""
        cdef Pipeline* p = &self.pipe
        cdef int64_t k, i, limit
        cdef int32_t n_books = self.books.core.n_books
        cdef const Message* msgs
        cdef Slot* slot
        cdef int spins
        cdef bint ready, stuck
        if not p.n_slots:
            raise RuntimeError("consume needs a Rebuilder with slots")
        while True:
            with nogil:
                spins = 0
                while True:
                    if load_acquire(&p.produced) > p.released:
                        ready = True
                        break
                    if load_acquire(&p.finished):
                        ready = load_acquire(&p.produced) > p.released
                        break
                    backoff(&spins)
            if not ready:
                return FED
            k = p.released % p.n_slots
            slot = p.slots + k
            msgs = p.msgs + k * p.batch
            limit = slot.n_msgs
            if slot.n_books > n_books:
                for i in range(limit):
                    if msgs[i].book >= n_books:
                        limit = i
                        break
            self._process(msgs, limit, &stuck)
            if stuck:
                return FEED_NEED_EVENTS
            self.processed = 0
            self.messages += limit
            self.trades += slot.n_trades
            if limit < slot.n_msgs:
                self.missing_book = msgs[limit].book
                return FEED_MISSING_BOOK
            if slot.status == FEED_BAD_RECORD:
                self.parse_status = slot.parse_status
                return FEED_BAD_RECORD
            store_release(&p.released, p.released + 1)
            PyErr_CheckSignals()    # a Ctrl-C ends a long file here (the parse thread
                                    # stops when the caller stops the pipeline)


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

cdef inline uint8_t* header(uint8_t* p, int32_t length, char kind, uint16_t locate,
                            int64_t ts) noexcept nogil:
    """Write the length prefix and the 11-byte common header; return the message start."""
    put16(p, length)
    p[2] = <uint8_t>kind
    put16(p + 3, locate)
    put16(p + 5, 0)
    put48(p + 7, <uint64_t>ts)
    return p + 2


cdef inline void put_symbol(uint8_t* p, const char* symbols, int32_t book) noexcept nogil:
    """Write book ``book``'s symbol as an 8-byte Alpha (all spaces when ``book < 0``)."""
    cdef int j
    memset(p, 32, 8)
    if book >= 0:
        for j in range(8):
            if symbols[8 * book + j] != 0:
                p[j] = <uint8_t>symbols[8 * book + j]


cdef inline bint bad_price(int64_t price, int64_t tick_size) noexcept nogil:
    return price < 0 or price > MAX_U32 // tick_size


cdef int64_t encode_trade(uint8_t* p, const Trade* tr, uint16_t locate, const char* symbols
                          ) noexcept nogil:
    """A P/Q/B row as a record at ``p``: the bytes written, or ``-BAD_TRADE``."""
    cdef uint8_t* m
    if tr.kind == b'P':
        if tr.shares > MAX_U32 or (tr.side != 1 and tr.side != -1):
            return -BAD_TRADE
        m = header(p, 44, b'P', locate, tr.timestamp)
        put64(m + 11, <uint64_t>tr.order_ref)
        m[19] = b'B' if tr.side == 1 else b'S'
        put32(m + 20, <uint64_t>tr.shares)
        put_symbol(m + 24, symbols, tr.book)
        put32(m + 32, <uint64_t>tr.price_e4)
        put64(m + 36, <uint64_t>tr.match_number)
        return 46
    if tr.kind == b'Q':
        m = header(p, 40, b'Q', locate, tr.timestamp)
        put64(m + 11, <uint64_t>tr.shares)
        put_symbol(m + 19, symbols, tr.book)
        put32(m + 27, <uint64_t>tr.price_e4)
        put64(m + 31, <uint64_t>tr.match_number)
        m[39] = <uint8_t>tr.cross_type
        return 42
    if tr.kind == b'B':
        m = header(p, 19, b'B', locate, tr.timestamp)
        put64(m + 11, <uint64_t>tr.match_number)
        return 21
    return -BAD_TRADE


cdef int64_t encode_message(uint8_t* p, const Message* msg, const Trade* exec_price,
                            uint16_t locate, const char* symbols, int64_t tick_size,
                            int64_t* match_number) noexcept nogil:
    """A message as a record at ``p`` (an ``EXECUTE`` with ``exec_price`` as ``C``): the
    bytes written, or ``-status``. The caller checked book, timestamp, id and qty."""
    cdef uint8_t* m
    if msg.op == LIMIT or msg.op == REPLACE:
        if msg.tif != GTC:
            return -BAD_TIF
        if bad_price(msg.price, tick_size):
            return -BAD_PRICE
    if msg.op == LIMIT:
        if msg.side != 1 and msg.side != -1:
            return -BAD_MESSAGE_SIDE
        m = header(p, 36, b'A', locate, msg.timestamp)
        put64(m + 11, <uint64_t>msg.order_id)
        m[19] = b'B' if msg.side == 1 else b'S'
        put32(m + 20, <uint64_t>msg.qty)
        put_symbol(m + 24, symbols, msg.book)
        put32(m + 32, <uint64_t>(msg.price * tick_size))
        return 38
    if msg.op == EXECUTE:
        if exec_price != NULL:
            m = header(p, 36, b'C', locate, msg.timestamp)
            put64(m + 23, <uint64_t>exec_price.match_number)
            m[31] = <uint8_t>exec_price.printable
            put32(m + 32, <uint64_t>exec_price.price_e4)
        else:
            m = header(p, 31, b'E', locate, msg.timestamp)
            match_number[0] += 1
            put64(m + 23, <uint64_t>match_number[0])
        put64(m + 11, <uint64_t>msg.order_id)
        put32(m + 19, <uint64_t>msg.qty)
        return 38 if exec_price != NULL else 33
    if msg.op == REDUCE:
        m = header(p, 23, b'X', locate, msg.timestamp)
        put64(m + 11, <uint64_t>msg.order_id)
        put32(m + 19, <uint64_t>msg.qty)
        return 25
    if msg.op == CANCEL:
        m = header(p, 19, b'D', locate, msg.timestamp)
        put64(m + 11, <uint64_t>msg.order_id)
        return 21
    if msg.op == REPLACE:
        if msg.new_order_id <= 0 or msg.new_order_id == msg.order_id:
            return -BAD_ID
        m = header(p, 35, b'U', locate, msg.timestamp)
        put64(m + 11, <uint64_t>msg.order_id)
        put64(m + 19, <uint64_t>msg.new_order_id)
        put32(m + 27, <uint64_t>msg.qty)
        put32(m + 31, <uint64_t>(msg.price * tick_size))
        return 37
    return -BAD_OP


cdef inline bint bad_timestamp(int64_t ts) noexcept nogil:
    return ts < 0 or ts >= (<int64_t>1 << 48)


cdef int write_records(const Message* msgs, int64_t n, const Trade* trades, int64_t n_trades,
                       int64_t index_offset, const uint16_t* locate_of_book,
                       const char* symbols, int32_t n_books, int64_t tick_size,
                       int64_t* match_number, uint8_t* out, int64_t cap,
                       int64_t* written, int64_t* bad_index) noexcept nogil:
    """Encode ``msgs`` with the ``trades`` whose ``message_index - index_offset`` lies in
    ``[0, n]`` placed before the message they name (after all of them when it is ``n``).
    Every record takes at most 46 bytes."""
    cdef int64_t i, t = 0, pos = 0, k
    cdef const Message* msg
    cdef const Trade* tr
    cdef const Trade* exec_price
    cdef uint16_t locate
    for i in range(n + 1):
        exec_price = NULL
        while t < n_trades and trades[t].message_index - index_offset <= i:
            tr = trades + t
            bad_index[0] = t
            if pos + 46 > cap:
                return WRITE_FULL
            if (bad_timestamp(tr.timestamp) or tr.book < -1 or tr.book >= n_books
                    or tr.shares < 0 or tr.price_e4 < 0 or tr.price_e4 > MAX_U32
                    or tr.match_number < 0 or tr.order_ref < 0
                    or tr.message_index - index_offset < i
                    or exec_price != NULL):  # a C row is the last trade before its EXECUTE
                return BAD_TRADE
            if tr.kind == b'C':
                if (i == n or msgs[i].op != EXECUTE or msgs[i].order_id != tr.order_ref
                        or msgs[i].qty != tr.shares):
                    return BAD_TRADE
                exec_price = tr
            else:
                locate = <uint16_t>tr.locate if tr.book < 0 else locate_of_book[tr.book]
                k = encode_trade(out + pos, tr, locate, symbols)
                if k < 0:
                    return <int>-k
                pos += k
            t += 1
        if i == n:
            break
        msg = msgs + i
        bad_index[0] = i
        if pos + 46 > cap:
            return WRITE_FULL
        if msg.book < 0 or msg.book >= n_books:
            return BAD_BOOK
        if bad_timestamp(msg.timestamp):
            return BAD_TIMESTAMP
        if msg.order_id <= 0:
            return BAD_ID
        if msg.qty < 0 or msg.qty > MAX_U32:
            return BAD_QTY
        k = encode_message(out + pos, msg, exec_price, locate_of_book[msg.book], symbols,
                           tick_size, match_number)
        if k < 0:
            return <int>-k
        pos += k
    written[0] = pos
    bad_index[0] = -1
    return WRITTEN


def encode(messages, trades, int64_t index_offset, locate_of_book, symbols,
           int64_t tick_size, int64_t match_number):
    """Encode book messages and trades as BinaryFILE records.

    Parameters
    ----------
    messages : ndarray of MESSAGE_DTYPE
    trades : ndarray of TRADE_DTYPE
        Sorted by ``message_index``; each is written before ``messages[message_index -
        index_offset]`` (after the last message when that index is ``len(messages)``). A
        ``C`` row turns the ``EXECUTE`` it names into a ``C`` record; it must be the last
        row of its index (as the parser emits it).
    index_offset : int
        Index of ``messages[0]`` in the whole log.
    locate_of_book : ndarray of uint16
        Stock locate per book.
    symbols : ndarray of S8
        Symbol per book (NUL-padded).
    tick_size : int
        Price(4) units per tick.
    match_number : int
        Last match number used; ``E`` records take the next ones.

    Returns
    -------
    (status, data, bad_index, match_number)
        ``status`` a ``WriteStatus``; ``data`` the encoded bytes as a uint8 array (empty
        unless ``WRITTEN``);
        ``bad_index`` the offending message (or trade, for ``BAD_TRADE``) index.
    """
    messages = _records(np.ascontiguousarray(messages), MESSAGE_DTYPE, "messages", False)
    trades = _records(np.ascontiguousarray(trades), TRADE_DTYPE, "trades", False)
    locate_of_book = np.ascontiguousarray(locate_of_book, dtype=np.uint16)
    symbols = np.ascontiguousarray(symbols, dtype="S8")
    if locate_of_book.shape[0] != symbols.shape[0]:
        raise ValueError("locate_of_book and symbols must have one entry per book")
    if tick_size < 1:
        raise ValueError(f"tick_size must be >= 1, got {tick_size}")
    cdef int64_t n = messages.shape[0], n_trades = trades.shape[0]
    cdef int64_t cap = 46 * (n + n_trades) + 46, written = 0, bad = -1
    cdef int32_t n_books = <int32_t>symbols.shape[0]
    out = np.empty(cap, dtype=np.uint8)
    cdef const Message* mp = <const Message*>cnp.PyArray_DATA(messages)
    cdef const Trade* tp = <const Trade*>cnp.PyArray_DATA(trades)
    cdef const uint16_t* lp = <const uint16_t*>cnp.PyArray_DATA(locate_of_book)
    cdef const char* sp = <const char*>cnp.PyArray_DATA(symbols)
    cdef uint8_t* op = <uint8_t*>cnp.PyArray_DATA(out)
    cdef int status
    with nogil:
        status = write_records(mp, n, tp, n_trades, index_offset, lp, sp, n_books, tick_size,
                               &match_number, op, cap, &written, &bad)
    return status, out[:written], bad, match_number
