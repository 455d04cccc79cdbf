"""Exchange accounts: who may trade, with what keys and balances (``--accounts FILE``).

The file is TOML::

    [[accounts]]
    name = "alice"
    api_key = "alice-key"        # sent as X-MBX-APIKEY
    secret = "alice-secret"      # signs requests (HMAC-SHA256)
    [accounts.balances]
    USDT = "100000"
    ABM = "500"

Balances are decimal strings in asset units, stored exactly as integers: a base asset in
lots of its symbol, the quote asset in core cash units (tick x lot). A balance that is not
a whole number of those units is refused, as are duplicate names or keys, unknown assets
and secrets shorter than 8 characters.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import tomllib

from rltrader.exchange.symbols import SymbolSpec


@dataclass
class Account:
    """One trader: its core owner number, keys and starting balances (asset -> units)."""

    name: str
    api_key: str
    secret: str
    owner: int = -1
    balances: dict[str, int] = field(default_factory=dict)

    def signature(self, payload: str) -> str:
        return hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    def signed_by(self, payload: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(payload), signature.lower())


def asset_units(symbols: list[SymbolSpec]) -> dict[str, Decimal]:
    """Each asset's unit: a base asset's lot, the quote asset's tick x lot (one for all
    symbols: they must agree on it)."""
    units: dict[str, Decimal] = {}
    for s in symbols:
        for asset, unit in ((s.base, s.lot_size), (s.quote, s.cash_unit)):
            if units.setdefault(asset, unit) != unit:
                raise ValueError(f"asset {asset} has two units ({units[asset]} and {unit}): "
                                 "symbols that share an asset must share its tick x lot")
    return units


def parse_accounts(data: dict[str, Any], symbols: list[SymbolSpec],
                   where: str = "accounts") -> list[Account]:
    units = asset_units(symbols)
    rows = data.get("accounts")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: needs at least one [[accounts]] table")
    out: list[Account] = []
    for k, row in enumerate(rows):
        at = f"{where}: accounts[{k}]"
        if not isinstance(row, dict):
            raise ValueError(f"{at}: not a table")
        extra = set(row) - {"name", "api_key", "secret", "balances"}
        if extra:
            raise ValueError(f"{at}: unknown keys {sorted(extra)}")
        for key in ("name", "api_key", "secret"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise ValueError(f"{at}: {key} must be a non-empty string")
            if not row[key].isprintable() or any(c.isspace() for c in row[key]):
                raise ValueError(f"{at}: {key} must be printable, without spaces")
        if len(row["secret"]) < 8:
            raise ValueError(f"{at}: secret must have at least 8 characters")
        balances: dict[str, int] = {}
        if not isinstance(row.get("balances", {}), dict):
            raise ValueError(f"{at}: balances must be a table of asset = \"amount\"")
        for asset, text in row.get("balances", {}).items():
            if asset not in units:
                raise ValueError(f"{at}: unknown asset {asset!r} (known: {sorted(units)})")
            try:
                value = Decimal(str(text))
            except InvalidOperation:
                value = Decimal("NaN")
            n = value / units[asset] if value.is_finite() else value
            if not value.is_finite() or value < 0 or n != n.to_integral_value():
                raise ValueError(f"{at}: balance {asset} = {text!r} is not a non-negative "
                                 f"multiple of {units[asset]}")
            if n >= 2**62:
                raise ValueError(f"{at}: balance {asset} = {text!r} is too large")
            balances[asset] = int(n)
        out.append(Account(row["name"], row["api_key"], row["secret"], balances=balances))
    for attr in ("name", "api_key"):
        seen = [getattr(a, attr) for a in out]
        if len(set(seen)) != len(seen):
            raise ValueError(f"{where}: two accounts share a {attr}")
    return out


def load_accounts(path: str | Path, symbols: list[SymbolSpec]) -> list[Account]:
    """The accounts of a TOML file (see the module docstring)."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return parse_accounts(data, symbols, str(path))
