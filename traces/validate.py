"""Checks every chunk a reader produced before it reaches the simulator.

Readers hand over lengths as float64 (NaN where the file had no number); rows that pass are
returned with integer lengths, in the normalized form of ``traces.schema``.

Rows are bad when a length is missing, not a whole number, below 1 or absurdly large, or when an
arrival time is missing, negative or earlier than a row before it (a trace must be in time
order; equal times are fine: requests do arrive together). Good rows pass through unchanged.

With a ``turn`` column, a row with a session id is a turn of a conversation: its turn must be a
whole number >= 1, later than the session's previous turn, and its prompt must re-send at least
that turn's prompt and reply. (Each session's latest turn is remembered for the whole trace; a
row without a session id has no turn.)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from traces.bad_rows import BadRow, BadRowReport
from traces.source_cell import cell_text

MAX_TOKENS = 10_000_000  # no model takes a prompt or writes a reply anywhere near this


class ChunkValidator:
    """Validates chunks in order, remembering the latest arrival to catch time going back."""

    def __init__(self, file: str, report: BadRowReport, source_columns: dict[str, str]) -> None:
        self.file = file
        self.report = report
        self.source_columns = source_columns  # normalized name -> the file's own column name
        self.latest_arrival = 0.0
        # per session: its latest good turn and the tokens its next prompt must re-send
        self.conversations: dict[str, tuple[float, float]] = {}

    def __call__(self, table: pa.Table) -> pa.Table:
        self.report.rows_read += table.num_rows
        checks = list(self._checks(table))
        if "turn" in table.column_names and "session_id" in table.column_names:
            bad_already = np.zeros(table.num_rows, dtype=bool)
            for _, _, mask in checks:
                bad_already |= mask
            checks += self._turn_checks(table, bad_already)
        if self.report.policy == "error":
            self._stop_at_first_bad_line(table, checks)
        bad = np.zeros(table.num_rows, dtype=bool)
        for column, problem, mask in checks:
            new = mask & ~bad  # a row is counted once, under the first problem found
            if new.any():
                first = int(np.argmax(new))
                self.report.bad(self._row(table, first, column, problem), int(new.sum()))
            bad |= mask
        kept = table.filter(pa.array(~bad)) if bad.any() else table
        for column in ("input_tokens", "output_tokens"):  # whole numbers now: store as integers
            kept = kept.set_column(
                kept.schema.get_field_index(column), column, pc.cast(kept[column], pa.int64())
            )
        if "turn" in kept.column_names:
            kept = _turns_as_integers(kept)
        # Time so far counts every valid timestamp, also of rows dropped for other reasons,
        # within a chunk (see _checks) and across chunks alike.
        arrival = table["arrival_s"].to_numpy(zero_copy_only=False)
        if np.isfinite(arrival).any():
            self.latest_arrival = max(self.latest_arrival, float(np.nanmax(
                np.where(np.isfinite(arrival), arrival, np.nan))))
        self.report.rows_kept += kept.num_rows
        return kept

    def _stop_at_first_bad_line(self, table: pa.Table, checks: list) -> None:
        """Under the error policy, report the earliest bad row in the file, whatever its problem."""
        firsts = [(int(np.argmax(mask)), column, problem)
                  for column, problem, mask in checks if mask.any()]
        if firsts:
            index, column, problem = min(firsts, key=lambda f: f[0])
            self.report.bad(self._row(table, index, column, problem))

    def _checks(self, table: pa.Table):
        arrival = table["arrival_s"].to_numpy(zero_copy_only=False)
        yield "arrival_s", "arrival time is missing or not a number", ~np.isfinite(arrival)
        yield "arrival_s", "arrival time is negative", arrival < 0
        finite = np.where(np.isfinite(arrival), arrival, -np.inf)
        running = np.maximum.accumulate(np.concatenate([[self.latest_arrival], finite]))[:-1]
        yield "arrival_s", "arrival time goes back before an earlier row (sort the trace by time)", (
            np.isfinite(arrival) & (arrival < running)
        )
        for column in ("input_tokens", "output_tokens"):
            values = table[column].to_numpy(zero_copy_only=False).astype(np.float64)
            yield column, "token count is missing or not a number", ~np.isfinite(values)
            with np.errstate(invalid="ignore"):
                yield column, "token count is not a whole number", np.isfinite(values) & (
                    values != np.floor(values)
                )
                yield column, "token count is below 1", values < 1
                yield column, f"token count is above {MAX_TOKENS:,}", values > MAX_TOKENS

    def _turn_checks(self, table: pa.Table, bad: np.ndarray) -> list:
        """A conversation's rows in turn order, each prompt re-sending the conversation so far.

        Rows go one by one (a session's state carries from row to row and chunk to chunk);
        rows already bad for another reason are left out, so they never become a session's
        latest turn.
        """
        sessions = table["session_id"].to_pylist()
        turns = table["turn"].to_numpy(zero_copy_only=False).astype(np.float64)
        prompts = table["input_tokens"].to_numpy(zero_copy_only=False).astype(np.float64)
        outputs = table["output_tokens"].to_numpy(zero_copy_only=False).astype(np.float64)
        n = table.num_rows
        not_a_turn, out_of_order, too_short = (np.zeros(n, dtype=bool) for _ in range(3))
        for i, session in enumerate(sessions):
            if session is None or bad[i]:
                continue
            turn = turns[i]
            if not (np.isfinite(turn) and turn == np.floor(turn) and turn >= 1):
                not_a_turn[i] = True
                continue
            latest = self.conversations.get(session)
            if latest is not None and turn <= latest[0]:
                out_of_order[i] = True
            elif latest is not None and prompts[i] < latest[1]:
                too_short[i] = True
            else:
                self.conversations[session] = (turn, prompts[i] + outputs[i])
        return [
            ("turn", "turn is missing or not a whole number >= 1 (number a session's turns "
             "1, 2, 3, ...)", not_a_turn),
            ("turn", "turn is not after the session's previous turn (put a session's rows in "
             "turn order)", out_of_order),
            ("input_tokens", "prompt is shorter than the session's previous turn's prompt plus "
             "reply (a later turn re-sends the conversation so far: check the session and turn)",
             too_short),
        ]

    def _row(self, table: pa.Table, index: int, column: str, problem: str) -> BadRow:
        line = int(table["line"][index].as_py())
        source = self.source_columns.get(column, column)
        value = table[column][index].as_py()
        if value is None or value != value:  # the reader found no number: quote the file's text
            written = cell_text(self.file, line, source)
            value = written if written is not None else value
        return BadRow(file=self.file, line=line, column=source, value=value, problem=problem)


def _turns_as_integers(table: pa.Table) -> pa.Table:
    """Turns as int64, kept only where the row has a session (a turn alone means nothing)."""
    turn = table["turn"]
    if "session_id" in table.column_names:
        turn = pc.if_else(pc.is_null(table["session_id"]), pa.scalar(None, turn.type), turn)
    else:
        turn = pa.nulls(table.num_rows, turn.type)
    return table.set_column(table.schema.get_field_index("turn"), "turn",
                            pc.cast(turn, pa.int64()))
