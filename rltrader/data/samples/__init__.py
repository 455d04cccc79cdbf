"""Real market-data samples shipped with the package, and where to find a sample file.

This folder holds the LOBSTER AAPL 2012-06-21 files that the demo, ``rltrader bench`` and
the tests use (``lobster/README.md``: provenance, licence, checks), and the Binance BTCUSDT
perpetual and spot records of the same 345 s (2024-08-08) that the portfolio experiment
replays and the tests, benchmarks and multi-venue replays read
(``crypto/binance/README.md``). Other samples live under the test tree
(``tests/data``). ``$RLTRADER_DATA`` overrides both: a file found there, in
the same sub-folder layout (``lobster/``, ``itch50/``, ``crypto/...``), is used first.
"""

from __future__ import annotations

import os
from pathlib import Path

from rltrader.core.constants import PathLike

#: The folder of the packaged samples.
PACKAGED = Path(__file__).resolve().parent

#: The LOBSTER AAPL 2012-06-21 files (paths relative to a samples folder).
AAPL_HOUR = "lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv.gz"
AAPL_PAIR_MESSAGE = "lobster/AAPL_2012-06-21_34200000_57600000_message_10_first999.csv"
AAPL_PAIR_ORDERBOOK = "lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10_first999.csv"

#: The Binance BTCUSDT records of 2024-08-08 (raw websocket captures, about 345 s each).
BINANCE_USDM = "crypto/binance/hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz"
BINANCE_SPOT = "crypto/binance/hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz"


def sample_roots(explicit: PathLike | None = None) -> list[Path]:
    """Where samples are looked for, in order: ``explicit``, ``$RLTRADER_DATA``, the package."""
    roots = [Path(explicit)] if explicit is not None else []
    env = os.environ.get("RLTRADER_DATA")
    if env:
        roots.append(Path(env))
    return [*roots, PACKAGED]


def sample_path(name: str, root: PathLike | None = None) -> Path:
    """The sample file ``name`` (relative, e.g. :data:`AAPL_HOUR`) from the first of
    :func:`sample_roots` that holds it; ``FileNotFoundError`` names every place tried."""
    tried = sample_roots(root)
    for folder in tried:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"sample {name} not found in " + ", ".join(map(str, tried)))
