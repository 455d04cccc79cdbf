"""Typed configuration of a simulated market, with validation and TOML loading.

A market is ``len(symbols)`` symbols x ``copies`` independent copies of each: ``n_books =
len(symbols) * copies`` books in one core, book ``symbol * copies + copy``. Every book runs
the same background populations (its own instances of them, with its own random stream).

Units: prices and price distances in ticks, sizes in lots, times in seconds after the open
(``*_s``) or nanoseconds (``*_ns``), rates per trader per second. Every field is checked when
the dataclass is built; a bad value raises ``ValueError`` naming ``Class.field``.

Presets live in ``rltrader/sim/presets/*.toml`` (:func:`preset`); :func:`load_config` reads any
TOML file with the same layout (a table per population, ``[[parents]]`` for parent orders).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rltrader.core.checks import is_int
from rltrader.core.constants import NS_PER_S

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



def _fail(obj: object, name: str, rule: str, value: object) -> None:
    raise ValueError(f"{type(obj).__name__}.{name} must be {rule}, got {value!r}")


def _real(obj: object, name: str) -> float:
    """The field's value, which must be a finite real number (an int or a float; not a
    bool, a string or NaN)."""
    value = getattr(obj, name)
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(
            value):
        _fail(obj, name, "a finite number", value)
    return value


def _at_least(obj: object, name: str, low: float, *, strict: bool = False) -> None:
    value = _real(obj, name)
    if value <= low if strict else value < low:
        _fail(obj, name, f"{'>' if strict else '>='} {low}", value)


def _int_at_least(obj: object, name: str, low: int) -> None:
    """An integer field: an int (or numpy integer) >= ``low``; floats, even whole ones, and
    bools are refused."""
    value = getattr(obj, name)
    if not is_int(value) or value < low:
        _fail(obj, name, f"an int >= {low}", value)


def _share(obj: object, name: str) -> None:
    value = _real(obj, name)
    if not 0.0 <= value <= 1.0:
        _fail(obj, name, "in [0, 1]", value)


@dataclass(frozen=True)
class OrderSize:
    """Heavy-tailed order sizes: ``floor(size_class * min_lots * U^(-1/alpha))`` lots,
    capped at ``max_lots`` (a discrete Pareto; smaller ``alpha``, heavier tail)."""

    min_lots: float = 1.0
    alpha: float = 1.5
    max_lots: float = 1000.0

    def __post_init__(self) -> None:
        _at_least(self, "min_lots", 1.0)
        _at_least(self, "alpha", 0.0, strict=True)
        _at_least(self, "max_lots", self.min_lots)


@dataclass(frozen=True)
class Population:
    """What every population has: ``count`` traders per book, each waking at
    ``rate_per_s`` (Poisson), whose orders reach the book ``latency_ns`` after the decision
    (rounded up to whole steps)."""

    count: int = 0
    rate_per_s: float = 0.0
    latency_ns: int = 0

    def __post_init__(self) -> None:
        _int_at_least(self, "count", 0)
        _at_least(self, "rate_per_s", 0)
        _int_at_least(self, "latency_ns", 0)


@dataclass(frozen=True)
class NoiseConfig(Population):
    """Zero-intelligence traders: each wake-up sends a market order (``p_market``), cancels
    one of its resting orders (``p_cancel``) or places a limit order ``d`` ticks behind its
    side's touch, ``P(d >= k) = (k + 1)^-depth_alpha``, capped at ``depth_max``. A trader
    keeps at most ``ring`` resting orders (the oldest is cancelled to make room)."""

    p_market: float = 0.1
    p_cancel: float = 0.2
    ring: int = 4
    depth_alpha: float = 1.0
    depth_max: int = 100
    size: OrderSize = field(default_factory=OrderSize)

    def __post_init__(self) -> None:
        super().__post_init__()
        _int_at_least(self, "depth_max", 0)
        _share(self, "p_market")
        _share(self, "p_cancel")
        if self.p_market + self.p_cancel > 1.0:
            _fail(self, "p_cancel", "<= 1 - p_market", self.p_cancel)
        _int_at_least(self, "ring", 1)
        _at_least(self, "depth_alpha", 0.0, strict=True)


@dataclass(frozen=True)
class ValueConfig(Population):
    """Fundamental traders: each wake-up cancels its order, looks at the latent value with
    noise ``obs_sd`` (ticks), takes the touch when the value is beyond it by ``threshold``
    ticks, and otherwise rests a limit order ``passive_offset`` ticks from its estimate."""

    obs_sd: float = 10.0
    threshold: float = 5.0
    passive_offset: float = 2.0
    size: OrderSize = field(default_factory=OrderSize)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("obs_sd", "threshold", "passive_offset"):
            _at_least(self, name, 0)


@dataclass(frozen=True)
class MomentumConfig(Population):
    """Trend followers: exponential averages of the mid over ``short_s`` and ``long_s``
    seconds; a wake-up sends a marketable IOC limit in the trend's direction when they
    differ by more than ``threshold`` ticks."""

    short_s: float = 20.0
    long_s: float = 50.0
    threshold: float = 1.0
    size: OrderSize = field(default_factory=OrderSize)

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "threshold", 0)
        _at_least(self, "short_s", 0.0, strict=True)
        _at_least(self, "long_s", self.short_s)


@dataclass(frozen=True)
class MakerConfig(Population):
    """Market makers: a re-quote cancels the old quotes and places ``levels`` per side,
    ``half_spread + i * spacing`` ticks around ``mid - skew * position`` (skewed against the
    inventory), one side only when ``|position| >= max_inventory``. Re-quotes happen at
    ``rate_per_s`` and whenever the mid moved ``requote_ticks`` (0: never) since the last."""

    levels: int = 1
    spacing: int = 1
    half_spread: float = 1.0
    qty: float = 10.0
    skew: float = 0.0
    max_inventory: int = 1_000_000
    requote_ticks: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("half_spread", "skew"):
            _at_least(self, name, 0)
        _int_at_least(self, "requote_ticks", 0)
        for name in ("levels", "spacing", "max_inventory"):
            _int_at_least(self, name, 1)
        _at_least(self, "qty", 1)


@dataclass(frozen=True)
class LiquidityConfig(Population):
    """Latent liquidity providers: each wake-up places a limit order ``x`` ticks on its
    side of an anchor, ``x = depth * sqrt(U)`` (density ``2x / depth^2`` on [0, depth]), and
    cancels its oldest when it holds ``ring``. The resting book then grows linearly away
    from the anchor, the locally linear latent book behind the square-root impact law
    (Toth et al. 2011); an order beyond the opposite touch trades at once. The anchor is
    ``(1 - price_weight) * fundamental + price_weight * EMA(mid)`` over ``anchor_s`` seconds:
    prices pushed away are pulled back, slowly when the weight is large."""

    depth: float = 50.0
    price_weight: float = 0.0
    anchor_s: float = 1800.0
    ring: int = 8
    size: OrderSize = field(default_factory=OrderSize)

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "depth", 0.0, strict=True)
        _share(self, "price_weight")
        _at_least(self, "anchor_s", 0.0, strict=True)
        _int_at_least(self, "ring", 1)


@dataclass(frozen=True)
class SplitterConfig(Population):
    """Order splitting: each trader works a metaorder of ``n`` child market orders, one
    per wake-up, ``P(n >= k) = k^-alpha`` (capped at ``max_children``), then starts the next
    on a random side. Its order signs then have an ACF decaying as ``lag^-(alpha - 1)``
    (Lillo, Mike, Farmer 2005). ``size`` is the child order size."""

    alpha: float = 1.5
    max_children: int = 100_000
    size: OrderSize = field(default_factory=OrderSize)

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "alpha", 0.0, strict=True)
        _int_at_least(self, "max_children", 1)


@dataclass(frozen=True)
class FundamentalConfig:
    """Latent value per book: ``dv = kappa (r_bar - v) dt + sigma dW`` plus jumps at
    ``jump_rate_per_s`` of size ``+-(jump_mean + jump_sd N(0, 1))`` ticks. ``r_bar`` is in
    ticks; ``sigma`` in ticks per sqrt(second). ``correlation``: of the diffusion shocks of
    the symbols of one copy (a common factor with weight ``sqrt(correlation)``; the
    market's symbols then move together, as a sector's stocks do)."""

    r_bar: float = 100_000.0
    kappa_per_s: float = 0.0
    sigma: float = 0.0
    jump_rate_per_s: float = 0.0
    jump_mean: float = 0.0
    jump_sd: float = 0.0
    correlation: float = 0.0

    def __post_init__(self) -> None:
        _at_least(self, "r_bar", 1.0)
        for name in ("kappa_per_s", "sigma", "jump_rate_per_s", "jump_mean", "jump_sd",
                     "correlation"):
            _at_least(self, name, 0)
        if self.correlation > 1:
            _fail(self, "correlation", "in [0, 1]", self.correlation)


@dataclass(frozen=True)
class ParentOrderConfig:
    """One execution agent working a parent order of ``qty`` lots from ``start_s`` to
    ``end_s`` (seconds after the open) with market child orders every ``interval_s``:
    ``twap`` sends the time-proportional quantity, ``pov`` keeps its volume at
    ``participation`` of the book's volume since the start (its own included)."""

    side: str = "buy"
    qty: int = 100
    start_s: float = 0.0
    end_s: float = 60.0
    strategy: str = "twap"
    participation: float = 0.1
    interval_s: float = 1.0
    latency_ns: int = 0

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            _fail(self, "side", "'buy' or 'sell'", self.side)
        if self.strategy not in ("twap", "pov"):
            _fail(self, "strategy", "'twap' or 'pov'", self.strategy)
        _int_at_least(self, "qty", 1)
        _at_least(self, "start_s", 0)
        _at_least(self, "end_s", self.start_s, strict=True)
        _at_least(self, "interval_s", 0.0, strict=True)
        _int_at_least(self, "latency_ns", 0)
        _share(self, "participation")


@dataclass(frozen=True)
class SizeClassConfig:
    """Each trader's order sizes are scaled by its size class ``min(max, U^(-1/alpha))``
    (Pareto, drawn once per trader and book); ``alpha = 0`` gives everyone 1."""

    alpha: float = 0.0
    max: float = 100.0

    def __post_init__(self) -> None:
        _at_least(self, "alpha", 0)
        _at_least(self, "max", 1.0)


@dataclass(frozen=True)
class RecordConfig:
    """What :class:`rltrader.sim.market.Market` keeps: every message and event (``messages``)
    and the top of book of every book every ``sample_every`` steps (0: none)."""

    messages: bool = False
    sample_every: int = 0

    def __post_init__(self) -> None:
        _int_at_least(self, "sample_every", 0)


@dataclass(frozen=True)
class MarketConfig:
    """A market day: ``symbols`` x ``copies`` books, ``open``-``close`` (``HH:MM[:SS]``) in
    steps of ``dt_ns``, prices in ticks of ``tick_size`` dollars, and the populations.
    With ``warmup_s`` the populations trade that long before the open (a pre-open session,
    its messages stamped before the open, nothing sampled), so the day opens on a filled
    book instead of an empty one."""

    name: str = "market"
    symbols: tuple[str, ...] = ("ABM",)
    copies: int = 1
    open: str = "09:30"
    close: str = "16:00"
    dt_ns: int = 100_000_000
    tick_size: float = 0.01
    window: int = 4096
    extra_owners: int = 0
    warmup_s: float = 0.0
    fundamental: FundamentalConfig = field(default_factory=FundamentalConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    momentum: MomentumConfig = field(default_factory=MomentumConfig)
    makers: MakerConfig = field(default_factory=MakerConfig)
    liquidity: LiquidityConfig = field(default_factory=LiquidityConfig)
    splitters: SplitterConfig = field(default_factory=SplitterConfig)
    parents: tuple[ParentOrderConfig, ...] = ()
    size_class: SizeClassConfig = field(default_factory=SizeClassConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self) -> None:
        # a string is not a list of names: tuple("ABC") would be three books A, B, C
        if (not isinstance(self.symbols, (tuple, list)) or not self.symbols
                or not all(isinstance(s, str) and s for s in self.symbols)
                or len(set(self.symbols)) != len(self.symbols)):
            _fail(self, "symbols", "a non-empty list of distinct names (strings)",
                  self.symbols)
        _int_at_least(self, "copies", 1)
        _int_at_least(self, "dt_ns", 1)
        _at_least(self, "tick_size", 0.0, strict=True)
        _int_at_least(self, "extra_owners", 0)
        _at_least(self, "warmup_s", 0)
        _int_at_least(self, "window", 64)
        if self.open_ns < self.warmup_steps * self.dt_ns:
            _fail(self, "warmup_s", "at most the time from midnight to the open", self.warmup_s)
        if self.window < 64 or self.window % 64:
            _fail(self, "window", "a positive multiple of 64", self.window)
        if self.close_ns <= self.open_ns:
            _fail(self, "close", f"after open ({self.open})", self.close)
        for parent in self.parents:
            if parent.end_s > (self.close_ns - self.open_ns) / NS_PER_S:
                _fail(self, "parents", "orders that end by the close", parent)
        dt_s = self.dt_ns / NS_PER_S
        for name in ("noise", "value", "momentum", "makers", "liquidity", "splitters"):
            if getattr(self, name).rate_per_s * dt_s > 1.0:
                _fail(self, f"{name}.rate_per_s", f"<= 1 / dt ({1 / dt_s:g} per s)",
                      getattr(self, name).rate_per_s)

    @property
    def open_ns(self) -> int:
        """The open, ns after midnight."""
        return _clock_ns(self, "open")

    @property
    def close_ns(self) -> int:
        return _clock_ns(self, "close")

    @property
    def n_steps(self) -> int:
        """Steps in the day (``ceil((close - open) / dt_ns)``)."""
        return -(-(self.close_ns - self.open_ns) // self.dt_ns)

    @property
    def warmup_steps(self) -> int:
        """Steps before the open (``warmup_s`` rounded to whole steps)."""
        return int(round(self.warmup_s * NS_PER_S / self.dt_ns))

    @property
    def n_books(self) -> int:
        return len(self.symbols) * self.copies

    def replace(self, **changes: Any) -> MarketConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _clock_ns(config: MarketConfig, name: str) -> int:
    text = getattr(config, name)
    parts = text.split(":") if isinstance(text, str) else []
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        h, m, s = (int(p) for p in (parts + ["0"])[:3])
        if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
            raise ValueError
    except ValueError:
        _fail(config, name, "a time HH:MM or HH:MM:SS", text)
    return ((h * 60 + m) * 60 + s) * NS_PER_S


_NESTED: dict[type, dict[str, type]] = {
    NoiseConfig: {"size": OrderSize},
    ValueConfig: {"size": OrderSize},
    MomentumConfig: {"size": OrderSize},
    LiquidityConfig: {"size": OrderSize},
    SplitterConfig: {"size": OrderSize},
    MarketConfig: {"fundamental": FundamentalConfig, "noise": NoiseConfig,
                   "value": ValueConfig, "momentum": MomentumConfig, "makers": MakerConfig,
                   "liquidity": LiquidityConfig, "splitters": SplitterConfig,
                   "size_class": SizeClassConfig, "record": RecordConfig},
}


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"[{where}] must be a table of {cls.__name__} fields, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in [{where}] ({cls.__name__} has "
                         f"{sorted(names)})")
    values = dict(data)
    for name, sub in _NESTED.get(cls, {}).items():
        if name in values:
            values[name] = _build(sub, values[name], f"{where}.{name}".lstrip("."))
    if cls is MarketConfig:
        if "symbols" in values:
            if not isinstance(values["symbols"], list):
                raise ValueError(f"MarketConfig.symbols must be a list of names "
                                 f"(symbols = [\"ABC\"]), got {values['symbols']!r} "
                                 "(TOML key symbols)")
            values["symbols"] = tuple(values["symbols"])
        parents = values.get("parents", ())
        if not isinstance(parents, list | tuple):
            raise ValueError("parents must be an array of tables ([[parents]]), got "
                             f"{parents!r}")
        values["parents"] = tuple(_build(ParentOrderConfig, p, "parents") for p in parents)
    try:
        return cls(**values)
    except ValueError as error:     # name the TOML key too: [noise] count, ...
        key = str(error).split(" ", 1)[0].split(".", 1)[-1]
        table = f"[{where}] " if where else ""
        raise ValueError(f"{error} (TOML key {table}{key})") from None


def config_from_dict(data: dict[str, Any]) -> MarketConfig:
    """Build a :class:`MarketConfig` from nested dicts (the TOML layout)."""
    return _build(MarketConfig, data, "")


def load_config(path: str | Path) -> MarketConfig:
    """Read a market configuration from a TOML file."""
    with open(path, "rb") as f:
        return config_from_dict(tomllib.load(f))


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    folder = resources.files("rltrader.sim") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset(name: str) -> MarketConfig:
    """A shipped preset (``rmsc04``, ``small`` ...)."""
    if name not in preset_names():
        raise ValueError(f"unknown preset {name!r}; choose from {preset_names()}")
    text = (resources.files("rltrader.sim") / "presets" / f"{name}.toml").read_text()
    return config_from_dict(tomllib.loads(text))
