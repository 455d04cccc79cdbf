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
    cdef uint64_t home = h & mask, p = home
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
    c.table[p] = (<uint32_t>slot + 1) | (HASH_DISPLACED if p != (h & c.hash_mask) else 0)


cdef inline void hash_insert_hashed(Core* c, int32_t slot, uint64_t h) noexcept nogil:
    """Enter ``slot`` into the table; ``h`` is its ``id_hash``, kept in the order."""
    cdef uint64_t mask = c.hash_mask
    cdef uint32_t* table = c.table
    cdef uint64_t home = h & mask, p = home
    c.orders[slot].hash = <uint32_t>h      # the mask is < 2**32: the low bits suffice
    while table[p] != 0:
        p = (p + 1) & mask
    table[p] = (<uint32_t>slot + 1) | (HASH_DISPLACED if p != home else 0)


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
