"""activation.warehouse: the one quoting helper, bound parameters, and DuckDB's limits for a sync."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from activation.warehouse import (
    DuckDBLimits,
    UnsafeIdentifier,
    WarehouseMemoryError,
    execute,
    limited,
    literal,
    quote_identifier,
    quote_relation,
)


def test_any_printable_name_is_quoted_and_round_trips() -> None:
    con = duckdb.connect()
    for name in ['Mother\'s "Day"', "x'; drop table t; --", "ümlaut ✓", "select"]:
        con.execute(f"create table {quote_identifier(name)} (v integer)")
        found = con.execute("select table_name from information_schema.tables where table_name = ?", [name])
        assert found.fetchall() == [(name,)]
    assert con.execute(f"select {literal('it' + chr(39) + 's')}").fetchone() == ("it's",)


@pytest.mark.parametrize("name", ["", "a\nb", "tab\there", "nul\x00", "x" * 256])
def test_what_cannot_be_quoted_is_rejected(name: str) -> None:
    with pytest.raises(UnsafeIdentifier):
        quote_identifier(name)


def test_relations_are_quoted_part_by_part() -> None:
    assert quote_relation("marts.dim_customers") == '"marts"."dim_customers"'
    for bad in ["marts.", ".x", "a.b.c.d", "marts.x\n"]:
        with pytest.raises(UnsafeIdentifier):
            quote_relation(bad)
    with pytest.raises(UnsafeIdentifier):
        literal("nul\x00")


def test_execute_binds_only_the_parameters_a_statement_uses() -> None:
    con = duckdb.connect()
    values = {"name": "x'; drop table t; --", "other": 1, "name_2": "second"}
    assert execute(con, "select $name, $name_2", values).fetchone() == ("x'; drop table t; --", "second")
    with pytest.raises(KeyError, match="missing_one"):
        execute(con, "select $missing_one", values)


def test_limits_come_from_the_settings_then_the_environment_then_the_defaults() -> None:
    assert DuckDBLimits.resolve(env={}) == DuckDBLimits("128MB", 2, "")
    env = {
        "TIDELINE_DUCKDB_MEMORY_LIMIT": "1GB",
        "TIDELINE_DUCKDB_THREADS": "4",
        "TIDELINE_DUCKDB_TEMP_DIR": "/tmp/spill",
    }
    assert DuckDBLimits.resolve(env=env) == DuckDBLimits("1GB", 4, "/tmp/spill")
    assert DuckDBLimits.resolve("512 MiB", 1, "/x", env=env) == DuckDBLimits("512MiB", 1, "/x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIDELINE_DUCKDB_MEMORY_LIMIT": "lots"}, "TIDELINE_DUCKDB_MEMORY_LIMIT / memory_limit 'lots'"),
        ({"TIDELINE_DUCKDB_MEMORY_LIMIT": "1GB; drop"}, "TIDELINE_DUCKDB_MEMORY_LIMIT"),
        ({"TIDELINE_DUCKDB_THREADS": "0"}, "TIDELINE_DUCKDB_THREADS / threads must be a whole number"),
    ],
)
def test_a_bad_limit_is_an_error_naming_the_setting(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DuckDBLimits.resolve(env=env)


def test_limits_hold_inside_and_are_restored_after(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    before = con.execute("select current_setting('memory_limit'), current_setting('threads')").fetchone()
    spill = tmp_path / "spill"
    with limited(con, DuckDBLimits("64MB", 1, str(spill)), "a test"):
        inside = con.execute(
            "select current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
        ).fetchone()
    assert inside == ("61.0 MiB", 1, str(spill))
    assert (
        con.execute("select current_setting('memory_limit'), current_setting('threads')").fetchone() == before
    )


def test_running_out_of_memory_names_the_setting_to_raise(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table t as select i, md5(cast(i as varchar)) as s from range(300000) r(i)")
    with pytest.raises(WarehouseMemoryError) as raised, limited(con, DuckDBLimits("2MB", 1), "sync seg__esp"):
        con.execute("select s, count(*) from t group by s order by 2 desc, 1").fetchall()
    message = str(raised.value)
    assert "sync seg__esp ran out of DuckDB memory under memory_limit 2MB" in message
    assert (
        "raise TIDELINE_DUCKDB_MEMORY_LIMIT (or ActivationConfigResource.memory_limit), e.g. to 4MB"
        in message
    )
