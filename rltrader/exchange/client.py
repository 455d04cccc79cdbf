"""A learner on a served market: a Gymnasium env whose agent is an account of a running
``rltrader serve``, trading over the network in the same books as the background, other
RL agents and external clients (ccxt ...).

:class:`ExchangeClient` is the account's connection: REST reads (depth, account, open
orders) and the binary order-entry WebSocket (``/orders``) for its orders.
:class:`ServedMarketEnv` turns it into a ``gymnasium.Env``:

- **Actions** (``Discrete(6)``): 0 hold; 1 buy ``order_qty`` at market; 2 sell at market;
  3 quote a bid at the best bid (replacing its bid); 4 quote an ask at the best ask
  (replacing its ask); 5 cancel its quotes. A buy or quote that could take the position
  past ``position_limit`` (position plus open orders of that side) is not sent.
- **Step.** The action's orders go out in one frame (one sequencer batch). Then the env
  waits ``step_s`` seconds of wall time while the market moves (``--speed`` scales how
  far it moves), and observes.
- **Position**: lots bought minus lots sold since the env was made (the account's base
  balance then is its reference).
- **Observation** (float32): the top ``depth`` levels, bid prices then bid sizes, then ask
  prices then ask sizes (prices as ``(price - mid) / price_scale`` ticks, sizes in
  ``qty_scale`` lots); the spread in ticks / ``price_scale``; position / limit; the
  account's value change since the episode began / (``order_qty x pnl_scale``); and
  whether a bid and an ask of its own rest.
- **Reward.** The change of the account's value (quote plus base at the mid, in ticks x
  lots) over the step, per lot of ``order_qty``.
- **Episodes.** An episode ends after ``horizon`` steps (``truncated``). ``reset()``
  cancels the agent's open orders and keeps its position, as a real account would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import gymnasium as gym
import httpx
import numpy as np

from rltrader.exchange.order_entry import ORDER_ACK, ORDER_IN


class ExchangeClient:
    """One account's connection to ``rltrader serve`` at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, api_key: str, secret: str, symbol: str) -> None:
        from websockets.sync.client import connect

        self.url, self.api_key, self.secret = url.rstrip("/"), api_key, secret
        self.http = httpx.Client(base_url=self.url, timeout=10)
        info = self.http.get("/api/v3/exchangeInfo").json()["symbols"]
        names = [s["symbol"] for s in info]
        if symbol not in names:
            raise ValueError(f"the server has no symbol {symbol!r} (it has {names})")
        self.symbol, self.symbol_index = symbol, names.index(symbol)
        spec = info[self.symbol_index]
        filters = {f["filterType"]: f for f in spec["filters"]}
        self.tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        self.lot = Decimal(filters["LOT_SIZE"]["stepSize"])
        self.base, self.quote = spec["baseAsset"], spec["quoteAsset"]
        self._connection = connect(self.url.replace("http", "ws", 1) + "/orders",
                                   max_size=1 << 24)
        self.ws = self._connection.__enter__()
        stamp = int(time.time() * 1000)
        signature = hmac.new(secret.encode(), f"{api_key}{stamp}".encode(),
                             hashlib.sha256).hexdigest()
        self.ws.send(json.dumps({"apiKey": api_key, "timestamp": stamp,
                                 "signature": signature}))
        answer = json.loads(self.ws.recv())
        if "error" in answer:
            raise PermissionError(f"the server refused the session: {answer['error']}")

    def _signed(self, method: str, path: str, params: dict[str, Any]) -> Any:
        fields = {**params, "timestamp": int(time.time() * 1000)}
        payload = urlencode(fields)
        payload += "&signature=" + hmac.new(self.secret.encode(), payload.encode(),
                                            hashlib.sha256).hexdigest()
        r = self.http.request(method, f"{path}?{payload}",
                              headers={"X-MBX-APIKEY": self.api_key})
        body = r.json()
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {body}")
        return body

    def depth(self, levels: int) -> tuple[np.ndarray, np.ndarray]:
        """``(bids, asks)``: ``(n, 2)`` int64 arrays of ticks and lots, best first."""
        book = self.http.get("/api/v3/depth", params={"symbol": self.symbol,
                                                      "limit": levels}).json()
        return tuple(np.array([[int(Decimal(p) / self.tick), int(Decimal(q) / self.lot)]
                               for p, q in book[side]], dtype=np.int64).reshape(-1, 2)
                     for side in ("bids", "asks"))  # type: ignore[return-value]

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``asset -> (free, locked)``."""
        return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"]))
                for b in self._signed("GET", "/api/v3/account", {})["balances"]}

    def open_orders(self) -> list[dict]:
        return self._signed("GET", "/api/v3/openOrders", {"symbol": self.symbol})

    def send(self, rows: list[tuple[int, int, int, int, int, int]]) -> np.ndarray:
        """One frame of ``(op, side, tif, qty lots, price ticks, order_id)`` records;
        returns the acks (``ORDER_ACK``)."""
        if not rows:
            return np.zeros(0, dtype=ORDER_ACK)
        frame = np.zeros(len(rows), dtype=ORDER_IN)
        frame["tag"] = np.arange(len(rows))
        for name, column in zip(("op", "side", "tif", "qty", "price", "order_id"),
                                zip(*rows, strict=True), strict=True):
            frame[name] = column
        frame["symbol"] = self.symbol_index
        self.ws.send(frame.tobytes())
        answer = self.ws.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"the server refused the frame: {answer}")
        return np.frombuffer(answer, dtype=ORDER_ACK)

    def close(self) -> None:
        self._connection.__exit__(None, None, None)
        self.http.close()


class ServedMarketEnv(gym.Env):
    """A Gymnasium agent trading on a running ``rltrader serve`` (module docstring)."""

    metadata = {"render_modes": []}
    HOLD, BUY, SELL, BID, ASK, CANCEL = range(6)

    def __init__(self, url: str, api_key: str, secret: str, *, symbol: str = "XYZUSDT",
                 order_qty: int = 1, position_limit: int = 20, horizon: int = 100,
                 step_s: float = 0.1, depth: int = 5, price_scale: float = 2.0,
                 qty_scale: float = 10.0, pnl_scale: float = 50.0) -> None:
        if order_qty < 1 or position_limit < order_qty or horizon < 1 or step_s < 0:
            raise ValueError("need order_qty >= 1, position_limit >= order_qty, "
                             "horizon >= 1 and step_s >= 0")
        self.client = ExchangeClient(url, api_key, secret, symbol)
        self.order_qty, self.position_limit = order_qty, position_limit
        self.horizon, self.step_s, self.depth = horizon, step_s, depth
        self.price_scale, self.qty_scale, self.pnl_scale = price_scale, qty_scale, pnl_scale
        self.action_space = gym.spaces.Discrete(6)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4 * depth + 5,),
                                                dtype=np.float32)
        self._quotes: dict[int, int] = {}       # side -> order id of its resting quote
        c = self.client
        self._base0 = sum(c.balances().get(c.base, (Decimal(0), Decimal(0))))
        self._steps = 0
        self._start_value = 0.0
        self._value = 0.0

    # ---- the account as numbers ---------------------------------------------------------

    def _state(self) -> tuple[np.ndarray, np.ndarray, int, float]:
        """Depth, position (lots) and the account's value at the mid (ticks x lots)."""
        bids, asks = self.client.depth(self.depth)
        balances = self.client.balances()
        c = self.client
        base = sum(balances.get(c.base, (Decimal(0), Decimal(0))))
        quote = sum(balances.get(c.quote, (Decimal(0), Decimal(0))))
        position = int((base - self._base0) / c.lot)
        mid = (bids[0, 0] + asks[0, 0]) / 2 if len(bids) and len(asks) else (
            bids[0, 0] if len(bids) else asks[0, 0] if len(asks) else 0)
        value = float(quote / (c.tick * c.lot)) + position * float(mid)
        return bids, asks, position, value

    def _observe(self, bids: np.ndarray, asks: np.ndarray, position: int) -> np.ndarray:
        k = self.depth
        obs = np.zeros(4 * k + 5, dtype=np.float32)
        mid = (bids[0, 0] + asks[0, 0]) / 2 if len(bids) and len(asks) else 0.0
        for j, side in enumerate((bids, asks)):
            n = min(k, len(side))
            if mid:
                obs[2 * j * k: 2 * j * k + n] = (side[:n, 0] - mid) / self.price_scale
            obs[(2 * j + 1) * k: (2 * j + 1) * k + n] = side[:n, 1] / self.qty_scale
        obs[4 * k] = (asks[0, 0] - bids[0, 0]) / self.price_scale if mid else 0.0
        obs[4 * k + 1] = position / self.position_limit
        obs[4 * k + 2] = (self._value - self._start_value) / self.order_qty / self.pnl_scale
        obs[4 * k + 3] = float(1 in self._quotes)
        obs[4 * k + 4] = float(-1 in self._quotes)
        return obs

    def _open_lots(self, side: int) -> int:
        return sum(int(Decimal(o["origQty"]) - Decimal(o["executedQty"]))
                   for o in self.client.open_orders()
                   if (o["side"] == "BUY") == (side > 0))

    # ---- gymnasium ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        rows = [(3, 0, 0, 0, 0, int(o["orderId"])) for o in self.client.open_orders()]
        self.client.send(rows)
        self._quotes.clear()
        bids, asks, position, self._value = self._state()
        self._start_value, self._steps = self._value, 0
        return self._observe(bids, asks, position), {"position": position}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        sent = self.act(action)
        if self.step_s:
            time.sleep(self.step_s)
        return self.settle(sent)

    def act(self, action: Any) -> int:
        """The first half of a step: send ``action``'s orders (one frame); returns how
        many records went out."""
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        action = int(action)
        bids, asks = self.client.depth(1)
        position = self._state()[2] if action in (self.BUY, self.SELL, self.BID,
                                                  self.ASK) else 0
        rows: list[tuple[int, int, int, int, int, int]] = []
        q = self.order_qty
        if action in (self.BUY, self.SELL):
            side = 1 if action == self.BUY else -1
            if side * position + self._open_lots(side) + q <= self.position_limit:
                rows.append((2, side, 0, q, 0, 0))
        elif action in (self.BID, self.ASK):
            side = 1 if action == self.BID else -1
            touch = bids if side > 0 else asks
            if side in self._quotes:
                rows.append((3, 0, 0, 0, 0, self._quotes.pop(side)))
            if len(touch) and (side * position + self._open_lots(side) + q
                               <= self.position_limit):
                rows.append((1, side, 0, q, int(touch[0, 0]), 0))
        elif action == self.CANCEL:
            rows += [(3, 0, 0, 0, 0, oid) for oid in self._quotes.values()]
            self._quotes.clear()
        acks = self.client.send(rows)
        for row, ack in zip(rows, acks.tolist(), strict=True):
            if row[0] == 1 and ack[4] == 0 and ack[5] in (1, 2):     # a quote resting
                self._quotes[row[1]] = int(ack[1])
        return len(rows)

    def settle(self, sent: int = 0) -> tuple[np.ndarray, float, bool, bool, dict]:
        """The second half of a step, once the market has moved: observe, reward."""
        live = {int(o["orderId"]) for o in self.client.open_orders()}
        self._quotes = {s: oid for s, oid in self._quotes.items() if oid in live}
        bids, asks, position, value = self._state()
        reward = (value - self._value) / self.order_qty
        self._value = value
        self._steps += 1
        return (self._observe(bids, asks, position), float(reward), False,
                self._steps >= self.horizon, {"position": position, "sent": sent})

    def close(self) -> None:
        self.client.close()


class ServedVectorEnv:
    """Several accounts of a served market as one batched env (rows are agents): the
    protocol of :class:`rltrader.envs.BatchedMarketEnv` (``reset(seed)``, ``step(actions)``
    -> observations, rewards, terminated, truncated buffers, ``final_observations``,
    ``num_agents_total``, single spaces), so that
    :class:`rltrader.envs.sb3.SB3VecEnv` serves it to Stable-Baselines3: learners trading
    over the network, in the same books as everyone else. A step sends every agent's
    orders, waits ``step_s`` once, then observes them all; an agent whose episode ended is
    reset at once (its last observation in :attr:`final_observations`).

    Parameters
    ----------
    url : str
        The server (``http://HOST:PORT``).
    keys : list of (api_key, secret)
        One account per agent.
    **kwargs
        :class:`ServedMarketEnv`'s options (``order_qty``, ``position_limit``,
        ``horizon``, ``step_s`` ...), the same for every agent.
    """

    def __init__(self, url: str, keys: list[tuple[str, str]], **kwargs: Any) -> None:
        if not keys:
            raise ValueError("keys: one (api_key, secret) per agent, at least one")
        self.step_s = kwargs.pop("step_s", 0.1)
        self.envs = [ServedMarketEnv(url, key, secret, step_s=0.0, **kwargs)
                     for key, secret in keys]
        self.num_agents_total = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        shape = (self.num_agents_total, *self.single_observation_space.shape)
        self.observations = np.zeros(shape, dtype=np.float32)
        self.final_observations = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(self.num_agents_total, dtype=np.float32)
        self.terminated = np.zeros(self.num_agents_total, dtype=bool)
        self.truncated = np.zeros(self.num_agents_total, dtype=bool)

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            self.observations[i] = env.reset(seed=seed)[0]
        self.terminated[:] = self.truncated[:] = False
        self.rewards[:] = 0.0
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions).reshape(self.num_agents_total)
        sent = [env.act(int(a)) for env, a in zip(self.envs, actions, strict=True)]
        if self.step_s:
            time.sleep(self.step_s)
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.settle(sent[i])
            self.rewards[i] = reward
            self.terminated[i], self.truncated[i] = terminated, truncated
            if terminated or truncated:
                self.final_observations[i] = obs
                obs = env.reset()[0]
            self.observations[i] = obs
        return self.observations, self.rewards, self.terminated, self.truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()
