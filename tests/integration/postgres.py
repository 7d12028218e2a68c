"""A real, throwaway PostgreSQL server for the test session (no mocks, no Docker).

Use it from a test module with

    from tests.integration.postgres import postgres_dsn  # noqa: F401

(the import registers the session-scoped fixture; it may later move to a conftest.py) and ask
for `postgres_dsn` in a test: a libpq connection string such as
"host=127.0.0.1 port=54321 dbname=tideline_test user=postgres".

How the server is started (once per session):

* the binaries are the Debian ones, /usr/lib/postgresql/<version>/bin/{initdb,pg_ctl} (the newest
  version wins; `apt-get install postgresql`), or initdb/pg_ctl on PATH (e.g. Homebrew), or the
  directory in TIDELINE_TEST_PG_BIN;
* a temp directory holds the data directory, the log and the unix socket; initdb uses trust
  auth, UTF8 and the C locale, and the server listens on 127.0.0.1 on a free port with fsync off
  (it is thrown away anyway); when running as root (CI containers), initdb and pg_ctl run as the
  unprivileged `postgres` OS user (runuser, else su) and the temp directory is owned by it;
* a database `tideline_test` is created; at the end the server is stopped (immediate) and the
  directory removed.

Without the binaries the fixture skips the test with a message, except when CI=true, where it
fails: CI must install PostgreSQL. TIDELINE_TEST_POSTGRES_DSN, when set, points the fixture at an
existing server instead (its database must be one the tests may create tables in).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATABASE = "tideline_test"
SUPERUSER = "postgres"


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([0-9.]+)/bin/", path)
    return tuple(int(p) for p in m.group(1).split(".") if p) if m else (0,)


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    override = os.environ.get("TIDELINE_TEST_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start in a temp directory; stop() stops it and removes the directory."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="tideline-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise RuntimeError(
                    "running as root but there is no `postgres` OS user to run the server as "
                    "(the Debian postgresql package creates it)"
                ) from exc
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            if shutil.which("runuser"):
                self._as_user = ["runuser", "-u", SUPERUSER, "--"]
            else:
                self._as_user = ["su", SUPERUSER, "-s", "/bin/sh", "-c"]

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={DATABASE} user={SUPERUSER} connect_timeout=5"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_user and self._as_user[0] == "su":
            import shlex

            cmd = [*self._as_user, shlex.join(cmd)]
        else:
            cmd = [*self._as_user, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\nserver log:\n{log}"
            )
        return done

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        admin = self.dsn.replace(f"dbname={DATABASE}", "dbname=postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"create database {DATABASE}")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must install PostgreSQL (apt-get install -y postgresql)", pytrace=False)
    pytest.skip(f"{message}; install PostgreSQL (apt-get install -y postgresql) to run this test")


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A libpq DSN of a throwaway PostgreSQL server (database tideline_test) started for the session."""
    existing = os.environ.get("TIDELINE_TEST_POSTGRES_DSN")
    if existing:
        yield existing
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb, pg_ctl)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install 'psycopg[binary]')")
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    try:
        yield server.dsn
    finally:
        server.stop()
