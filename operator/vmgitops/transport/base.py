"""The contract between the SSH transport and everything that runs commands on a VM.

The executor, the fact probes and the health checks only ever see a `Runner`: an argv
goes in (never a shell string), bytes come back. How the argv reaches the VM (one pooled
asyncssh connection, sudo, a bastion hop) is the transport's business, so that the
engine can be tested against any real VM the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    """What one command on a VM returned."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Runner(Protocol):
    """Runs one argv on one VM; stdin, when given, is written then closed."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-command deadline
    ) -> CommandResult: ...
