"""Manual promotion and rollback, as users do them: `clv-platform model`, the `model_promotion` job, a running API.

One materialized state (a real `clv-platform run`: warehouse, MLflow store, Dagster instance) for the module;
the tests run in order on it: the errors first (nothing moves), then a promote and a rollback followed by a
running `clv-platform serve`, then the job from Dagster, then the next evaluation judging the manual champion.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving_support import CLI, Server, raw_payload, registry_client, request, run_pipeline

pytestmark = pytest.mark.integration

MODEL = "clv_model"
DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture(scope="module")
def home(tmp_path_factory, environment_for) -> Path:
    home = tmp_path_factory.mktemp("model_lifecycle")
    run_pipeline(home, environment_for(home))
    return home


@pytest.fixture(scope="module")
def env(home, environment_for) -> dict:
    return environment_for(home)


def _model(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "model", *args], env=env, capture_output=True, text=True, timeout=600)


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (done.returncode, done.stderr[-3000:])
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _client(home: Path):
    return registry_client(home)


def _champion(home: Path) -> str:
    return str(_client(home).get_registered_model(MODEL).aliases["champion"])


def _history(home: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select from_version, champion_version, how, who, reason from ml.champion_history "
            "where coalesce(alias, 'champion') = 'champion' order by applied_at"
        ).fetchall()


def _challenger_moves(home: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select from_version, champion_version from ml.champion_history where alias = 'challenger' order by applied_at"
        ).fetchall()


def _other_version(home: Path) -> str:
    """A registered version that is not the champion, XGBoost's if there is one (its predictions differ)."""
    champion = _champion(home)
    versions = [v for v in _client(home).search_model_versions(f"name='{MODEL}'") if str(v.version) != champion]
    versions.sort(key=lambda v: (v.tags.get("rung") != "xgboost", -int(v.version)))
    return str(versions[0].version)


def _dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    from clv_platform.settings import PROJECT_ROOT

    return subprocess.run(
        [DAGSTER, *args, "-m", "clv_platform.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_history_lists_the_gate_decision_of_the_run(home, env):
    champion = _champion(home)
    assert _history(home) == [(None, champion, "gate decision", _history(home)[0][3], _history(home)[0][4])]
    assert _history(home)[0][3].startswith("ml/champion (run ")
    # The challenger alias's moves share the history: set once when the run's candidate passed the gates.
    challenger = _client(home).get_registered_model(MODEL).aliases.get("challenger")
    assert _challenger_moves(home) == ([(None, str(challenger))] if challenger is not None else [])
    done = _model(env, "history")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("|") and "applied_at" not in line and "---" not in line]
    champion_rows = [row for row in rows if "| champion |" in row]
    assert len(champion_rows) == 1 and f"v{champion}" in champion_rows[0] and "gate decision" in champion_rows[0], done.stdout
    assert len(rows) == 1 + len(_challenger_moves(home)), done.stdout


def test_refused_moves_are_one_line_and_move_nothing(home, env):
    champion, before = _champion(home), _history(home)
    _one_line_error(_model(env, "promote", "--version", "999", "--reason", "try"), "has no version '999'", "registered versions")
    _one_line_error(
        _model(env, "promote", "--version", champion, "--reason", "again"), f"version {champion} is already the champion"
    )
    _one_line_error(_model(env, "rollback", "--reason", "undo"), "no previous champion to roll back to", f"v{champion}")
    _one_line_error(_model(env, "promote", "--version", _other_version(home), "--reason", "  "), "a reason is required")
    assert (_champion(home), _history(home)) == (champion, before)


def test_a_move_is_refused_while_a_run_holds_the_state(home, env):
    champion, before = _champion(home), _history(home)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from clv_platform.state_lock import hold_state_lock\n"
            f"with hold_state_lock(Path({str(home)!r}), 'run'):\n    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        line = _one_line_error(
            _model(env, "promote", "--version", _other_version(home), "--reason", "while busy"),
            f"is in use by clv-platform run (pid {holder.pid}",
        )
        assert "one run at a time" in line
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert (_champion(home), _history(home)) == (champion, before)


def _wait_served(server: Server, version: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(f"{server.url}/v1/model", timeout=30)
        if status == 200 and body["model_version"] == version:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the API still serves {body} {timeout} s after the champion moved to v{version}")
        time.sleep(0.2)


def test_promote_then_rollback_are_followed_by_the_running_api(home, env):
    from clv_platform.ml import online

    first, other = _champion(home), _other_version(home)
    server = Server(home, env, poll_seconds=0.5)
    try:
        assert server.wait_healthy()["model_version"] == first
        promoted = _model(env, "promote", "--version", other, "--reason", "better on last week's cohort")
        assert promoted.returncode == 0, promoted.stderr
        assert f"champion v{first} -> v{other}" in promoted.stdout
        assert _champion(home) == other
        _wait_served(server, other)

        rolled = _model(env, "rollback", "--reason", "complaints from the campaign team")
        assert rolled.returncode == 0, rolled.stderr
        assert _champion(home) == first
        _wait_served(server, first)
        # POST scores with the rolled-back champion, not only the model view says so.
        manifest = online.read_manifest(home)
        customer = str(online.load_snapshot(home, manifest).tables["customers"]["customer_id"].iloc[0])
        status, scored = request(
            f"{server.url}/v1/score", raw_payload(home / "warehouse.duckdb", customer, manifest["cutoff_date"])
        )
        assert (status, scored.get("model_version")) == (200, first), scored
    finally:
        server.stop()
    user = getpass.getuser()
    assert _history(home)[-2:] == [
        (first, other, "manual promote", user, "better on last week's cohort"),
        (other, first, "rollback", user, "complaints from the campaign team"),
    ]
    listed = _model(env, "history", "--limit", "2").stdout
    rows = [line for line in listed.splitlines() if line.startswith("|") and "applied_at" not in line and "---" not in line]
    assert len(rows) == 2 and "rollback" in rows[0] and "manual promote" in rows[1], listed
    # Rolled back from `other` to the first champion: nothing is left to roll back to.
    _one_line_error(_model(env, "rollback", "--reason", "again"), "no previous champion")


def test_the_promotion_job_moves_the_alias_from_dagster_config(home, env, tmp_path):
    import dagster as dg

    first, other = _champion(home), _other_version(home)
    refused = tmp_path / "refused.yaml"
    refused.write_text("ops:\n  move_champion_alias:\n    config: {action: promote, version: '999', reason: from the UI}\n")
    done = _dagster(env, "job", "execute", "-j", "model_promotion", "-c", str(refused))
    assert done.returncode != 0 and "has no version '999'" in done.stdout + done.stderr
    assert _champion(home) == first

    config = tmp_path / "promote.yaml"
    config.write_text(f"ops:\n  move_champion_alias:\n    config: {{action: promote, version: '{other}', reason: from the UI}}\n")
    done = _dagster(env, "job", "execute", "-j", "model_promotion", "-c", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _champion(home) == other
    frm, to, how, who, reason = _history(home)[-1]
    assert (frm, to, how, reason) == (first, other, "manual promote", "from the UI") and who.startswith("Dagster (run ")

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["ml", "champion"]))
    metadata = event.asset_materialization.metadata
    assert metadata["how"].value == "manual promote" and metadata["champion_version"].value == other
    assert "| manual promote |" in metadata["history"].value and "| rollback |" in metadata["history"].value


def test_the_next_evaluation_judges_against_the_manual_champion(home, env):
    from clv_platform.ml.outcome import load_outcome

    manual = _champion(home)
    # The run's decision was made before the move by hand: ml/champion alone refuses to apply it again.
    alone = _dagster(env, "asset", "materialize", "--select", "ml/champion")
    assert alone.returncode != 0 and "the champion was set by hand after evaluation" in alone.stdout + alone.stderr
    assert _champion(home) == manual

    done = _dagster(env, "asset", "materialize", "--select", "ml/model_evaluation,ml/champion")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        outcome = load_outcome(con)
    assert outcome.champion_version_before == manual
    frm, to, how, _, _ = _history(home)[-1]
    assert (frm, how) == (manual, "gate decision") and to == (outcome.target_version or manual)
