"""The code location: every definition under ``defs/``, run in-process by default."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # One process per run: a process per step re-imports the code (seconds each) and DuckDB
    # allows one writer at a time anyway.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
