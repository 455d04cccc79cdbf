"""What a market did: stylized facts (:mod:`~rltrader.analysis.facts`), their report with
figures (:mod:`~rltrader.analysis.report`) and the paired impact experiment on a realistic
simulated day (:mod:`~rltrader.analysis.realism`). docs/stylized_facts.md has the page."""
