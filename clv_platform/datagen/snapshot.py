"""The built-in dataset generated once per set of options, then read back from a Parquet snapshot.

One run reads the generated tables in several steps (the CLI's date range, ``raw_daily``, ``raw_customers``),
and the daemon runs steps in other processes: a snapshot on disk, keyed by the options and the generator's
own code, serves them all. It is written to a temporary folder and renamed into place, so a reader never
sees half a snapshot and two writers racing leave one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from clv_platform.datagen import generator
from clv_platform.datagen.generator import TABLES, GeneratedData


def snapshot_key(options: dict[str, Any]) -> str:
    """A hash of the generator options and of the generator's source: a code change is a new snapshot."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    digest.update(Path(generator.__file__).read_bytes())
    return digest.hexdigest()[:20]


def generated_once(directory: Path, options: dict[str, Any]) -> GeneratedData:
    """The tables :func:`generate` makes for ``options`` (its keyword arguments), generated on the first call only.

    Every call returns fresh frames (read from the snapshot), so a caller changing them changes no other's.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    snapshot = Path(directory) / snapshot_key(options)
    if not snapshot.is_dir():
        data = generator.generate(**options)
        partial = Path(directory) / f".partial-{uuid.uuid4().hex}"
        partial.mkdir(parents=True)
        for name in TABLES:
            pq.write_table(pa.Table.from_pandas(getattr(data, name), preserve_index=False), partial / f"{name}.parquet")
        try:
            os.rename(partial, snapshot)
        except OSError:  # another process wrote the same snapshot first: it holds the same rows
            shutil.rmtree(partial, ignore_errors=True)
    return GeneratedData(**{name: pq.read_table(snapshot / f"{name}.parquet").to_pandas() for name in TABLES})
