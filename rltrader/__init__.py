"""rltrader: a compiled limit-order-book market simulator for multi-agent RL.

The package's folders are its layers (docs/layout.md): the compiled kernels at the root
(``_book``, ``_flow``, ``_env``, ``_itch``), then ``core`` (the vocabulary), ``data``
(readers and replay), ``sim`` (markets), ``envs``, ``analysis``, ``training`` and ``tools``.
``import rltrader as rl`` gives the core's names, and ``rl.Market``, ``rl.MarketConfig``,
``rl.preset``, ``rl.BatchedMarketEnv`` and ``rl.EnvConfig`` on first use.
"""

from typing import Any

from rltrader.core import *  # noqa: F403
from rltrader.core import __all__ as _core

__version__ = "0.1.0"

_LAZY = {
    "Market": "rltrader.sim", "MarketConfig": "rltrader.sim", "preset": "rltrader.sim",
    "load_config": "rltrader.sim",
    "BatchedMarketEnv": "rltrader.envs", "EnvConfig": "rltrader.envs",
}

__all__ = [*_core, *_LAZY]


def __getattr__(name: str) -> Any:
    """The sim and env names are imported on first use (``import rltrader`` stays light)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rltrader' has no attribute {name!r}")


def _register_envs() -> None:
    """``gymnasium.make("rltrader/Market-v1")`` works after ``import rltrader``; the env
    module itself loads only when an env is made."""
    from gymnasium.envs.registration import register, registry

    if "rltrader/Market-v1" not in registry:
        register(id="rltrader/Market-v1", entry_point="rltrader.envs.gym:MarketEnv")


_register_envs()
