"""``clv-platform``: run the graph, evaluate every model on any log, open the UI, serve scores, or move the champion by hand."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from clv_platform import settings

if TYPE_CHECKING:
    from clv_platform.ml.outcome import EvaluationOutcome

MAIN_JOB = "clv_full_pipeline"
EVALUATION_JOB = "clv_evaluation"
# Variables derived from CLV_HOME: an evaluation gets its own state, whatever the shell points at.
_STATE_VARIABLES = (
    "CLV_WAREHOUSE_PATH",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "DAGSTER_HOME",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
)


def _ingest_config(args: argparse.Namespace):
    from clv_platform.defs.ingestion.assets import IngestConfig

    return IngestConfig(n_customers=args.customers, seed=args.seed, end_date=args.end_date)


def _run_config(args: argparse.Namespace):
    import dagster as dg

    from clv_platform.defs.ingestion.assets import raw_customers, raw_daily

    ingest = _ingest_config(args)
    # INFO, not DEBUG: step starts, dbt's summary and our own log lines, without the event firehose.
    return dg.RunConfig(
        ops={raw_daily.op.name: ingest, raw_customers.op.name: ingest}, loggers={"console": {"config": {"log_level": "INFO"}}}
    )


def _warehouse_path() -> str:
    """The warehouse the definitions' resource writes: ``$CLV_WAREHOUSE_PATH`` (set by ``configure_environment``)."""
    return os.environ.get("CLV_WAREHOUSE_PATH") or str(settings.warehouse_path())


def _summary(run_id: str, seconds: float, refused: bool = False, history_start=None) -> str:
    """What the run built, read from the warehouse: row counts, tiers, the evaluation, the champion, explanations, drift."""
    import duckdb

    from clv_platform.lib.warehouse import markdown_table
    from clv_platform.ml import batches
    from clv_platform.ml.outcome import load_champion, load_outcome

    outcome = "finished, the candidate refused by the gates," if refused else "succeeded"
    lines = [f"clv_full_pipeline {outcome} in {seconds:.1f} s (run {run_id})", ""]
    with duckdb.connect(_warehouse_path(), read_only=True) as con:
        for table in (
            "raw.transactions",
            "raw.behavioral_events",
            "raw.transactions_quarantine",
            "raw.behavioral_events_quarantine",
            "raw.customers",
            "marts.customer_features",
            "marts.training_examples",
            "scoring.clv_scores",
            "scoring.value_tiers",
            "scoring.clv_explanations",
        ):
            try:
                count = con.execute(f"select count(*) from {table}").fetchone()[0]
            except duckdb.CatalogException:  # a quarantine table is made by the first load that needs one
                count = 0
            lines.append(f"  {table:<34} {count:>10,} rows")
        top = con.execute(
            "select value_tier, count(*), round(sum(predicted_clv)) from scoring.value_tiers "
            "where cutoff_date = (select max(cutoff_date) from scoring.value_tiers) group by value_tier order by 3 desc"
        ).fetchall()
        evaluation = load_outcome(con)
        champion = load_champion(con)
        explained = batches.latest(con, batches.EXPLANATION_BATCHES_TABLE, batches.ExplanationBatch)
        drift = batches.latest(con, batches.DRIFT_REPORTS_TABLE, batches.DriftReport)
        excluded = excluded_by_history_start(con, history_start)
    if excluded:
        lines.append(f"  {excluded}")
    lines.append("")
    for tier, n, value in top:
        lines.append(f"  {tier:<7} tier: {n:>6,} customers, predicted value {value:>14,.0f}")

    metrics = champion.metrics
    lines += [
        "",
        f"  models on the evaluation cutoff {evaluation.evaluation_cutoff} ({training_phrase(evaluation, rows=False)}):",
        *("  " + row for row in markdown_table(evaluation.metrics_table(), floatfmt=".4f").splitlines()),
    ]
    lines += [
        "",
        f"  champion: {champion.model_name} v{champion.champion_version} ({champion.champion_rung}"
        f"{', a baseline' if champion.baseline_serves else ''}): MAE {metrics['mae']:.2f}, "
        f"Spearman {metrics['spearman']:.3f}, normalized Gini {metrics['normalized_gini']:.3f}",
        f"  decision: {champion.reason}",
        "  explanations (scoring.clv_explanations): "
        + (
            f"none, the {explained.model_rung} model has no per-feature contributions"
            if explained.method == "none"
            else f"top {explained.top_drivers} drivers of every scored customer by {explained.method}, "
            f"in {explained.explain_seconds:.1f} s"
        ),
        f"  drift: prediction PSI {drift.prediction_psi:.3f}, drifted columns: {', '.join(drift.drifted) or 'none'}",
        f"  drift report: {drift.report_path}",
        "",
        f"State lives in {settings.state_dir()} (warehouse, MLflow store, Dagster home).",
        "Open the UI on it:  uv run clv-platform dev",
        f"  (that is: DAGSTER_HOME={settings.dagster_home()} uv run dagster dev -w workspace.yaml)",
    ]
    return "\n".join(lines)


def training_phrase(outcome: EvaluationOutcome, rows: bool = True) -> str:
    """What the supervised rungs were trained on, true also when none was: the cutoffs (and rows), or why not."""
    if outcome.train_cutoffs:
        counted = f" ({outcome.train_rows:,} customer-cutoff rows)" if rows else ""
        return f"trained on {'cutoffs ' if rows else ''}{', '.join(outcome.train_cutoffs)}{counted}"
    reason = outcome.no_candidate_reason or "no training cutoff"
    if "history too short" in reason:
        reason = (
            f"no training cutoff's {outcome.horizon_days}-day label window ends by the evaluation cutoff "
            f"{outcome.evaluation_cutoff} (the history is too short)"
        )
    return f"no supervised model trained: {reason}; the heuristic and BTYD are fitted on the evaluation cutoff's features"


def excluded_by_history_start(con, history_start) -> str | None:
    """How many transaction rows a set ``history_start`` quarantined, as a sentence; None when it is unset."""
    if history_start is None:
        return None
    n = con.execute("select count(*) from raw.transactions_quarantine where rule = 'timestamp_in_history'").fetchone()[0]
    return f"history_start {history_start} excluded {n:,} rows dated before it (quarantined, rule timestamp_in_history)"


def _user_error(error: BaseException | str) -> int:
    """A user error: one line on stderr naming what and where, exit code 2."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


# Errors that name a problem of the input (the spec, the source, the environment), not of the platform.
USER_ERRORS = ("SourceError", "SpecError", "ValueError")


def step_error(event) -> tuple[str, bool]:
    """A failed step's own message (not Dagster's wrapper around it) and whether it is a user error.

    A ``dg.Failure`` carrying a ``rule`` is an input that broke a rule (an unreadable source); any other
    error is judged by its class: the platform's validation raises :data:`USER_ERRORS`.
    """
    data = event.event_specific_data
    failure = data.user_failure_data
    if failure is not None and failure.description:
        return " ".join(failure.description.split()), "rule" in (failure.metadata or {})
    error = data.error
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    text = error.message.strip()
    head, _, rest = text.partition(": ")
    if head.split(".")[-1] == error.cls_name:
        text = rest
    return " ".join(text.split()), error.cls_name in USER_ERRORS


@contextlib.contextmanager
def output_to(path: Path):
    """Send this process's standard output and error to ``path`` (file descriptors 1 and 2) while the block runs.

    Dagster's console log, dbt's streamed output and library warnings are written there by the step code;
    the run keeps its event log and compute logs for the UI, and the terminal gets the summary or the
    failed steps, printed after the block.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield path
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def report_failed_steps(result, job_name: str, seconds: float) -> int:
    """Print the failed steps, user errors last (the last line is what to fix); return the exit code."""
    failures = sorted((step_error(e) + (e.step_key,) for e in result.all_events if e.is_step_failure), key=lambda f: f[1])
    print(f"{job_name} failed after {seconds:.1f} s (run {result.run_id}).", file=sys.stderr)
    for message, user, step in failures:
        print(f"{'error' if user else 'FAILED'}: {step}: {message}", file=sys.stderr)
    return 2 if failures and all(user for _, user, _ in failures) else 1


def run(args: argparse.Namespace) -> int:
    # An environment variable, not the RawSource resource: the daily partitions start on the spec's
    # history_start, read when the definitions load, and the daemon's processes read the same spec.
    if args.source:
        os.environ["CLV_SOURCE_CONFIG"] = os.path.abspath(args.source)
    settings.configure_environment()
    from clv_platform.ingest.spec import load_spec
    from clv_platform.state_lock import StateBusy, hold_state_lock

    try:
        # Before anything heavy: a spec that cannot be read is one line, not a failed run.
        spec = load_spec()
    except (ValueError, OSError) as error:
        return _user_error(error)
    try:
        with hold_state_lock(settings.state_dir(), "run") as lock:
            return _run_holding(args, spec, lock)
    except StateBusy as error:
        return _user_error(error)


def _run_holding(args: argparse.Namespace, spec, lock) -> int:
    import dagster as dg

    instance = dg.DagsterInstance.get()
    busy = _live_run(instance)
    if busy:
        return _user_error(busy)

    from clv_platform.definitions import defs
    from clv_platform.defs.resources import s3_from_environment
    from clv_platform.ingest.readers import SourceError
    from clv_platform.lib.ingestion import partition_range_tags, source_date_range

    started = time.perf_counter()
    definitions = defs()
    job = definitions.resolve_job_def(MAIN_JOB)
    print(f"Definitions loaded in {time.perf_counter() - started:.1f} s; running {MAIN_JOB} ...", flush=True)
    try:
        # A full load covers every day the source has, as one run over that partition range.
        s3_client = s3_from_environment().get_client() if spec.transactions.kind == "s3" else None
        first, last = source_date_range(spec, _ingest_config(args).generator_options(spec), s3_client)
    except (SourceError, ValueError, OSError) as error:
        return _user_error(error)
    print(f"Source: {spec.transactions.kind}; loading daily partitions {first} .. {last}", flush=True)
    started = time.perf_counter()
    run_id = str(uuid.uuid4())  # Dagster's run ids are UUID4s; known before the run, for the lock record
    lock.record(run_id=run_id)
    log = settings.state_dir() / "logs" / f"{MAIN_JOB}-{run_id}.log"
    print(f"Running; the steps' log goes to {log} (and to the run in the UI) ...", flush=True)
    with output_to(log):
        result = job.execute_in_process(
            run_config=_run_config(args),
            instance=instance,
            raise_on_error=False,
            run_id=run_id,
            tags={**partition_range_tags(first, last), **lock.run_tags()},
        )
    elapsed = time.perf_counter() - started
    failures = [e for e in result.all_events if e.is_step_failure]
    if not result.success and not refused_by_gates(result):
        return report_failed_steps(result, MAIN_JOB, elapsed)
    print(_summary(result.run_id, elapsed, refused=bool(failures), history_start=spec.history_start))
    if failures:
        refused = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        print(
            f"\nThe candidate was refused by the gates ({', '.join(refused)}): it is registered but holds no alias, "
            "and the run is marked failed in Dagster for that reason only; every other step succeeded."
        )
    return 0


def _live_run(instance) -> str | None:
    """Why the warehouse is busy: a live run on the Dagster instance (after failing runs of dead CLI processes)."""
    import dagster as dg

    from clv_platform.lib.runs import fail_dead_cli_runs

    for run_id in fail_dead_cli_runs(instance):
        print(f"Run {run_id} was left unfinished by a clv-platform process that died: marked failed.", flush=True)
    # Runs the daemon launched (schedules, sensors, backfills, the UI) write the same warehouse.
    live = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
        ),
        limit=1,
    )
    if not live:
        return None
    busy = live[0].dagster_run
    return (
        f"run {busy.run_id} of {busy.job_name} is {busy.status.value} on the Dagster instance in {instance.root_directory}: "
        "wait for it to finish (or cancel it in the UI); the warehouse takes one run at a time"
    )


def model(args: argparse.Namespace) -> int:
    """``clv-platform model promote|rollback|challenger|rollout|history``: move an alias or the rollout, or list the moves."""
    settings.configure_environment()
    if args.model_command == "history":
        return _model_history(args)
    from clv_platform.state_lock import StateBusy, hold_state_lock

    try:
        # Both write the warehouse: refused, like `run`, while another run holds the state.
        with hold_state_lock(settings.state_dir(), f"model {args.model_command}"):
            return _move_holding(args)
    except StateBusy as error:
        return _user_error(error)


def _move_holding(args: argparse.Namespace) -> int:
    import getpass

    import dagster as dg
    import duckdb

    from clv_platform.ml.lifecycle import LifecycleError, change_rollout, move_champion, set_challenger

    busy = _live_run(dg.DagsterInstance.get())
    if busy:
        return _user_error(busy)
    who = getpass.getuser()
    try:
        with duckdb.connect(_warehouse_path()) as con:
            if args.model_command == "rollout":
                rollout, record = change_rollout(
                    con, args.model_name, mode=args.mode, share=args.share, salt=args.salt, reason=args.reason, who=who
                )
            elif args.model_command == "challenger":
                record = set_challenger(con, args.model_name, version=args.version, reason=args.reason, who=who)
            else:
                record = move_champion(
                    con, args.model_name, args.model_command, version=getattr(args, "version", None), reason=args.reason, who=who
                )
    except LifecycleError as error:
        return _user_error(error)
    before = f"v{record.from_version}" if record.from_version else "none"
    if args.model_command == "rollout":
        challenger = f"v{record.champion_version}" if record.champion_version else "none yet"
        print(f"rollout: {record.model_name} {rollout.describe()}, challenger {challenger}, by {record.who}: {record.reason}")
    else:
        print(
            f"{record.how}: {record.model_name} {record.alias} {before} -> v{record.champion_version} ({record.champion_rung}) "
            f"by {record.who}: {record.reason}"
        )
    print("A running `clv-platform serve` follows within its poll interval; the next scoring follows at once.")
    return 0


def _model_history(args: argparse.Namespace) -> int:
    import duckdb

    from clv_platform.lib.warehouse import markdown_table
    from clv_platform.ml.lifecycle import history_rows
    from clv_platform.ml.outcome import load_history

    path = _warehouse_path()
    if not os.path.exists(path):
        return _user_error(f"no warehouse at {path}: run `clv-platform run` first")
    try:
        with duckdb.connect(path, read_only=True) as con:
            history = load_history(con, args.model_name)
    except duckdb.IOException as error:
        return _user_error(f"cannot read {path}: {error}")
    if not history:
        return _user_error(f"ml.champion_history in {path} holds no move of {args.model_name!r}: run `clv-platform run` first")
    import pandas as pd

    print(markdown_table(pd.DataFrame(history_rows(history, args.limit))))
    return 0


def refused_by_gates(result) -> bool:
    """Whether the only failure of a run is the gate checks of ``ml/challenger`` refusing the candidate.

    That is a decision, not a breakage: the champion (or the best baseline) scored in the same run.
    """
    from clv_platform.defs.training.assets import challenger

    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    return failed_steps == {challenger.op.name} and all(
        e.passed or e.asset_key == challenger.key for e in result.get_asset_check_evaluations()
    )


def _evaluation_spec(args: argparse.Namespace, state: Path) -> Path:
    """The source spec to evaluate: ``--source`` as given, or one written for ``--file`` and its options."""
    from datetime import date

    import yaml

    file_only = {"--mapping": args.mapping, "--preset": args.preset, "--no-header": args.no_header}
    file_only |= {"--delimiter": args.delimiter, "--history-start": args.history_start}
    given = [flag for flag, value in file_only.items() if value]
    if args.source:
        if given:
            raise ValueError(f"{', '.join(given)} apply to --file only: with --source, set them in {args.source}")
        return Path(args.source).resolve()
    source: dict = {"kind": "files", "path": str(Path(args.file).resolve())}
    if args.preset:
        source["preset"] = args.preset
    if args.no_header:
        source["header"] = False
    if args.delimiter:
        source["delimiter"] = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    if args.mapping:
        pairs = [item.split("=", 1) for item in args.mapping.split(",") if item.strip()]
        bad = [item for item in pairs if len(item) != 2 or not item[0].strip() or not item[1].strip()]
        if bad:
            raise ValueError(
                f"--mapping must be canonical=column pairs separated by commas, e.g. "
                f"customer_id=cust,invoice_date=day,amount=total; got {args.mapping!r}"
            )
        source["columns"] = {key.strip(): value.strip() for key, value in pairs}
    written: dict = {"transactions": source}
    if args.history_start:
        written["history_start"] = date.fromisoformat(args.history_start)
    spec = state / "source.yaml"
    spec.write_text(yaml.safe_dump(written, sort_keys=False))
    return spec


def evaluate(args: argparse.Namespace) -> int:
    """Features and every model on any transaction log: print the metrics table and save it in ``--out``."""
    from clv_platform.state_lock import StateBusy, hold_state_lock

    out = Path(args.out).resolve()
    state = Path(args.state).resolve() if args.state else out / "state"
    try:
        # Held before the spec is written into the state directory: a live evaluation keeps reading it.
        with hold_state_lock(state, "evaluate"):
            return _evaluate_holding(args, out, state)
    except StateBusy as error:
        return _user_error(error)


def _evaluate_holding(args: argparse.Namespace, out: Path, state: Path) -> int:
    from datetime import date, timedelta

    os.environ[settings.STATE_DIR_ENV] = str(state)
    for variable in _STATE_VARIABLES:
        os.environ.pop(variable, None)
    try:
        cutoff = date.fromisoformat(args.cutoff)
        if args.horizon < 1 or args.training_cutoffs < 1 or args.spacing_days < 1:
            raise ValueError("--horizon, --training-cutoffs and --spacing-days must be at least 1")
        spec_path = _evaluation_spec(args, state)
    except ValueError as error:
        return _user_error(error)
    os.environ["CLV_SOURCE_CONFIG"] = str(spec_path)
    settings.configure_environment()
    import dagster as dg

    from clv_platform.definitions import defs
    from clv_platform.defs.features.assets import DBT_ASSETS_NAME, FeatureConfig
    from clv_platform.defs.training.assets import TrainConfig, model_evaluation
    from clv_platform.ingest.readers import SourceError
    from clv_platform.ingest.spec import load_spec
    from clv_platform.lib.ingestion import partition_range_tags, source_date_range

    # The latest training cutoff of the dbt build is its cutoff_date minus the horizon: the evaluation cutoff.
    label_end = cutoff + timedelta(days=args.horizon)
    try:
        first, last = source_date_range(load_spec())
    except (SourceError, ValueError, OSError) as error:
        return _user_error(error)
    if last < label_end - timedelta(days=1):
        print(
            f"error: the log ends on {last}, but the {args.horizon}-day horizon after the cutoff {cutoff} needs "
            f"days through {label_end - timedelta(days=1)}: choose an earlier --cutoff or a shorter --horizon",
            file=sys.stderr,
        )
        return 2
    features = FeatureConfig(
        cutoff_date=str(label_end),
        horizon_days=args.horizon,
        training_cutoffs=args.training_cutoffs,
        cutoff_spacing_days=args.spacing_days,
    )
    training = TrainConfig(eval_cutoff=str(cutoff), tune=args.tune, tune_trials=args.tune_trials)
    run_config = dg.RunConfig(
        ops={DBT_ASSETS_NAME: features, model_evaluation.op.name: training},
        loggers={"console": {"config": {"log_level": "WARNING"}}},
    )
    print(
        f"Evaluating on {spec_path}: days {first} .. {last}; cutoff {cutoff}, horizon {args.horizon} days; state in {state} ...",
        flush=True,
    )
    started = time.perf_counter()
    job = defs().resolve_job_def(EVALUATION_JOB)
    result = job.execute_in_process(
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags=partition_range_tags(first, min(last, label_end - timedelta(days=1))),
    )
    if not result.success:
        return report_failed_steps(result, EVALUATION_JOB, time.perf_counter() - started)
    import duckdb

    from clv_platform.ml.outcome import load_outcome

    # The outcome this run stored, by the id its materialization names.
    (materialization,) = result.asset_materializations_for_node(model_evaluation.op.name)
    with duckdb.connect(_warehouse_path(), read_only=True) as con:
        outcome = load_outcome(con, materialization.metadata["evaluation_id"].value)
        excluded = excluded_by_history_start(con, load_spec().history_start)
    write_evaluation(outcome, out, source=str(args.source or args.file), seconds=time.perf_counter() - started, excluded=excluded)
    print((out / "metrics.md").read_text())
    print(f"Saved {out / 'metrics.md'} and {out / 'metrics.csv'}.")
    if args.tune and not outcome.train_cutoffs:
        # Tuning searches the supervised rung's parameters; with no supervised rung there is nothing to tune.
        print(f"note: --tune refused: {training_phrase(outcome).split(';')[0]}, so there is nothing to tune", file=sys.stderr)
    return 0


def write_evaluation(outcome: EvaluationOutcome, out: Path, *, source: str, seconds: float, excluded: str | None = None) -> None:
    """``metrics.csv`` (one row per model) and ``metrics.md`` (the table with its window and the decision).

    ``metrics.csv`` is opened in spreadsheets: text cells that would run as formulas are prefixed with ``'``
    (:func:`clv_platform.export.neutralize_formulas`).
    """
    from clv_platform.export import neutralize_formulas
    from clv_platform.lib.warehouse import markdown_table

    table, _ = neutralize_formulas(outcome.metrics_table())
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "metrics.csv", index=False)
    actual = outcome.actual_fairness_ratio
    lines = [
        f"Source: {source}. Evaluation cutoff {outcome.evaluation_cutoff}, horizon {outcome.horizon_days} days, "
        f"{outcome.evaluation_rows:,} customers; {training_phrase(outcome)}. {seconds:.0f} s."
        + (f" The {excluded}." if excluded else ""),
        "",
        markdown_table(outcome.metrics_table(), floatfmt=".4f"),
        "",
        "Fairness (disparate-impact ratio of mean prediction across slices):",
        "",
        markdown_table(outcome.fairness_table(), floatfmt=".3f"),
        "",
        f"The actual revenue's own disparate-impact ratio on these slices: {actual:.3f}. "
        + (
            "The fairness gate reads `fairness_ratio`: each model's ratio relative to the actual revenue's, capped at 1."
            if outcome.fairness_relative_to_actual
            else "The fairness gate reads the plain ratio."
        )
        if actual == actual
        else "No disparate-impact ratio: fewer than two slices of at least 30 customers (no country or channel in the log).",
        "",
        f"Decision: {outcome.champion_decision.reason}.",
    ]
    (out / "metrics.md").write_text("\n".join(lines) + "\n")


def _child_of_this_process() -> None:
    """In a child before exec: SIGINT back to default (a background shell ignores it, and dagster dev maps SIGTERM onto
    it), and on Linux a SIGTERM when this process dies, so even a ``kill -9`` of ``dev`` leaves no server behind."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def dev(args: argparse.Namespace) -> int:
    """The Dagster UI and the scoring API, each a child process in its own group; a signal to ``dev`` stops both."""
    import subprocess

    settings.configure_environment()
    bin_dir = os.path.dirname(sys.executable)
    workspace = str(settings.PROJECT_ROOT / "workspace.yaml")
    commands = {
        # The API starts without a snapshot (health answers 503 saying so) and loads one when it appears.
        "scoring API": [os.path.join(bin_dir, "clv-platform"), "serve", "--host", args.host, "--port", str(args.api_port)],
        "Dagster UI": [os.path.join(bin_dir, "dagster"), "dev", "-w", workspace, "--host", args.host, "--port", str(args.port)],
    }
    # dagster dev stops its webserver, daemon and code servers on SIGINT; uvicorn stops on SIGTERM.
    stop_signals = {"scoring API": signal.SIGTERM, "Dagster UI": signal.SIGINT}
    children: dict[str, subprocess.Popen] = {}
    received: list[int] = []

    def stop(signum, _frame) -> None:
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    for name, command in commands.items():
        children[name] = subprocess.Popen(
            command, cwd=settings.PROJECT_ROOT, start_new_session=True, preexec_fn=_child_of_this_process
        )
    print(
        f"Dagster UI on http://{args.host}:{args.port}; scoring API on http://{args.host}:{args.api_port} "
        "(answers 503 until serving/online_features is materialized); Ctrl-C stops both",
        flush=True,
    )
    code = 0
    while not received:
        ended = next((name for name, child in children.items() if child.poll() is not None), None)
        if ended is not None:
            code = children[ended].returncode
            if code not in (0, 2):  # 2: the child printed its one-line user error itself
                print(f"clv-platform dev: the {ended} exited with code {code}; stopping the rest", file=sys.stderr, flush=True)
            break
        time.sleep(0.2)
    for name, child in children.items():
        if child.poll() is None:
            _signal_group(child, stop_signals[name])
    deadline = time.monotonic() + 30
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()
    return code


def _signal_group(child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(child.pid, signum)


def serve(args: argparse.Namespace) -> int:
    settings.configure_environment()
    from clv_platform.ingest.spec import load_spec

    try:
        # Posted rows are judged by the same limits and history start as the source's rows.
        ingestion = load_spec()
    except (ValueError, OSError) as error:
        return _user_error(error)
    import socket

    import uvicorn

    from clv_platform.serving.app import create_app

    # The port is taken before the snapshot and model load: a busy port is one line at once, not an error after
    # the load (meanwhile another server on it would answer); port 0 asks the kernel for a free one.
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as error:
        listener.close()
        return _user_error(f"cannot listen on {args.host}:{args.port}: {error.strerror}")
    port = listener.getsockname()[1]
    app = create_app(
        settings.state_dir(), args.model_name, args.poll_seconds, max_body_bytes=args.max_body_bytes, ingestion=ingestion
    )
    import logging

    # The challenger's shadow predictions on POST: one line each on stderr, whatever uvicorn's log level.
    shadow = logging.getLogger("clv_platform.serving.shadow")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    shadow.addHandler(handler)
    shadow.setLevel(logging.INFO)
    shadow.propagate = False
    print(f"Scoring API on http://{args.host}:{port} (OpenAPI at /docs); state {settings.state_dir()}", flush=True)
    uvicorn.Server(uvicorn.Config(app, workers=1, log_level=args.log_level)).run(sockets=[listener])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clv-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="Materialize the whole asset graph on the built-in dataset.")
    run_parser.add_argument("--customers", type=int, default=5_000, help="customers to generate (default 5000)")
    run_parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    run_parser.add_argument("--end-date", default="2025-12-31", help="last day of the history (default 2025-12-31)")
    run_parser.add_argument("--source", default=None, help="source spec YAML (default: $CLV_SOURCE_CONFIG, else the generator)")
    run_parser.set_defaults(func=run)
    evaluate_parser = sub.add_parser(
        "evaluate",
        help="Features and every model on any transaction log; print and save the metrics table.",
        description="Runs the clv_evaluation job on its own state directory: ingestion of the log, the dbt features "
        "with training cutoffs before --cutoff, every model fitted on the cutoffs whose label window ends "
        "by --cutoff and judged on the --horizon days after it.",
    )
    where = evaluate_parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", help="source spec YAML (as for run)")
    where.add_argument("--file", help="a transaction file (CSV, gzip, Parquet, XLSX)")
    evaluate_parser.add_argument(
        "--mapping", default="", help="canonical=column pairs for --file, e.g. customer_id=cust,invoice_date=day,amount=total"
    )
    evaluate_parser.add_argument(
        "--preset", choices=("online_retail", "online_retail_ii", "canonical"), help="a known shape for --file"
    )
    evaluate_parser.add_argument(
        "--no-header",
        action="store_true",
        help="--file has no header line: --mapping names columns by position, e.g. customer_id=1,invoice_date=2,amount=4",
    )
    evaluate_parser.add_argument(
        "--delimiter", default=None, help="field separator of --file: one character, tab, or whitespace (runs of spaces/tabs)"
    )
    evaluate_parser.add_argument(
        "--history-start",
        default=None,
        help="YYYY-MM-DD: rows of --file dated earlier are quarantined and counted (default: the log's own first day)",
    )
    evaluate_parser.add_argument("--cutoff", required=True, help="evaluation cutoff, YYYY-MM-DD")
    dbt_defaults = settings.dbt_var_defaults()
    evaluate_parser.add_argument(
        "--horizon",
        type=int,
        default=dbt_defaults["horizon_days"],
        help=f"label horizon in days (default {dbt_defaults['horizon_days']})",
    )
    evaluate_parser.add_argument(
        "--training-cutoffs", type=int, default=9, help="cutoffs built, the evaluation one included (default 9)"
    )
    evaluate_parser.add_argument(
        "--spacing-days",
        type=int,
        default=dbt_defaults["cutoff_spacing_days"],
        help=f"days between the older training cutoffs (default {dbt_defaults['cutoff_spacing_days']}); "
        "the newest is --cutoff minus --horizon, so its labels end at --cutoff",
    )
    evaluate_parser.add_argument("--tune", action="store_true", help="also fit xgboost_tuned (Optuna over time folds)")
    evaluate_parser.add_argument("--tune-trials", type=int, default=20, help="Optuna trials with --tune (default 20)")
    evaluate_parser.add_argument(
        "--out", default="clv_evaluation", help="where metrics.csv and metrics.md go (default ./clv_evaluation)"
    )
    evaluate_parser.add_argument("--state", default=None, help="state directory of the run (default OUT/state)")
    evaluate_parser.set_defaults(func=evaluate)
    dev_parser = sub.add_parser(
        "dev", help="Open the Dagster UI (dagster dev) and start the scoring API beside it, on the state directory."
    )
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (default 3000)")
    dev_parser.add_argument("--api-port", type=int, default=8000, help="the scoring API's port (default 8000, as serve)")
    dev_parser.set_defaults(func=dev)
    serve_parser = sub.add_parser("serve", help="Start the scoring API (FastAPI on uvicorn) on the online snapshot.")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 = a free port, printed at start")
    serve_parser.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often the snapshot manifest and the champion alias are checked"
    )
    serve_parser.add_argument("--model-name", default="clv_model", help="the registered model whose champion scores")
    serve_parser.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger request bodies are refused (413)")
    serve_parser.add_argument("--log-level", default="warning", help="uvicorn's log level (default warning)")
    serve_parser.set_defaults(func=serve)
    model_parser = sub.add_parser(
        "model", help="Promote a version, roll back the champion, set the challenger or the rollout, or list the history."
    )
    model_sub = model_parser.add_subparsers(dest="model_command", required=True)
    promote_parser = model_sub.add_parser("promote", help="Point the champion alias at a registered version.")
    promote_parser.add_argument("--version", required=True, help="the registered version to promote")
    rollback_parser = model_sub.add_parser("rollback", help="Move the champion alias back to the previous champion.")
    challenger_parser = model_sub.add_parser(
        "challenger", help="Point the challenger alias at a registered version (scored beside the champion by the rollout)."
    )
    challenger_parser.add_argument("--version", required=True, help="the registered version to make the challenger")
    rollout_parser = model_sub.add_parser(
        "rollout", help="Set the rollout: none, shadow, canary or ab (the challenger's share of customers)."
    )
    # No argparse choices: a wrong mode is one line naming it, as every other refused move.
    rollout_parser.add_argument("--mode", required=True, help="none | shadow | canary | ab")
    rollout_parser.add_argument("--share", default=None, help="the challenger's share (canary 0.05, ab 0.5)")
    rollout_parser.add_argument("--salt", default=None, help="salt of the arm assignment (default: keep the current one)")
    for moving in (promote_parser, rollback_parser, challenger_parser, rollout_parser):
        moving.add_argument("--reason", required=True, help="why it moves (recorded in ml.champion_history)")
    history_parser = model_sub.add_parser("history", help="Every move of the champion alias, newest first.")
    history_parser.add_argument("--limit", type=int, default=None, help="show only the latest N moves")
    for each in (promote_parser, rollback_parser, challenger_parser, rollout_parser, history_parser):
        each.add_argument("--model-name", default="clv_model", help="the registered model (default clv_model)")
    model_parser.set_defaults(func=model)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
