"""Where the real market-data samples are: ``$RLTRADER_DATA`` when set, then the package's
own samples (``rltrader/data/samples``: LOBSTER), then ``tests/data`` (ITCH, crypto). All of
them are in the repository, so a missing sample is an error, never a skip."""

from __future__ import annotations

from pathlib import Path

from rltrader.data.samples import sample_roots

TEST_DATA = Path(__file__).resolve().parent / "data"


def sample(name: str) -> Path:
    """The sample file ``name`` (relative: ``"itch50/..."``, ``"crypto/binance/..."``)."""
    roots = [*sample_roots(), TEST_DATA]
    for root in roots:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"sample {name} not found in " + ", ".join(map(str, roots)))


def data_dir(name: str, probe: str) -> Path:
    """The folder of sample set ``name`` (``"lobster"``, ``"itch50"``) that holds ``probe``."""
    return sample(f"{name}/{probe}").parent


def crypto_file(venue: str, name: str) -> Path:
    """``crypto/<venue>/<name>``."""
    return sample(f"crypto/{venue}/{name}")
