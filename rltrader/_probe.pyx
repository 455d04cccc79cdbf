# cython: language_level=3
"""A probe of the machine, not of the book: the latency of a dependent load against the
size of the working set. Where it jumps, the caches end; many-book env steps whose data
outgrows that size slow down (docs/envs.md, "Performance"). ``rltrader bench`` prints it
with its results and ``benchmarks/env_scaling.py memory`` prints a finer table."""

import numpy as np

from libc.stdint cimport int64_t, uint64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

LINE = 64                   # bytes per cache line
PER_LINE = LINE // 8        # int64 entries per line


def chase_cycle(int64_t n_lines, uint64_t seed=0):
    """A random cyclic order of ``n_lines`` cache lines: an int64 array ``next`` with
    ``PER_LINE`` entries (one 64-byte line) per line, where ``next[PER_LINE * k]`` is the
    index of the first entry of the line visited after line ``k`` (the other entries are
    0). Following it from any line visits every line once before coming back (one cycle,
    no shorter loop), in an order the hardware prefetcher cannot predict."""
    if n_lines < 2:
        raise ValueError(f"n_lines must be >= 2, got {n_lines}")
    order = np.random.default_rng(seed).permutation(n_lines)
    chain = np.zeros(PER_LINE * n_lines, dtype=np.int64)
    chain[PER_LINE * order] = PER_LINE * np.roll(order, -1)
    return chain


cdef double chase_ns(const int64_t* chain, int64_t* p, int64_t loads) noexcept nogil:
    """Follow ``chain`` ``loads`` times from ``p[0]``, leaving the index reached in ``p[0]``;
    the nanoseconds it took (the clock is read in C, right around the loop)."""
    cdef timespec t0, t1
    cdef int64_t i, q = p[0]
    clock_gettime(CLOCK_MONOTONIC, &t0)
    for i in range(loads):
        q = chain[q]
    clock_gettime(CLOCK_MONOTONIC, &t1)
    p[0] = q
    return (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)


def memory_latency_ns(int64_t nbytes, int64_t loads=2_000_000, uint64_t seed=0):
    """Nanoseconds per load when each load's address depends on the one before: a pointer
    chase through ``chase_cycle`` over ``nbytes`` (rounded down to whole 64-byte lines),
    after one untimed lap that brings the set into the caches and the TLB. The latency of
    the cache level, or of main memory, that a working set of that size lives in."""
    if nbytes < 2 * LINE:
        raise ValueError(f"nbytes must be >= {2 * LINE} (two 64-byte lines), got {nbytes}")
    if loads < 1:
        raise ValueError(f"loads must be >= 1, got {loads}")
    cdef int64_t n_lines = nbytes // LINE, p = 0
    cdef int64_t[::1] chain = chase_cycle(n_lines, seed)
    cdef double ns
    with nogil:
        chase_ns(&chain[0], &p, n_lines)
        ns = chase_ns(&chain[0], &p, loads)
    # Reading where the chase ended keeps the compiler from dropping it; a chase only ever
    # visits line starts.
    if p % PER_LINE:
        raise AssertionError(f"the chase left the line starts at entry {p}")
    return ns / loads
