"""One live ``clv-platform`` run per state directory.

The embedded warehouse takes one writer, so two runs on one state directory would interleave their
loads and one would die later on DuckDB's file lock. A run holds an advisory lock on
``<state>/run.lock`` for its whole life; the kernel drops the lock when the process dies, however it
dies, so a lock can never be left behind. The file also records who holds it (pid, command, run id),
which lets the next process name the live run, and tell a dead run from a live one. Pure Python.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

LOCK_FILE = "run.lock"
# Run tags of a run executed in-process by the CLI: which lock file it held and which process held it.
LOCK_TAG = "clv/state_lock"
PID_TAG = "clv/pid"


class StateBusy(Exception):
    """Another live process holds the state directory's lock."""

    def __init__(self, state: Path, holder: dict):
        self.state, self.holder = state, holder
        run = f", run {holder['run_id']}" if holder.get("run_id") else ""
        since = f", since {holder['started']}" if holder.get("started") else ""
        who = f"clv-platform {holder.get('command', '?')} (pid {holder.get('pid', '?')}{run}{since})"
        super().__init__(
            f"{state} is in use by {who}: one run at a time per state directory; "
            f"wait for it to finish, or set CLV_HOME to another directory"
        )


def read_holder(lock_path: Path) -> dict:
    """The record the lock's last holder wrote (empty if none or unreadable)."""
    try:
        return json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class StateLock:
    """The held lock of one state directory; :meth:`record` adds what the holder is doing."""

    def __init__(self, path: Path, fd: int, holder: dict):
        self.path, self._fd, self.holder = path, fd, holder

    def record(self, **fields) -> None:
        self.holder.update(fields)
        data = json.dumps(self.holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def run_tags(self) -> dict[str, str]:
        """Tags for the run this process executes, so a later process can tell whether it is still alive."""
        return {LOCK_TAG: str(self.path), PID_TAG: str(self.holder["pid"])}


@contextmanager
def hold_state_lock(state: Path, command: str) -> Iterator[StateLock]:
    """Hold ``state``'s lock for the block; raise :class:`StateBusy` at once if a live process holds it."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateBusy(state, read_holder(path)) from None
        lock = StateLock(path, fd, {})
        lock.record(pid=os.getpid(), command=command, started=datetime.now().isoformat(timespec="seconds"))
        try:
            yield lock
        finally:
            # Emptied, not deleted: unlinking a lock file lets two processes lock two different inodes.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cli_run_alive(run_id: str, tags: dict[str, str]) -> bool | None:
    """Whether the process that executes a CLI run is still running it; ``None`` for runs the CLI did not execute.

    The lock's record names the run its live holder executes: a record naming another run means the
    run's process let the lock go, i.e. ended; a record naming this run but a dead pid means the
    process died holding it (the kernel dropped the lock, the record stayed).
    """
    if LOCK_TAG not in tags:
        return None
    holder = read_holder(Path(tags[LOCK_TAG]))
    if holder.get("run_id") != run_id:
        return False
    return _pid_alive(int(holder.get("pid") or tags.get(PID_TAG) or 0))
