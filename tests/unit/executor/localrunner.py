"""A Runner that runs argv on this machine (its own session, like an SSH session).

The apply and observe scripts are plain POSIX shell; running them here, on temporary
directories, tests the real scripts without a VM. Services and packages need systemd
and a package manager: those are covered against fleet VMs (tests/integration).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from vmgitops.transport.base import CommandResult


class LocalRunner:
    def __init__(self, shell: str = "sh") -> None:
        #: "busybox" runs the scripts with busybox's ash (`busybox sh`).
        self.shell = ["busybox", "sh"] if shell == "busybox" else [shell]
        self.commands: list[tuple[str, ...]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> CommandResult:
        items = list(argv)
        if items[:3] == ["env", "LC_ALL=C", "sh"]:
            items[2:3] = self.shell
        self.commands.append(tuple(items))
        proc = await asyncio.create_subprocess_exec(
            *items,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # `kill -9 0` in the script must not reach pytest
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout or 120)
        return CommandResult(tuple(argv), proc.returncode or 0, out, err)
