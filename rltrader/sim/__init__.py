"""Simulated markets: books plus background trader populations, configured from TOML presets.

- :class:`~rltrader.sim.market.Market`: one core with its compiled populations; ``step``
  advances every book, ``recording`` (a property) holds what happened (docs/market.md).
- :mod:`rltrader.sim.config`: the typed configuration and the presets (``presets/*.toml``).
- :mod:`rltrader.sim.params`: that configuration in the compiled flow's per-step units, one
  dataclass per C struct.
- :mod:`rltrader.sim.record`, :mod:`rltrader.sim.market_data`: recordings as numpy arrays.
"""

from rltrader.sim.config import MarketConfig, RecordConfig, load_config, preset, preset_names
from rltrader.sim.market import Market

__all__ = ["Market", "MarketConfig", "RecordConfig", "load_config", "preset", "preset_names"]
