# ---------------------------------------------------------------------------------------
# Random orders: sorted keys (high bits a random or arrival time, low bits an index)
# ---------------------------------------------------------------------------------------

cdef inline void sort_keys(uint64_t* keys, uint64_t* tmp, int64_t n) noexcept nogil:
    """Sort ``keys[:n]`` ascending: insertion sort of runs of 16, then bottom-up merges
    through ``tmp`` (a key is unique: its low bits are its index)."""
    cdef int64_t i, j, lo, mid, hi, a, b, width, o
    cdef uint64_t x
    cdef uint64_t* src = keys
    cdef uint64_t* dst = tmp
    cdef uint64_t* swap
    lo = 0
    while lo < n:
        hi = lo + 16 if lo + 16 < n else n
        for i in range(lo + 1, hi):
            x = keys[i]
            j = i - 1
            while j >= lo and keys[j] > x:
                keys[j + 1] = keys[j]
                j -= 1
            keys[j + 1] = x
        lo = hi
    width = 16
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            a = lo
            b = mid
            o = lo
            while a < mid and b < hi:
                if src[a] < src[b]:
                    dst[o] = src[a]
                    a += 1
                else:
                    dst[o] = src[b]
                    b += 1
                o += 1
            while a < mid:
                dst[o] = src[a]
                a += 1
                o += 1
            while b < hi:
                dst[o] = src[b]
                b += 1
                o += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != keys:
        memcpy(keys, src, n * sizeof(uint64_t))


cdef inline void shuffle(uint64_t* keys, int64_t n, uint64_t* rng) noexcept nogil:
    """``keys[:n]`` = a uniformly random permutation of 0 .. n - 1: Fisher-Yates "inside
    out", two 32-bit draws per 64-bit number, each mapped to [0, j] by multiply-shift
    (n < 2^24: the bias is below 2^-8, about 1e-6 at 4,096)."""
    cdef int64_t j, g
    cdef uint64_t r = 0
    for j in range(n):
        if j & 1 == 0:
            r = next_u64(rng)
        g = <int64_t>((<uint64_t><uint32_t>(r >> (32 * (j & 1))) * <uint64_t>(j + 1)) >> 32)
        keys[j] = keys[g]
        keys[g] = <uint64_t>j
