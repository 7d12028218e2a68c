"""Reverse ETL: sync planner, policies, destinations and the delivery ledger (issue: activation)."""
