"""Predictive scores: features, churn, propensity and CLV models (issue: predictive scores)."""
