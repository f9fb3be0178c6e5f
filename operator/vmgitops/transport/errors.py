"""Transport failures, each carrying the CamelCase reason that ends up in a condition.

Messages never contain key material, passwords or command input.
"""

from __future__ import annotations


class TransportError(Exception):
    """A VM could not be reached or could not run a command; `reason` is CamelCase."""

    reason: str = "TransportError"
    #: False when retrying cannot help without a human (a wrong host key, a bad key).
    retryable: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HostKeyMismatch(TransportError):
    """The VM presented a host key other than the pinned one; credentials were not sent."""

    reason = "HostKeyMismatch"
    retryable = False


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
