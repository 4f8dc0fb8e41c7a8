"""``clv-platform``: run the whole graph on the embedded default, or open the UI on it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from clv_platform import settings

MAIN_JOB = "clv_full_pipeline"


def _generator_config(args: argparse.Namespace) -> dict:
    return {"n_customers": args.customers, "seed": args.seed, "end_date": args.end_date}


def _run_config(args: argparse.Namespace) -> dict:
    generator = _generator_config(args)
    # INFO, not DEBUG: step starts, dbt's summary and our own log lines, without the event firehose.
    return {
        "ops": {"raw_daily": {"config": generator}, "raw__customers": {"config": generator}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }


def _summary(instance, run_id: str, seconds: float) -> str:
    import dagster as dg
    import duckdb

    lines = [f"clv_full_pipeline succeeded in {seconds:.1f} s (run {run_id})", ""]
    with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
        for table in ("raw.transactions", "raw.behavioral_events", "raw.customers", "marts.customer_features",
                      "marts.training_examples", "scoring.clv_scores"):
            count = con.execute(f"select count(*) from {table}").fetchone()[0]
            lines.append(f"  {table:<26} {count:>10,} rows")
        top = con.execute(
            "select value_tier, count(*), round(sum(predicted_clv)) from scoring.clv_scores "
            "where cutoff_date = (select max(cutoff_date) from scoring.clv_scores) group by value_tier order by 3 desc"
        ).fetchall()
    lines.append("")
    for tier, n, value in top:
        lines.append(f"  {tier:<7} tier: {n:>6,} customers, predicted value {value:>14,.0f}")

    def meta(key: list[str]) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}

    model, drift = meta(["ml", "clv_model"]), meta(["monitoring", "drift_report"])
    lines += [
        "",
        f"  model: {model.get('model_name')} v{model.get('model_version')} (champion v{model.get('champion_version')}): "
        f"valid RMSE {model.get('valid_rmse', float('nan')):.2f}, MAE {model.get('valid_mae', float('nan')):.2f}, "
        f"normalized Gini {model.get('valid_normalized_gini', float('nan')):.3f}",
        f"  drift: prediction PSI {drift.get('prediction_psi', float('nan')):.3f}, "
        f"drifted columns: {', '.join(drift.get('drifted_columns', [])) or 'none'}",
        f"  drift report: {drift.get('report_path', '-')}",
        "",
        f"State lives in {settings.state_dir()} (warehouse, MLflow store, Dagster home).",
        "Open the UI on it:  uv run clv-platform dev",
        f"  (that is: DAGSTER_HOME={settings.dagster_home()} uv run dagster dev -w workspace.yaml)",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.source:
        os.environ["CLV_SOURCE_CONFIG"] = os.path.abspath(args.source)
    settings.configure_environment()
    import dagster as dg

    from clv_platform.definitions import defs
    from clv_platform.defs.ingestion.assets import IngestConfig
    from clv_platform.defs.resources import s3_from_environment
    from clv_platform.ingest.readers import SourceError
    from clv_platform.ingest.spec import load_spec
    from clv_platform.lib.ingestion import partition_range_tags, source_date_range

    started = time.perf_counter()
    definitions = defs()
    job = definitions.resolve_job_def(MAIN_JOB)
    print(f"Definitions loaded in {time.perf_counter() - started:.1f} s; running {MAIN_JOB} ...", flush=True)
    instance = dg.DagsterInstance.get()
    spec = load_spec()
    try:
        # A full load covers every day the source has, as one run over that partition range.
        s3_client = s3_from_environment().get_client() if spec.transactions.kind == "s3" else None
        first, last = source_date_range(spec, IngestConfig(**_generator_config(args)).generator_options(spec), s3_client)
    except (SourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Source: {spec.transactions.kind}; loading daily partitions {first} .. {last}", flush=True)
    started = time.perf_counter()
    result = job.execute_in_process(
        run_config=_run_config(args), instance=instance, raise_on_error=False, tags=partition_range_tags(first, last)
    )
    elapsed = time.perf_counter() - started
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        for event in failures:
            print(f"FAILED {event.step_key}: {event.event_specific_data.error.message.strip()}", file=sys.stderr)
        print(f"{MAIN_JOB} failed after {elapsed:.1f} s (run {result.run_id}).", file=sys.stderr)
        return 1
    print(_summary(instance, result.run_id, elapsed))
    return 0


def dev(args: argparse.Namespace) -> int:
    settings.configure_environment()
    # A background shell ignores SIGINT and dagster maps SIGTERM onto it: restore it before exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    workspace = str(settings.PROJECT_ROOT / "workspace.yaml")
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    cmd = [dagster, "dev", "-w", workspace, "--host", args.host, "--port", str(args.port)]
    os.chdir(settings.PROJECT_ROOT)
    os.execv(dagster, cmd)
    return 0  # unreachable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clv-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="Materialize the whole asset graph on the built-in dataset.")
    run_parser.add_argument("--customers", type=int, default=5_000, help="customers to generate (default 5000)")
    run_parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    run_parser.add_argument("--end-date", default="2025-12-31", help="last day of the history (default 2025-12-31)")
    run_parser.add_argument("--source", default=None, help="source spec YAML (default: $CLV_SOURCE_CONFIG, else the generator)")
    run_parser.set_defaults(func=run)
    dev_parser = sub.add_parser("dev", help="Open the Dagster UI (dagster dev) on the state directory.")
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=3000)
    dev_parser.set_defaults(func=dev)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
