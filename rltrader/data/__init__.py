"""Readers that turn recorded market data into the core's message array.

- :mod:`rltrader.data.lobster`: LOBSTER message and orderbook files (NASDAQ, L3 by order id).
- :mod:`rltrader.data.lobster_exact`: every orderbook row rebuilt exactly from both files.
- :mod:`rltrader.data.lobster_writer`: a simulated book's events as LOBSTER files.
- :mod:`rltrader.data.hybrid`: recorded flow and agent orders in the same queues
  (``docs/hybrid.md``).
- :mod:`rltrader.data.itch`: NASDAQ TotalView-ITCH 5.0 BinaryFILE files (plain, gzip, or a
  UDP pcap via :mod:`rltrader.data.pcap`), streamed in chunks; and a writer.
- :mod:`rltrader.data.coinbase`: Coinbase level-3 snapshot + ``full`` channel (L3 by order id).
- :mod:`rltrader.data.binance`: Binance depth snapshot + diff stream (L2), trades, book tickers.
- :mod:`rltrader.data.tardis`: tardis.dev ``incremental_book_L2``, ``book_snapshot_N`` and
  ``quotes`` CSV files (L2).
- :mod:`rltrader.data.generic`: any venue's L3 order events or L2 level updates from CSV or
  Parquet, described by a column mapping (``docs/generic.md``).

The crypto readers are imported as modules (``from rltrader.data import coinbase``); each has
a ``read_feed`` function. Their L2 books hold one synthetic order per price level
(:mod:`rltrader.data._levels`).
"""

from rltrader.data.lobster import (
    RAW_DTYPE,
    SNAPSHOT_ID_BASE,
    LobsterDepth,
    LobsterMessages,
    read_messages,
    read_orderbook,
    read_raw,
    replay_depth,
    to_messages,
)

__all__ = [
    "RAW_DTYPE",
    "SNAPSHOT_ID_BASE",
    "LobsterDepth",
    "LobsterMessages",
    "read_messages",
    "read_orderbook",
    "read_raw",
    "replay_depth",
    "to_messages",
]
