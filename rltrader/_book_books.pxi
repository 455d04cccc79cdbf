# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: Books, the Python-facing class over the kernels, and its argument checks.

# ---------------------------------------------------------------------------------------
# Python-facing classes
# ---------------------------------------------------------------------------------------

cdef object _as_records(object array, object dtype, str name):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {name[:len(name) - 1]} records, "
                        f"got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{name} has dtype {array.dtype}; expected rltrader's "
                        f"{'MESSAGE_DTYPE' if dtype is MESSAGE_DTYPE else 'EVENT_DTYPE'}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if dtype is MESSAGE_DTYPE and array.shape[0] > INT32_MAX:
        # an event's message_index is int32: a longer batch would wrap it
        raise ValueError(f"at most 2**31 - 1 messages per call, got {array.shape[0]:,} "
                         "(split the batch)")
    return array


cdef object _check_writeable(object array, str name):
    # the kernels write through raw pointers, which numpy's read-only flag cannot stop
    # (a read-only memmap page faults): refuse before any kernel runs
    if not cnp.PyArray_ISWRITEABLE(array):     # the flag itself: no flags object per call
        raise ValueError(f"{name} must be writeable (the core writes its results into it); "
                         f"got a read-only array")
    return array


cdef int _check_stp(Py_ssize_t mode) except -1:
    if mode < NONE or mode > CANCEL_BOTH:
        raise ValueError(f"self_trade_prevention must be a SelfTradePrevention (0-3), "
                         f"got {mode}")
    return 0


cdef int _check_fee(object fee_ppm, str name) except -1:
    # a fee of at most the notional keeps |cash| <= 2 x MAX_NOTIONAL (docs: Accounting)
    if not -MAX_FEE_PPM <= fee_ppm <= MAX_FEE_PPM:
        raise ValueError(f"{name} must be in [-{MAX_FEE_PPM}, {MAX_FEE_PPM}] (at most 100 % "
                         f"of the notional), got {fee_ppm}")
    return 0


cdef int _check_book(Books books, object book) except -1:
    """``book`` must be an integer (``__index__``: a float is a TypeError) in range."""
    book = operator.index(book)
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
        Fees per million of notional (negative for rebates), for every book; at most
        ``MAX_FEE_PPM`` (100 %) in magnitude.

    Notes
    -----
    One ``Books`` is single-threaded. Its methods that run a kernel (``process`` releases
    the GIL for batches of 64 messages or more), grow the arena or walk the order links
    mark it busy while they run; a call from another thread meanwhile raises
    ``RuntimeError`` instead of racing it. Use one ``Books`` per thread, or a lock.

    Every account stays exact: a taker whose fills could push its book's gross traded
    notional past ``MAX_NOTIONAL`` is refused with ``NOTIONAL_LIMIT`` (docs/semantics.md).
    """

    def __init__(self, Py_ssize_t n_books=1, *, Py_ssize_t window=4096,
                 Py_ssize_t capacity=1024, Py_ssize_t max_orders=1 << 30,
                 Py_ssize_t n_owners=0, Py_ssize_t self_trade_prevention=0,
                 Py_ssize_t maker_fee_ppm=0, Py_ssize_t taker_fee_ppm=0):
        # Py_ssize_t arguments convert through __index__: a float is a TypeError (an ``int``
        # argument would truncate 2.9 books to 2); the checks below bound the C ints
        if not 1 <= n_books <= INT32_MAX:
            raise ValueError(f"n_books must be in [1, 2**31 - 1], got {n_books}")
        if window < 64 or window % 64 or window > INT32_MAX:
            raise ValueError(f"window must be a positive multiple of 64, got {window}")
        if not 1 <= capacity <= (1 << 30):
            raise ValueError(f"capacity must be in [1, 2**30], got {capacity}")
        if max_orders < capacity or max_orders > (1 << 30):
            raise ValueError(f"max_orders must be in [capacity, 2**30], got {max_orders}")
        if not 0 <= n_owners <= INT32_MAX:
            raise ValueError(f"n_owners must be in [0, 2**31 - 1], got {n_owners}")
        _check_stp(self_trade_prevention)
        _check_fee(maker_fee_ppm, "maker_fee_ppm")
        _check_fee(taker_fee_ppm, "taker_fee_ppm")
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
        self.owner_fee_array = np.full((n_owners, 2), BOOK_FEE, dtype=np.int64)
        self.owner_fee_array.flags.writeable = False    # set_owner_fees checks each value
        self.order_array = np.zeros(0, dtype=ORDER_DTYPE)
        self._resize(capacity)
        for state in (self.book_array, self.level_array, self.bitmap_array,
                      self.summary_array):
            state.flags.writeable = False

    cdef int _enter(self) except -1:
        """Mark the object busy for this thread, or raise when another thread has it: check
        and set run with the GIL held, so two threads cannot both get in. The same thread
        may enter again. The caller leaves (``_leave``) in a ``finally``."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if self.busy and self.busy_thread != me:
            raise RuntimeError(
                "Books is in use by another thread; one Books object is single-threaded "
                "(use one per thread, or serialise the calls with a lock)")
        self.busy_thread = me
        self.busy += 1
        return 0

    cdef void _leave(self) noexcept:
        self.busy -= 1

    cdef _bind(self):
        cdef Core* c = &self.core
        c.bk = <BookState*>cnp.PyArray_DATA(self.book_array)
        c.lv = <Level*>cnp.PyArray_DATA(self.level_array)
        c.bits = <uint64_t*>cnp.PyArray_DATA(self.bitmap_array)
        c.summary = <uint64_t*>cnp.PyArray_DATA(self.summary_array)
        c.orders = <Order*>cnp.PyArray_DATA(self.order_array)
        c.table = <uint32_t*>cnp.PyArray_DATA(self.hash_array)
        c.accounts = <Account*>cnp.PyArray_DATA(self.account_array)
        c.owner_fees = <int64_t*>cnp.PyArray_DATA(self.owner_fee_array)
        c.max_book_load = _max_book_load(c)
        c.fees = _any_fee(c)

    def _resize_arena(self, Py_ssize_t capacity):
        """Grow the arena to `capacity` slots and rebuild the hash table (outside kernels).
        The arena never shrinks: `capacity` must be in (current capacity, 2**30]."""
        if not self.core.capacity < capacity <= (1 << 30):
            # an equal or smaller size once relinked the last live slot into the free list
            raise ValueError(f"capacity must be in ({self.core.capacity}, 2**30], got "
                             f"{capacity}")
        self._enter()
        try:
            self._resize(capacity)
        finally:
            self._leave()

    cdef _resize(self, int capacity):
        cdef Core* c = &self.core
        cdef int32_t old = c.capacity, slot
        cdef Order* grown
        cdef _ArenaMemory mem = self.arena_memory
        cdef size_t nbytes = <size_t>capacity * sizeof(Order)
        if mem is not None and mem.commit(nbytes):
            # in place: the old slots stay where they are, nothing is copied
            orders = _memory_view(mem, nbytes, ORDER_DTYPE)
            grown = <Order*>cnp.PyArray_DATA(orders)
        else:
            mem = None
            if old and capacity >= ARENA_RESERVE_MIN:
                mem = _reserve_memory(sizeof(Order) * <size_t>min(
                    <int64_t>c.max_orders, max(ARENA_RESERVE_FACTOR * <int64_t>capacity,
                                               <int64_t>ARENA_RESERVE_SLOTS)))
            if mem is not None and mem.commit(nbytes):
                orders = _memory_view(mem, nbytes, ORDER_DTYPE)
            else:
                mem = None
                orders = np.zeros(capacity, dtype=ORDER_DTYPE)
            grown = <Order*>cnp.PyArray_DATA(orders)
            # raw copies and a C loop: numpy's field-by-field copy of the structured
            # records took ~5 ms per 65,536 orders
            if old:
                memcpy(grown, c.orders, old * sizeof(Order))
        self.arena_memory = mem
        # the new slots are zero (fresh pages, never written): link them
        for slot in range(old, capacity):
            grown[slot].next = slot + 1
            grown[slot].prev = NO_SLOT
        grown[capacity - 1].next = c.free_head
        orders.flags.writeable = False     # the kernels' state: read-only from Python
        self.order_array = orders
        size = 1
        while size < 2 * capacity:
            size *= 2
        self.hash_array = _new_hash_table(size)
        self.hash_array.flags.writeable = False
        _set_hash_size(c, size)
        c.capacity = capacity
        c.free_head = old
        self._bind()
        for slot in range(old):
            if c.orders[slot].state != FREE:
                # its stored id_hash: no order's id is hashed again
                hash_insert_hashed(c, slot, c.orders[slot].hash)

    cdef _grow(self):
        self._resize(min(self.core.max_orders, 2 * self.core.capacity))

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
        return self._run_known_ahead(msgs, known, fresh, n, index_offset, out, out_cap,
                                     consumed, written, AHEAD_FAR)

    cdef int _run_known_ahead(self, const Message* msgs, int32_t* known, bint fresh,
                              int64_t n, int64_t index_offset, Event* out, int64_t out_cap,
                              int64_t* consumed, int64_t* written,
                              int32_t far) except -1:
        """``_run_known`` whose look-ahead (when the core outgrows the caches) requests a
        message's book, level, hash bucket and known order ``far`` messages
        before it (clamped to [2, 12]; 4 by default), and the order its bucket leads to
        half as far: a caller whose messages each cost more (several cache misses, as
        the background flow's and the env's across a thousand books) needs the longer
        lead to cover a memory access; the results are the same."""
        cdef int64_t done = 0, w = 0
        self._enter()
        try:
            self._run_loop(msgs, known, fresh, n, index_offset, out, out_cap, &done, &w,
                           far)
        finally:
            self._leave()
        consumed[0] = done
        written[0] = w
        return 0

    cdef int _run_loop(self, const Message* msgs, int32_t* known, bint fresh, int64_t n,
                       int64_t index_offset, Event* out, int64_t out_cap, int64_t* done_out,
                       int64_t* written_out, int32_t far) except -1:
        """The body of ``_run_known_ahead``, with ``busy`` set."""
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
                                            &c_done, &c_written, far)
            else:
                status = process_kernel(&self.core, msgs + done, k, fresh, step_n,
                                        index_offset + done, out + w, out_cap - w, &c_done,
                                        &c_written, far)
            done += c_done
            w += c_written
            if RLTRADER_DEBUG_BUILD:
                _check_integrity(self)
            if status == ARENA_FULL:
                self._grow()
            elif status == EVENTS_FULL:
                break
        done_out[0] = done
        written_out[0] = w
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
        _check_writeable(_as_records(events, EVENT_DTYPE, "events"), "events")
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
        self._enter()
        try:
            while done < n:
                ev = <Event*>cnp.PyArray_DATA(events)
                with nogil:
                    status = profile_kernel(&self.core, msgs + done, n - done, ev, cap,
                                            &c_done, tk, ct)
                done += c_done
                if status == ARENA_FULL:
                    self._grow()
                elif status == EVENTS_FULL:
                    cap = max(2 * cap, max_events(&self.core, msgs + done))
                    events = np.empty(cap, dtype=EVENT_DTYPE)
        finally:
            self._leave()
        return ticks.astype(np.int64), counts

    # ---- configuration ----------------------------------------------------------------

    def set_self_trade_prevention(self, Py_ssize_t mode, book=None):
        """Set the self-trade prevention mode of one book (or of all when ``book=None``)."""
        _check_stp(mode)
        if book is not None:
            _check_book(self, book)
        self._set_book_field("stp", book, mode)

    def set_fees(self, Py_ssize_t maker_fee_ppm, Py_ssize_t taker_fee_ppm, book=None):
        """Set maker/taker fees (per million of notional, each at most ``MAX_FEE_PPM`` in
        magnitude) of one book or of all."""
        _check_fee(maker_fee_ppm, "maker_fee_ppm")
        _check_fee(taker_fee_ppm, "taker_fee_ppm")
        if book is not None:
            _check_book(self, book)
        self._set_book_field("maker_fee_ppm", book, maker_fee_ppm)
        self._set_book_field("taker_fee_ppm", book, taker_fee_ppm)

    def set_owner_fees(self, owner, maker_fee_ppm=None, taker_fee_ppm=None):
        """A fee tier: the maker/taker fees (ppm, each at most ``MAX_FEE_PPM`` in magnitude)
        ``owner`` (an index, or a sequence of them) pays in every book instead of the
        book's; ``None`` goes back to the book's. Fills already made are not repriced."""
        owners = np.atleast_1d(np.asarray(owner))
        if owners.dtype.kind not in "iu" or owners.size == 0 or owners.min() < 0 \
                or owners.max() >= self.core.n_owners:
            raise ValueError(f"owner must be in [0, {self.core.n_owners}), got {owner!r}")
        for fee, name in ((maker_fee_ppm, "maker_fee_ppm"), (taker_fee_ppm, "taker_fee_ppm")):
            if fee is not None:
                operator.index(fee)     # an int: 2.5 ppm must not become 2
                _check_fee(fee, name)
        self._enter()           # the kernels read the tiers without the GIL
        try:
            self.owner_fee_array.flags.writeable = True
            for column, fee in ((0, maker_fee_ppm), (1, taker_fee_ppm)):
                self.owner_fee_array[owners, column] = BOOK_FEE if fee is None else fee
        finally:
            self.owner_fee_array.flags.writeable = False
            self.core.fees = _any_fee(&self.core)
            self._leave()

    cdef _set_book_field(self, str field, object book, object value):
        """Write one field of one book's state (all books when ``book`` is None): the state
        arrays are read-only from Python, so that no user write can corrupt them."""
        state = self.book_array
        self._enter()       # a running kernel reads the book state
        try:
            state.flags.writeable = True
            state[field][slice(None) if book is None else book] = value
        finally:
            state.flags.writeable = False
            self.core.fees = _any_fee(&self.core)     # the field may be a fee
            self._leave()

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

    def best_bid(self, Py_ssize_t book=0):
        """Best bid in ticks, ``EMPTY_BID`` (0) when the book has no bids."""
        _check_book(self, book)
        return self.core.bk[book].best_bid

    def best_ask(self, Py_ssize_t book=0):
        """Best ask in ticks, ``EMPTY_ASK`` when the book has no asks."""
        _check_book(self, book)
        return self.core.bk[book].best_ask

    def last_price(self, Py_ssize_t book=0):
        """Price of the last trade in ticks, 0 before the first."""
        _check_book(self, book)
        return self.core.bk[book].last_price

    def volume(self, Py_ssize_t book=0):
        """Lots traded in the book."""
        _check_book(self, book)
        return self.core.bk[book].volume

    def trade_count(self, Py_ssize_t book=0):
        """Number of fills in the book."""
        _check_book(self, book)
        return self.core.bk[book].trade_count

    def live_orders(self, book=None):
        """Resting orders plus pending stops, of one book or of all."""
        if book is None:
            return self.core.n_live
        _check_book(self, book)
        cdef const BookState* bs = &self.core.bk[<Py_ssize_t>operator.index(book)]
        return bs.n_resting[0] + bs.n_resting[1] + bs.n_stops

    def top_levels(self, Py_ssize_t depth, prices=None, qtys=None, counts=None):
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
        self._enter()
        try:
            with nogil:
                top_levels_kernel(&self.core, depth, px, qt, ct)
        finally:
            self._leave()
        return prices, qtys, counts

    def level_queue(self, Py_ssize_t book, Py_ssize_t side, Py_ssize_t price, out=None):
        """The FIFO queue of one level (L3 view) as QUEUE_DTYPE records, oldest first."""
        _check_book(self, book)
        if side != BUY and side != SELL:
            raise ValueError(f"side must be BUY (1) or SELL (-1), got {side}")
        self._enter()       # it walks order links that a running kernel rewrites
        try:
            return _level_queue(self, book, side, price, out)
        finally:
            self._leave()

    def order(self, Py_ssize_t book, Py_ssize_t order_id):
        """A live order as a dict (``stop_price`` for pending stops), or None."""
        _check_book(self, book)
        self._enter()       # the probe and the copy read what a running kernel rewrites
        try:
            return _order_info(&self.core, find_order(&self.core, book, order_id))
        finally:
            self._leave()

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
        self._enter()
        try:
            _check_integrity(self)
        finally:
            self._leave()

    # ---- state (pickling, the exchange's snapshots) ------------------------------------

    def state(self):
        """Everything the core holds, as a dict of plain values and numpy array copies:
        the sizes and list heads of ``Core`` and every array it points into (book states,
        levels, bitmaps, arena, hash table, accounts, owner fee tiers). ``from_state``
        rebuilds an identical ``Books`` (its next calls give bit-identical results);
        ``pickle`` uses the pair."""
        cdef Core* c = &self.core
        self._enter()
        try:
            out = {name: getattr(self, name).copy() for name in _STATE_ARRAYS}
            out.update(version=_STATE_VERSION, n_books=c.n_books, n_owners=c.n_owners,
                       window=c.window, words=c.words, summary_words=c.summary_words,
                       capacity=c.capacity, max_orders=c.max_orders,
                       free_head=c.free_head, n_live=c.n_live,
                       hash_mask=c.hash_mask)
        finally:
            self._leave()
        return out

    @classmethod
    def from_state(cls, state):
        """A ``Books`` holding ``state`` (from ``state()``); the arrays are copied."""
        cdef Books books = cls.__new__(cls)
        books._restore(state)
        return books

    def _restore(self, dict state):
        """Load ``state`` into this object, which no kernel has run on (``from_state``)."""
        if self.order_array is not None:
            raise RuntimeError("_restore loads a Books made by from_state only")
        version = state.get("version")
        if version not in (1, _STATE_VERSION):
            raise ValueError(f"Books state version {version!r}, this build reads 1 and "
                             f"{_STATE_VERSION}")
        cdef Core* c = &self.core
        n_books, n_owners = state["n_books"], state["n_owners"]
        window, capacity = state["window"], state["capacity"]
        words, summary_words = window // 64, (window // 64 + 63) // 64
        hash_size = state["hash_mask"] + 1
        if (not 1 <= n_books <= INT32_MAX or not 0 <= n_owners <= INT32_MAX
                or window < 64 or window % 64 or window > INT32_MAX
                or state["words"] != words or state["summary_words"] != summary_words
                or not 1 <= capacity <= state["max_orders"] <= (1 << 30)
                or hash_size & (hash_size - 1) or hash_size < 2 * capacity
                or hash_size > (1 << 31)
                or not -1 <= state["free_head"] < capacity
                or not 0 <= state["n_live"] <= capacity):
            raise ValueError("inconsistent Books state (sizes)")
        shapes = dict(book_array=((n_books,), BOOK_DTYPE),
                      level_array=((n_books, window), LEVEL_DTYPE),
                      bitmap_array=((n_books, 2, words), np.uint64),
                      summary_array=((n_books, 2, summary_words), np.uint64),
                      order_array=((capacity,), ORDER_DTYPE),
                      hash_array=((hash_size,), np.uint32),
                      account_array=((n_books, n_owners), ACCOUNT_DTYPE),
                      owner_fee_array=((n_owners, 2), np.int64))
        arrays = {}
        for name, (shape, dtype) in shapes.items():
            a = state[name]
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
                raise ValueError(f"inconsistent Books state: {name} must be {shape} of "
                                 f"{np.dtype(dtype)}")
            arrays[name] = _zeroed_copy(a)
        c.n_books, c.n_owners, c.window = n_books, n_owners, window
        c.words, c.summary_words = words, summary_words
        c.capacity, c.max_orders = capacity, state["max_orders"]
        c.free_head, c.n_live = state["free_head"], state["n_live"]
        _set_hash_size(c, hash_size)
        self.book_array = arrays["book_array"]
        self.level_array = arrays["level_array"]
        self.bitmap_array = arrays["bitmap_array"]
        self.summary_array = arrays["summary_array"]
        self.order_array = arrays["order_array"]
        self.hash_array = arrays["hash_array"]
        self.account_array = arrays["account_array"]
        self.owner_fee_array = arrays["owner_fee_array"]
        for name in _READ_ONLY_ARRAYS:      # as __init__ and _resize leave them
            getattr(self, name).flags.writeable = False
        self._bind()
        if version == 1:
            _rehash(c)

    def __reduce__(self):
        return _books_from_state, (type(self), self.state())


#: Version of ``Books.state()``'s layout: 2 since the id hash changed (version 1 states
#: are read, their hashes computed again: ``_rehash``).
_STATE_VERSION = 2
_STATE_ARRAYS = ("book_array", "level_array", "bitmap_array", "summary_array",
                 "order_array", "hash_array", "account_array", "owner_fee_array")
_READ_ONLY_ARRAYS = ("book_array", "level_array", "bitmap_array", "summary_array",
                     "order_array", "hash_array", "owner_fee_array")


cdef void _set_hash_size(Core* c, uint64_t size) noexcept:
    """The table's mask and shift for ``size`` buckets, a power of two in [2, 2**31]."""
    c.hash_mask = size - 1
    c.hash_shift = 32
    while size > 1:
        size >>= 1
        c.hash_shift -= 1


cdef void _rehash(Core* c) noexcept:
    """Hash every live order again and rebuild the table: a version 1 state holds the
    hashes and table of the id hash before version 2's (``id_hash``)."""
    cdef int32_t slot
    cdef uint64_t i
    for i in range(c.hash_mask + 1):
        c.table[i] = 0
    for slot in range(c.capacity):
        if c.orders[slot].state != FREE:
            hash_insert_hashed(c, slot, id_hash(c.orders[slot].order_id, c.orders[slot].book))


cdef bint _any_fee(const Core* c) noexcept:
    """Whether some book charges a fee or some owner has a fee tier (``Core.fees``): when
    none does, every fill's fee is 0."""
    cdef int32_t b
    cdef int64_t i
    for b in range(c.n_books):
        if c.bk[b].maker_fee_ppm != 0 or c.bk[b].taker_fee_ppm != 0:
            return True
    for i in range(2 * <int64_t>c.n_owners):
        if c.owner_fees[i] != BOOK_FEE:
            return True
    return False


cdef int64_t _max_book_load(const Core* c) noexcept:
    """The largest ``n_resting[0] + n_resting[1] + 6 x n_stops`` of the books (0 for none
    held): ``Core.max_book_load`` for a core bound to its arrays."""
    cdef int64_t load, top = 0
    cdef int32_t b
    for b in range(c.n_books):
        load = (<int64_t>c.bk[b].n_resting[0] + c.bk[b].n_resting[1]
                + 6 * <int64_t>c.bk[b].n_stops)
        if load > top:
            top = load
    return top


cdef object _zeroed_copy(object a):
    """A C-contiguous copy of ``a`` whose records' padding bytes are zero (``np.array``
    leaves them undefined for a structured dtype with padding)."""
    out = np.zeros(a.shape, dtype=a.dtype)
    out[...] = a
    return out


def _books_from_state(cls, state):
    """Unpickle a ``Books`` (``Books.__reduce__``)."""
    return cls.from_state(state)


cdef object _out_array(object a, tuple shape, object dtype, str name):
    if a is None:
        return np.zeros(shape, dtype=dtype)
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape
            or not a.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype).name} array of "
                         f"shape {shape}")
    return _check_writeable(a, name)


cdef object _order_info(const Core* c, int32_t slot):
    """``Books.order``'s dict of the order in ``slot``, or None for NO_SLOT."""
    if slot == NO_SLOT:
        return None
    cdef const Order* o = &c.orders[slot]
    info = dict(order_id=o.order_id, price=o.price, qty=o.qty, side=o.side,
                owner=o.owner, op=o.op, tif=o.tif, state=o.state)
    if o.state == STOP_PENDING:
        info["stop_price"] = o.clock.stop_price
    else:
        info["timestamp"] = o.clock.timestamp
    return info


cdef object _level_queue(Books self, int book, int side, int64_t price, object out):
    """``Books.level_queue`` with ``busy`` set: count the level's orders, then copy them."""
    cdef Core* c = &self.core
    cdef int32_t slot = level_head(c, book, side, price), s
    cdef int64_t n = 0, i = 0
    s = slot
    while s != NO_SLOT and c.orders[s].price == price:
        n += 1
        s = c.orders[s].next
    if out is None:
        out = np.empty(n, dtype=QUEUE_DTYPE)
    elif (not isinstance(out, np.ndarray) or out.dtype != QUEUE_DTYPE or out.ndim != 1
            or out.shape[0] < n):
        raise ValueError(f"out must be a 1-D QUEUE_DTYPE array of at least {n} records")
    else:
        _check_writeable(out, "out")
    s = slot
    while s != NO_SLOT and c.orders[s].price == price:
        out[i] = (c.orders[s].order_id, c.orders[s].qty, c.orders[s].clock.timestamp,
                  c.orders[s].owner)
        i += 1
        s = c.orders[s].next
    return out[:n]
