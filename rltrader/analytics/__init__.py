"""Streaming analytics: bars, indicators, microstructure features and a book embedding,
computed once per event by one engine (:class:`FeatureEngine`) for every source (a
simulated market, the batched env, the exchange server, replays of real data), and
published live (:mod:`~rltrader.analytics.publish`, the dashboard) or written to Parquet
and CSV (:mod:`~rltrader.analytics.offline`). docs/analytics.md has the page."""

from rltrader.analytics.engine import (
    BAR_DTYPE,
    MD_CLEAR,
    MD_DELTA,
    MD_DTYPE,
    MD_LEVEL,
    MD_TRADE,
    SAMPLE_DTYPE,
    FeatureEngine,
    Update,
    interval_name,
    parse_interval,
)

__all__ = ["BAR_DTYPE", "MD_CLEAR", "MD_DELTA", "MD_DTYPE", "MD_LEVEL", "MD_TRADE",
           "SAMPLE_DTYPE", "FeatureEngine", "Update", "interval_name", "parse_interval"]
