# cython: language_level=3
"""Streaming market analytics: a level-2 book per book, OHLCV bars at several intervals and
microstructure features on a sample clock, from the core's events or from level-2 records.

One pass, one call per batch, no Python objects and no allocation inside the loops: the
state lives in numpy arrays owned by :class:`FeatureKernel`; outputs go to caller-owned
buffers and a call returns early (saying how far it got) when one is full, so the caller
grows it and calls again with the rest. :mod:`rltrader.analytics.engine` wraps it; its
docstring (and docs/analytics.md) defines every feature.

Two inputs, one state:

- ``process_events``: the core's ``EVENT_DTYPE`` records (``Books.process`` output, the
  flow's event log, the exchange's batches). Each event moves the level it names: a limit
  order rests with what is left of it when its message ends (its ``ACCEPTED`` size less its
  own fills and cancels), a fill takes its lots off the maker's level, a cancel or a
  reduction off the order's level. Stop orders are not followed (an ``ACCEPTED`` stop-limit
  looks like a resting limit); a ``TRIGGERED`` event is counted in ``unsupported``.
- ``process_records``: ``MD_DTYPE`` records from level-2 feeds (a level's new size, a size
  change, a trade, a cleared side).

Levels per side are a sorted array with the best level *last* (``key = side_sign *
price`` ascending), so the updates near the touch, nearly all of them, move a few entries.
"""

cimport cython
cimport numpy as cnp
from libc.math cimport NAN, isnan, log, sqrt
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.string cimport memmove, memset

import numpy as np

cnp.import_array()

# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------

cpdef enum MdKind:
    MD_LEVEL = 1        # the level at price now holds qty (0 removes it)
    MD_DELTA = 2        # add qty (may be negative) to the level at price
    MD_TRADE = 3        # a trade at price for qty; side = the aggressor's side
    MD_CLEAR = 4        # empty side ``side`` (both when 0)

cdef enum:
    DEPTH = 10          # levels per side in a sample's depth profile
    EMBED = 4           # components of the book embedding (filled by the Python layer)
    MAX_INTERVALS = 8

cdef enum:              # the core's event kinds (rltrader._book: EventKind)
    EV_ACCEPTED = 1
    EV_FILL = 3
    EV_CANCELLED = 4
    EV_TRIGGERED = 5
    EV_REDUCED = 6

cdef enum:              # status of a call
    OK = 0
    BARS_FULL = 1
    SAMPLES_FULL = 2
    BAD_BOOK = 3
    BAD_KIND = 4
    BAD_SIDE = 5
    BAD_QTY = 6
    BAD_TIME = 7

cdef int64_t EMPTY_ASK_KEY = 0x3FFFFFFFFFFFFFFF   # an empty ask side's price, for OFI


cdef struct MdRecord:
    int64_t timestamp       # ns
    int64_t price           # ticks
    int64_t qty             # lots (MD_DELTA: signed)
    int32_t book
    int8_t kind             # MdKind
    int8_t side             # +1 bid / buy aggressor, -1 ask / sell aggressor (MD_CLEAR: 0 both)

cdef struct EventRecord:   # the core's Event (rltrader._book), field for field
    int64_t timestamp
    int64_t order_id
    int64_t maker_order_id
    int64_t price
    int64_t qty
    int64_t leaves_qty
    int64_t maker_leaves_qty
    int32_t book
    int32_t owner
    int32_t maker_owner
    int32_t message_index
    int8_t kind
    int8_t reason
    int8_t side

cdef struct Bar:           # BAR_DTYPE (rltrader.analytics.engine), field for field
    int64_t interval_ns
    int64_t t_open          # ns, a multiple of interval_ns
    int64_t open            # ticks
    int64_t high
    int64_t low
    int64_t close
    int64_t volume          # lots
    int64_t n_trades
    int64_t buy_volume      # lots bought by aggressors
    double quote_volume     # sum price * qty, ticks x lots
    double vwap             # ticks; NaN when volume is 0
    double session_vwap     # ticks, since the kernel started
    double sma
    double ema
    double rsi
    double macd
    double macd_signal
    double macd_hist
    double bb_upper
    double bb_middle
    double bb_lower
    double atr
    int32_t book
    int8_t closed

cdef struct Sample:        # SAMPLE_DTYPE (rltrader.analytics.engine), field for field
    int64_t t               # bucket end, ns
    int64_t bid             # ticks
    int64_t ask
    int64_t bid_qty         # lots
    int64_t ask_qty
    int64_t n_trades
    int64_t buy_volume
    int64_t sell_volume
    int64_t n_updates
    int64_t depth_bid[DEPTH]
    int64_t depth_ask[DEPTH]
    double mid              # ticks
    double spread
    double microprice
    double imbalance_1
    double imbalance_5
    double imbalance_10
    double ofi               # lots
    double trade_sign_imbalance
    double returns
    double realized_vol
    double kyle_lambda      # ticks per lot
    double embedding[EMBED]
    int32_t book
    int8_t has_mid


cdef struct BookState:
    # the touch when the last message (or record) ended: OFI's previous state
    int64_t bid, bid_qty, ask, ask_qty
    # the bucket in progress
    double ofi
    int64_t n_trades, buy_volume, sell_volume, n_updates
    # the last sample's mid (NaN: none), and the windows behind returns, vol and lambda
    double last_mid
    int32_t ring_pos, ring_n
    # the last trade
    int64_t trade_t, trade_price, trade_qty
    int8_t trade_sign
    # session totals
    double notional
    int64_t volume

cdef struct BarState:
    int64_t t_open, open, high, low, close, volume, n_trades, buy_volume
    double quote_volume
    int64_t last_close      # 0: no trade yet on this book
    int8_t active           # a trade in this bar


cdef inline int64_t side_key(int side, int64_t price) noexcept nogil:
    return price if side > 0 else -price


@cython.final
cdef class FeatureKernel:
    """The kernel's state for ``n_books`` books (see the module docstring).

    Parameters
    ----------
    n_books : int
    intervals_ns : sequence of int
        Bar intervals, ns (at most 8).
    sample_ns : int
        The sample clock's step, ns.
    window : int
        Samples behind ``realized_vol`` and ``kyle_lambda``.
    capacity : int
        Levels kept per side and book; past it the worst level is dropped (counted in
        ``dropped_levels``; features read the top 10).
    """

    cdef public object level_price, level_qty, level_n, books_array, bars_array, ring_array
    cdef public object intervals, counters_array
    cdef int64_t* lp
    cdef int64_t* lq
    cdef int32_t* ln
    cdef BookState* bs
    cdef BarState* br
    cdef double* ring           # (n_books, window, 3): return, dmid, signed volume
    cdef int64_t* counters      # dropped_levels, inconsistent, unsupported, clock_jumps
    cdef int64_t iv[MAX_INTERVALS]
    cdef public int32_t n_books, n_intervals, window, capacity
    cdef public int64_t sample_ns, next_sample, max_gap
    cdef public bint started
    # the order of the message in progress (process_events): rests when its message ends
    cdef int64_t pend_id, pend_price, pend_qty
    cdef int32_t pend_book, pend_mi, msg_book, msg_mi
    cdef int8_t pend_side
    cdef bint in_message

    def __init__(self, int32_t n_books, intervals_ns, int64_t sample_ns, int32_t window=60,
                 int32_t capacity=8192, int64_t max_gap=1_000_000):
        intervals = [int(v) for v in intervals_ns]
        if n_books < 1:
            raise ValueError(f"n_books must be >= 1, got {n_books}")
        if not 0 < len(intervals) <= MAX_INTERVALS or min(intervals) <= 0:
            raise ValueError(f"intervals_ns: 1 to {MAX_INTERVALS} positive values, got "
                             f"{intervals}")
        if sample_ns <= 0 or window < 2 or capacity < DEPTH or max_gap < 1:
            raise ValueError("sample_ns > 0, window >= 2, capacity >= 10, max_gap >= 1")
        self.n_books, self.n_intervals = n_books, len(intervals)
        self.window, self.capacity, self.sample_ns, self.max_gap = window, capacity, sample_ns, max_gap
        self.intervals = tuple(intervals)
        for k, v in enumerate(intervals):
            self.iv[k] = v
        self.level_price = np.zeros((n_books, 2, capacity), dtype=np.int64)
        self.level_qty = np.zeros((n_books, 2, capacity), dtype=np.int64)
        self.level_n = np.zeros((n_books, 2), dtype=np.int32)
        self.books_array = np.zeros(n_books * sizeof(BookState), dtype=np.uint8)
        self.bars_array = np.zeros(n_books * MAX_INTERVALS * sizeof(BarState), dtype=np.uint8)
        self.ring_array = np.full((n_books, window, 3), np.nan)
        self.counters_array = np.zeros(4, dtype=np.int64)
        self.lp = <int64_t*>cnp.PyArray_DATA(self.level_price)
        self.lq = <int64_t*>cnp.PyArray_DATA(self.level_qty)
        self.ln = <int32_t*>cnp.PyArray_DATA(self.level_n)
        self.bs = <BookState*>cnp.PyArray_DATA(self.books_array)
        self.br = <BarState*>cnp.PyArray_DATA(self.bars_array)
        self.ring = <double*>cnp.PyArray_DATA(self.ring_array)
        self.counters = <int64_t*>cnp.PyArray_DATA(self.counters_array)
        for b in range(n_books):
            self.bs[b].ask = EMPTY_ASK_KEY
            self.bs[b].last_mid = NAN
        self.in_message = False
        self.pend_qty = 0
        self.started = False

    @staticmethod
    def record_sizes():
        """``(sizeof MdRecord, EventRecord, Bar, Sample)``: the dtypes are checked against
        them at import."""
        return sizeof(MdRecord), sizeof(EventRecord), sizeof(Bar), sizeof(Sample)

    @property
    def counters(self):
        c = self.counters_array
        return {"dropped_levels": int(c[0]), "inconsistent": int(c[1]),
                "unsupported": int(c[2]), "clock_jumps": int(c[3])}

    # ---- levels -----------------------------------------------------------------------

    cdef inline int64_t* prices(self, int32_t b, int s) noexcept nogil:
        return self.lp + (<int64_t>b * 2 + s) * self.capacity

    cdef inline int64_t* qtys(self, int32_t b, int s) noexcept nogil:
        return self.lq + (<int64_t>b * 2 + s) * self.capacity

    cdef int32_t find(self, int32_t b, int s, int side, int64_t key) noexcept nogil:
        """The index where ``key`` is or would go (keys ascend, best last): first scan a
        few from the touch, then bisect."""
        cdef int64_t* p = self.prices(b, s)
        cdef int32_t n = self.ln[b * 2 + s], i = n - 1, lo, hi, mid
        while i >= 0 and i >= n - 8:
            if side_key(side, p[i]) <= key:
                return i if side_key(side, p[i]) == key else i + 1
            i -= 1
        if i < 0:
            return 0
        lo, hi = 0, i + 1       # keys at [hi, n) are > key
        while lo < hi:
            mid = (lo + hi) >> 1
            if side_key(side, p[mid]) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef void change(self, int32_t b, int side, int64_t price, int64_t qty,
                     bint delta) noexcept nogil:
        """Set (or add ``qty`` to) the level at ``price``; a level at 0 goes away."""
        cdef int s = 0 if side > 0 else 1
        cdef int64_t key = side_key(side, price), new
        cdef int64_t* p = self.prices(b, s)
        cdef int64_t* q = self.qtys(b, s)
        cdef int32_t* n = &self.ln[b * 2 + s]
        cdef int32_t i = self.find(b, s, side, key)
        cdef bint present = i < n[0] and p[i] == price
        new = (q[i] if present else 0) + qty if delta else qty
        if new < 0:
            self.counters[1] += 1            # more removed than the level held
            new = 0
        if present:
            if new > 0:
                q[i] = new
            else:
                memmove(p + i, p + i + 1, (n[0] - i - 1) * sizeof(int64_t))
                memmove(q + i, q + i + 1, (n[0] - i - 1) * sizeof(int64_t))
                n[0] -= 1
            return
        if new == 0:
            return
        if n[0] == self.capacity:            # full: the worst level goes
            self.counters[0] += 1
            if i == 0:
                return                       # the new level is the worst
            memmove(p, p + 1, (i - 1) * sizeof(int64_t))
            memmove(q, q + 1, (i - 1) * sizeof(int64_t))
            i -= 1
        else:
            memmove(p + i + 1, p + i, (n[0] - i) * sizeof(int64_t))
            memmove(q + i + 1, q + i, (n[0] - i) * sizeof(int64_t))
            n[0] += 1
        p[i] = price
        q[i] = new

    cdef void clear(self, int32_t b, int side) noexcept nogil:
        if side >= 0:
            self.ln[b * 2] = 0
        if side <= 0:
            self.ln[b * 2 + 1] = 0

    cdef inline void touch(self, int32_t b, int64_t* bid, int64_t* bid_qty, int64_t* ask,
                           int64_t* ask_qty) noexcept nogil:
        cdef int32_t nb = self.ln[b * 2], na = self.ln[b * 2 + 1]
        bid[0] = self.prices(b, 0)[nb - 1] if nb else 0
        bid_qty[0] = self.qtys(b, 0)[nb - 1] if nb else 0
        ask[0] = self.prices(b, 1)[na - 1] if na else EMPTY_ASK_KEY
        ask_qty[0] = self.qtys(b, 1)[na - 1] if na else 0

    cdef void updated(self, int32_t b) noexcept nogil:
        """An update (a message, a record) ended on book ``b``: add its order-flow imbalance
        (Cont, Kukanov & Stoikov 2014, e_n over the touch before and after)."""
        cdef BookState* s = &self.bs[b]
        cdef int64_t bid, bq, ask, aq
        cdef double e = 0
        self.touch(b, &bid, &bq, &ask, &aq)
        if bid >= s.bid:
            e += bq
        if bid <= s.bid:
            e -= s.bid_qty
        if ask <= s.ask:
            e -= aq
        if ask >= s.ask:
            e += s.ask_qty
        s.ofi += e
        s.bid, s.bid_qty, s.ask, s.ask_qty = bid, bq, ask, aq
        s.n_updates += 1

    # ---- trades and bars ----------------------------------------------------------------

    cdef void trade(self, int32_t b, int64_t t, int64_t price, int64_t qty,
                    int sign) noexcept nogil:
        cdef BookState* s = &self.bs[b]
        cdef BarState* r
        cdef int k
        s.n_trades += 1
        if sign > 0:
            s.buy_volume += qty
        else:
            s.sell_volume += qty
        s.trade_t, s.trade_price, s.trade_qty, s.trade_sign = t, price, qty, sign
        s.notional += <double>price * qty
        s.volume += qty
        for k in range(self.n_intervals):
            r = &self.br[b * MAX_INTERVALS + k]
            if not r.active:
                r.active = True
                r.t_open = t - t % self.iv[k]
                r.open = r.high = r.low = price
                r.volume = r.n_trades = r.buy_volume = 0
                r.quote_volume = 0
            r.high = price if price > r.high else r.high
            r.low = price if price < r.low else r.low
            r.close = price
            r.volume += qty
            r.n_trades += 1
            if sign > 0:
                r.buy_volume += qty
            r.quote_volume += <double>price * qty
            r.last_close = price

    cdef void write_bar(self, Bar* out, int32_t b, int k, bint closed) noexcept nogil:
        cdef BarState* r = &self.br[b * MAX_INTERVALS + k]
        cdef BookState* s = &self.bs[b]
        memset(out, 0, sizeof(Bar))
        out.book, out.interval_ns, out.closed = b, self.iv[k], closed
        out.t_open = r.t_open
        if r.active:
            out.open, out.high, out.low, out.close = r.open, r.high, r.low, r.close
            out.volume, out.n_trades, out.buy_volume = r.volume, r.n_trades, r.buy_volume
            out.quote_volume = r.quote_volume
            out.vwap = r.quote_volume / r.volume
        else:                                # no trade: the previous close, volume 0
            out.open = out.high = out.low = out.close = r.last_close
            out.vwap = NAN
        out.session_vwap = s.notional / s.volume if s.volume else NAN
        out.sma = out.ema = out.rsi = out.macd = out.macd_signal = out.macd_hist = NAN
        out.bb_upper = out.bb_middle = out.bb_lower = out.atr = NAN

    cdef int close_bars(self, int64_t t, Bar* out, int64_t cap, int64_t* n) noexcept nogil:
        """Close every bar that ends at or before ``t`` (bars with no trade after a book's
        first trade included)."""
        cdef int32_t b
        cdef int k
        cdef BarState* r
        for b in range(self.n_books):
            for k in range(self.n_intervals):
                r = &self.br[b * MAX_INTERVALS + k]
                if r.last_close == 0:
                    continue                 # no trade yet: no bar
                while r.t_open + self.iv[k] <= t:
                    if n[0] == cap:
                        return BARS_FULL
                    self.write_bar(&out[n[0]], b, k, True)
                    n[0] += 1
                    r.t_open += self.iv[k]
                    r.active = False
                    if r.t_open + self.iv[k] <= t and (t - r.t_open) // self.iv[k] > self.max_gap:
                        r.t_open += ((t - r.t_open) // self.iv[k]) * self.iv[k]
                        self.counters[3] += 1
        return OK

    # ---- the sample clock ----------------------------------------------------------------

    cdef void write_sample(self, Sample* out, int32_t b, int64_t t) noexcept nogil:
        cdef BookState* s = &self.bs[b]
        cdef int64_t* pb = self.prices(b, 0)
        cdef int64_t* qb = self.qtys(b, 0)
        cdef int64_t* pa = self.prices(b, 1)
        cdef int64_t* qa = self.qtys(b, 1)
        cdef int32_t nb = self.ln[b * 2], na = self.ln[b * 2 + 1], i, j, valid, w = self.window
        cdef int64_t sb = 0, sa = 0
        cdef double mid, sx, sy, sxy, sxx, r2, x, y
        cdef double* ring = self.ring + <int64_t>b * w * 3
        memset(out, 0, sizeof(Sample))
        out.book, out.t = b, t
        out.bid = pb[nb - 1] if nb else 0
        out.ask = pa[na - 1] if na else 0
        out.bid_qty = qb[nb - 1] if nb else 0
        out.ask_qty = qa[na - 1] if na else 0
        out.has_mid = nb > 0 and na > 0 and out.ask > out.bid
        for i in range(DEPTH):
            out.depth_bid[i] = qb[nb - 1 - i] if i < nb else 0
            out.depth_ask[i] = qa[na - 1 - i] if i < na else 0
            sb += out.depth_bid[i]
            sa += out.depth_ask[i]
            if i == 0:
                out.imbalance_1 = (sb - sa) / <double>(sb + sa) if sb + sa else NAN
            elif i == 4:
                out.imbalance_5 = (sb - sa) / <double>(sb + sa) if sb + sa else NAN
        out.imbalance_10 = (sb - sa) / <double>(sb + sa) if sb + sa else NAN
        if out.has_mid:
            mid = 0.5 * (out.bid + out.ask)
            out.mid, out.spread = mid, <double>(out.ask - out.bid)
            out.microprice = ((out.bid * <double>out.ask_qty + out.ask * <double>out.bid_qty)
                              / (out.bid_qty + out.ask_qty))
        else:
            mid = NAN
            out.mid = out.spread = out.microprice = NAN
        out.n_trades, out.buy_volume, out.sell_volume = s.n_trades, s.buy_volume, s.sell_volume
        out.n_updates, out.ofi = s.n_updates, s.ofi
        out.trade_sign_imbalance = ((s.buy_volume - s.sell_volume)
                                    / <double>(s.buy_volume + s.sell_volume)
                                    if s.n_trades else NAN)
        out.returns = log(mid / s.last_mid) if not isnan(mid) and not isnan(s.last_mid) else NAN
        # the windows: (return, dmid, signed volume) of the last `window` samples
        i = s.ring_pos
        ring[i * 3] = out.returns
        ring[i * 3 + 1] = mid - s.last_mid       # NaN when either is missing
        ring[i * 3 + 2] = <double>(s.buy_volume - s.sell_volume)
        s.ring_pos = (i + 1) % w
        if s.ring_n < w:
            s.ring_n += 1
        r2 = 0
        valid = 0
        sx = sy = sxy = sxx = 0
        j = 0
        for i in range(s.ring_n):
            if not isnan(ring[i * 3]):
                r2 += ring[i * 3] * ring[i * 3]
                valid += 1
        out.realized_vol = sqrt(r2) if valid else NAN
        for i in range(s.ring_n):
            y = ring[i * 3 + 1]
            if isnan(y):
                continue
            x = ring[i * 3 + 2]
            sx += x
            sy += y
            j += 1
        out.kyle_lambda = NAN
        if j >= 2:
            sx /= j
            sy /= j
            for i in range(s.ring_n):
                y = ring[i * 3 + 1]
                if isnan(y):
                    continue
                x = ring[i * 3 + 2] - sx
                sxy += x * (y - sy)
                sxx += x * x
            if sxx > 0:
                out.kyle_lambda = sxy / sxx
        for i in range(EMBED):
            out.embedding[i] = NAN
        s.last_mid = mid
        s.ofi = 0
        s.n_trades = s.buy_volume = s.sell_volume = s.n_updates = 0

    cdef int close_samples(self, int64_t t, Sample* out, int64_t cap, int64_t* n) noexcept nogil:
        """Emit every sample tick at or before ``t``: one row per book."""
        cdef int32_t b
        while self.next_sample <= t:
            if n[0] + self.n_books > cap:
                return SAMPLES_FULL
            for b in range(self.n_books):
                self.write_sample(&out[n[0]], b, self.next_sample)
                n[0] += 1
            self.next_sample += self.sample_ns
            if self.next_sample <= t and (t - self.next_sample) // self.sample_ns > self.max_gap:
                self.next_sample += ((t - self.next_sample) // self.sample_ns) * self.sample_ns
                self.counters[3] += 1
        return OK

    cdef int advance(self, int64_t t, Bar* bars, int64_t bar_cap, int64_t* nb,
                     Sample* samples, int64_t sample_cap, int64_t* ns) noexcept nogil:
        """Time reaches ``t``: close what ended (bars first, then samples)."""
        cdef int status
        if not self.started:
            self.started = True
            self.next_sample = t - t % self.sample_ns + self.sample_ns
            return OK
        status = self.close_bars(t, bars, bar_cap, nb)
        if status != OK:
            return status
        return self.close_samples(t, samples, sample_cap, ns)

    # ---- the events path -----------------------------------------------------------------

    cdef void end_message(self) noexcept nogil:
        """The message in progress ended: what is left of its order rests; OFI."""
        if not self.in_message:
            return
        if self.pend_qty > 0:
            self.change(self.pend_book, self.pend_side, self.pend_price, self.pend_qty, True)
        self.pend_qty = 0
        self.pend_id = 0
        self.in_message = False
        self.updated(self.msg_book)

    cdef int run_events(self, const EventRecord* ev, int64_t n, Bar* bars, int64_t bar_cap,
                        Sample* samples, int64_t sample_cap, int64_t* consumed,
                        int64_t* n_bars, int64_t* n_samples) noexcept nogil:
        cdef int64_t i
        cdef int status
        cdef const EventRecord* e
        for i in range(consumed[0], n):
            e = &ev[i]
            if e.book < 0 or e.book >= self.n_books:
                consumed[0] = i
                return BAD_BOOK
            if e.timestamp < 0:
                consumed[0] = i
                return BAD_TIME
            if self.in_message and (e.message_index != self.msg_mi or e.book != self.msg_book):
                self.end_message()
            status = self.advance(e.timestamp, bars, bar_cap, n_bars, samples, sample_cap,
                                  n_samples)
            if status != OK:
                consumed[0] = i
                return status
            if not self.in_message:
                self.in_message = True
                self.msg_mi, self.msg_book = e.message_index, e.book
            if e.kind == EV_ACCEPTED:
                if e.price > 0:              # a limit: rests with what is left at the end
                    self.pend_id, self.pend_book, self.pend_side = e.order_id, e.book, e.side
                    self.pend_price, self.pend_qty = e.price, e.qty
            elif e.kind == EV_FILL:
                self.change(e.book, -e.side, e.price, -e.qty, True)     # the maker's level
                if e.order_id != 0 and e.order_id == self.pend_id:
                    self.pend_qty -= e.qty
                self.trade(e.book, e.timestamp, e.price, e.qty, e.side)
            elif e.kind == EV_CANCELLED or e.kind == EV_REDUCED:
                if e.order_id == self.pend_id and self.pend_qty > 0 and e.book == self.pend_book:
                    self.pend_qty -= e.qty   # the order of this message: never rested
                elif e.price > 0:
                    self.change(e.book, e.side, e.price, -e.qty, True)
            elif e.kind == EV_TRIGGERED:
                self.counters[2] += 1
        consumed[0] = n
        self.end_message()
        return OK

    # ---- the records path ----------------------------------------------------------------

    cdef int run_records(self, const MdRecord* rec, int64_t n, Bar* bars, int64_t bar_cap,
                         Sample* samples, int64_t sample_cap, int64_t* consumed,
                         int64_t* n_bars, int64_t* n_samples) noexcept nogil:
        cdef int64_t i
        cdef int status
        cdef const MdRecord* r
        for i in range(consumed[0], n):
            r = &rec[i]
            if r.book < 0 or r.book >= self.n_books:
                consumed[0] = i
                return BAD_BOOK
            if r.timestamp < 0:
                consumed[0] = i
                return BAD_TIME
            if r.kind < MD_LEVEL or r.kind > MD_CLEAR:
                consumed[0] = i
                return BAD_KIND
            if (r.side != 1 and r.side != -1) and not (r.kind == MD_CLEAR and r.side == 0):
                consumed[0] = i
                return BAD_SIDE
            if (r.kind == MD_LEVEL and r.qty < 0) or (r.kind == MD_TRADE and r.qty <= 0):
                consumed[0] = i
                return BAD_QTY
            status = self.advance(r.timestamp, bars, bar_cap, n_bars, samples, sample_cap,
                                  n_samples)
            if status != OK:
                consumed[0] = i
                return status
            if r.kind == MD_TRADE:
                self.trade(r.book, r.timestamp, r.price, r.qty, r.side)
                continue
            if r.kind == MD_CLEAR:
                self.clear(r.book, r.side)
            else:
                self.change(r.book, r.side, r.price, r.qty, r.kind == MD_DELTA)
            self.updated(r.book)
        consumed[0] = n
        return OK

    # ---- Python-facing calls -------------------------------------------------------------

    def process_events(self, cnp.ndarray events, int64_t start, cnp.ndarray bars,
                       cnp.ndarray samples):
        """Run ``events[start:]``; returns ``(status, consumed_up_to, n_bars, n_samples)``.
        ``status`` 1/2: the bar/sample buffer is full (call again from ``consumed_up_to``
        with room); 3: an event's book is out of range."""
        cdef int64_t consumed = start, nb = 0, ns = 0
        cdef int status
        with nogil:
            status = self.run_events(<const EventRecord*>cnp.PyArray_DATA(events),
                                     cnp.PyArray_DIM(events, 0),
                                     <Bar*>cnp.PyArray_DATA(bars), cnp.PyArray_DIM(bars, 0),
                                     <Sample*>cnp.PyArray_DATA(samples),
                                     cnp.PyArray_DIM(samples, 0), &consumed, &nb, &ns)
        return status, consumed, nb, ns

    def process_records(self, cnp.ndarray records, int64_t start, cnp.ndarray bars,
                        cnp.ndarray samples):
        """Run ``records[start:]``; returns as :meth:`process_events` (status 3-6: a bad
        book, kind, side or quantity at ``consumed_up_to``)."""
        cdef int64_t consumed = start, nb = 0, ns = 0
        cdef int status
        with nogil:
            status = self.run_records(<const MdRecord*>cnp.PyArray_DATA(records),
                                      cnp.PyArray_DIM(records, 0),
                                      <Bar*>cnp.PyArray_DATA(bars), cnp.PyArray_DIM(bars, 0),
                                      <Sample*>cnp.PyArray_DATA(samples),
                                      cnp.PyArray_DIM(samples, 0), &consumed, &nb, &ns)
        return status, consumed, nb, ns

    def flush(self, int64_t now_ns, cnp.ndarray bars, cnp.ndarray samples):
        """The clock reached ``now_ns`` with nothing more to come before it: close what
        ended. Returns ``(status, n_bars, n_samples)``."""
        cdef int64_t nb = 0, ns = 0
        cdef int status = OK
        if self.started:
            status = self.advance(now_ns, <Bar*>cnp.PyArray_DATA(bars), cnp.PyArray_DIM(bars, 0),
                                  &nb, <Sample*>cnp.PyArray_DATA(samples),
                                  cnp.PyArray_DIM(samples, 0), &ns)
        return status, nb, ns

    def snapshot(self, int64_t t, cnp.ndarray prices, cnp.ndarray qtys, cnp.ndarray bars,
                 cnp.ndarray samples):
        """Every book's levels are now ``prices``/``qtys`` (int64 ``(n_books, 2, L)``, the
        layout of ``Books.top_levels``; quantity 0: no level), one update per book, at
        ``t``. Returns ``(status, n_bars, n_samples)``; on status 1/2 nothing was changed
        yet (call again with room)."""
        cdef int64_t nb = 0, ns = 0, i, L = cnp.PyArray_DIM(prices, 2)
        cdef int64_t* P = <int64_t*>cnp.PyArray_DATA(prices)
        cdef int64_t* Q = <int64_t*>cnp.PyArray_DATA(qtys)
        cdef int32_t b, s, n
        cdef int status
        if t < 0:
            return BAD_TIME, 0, 0
        with nogil:
            status = self.advance(t, <Bar*>cnp.PyArray_DATA(bars), cnp.PyArray_DIM(bars, 0),
                                  &nb, <Sample*>cnp.PyArray_DATA(samples),
                                  cnp.PyArray_DIM(samples, 0), &ns)
            if status == OK:
                for b in range(self.n_books):
                    for s in range(2):
                        n = 0
                        for i in range(L - 1, -1, -1):       # worst first: best ends last
                            if Q[(b * 2 + s) * L + i] > 0 and n < self.capacity:
                                self.prices(b, s)[n] = P[(b * 2 + s) * L + i]
                                self.qtys(b, s)[n] = Q[(b * 2 + s) * L + i]
                                n += 1
                        self.ln[b * 2 + s] = n
                    self.updated(b)
        return status, nb, ns

    def open_bar(self, int32_t book, int k, cnp.ndarray out):
        """Write book ``book``'s bar in progress of interval ``k`` into ``out[0]``; False
        when the book has no trade yet."""
        if self.br[book * MAX_INTERVALS + k].last_close == 0:
            return False
        self.write_bar(<Bar*>cnp.PyArray_DATA(out), book, k, False)
        return True

    def last_trade(self, int32_t book):
        cdef BookState* s = &self.bs[book]
        if s.trade_qty == 0:
            return None
        return s.trade_t, s.trade_price, s.trade_qty, s.trade_sign

    def top_levels(self, int32_t book, int32_t n):
        """``(prices, qtys)``, int64 ``(2, n)``: side 0 bids, 1 asks, best first, 0 where
        missing."""
        prices = np.zeros((2, n), dtype=np.int64)
        qtys = np.zeros((2, n), dtype=np.int64)
        for s in range(2):
            m = min(n, self.ln[book * 2 + s])
            if m:
                top = self.level_n[book, s]
                prices[s, :m] = self.level_price[book, s, top - m:top][::-1]
                qtys[s, :m] = self.level_qty[book, s, top - m:top][::-1]
        return prices, qtys
