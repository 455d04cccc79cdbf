"""ITCH prices to ticks: the parser divides each Price(4) by ``tick_size`` with a multiply
(a precomputed reciprocal) instead of a division. Every u32 price and tick size must give
what Python's integer division gives, and a price that is not a whole number of ticks must
still be refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rltrader._itch", reason="the compiled ITCH parser is not built")

from rltrader.data import itch  # noqa: E402

U32 = 0xFFFFFFFF
TICK_SIZES = st.one_of(
    st.sampled_from([1, 2, 3, 7, 100, 10_000, 65_537, 2**31 - 1, 2**31, U32 - 1, U32,
                     U32 + 1, 2**40]),
    st.integers(1, 2**34))
PRICES = st.one_of(st.sampled_from([0, 1, 99, 100, 101, U32 - 1, U32]), st.integers(0, U32))


def _add_record(ref: int, price: int) -> bytes:
    body = struct.pack(">cHH6sQcI8sI", b"A", 1, 0, (1).to_bytes(6, "big"), ref, b"B", 100,
                       b"SYNTH   ", price)
    return struct.pack(">H", len(body)) + body


def _parse(tmp_path, tick_size: int, prices: list[int]):
    path = tmp_path / "ticks.itch50"
    path.write_bytes(b"".join(_add_record(i + 1, p) for i, p in enumerate(prices))
                     + b"\x00\x00")
    return itch.read_messages(path, tick_size=tick_size).messages


@settings(max_examples=300, deadline=None)
@given(tick_size=TICK_SIZES, price=PRICES, multiple=st.booleans())
def test_ticks_equal_integer_division(tmp_path_factory, tick_size, price, multiple):
    if multiple:                        # a whole number of ticks that fits the u32 field
        price = (price // tick_size) * tick_size
    tmp_path = tmp_path_factory.mktemp("ticks")
    if price % tick_size == 0:
        assert _parse(tmp_path, tick_size, [price])["price"].tolist() == [price // tick_size]
    else:
        with pytest.raises(itch.ItchFormatError, match="tick_size"):
            _parse(tmp_path, tick_size, [price])


def test_every_multiple_of_a_tick_near_the_top_of_the_field(tmp_path):
    for tick_size in (3, 100, 65_537, U32 // 7):
        top = (U32 // tick_size) * tick_size
        prices = [top - k * tick_size for k in range(min(50, top // tick_size + 1))]
        assert _parse(tmp_path, tick_size, prices)["price"].tolist() == [
            p // tick_size for p in prices]
