"""Where the crypto feed samples live (``shared/data/crypto`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def crypto_file(venue: str, name: str) -> Path:
    """``shared/data/crypto/<venue>/<name>``, or skip the module when it is not there."""
    env = os.environ.get("RLTRADER_DATA")
    here = Path(__file__).resolve()
    for root in (*([Path(env)] if env else []), *(p / "shared" / "data" for p in here.parents)):
        candidate = root / "crypto" / venue / name
        if candidate.is_file():
            return candidate
    pytest.skip(f"crypto sample {venue}/{name} not found (set RLTRADER_DATA)",
                allow_module_level=True)
