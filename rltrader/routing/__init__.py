"""Several venues of one symbol (:mod:`~rltrader.routing.venues`), the consolidated book a
participant sees of them (:mod:`~rltrader.routing.consolidated`), smart order routers
(:mod:`~rltrader.routing.router`) and their evaluation (:mod:`~rltrader.routing.evaluate`).
docs/routing.md has the page."""
