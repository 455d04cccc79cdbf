"""Readers that turn recorded market data into the core's message array.

- :mod:`rltrader.data.lobster`: LOBSTER message and orderbook files (NASDAQ, L3 by order id).
- :mod:`rltrader.data.lobster_exact`: every orderbook row rebuilt exactly from both files.
- :mod:`rltrader.data.lobster_writer`: a simulated book's events as LOBSTER files.
- :mod:`rltrader.data.hybrid`: recorded flow and agent orders in the same queues
  (``docs/hybrid.md``).
- :mod:`rltrader.data.itch`: NASDAQ TotalView-ITCH 5.0 BinaryFILE files (plain, gzip, or a
  UDP pcap via :mod:`rltrader.data.pcap`), streamed in chunks; and a writer.
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
