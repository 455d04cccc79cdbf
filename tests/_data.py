"""Where the shared market-data samples are: ``$RLTRADER_DATA/<name>``, else
``shared/data/<name>`` in a folder above the tests (CI has ``shared/`` beside the checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def data_dir(name: str, probe: str) -> Path:
    """The folder of sample set ``name`` (``"lobster"``, ``"itch50"``) that holds ``probe``;
    skips the calling test module when there is none."""
    env = os.environ.get("RLTRADER_DATA")
    here = Path(__file__).resolve()
    for candidate in (
        *([Path(env) / name] if env else []),
        *(p / "shared" / "data" / name for p in here.parents),
    ):
        if (candidate / probe).is_file():
            return candidate
    pytest.skip(f"{name} samples not found (set RLTRADER_DATA)", allow_module_level=True)
