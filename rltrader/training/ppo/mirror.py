"""Buy-sell mirror symmetry for the residual market maker (docs/training.md, "Round 11,
market making").

A market seen in a mirror (every buy a sell, every price reflected about the mid) is a
market too, and a market maker that is good on one is good on the other with its sides
swapped. :func:`observation_mirror` says how an observation row of the market-making mode
changes under the mirror, column by column (``rltrader.envs.config.observation_names``):

=====================================  ==========================================
column                                 in the mirrored market
=====================================  ==========================================
``bid_price_k``                        ``-ask_price_k`` (prices relative to mid)
``ask_price_k``                        ``-bid_price_k``
``bid_qty_k``, ``ask_qty_k``           swapped
``return_1``, ``return_lag``           negated (the mid moves the other way)
``flow_imbalance``, ``last_trade``     negated (buys are sells; trade - mid)
``inventory``                          negated (long is short)
``bought``, ``sold``                   swapped
``spread``, ``volatility``, ``volume``,  unchanged (no side, or sides summed)
``time_of_day``, ``pnl``, ``orders``,
``in_flight``, ``queue_ahead``,
``time_left``, ``log_size_class``,
``limited``
=====================================  ==========================================

(``queue_ahead`` is the queue of the own order nearest its touch, whichever side; the
mirror keeps the order and its queue. ``pnl`` is a value change: a mirrored fill at the
mirrored price changes value by the same amount.) The corrections mirror as
:data:`CORRECTION_MIRROR`: no_bid <-> no_ask, bid_back <-> ask_back, keep and no_quotes
fixed.

With ``FastPPOSettings(mirror=True)`` the policy is symmetric by construction
(:class:`MirroredEncoder`, :class:`MirroredHead`): the actor's logits are
``1/2 (f(o)[a] + f(mirror o)[mirror a])``, so ``p(a | o) = p(mirror a | mirror o)``, and
the critic is ``1/2 (v(o) + v(mirror o))``. The observation normaliser is kept symmetric
(:class:`MirroredMeanStd`: the statistics of the observations and their mirrors), so that
the mirror of a normalised row is the normalised mirrored row, exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rltrader.envs.config import observation_names
from rltrader.training.ppo.normalize import RunningMeanStd
from rltrader.training.ppo.residual import CORRECTIONS

#: the mirror of each correction, by index (no_bid <-> no_ask, bid_back <-> ask_back)
CORRECTION_MIRROR = tuple(
    CORRECTIONS.index(name.replace("bid", "@").replace("ask", "bid").replace("@", "ask"))
    for name in CORRECTIONS)
#: columns whose value changes sign under the mirror (besides the level prices)
_NEGATED = ("return_1", "return_lag", "flow_imbalance", "last_trade", "inventory")
#: columns swapped with another under the mirror (besides the levels)
_SWAPPED = (("bought", "sold"),)
#: columns the mirror leaves as they are
_FIXED = ("spread", "volatility", "volume", "time_of_day", "pnl", "orders", "in_flight",
          "queue_ahead", "time_left", "log_size_class", "limited")


def column_mirror(names: list[str]) -> tuple[list[int], list[float]]:
    """For observation columns ``names``: ``(source, sign)`` such that the mirrored row is
    ``row[source] * sign`` (module docstring). Refuses a column it does not know."""
    index = {name: j for j, name in enumerate(names)}
    source, sign = list(range(len(names))), [1.0] * len(names)
    for j, name in enumerate(names):
        side, _, rest = name.partition("_")
        if side in ("bid", "ask") and rest.split("_")[0] in ("price", "qty"):
            source[j] = index[("ask" if side == "bid" else "bid") + "_" + rest]
            sign[j] = -1.0 if rest.startswith("price") else 1.0
        elif name in _NEGATED:
            sign[j] = -1.0
        elif any(name in pair for pair in _SWAPPED):
            pair = next(p for p in _SWAPPED if name in p)
            source[j] = index[pair[1] if name == pair[0] else pair[0]]
        elif name not in _FIXED:
            raise ValueError(f"no mirror known for observation column {name!r}")
    return source, sign


def observation_mirror(env: Any) -> dict[str, list]:
    """The mirror of a market-making env's observations (``architecture["mirror"]``):
    ``{"source": ..., "sign": ..., "actions": CORRECTION_MIRROR}``."""
    lanes = getattr(env, "lanes", None)
    config = (lanes[0] if lanes else env).config
    if config.action_mode != "market_making":
        raise ValueError(f"the mirror maps market-making observations; this env's action "
                         f"mode is {config.action_mode!r}")
    names = observation_names(config.depth, config.action_mode)
    source, sign = column_mirror(names)
    return {"source": source, "sign": sign, "actions": list(CORRECTION_MIRROR)}


def mirror_rows(rows: torch.Tensor, mirror: dict[str, list]) -> torch.Tensor:
    """``rows`` ``(..., obs_dim)`` as seen in the mirror (a new tensor)."""
    source = torch.tensor(mirror["source"])
    sign = torch.tensor(mirror["sign"], dtype=rows.dtype)
    return rows[..., source] * sign


class MirroredEncoder(nn.Module):
    """``mlp`` on a row and on its mirror, side by side: ``(..., 2 x width)``."""

    def __init__(self, mlp: nn.Module, mirror: dict[str, list]) -> None:
        super().__init__()
        self.mlp = mlp
        self.register_buffer("source", torch.tensor(mirror["source"]), persistent=False)
        self.register_buffer("sign", torch.tensor(mirror["sign"]), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mlp(z), self.mlp(z[..., self.source] * self.sign)], -1)


class MirroredHead(nn.Module):
    """``linear`` on both halves of a :class:`MirroredEncoder`'s output, averaged, the
    mirror half's outputs permuted by ``outputs`` (the actions' mirror; ``None``: a
    value)."""

    def __init__(self, linear: nn.Linear, outputs: list[int] | None) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("outputs", None if outputs is None else torch.tensor(outputs),
                             persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        own, seen = features.chunk(2, -1)
        other = self.linear(seen)
        if self.outputs is not None:
            other = other[..., self.outputs]
        return 0.5 * (self.linear(own) + other)


class MirroredMeanStd(RunningMeanStd):
    """A :class:`RunningMeanStd` of the observations and their mirrors: after every
    merge the statistics are symmetrised, so ``normalize(mirror o) == mirror
    normalize(o)`` exactly (paired columns share mean and variance, negated ones have
    mean 0)."""

    def __init__(self, dim: int, mirror: dict[str, list]) -> None:
        super().__init__(dim)
        self.register_buffer("source", torch.tensor(mirror["source"]), persistent=False)
        self.register_buffer("sign", torch.tensor(mirror["sign"], dtype=torch.float64),
                             persistent=False)

    def merge(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        super().merge(mean, var, count)
        if count <= 0:
            return
        square = self.var + self.mean.square()          # E[x^2]
        mean = 0.5 * (self.mean + self.mean[self.source] * self.sign)
        square = 0.5 * (square + square[self.source])
        self.mean.copy_(mean)
        self.var.copy_((square - mean.square()).clamp_(min=0.0))
        self.refresh()


__all__ = ["CORRECTION_MIRROR", "MirroredEncoder", "MirroredHead", "MirroredMeanStd",
           "column_mirror", "mirror_rows", "observation_mirror"]
