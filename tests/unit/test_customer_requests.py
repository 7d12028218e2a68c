"""`tideline customer export|erase` argument errors: each is one clear sentence on stderr, exit status
2, and nothing recorded (no erasure table, no suppression, no export file).

The warehouse is a DuckDB file with the identity marts an erasure resolves through: customer c1
(two source ids merged: c1 and g-1) and c2, who share no email; c3 and c4 share
shared@example.com without being merged (a placeholder address).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tideline import cli


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "warehouse.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as select * from (values
           ('c1', 'ada@example.com', '+447700900123'), ('c2', 'bob@example.com', null),
           ('c3', 'shared@example.com', null), ('c4', 'shared@example.com', null)) t(customer_id, email, phone)"""
    )
    con.execute(
        """create table marts.customer_id_map as select * from (values
           ('crm', 'c1', 'c1', true), ('commerce', 'g-1', 'c1', true), ('crm', 'c2', 'c2', false),
           ('crm', 'c3', 'c3', false), ('crm', 'c4', 'c4', false)) t(source, source_id, customer_id, is_merged)"""
    )
    con.close()
    return path


def _run(warehouse: Path, capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv, "--warehouse", str(warehouse), "--home", str(warehouse.parent)])
    out, err = capsys.readouterr()
    return code, out, err


def _recorded(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'tideline_sync'"
            ).fetchall()
        ]
    finally:
        con.close()


def test_an_unknown_customer_id_is_a_clear_error_and_nothing_is_recorded(warehouse, capsys) -> None:
    code, out, err = _run(warehouse, capsys, "customer", "erase", "--customer-id", "nobody", "--by", "dpo")
    assert code == 2 and out == ""
    assert err.strip() == (
        "tideline: customer id 'nobody' is not a customer of this warehouse (not in "
        "marts.customer_id_map or marts.dim_customers): check the id, or run the pipeline first"
    )
    assert _recorded(warehouse) == []


def test_an_unknown_email_names_no_address_and_exports_nothing(warehouse, capsys) -> None:
    code, out, err = _run(warehouse, capsys, "customer", "export", "--email", "Nobody@Example.com")
    assert code == 2 and out == ""
    assert "that email is not a customer of this warehouse" in err and "nobody@" not in err.lower()
    assert not (warehouse.parent / "exports").exists()


def test_an_email_shared_by_two_customers_asks_for_the_id(warehouse, capsys) -> None:
    code, _, err = _run(
        warehouse, capsys, "customer", "erase", "--email", " SHARED@example.com", "--by", "dpo"
    )
    assert code == 2
    assert "that email matches 2 customers (c3, c4): name one with --customer-id" in err
    assert _recorded(warehouse) == []


def test_a_blank_by_records_nothing(warehouse, capsys) -> None:
    code, _, err = _run(warehouse, capsys, "customer", "erase", "--customer-id", "g-1", "--by", "  ")
    assert code == 2 and "--by is required" in err
    assert _recorded(warehouse) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("customer", "erase", "--by", "dpo"), "one of the arguments --customer-id --email is required"),
        (("customer", "erase", "--customer-id", "c1"), "the following arguments are required: --by"),
        (
            ("customer", "export", "--customer-id", "c1", "--email", "ada@example.com"),
            "argument --email: not allowed with argument --customer-id",
        ),
    ],
)
def test_missing_or_conflicting_arguments_exit_2(warehouse, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--warehouse", str(warehouse)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert _recorded(warehouse) == []


def test_a_source_id_erases_the_resolved_customer_once(warehouse, capsys) -> None:
    code, out, _ = _run(warehouse, capsys, "customer", "erase", "--customer-id", "g-1", "--by", "dpo")
    assert code == 0 and "recorded for customer c1 by dpo" in out
    assert "2 ids, 0 anonymous ids, 1 email and 1 phone hashes" in out
    con = duckdb.connect(str(warehouse), read_only=True)
    suppressed = con.execute(
        "select customer_id, channel, reason from tideline_sync.suppressions order by 1"
    ).fetchall()
    con.close()
    assert suppressed == [("c1", "all", "erased"), ("g-1", "all", "erased")]
    code, _, err = _run(warehouse, capsys, "customer", "erase", "--customer-id", "c1", "--by", "dpo")
    assert code == 2 and "was erased already" in err
