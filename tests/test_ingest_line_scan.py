"""The line-ending scan decides whether a CSV is re-written with physical line numbers before DuckDB reads it
(blank lines, mixed CRLF/LF, lone CR). It reads the file in chunks: its answer must not depend on where a chunk
boundary falls (a CRLF blank line split `\\r\\n\\r` | `\\n` on a 16 MB boundary went unseen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lists.ingest import needs_sanitize

ROWS = ["顧客ID,氏名,電話", "C001,山田 花子,03-1234-5678", "C002,佐藤 一郎,090-8765-4321", "C003,鈴木 次郎,06-1111-2222"]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(("name", "data", "want"), [
    ("crlf_clean", "\r\n".join(ROWS).encode() + b"\r\n", False),
    ("lf_clean", "\n".join(ROWS).encode() + b"\n", False),
    ("crlf_blank", ("\r\n".join(ROWS[:2]) + "\r\n\r\n" + "\r\n".join(ROWS[2:]) + "\r\n").encode(), True),
    ("lf_blank", ("\n".join(ROWS[:2]) + "\n\n" + "\n".join(ROWS[2:]) + "\n").encode(), True),
    ("mixed", ("\r\n".join(ROWS[:2]) + "\n" + "\r\n".join(ROWS[2:]) + "\r\n").encode(), True),
    ("lone_cr", ("\r\n".join(ROWS[:2]) + "\r" + "\r\n".join(ROWS[2:]) + "\r\n").encode(), True),
])
def test_the_answer_does_not_depend_on_where_a_chunk_ends(tmp_path: Path, name: str, data: bytes, want: bool) -> None:
    p = _write(tmp_path, name + ".csv", data)
    assert bool(needs_sanitize(p)) is want
    wrong = [k for k in range(1, len(data) + 1) if bool(needs_sanitize(p, chunk_size=k)) is not want]
    assert wrong == [], f"{name}: chunk sizes giving the wrong answer: {wrong[:10]}"
