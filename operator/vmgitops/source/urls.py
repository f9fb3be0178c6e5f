"""Which repository URLs vmgitops may fetch, and how they are shown and cached. Pure.

A repoURL is written by whoever may create a VMApplication, and the operator fetches it
from inside the cluster with its own network position: a `file://` or local path would
read the operator's own disk, `ext::` runs a command, and a link-local or metadata host
hands out cloud credentials. Those are refused before git is ever run; git's own
`GIT_ALLOW_PROTOCOL` (see gitcmd.py) is the second line.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

_SCHEME_ALIASES = {"git+ssh": "ssh", "ssh+git": "ssh"}
_NETWORK_SCHEMES = ("https", "http", "ssh", "git")
_DEFAULT_PORTS = {"https": 443, "http": 80, "git": 9418, "ssh": 22}

#: Names that resolve to a cloud provider's instance metadata service.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: Metadata addresses outside the link-local ranges (AWS over IPv6, Alibaba Cloud).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

_HOST_NAME = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$"
)
_USER = re.compile(r"^[A-Za-z0-9._~+][A-Za-z0-9._~+-]*$")
_HELPER_TRANSPORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.%]+\]|[^@/:\[\]\s]+):(?P<path>.*)$"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class SourcePolicy:
    """What the operator's administrator allows beyond the safe default."""

    #: `file://` URLs and absolute local paths (a test bed, never a shared cluster).
    allow_file: bool = False
    #: Link-local hosts (169.254.0.0/16, fe80::/10) and cloud metadata names.
    allow_insecure_hosts: bool = False
    #: Basic-auth passwords over plain http:// to a host other than loopback.
    allow_plain_http_credentials: bool = False

    @property
    def protocols(self) -> tuple[str, ...]:
        """For GIT_ALLOW_PROTOCOL: the transports git itself may use."""
        return ("git", "http", "https", "ssh", *(("file",) if self.allow_file else ()))


class URLRefused(ValueError):
    """Why a repoURL is refused; the message names the URL without userinfo."""


@dataclass(frozen=True)
class RepoURL:
    """A repoURL that passed the policy. `raw` may hold a user name: show `display`."""

    raw: str
    scheme: str
    host: str
    port: int | None
    user: str | None
    path: str
    scp_like: bool = False

    @property
    def display(self) -> str:
        """The URL without userinfo: safe in messages, logs, status and Events."""
        if self.scheme == "file":
            return f"file://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.scp_like:
            return f"{host}:{self.path}"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}"

    @property
    def normalized(self) -> str:
        """One spelling per repository: lower-case scheme and host, no default port or user."""
        if self.scheme == "file":
            return f"file://{self.path.rstrip('/')}"
        host = f"[{self.host}]" if ":" in self.host else self.host.rstrip(".")
        path = self.path.rstrip("/")
        if self.scp_like:
            return f"scp://{host}/{path}"
        port = f":{self.port}" if self.port not in (None, _DEFAULT_PORTS[self.scheme]) else ""
        return f"{self.scheme}://{host}{port}{path}"

    @property
    def cache_key(self) -> str:
        """Name of this repository's mirror in the cache: a hash, so no path tricks."""
        return hashlib.sha256(self.normalized.encode()).hexdigest()[:32]

    @property
    def is_ssh(self) -> bool:
        return self.scheme == "ssh"

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")


def redact_urls(text: str) -> str:
    """`text` with the userinfo of every URL in it removed (`https://u:p@h/` -> `https://h/`)."""
    return _USERINFO.sub(r"\1", text)


def safe_display(url: str, limit: int = 200) -> str:
    """A URL we could not parse, for a message: no userinfo, no control characters."""
    shown = redact_urls(url)
    scp = _SCP_LIKE.match(shown)
    if scp and scp.group("user") and not _SCHEME.match(shown):
        shown = shown[len(scp.group("user")) + 1 :]
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def parse_repo_url(url: str, policy: SourcePolicy | None = None) -> RepoURL:
    """The repoURL if the policy allows it; raises URLRefused saying why and what to do."""
    policy = policy or SourcePolicy()
    shown = safe_display(url)
    if not url:
        raise URLRefused("repoURL is empty; set spec.source.repoURL")
    if len(url) > MAX_URL_LENGTH:
        raise URLRefused(f"repoURL {shown!r} is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise URLRefused(f"repoURL {shown!r} contains whitespace or a control character")
    scheme_match = _SCHEME.match(url)
    if scheme_match:
        repo = _parse_scheme_url(url, scheme_match.group(1).lower(), policy, shown)
    elif _HELPER_TRANSPORT.match(url):
        raise URLRefused(
            f"repoURL {shown!r} names a git remote helper ('<transport>::'), which runs "
            "programs on the operator; use https://, ssh://, git:// or user@host:path"
        )
    elif scp := _SCP_LIKE.match(url):
        repo = _parse_scp_like(url, scp, shown)
    else:
        repo = _parse_local_path(url, policy, shown)
    if repo.scheme != "file":
        why = host_refusal(repo.host)
        if why and not policy.allow_insecure_hosts:
            raise URLRefused(
                f"repoURL {repo.display!r} is refused: {why}; fetching it could leak the "
                "operator's cloud credentials (an administrator can allow such hosts "
                "with VMGITOPS_GIT_ALLOW_INSECURE_HOSTS=true on the operator)"
            )
    return repo


def _parse_scheme_url(url: str, scheme: str, policy: SourcePolicy, shown: str) -> RepoURL:
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme == "file":
        if not policy.allow_file:
            raise URLRefused(
                f"repoURL {shown!r} is refused: file:// reads the operator's own disk; "
                "serve the repository over https://, ssh:// or git:// (a test bed may "
                "allow it with VMGITOPS_GIT_ALLOW_FILE=true on the operator)"
            )
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise URLRefused(f"repoURL {shown!r}: a file:// URL needs an absolute local path")
        return RepoURL(url, "file", "", None, None, parts.path)
    if scheme not in _NETWORK_SCHEMES:
        raise URLRefused(
            f"repoURL {shown!r} uses the unsupported scheme {scheme!r}; "
            "use https://, http://, ssh://, git:// or user@host:path"
        )
    parts = urlsplit(url)
    if parts.fragment or parts.query or "#" in url or "?" in url:
        raise URLRefused(f"repoURL {shown!r} has a query or fragment; remove it")
    netloc = parts.netloc
    userinfo, _, _ = netloc.rpartition("@")
    user: str | None = None
    if userinfo:
        if ":" in userinfo:
            raise URLRefused(
                f"repoURL {shown!r} holds a password; remove it from the URL and put it "
                "in a kubernetes.io/basic-auth Secret named by spec.source.credentials"
            )
        if not _USER.match(userinfo):
            raise URLRefused(f"repoURL {shown!r} has an invalid user name")
        user = userinfo
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise URLRefused(f"repoURL {shown!r} has an invalid host or port") from exc
    _check_host(host, shown, bracketed="[" in netloc)
    path = parts.path
    if not path.strip("/"):
        raise URLRefused(f"repoURL {shown!r} names no repository path")
    if port == 0:
        raise URLRefused(f"repoURL {shown!r} has port 0")
    return RepoURL(url, scheme, host, port, user, path)


def _parse_scp_like(url: str, scp: re.Match[str], shown: str) -> RepoURL:
    user, host, path = scp.group("user"), scp.group("host"), scp.group("path")
    if user is not None and not _USER.match(user):
        raise URLRefused(f"repoURL {shown!r} has an invalid user name")
    bracketed = host.startswith("[")
    host = host.strip("[]").lower()
    _check_host(host, shown, bracketed=bracketed)
    if not path.strip("/") or path.startswith("-"):
        raise URLRefused(f"repoURL {shown!r} names no repository path after 'host:'")
    return RepoURL(url, "ssh", host, None, user, path, scp_like=True)


def _parse_local_path(url: str, policy: SourcePolicy, shown: str) -> RepoURL:
    if not policy.allow_file:
        raise URLRefused(
            f"repoURL {shown!r} is a local path, which would read the operator's own disk; "
            "use https://, ssh://, git:// or user@host:path (a test bed may allow it with "
            "VMGITOPS_GIT_ALLOW_FILE=true on the operator)"
        )
    if not url.startswith("/"):
        raise URLRefused(f"repoURL {shown!r}: a local repository needs an absolute path")
    return RepoURL(url, "file", "", None, None, url)


def _check_host(host: str, shown: str, *, bracketed: bool) -> None:
    if not host:
        raise URLRefused(f"repoURL {shown!r} names no host")
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise URLRefused(f"repoURL {shown!r} has an invalid IPv6 address") from exc
        return
    if host.startswith("-") or not _HOST_NAME.match(host.lower()):
        raise URLRefused(f"repoURL {shown!r} has an invalid host name")


def host_refusal(host: str) -> str | None:
    """Why `host` (a name or address) is unsafe to fetch from, or None when it is fine."""
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        return f"{name!r} is a cloud metadata service"
    address = _as_address(name)
    if address is None:
        return None
    return address_refusal(address)


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a (resolved) address is unsafe: link-local or metadata, also when embedded in v6."""
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            candidates.append(address.sixtofour)
        if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
            candidates.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata address"
        if candidate.is_link_local:
            return f"{address} is a link-local address"
    return None


def is_loopback_host(host: str) -> bool:
    """localhost or a loopback address: traffic that never leaves the machine."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _as_address(name)
    return address is not None and address.is_loopback


def _as_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP literal in any spelling the resolver accepts (`2852039166`, `0xa9.0376.1.1`)."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", name) and any(ch.isdigit() for ch in name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None
