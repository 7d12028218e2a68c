"""Who a privacy request is about: one resolved customer and every identity merged into them.

A request names a customer id (a resolved `customer_id` or any source id merged into one: a CRM
contact id, an order's customer id, a web customer id) or an email, normalised as staging does
(trimmed, lower-cased). The warehouse's identity models say the rest:

    marts.customer_id_map                    source id -> resolved customer_id (anonymous ids too)
    intermediate.int_account_keys_collected  the normalised emails and phones of each account
    intermediate.int_accounts_resolved       account -> customer (before the marts are built)

A customer erased before is still found through tideline_sync.erased_identities (ids only: the
emails and phones of an erased person are not kept), so an export after an erasure shows what is
left and a second erasure says it was done already.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import duckdb

from activation.ledger import SCHEMA
from activation.warehouse import table_exists


class PrivacyRequestError(ValueError):
    """A request that cannot be served as asked (unknown person, ambiguous email): nothing was done."""


@dataclass(frozen=True)
class Person:
    """The resolved customer and what identifies them; emails and phones are normalised."""

    customer_id: str
    account_ids: tuple[str, ...]  # every source id merged into the customer, the customer id included
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    erased_by: str | None = field(default=None)  # the request id, when the person was erased already

    @property
    def email_hashes(self) -> tuple[str, ...]:
        return tuple(sha256_hex(e) for e in self.emails)

    @property
    def phone_hashes(self) -> tuple[str, ...]:
        return tuple(sha256_hex(p) for p in self.phones)


def normalise_email(email: str) -> str:
    """As staging normalises it (dbt macro normalise_email): trimmed and lower-cased."""
    return email.strip().lower()


def sha256_hex(value: str) -> str:
    """Lower-case hex sha256 of the UTF-8 text, as the dbt macro sha256_hex computes it."""
    return hashlib.sha256(value.encode()).hexdigest()


def find_person(
    con: duckdb.DuckDBPyConnection, *, customer_id: str | None = None, email: str | None = None
) -> Person:
    """The person a request names, by exactly one of customer id and email; PrivacyRequestError
    when no customer (or more than one, for an email) matches."""
    if (customer_id is None) == (email is None):
        raise PrivacyRequestError("give exactly one of --customer-id and --email")
    if customer_id is not None:
        wanted = customer_id.strip()
        if not wanted:
            raise PrivacyRequestError("--customer-id is empty")
        resolved = _resolve_ids(con, [wanted])
        what = f"customer id {wanted!r}"
    else:
        wanted = normalise_email(email or "")
        if "@" not in wanted:
            raise PrivacyRequestError("--email is not an email address")
        resolved = _resolve_email(con, wanted)
        what = "that email"  # never echo the address: errors can end up in logs
    if len(resolved) > 1:
        raise PrivacyRequestError(
            f"{what} matches {len(resolved)} customers ({', '.join(sorted(resolved))}): "
            "name one with --customer-id"
        )
    if resolved:
        person = _person(con, resolved.pop())
        # erased, but the marts not rebuilt yet: the person is still there, and flagged
        return replace(person, erased_by=_request_of(con, person.customer_id))
    erased = _erased(con, wanted if customer_id is not None else None, wanted if email is not None else None)
    if erased is not None:
        return erased
    raise PrivacyRequestError(
        f"{what} is not a customer of this warehouse (not in marts.customer_id_map or "
        "marts.dim_customers): check the id, or run the pipeline first"
    )


def _resolve_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """The resolved customers of source ids (or of resolved ids themselves)."""
    if table_exists(con, "marts", "customer_id_map"):
        rows = con.execute(
            """select distinct customer_id from marts.customer_id_map
               where list_contains(?, source_id) or list_contains(?, customer_id)""",
            [ids, ids],
        ).fetchall()
        if rows:
            return {r[0] for r in rows}
    if table_exists(con, "intermediate", "int_accounts_resolved"):
        rows = con.execute(
            "select distinct customer_id from intermediate.int_accounts_resolved where list_contains(?, account_id)",
            [ids],
        ).fetchall()
        if rows:
            return {r[0] for r in rows}
    if table_exists(con, "marts", "dim_customers"):
        rows = con.execute(
            "select customer_id from marts.dim_customers where list_contains(?, customer_id)", [ids]
        ).fetchall()
        return {r[0] for r in rows}
    return set()


def _resolve_email(con: duckdb.DuckDBPyConnection, email: str) -> set[str]:
    """The resolved customers whose accounts carry the normalised email."""
    accounts: list[str] = []
    if table_exists(con, "intermediate", "int_account_keys_collected"):
        accounts = [
            r[0]
            for r in con.execute(
                """select distinct account_id from intermediate.int_account_keys_collected
                   where key_type = 'email' and key_value = ?""",
                [email],
            ).fetchall()
        ]
    if accounts:
        return _resolve_ids(con, accounts)
    if table_exists(con, "marts", "dim_customers"):
        rows = con.execute("select customer_id from marts.dim_customers where email = ?", [email]).fetchall()
        return {r[0] for r in rows}
    return set()


def _person(con: duckdb.DuckDBPyConnection, customer_id: str) -> Person:
    """Every identity merged into the resolved `customer_id`."""
    accounts, anonymous = {customer_id}, set()
    if table_exists(con, "marts", "customer_id_map"):
        for source, source_id in con.execute(
            "select source, source_id from marts.customer_id_map where customer_id = ?", [customer_id]
        ).fetchall():
            (anonymous if source == "anonymous" else accounts).add(source_id)
    elif table_exists(con, "intermediate", "int_accounts_resolved"):
        accounts |= {
            r[0]
            for r in con.execute(
                "select account_id from intermediate.int_accounts_resolved where customer_id = ?",
                [customer_id],
            ).fetchall()
        }
    emails, phones = set(), set()
    if table_exists(con, "intermediate", "int_account_keys_collected"):
        for key_type, value in con.execute(
            """select key_type, key_value from intermediate.int_account_keys_collected
               where list_contains(?, account_id)""",
            [sorted(accounts)],
        ).fetchall():
            (emails if key_type == "email" else phones).add(value)
    if table_exists(con, "marts", "dim_customers"):
        row = con.execute(
            "select email, phone from marts.dim_customers where customer_id = ?", [customer_id]
        ).fetchone()
        if row:
            emails |= {row[0]} - {None}
            phones |= {row[1]} - {None}
    return Person(
        customer_id,
        tuple(sorted(accounts)),
        tuple(sorted(anonymous)),
        tuple(sorted(emails)),
        tuple(sorted(phones)),
    )


def _request_of(con: duckdb.DuckDBPyConnection, customer_id: str) -> str | None:
    """The first erasure request of a resolved customer, or None."""
    if not table_exists(con, SCHEMA, "erasure_requests"):
        return None
    row = con.execute(
        f"select request_id from {SCHEMA}.erasure_requests where customer_id = ? order by requested_at limit 1",
        [customer_id],
    ).fetchone()
    return row[0] if row else None


def _erased(con: duckdb.DuckDBPyConnection, customer_id: str | None, email: str | None) -> Person | None:
    """The person as an earlier erasure recorded them (ids, no emails or phones), or None."""
    if not table_exists(con, SCHEMA, "erased_identities"):
        return None
    kind, value = (
        ("customer_id", customer_id) if customer_id is not None else ("email_sha256", sha256_hex(email or ""))
    )
    row = con.execute(
        f"""select r.request_id, r.customer_id
            from {SCHEMA}.erased_identities as i
            inner join {SCHEMA}.erasure_requests as r on r.request_id = i.request_id
            where i.kind = ? and i.value = ?
            order by r.requested_at limit 1""",
        [kind, value],
    ).fetchone()
    if row is None:
        return None
    request_id, resolved = row
    identities = con.execute(
        f"select kind, value from {SCHEMA}.erased_identities where request_id = ? order by kind, value",
        [request_id],
    ).fetchall()
    return Person(
        resolved,
        tuple(v for k, v in identities if k == "customer_id"),
        tuple(v for k, v in identities if k == "anonymous_id"),
        erased_by=request_id,
    )
