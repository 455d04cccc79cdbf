"""Helpers shared by the crypto readers: exact decimal grids, and L2 levels held as one
synthetic order per level (property test against a plain dict model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader import BUY, MAX_QTY, SELL, Books  # noqa: E402
from rltrader.data._decimal import DecimalGrid, infer_step  # noqa: E402
from rltrader.data._levels import LEVEL_ID_BASE, LevelBook, check_replay, level_order_id  # noqa: E402


@pytest.mark.parametrize("step, text, units", [
    ("0.01", "6190.85000000", 619085), ("0.01", "6190", 619000), ("0.5", "6421.5", 12843),
    ("10", "18640", 1864), ("0.00000001", "1.6002045", 160020450), ("0.1", ".5", 5),
    ("0.001", "0", 0), ("2.5", "7.50", 3),
])
def test_units_exact(step, text, units):
    grid = DecimalGrid(step, "price", 1 << 40)
    assert grid.units(text) == units
    assert grid.units(text) == units  # cached


@pytest.mark.parametrize("step, text, match", [
    ("0.01", "6190.855", "price 6190.855 is not a multiple of 0.01"),
    ("0.5", "1.25", "not a multiple of 0.5"),
    ("0.01", "1e-5", "not a plain non-negative decimal"),
    ("0.01", "-1", "not a plain non-negative decimal"),
    ("0.01", ".", "not a plain non-negative decimal"),
    ("0.01", "", "not a plain non-negative decimal"),
    ("0.01", "12000000000", "above the core's limit"),
])
def test_units_errors(step, text, match):
    with pytest.raises(ValueError, match=match):
        DecimalGrid(step, "price", 1 << 40).units(text)


def test_zero_step_raises():
    with pytest.raises(ValueError, match="step must be positive"):
        DecimalGrid("0.000", "size", MAX_QTY)


@given(st.integers(0, 10**15), st.sampled_from(["0.01", "0.5", "10", "0.00000001", "1"]))
def test_text_round_trips(units, step):
    grid = DecimalGrid(step, "size", 10**20)
    assert grid.units(grid.text(units)) == units


@pytest.mark.parametrize("values, step", [
    (["6190.85", "6190.80"], "0.05"), (["61800.20", "61799.90", "0.000"], "0.1"),
    (["18640", "1190", "1080"], "10"), (["0.00000000"], "1"), (["1.5", "2"], "0.5"),
    (["3.78826000", "0.00105"], "0.00007"),  # the coarsest exact grid, not the venue's lot
])
def test_infer_step(values, step):
    assert infer_step(values) == step


def test_level_ids_are_above_the_base_and_distinct_per_side():
    assert level_order_id(BUY, 5) == LEVEL_ID_BASE + 10
    assert level_order_id(SELL, 5) == LEVEL_ID_BASE + 11


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(1, 12),
                                   st.integers(0, 4)), max_size=6), max_size=25))
def test_level_book_matches_a_dict_model(events):
    """Random uncrossed events: after each, the core's levels equal the dict model."""
    levels = LevelBook()
    model: dict[int, dict[int, int]] = {BUY: {}, SELL: {}}
    books = Books(1, window=64)
    done = 0
    for k, raw in enumerate(events):
        # bids at prices 1..12, asks at 13..24: never crossed
        changes = [(side, price + (12 if side == SELL else 0), lots) for side, price, lots in raw]
        levels.update(changes, k, k)
        for side, price, lots in changes:
            if lots:
                model[side][price] = lots
            else:
                model[side].pop(price, None)
        msgs, tags = levels.to_array()
        events_out = books.process_all(msgs[done:])
        check_replay(events_out, tags[done:])
        done = msgs.shape[0]
        books.check_integrity()
        prices, qtys, counts = books.top_levels(12)
        for si, side in enumerate((BUY, SELL)):
            want = sorted(model[side].items(), reverse=side == BUY)
            got = [(p, q) for p, q in zip(prices[0, si].tolist(), qtys[0, si].tolist(),
                                          strict=True) if q]
            assert got == want
            assert set(counts[0, si][qtys[0, si] > 0].tolist()) <= {1}
    assert books.live_orders(0) == len(model[BUY]) + len(model[SELL])


def test_check_replay_names_the_crossing_message():
    levels = LevelBook()
    levels.update([(SELL, 10, 1)], 0, 7)
    levels.update([(BUY, 10, 1)], 0, 8)  # crosses the ask
    msgs, tags = levels.to_array()
    events = Books(1).process_all(msgs)
    with pytest.raises(ValueError, match="message tagged 8: the core traded"):
        check_replay(events, tags)
    check_replay(events, tags, allow_trades=True)
    assert np.array_equal(tags, [7, 8])
