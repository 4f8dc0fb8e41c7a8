"""The landing-zone cursor: which file versions are pending, a cursor that is not one it wrote, and the read budget of a tick."""

from __future__ import annotations

import pytest

from clv_platform.ingest.landing import LandedFile, LandingCursor, ReadBudget


def test_a_file_is_pending_until_judged_at_its_version():
    a1, b = LandedFile("/in/a.csv", "10-1"), LandedFile("/in/b.csv", "20-1")
    cursor = LandingCursor()
    assert cursor.pending([a1, b]) == [a1, b]
    cursor.judged(a1)
    cursor.judged(b, error="b.csv: binary content (rule: readable_file)")
    restored = LandingCursor.parse(cursor.dumps())
    assert restored.pending([a1, b]) == []
    assert restored.unreadable == {"/in/b.csv": "b.csv: binary content (rule: readable_file)"}

    a2 = LandedFile("/in/a.csv", "12-2")  # rewritten
    assert restored.pending([a2, b]) == [a2]
    restored.forget_missing([a2])  # b.csv deleted
    assert (restored.files, restored.unreadable) == ({"/in/a.csv": "10-1"}, {})


@pytest.mark.parametrize("text", ["17", "not json", '{"version": 2, "files": {}}', '{"files": []}'])
def test_a_foreign_cursor_is_refused_with_what_to_do(text):
    with pytest.raises(ValueError, match=r"not one this sensor wrote .*reset it to re-judge every file"):
        LandingCursor.parse(text)


def _tick(budget_seconds: float, fixed_seconds: float, seconds_per_byte: float, sizes: list[int]) -> tuple[int, float]:
    """One tick on a simulated clock: files read, and when the tick ends (fixed costs first, then reads)."""
    budget, clock = ReadBudget(seconds=budget_seconds, started=0.0), fixed_seconds
    read = 0
    for size in sizes:
        if not budget.allows(size, now=clock):
            break
        budget.record(size, seconds=size * seconds_per_byte)
        clock += size * seconds_per_byte
        read += 1
    return read, clock


def test_the_read_budget_counts_from_the_start_and_predicts_each_read_at_the_rate_seen():
    budget = ReadBudget(seconds=20.0, started=100.0)
    # The first file of a tick is read even when imports and listing used the whole budget: every tick progresses.
    assert budget.allows(size=50_000_000, now=125.0)
    budget.record(size=1_000_000, seconds=4.0)  # 4 s per MB
    assert budget.allows(size=2_000_000, now=110.0)  # would end at 18 s
    assert not budget.allows(size=3_000_000, now=110.0)  # would end at 22 s: left for the next tick
    assert not budget.allows(size=0, now=120.5)  # the budget is spent, imports and listing included


@pytest.mark.parametrize("seconds_per_mb", [0.05, 0.5, 2.0, 6.0, 15.0])
def test_a_loaded_machine_reads_fewer_files_per_tick_not_longer_ticks(seconds_per_mb):
    """A backlog of 1 MB files at any speed: each tick ends within its budget or reads exactly one file."""
    sizes = [1_000_000] * 200
    while sizes:
        read, ended = _tick(20.0, fixed_seconds=3.0, seconds_per_byte=seconds_per_mb / 1e6, sizes=sizes)
        assert read >= 1
        assert ended <= 20.0 or read == 1, (read, ended)
        sizes = sizes[read:]
