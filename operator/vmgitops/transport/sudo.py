"""Wrapping an argv in sudo, and reading sudo's own failures back. Pure functions.

Two forms, chosen per connection:

* no password (NOPASSWD, or none configured): `sudo -n -u USER -- ARGV`. `-n` makes
  sudo fail with "a password is required" instead of waiting for a prompt nobody sees.
* with a password: `sudo -k -S -p '' -u USER -- ARGV`, the password being the first
  line of stdin, followed by the command's own stdin. `-S` reads it from stdin, `-p ''`
  keeps the prompt out of stderr, and `-k` ignores cached credentials so that sudo
  *always* consumes that first line: with a cached timestamp it would otherwise hand
  the password to the command as input (think `tee /etc/file`).

For the same reason the password form is used only after a probe (`PROBE`) showed that
sudo really asks for one; under NOPASSWD the password is never sent at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import SudoPasswordRejected, SudoPasswordRequired, TransportError


def sudo_argv(argv: Sequence[str], user: str, *, with_password: bool) -> list[str]:
    """The argv that runs `argv` as `user` through sudo."""
    if with_password:
        return ["sudo", "-k", "-S", "-p", "", "-u", user, "--", *argv]
    return ["sudo", "-n", "-u", user, "--", *argv]


def probe_argv(user: str) -> list[str]:
    """Succeeds exactly when sudo lets the login user become `user` without a password."""
    return ["sudo", "-n", "-k", "-u", user, "--", "true"]


def password_stdin(password: bytes, stdin: bytes | None) -> bytes:
    """What goes to the channel's stdin in the password form."""
    return password + b"\n" + (stdin or b"")


_PASSWORD_REQUIRED = (b"a password is required", b"a terminal is required")
_PASSWORD_REJECTED = (
    b"incorrect password",
    b"sorry, try again",
    b"no password was provided",
)


def sudo_failure(
    exit_status: int, stderr: bytes, *, user: str, password_sent: bool
) -> TransportError | None:
    """The error sudo itself reported, or None when the outcome is the command's own.

    sudo exits 1 and writes "sudo: ..." to stderr; a command that prints the same words
    and exits 1 would be misread, which is why only sudo's prefix on the first line and
    its fixed phrases are looked at (in English: sudo's messages are localised, and an
    unrecognised message simply reaches the caller as the command's result).
    """
    if exit_status != 1:
        return None
    text = stderr.lstrip().lower()
    if not text.startswith(b"sudo:") and not text.startswith(b"sorry, try again"):
        return None
    head = text[:400]
    if any(phrase in head for phrase in _PASSWORD_REJECTED) and password_sent:
        return SudoPasswordRejected(f"sudo refused the configured password for becoming {user!r}")
    if any(phrase in head for phrase in _PASSWORD_REQUIRED):
        if password_sent:
            return SudoPasswordRejected(f"sudo still asks for a password for becoming {user!r}")
        return SudoPasswordRequired(
            f"sudo asks for a password to become {user!r}: allow NOPASSWD for the "
            "login user, or configure a sudo password"
        )
    return None
