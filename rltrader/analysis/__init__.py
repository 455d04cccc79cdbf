"""What a market did: stylized facts (:mod:`~rltrader.analysis.facts`), their report with
figures (:mod:`~rltrader.analysis.report`), the paired impact experiment on a realistic
simulated day (:mod:`~rltrader.analysis.realism`) and how a market absorbs one aggressive
trader (:mod:`~rltrader.analysis.impact`). docs/stylized_facts.md and docs/market.md have
the pages."""
