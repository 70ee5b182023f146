"""What happens to rows that cannot be simulated: an error that points at them, or a count.

With the policy ``error`` (the default) the first bad row stops the read with a message naming
the file, line, column, value and the fix. With ``skip`` bad rows are dropped and counted by
reason, with the first example of each, so nothing is lost without being counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from traces.errors import TraceError

Policy = Literal["error", "skip"]
POLICIES = ("error", "skip")


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    line: int
    column: str
    value: object
    problem: str

    def describe(self) -> str:
        return f"{self.file}, line {self.line}, column {self.column!r}: {self.problem} (got {self.value!r})"


@dataclass
class BadRowReport:
    """Rows read and kept, and rows dropped by reason (with the first example of each)."""

    policy: Policy = "error"
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, BadRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise TraceError(f"on_bad_rows must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    def bad(self, row: BadRow, count: int = 1) -> None:
        """Record ``count`` bad rows like ``row``; under the ``error`` policy, stop here."""
        if self.policy == "error":
            raise TraceError(
                f"{row.describe()}; fix the row, or pass --on-bad-rows skip (scenario: "
                "on_bad_rows: skip) to drop such rows and count them"
            )
        self.dropped[row.problem] = self.dropped.get(row.problem, 0) + count
        self.examples.setdefault(row.problem, row)

    def unreadable(self, row: BadRow) -> None:
        """A row the reader itself could not parse: validation never sees it, so count it as read
        here too (``rows_read == rows_kept + rows_dropped`` must hold)."""
        self.rows_read += 1
        self.bad(row)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "dropped_by_reason": dict(self.dropped),
            "first_examples": {k: v.describe() for k, v in self.examples.items()},
        }
