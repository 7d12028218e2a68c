"""`tideline customer export|erase`: a person's GDPR access and erasure requests.

    tideline customer export --customer-id ID | --email EMAIL [--out PATH]
    tideline customer erase  --customer-id ID | --email EMAIL --by PERSON [--reason TEXT]

export writes one JSON document with everything the warehouse holds about the person
(activation/privacy/export.py) to <state folder>/exports/ (mode 0600), or to --out; it prints
where, and how many rows each section has, never the data. erase records the request
(tideline_sync.erasure_requests), suppresses the person in every sync and journey at once, deletes
their scores and lists the landing files that still hold them (file and row count): the raw files
are the customer's own system of record, purged there (docs/privacy.md). An unknown person is a
clear error with exit status 2, and nothing is recorded. Both wait for the warehouse while a run
holds it (TIDELINE_LOCK_WAIT_SECONDS).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from tideline.commands.run import connect_warehouse, settings_from
from tideline.settings import Settings


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    p = sub.add_parser("customer", help="GDPR requests: export a person's data, or erase them")
    verbs = p.add_subparsers(dest="verb", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        who = q.add_mutually_exclusive_group(required=True)
        who.add_argument("--customer-id", help="the resolved customer id or any source id merged into it")
        who.add_argument("--email", help="an email of the person (matched trimmed and lower-cased)")
        q.add_argument("--warehouse", default=None, help=warehouse_help)
        q.add_argument("--home", default=None, help=home_help)

    export = verbs.add_parser("export", help="write everything held about a person to one JSON file")
    common(export)
    export.add_argument("--out", default=None, help="file to write (default: <state folder>/exports/)")
    export.set_defaults(func=cmd_customer_export)
    erase = verbs.add_parser(
        "erase", help="record an erasure request: suppressed now, out of marts next build"
    )
    common(erase)
    erase.add_argument("--by", required=True, help="who records the request (a member of staff)")
    erase.add_argument("--reason", default=None, help="why, e.g. a ticket number")
    erase.set_defaults(func=cmd_customer_erase)


def _connect(settings: Settings, read_only: bool):  # noqa: ANN202 - a DuckDB connection
    if not settings.warehouse.is_file():
        raise ValueError(f"no warehouse at {settings.warehouse}: run the pipeline first (tideline run)")
    return connect_warehouse(settings, read_only=read_only)


def cmd_customer_export(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.privacy import export_document, find_person, write_export
    from activation.privacy.export import absent_relations, row_counts

    settings = settings_from(args, env)
    con = _connect(settings, read_only=True)
    try:
        person = find_person(con, customer_id=args.customer_id, email=args.email)
        document = export_document(con, person)
    finally:
        con.close()
    if args.out:
        path = Path(args.out).resolve()
    else:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = settings.state_dir / "exports" / f"customer-{_file_safe(person.customer_id)}-{stamp}.json"
    write_export(document, path)
    counts = row_counts(document)
    print(f"Exported customer {person.customer_id} to {path} (mode 0600: it holds personal data)")
    for section, n in counts.items():
        print(f"  {section:<14}{n:>8,} rows")
    absent = absent_relations(document)
    if absent:
        print(f"  not in this warehouse yet (listed as absent): {', '.join(absent)}")
    return 0


def cmd_customer_erase(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.privacy import find_person, record_erasure

    settings = settings_from(args, env)
    con = _connect(settings, read_only=False)
    try:
        person = find_person(con, customer_id=args.customer_id, email=args.email)
        report = record_erasure(con, person, by=args.by, reason=args.reason)
    finally:
        con.close()
    ids = report.identities
    print(f"Erasure {report.request_id} recorded for customer {report.customer_id} by {args.by.strip()}")
    print(
        f"  identities kept to match future rows: {ids['customer_id']} ids, {ids['anonymous_id']} anonymous ids, "
        f"{ids['email_sha256']} email and {ids['phone_sha256']} phone hashes (sha256; no address is stored)"
    )
    print(
        "  suppressed on every channel now; the next sync deletes them from mirrored and upserted destinations"
    )
    print("  the next pipeline run (dbt build) leaves them out of every mart")
    for table, n in report.scores_deleted.items():
        print(f"  deleted {n} row(s) from {table}")
    if report.landing_files:
        rows = sum(n for _, n in report.landing_files)
        print(
            f"  {len(report.landing_files)} landing file(s) still hold them ({rows} rows): the raw files are "
            "your system of record; purge them there (docs/privacy.md)"
        )
        for file, n in report.landing_files:
            print(f"    {file}: {n} row(s)")
    else:
        print("  no landing file holds them")
    return 0


def _file_safe(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:64]
