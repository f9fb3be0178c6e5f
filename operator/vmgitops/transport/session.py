"""The `Runner` over a pooled SSH connection: argv in, bytes out, sudo when asked.

The argv is quoted with `shlex.join` for the remote login shell (sshd always hands the
command line to one), never assembled by string formatting. Every command gets its
stdin closed after its input, so nothing waits for input that never comes, and a
deadline: on expiry the remote process is signalled and its channel closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncssh

from .base import CommandResult
from .classify import run_error
from .errors import ConnectionLost, Timeout, TransportError
from .sudo import password_stdin, probe_argv, sudo_argv, sudo_failure

if TYPE_CHECKING:
    from .config import ConnectionConfig
    from .pool import ConnectionPool, _Live

#: Upper bound for the one-off "does sudo want a password" probe.
PROBE_TIMEOUT = 30.0


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a sequence of strings, not one string")
    items = tuple(argv)
    if not items:
        raise ValueError("argv is empty")
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"argv items must be str, not {type(item).__name__}")
        if "\0" in item:
            raise ValueError("argv items must not contain NUL")
    return items


class SSHRunner:
    """Runs argvs on one target through a `ConnectionPool`; implements `Runner`."""

    def __init__(self, pool: ConnectionPool, config: ConnectionConfig) -> None:
        self.pool = pool
        self.config = config

    @property
    def target(self) -> str:
        return self.config.target

    @property
    def host_key_fingerprint(self) -> str | None:
        """ "SHA256:..." of the key the server presented on the open connection."""
        return self.pool.host_key_fingerprint(self.config.target)

    @property
    def learned_fingerprint(self) -> str | None:
        """Under TrustOnFirstUse with nothing recorded: the fingerprint to record."""
        return self.pool.learned_fingerprint(self.config)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the Runner contract
    ) -> CommandResult:
        """Run `argv` (as the become user, if configured); a non-zero exit is a result.

        Raises a TransportError when the command could not run or finish: the
        connection failed (its reason), Timeout, ConnectionLost, SudoPasswordRequired,
        SudoPasswordRejected.
        """
        items = _check_argv(argv)
        deadline = self.config.timeouts.command if timeout is None else timeout
        config = self.config
        started = time.monotonic()
        outcome = "error"
        try:
            async with self.pool.lease(config) as live:
                become = config.become
                command_argv: Sequence[str] = items
                data = stdin
                password_sent = False
                if become is not None:
                    if become.password is not None and not await self._nopasswd(
                        live, become.user, deadline
                    ):
                        password_sent = True
                        data = password_stdin(become.password, stdin)
                    command_argv = sudo_argv(items, become.user, with_password=password_sent)
                status, out, err = await self._exec(live, shlex.join(command_argv), data, deadline)
                if become is not None:
                    failure = sudo_failure(
                        status, err, user=become.user, password_sent=password_sent
                    )
                    if failure is not None:
                        failure.message = f"{config.where}: {failure.message}"
                        failure.args = (failure.message,)
                        raise failure
            outcome = "ok" if status == 0 else "nonzero"
            return CommandResult(argv=items, exit_status=status, stdout=out, stderr=err)
        except TransportError as exc:
            outcome = exc.reason
            raise
        finally:
            self.pool.observer.command_finished(config.target, time.monotonic() - started, outcome)

    async def _nopasswd(self, live: _Live, user: str, deadline: float) -> bool:
        """Whether sudo needs no password here; asked once per connection and user."""
        known = live.sudo_nopasswd.get(user)
        if known is None:
            status, _, _ = await self._exec(
                live, shlex.join(probe_argv(user)), None, min(deadline, PROBE_TIMEOUT)
            )
            known = live.sudo_nopasswd[user] = status == 0
        return known

    async def _exec(
        self, live: _Live, command: str, data: bytes | None, deadline: float
    ) -> tuple[int, bytes, bytes]:
        where = self.config.where
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(deadline):
                process = await live.conn.create_process(command, encoding=None)
                if data:
                    process.stdin.write(data)
                process.stdin.write_eof()
                completed = await process.wait()
        except TimeoutError:
            if process is not None:
                _abort(process)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await process.wait_closed()
            raise Timeout(f"{where}: command did not finish within {deadline:g}s") from None
        except Exception as exc:
            error = run_error(exc, where=where)
            if live.closed or live.conn.is_closed():
                # Whatever the symptom (a refused channel, a broken pipe), the cause is
                # the connection: report that, and let the next caller reconnect.
                error = ConnectionLost(f"{where}: connection lost while running a command")
            if isinstance(error, ConnectionLost):
                self.pool.connection_broken(live)
            raise error from exc
        finally:
            if process is not None:
                process.close()
        status = completed.returncode
        if status is None:
            if live.closed or live.conn.is_closed():
                self.pool.connection_broken(live)
                raise ConnectionLost(f"{where}: connection lost while running a command")
            status = -1  # the channel closed without an exit status
        stdout = completed.stdout if isinstance(completed.stdout, bytes) else b""
        stderr = completed.stderr if isinstance(completed.stderr, bytes) else b""
        return status, stdout, stderr


def _abort(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """Ask the server to kill a command that overstayed its deadline, then hang up."""
    with contextlib.suppress(Exception):
        process.kill()
    with contextlib.suppress(Exception):
        process.close()
