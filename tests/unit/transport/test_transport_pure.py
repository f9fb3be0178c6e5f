"""Pure parts of the transport: sudo wrapping and reading, algorithm order, messages."""

from __future__ import annotations

import errno

import asyncssh
import pytest
from transport_fakes import Keys

from vmgitops.transport import (
    AuthenticationFailed,
    CertificateAuthority,
    ConnectionLost,
    ConnectionRefused,
    HostKeyMismatch,
    HostUnreachable,
    Pinned,
    SudoPasswordRejected,
    SudoPasswordRequired,
    Timeout,
    TransportError,
    TrustOnFirstUse,
)
from vmgitops.transport.classify import clean, connect_error, run_error
from vmgitops.transport.hostkeys import CERT_HOST_KEY_ALGS, PLAIN_HOST_KEY_ALGS
from vmgitops.transport.sudo import password_stdin, probe_argv, sudo_argv, sudo_failure


@pytest.mark.parametrize(
    ("with_password", "expected"),
    [
        pytest.param(
            False, ["sudo", "-n", "-u", "app", "--", "ls", "-l"], id="nopasswd-never-waits"
        ),
        pytest.param(
            True,
            ["sudo", "-k", "-S", "-p", "", "-u", "app", "--", "ls", "-l"],
            id="password-from-stdin-always-consumed",
        ),
    ],
)
def test_sudo_argv(with_password: bool, expected: list[str]) -> None:
    assert sudo_argv(["ls", "-l"], "app", with_password=with_password) == expected


def test_probe_and_password_stdin() -> None:
    assert probe_argv("root") == ["sudo", "-n", "-k", "-u", "root", "--", "true"]
    assert password_stdin(b"pw", None) == b"pw\n"
    assert password_stdin(b"pw", b"data") == b"pw\ndata"


@pytest.mark.parametrize(
    ("status", "stderr", "password_sent", "expected"),
    [
        pytest.param(0, b"", False, None, id="success-is-no-failure"),
        pytest.param(1, b"grep: nothing\n", False, None, id="command-failure-is-a-result"),
        pytest.param(
            1, b"sudo: a password is required\n", False, SudoPasswordRequired, id="needs-password"
        ),
        pytest.param(
            1,
            b"sudo: a terminal is required to read the password\n",
            False,
            SudoPasswordRequired,
            id="needs-terminal",
        ),
        pytest.param(
            1,
            b"Sorry, try again.\nsudo: 1 incorrect password attempt\n",
            True,
            SudoPasswordRejected,
            id="wrong-password",
        ),
        pytest.param(
            1, b"sudo: no password was provided\n", True, SudoPasswordRejected, id="no-password"
        ),
        pytest.param(2, b"sudo: a password is required\n", False, None, id="only-exit-1-is-sudo"),
        pytest.param(
            1, b"app: a password is required\n", False, None, id="only-sudo-prefix-counts"
        ),
    ],
)
def test_sudo_failure(
    status: int, stderr: bytes, password_sent: bool, expected: type[Exception] | None
) -> None:
    failure = sudo_failure(status, stderr, user="root", password_sent=password_sent)
    if expected is None:
        assert failure is None
    else:
        assert isinstance(failure, expected)


def test_pinned_rsa_offers_rsa_first(keys: Keys) -> None:
    algs = Pinned((keys.host_rsa.convert_to_public(),)).server_host_key_algs()
    assert algs[:2] == ["rsa-sha2-512", "rsa-sha2-256"]
    assert sorted(algs) == sorted(PLAIN_HOST_KEY_ALGS)
    assert "ssh-rsa" not in algs


def test_pinned_keys_keep_their_order(keys: Keys) -> None:
    policy = Pinned((keys.host_rsa.convert_to_public(), keys.host.convert_to_public()))
    assert policy.server_host_key_algs()[:3] == ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519"]


def test_certificate_authority_offers_certificates_first(keys: Keys) -> None:
    algs = CertificateAuthority((keys.ca.convert_to_public(),)).server_host_key_algs()
    assert algs[: len(CERT_HOST_KEY_ALGS)] == list(CERT_HOST_KEY_ALGS)


def test_known_hosts_is_never_none_nor_empty(keys: Keys) -> None:
    """None disables checking; an empty value makes asyncssh read ~/.ssh/known_hosts."""
    for policy in (
        Pinned((keys.host.convert_to_public(),)),
        TrustOnFirstUse(),
        CertificateAuthority((keys.ca.convert_to_public(),)),
    ):
        known = policy.known_hosts()
        assert known is not None and len(known) == 3


WHERE = "u@h:22"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(asyncssh.HostKeyNotVerifiable("x"), HostKeyMismatch, id="host-key"),
        pytest.param(asyncssh.PermissionDenied("x"), AuthenticationFailed, id="auth"),
        pytest.param(ConnectionRefusedError(), ConnectionRefused, id="refused"),
        pytest.param(TimeoutError(), Timeout, id="asyncio-timeout"),
        pytest.param(OSError(errno.ETIMEDOUT, "timed out"), Timeout, id="tcp-timeout"),
        pytest.param(OSError(errno.EHOSTUNREACH, "no route"), HostUnreachable, id="no-route"),
        pytest.param(asyncssh.ConnectionLost("x"), ConnectionLost, id="lost-in-handshake"),
        pytest.param(asyncssh.KeyExchangeFailed("no alg"), TransportError, id="kex"),
        pytest.param(
            asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "Connection refused"),
            ConnectionRefused,
            id="bastion-refused",
        ),
        pytest.param(
            asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "prohibited"),
            TransportError,
            id="bastion-forbids-forwarding",
        ),
        pytest.param(RuntimeError("boom"), TransportError, id="anything-else"),
    ],
)
def test_connect_error_mapping(exc: BaseException, expected: type[TransportError]) -> None:
    error = connect_error(exc, where=WHERE, timeout=5)
    assert type(error) is expected
    assert error.message.startswith(WHERE)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(asyncssh.ConnectionLost("x"), ConnectionLost, id="lost"),
        pytest.param(BrokenPipeError(), ConnectionLost, id="broken-pipe"),
        pytest.param(
            asyncssh.ChannelOpenError(asyncssh.OPEN_RESOURCE_SHORTAGE, "too many"),
            TransportError,
            id="max-sessions",
        ),
    ],
)
def test_run_error_mapping(exc: BaseException, expected: type[TransportError]) -> None:
    assert type(run_error(exc, where=WHERE)) is expected


def test_clean_bounds_and_strips_control_characters() -> None:
    assert clean("a\x1b[31mb\nc") == "a [31mb c"
    assert len(clean("x" * 1000)) == 160
