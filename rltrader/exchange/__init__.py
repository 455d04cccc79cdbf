"""The exchange layer: a served market that real clients trade on (docs/exchange.md).

``engine`` is the sequencer that owns the books; ``binance`` the Binance-spot-compatible
REST gateway; ``accounts`` keys and balances; ``server`` what ``rltrader serve`` runs.
Needs the ``exchange`` extra (starlette, uvicorn, websockets).
"""

from rltrader.exchange.accounts import Account, load_accounts
from rltrader.exchange.engine import Exchange
from rltrader.exchange.symbols import ApiError, SymbolSpec

__all__ = ["Account", "ApiError", "Exchange", "SymbolSpec", "load_accounts"]
