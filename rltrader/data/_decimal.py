"""Exact conversion of exchange decimal strings to integer ticks and lots.

Crypto feeds send prices and sizes as decimal strings (``"6190.85000000"``). The core wants
``int64`` ticks and lots, so each value is divided by a step (``tick_size`` or ``lot_size``,
also a decimal string) with integer arithmetic only: a value that is not a whole multiple of
the step raises ``ValueError``, it is never rounded. No float is involved anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from math import gcd

_DECIMAL = re.compile(r"(\d*)(?:\.(\d*))?")


def _parse(text: str) -> tuple[int, int]:
    """``text`` as ``(mantissa, decimals)`` with ``value = mantissa / 10**decimals``."""
    match = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if match is None or not (match.group(1) or match.group(2)):
        raise ValueError(f"{text!r} is not a plain non-negative decimal number")
    whole, frac = match.group(1), match.group(2) or ""
    return int(whole + frac or "0"), len(frac)


class DecimalGrid:
    """A price or size grid: decimal strings to integer multiples of ``step``.

    Parameters
    ----------
    step : str
        The grid step as a decimal string (``"0.01"``, ``"0.00000001"``, ``"0.5"``, ``"10"``).
    what : str
        Name used in error messages (``"price"``, ``"size"``).
    limit : int
        Largest allowed result (the core's ``MAX_PRICE`` / ``MAX_QTY``); larger raises.

    Conversions are cached per string: feeds repeat the same few thousand prices.
    """

    def __init__(self, step: str, what: str, limit: int) -> None:
        mantissa, decimals = _parse(step)
        if mantissa == 0:
            raise ValueError(f"{what} step must be positive, got {step!r}")
        self.step = step
        self.what = what
        self.limit = limit
        self._mantissa = mantissa
        self._decimals = decimals
        self._cache: dict[str, int] = {}

    def units(self, text: str) -> int:
        """``text / step`` as an int; ``ValueError`` when not a whole multiple or too large."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        mantissa, decimals = _parse(text)
        # text / step = mantissa * 10**step_decimals / (step_mantissa * 10**decimals)
        num = mantissa * 10 ** max(self._decimals - decimals, 0)
        den = self._mantissa * 10 ** max(decimals - self._decimals, 0)
        units, rest = divmod(num, den)
        if rest:
            raise ValueError(f"{self.what} {text} is not a multiple of {self.step}")
        if units > self.limit:
            raise ValueError(f"{self.what} {text} is {units} units of {self.step}, above the "
                             f"core's limit {self.limit}")
        self._cache[text] = units
        return units

    def units_list(self, texts: Iterable[str]) -> list[int]:
        """:meth:`units` of each string (the cached common case without a call per value)."""
        cache = self._cache
        return [cache[t] if t in cache else self.units(t) for t in texts]

    def text(self, units: int) -> str:
        """``units * step`` as a decimal string (for reports and dumps)."""
        scaled = str(units * self._mantissa).rjust(self._decimals + 1, "0")
        if not self._decimals:
            return scaled
        return f"{scaled[:-self._decimals]}.{scaled[-self._decimals:]}"


def infer_step(values: Iterable[str]) -> str:
    """The coarsest decimal step every value in ``values`` is a whole multiple of.

    That is the greatest common divisor of the values, e.g. ``["6190.85", "6190.80"]`` gives
    ``"0.05"``. Zeros are ignored; with no non-zero value the step is ``"1"``. Use it when the
    venue's tick or lot size is not at hand: every value then converts exactly (the true
    venue step may be finer).
    """
    decimals = 0
    parsed = []
    for text in set(values):
        mantissa, d = _parse(text)
        if mantissa:
            parsed.append((mantissa, d))
            decimals = max(decimals, d)
    common = 0
    for mantissa, d in parsed:
        common = gcd(common, mantissa * 10 ** (decimals - d))
    if not common:
        return "1"
    while decimals and common % 10 == 0:
        common //= 10
        decimals -= 1
    digits = str(common).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}" if decimals else digits
