"""Ingest each file that lands in the transaction source exactly once.

When the transaction source is a folder or glob (``kind: files``) or an S3 prefix (``kind: s3``), the
sensor lists it every 30 s and compares each file's identity (name + size + modification time, or
size + ETag) with its cursor. Each new or changed file is read once, here, to find the event days it
covers; one ``ingest_and_features`` run then loads the range of days of all the files new in that
tick (one run, not one per file, so that files landing together do not start runs that contend for
the DuckDB warehouse, which takes one writer at a time).
The run re-reads the whole source for those days, as every run of ``raw/transactions`` does.

The cursor lives in the Dagster instance's storage, so a daemon restart neither loses nor repeats a
file; the run key (the files' identities) makes Dagster refuse a second run for the same files too.
"""

import hashlib
import json
import time
from datetime import datetime

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from clv_platform.ingest.readers import SourceError
from clv_platform.lib.ingestion import RawSource, partition_range_tags

LANDED_FILES_TAG = "clv/landed_files"  # JSON list of the files a run was requested for
LANDED_COUNT_TAG = "clv/landed_file_count"
_TAG_LIMIT = 4000  # characters of the file list kept in the tag; the count tag always holds the total
# Seconds of one tick, from the start of its evaluation: files whose reads would end later wait for the next
# tick (the first file is always read), so that a backlog cannot run into the daemon's time limit for one
# evaluation (60 s by default) however loaded the machine (clv_platform.ingest.landing.ReadBudget).
READ_BUDGET_SECONDS = 20.0


def _files_tag(uris: list[str]) -> str:
    kept: list[str] = []
    for uri in uris:
        if len(json.dumps([*kept, uri])) > _TAG_LIMIT:
            break
        kept.append(uri)
    return json.dumps(kept)


@dg.sensor(
    job_name="ingest_and_features",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the transaction source's folder or S3 prefix; per tick, one ingest_and_features run for "
    "the days of the files new or changed since the last tick: each file version once.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, raw_source: RawSource, s3: S3Resource):
    started = time.monotonic()
    # In the body: the row rules import pandera, which probes for pyspark (definitions load fast without).
    from clv_platform.ingest.landing import LandingCursor, ReadBudget, landed_days, list_landed, read_landed, undated_note

    spec = raw_source.spec()
    source = spec.transactions
    if source.kind not in ("files", "s3"):
        return dg.SkipReason(
            f"The transaction source is '{source.kind}': nothing lands there (the sensor watches a 'files' or 's3' source)."
        )
    where = source.location
    client = s3.get_client() if source.kind == "s3" else None
    try:
        listing = list_landed(source, client)
    except SourceError as error:  # e.g. the landing folder does not exist yet
        return dg.SkipReason(str(error))

    cursor = LandingCursor.parse(context.cursor)
    cursor.forget_missing(listing)
    pending = cursor.pending(listing)
    now, budget = datetime.now(), ReadBudget(seconds=READ_BUDGET_SECONDS, started=started)
    landed, notes, deferred = [], [], 0
    for file in pending:
        if deferred or not budget.allows(file.size, time.monotonic()):
            deferred += 1  # in listing order: the next tick starts where this one stopped
            continue
        read_started = time.monotonic()
        try:
            days = landed_days(read_landed(file, source, client, spec.limits.max_file_bytes), spec, now)
        except SourceError as error:
            # Judged: not read again until the file changes. The runs of other files read the whole
            # source, so they fail on it too until it is fixed or removed.
            budget.record(file.size, time.monotonic() - read_started)
            context.log.warning(f"{error}; not ingested until it changes")
            cursor.judged(file, error=str(error))
            notes.append(str(error))
            continue
        except (OSError, BotoCoreError, ClientError) as error:  # not judged: tried again next tick
            # Not counted as a read: a file that fails first on every tick must not hold back the rest.
            context.log.warning(f"{file.uri}: cannot be read now, trying again next tick: {error}")
            notes.append(f"{file.uri}: cannot be read now ({type(error).__name__})")
            continue
        budget.record(file.size, time.monotonic() - read_started)
        cursor.judged(file)
        if days is None:
            # Read again for the hint: a rare path, and a file's chunks are not kept.
            notes.append(undated_note(file, read_landed(file, source, client, spec.limits.max_file_bytes), spec))
            continue
        landed.append((file, days))
    if deferred:
        context.log.info(
            f"{deferred} new file(s) left for the next tick: their reads would end past the tick's "
            f"budget of {READ_BUDGET_SECONDS:g} s ({budget.files_read} read in "
            f"{time.monotonic() - started:.1f} s)"
        )

    if not landed:
        if not pending:
            reason = f"No new or changed files in {where} ({len(listing)} file(s) already judged)."
        else:
            reason = "; ".join(notes) if notes else f"{deferred} new file(s) in {where} left for the next tick."
        return dg.SensorResult(skip_reason=reason, cursor=cursor.dumps())

    first = min(days[0] for _, days in landed)
    last = max(days[1] for _, days in landed)
    uris = [file.uri for file, _ in landed]
    identities = "\n".join(sorted(file.identity for file, _ in landed))
    context.log.info(f"{len(landed)} new file(s) in {where}, days {first} to {last}: {', '.join(uris)}")
    request = dg.RunRequest(
        run_key="landed-" + hashlib.sha256(identities.encode()).hexdigest()[:32],
        tags={**partition_range_tags(first, last), LANDED_FILES_TAG: _files_tag(uris), LANDED_COUNT_TAG: str(len(uris))},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor.dumps())
