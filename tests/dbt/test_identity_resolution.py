"""Identity resolution in rounds (macros/connected_components.sql) equals the recursive CTE it replaced.

int_accounts_resolved finds the connected components of the shared-key graph in rounds of plain
SQL (propagation of the smallest label plus pointer jumping, until no label changes), so that
engines without a usable recursive CTE (Spark) run the same model. `RECURSIVE_CTE` below is the
model's former formulation (a recursive CTE with `union`), kept here as the oracle.

The landing zone is built by hand: contacts whose emails and phones link them in long chains
(each account shares its email with one neighbour and its phone with the other), so a label has
to travel hundreds of links:

- chain A, 300 accounts, created newest first: the customer is its LAST account (the first seen);
- chain B, 101 accounts whose first-seen account sits in the middle;
- a cycle of 50 accounts (the chain closed by a shared phone between its ends);
- 25 accounts on one placeholder email (over identity_max_accounts_per_key, 20): never merged;
- 10 accounts sharing nothing.

Expected by construction: every account of a chain or the cycle resolves to that component's
first-seen account, the others to themselves; the recursive CTE run over the same built inputs
agrees row for row; and the rounds stay logarithmic in the chain length (dbt's log says how many).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import duckdb
import pytest

from tests import engines
from tests.helpers import write_csv
from tideline.landing.loader import load_landing_zone

pytestmark = pytest.mark.slow  # builds the identity models with dbt

AS_OF = "2025-06-30"
START = dt.datetime(2020, 1, 1)

# the former int_accounts_resolved (a recursive CTE), over the built intermediate tables
RECURSIVE_CTE = """
with recursive accounts as (
    select account_id, first_seen_at,
        row_number() over (order by first_seen_at asc nulls last, account_id asc) as node
    from intermediate.int_accounts_collected
),
keys as (
    select keys.key_type, keys.key_value, accounts.node
    from intermediate.int_account_keys_collected as keys
    inner join accounts on keys.account_id = accounts.account_id
),
shared_keys as (
    select key_type, key_value from keys group by key_type, key_value
    having count(*) between 2 and ?
),
links as (
    select distinct a.node as src, b.node as dst
    from keys as a
    inner join shared_keys as s on a.key_type = s.key_type and a.key_value = s.key_value
    inner join keys as b on a.key_type = b.key_type and a.key_value = b.key_value and a.node <> b.node
),
reach (node, label) as (
    select distinct links.src as node, links.src as label from links
    union
    select links.dst, reach.label from reach inner join links on reach.node = links.src
),
components as (select node, min(label) as label from reach group by node)
select accounts.account_id, representative.account_id as customer_id,
    count(*) over (partition by representative.account_id) as accounts_in_customer
from accounts
left join components on accounts.node = components.node
inner join accounts as representative on coalesce(components.label, accounts.node) = representative.node
"""


def chain(prefix: str, size: int, first_seen: int, closed: bool = False) -> list[dict]:
    """`size` contacts linked in a path: i and i+1 share an email when i is even, a phone when odd;
    account `first_seen` was created first, the others later the farther they are from it.
    `closed` makes it a cycle (the last shares a phone with the first)."""
    rows = []
    for i in range(size):
        email = f"{prefix}-e{i - i % 2}@example.com"
        phone_key = i if i % 2 else i - 1
        if closed and i == 0:
            phone_key = size - 1  # the last account's phone (size is even, so the last i is odd)
        created = START + dt.timedelta(hours=abs(i - first_seen))
        rows.append(
            {
                "customer_id": f"{prefix}{i:03d}",
                "email": email,
                "phone": f"+4930{ord(prefix):03d}{phone_key + 1000:04d}",
                "country": "DE",
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return rows


def landing_contacts() -> tuple[list[dict], dict[str, str]]:
    """The contacts and, by construction, each account's expected customer."""
    chain_a = chain("a", 300, first_seen=299)
    chain_b = chain("b", 101, first_seen=50)
    cycle = chain("y", 50, first_seen=17, closed=True)
    placeholder = [
        {
            "customer_id": f"p{i:03d}",
            "email": "test@example.com",
            "country": "DE",
            "created_at": "2021-01-01T00:00:00Z",
        }
        for i in range(25)
    ]
    loners = [
        {
            "customer_id": f"s{i:03d}",
            "email": f"solo{i}@example.com",
            "country": "DE",
            "created_at": "2021-02-01T00:00:00Z",
        }
        for i in range(10)
    ]
    expected = {row["customer_id"]: "a299" for row in chain_a}
    expected |= {row["customer_id"]: "b050" for row in chain_b}
    expected |= {row["customer_id"]: "y017" for row in cycle}
    expected |= {row["customer_id"]: row["customer_id"] for row in placeholder + loners}
    return chain_a + chain_b + cycle + placeholder + loners, expected


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("identity")
    contacts, expected = landing_contacts()
    write_csv(
        root / "raw/crm/contacts/contacts.csv",
        contacts,
        ["customer_id", "email", "phone", "country", "created_at"],
    )
    warehouse = root / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(root / "raw", con)
    finally:
        con.close()
    engines.dbt_build(
        "duckdb",
        AS_OF,
        root / "dbt",
        env={"TIDELINE_WAREHOUSE": str(warehouse)},
        select="+int_accounts_resolved",
    )
    return warehouse, root / "dbt" / "logs" / "dbt.log", expected


def resolved(
    warehouse: Path, sql: str = "select * from intermediate.int_accounts_resolved", params=()
) -> set:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return set(con.execute(sql, list(params)).fetchall())
    finally:
        con.close()


def test_long_chains_and_a_cycle_resolve_to_their_first_seen_account(built) -> None:
    warehouse, _, expected = built
    rows = resolved(warehouse)
    assert {account: customer for account, customer, _ in rows} == expected
    sizes = {customer: n for _, customer, n in rows}
    assert (sizes["a299"], sizes["b050"], sizes["y017"], sizes["p000"], sizes["s000"]) == (300, 101, 50, 1, 1)


def test_rounds_equal_the_recursive_cte(built) -> None:
    warehouse, _, _ = built
    assert resolved(warehouse) == resolved(warehouse, RECURSIVE_CTE, [20])


def test_rounds_grow_with_the_log_of_the_longest_chain(built) -> None:
    _, log, _ = built
    rounds = [
        int(n) for n in re.findall(r"connected_components: .* converged in (\d+) round", log.read_text())
    ]
    assert len(rounds) == 1
    assert rounds[0] <= math.ceil(math.log2(300)) + 3  # a label crosses 299 links in far fewer rounds


def test_too_few_rounds_fail_the_build_instead_of_merging_partially(built, tmp_path: Path) -> None:
    warehouse, _, _ = built
    with pytest.raises(AssertionError, match="labels still changed after 2 rounds"):
        engines.dbt_build(
            "duckdb",
            AS_OF,
            tmp_path / "dbt",
            env={"TIDELINE_WAREHOUSE": str(warehouse)},
            extra_vars={"identity_max_rounds": 2},
            select="int_accounts_resolved",
        )


def test_the_scratch_tables_are_dropped(built) -> None:
    warehouse, _, _ = built
    left = resolved(
        warehouse,
        "select table_name from information_schema.tables where table_schema = 'intermediate' and strpos(table_name, ?) > 0",
        ["__cc_"],
    )
    assert left == set()
