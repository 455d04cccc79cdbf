# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: OrderBook, one book with a method per operation.

# ---------------------------------------------------------------------------------------
# one book, one Python call per operation
# ---------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------
# the Python edge of OrderBook: a value reaches a record field only if the field holds it
# exactly. Required numbers (side, price, qty ...) arrive as objects and go through
# ``_int64``, whose errors name the argument. Optional ones are ``Py_ssize_t`` arguments
# (int64 on the 64-bit platforms the core supports), so that a default costs nothing:
# Cython converts those through ``__index__``, so a float is a TypeError too (an
# ``int64_t`` argument would truncate 100.9 to 100) and an int beyond int64 an
# OverflowError. Fields narrower than int64 (side, tif, owner) are range-checked here,
# before a C cast could wrap 257 to 1.
# ---------------------------------------------------------------------------------------

cdef object _field(object value, str name, object lo, object hi):
    """``value`` as a Python int in ``[lo, hi]``: integers only (ints, numpy integers;
    ``operator.index``), so a float is a TypeError, never truncated; out of the range of
    the record field that will hold it is a ValueError, never wrapped."""
    if isinstance(value, bool):     # an int subclass, but True as a price is a mistake
        raise TypeError(f"{name} must be an integer, got a bool ({value!r})")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer (ticks, lots, ids and enums are "
                        f"integers), got {type(value).__name__} {value!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} {v} does not fit its field: not in [{lo}, {hi}]")
    return v


cdef inline int64_t _int64(object value, str name) except? -9223372036854775807:
    """``_field`` for an int64 field, with a C fast path for a plain int; an int beyond
    int64 raises OverflowError there, ValueError through ``_field``."""
    if PyLong_CheckExact(value):
        return <int64_t>value
    return _field(value, name, -(1 << 63), (1 << 63) - 1)


cdef inline int32_t _owner(Py_ssize_t v) except? -2147483647:
    """An owner argument as the record's int32, refused (ValueError) when it would wrap."""
    if v < INT32_MIN or v > INT32_MAX:     # C constants: no Python int in the common case
        _field(v, "owner", -(1 << 31), (1 << 31) - 1)      # raises ValueError
    return <int32_t>v


cdef inline int _side(object value) except? -2:
    """A side argument (BUY or SELL only) as the record's int8; its errors name it."""
    cdef int64_t v = _int64(value, "side")
    if v != BUY and v != SELL:
        raise ValueError(f"side must be BUY (1) or SELL (-1), got {v}")
    return <int>v


cdef inline int _tif(Py_ssize_t v) except? -1:
    """A time-in-force argument as the record's int8, refused (ValueError) outside the enum."""
    if v < GTC or v > POST_ONLY:
        raise ValueError(f"tif must be a TimeInForce (GTC 0, IOC 1, FOK 2, POST_ONLY 3), "
                         f"got {v}")
    return <int>v


@cython.final
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

    def __init__(self, *, Py_ssize_t window=4096, Py_ssize_t capacity=1024,
                 Py_ssize_t max_orders=1 << 30, Py_ssize_t n_owners=0,
                 Py_ssize_t self_trade_prevention=0, Py_ssize_t maker_fee_ppm=0,
                 Py_ssize_t taker_fee_ppm=0):
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
                       int tif, int64_t timestamp) except? -1:
        # ``except?``: -1 is also an order id a caller may send (it is rejected, not raised)
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
        if RLTRADER_DEBUG_BUILD or not self._run_one(m, &w):
            self.books._run(m, 1, 0, self.ev, self.ev_cap, &done, &w)
        self.n_events = w
        return order_id

    cdef inline bint _run_one(self, const Message* m, int64_t* written) except -1:
        """The per-call fast path: one message straight through the kernel. It holds the
        GIL from the check to the end (the kernel runs without releasing it), so no other
        thread can enter the Books meanwhile and there is nothing to mark: it only refuses
        to start while another thread is inside. False when the arena must grow first:
        ``Books._run`` grows it and runs the message."""
        cdef Books books = self.books
        cdef int64_t done
        cdef int status
        if books.busy and books.busy_thread != PyThread_get_thread_ident():
            books._enter()      # raises: another thread is inside
        status = process_kernel(&books.core, m, NULL, False, 1, 0, self.ev, self.ev_cap,
                                &done, written)
        return status == OK

    def limit(self, side, price, qty, Py_ssize_t order_id=0, Py_ssize_t owner=-1,
              Py_ssize_t tif=0, Py_ssize_t timestamp=0):
        """Submit a limit order; returns its id.

        Raises
        ------
        TypeError
            When a number is not an integer (a float price is never truncated).
        ValueError
            When ``side`` is not BUY/SELL or ``tif`` not a TimeInForce.
        """
        return self._send(LIMIT, _side(side), _int64(price, "price"), 0, _int64(qty, "qty"),
                          order_id, 0, _owner(owner), _tif(tif), timestamp)

    def market(self, side, qty, Py_ssize_t order_id=0, Py_ssize_t owner=-1,
               Py_ssize_t tif=1, Py_ssize_t timestamp=0):
        """Submit a market order (IOC, or FOK with ``tif=FOK``); returns its id."""
        return self._send(MARKET, _side(side), 0, 0, _int64(qty, "qty"), order_id, 0,
                          _owner(owner), _tif(tif), timestamp)

    def stop(self, side, stop_price, qty, Py_ssize_t order_id=0, Py_ssize_t owner=-1,
             Py_ssize_t tif=1, Py_ssize_t timestamp=0):
        """Submit a stop-market order; returns its id."""
        return self._send(STOP, _side(side), 0, _int64(stop_price, "stop_price"),
                          _int64(qty, "qty"), order_id, 0, _owner(owner), _tif(tif),
                          timestamp)

    def stop_limit(self, side, stop_price, price, qty, Py_ssize_t order_id=0,
                   Py_ssize_t owner=-1, Py_ssize_t tif=0, Py_ssize_t timestamp=0):
        """Submit a stop-limit order; returns its id."""
        return self._send(STOP_LIMIT, _side(side), _int64(price, "price"),
                          _int64(stop_price, "stop_price"), _int64(qty, "qty"), order_id, 0,
                          _owner(owner), _tif(tif), timestamp)

    def cancel(self, order_id, Py_ssize_t timestamp=0, Py_ssize_t owner=-1):
        """Cancel an order; False if it was rejected (unknown or finished, or ``owner``
        given and not the order's: ``NOT_OWNER``)."""
        self._send(CANCEL, 0, 0, 0, 0, _int64(order_id, "order_id"), 0, _owner(owner), 0,
                   timestamp)
        return self.ev[0].kind != REJECTED

    def reduce(self, order_id, qty, Py_ssize_t timestamp=0, Py_ssize_t owner=-1):
        """Remove ``qty`` lots from an order, keeping its queue priority."""
        self._send(REDUCE, 0, 0, 0, _int64(qty, "qty"), _int64(order_id, "order_id"), 0,
                   _owner(owner), 0, timestamp)
        return self.ev[0].kind != REJECTED

    def replace(self, order_id, price, qty, Py_ssize_t new_order_id=0, Py_ssize_t tif=0,
                Py_ssize_t timestamp=0, Py_ssize_t owner=-1):
        """Cancel an order and submit a new one (loses priority); returns the new id."""
        cdef int64_t old_id = _int64(order_id, "order_id")
        self._send(REPLACE, 0, _int64(price, "price"), 0, _int64(qty, "qty"), old_id,
                   new_order_id, _owner(owner), _tif(tif), timestamp)
        return new_order_id if new_order_id != 0 else old_id

    def execute(self, order_id, qty, Py_ssize_t timestamp=0):
        """Trade ``qty`` lots of a resting order against outside flow."""
        self._send(EXECUTE, 0, 0, 0, _int64(qty, "qty"), _int64(order_id, "order_id"), 0,
                   NO_OWNER, 0, timestamp)
        return self.ev[0].kind != REJECTED

    def submit(self, message):
        """Process one MESSAGE_DTYPE record (its ``book`` is ignored); returns its id.

        The record's values reach the core as they are (a bad side or tif is rejected with
        its reason, as in ``Books.process``); each must fit its field.
        """
        return self._send(_field(message["op"], "op", -128, 127),
                          _field(message["side"], "side", -128, 127),
                          _int64(message["price"], "price"),
                          _int64(message["stop_price"], "stop_price"),
                          _int64(message["qty"], "qty"), _int64(message["order_id"], "order_id"),
                          _int64(message["new_order_id"], "new_order_id"),
                          _field(message["owner"], "owner", -(1 << 31), (1 << 31) - 1),
                          _field(message["tif"], "tif", -128, 127),
                          _int64(message["timestamp"], "timestamp"))

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

    def depth(self, Py_ssize_t levels=10):
        """``(bids, asks)``: int64 arrays of shape (k, 3) — price, qty, count — best first."""
        prices, qtys, counts = self.books.top_levels(levels)
        out = []
        for side in range(2):
            k = int(np.count_nonzero(counts[0, side]))
            out.append(np.stack([prices[0, side, :k], qtys[0, side, :k],
                                 counts[0, side, :k].astype(np.int64)], axis=1))
        return out[0], out[1]

    def queue(self, side, price):
        """The FIFO queue at ``price`` on ``side`` (QUEUE_DTYPE records, oldest first)."""
        return self.books.level_queue(0, _side(side), _int64(price, "price"))

    def order(self, order_id):
        return self.books.order(0, _int64(order_id, "order_id"))

    @property
    def accounts(self):
        return self.books.account_array[0]

    def check_integrity(self):
        self.books.check_integrity()
