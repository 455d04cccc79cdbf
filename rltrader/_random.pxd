# cython: language_level=3
"""Per-stream random numbers for the kernels: xoshiro256** (Blackman & Vigna), 4 x uint64
of state per stream, seeded by the caller from ``numpy.random.SeedSequence`` (never all
zero). Inline, so that ``_flow`` and ``_env`` draw from the same generator without a call."""

from libc.stdint cimport int64_t, uint64_t


cdef inline uint64_t rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t next_u64(uint64_t* s) noexcept nogil:
    cdef uint64_t result = rotl(s[1] * 5, 7) * 9
    cdef uint64_t t = s[1] << 17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return result


cdef inline double uniform(uint64_t* s) noexcept nogil:
    """Uniform on the open interval (0, 1)."""
    return ((next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0)


cdef inline int64_t below(uint64_t* s, int64_t n) noexcept nogil:
    """Uniform integer in [0, n), n >= 1."""
    return <int64_t>(uniform(s) * n)
