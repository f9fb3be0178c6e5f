"""What an apply did, step by step, read back from the apply script's records. Pure.

A step is `ok` when every op it was compiled to reported ok, `failed` when one failed,
`skipped` when the script stopped (or never started) before it, and `unknown` when the
output ended early: the script may still have run it (a remote command outlives a
dropped connection), so nothing is claimed either way. Messages and command output are
trimmed, and any sensitive file content that shows up in them is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from vmgitops.executor.ops import Batch
from vmgitops.facts.records import Record
from vmgitops.plan.steps import Step

StepStatus = Literal["ok", "failed", "skipped", "unknown"]

HIDDEN = "(hidden)"
MAX_MESSAGE = 600
MAX_OUTPUT = 1024

# Reasons of an apply that did not run to its end (see script.py for the VM-side ones).
LOCK_HELD = "LockHeld"
STALE_GENERATION = "StaleGeneration"
CHANGED_SINCE_OBSERVED = "ChangedSinceObserved"
UPLOAD_INCOMPLETE = "UploadIncomplete"
APPLY_INTERRUPTED = "ApplyInterrupted"
STEP_FAILED = "StepFailed"
MALFORMED_OUTPUT = "MalformedOutput"
#: Not an apply outcome: another apply holds the VM lock right now (engine).
APPLY_IN_PROGRESS = "ApplyInProgress"

#: Aborts that no retry can fix without a human (or a newer generation).
PERMANENT = frozenset({STALE_GENERATION, "LockUnavailable", "StateUnwritable", "FenceUnreadable"})


@dataclass(frozen=True)
class StepOutcome:
    index: int
    kind: str
    subject: str
    description: str
    status: StepStatus
    message: str = ""
    #: The tail of a command's (or package manager's) output, when it has one.
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ApplyError:
    """Why an apply did not complete; `retryable` False means a human must act."""

    reason: str
    message: str
    retryable: bool = True


@dataclass(frozen=True)
class ApplyResult:
    outcomes: tuple[StepOutcome, ...]
    error: ApplyError | None = None
    #: The fence serial this apply ran at (None when it never got the lock).
    serial: int | None = None

    @property
    def completed(self) -> bool:
        return self.error is None and all(o.ok for o in self.outcomes)

    @property
    def failed_steps(self) -> tuple[StepOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status in ("failed", "unknown"))


_HEADER = re.compile(rb"([a-z][a-z0-9-]*) ([0-9]{1,6})\n")
_LENGTH = re.compile(rb"([0-9]{1,10}):")


def parse_partial(data: bytes) -> tuple[list[Record], bool]:
    """Every complete record of a possibly cut stream, and whether `end` was reached."""
    records: list[Record] = []
    pos = 0
    while pos < len(data):
        head = _HEADER.match(data, pos)
        if head is None:
            return records, False
        tag, count = head.group(1).decode(), int(head.group(2))
        pos = head.end()
        fields = []
        for _ in range(count):
            m = _LENGTH.match(data, pos)
            if m is None:
                return records, False
            start = m.end()
            end = start + int(m.group(1))
            if end >= len(data) or data[end : end + 1] != b"\n":
                return records, False
            fields.append(data[start:end])
            pos = end + 1
        if tag == "end":
            return records, True
        records.append(Record(tag, tuple(fields)))
    return records, False


class Scrubber:
    """Replaces sensitive file content (whole, and each non-trivial line) in text."""

    def __init__(self, secrets: Iterable[bytes]) -> None:
        needles: set[str] = set()
        for raw in secrets:
            text = raw.decode("utf-8", "replace")
            for piece in [text.strip(), *text.splitlines()]:
                piece = piece.strip()
                if len(piece) >= 4:
                    needles.add(piece)
        self._needles = sorted(needles, key=len, reverse=True)

    def __call__(self, text: str, limit: int = MAX_MESSAGE) -> str:
        for needle in self._needles:
            text = text.replace(needle, HIDDEN)
        text = text.strip()
        if len(text) > limit:
            text = "..." + text[-limit:]
        return text


@dataclass(frozen=True)
class ParsedRun:
    outcomes: tuple[StepOutcome, ...]
    error: ApplyError | None
    serial: int | None
    crashed: bool


def read_run(
    stdout: bytes,
    stderr: bytes,
    exit_status: int,
    steps: Sequence[Step],
    batch: Batch,
    scrub: Scrubber,
) -> ParsedRun:
    """The outcome of each step from the script's output."""
    records, complete = parse_partial(stdout)
    serial: int | None = None
    abort: ApplyError | None = None
    crashed = False
    stopped = False
    ops: dict[int, list[Record]] = {}
    for rec in records:
        if rec.tag == "locked":
            serial = int(rec.text(0)) if rec.text(0).isdigit() else None
        elif rec.tag == "abort":
            reason = rec.text(0)
            abort = ApplyError(reason, scrub(rec.text(1)), reason not in PERMANENT)
        elif rec.tag == "op" and rec.text(0).isdigit():
            ops.setdefault(int(rec.text(0)), []).append(rec)
        elif rec.tag == "op":  # the closing fence record could not be written
            abort = ApplyError("StateUnwritable", scrub(rec.text(2)), retryable=True)
        elif rec.tag == "stopped":
            stopped = True
        elif rec.tag == "crash":
            crashed = True
    outcomes = []
    for i, step in enumerate(steps):
        got = ops.get(i, [])
        wanted = batch.op_count.get(i, 0)
        failed = next((r for r in got if r.text(1) != "ok"), None)
        status: StepStatus
        last: Record | None
        if failed is not None:
            status, last = "failed", failed
        elif got and len(got) >= wanted:
            status, last = "ok", got[-1]
        elif complete and not got:
            status, last = "skipped", None
        else:
            status, last = "unknown", None
        message = scrub(last.text(2)) if last else _why(status, abort, stopped)
        output = scrub(last.text(3), MAX_OUTPUT) if last else ""
        outcomes.append(
            StepOutcome(i, str(step.kind), step.subject, step.describe(), status, message, output)
        )
    error = abort
    if error is None and not complete:
        tail = scrub(stderr.decode("utf-8", "replace"), 300)
        error = ApplyError(
            APPLY_INTERRUPTED,
            f"the apply ended before reporting every step (exit {exit_status})"
            + (f": {tail}" if tail else ""),
        )
    elif error is None and any(o.status == "failed" for o in outcomes):
        first = next(o for o in outcomes if o.status == "failed")
        error = ApplyError(STEP_FAILED, f"step {first.index + 1} ({first.description}) failed")
    return ParsedRun(tuple(outcomes), error, serial, crashed)


def _why(status: StepStatus, abort: ApplyError | None, stopped: bool) -> str:
    if status == "unknown":
        return "no report: the apply ended early, this step may or may not have run"
    if abort is not None:
        return f"not applied: {abort.reason}"
    return "not run: an earlier step failed" if stopped else "not run"


def unknown_outcomes(steps: Sequence[Step], why: str) -> tuple[StepOutcome, ...]:
    """Every step unknown: the apply command's own fate is unknown (e.g. a timeout)."""
    return tuple(
        StepOutcome(i, str(s.kind), s.subject, s.describe(), "unknown", why)
        for i, s in enumerate(steps)
    )


def not_run(steps: Sequence[Step], why: str) -> tuple[StepOutcome, ...]:
    return tuple(
        StepOutcome(i, str(s.kind), s.subject, s.describe(), "skipped", why)
        for i, s in enumerate(steps)
    )
