"""The landing-zone cursor: which file versions are pending, and a cursor that is not one it wrote."""

from __future__ import annotations

import pytest

from clv_platform.ingest.landing import LandedFile, LandingCursor


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
    with pytest.raises(ValueError, match="not one this sensor wrote .*reset it to re-judge every file"):
        LandingCursor.parse(text)
