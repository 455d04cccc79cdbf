"""MarketConfig and its TOML loader refuse what used to pass and fail later (or build the
wrong market): ``symbols = "ABC"`` (three books A, B, C), fractional ``copies``,
``dt_ns``, ``window`` and other integer fields; errors name the field and the TOML key."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rltrader.sim.config import MarketConfig, config_from_dict, load_config, preset, preset_names


def test_a_toml_string_of_symbols_is_refused(tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('symbols = "ABC"\n')
    with pytest.raises(ValueError, match=r"MarketConfig.symbols must be a list of names"):
        load_config(path)
    path.write_text('symbols = ["ABC"]\n')
    assert load_config(path).symbols == ("ABC",)


@pytest.mark.parametrize("symbols", ["ABC", (), ("A", "A"), ("A", 1), ("",)])
def test_symbols_must_be_distinct_names(symbols: Any) -> None:
    with pytest.raises(ValueError, match="MarketConfig.symbols must be"):
        MarketConfig(symbols=symbols)


@pytest.mark.parametrize(("field", "value"), [
    ("copies", 1.5), ("copies", 2.0), ("copies", True), ("dt_ns", 1.5),
    ("dt_ns", 100_000_000.0), ("window", 128.0), ("window", 128.5), ("extra_owners", 1.5),
    ("copies", float("nan"))])
def test_integer_fields_must_be_ints(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"MarketConfig.{field} must be an int"):
        MarketConfig(**{field: value})
    with pytest.raises(ValueError, match=rf"MarketConfig.{field} must be an int .*"
                                         rf"\(TOML key {field}\)"):
        config_from_dict({field: value})


@pytest.mark.parametrize(("table", "field", "value", "cls"), [
    ("noise", "count", 1.5, "NoiseConfig"), ("noise", "ring", 2.0, "NoiseConfig"),
    ("noise", "depth_max", True, "NoiseConfig"), ("value", "latency_ns", 0.5, "ValueConfig"),
    ("makers", "levels", 1.5, "MakerConfig"), ("makers", "requote_ticks", 1.0, "MakerConfig"),
    ("makers", "max_inventory", 1e6, "MakerConfig"),
    ("liquidity", "ring", 8.0, "LiquidityConfig"),
    ("splitters", "max_children", 1e5, "SplitterConfig"),
    ("record", "sample_every", 0.5, "RecordConfig")])
def test_nested_integer_fields_name_the_toml_key(table: str, field: str, value: Any,
                                                 cls: str) -> None:
    with pytest.raises(ValueError, match=rf"{cls}.{field} must be an int .*"
                                         rf"\(TOML key \[{table}\] {field}\)"):
        config_from_dict({table: {field: value}})


def test_parent_order_qty_must_be_an_int() -> None:
    with pytest.raises(ValueError, match=r"ParentOrderConfig.qty must be an int .*"
                                         r"\(TOML key \[parents\] qty\)"):
        config_from_dict({"parents": [{"qty": 2.5}]})
    with pytest.raises(ValueError, match=r"parents must be an array of tables"):
        config_from_dict({"parents": {"qty": 2}})


@pytest.mark.parametrize("value", ["x", None, True, float("nan")])
def test_float_fields_must_be_finite_numbers(value: Any) -> None:
    with pytest.raises(ValueError, match=r"NoiseConfig.rate_per_s must be"):
        config_from_dict({"noise": {"rate_per_s": value}})


def test_a_table_must_be_a_table() -> None:
    with pytest.raises(ValueError, match=r"\[noise\] must be a table"):
        config_from_dict({"noise": 3})


def test_ints_and_numpy_ints_still_build_and_presets_load() -> None:
    config = MarketConfig(copies=np.int64(2), dt_ns=np.int64(50_000_000), window=128,
                          symbols=["A", "B"])
    assert config.n_books == 4 and config.n_steps == 468_000
    for name in preset_names():
        preset(name)
