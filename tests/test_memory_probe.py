"""The memory-latency probe behind ``benchmarks/env_scaling.py memory``: its chase must
visit every cache line of the working set once per lap, or it would measure a smaller
set than it names."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrader._probe import chase_cycle, memory_latency_ns


@settings(max_examples=50, deadline=None)
@given(n_lines=st.integers(2, 3000), seed=st.integers(0, 2**32))
def test_chase_is_one_cycle_through_every_line(n_lines: int, seed: int) -> None:
    chain = chase_cycle(n_lines, seed)
    assert chain.dtype == np.int64 and chain.shape == (8 * n_lines,)
    assert not chain.reshape(n_lines, 8)[:, 1:].any()      # one pointer per 64-byte line
    seen = np.zeros(n_lines, dtype=bool)
    p = 0
    for _ in range(n_lines):
        assert p % 8 == 0 and not seen[p // 8]
        seen[p // 8] = True
        p = int(chain[p])
    assert p == 0 and seen.all()


def test_chase_order_depends_on_the_seed() -> None:
    assert not np.array_equal(chase_cycle(64, 0), chase_cycle(64, 1))
    assert np.array_equal(chase_cycle(64, 5), chase_cycle(64, 5))


@pytest.mark.parametrize("nbytes", [128, 200, 64 * 1024])
def test_latency_is_a_positive_number_of_nanoseconds(nbytes: int) -> None:
    ns = memory_latency_ns(nbytes, loads=10_000)      # 200 bytes: 3 whole lines
    assert np.isfinite(ns) and ns > 0.0


@pytest.mark.parametrize(("nbytes", "loads", "match"), [
    (64, 10, "nbytes must be >= 128"),
    (-1, 10, "nbytes must be >= 128"),
    (4096, 0, "loads must be >= 1"),
])
def test_bad_sizes_are_refused(nbytes: int, loads: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        memory_latency_ns(nbytes, loads)


def test_chase_needs_two_lines() -> None:
    with pytest.raises(ValueError, match="n_lines must be >= 2"):
        chase_cycle(1)
