"""A fresh embedded state (warehouse, MLflow store, reports) per test module; a real PostgreSQL and a real
S3-compatible server (moto_server) per session, each started only when a test asks for it; `dagster dev`
started on demand. The dbt manifest is parsed once per session and copied into the state directory of
every ``dagster``/``clv-platform`` process the tests start, which would otherwise each parse it again."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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
    """``materialize_raw(spec, database, first, last, s3=None, raise_on_error=True)``: raw/transactions loaded for the
    days [first, last] in one in-process run (an ephemeral Dagster instance), from the source spec file ``spec`` into
    the DuckDB file ``database``. ``s3`` is the S3 resource (default: one that no test source reaches)."""
    import dagster as dg
    from dagster_aws.s3 import S3Resource
    from dagster_duckdb import DuckDBResource

    from clv_platform.defs.ingestion.assets import raw_daily
    from clv_platform.lib.ingestion import RawSource, partition_range_tags

    def materialize(spec: Path, database: Path, first, last, s3=None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw_daily],
            selection=[dg.AssetKey(["raw", "transactions"])],
            resources={
                "raw_source": RawSource(spec_path=str(spec)),
                "warehouse": DuckDBResource(database=str(database)),
                "s3": s3 or S3Resource(region_name="us-east-1"),
            },
            tags=partition_range_tags(first, last),
            raise_on_error=raise_on_error,
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
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in pg_config --bindir, "
            "/usr/lib/postgresql/*/bin or PATH: run `apt-get install postgresql`",
            pytrace=False,
        )
    as_root = os.geteuid() == 0
    if as_root:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "running as root and there is no 'postgres' user to run the server as: run `apt-get install postgresql`",
                pytrace=False,
            )
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
        initdb = run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed ({initdb.returncode}): {(initdb.stdout + initdb.stderr)[-2000:]}", pytrace=False)
        # A free port can be taken before the server binds it (xdist workers start servers side by side): retry.
        for _attempt in range(3):
            port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
            # -w: pg_ctl returns once the server accepts connections, or fails after -t seconds.
            started = run(str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60")
            server_log = log.read_text()[-2000:] if log.exists() else "(no server log)"
            if started.returncode == 0 or "could not bind" not in server_log:
                break
        if started.returncode != 0:
            pytest.fail(
                f"PostgreSQL did not start on 127.0.0.1:{port}: {started.stderr.strip()}; server log: {server_log}", pytrace=False
            )
        server = f"postgresql://{PG_USER}:{password}@127.0.0.1:{port}"
        try:
            with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as con:
                con.execute(f"create database {PG_DATABASE}")
        except psycopg.Error as error:
            pytest.fail(
                f"PostgreSQL on 127.0.0.1:{port} refused the test's connection: {error}; server log: {log.read_text()[-2000:]}",
                pytrace=False,
            )
        yield f"{server}/{PG_DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
        shutil.rmtree(root, ignore_errors=True)


# A real S3-compatible server (moto_server) for the session ---------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto_server on loopback, started once for the tests that need S3; always stopped at teardown.

    Tests share it: each makes its own bucket (a random name).
    """
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    executable = Path(sys.executable).parent / "moto_server"
    server = None
    try:
        # A free port can be taken before the server binds it (xdist workers start servers side by side): retry.
        for attempt in range(3):
            port = _free_port()
            with open(log_path, "wb") as log:
                server = subprocess.Popen([str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
            endpoint = f"http://127.0.0.1:{port}"
            if _serving(server, endpoint, log_path, retry_in_use=attempt < 2):
                break
        yield endpoint
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _serving(server: subprocess.Popen, endpoint: str, log_path: Path, retry_in_use: bool) -> bool:
    """Wait until moto_server answers on ``endpoint``: True, or False if it lost its port to another process."""
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            if retry_in_use and "in use" in log_path.read_text():
                return False
            pytest.fail(f"moto_server exited with {server.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(endpoint, timeout=1) as response:
                # Another server may hold the port moto_server failed to bind: only S3's answer counts.
                if b"ListAllMyBucketsResult" in response.read():
                    return True
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {endpoint} within 30 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)


@pytest.fixture
def aws_env(monkeypatch, moto_endpoint, tmp_path) -> str:
    """Credentials and endpoint for the local server only; no profile or config file of the machine."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return moto_endpoint


@pytest.fixture
def s3_client(aws_env):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=aws_env,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# `dagster dev` as a user starts it -----------------------------------------------------------------


class DagsterDev:
    """A running ``dagster dev`` on the project's workspace: its port, its log and its GraphQL API."""

    def __init__(self, port: int, process: subprocess.Popen, log: Path):
        self.port, self.process, self.log = port, process, log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def wait_until_serving(self, timeout: float = 180) -> DagsterDev:
        """Block until the code location is loaded (or failed to load, which the UI shows too)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                entries = self.graphql(_LOCATION_LOADED)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"dagster dev did not serve the location:\n{self.log_tail()}")
            time.sleep(1)


def _session_dbt_target() -> Path:
    """The dbt target dir of this process: its manifest is parsed once, when the dbt project is first needed."""
    from clv_platform.lib.dbt import dbt_project, ensure_manifest

    return ensure_manifest(dbt_project()).parent


def _seed_dbt_target(home: Path) -> None:
    """Copy the session's parsed manifest into ``home``'s dbt target dir, unless one is there already.

    A process on ``home`` then finds a manifest newer than every dbt source file and does not parse the
    project again (``ensure_manifest``); dagster-dbt copies ``partial_parse.msgpack`` into each dbt run's
    target dir, so dbt can reuse the parse where the profile and vars allow it.
    """
    from clv_platform import settings

    target = home / settings.dbt_target_dir().relative_to(settings.state_dir())
    if (target / "manifest.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    source = _session_dbt_target()
    for name in ("partial_parse.msgpack", "manifest.json"):  # the manifest last: its presence means complete
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


def _create_dagster_storage(dagster_home: Path) -> None:
    """The instance's sqlite storage made once, here: processes started side by side (``dagster dev``, the CLI,
    the test itself) would otherwise each create and migrate it, and one can find the schema half made."""
    import dagster as dg

    from clv_platform import settings

    if (dagster_home / "history" / "runs.db").exists():
        return
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings.ensure_dagster_yaml(dagster_home)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)


def _environment_for(home: Path, **env: str) -> dict[str, str]:
    """This process's environment for a platform process on state directory ``home`` (DAGSTER_HOME inside it).

    The session's dbt manifest is copied into ``home`` first, so the process does not parse the project.
    """
    _create_dagster_storage(home / "dagster")
    _seed_dbt_target(home)
    environment = {**os.environ, "CLV_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **env}
    # Derived from CLV_HOME by the process itself; inherited values would point at this process's state.
    # MLflow writes MLFLOW_REGISTRY_URI into this process's environment when a test sets a registry.
    for var in ("CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DBT_TARGET_PATH", "DBT_LOG_PATH"):
        environment.pop(var, None)
    return environment


@pytest.fixture(scope="session")
def environment_for():
    """``environment_for(home, **env)``: the environment of a ``dagster`` or ``clv-platform`` process on state ``home``."""
    return _environment_for


_LOCATION_LOADED = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"


@pytest.fixture(scope="module")
def start_dagster_dev() -> Iterator:
    """Start ``dagster dev`` with ``CLV_HOME=home`` (plus ``env``); unless ``wait=False``, wait until it serves the code location.

    Every server started is stopped when the module ends: SIGINT to its process group, SIGKILL after 30 s.
    """
    started: list[DagsterDev] = []

    def start(home: Path, wait: bool = True, **env: str) -> DagsterDev:
        from clv_platform.settings import PROJECT_ROOT

        port = _free_port()
        environment = _environment_for(home, **env)
        log = home / "dagster_dev.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "dagster"),
                    "dev",
                    "-w",
                    str(PROJECT_ROOT / "workspace.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=PROJECT_ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Background processes inherit an ignored SIGINT, which dagster dev needs to stop.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        server = DagsterDev(port, process, log)
        started.append(server)
        return server.wait_until_serving() if wait else server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGINT)
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()


# A user's log of only customer, date and amount ---------------------------------------------------


@pytest.fixture(scope="session")
def write_amount_log():
    """``write_amount_log(path)``: orders of 600 generated customers over two years (to 2025-12-31) as a CSV of
    ``cust, day, total``, plus one line whose amount is not a number; returns the number of lines."""
    return _amount_log


def _amount_log(path: Path) -> int:
    """Orders of 600 generated customers over two years, reduced to customer, day and amount."""
    from clv_platform.datagen import generate

    lines = generate(600, seed=11, years=2).transactions
    lines = lines[lines["CustomerID"].notna()].assign(amount=lambda d: d["Quantity"] * d["UnitPrice"])
    orders = lines.groupby(["CustomerID", "InvoiceNo"], as_index=False).agg(day=("InvoiceDate", "min"), total=("amount", "sum"))
    orders["day"] = orders["day"].dt.strftime("%Y-%m-%d")
    log = orders.rename(columns={"CustomerID": "cust"})[["cust", "day", "total"]]
    # One line that cannot be an amount: quarantined, not lost.
    log.loc[len(log)] = ["12346", "2024-05-05", "n/a"]
    log.to_csv(path, index=False)
    return len(log)
