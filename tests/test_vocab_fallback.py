"""The test helpers' fallback copies of the core's enums and dtypes (used when the core is
not built) are the core's own: same names, same values."""

from __future__ import annotations

import builtins
import importlib.util
import pathlib

import pytest

import rltrader
from rltrader.core import constants, messages

VOCAB = pathlib.Path(__file__).resolve().parent / "_vocab.py"


@pytest.fixture(scope="module")
def fallback():
    """``_vocab`` loaded as if ``rltrader.core.constants`` could not be imported."""
    real_import = builtins.__import__

    def no_core(name, *args, **kwargs):
        if name == "rltrader.core.constants":
            raise ImportError("simulated: the core is not built")
        return real_import(name, *args, **kwargs)

    spec = importlib.util.spec_from_file_location("_vocab_fallback", VOCAB)
    module = importlib.util.module_from_spec(spec)
    builtins.__import__ = no_core
    try:
        spec.loader.exec_module(module)
    finally:
        builtins.__import__ = real_import
    assert module.CORE_CONSTANTS is False
    return module


@pytest.mark.parametrize("family", ["Side", "Op", "TimeInForce", "SelfTradePrevention",
                                    "EventKind", "Reason"])
def test_enum_copies_match_the_core(fallback, family: str) -> None:
    copy = {m.name: int(m) for m in getattr(fallback, family)}
    core = {m.name: int(m) for m in getattr(constants, family)}
    assert copy == core


def test_limit_copies_match_the_core(fallback) -> None:
    for member in fallback.Limits:
        assert int(member) == int(getattr(rltrader._book.Limits, member.name))


def test_dtypes_are_the_core_modules(fallback) -> None:
    for name in ("MESSAGE_DTYPE", "EVENT_DTYPE", "ACCOUNT_DTYPE", "QUEUE_DTYPE"):
        assert getattr(fallback, name) == getattr(messages, name)
