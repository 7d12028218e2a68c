"""Table fingerprints change with any row change and not with row order."""

import duckdb
import pytest

from tideline.fingerprint import MISSING, digest, table_fingerprint


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema s; create table s.t (id int, name varchar, amount double)")
    con.execute("insert into s.t values (1, 'a', 1.5), (2, null, 0), (3, 'c', -2)")
    yield con
    con.close()


def test_any_change_of_any_column_changes_the_fingerprint(con):
    before = table_fingerprint(con, "s", "t")
    con.execute("update s.t set name = 'b' where id = 2")
    updated = table_fingerprint(con, "s", "t")
    con.execute("update s.t set amount = 0.0001 where id = 2")
    amount = table_fingerprint(con, "s", "t")
    con.execute("delete from s.t where id = 3")
    deleted = table_fingerprint(con, "s", "t")
    assert len({before, updated, amount, deleted}) == 4


def test_row_order_does_not_matter_and_a_missing_table_says_so(con):
    con.execute("create table s.u as select * from s.t order by id desc")
    assert table_fingerprint(con, "s", "u") == table_fingerprint(con, "s", "t")
    assert table_fingerprint(con, "s", "nope") == MISSING
    con.execute("create table s.empty (id int)")
    assert table_fingerprint(con, "s", "empty") == "0:0"


def test_digest_ignores_key_order():
    assert digest({"a": 1, "b": "x"}) == digest({"b": "x", "a": 1}) != digest({"a": 2, "b": "x"})


def test_ignored_columns_leave_the_fingerprint_alone(con):
    before = table_fingerprint(con, "s", "t", ignore=["amount"])
    con.execute("update s.t set amount = amount + 1")
    assert table_fingerprint(con, "s", "t", ignore=["amount"]) == before
    con.execute("update s.t set name = 'z' where id = 1")
    assert table_fingerprint(con, "s", "t", ignore=["amount"]) != before
