"""The state directory's lock: held by a live process, refused to a second one at once, freed by the kernel when
its holder dies however it dies; the record it leaves tells a dead CLI run from a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clv_platform.state_lock import LOCK_FILE, StateBusy, cli_run_alive, hold_state_lock, read_holder

HOLDER = """
import sys, time
from pathlib import Path
from clv_platform.state_lock import hold_state_lock
with hold_state_lock(Path(sys.argv[1]), "run") as lock:
    lock.record(run_id=sys.argv[2])
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(state: Path, run_id: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(state), run_id], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_second_holder_is_refused_naming_the_first_and_a_killed_holder_frees_it(tmp_path):
    holder = _holder(tmp_path, "run-1")
    try:
        with pytest.raises(StateBusy) as refused, hold_state_lock(tmp_path, "evaluate"):
            pass
        message = str(refused.value)
        assert str(tmp_path) in message and f"pid {holder.pid}" in message and "run run-1" in message
        assert message.startswith(f"{tmp_path} is in use by clv-platform run (pid {holder.pid}, run run-1, since ")
        assert cli_run_alive("run-1", {"clv/state_lock": str(tmp_path / LOCK_FILE)}) is True
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=120)
    # The kernel dropped the lock with the process; the record stayed and now names a dead pid.
    assert read_holder(tmp_path / LOCK_FILE)["run_id"] == "run-1"
    assert cli_run_alive("run-1", {"clv/state_lock": str(tmp_path / LOCK_FILE)}) is False
    with hold_state_lock(tmp_path, "run") as lock:
        assert lock.holder["pid"] == os.getpid()
        lock.record(run_id="run-2")
        assert cli_run_alive("run-2", lock.run_tags()) is True
        # A record naming another run: the first run's process let the lock go.
        assert cli_run_alive("run-1", {"clv/state_lock": str(tmp_path / LOCK_FILE)}) is False
    # Released on exit: the record is emptied, the file stays (unlinking would let two processes lock two inodes).
    assert (tmp_path / LOCK_FILE).exists() and read_holder(tmp_path / LOCK_FILE) == {}
    assert cli_run_alive("run-2", {"clv/state_lock": str(tmp_path / LOCK_FILE)}) is False


def test_runs_the_cli_did_not_execute_are_not_judged(tmp_path):
    assert cli_run_alive("any", {}) is None
    assert cli_run_alive("any", {"dagster/partition": "2024-01-01"}) is None


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), hold_state_lock(tmp_path, "run"):
        raise RuntimeError("boom")
    with hold_state_lock(tmp_path, "run") as lock:  # non-blocking: a lock still held would raise StateBusy
        assert lock.holder["pid"] == os.getpid()
