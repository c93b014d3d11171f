"""A deterministic task CSV with everything that breaks naive importers: a BOM, Unicode,
quoted newlines, commas and quotes, leap days, and a sprinkling of bad rows with known lines."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

TITLES = [
    "Ship it 🚀",
    "Ünïcödé ☃ and RTL עִבְרִית",
    'Quotes " and, commas',
    "多行\n标题",
    "Line one\nline two\n\nline four",
    "Zero\u200bwidth joiner 👩‍💻",
    "Δοκιμή",
]
STATUSES = ["todo", "in_progress", "done", ""]
DUE = ["2024-02-29", "2000-02-29", "", "2028-02-29", "2025-12-31", "2400-02-29"]
HEADER = ["external_key", "title", "status", "due_date", "notes"]

# Row index -> (cells, substring expected in the reported reason)
BAD: dict[int, tuple[list[str], str]] = {
    17: (["imp-bad-date", "Leap?", "todo", "2023-02-29", ""], "due_date"),
    404: (["imp-no-title", "   ", "todo", "", ""], "title"),
    777: (["imp-bad-status", "Blocked", "blocked", "", ""], "status"),
    1234: (["bad key!", "Bad key", "todo", "", ""], "external_key"),
    2024: (["imp-long", "x" * 501, "todo", "", ""], "title"),
    5000: (["imp-00001", "Duplicate of row 1", "todo", "", ""], "already on line"),
    8888: (["imp-short", "Too few cells"], "expected 5 cells"),
}


@dataclass
class Generated:
    """The file, and what a correct importer must make of it."""

    data: bytes
    good: dict[str, dict[str, str]] = field(default_factory=dict)
    bad_lines: dict[int, str] = field(default_factory=dict)


def generate(rows: int = 10_000, *, bom: bool = True) -> Generated:
    """`rows` data rows (plus the header); physical lines are more (quoted newlines)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    result = Generated(b"")
    line = 2
    for i in range(rows):
        if i in BAD:
            cells, reason = BAD[i]
            result.bad_lines[line] = reason
        else:
            key = f"imp-{i:05d}"
            cells = [key, f"{TITLES[i % len(TITLES)]} #{i}", STATUSES[i % 4], DUE[i % 6], "n/a"]
            result.good[key] = {"title": cells[1], "status": cells[2] or "todo", "due": cells[3]}
        writer.writerow(cells)
        line += 1 + sum(cell.count("\n") for cell in cells)
    text = out.getvalue()
    result.data = (("\ufeff" if bom else "") + text).encode("utf-8")
    return result
