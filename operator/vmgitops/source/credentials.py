"""Git credentials from Kubernetes Secrets, handed to git without exposing them.

A password reaches git through a GIT_ASKPASS script that prints environment variables,
never through the URL or argv (both visible in `ps` and echoed in git's errors). An SSH
key goes to a 0600 file in a private temporary directory that is removed when the git
command ends, with `StrictHostKeyChecking=yes` against the Secret's own `known_hosts`.

Input is the Secret as the API returns it (`{"type": ..., "data": {key: base64}}`);
this module imports no Kubernetes client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import GitCredentialsInvalid
from .urls import RepoURL, SourcePolicy, is_loopback_host

BASIC_AUTH_TYPE = "kubernetes.io/basic-auth"
SSH_AUTH_TYPE = "kubernetes.io/ssh-auth"
KNOWN_HOSTS_KEY = "known_hosts"
USERNAME_ENV = "VMGITOPS_GIT_USERNAME"
PASSWORD_ENV = "VMGITOPS_GIT_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
HOST_ENV = "VMGITOPS_GIT_HOST"
#: A user name this long is probably a token (`https://<token>@host` logins).
TOKEN_LIKE_USERNAME = 20

_ASKPASS = f"""#!/bin/sh
# vmgitops: answers git's credential prompts from the environment of this git command,
# and only for the repository's own host (never for one a redirect led to).
case "$1" in
  "Username for '"*"//${HOST_ENV}': ") printf '%s\\n' "${USERNAME_ENV}" ;;
  "Password for '"*[/@]"${HOST_ENV}': ") printf '%s\\n' "${PASSWORD_ENV}" ;;
  *) exit 1 ;;
esac
"""


@dataclass(frozen=True, repr=False)
class BasicAuth:
    """username/password (or token) for http(s)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password='***')"


@dataclass(frozen=True, repr=False)
class SSHAuth:
    """A private key, and the host keys the server must present."""

    private_key: str
    known_hosts: str | None = None

    def __repr__(self) -> str:
        return f"SSHAuth(private_key='***', known_hosts={self.known_hosts is not None})"


GitCredentials = BasicAuth | SSHAuth
SecretLike = Mapping[str, Any] | BasicAuth | SSHAuth


def _where(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata")
    if isinstance(meta, Mapping) and meta.get("name"):
        namespace = meta.get("namespace")
        return f"Secret {namespace}/{meta['name']}" if namespace else f"Secret {meta['name']}"
    return "the credentials Secret"


def _field(secret: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    where = _where(secret)
    data = secret.get("data") or {}
    if not isinstance(data, Mapping):
        raise GitCredentialsInvalid(f"{where} has no data")
    value = data.get(key)
    if value is None or value == "":
        if optional:
            return None
        raise GitCredentialsInvalid(f"{where} has no key {key!r}; add it")
    try:
        raw = value if isinstance(value, bytes) else str(value).encode("ascii")
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise GitCredentialsInvalid(f"{where} key {key!r} is not base64 of UTF-8 text") from None


def _strip_newline(value: str) -> str:
    """Values stored from a file end in a newline that was never part of the password."""
    return value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")


def credentials_from_secret(secret: SecretLike | None) -> GitCredentials | None:
    """Parses a basic-auth or ssh-auth Secret; GitCredentialsInvalid says what to fix."""
    if secret is None or isinstance(secret, BasicAuth | SSHAuth):
        return secret
    where = _where(secret)
    kind = secret.get("type")
    if kind == BASIC_AUTH_TYPE:
        username = _strip_newline(_field(secret, "username", optional=True) or "")
        password = _strip_newline(_field(secret, "password", optional=True) or "")
        if not username and not password:
            raise GitCredentialsInvalid(f"{where} has neither 'username' nor 'password'")
        return BasicAuth(username, password)
    if kind == SSH_AUTH_TYPE:
        key = _field(secret, "ssh-privatekey") or ""
        key = key.replace("\r\n", "\n")
        if not key.endswith("\n"):
            key += "\n"
        return SSHAuth(key, _field(secret, KNOWN_HOSTS_KEY, optional=True))
    raise GitCredentialsInvalid(
        f"{where} has type {kind!r}; use {BASIC_AUTH_TYPE} (keys username, password) "
        f"or {SSH_AUTH_TYPE} (keys ssh-privatekey, known_hosts)"
    )


def fingerprint(creds: GitCredentials | None) -> str:
    """Identifies credentials without revealing them (which requests may share a listing)."""
    if creds is None:
        return "anonymous"
    if isinstance(creds, BasicAuth):
        material = f"basic\0{creds.username}\0{creds.password}"
    else:
        material = f"ssh\0{creds.private_key}\0{creds.known_hosts}"
    return hashlib.sha256(material.encode()).hexdigest()


def secrets_of(creds: GitCredentials | None) -> list[str]:
    """What a Scrubber must mask for these credentials."""
    if isinstance(creds, BasicAuth):
        token_like = len(creds.username) >= TOKEN_LIKE_USERNAME or not creds.password
        return [creds.password] + ([creds.username] if token_like else [])
    if isinstance(creds, SSHAuth):
        body = [line for line in creds.private_key.splitlines() if len(line) >= 16]
        return [line for line in body if "PRIVATE KEY" not in line]
    return []


def check_fit(creds: GitCredentials | None, repo: RepoURL, policy: SourcePolicy) -> None:
    """Refuses credentials that do not suit the URL, before anything is written or sent."""
    if repo.is_ssh:
        if not isinstance(creds, SSHAuth):
            raise GitCredentialsInvalid(
                f"{repo.display} is an SSH URL: name a {SSH_AUTH_TYPE} Secret (keys "
                "ssh-privatekey and known_hosts) in spec.source.credentials"
            )
        if not (creds.known_hosts or "").strip():
            raise GitCredentialsInvalid(
                f"{repo.display}: the SSH credentials Secret has no {KNOWN_HOSTS_KEY!r} key, "
                "so the server cannot be verified; add the server's host keys to the "
                f"Secret under {KNOWN_HOSTS_KEY!r} (ssh-keyscan output; '[host]:port' "
                "for a port other than 22)"
            )
    elif isinstance(creds, SSHAuth) and repo.is_http:
        raise GitCredentialsInvalid(
            f"{repo.display} is an HTTP URL but the credentials Secret is {SSH_AUTH_TYPE}; "
            f"use a {BASIC_AUTH_TYPE} Secret or an ssh:// URL"
        )
    if (
        isinstance(creds, BasicAuth)
        and repo.scheme == "http"
        and not is_loopback_host(repo.host)
        and not policy.allow_plain_http_credentials
    ):
        raise GitCredentialsInvalid(
            f"{repo.display} is plain http://: the password would cross the network in "
            "clear text; use https://"
        )


def ssh_command(key_file: Path, known_hosts: Path, connect_timeout: float) -> str:
    """GIT_SSH_COMMAND: our key only, this host key only, no config, agent or prompts."""
    options = [
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "StrictHostKeyChecking=yes",
        f"UserKnownHostsFile={known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        "UpdateHostKeys=no",
        "BatchMode=yes",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        "ForwardAgent=no",
        "ClearAllForwardings=yes",
        "ControlMaster=no",
        "ControlPath=none",
        f"ConnectTimeout={max(1, round(connect_timeout))}",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        "LogLevel=ERROR",
    ]
    argv = ["ssh", "-F", "/dev/null", "-i", str(key_file)]
    for option in options:
        argv += ["-o", option]
    return shlex.join(argv)


def _write_private(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def prompt_host(repo: RepoURL) -> str:
    """The host[:port] git names in its credential prompts for this URL."""
    return urlsplit(repo.raw).netloc.rpartition("@")[2]


#: Prefixes of the private temporary folders of git commands (key files, askpass) and of
#: promotion clones; a SIGKILLed operator leaves them behind.
SCRATCH_PREFIXES = ("vmgitops-git-", "vmgitops-promote-")


def sweep_stale_scratch(max_age: float = 3600.0, root: Path | None = None) -> list[str]:
    """Removes this user's scratch folders untouched for `max_age` seconds; their names.

    A crash between creating a folder and its `finally` leaves an SSH key file on disk:
    the next operator start removes it. Young folders stay: another operator process on
    the same machine may be using them (no git command runs for anywhere near an hour).
    """
    base = root if root is not None else Path(tempfile.gettempdir())
    now, uid, removed = time.time(), os.getuid(), []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(SCRATCH_PREFIXES):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or now - info.st_mtime < max_age:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.name)
    return removed


@contextmanager
def auth_env(
    creds: GitCredentials | None, repo: RepoURL, *, connect_timeout: float = 30
) -> Iterator[dict[str, str]]:
    """Environment for one git command on `repo` with these credentials; its files go
    afterwards."""
    false = shutil.which("false") or "/bin/false"
    if creds is None:
        yield {"GIT_ASKPASS": false, "SSH_ASKPASS": false}
        return
    tmp = Path(tempfile.mkdtemp(prefix="vmgitops-git-"))
    try:
        if isinstance(creds, BasicAuth):
            script = tmp / "askpass"
            _write_private(script, _ASKPASS, 0o700)
            yield {
                "GIT_ASKPASS": str(script),
                "SSH_ASKPASS": false,
                HOST_ENV: prompt_host(repo),
                USERNAME_ENV: creds.username,
                PASSWORD_ENV: creds.password,
            }
        else:
            key, hosts = tmp / "id", tmp / "known_hosts"
            _write_private(key, creds.private_key, 0o600)
            _write_private(hosts, creds.known_hosts or "", 0o600)
            yield {
                "GIT_ASKPASS": false,
                "SSH_ASKPASS": false,
                "GIT_SSH_COMMAND": ssh_command(key, hosts, connect_timeout),
                "GIT_SSH_VARIANT": "ssh",
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
