"""asyncssh's and the OS's exceptions -> our typed TransportErrors with clean messages.

Messages carry what was being done and to which `user@address:port`, plus at most a
short, printable excerpt of the library's reason (which comes from the server or the
OS, never from our credentials).
"""

from __future__ import annotations

import asyncio
import errno
import socket

import asyncssh

from .errors import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectionRefused,
    HostKeyMismatch,
    HostUnreachable,
    Timeout,
    TransportError,
)
from .hostkeys import HostKeyCheck

_TIMEOUT_ERRNOS = {errno.ETIMEDOUT}
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
_LOST_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def clean(text: object, limit: int = 160) -> str:
    """A printable, bounded excerpt of a library or server message."""
    value = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."


def connect_error(
    exc: BaseException,
    *,
    where: str,
    timeout: float,
    check: HostKeyCheck | None = None,
    client_key: str | None = None,
) -> TransportError:
    """Why `asyncssh.connect` to `where` failed; `client_key` is our key's fingerprint."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if check is not None:
            return check.mismatch(clean(exc.reason), prefix=f"{where}: ")
        return HostKeyMismatch(f"{where}: host key not verifiable ({clean(exc.reason)})")
    if isinstance(exc, asyncssh.PermissionDenied):
        key = f" {client_key}" if client_key else ""
        return AuthenticationFailed(
            f"{where}: the server refused our key{key} (publickey authentication failed); "
            "check the user's authorized_keys"
        )
    if isinstance(exc, asyncssh.ChannelOpenError):
        return _tunnel_error(exc, where)
    if isinstance(exc, asyncssh.ConnectionLost):
        return ConnectionLost(f"{where}: connection closed during the SSH handshake")
    if isinstance(exc, asyncssh.DisconnectError):
        kind = type(exc).__name__
        return TransportError(f"{where}: SSH handshake failed ({kind}: {clean(exc.reason)})")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Timeout(f"{where}: no SSH session within {timeout:g}s (connect timeout)")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"{where}: connection refused")
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(f"{where}: the address does not resolve ({clean(exc.strerror)})")
    if isinstance(exc, OSError):
        if exc.errno in _TIMEOUT_ERRNOS:
            return Timeout(f"{where}: TCP connect timed out")
        if exc.errno in _UNREACHABLE_ERRNOS:
            return HostUnreachable(f"{where}: {clean(exc.strerror or exc)}")
        if exc.errno in _LOST_ERRNOS:
            return ConnectionLost(f"{where}: connection reset during the SSH handshake")
        return TransportError(f"{where}: {clean(exc.strerror or exc)}")
    return TransportError(f"{where}: SSH connect failed ({type(exc).__name__}: {clean(exc)})")


def _tunnel_error(exc: asyncssh.ChannelOpenError, where: str) -> TransportError:
    """The bastion could not open the TCP connection to the target (direct-tcpip)."""
    reason = clean(exc.reason)
    text = reason.lower()
    if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
        return TransportError(
            f"{where}: the bastion does not allow TCP forwarding (sshd AllowTcpForwarding)"
        )
    if "refused" in text or f"errno {errno.ECONNREFUSED}]" in text:
        return ConnectionRefused(f"{where}: connection refused (seen from the bastion)")
    if "timed out" in text or f"errno {errno.ETIMEDOUT}]" in text:
        return Timeout(f"{where}: TCP connect from the bastion timed out")
    if "unreachable" in text or "name or service not known" in text:
        return HostUnreachable(f"{where}: unreachable from the bastion ({reason})")
    return TransportError(f"{where}: the bastion could not open a tunnel ({reason})")


def run_error(exc: BaseException, *, where: str) -> TransportError:
    """Why a command on an established connection could not run or finish."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, asyncssh.ChannelOpenError):
        reason = clean(exc.reason)
        return TransportError(f"{where}: the server refused a session channel ({reason})")
    if isinstance(exc, (asyncssh.DisconnectError, BrokenPipeError, ConnectionResetError)):
        return ConnectionLost(f"{where}: connection lost while running a command")
    if isinstance(exc, OSError) and exc.errno in _LOST_ERRNOS:
        return ConnectionLost(f"{where}: connection lost while running a command")
    return TransportError(f"{where}: command failed ({type(exc).__name__}: {clean(exc)})")
