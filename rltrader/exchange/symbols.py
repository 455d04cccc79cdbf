"""Symbols as an exchange shows them: names, assets, tick and lot sizes, and the exact
conversion between the decimal strings of the wire and the core's integer ticks and lots.

A price is ``ticks x tick_size`` quote units, a quantity ``lots x lot_size`` base units, and
a quote amount (a notional, a balance, a fee) ``units x tick_size x lot_size``: the core's
cash unit (ticks x lots). Every conversion is exact (``decimal.Decimal``); a value off the
grid is refused, never rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rltrader.core.constants import MAX_PRICE, MAX_QTY


class ApiError(Exception):
    """A request the exchange refuses: Binance's ``code`` and ``msg``, and the HTTP status
    (4xx) that carries them."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def decimal_of(text: object, name: str) -> Decimal:
    """``text`` (a decimal string as Binance sends it) as a finite Decimal."""
    if not isinstance(text, str) or not text or len(text) > 40:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                       "is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or text.strip() != text or "e" in text.lower():
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                       "is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return value


def plain(value: Decimal) -> str:
    """A Decimal as Binance writes one: fixed point, no exponent."""
    return format(value, "f")


@dataclass(frozen=True)
class SymbolSpec:
    """One tradable symbol: book ``book`` of the served market."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    book: int
    min_notional: Decimal = Decimal(0)

    @property
    def cash_unit(self) -> Decimal:
        """Quote units of one core cash unit (one tick times one lot)."""
        return self.tick_size * self.lot_size

    def ticks(self, text: object, name: str = "price") -> int:
        value = decimal_of(text, name)
        ticks = value / self.tick_size
        if value <= 0 or ticks != ticks.to_integral_value():
            raise ApiError(-1013, "Filter failure: PRICE_FILTER")
        if ticks > MAX_PRICE:
            raise ApiError(-1013, "Filter failure: PRICE_FILTER")
        return int(ticks)

    def lots(self, text: object, name: str = "quantity") -> int:
        value = decimal_of(text, name)
        lots = value / self.lot_size
        if value <= 0 or lots != lots.to_integral_value() or lots > MAX_QTY:
            raise ApiError(-1013, "Filter failure: LOT_SIZE")
        return int(lots)

    def price_str(self, ticks: int) -> str:
        return plain((ticks * self.tick_size).normalize() if ticks else Decimal(0))

    def qty_str(self, lots: int) -> str:
        return plain((lots * self.lot_size).normalize() if lots else Decimal(0))

    def quote_str(self, units: int) -> str:
        return plain((units * self.cash_unit).normalize() if units else Decimal(0))

    def precision(self, step: Decimal) -> int:
        """Digits after the point of ``step`` (Binance's ``*Precision`` fields)."""
        return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]
