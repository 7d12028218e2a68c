"""Preview an audience file against a live warehouse, before anything is sent.

    result = preview(con, "dbt_project/audiences/cart_rescue.yml")
    print(format_preview(result))

The file is checked and compiled for DuckDB (values bound) as of the warehouse's as-of date
(dim_customers.as_of_date; `as_of` overrides it), its members computed once into a temporary table
(the connection may be read-only: temp tables live in memory), then:
- size: members;
- reachable per channel (email, sms, push): members whose dim_customers opt-in holds, not revoked
  since (tideline_sync.consent_revocations, when it exists: a revocation at or after the consent
  wins, as in activation.policies) and not suppressed for the channel or for all channels
  (tideline_sync.suppressions and marts.engagement_suppressions, those that exist);
- overlap with every other audience built in the warehouse (audience files and segment models):
  shared customers and their share of this audience;
- a sample of customer ids (ids only: never emails or names).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import duckdb

from activation.conditions import CompileContext, Condition, ConditionError, compile_condition
from activation.conditions.nodes import All, AnyOf, Audience, Not
from activation.ledger import SCHEMA
from activation.policies import CONSENT_COLUMNS
from activation.warehouse import columns_of, table_exists

from .files import audience_catalog, load_audience, source_name

CHANNELS = CONSENT_COLUMNS  # channel -> dim_customers opt-in column, as the send policies read it
ENGAGEMENT_SUPPRESSIONS = ("marts", "engagement_suppressions")
MEMBERS = "_audience_preview_members"
DEFAULT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


def _as_of(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The as-of date the marts were built for (None when dim_customers does not say)."""
    if "as_of_date" not in columns_of(con, "marts.dim_customers"):
        return None
    row = con.execute("select max(as_of_date) from marts.dim_customers").fetchone()
    return row[0] if row and isinstance(row[0], dt.date) else None


def _reachable(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Per channel: members with the opt-in, not revoked since, not suppressed (tables that exist)."""
    out = {}
    revocations = table_exists(con, SCHEMA, "consent_revocations")
    suppressions = (
        [f"select customer_id, channel from {SCHEMA}.suppressions"]
        if table_exists(con, SCHEMA, "suppressions")
        else []
    )
    if table_exists(con, *ENGAGEMENT_SUPPRESSIONS):
        suppressions.append("select customer_id, channel from marts.engagement_suppressions")
    for channel, column in CHANNELS.items():
        consent_at = column.replace("_opt_in", "_consent_at")
        where = [f"d.{column}"]
        params: list[Any] = []
        if revocations:
            where.append(
                f"not exists (select 1 from {SCHEMA}.consent_revocations as r where r.customer_id = d.customer_id"
                f" and r.channel in ('all', ?) and (d.{consent_at} is null or r.revoked_at >= d.{consent_at}))"
            )
            params.append(channel)
        if suppressions:
            where.append(
                f"not exists (select 1 from ({' union all '.join(suppressions)}) as s"
                " where s.customer_id = d.customer_id and s.channel in ('all', ?))"
            )
            params.append(channel)
        sql = (
            f"select count(*) from {MEMBERS} as m join marts.dim_customers as d on d.customer_id = m.customer_id"
            f" where {' and '.join(where)}"
        )
        out[channel] = con.execute(sql, params).fetchone()[0]
    return out


def _overlap(con: duckdb.DuckDBPyConnection, names: list[str], own: str, size: int) -> list[dict]:
    out = []
    for name in names:
        if name == own or not table_exists(con, "marts", name):
            continue
        # the name is a catalog audience, checked to be a plain identifier (safe_identifier)
        other, shared = con.execute(
            f"select (select count(distinct customer_id) from marts.{name}),"
            f" (select count(*) from {MEMBERS} as m where exists"
            f" (select 1 from marts.{name} as o where o.customer_id = m.customer_id))"
        ).fetchone()
        out.append(
            {
                "audience": name,
                "audience_size": other,
                "shared": shared,
                "share": round(shared / size, 4) if size else 0.0,
            }
        )
    return out


def _audience_nodes(cond: Condition) -> list[Audience]:
    if isinstance(cond, All | AnyOf):
        return [a for c in cond.items for a in _audience_nodes(c)]
    if isinstance(cond, Not):
        return _audience_nodes(cond.item)
    return [cond] if isinstance(cond, Audience) else []


def _check_built(con: duckdb.DuckDBPyConnection, where: Condition) -> None:
    """Every audience the condition names is built in this warehouse (its model's table)."""
    for node in _audience_nodes(where):
        if not table_exists(con, "marts", node.name):
            raise node.loc.error(
                f"audience {node.name!r} is not built in this warehouse (no marts.{node.name}): "
                "run the pipeline (dbt build) after generating it, or preview against a warehouse that has it"
            )


def preview(
    con: duckdb.DuckDBPyConnection,
    audience_file: Path | str,
    *,
    project_dir: Path | str | None = None,
    as_of: dt.date | None = None,
    sample_size: int = 10,
) -> dict[str, Any]:
    """Size, reachable size per channel, overlap with the other audiences and a sample of ids.
    ConditionError (naming the file and path) when the file does not check or compile."""
    started = time.monotonic()
    project = Path(project_dir) if project_dir is not None else DEFAULT_PROJECT
    path = Path(audience_file)
    if not path.is_file():
        raise ConditionError(str(path), "(file)", "no such audience file")
    catalog = audience_catalog(project, extra=[path.stem])
    audience = load_audience(path, project, catalog)
    _check_built(con, audience.where)
    day = as_of or _as_of(con) or dt.datetime.now(dt.UTC).date()
    sql, params = compile_condition(audience.where, catalog, CompileContext(target="duckdb", as_of=day))
    try:
        con.execute(
            f"create or replace temp table {MEMBERS} as select c.customer_id from marts.dim_customers as c"
            f" where {sql}",
            params,
        )
        size = con.execute(f"select count(*) from {MEMBERS}").fetchone()[0]
        sample = [
            r[0]
            for r in con.execute(
                f"select customer_id from {MEMBERS} order by md5(customer_id), customer_id limit ?",
                [sample_size],
            ).fetchall()
        ]
        result = {
            "audience": audience.name,
            "file": source_name(path, project),
            "as_of": day.isoformat(),
            "size": size,
            "reachable": _reachable(con),
            "overlap": _overlap(con, sorted(catalog.audiences), audience.name, size),
            "sample": sample,
            "seconds": round(time.monotonic() - started, 3),
        }
    finally:
        con.execute(f"drop table if exists {MEMBERS}")
    return result


def format_preview(result: dict[str, Any]) -> str:
    """The preview as text for a terminal."""
    size = result["size"]

    def share(n: int) -> str:
        return f"{n / size:6.1%}" if size else "     -"

    lines = [
        f"Audience {result['audience']} ({result['file']}) as of {result['as_of']}",
        f"  size {size:,}",
        "  reachable after consent and suppressions:",
        *(f"    {ch:<6} {n:>10,}  {share(n)}" for ch, n in result["reachable"].items()),
    ]
    if result["overlap"]:
        lines.append("  overlap with other audiences (shared customers, share of this audience):")
        width = max(len(o["audience"]) for o in result["overlap"])
        lines += [
            f"    {o['audience']:<{width}} {o['shared']:>10,}  {share(o['shared'])}  (of {o['audience_size']:,})"
            for o in result["overlap"]
        ]
    else:
        lines.append("  overlap: no other audience is built in this warehouse")
    lines.append(f"  sample of customer ids: {', '.join(result['sample']) or '-'}")
    return "\n".join(lines)
