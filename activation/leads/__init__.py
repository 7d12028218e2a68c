"""Lead scoring: rules in dbt_project/lead_scoring.yml -> generated dbt models -> marts.lead_scores.

activation.leads.rules reads and checks the file; activation.leads.generate writes the models
that come from it (docs/leads.md). Plain Python: no dagster, no warehouse.
"""

from .generate import BUILD_COMMAND, build, generate, render, stale
from .rules import Group, LeadScoring, Rule, default_rules_file, load, parse

__all__ = [
    "BUILD_COMMAND",
    "Group",
    "LeadScoring",
    "Rule",
    "build",
    "default_rules_file",
    "generate",
    "load",
    "parse",
    "render",
    "stale",
]
