"""Behaviour score data (B卡, issue 21): point-in-time features of each loan from the mirror
(`ledger.scoring.features`), the "90+ days past due within 12 months" label (`ledger.scoring.labels`) and a
portfolio simulator that drives the real chain for demo and test data (`ledger.scoring.simulator`, the only
module here that imports `ledger.chain`). docs/scoring.md documents every feature and the generative model.
"""
