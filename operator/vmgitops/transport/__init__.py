"""SSH transport: pooled asyncssh connections, host key policies, sudo, typed errors.

The rest of vmgitops sees a `Runner` (base.py). The controller builds a
`ConnectionConfig` with `build_connection_config`, gets a Runner from one shared
`ConnectionPool`, and turns a `TransportError`'s `reason` into a condition.
"""

from .base import CommandResult, Runner
from .config import (
    Become,
    ConnectionConfig,
    Timeouts,
    build_connection_config,
    host_key_policy_from_spec,
)
from .errors import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectionRefused,
    CredentialsMissing,
    HostKeyMismatch,
    HostKeyNotConfigured,
    HostUnreachable,
    SudoPasswordRejected,
    SudoPasswordRequired,
    Timeout,
    TransportError,
)
from .hostkeys import (
    CertificateAuthority,
    HostKeyPolicy,
    Pinned,
    TrustOnFirstUse,
    fingerprint,
)
from .keys import KeyCache, parse_private_key, secret_bytes
from .pool import ConnectionPool, PoolLimits, PoolObserver, PoolStats
from .session import SSHRunner

__all__ = [
    "AuthenticationFailed",
    "Become",
    "CertificateAuthority",
    "CommandResult",
    "ConnectionConfig",
    "ConnectionLost",
    "ConnectionPool",
    "ConnectionRefused",
    "CredentialsMissing",
    "HostKeyMismatch",
    "HostKeyNotConfigured",
    "HostKeyPolicy",
    "HostUnreachable",
    "KeyCache",
    "Pinned",
    "PoolLimits",
    "PoolObserver",
    "PoolStats",
    "Runner",
    "SSHRunner",
    "SudoPasswordRejected",
    "SudoPasswordRequired",
    "Timeout",
    "Timeouts",
    "TransportError",
    "TrustOnFirstUse",
    "build_connection_config",
    "fingerprint",
    "host_key_policy_from_spec",
    "parse_private_key",
    "secret_bytes",
]
