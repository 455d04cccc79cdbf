# Part of rltrader/_book.pyx (textually included: one C translation unit, so `cdef inline`
# functions still inline across the parts). Names come from _book.pxd and _book.pyx.
# This part: the order-id hash table and the arena's free list.

# ---------------------------------------------------------------------------------------
# the order-id hash table: open addressing, linear probing, backward-shift deletion
# (id_hash and find_order are inline in _book.pxd)
# ---------------------------------------------------------------------------------------

cdef inline int32_t probe_order(const Core* c, int32_t b, int64_t order_id, uint64_t h,
                                uint64_t* free_bucket) noexcept nogil:
    """``find_order_hashed``, which also leaves in ``free_bucket`` the empty bucket where a
    probe that finds nothing stops: the bucket ``hash_insert_hashed`` would take for this
    id, as long as the table does not change meanwhile (``hash_insert_at``)."""
    cdef uint64_t mask = c.hash_mask
    cdef uint64_t home = hash_home(c, h), p = home
    cdef uint32_t entry
    cdef const Order* o
    while True:
        entry = c.table[p]
        if entry == 0:
            free_bucket[0] = p
            return NO_SLOT
        if (p == home) != ((entry & HASH_DISPLACED) != 0):
            o = &c.orders[(entry & HASH_SLOT) - 1]
            if o.order_id == order_id and o.book == b:
                return <int32_t>((entry & HASH_SLOT) - 1)
        p = (p + 1) & mask


cdef inline void hash_insert_at(Core* c, int32_t slot, uint64_t h, uint64_t p) noexcept nogil:
    """Enter ``slot`` (``h``: its ``id_hash``) into bucket ``p``, the first empty bucket at
    or after its home (from ``probe_order`` on the unchanged table)."""
    c.orders[slot].hash = <uint32_t>h
    c.table[p] = (<uint32_t>slot + 1) | (HASH_DISPLACED if p != hash_home(c, h) else 0)


cdef inline void hash_insert_hashed(Core* c, int32_t slot, uint64_t h) noexcept nogil:
    """Enter ``slot`` into the table; ``h`` is its ``id_hash``, kept in the order."""
    cdef uint64_t mask = c.hash_mask
    cdef uint32_t* table = c.table
    cdef uint64_t home = hash_home(c, h), p = home
    c.orders[slot].hash = <uint32_t>h
    while table[p] != 0:
        p = (p + 1) & mask
    table[p] = (<uint32_t>slot + 1) | (HASH_DISPLACED if p != home else 0)


cdef inline void hash_erase(Core* c, int32_t slot) noexcept nogil:
    """Remove ``slot``'s entry; later entries of its cluster shift back (no tombstones).
    Home buckets of displaced entries come from their orders' stored hashes."""
    cdef uint64_t mask = c.hash_mask
    cdef uint32_t* table = c.table
    cdef const Order* orders = c.orders
    cdef uint64_t i = hash_home(c, orders[slot].hash)
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
        home = hash_home(c, orders[(entry & HASH_SLOT) - 1].hash)
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
        if c.free_head != NO_SLOT:
            # the next new order's slot: across many books a cold line (or two) by now
            prefetch(&c.orders[c.free_head])
            prefetch(<const char*>&c.orders[c.free_head] + sizeof(Order) - 1)
    return slot


cdef inline void slot_free(Core* c, int32_t slot) noexcept nogil:
    c.orders[slot].state = FREE
    c.orders[slot].next = c.free_head
    c.orders[slot].prev = NO_SLOT
    c.free_head = slot
    c.n_live -= 1


# ---------------------------------------------------------------------------------------
# the arena's memory: address space reserved once, committed as the arena grows
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    #if defined(__linux__) || defined(__APPLE__)
    #include <sys/mman.h>
    #ifndef MAP_NORESERVE
    #define MAP_NORESERVE 0
    #endif
    #define RLTRADER_HUGE ((size_t)2 << 20)
    /* addresses for ``bytes`` starting on a 2 MiB boundary (``*map`` and ``*mapped``: the
       mapping to release), advised to take transparent huge pages where the system gives
       them on request, as numpy advises its arrays of 4 MiB and more: an arena that grows
       in place would otherwise keep its first pages small (more TLB misses) */
    static void* rltrader_reserve(size_t bytes, void** map, size_t* mapped) {
        size_t total = bytes + 2 * RLTRADER_HUGE;   /* the alignment, then a commit's
                                                      rounding up to 2 MiB */
        char* p = (char*)mmap(NULL, total, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        char* base;
        if (p == (char*)MAP_FAILED)
            return NULL;
        base = (char*)(((size_t)p + RLTRADER_HUGE - 1) & ~(RLTRADER_HUGE - 1));
    #ifdef MADV_HUGEPAGE
        madvise(base, bytes, MADV_HUGEPAGE);    /* advice only: failure changes nothing */
    #endif
        *map = p;
        *mapped = total;
        return base;
    }
    /* make the first ``bytes`` from ``p`` readable and writable, rounded up to 2 MiB: a
       page first touched while its 2 MiB range is partly inaccessible cannot be huge,
       and stays small (an arena that grew in place kept 4 of its 14 MiB in small pages,
       W3 x 512 +5 % time); addresses made accessible and never touched cost no memory */
    static int rltrader_commit(void* p, size_t bytes) {
        bytes = (bytes + RLTRADER_HUGE - 1) & ~(RLTRADER_HUGE - 1);
        return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0 ? 0 : -1;
    }
    static void rltrader_release(void* p, size_t bytes) { munmap(p, bytes); }
    #else
    #define RLTRADER_HUGE ((size_t)2 << 20)
    static void* rltrader_reserve(size_t bytes, void** map, size_t* mapped) {
        (void)bytes; (void)map; (void)mapped; return NULL;
    }
    static int rltrader_commit(void* p, size_t bytes) { (void)p; (void)bytes; return -1; }
    static void rltrader_release(void* p, size_t bytes) { (void)p; (void)bytes; }
    #endif
    """
    void* rltrader_reserve(size_t bytes, void** map, size_t* mapped) nogil
    int rltrader_commit(void* p, size_t bytes) nogil
    void rltrader_release(void* p, size_t bytes) nogil


cdef enum:
    # a reservation holds 16 x the arena's capacity, at least ARENA_RESERVE_SLOTS orders
    # (56 bytes each: 224 MiB of addresses, no memory until used) and at most max_orders;
    # past that, growth moves the arena to a larger reservation (one copy)
    ARENA_RESERVE_SLOTS = 1 << 22
    ARENA_RESERVE_FACTOR = 16
    # an arena moves into a reservation when it first grows to this many slots or more;
    # until then, and from its creation, it is a numpy array of its own (growth copies
    # it): most Books never grow, and a heap block costs no system calls to create, nor
    # fresh pages when recycled (an arena of 65,536 slots created in a reservation ran
    # W3 x 512's quick stream 7 % slower than one on the heap, though on huge pages)
    ARENA_RESERVE_MIN = 1 << 15
    # an id hash of this many entries (2 MiB, one huge page) or more has a reservation of
    # its own: a random access per message, on 4 KiB pages one of 512 or more TLB entries
    HASH_RESERVE_MIN = 1 << 19


cdef class _ArenaMemory:
    """Address space for up to ``size`` bytes, reserved (no access, no memory) and
    committed (readable and writable, zero until written) from its start as what it holds
    grows: an order arena that has grown once grows in place from then on, copying nothing
    and leaving the old slots' pages as they are, where a new array would take fresh pages
    from the system for all of them (the kernel's page clearing was most of a growth's
    cost); a large id hash lives in one too, on huge pages. Freed with the last array that
    views it."""
    cdef char* base             # the first byte, on a 2 MiB boundary
    cdef void* map              # the mapping (from a little before base) and its size
    cdef size_t mapped
    cdef size_t committed       # bytes readable and writable from base
    cdef size_t size            # bytes the reservation holds

    def __dealloc__(self):
        if self.map != NULL:
            rltrader_release(self.map, self.mapped)

    cdef bint commit(self, size_t nbytes):
        """Make the first ``nbytes`` usable; False when the system refuses."""
        if nbytes > self.size:
            return False
        if nbytes > self.committed:
            if rltrader_commit(self.base, nbytes) != 0:
                return False
            self.committed = nbytes
        return True


cdef _ArenaMemory _reserve_memory(size_t nbytes):
    """A reservation of ``nbytes``, or None where the system has none to give (the array
    then is a numpy array of its own, copied when the arena grows)."""
    cdef _ArenaMemory mem = _ArenaMemory.__new__(_ArenaMemory)
    mem.base = <char*>rltrader_reserve(nbytes, &mem.map, &mem.mapped)
    if mem.base == NULL:
        return None
    mem.committed = 0
    mem.size = nbytes
    return mem


cdef object _memory_view(_ArenaMemory mem, size_t nbytes, object dtype):
    """The first ``nbytes`` of ``mem`` (committed beforehand) as an array of ``dtype`` that
    keeps ``mem`` alive."""
    cdef cnp.npy_intp n = <cnp.npy_intp>nbytes
    raw = cnp.PyArray_SimpleNewFromData(1, &n, cnp.NPY_UINT8, mem.base)
    cnp.set_array_base(raw, mem)
    out = raw.view(dtype)
    raw.flags.writeable = False     # no writeable way into the state from Python
    return out


cdef object _new_hash_table(size_t size):
    """A zeroed id hash of ``size`` entries: from a reservation of its own (huge pages,
    where the system gives them) from HASH_RESERVE_MIN entries, else a numpy array."""
    cdef _ArenaMemory mem
    if size >= HASH_RESERVE_MIN:
        mem = _reserve_memory(size * sizeof(uint32_t))
        if mem is not None and mem.commit(size * sizeof(uint32_t)):
            return _memory_view(mem, size * sizeof(uint32_t), np.uint32)
    return np.zeros(size, dtype=np.uint32)
