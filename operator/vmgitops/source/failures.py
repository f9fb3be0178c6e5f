"""git's failures -> typed errors with a cause and what to do. Pure.

Only a short, scrubbed excerpt of git's own output is quoted: it comes from the server or
the OS, and the Scrubber has already masked our credentials in every spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import GitAuthenticationFailed, GitFetchFailed

_HOST_KEY = re.compile(
    r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
    r"No \S+ host key is known",
    re.I,
)
_AUTH = re.compile(
    r"Authentication failed|could not read (Username|Password)|"
    r"Permission denied \(|HTTP Basic: Access denied|"
    r"returned error: 40[13]|Invalid username or password",
    re.I,
)
_MISSING = re.compile(
    r"repository .* not found|no such repository|does not appear to be a git repository|"
    r"not exported|returned error: 404|No such file or directory",
    re.I,
)
_NO_GIT = re.compile(r"upload-pack: (command )?not found|upload-pack.*No such file", re.I)
# Checked before _UNREACHABLE: git adds "the remote end hung up" after an HTTP 5xx too.
_SERVER_ERROR = re.compile(r"returned error: 5\d\d|\bHTTP 5\d\d\b", re.I)
_UNREACHABLE = re.compile(
    r"Could not resolve host|Connection refused|Connection timed out|"
    r"unable to connect|Failed to connect|Network is unreachable|No route to host|"
    r"Connection reset|Could not read from remote repository|the remote end hung up|"
    r"Operation too slow",
    re.I,
)


_NOISE = ("hint:", "error: unable to read askpass response")


def excerpt(stderr: str, scrub: Callable[[str], str], limit: int = 300) -> str:
    """The last meaningful lines of git's stderr: scrubbed, printable, bounded."""
    lines = [scrub(line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_NOISE)]
    text = " / ".join(lines[-3:])
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def fetch_failure(
    action: str,
    display: str,
    stderr: str,
    *,
    timed_out: bool,
    timeout: float,
    scrub: Callable[[str], str],
) -> GitFetchFailed:
    """Why `action` ("listing", "fetching") of the repository `display` failed."""
    where = f"{action} {display}"
    if timed_out:
        return GitFetchFailed(
            f"{where} timed out after {timeout:g}s and was stopped; the server is slow or "
            "the repository too large; it is retried later"
        )
    said = excerpt(stderr, scrub)
    detail = f" (git: {said})" if said else ""
    if _HOST_KEY.search(stderr):
        return GitAuthenticationFailed(
            f"{where} failed: the server's SSH host key is not in the Secret's known_hosts"
            f"{detail}; add the right key (ssh-keyscan) to the Secret's 'known_hosts'"
        )
    if _AUTH.search(stderr):
        return GitAuthenticationFailed(
            f"{where} failed: the server refused the credentials{detail}; check the Secret "
            "named by spec.source.credentials (or add one if the repository is private)"
        )
    if _MISSING.search(stderr):
        return GitFetchFailed(
            f"{where} failed: no such repository on the server{detail}; check spec.source.repoURL"
        )
    if _NO_GIT.search(stderr):
        return GitFetchFailed(
            f"{where} failed: the server has no git-upload-pack{detail}; check that "
            "spec.source.repoURL names a Git server"
        )
    if _SERVER_ERROR.search(stderr):
        return GitFetchFailed(
            f"{where} failed: the server answered with an error (HTTP 5xx){detail}; "
            "it is retried later"
        )
    if _UNREACHABLE.search(stderr):
        return GitFetchFailed(
            f"{where} failed: the server could not be reached{detail}; it is retried later"
        )
    return GitFetchFailed(f"{where} failed{detail}; it is retried later")
