"""A fresh embedded state (warehouse, MLflow store, reports) per test module; a real PostgreSQL per session."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def clv_state(tmp_path_factory):
    """Point the warehouse, MLflow and reports at a new directory for one module, then restore."""
    root = tmp_path_factory.mktemp("clv_state")
    values = {
        "CLV_HOME": str(root),
        "CLV_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    from clv_platform import settings

    settings.configure_environment()
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def materialize_raw():
    """``materialize_raw(spec, database, first, last)``: raw/transactions loaded for the days [first, last] in one
    in-process run (an ephemeral Dagster instance), from the source spec file ``spec`` into the DuckDB file ``database``."""
    import dagster as dg
    from dagster_aws.s3 import S3Resource
    from dagster_duckdb import DuckDBResource

    from clv_platform.defs.ingestion.assets import raw_daily
    from clv_platform.lib.ingestion import RawSource, partition_range_tags

    def materialize(spec: Path, database: Path, first, last) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw_daily], selection=[dg.AssetKey(["raw", "transactions"])],
            resources={"raw_source": RawSource(spec_path=str(spec)), "warehouse": DuckDBResource(database=str(database)),
                       "s3": S3Resource(region_name="us-east-1")},
            tags=partition_range_tags(first, last),
        )

    return materialize


# A real PostgreSQL server for the session ----------------------------------------------------------

PG_USER, PG_DATABASE = "clv", "clv_test"


def _postgres_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: pg_config's, Debian's newest, or PATH's."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A fresh PostgreSQL server on 127.0.0.1 for the session; yields the DSN of an empty database.

    The DSN is ``postgresql://clv:<password>@127.0.0.1:<port>/clv_test``; ``clv`` is a superuser, so a
    test may create schemas, tables and roles. Tests share the database: name tables per test module.
    PostgreSQL refuses to run as root, so under root the server runs as Debian's ``postgres`` user.
    """
    import psycopg

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found in pg_config --bindir, "
                    "/usr/lib/postgresql/*/bin or PATH: run `apt-get install postgresql`", pytrace=False)
    as_root = os.geteuid() == 0
    if as_root:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' user to run the server as: "
                        "run `apt-get install postgresql`", pytrace=False)
    # Not under pytest's tmp_path: its root-only parent would keep the server user out.
    root = Path(tempfile.mkdtemp(prefix="clv-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    password = secrets.token_hex(16)
    pwfile.write_text(password)
    if as_root:
        for path in (root, pwfile):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)

    def run(*command: str) -> subprocess.CompletedProcess:
        command = ("runuser", "-u", "postgres", "--", *command) if as_root else command
        return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)

    try:
        initdb = run(str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}", "-E", "UTF8",
                     "--no-locale", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256")
        pwfile.unlink()
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed ({initdb.returncode}): {(initdb.stdout + initdb.stderr)[-2000:]}", pytrace=False)
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
        # -w: pg_ctl returns once the server accepts connections, or fails after -t seconds.
        started = run(str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60")
        server_log = log.read_text()[-2000:] if log.exists() else "(no server log)"
        if started.returncode != 0:
            pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{port}: {started.stderr.strip()}; server log: {server_log}",
                        pytrace=False)
        server = f"postgresql://{PG_USER}:{password}@127.0.0.1:{port}"
        try:
            with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as con:
                con.execute(f"create database {PG_DATABASE}")
        except psycopg.Error as error:
            pytest.fail(f"PostgreSQL on 127.0.0.1:{port} refused the test's connection: {error}; server log: "
                        f"{log.read_text()[-2000:]}", pytrace=False)
        yield f"{server}/{PG_DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
        shutil.rmtree(root, ignore_errors=True)
