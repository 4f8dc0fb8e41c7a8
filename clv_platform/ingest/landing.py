"""A landing zone: which files of a ``files`` or ``s3`` source are new or changed, and the days each one covers.

Pure Python (no Dagster); the landing-zone sensor (``clv_platform.defs.ingestion.sensors``) keeps a
:class:`LandingCursor` between ticks. A file's identity is its name and version: size and
modification time for a file, size and ETag for an S3 object. A file is judged once per identity,
so a changed file is judged again and an unchanged one never is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from clv_platform.ingest.readers import SourceFrame, iter_s3_object, list_files, list_s3_objects, read_stream
from clv_platform.ingest.spec import IngestionSpec, SourceSpec
from clv_platform.ingest.validate import TRANSACTIONS, check_columns, event_day_range, event_timestamps, unparsed_timestamp_hint

CURSOR_VERSION = 1


@dataclass(frozen=True)
class LandedFile:
    """One file or object of the source, named as ``_source`` names it in ``raw.transactions``."""

    uri: str  # the path, or s3://bucket/key
    version: str  # "<size>-<mtime in ns>" for a file, "<size>-<ETag>" for an S3 object

    @property
    def identity(self) -> str:
        return f"{self.uri}@{self.version}"

    @property
    def size(self) -> int:
        """Bytes, as listed (the version starts with them)."""
        return int(self.version.split("-", 1)[0])


def list_landed(spec: SourceSpec, s3_client=None) -> list[LandedFile]:
    """The data files of a ``files`` source or the data objects under an ``s3`` prefix, sorted by name.

    Raises :class:`~clv_platform.ingest.readers.SourceError` when a ``files`` path does not exist.
    """
    if spec.kind == "files":
        landed = []
        for path in list_files(spec.path):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            landed.append(LandedFile(str(path), f"{stat.st_size}-{stat.st_mtime_ns}"))
        return landed
    if spec.kind == "s3":
        return [
            LandedFile(f"s3://{spec.bucket}/{obj['Key']}", f"{obj['Size']}-{obj['ETag'].strip(chr(34))}")
            for obj in list_s3_objects(s3_client, spec.bucket, spec.prefix)
        ]
    raise ValueError(f"a '{spec.kind}' source has no landing zone (only files and s3 sources do)")


def read_landed(file: LandedFile, spec: SourceSpec, s3_client=None, max_file_bytes: int | None = None) -> Iterator[SourceFrame]:
    """Read one landed file as a load reads it, in chunks.

    Raises ``SourceError`` for content that cannot be read (it stays unreadable until it changes), and
    lets ``OSError`` or botocore's errors through (a missing permission or a network error may pass).
    """
    if spec.kind == "s3":
        yield from iter_s3_object(s3_client, spec.bucket, file.uri.removeprefix(f"s3://{spec.bucket}/"), spec, max_file_bytes)
        return
    with open(file.uri, "rb") as stream:
        yield from read_stream(stream, file.uri, spec, max_file_bytes)


def landed_days(frames: Iterable[SourceFrame], spec: IngestionSpec, now: datetime) -> tuple[date, date] | None:
    """First and last event day of one file's transactions, as a load would date them; None when no row has a valid date.

    Raises the load's ``SourceError`` when the file lacks a mapped column (the load would fail on it).
    """
    source, first, last = spec.transactions, None, None
    for frame in frames:
        frame = check_columns(frame, source, TRANSACTIONS, redact=bool(spec.pii.columns))
        days = event_day_range(event_timestamps(frame, source, TRANSACTIONS), spec.first_day, now)
        if days is not None:
            first, last = min(first or days[0], days[0]), max(last or days[1], days[1])
    return (first, last) if first is not None else None


def undated_note(file: LandedFile, frames: Iterable[SourceFrame], spec: IngestionSpec) -> str:
    """Why a landed file has no days to load, naming the timestamp format to set when most of its first chunk's
    timestamps fit one."""
    source = spec.transactions
    frame = next((f for f in frames if len(f)), None)
    hint = None
    if frame is not None:
        hint = unparsed_timestamp_hint(
            check_columns(frame, source, TRANSACTIONS, redact=bool(spec.pii.columns)), source, TRANSACTIONS
        )
    return f"{file.uri}: no row with a valid timestamp, no days to load" + (f" ({hint})" if hint else "")


@dataclass
class ReadBudget:
    """Which landed files one sensor tick reads, so that the tick ends within ``seconds`` on a loaded machine too.

    The daemon fails a sensor evaluation that runs past its time limit (60 s by default) and keeps nothing of
    it, so a tick that always overruns would read the same files again on every tick. The clock starts with
    the evaluation (imports and listing count); the first file of a tick is always read, so every tick makes
    progress; a later file only when, at this tick's seconds per byte so far, its read would end within
    ``seconds``. A slower machine reads fewer files per tick, instead of spending more time per tick.

    >>> budget = ReadBudget(seconds=20.0, started=0.0)
    >>> budget.allows(size=10_000_000, now=25.0)  # the first file: read whatever the clock says
    True
    >>> budget.record(size=1_000, seconds=2.0)  # 2 ms per byte: imports took the other 3 s
    >>> budget.allows(size=6_000, now=5.0), budget.allows(size=8_000, now=5.0)  # ends at 17 s / at 21 s
    (True, False)
    """

    seconds: float
    started: float  # time.monotonic() when the evaluation began
    read_bytes: int = 0
    read_seconds: float = 0.0
    files_read: int = 0

    def allows(self, size: int, now: float) -> bool:
        """Whether to read a file of ``size`` bytes at ``now`` (a ``time.monotonic()`` reading)."""
        if self.files_read == 0:
            return True
        expected = size * self.read_seconds / max(self.read_bytes, 1)
        return now - self.started + expected <= self.seconds

    def record(self, size: int, seconds: float) -> None:
        """Count one file read (or tried) in this tick: its bytes and how long it took."""
        self.files_read += 1
        self.read_bytes += size
        self.read_seconds += seconds


@dataclass
class LandingCursor:
    """What the sensor has judged: every file at the version it was judged, and why the unreadable ones failed."""

    files: dict[str, str] = field(default_factory=dict)  # uri -> version
    unreadable: dict[str, str] = field(default_factory=dict)  # uri -> the one-line error

    @classmethod
    def parse(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {CURSOR_VERSION}")
            return cls(files=dict(data["files"]), unreadable=dict(data.get("unreadable", {})))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"the landing cursor is not one this sensor wrote ({error}); reset it to re-judge every file"
            ) from None

    def dumps(self) -> str:
        return json.dumps({"version": CURSOR_VERSION, "files": self.files, "unreadable": self.unreadable}, sort_keys=True)

    def pending(self, listing: list[LandedFile]) -> list[LandedFile]:
        """The listed files never judged at their current version, in listing order."""
        return [file for file in listing if self.files.get(file.uri) != file.version]

    def forget_missing(self, listing: list[LandedFile]) -> None:
        """Drop files no longer listed, so the cursor does not grow with files deleted or moved away."""
        listed = {file.uri for file in listing}
        self.files = {uri: version for uri, version in self.files.items() if uri in listed}
        self.unreadable = {uri: error for uri, error in self.unreadable.items() if uri in listed}

    def judged(self, file: LandedFile, error: str | None = None) -> None:
        self.files[file.uri] = file.version
        if error is None:
            self.unreadable.pop(file.uri, None)
        else:
            self.unreadable[file.uri] = error
