# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: OrderBook, one book with a method per operation.

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
