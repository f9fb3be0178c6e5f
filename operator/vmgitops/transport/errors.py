"""Transport failures, each carrying the CamelCase reason that ends up in a condition.

Messages never contain key material, passwords or command input.
"""

from __future__ import annotations


class TransportError(Exception):
    """A VM could not be reached or could not run a command; `reason` is CamelCase."""

    reason: str = "TransportError"
    #: False when retrying cannot help without a human (a wrong host key, a bad key).
    retryable: bool = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds until the pool tries this target again (backoff), when known.
        self.retry_after = retry_after


class HostKeyMismatch(TransportError):
    """The VM presented a host key other than the pinned one; credentials were not sent."""

    reason = "HostKeyMismatch"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        presented_fingerprint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        #: "SHA256:..." of the key the server offered, when the handshake got that far.
        self.presented_fingerprint = presented_fingerprint


class HostKeyNotConfigured(TransportError):
    """Policy Pinned with no public key to pin: nothing to verify against."""

    reason = "HostKeyNotConfigured"
    retryable = False


class AuthenticationFailed(TransportError):
    """The VM refused our key."""

    reason = "AuthenticationFailed"
    retryable = False


class CredentialsMissing(TransportError):
    """The credentials Secret is missing, of the wrong type, or holds no usable key."""

    reason = "CredentialsMissing"
    retryable = False


class ConnectionRefused(TransportError):
    """Nothing listens at the address and port."""

    reason = "ConnectionRefused"


class HostUnreachable(TransportError):
    """No route to the address, or its name does not resolve."""

    reason = "HostUnreachable"


class Timeout(TransportError):
    """Connecting or running a command took longer than allowed."""

    reason = "Timeout"


class ConnectionLost(TransportError):
    """An established connection dropped."""

    reason = "ConnectionLost"


class SudoPasswordRequired(TransportError):
    """`become` asked sudo for root and sudo wants a password we do not have."""

    reason = "SudoPasswordRequired"
    retryable = False


class SudoPasswordRejected(TransportError):
    """sudo refused the configured `become` password."""

    reason = "SudoPasswordRejected"
    retryable = False
