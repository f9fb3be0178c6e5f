"""Host key policies: which server keys a connection may trust, decided before any login.

Each policy turns into the three things asyncssh needs at connect time:

* `known_hosts()`: asyncssh's "lists form" of known_hosts, `(trusted host keys, trusted
  CA keys, revoked keys)`. It is matched against no host pattern, because a policy
  belongs to exactly one target. It is never `None` (that would disable checking) and
  never empty (asyncssh would then read `~/.ssh/known_hosts`).
* `server_host_key_algs()`: the host key algorithms offered, the pinned key types first,
  so a server holding the pinned key presents that one; other plain types follow, so a
  server without it still shows which key it has and the mismatch names its fingerprint.
* `HostKeyCheck`, the `SSHClient` that asyncssh consults for keys outside those lists.
  It records what the server presented and, for TrustOnFirstUse, accepts the first key.

asyncssh verifies the host key inside the key exchange, before the first user
authentication request is sent, so a refused key means our credentials never left.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncssh

from .errors import HostKeyMismatch, HostKeyNotConfigured

#: Plain host key algorithms we offer, strongest and most common first. SHA-1 `ssh-rsa`
#: signatures are left out, as OpenSSH has done by default since 8.8.
PLAIN_HOST_KEY_ALGS: tuple[str, ...] = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)

#: OpenSSH host certificate algorithms, in the same order.
CERT_HOST_KEY_ALGS: tuple[str, ...] = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
)

KnownHosts = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]


def fingerprint(key: asyncssh.SSHKey) -> str:
    """OpenSSH's `SHA256:<base64>` fingerprint, the form stored in status."""
    return key.get_fingerprint("sha256")


def parse_public_keys(lines: Iterable[str], *, field_name: str) -> tuple[asyncssh.SSHKey, ...]:
    """Parse `type base64 [comment]` lines; a bad one is a configuration error."""
    keys: list[asyncssh.SSHKey] = []
    for index, line in enumerate(lines):
        text = line.strip()
        try:
            if not text or text.startswith("@"):
                raise ValueError(text)
            key = asyncssh.import_public_key(text)
        except Exception:
            raise HostKeyNotConfigured(
                f"{field_name}[{index}] is not an OpenSSH public key of the form "
                "'TYPE BASE64 [COMMENT]'"
            ) from None
        keys.append(key)
    return tuple(keys)


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class HostKeyPolicy(ABC):
    """What a connection may trust; immutable, built from the target's spec."""

    #: The spec's name for the policy.
    name: str = ""

    def ensure_configured(self) -> None:
        """Raise HostKeyNotConfigured when there is nothing to verify against."""
        return None

    @abstractmethod
    def known_hosts(self) -> KnownHosts:
        """asyncssh's lists form: trusted keys, trusted CA keys, revoked keys."""

    @abstractmethod
    def server_host_key_algs(self) -> list[str]:
        """Host key algorithms to offer, in order of preference."""

    def accept_unlisted_key(self, key: asyncssh.SSHKey) -> bool:
        """Whether a plain key absent from `known_hosts()` is acceptable anyway."""
        return False

    @abstractmethod
    def identity(self) -> str:
        """Changes whenever a connection made under this policy may no longer be valid."""

    def record(self) -> str:
        """State recorded in status (TrustOnFirstUse's fingerprint); part of the config id."""
        return ""

    def accepts_fingerprint(self, presented: str) -> bool:
        """Whether an open connection whose server presented `presented` may be kept."""
        return True

    @abstractmethod
    def mismatch_message(
        self, presented: asyncssh.SSHKey | None, ca: asyncssh.SSHKey | None, detail: str
    ) -> str:
        """Why the presented key was refused, naming fingerprints, never secrets."""


def _presented(presented: asyncssh.SSHKey | None) -> str:
    if presented is None:
        return "the host key the server presented"
    return f"host key {fingerprint(presented)} ({presented.algorithm.decode()})"


@dataclass(frozen=True, eq=False)
class Pinned(HostKeyPolicy):
    """Trust exactly these public keys (the default policy)."""

    public_keys: tuple[asyncssh.SSHKey, ...]
    name = "Pinned"

    @classmethod
    def from_strings(cls, lines: Sequence[str]) -> Pinned:
        return cls(parse_public_keys(lines, field_name="spec.hostKey.publicKeys"))

    def ensure_configured(self) -> None:
        if not self.public_keys:
            raise HostKeyNotConfigured(
                "hostKey policy Pinned has no publicKeys: add the VM's host key "
                "('ssh-keyscan' output or /etc/ssh/ssh_host_ed25519_key.pub), or use "
                "policy TrustOnFirstUse"
            )

    def known_hosts(self) -> KnownHosts:
        return (list(self.public_keys), [], [])

    def server_host_key_algs(self) -> list[str]:
        algs: list[str] = []
        for key in self.public_keys:
            own = [alg.decode() for alg in key.sig_algorithms]
            # Our preferred order first; then types we do not offer by default (security
            # key host keys, say), which the user asked for by pinning such a key; never
            # SHA-1 RSA signatures.
            ordered = [alg for alg in PLAIN_HOST_KEY_ALGS if alg in own]
            ordered += [alg for alg in own if alg not in ordered and not alg.startswith("ssh-rsa")]
            algs.extend(alg for alg in ordered if alg not in algs)
        algs.extend(alg for alg in PLAIN_HOST_KEY_ALGS if alg not in algs)
        return algs

    def identity(self) -> str:
        return "Pinned:" + _digest(sorted(fingerprint(key) for key in self.public_keys))

    def accepts_fingerprint(self, presented: str) -> bool:
        return presented in {fingerprint(key) for key in self.public_keys}

    def mismatch_message(
        self, presented: asyncssh.SSHKey | None, ca: asyncssh.SSHKey | None, detail: str
    ) -> str:
        pinned = ", ".join(fingerprint(key) for key in self.public_keys)
        return (
            f"{_presented(presented)} is not pinned (pinned: {pinned}); credentials were "
            "not sent. If the VM was legitimately re-keyed, update spec.hostKey.publicKeys"
        )


@dataclass(frozen=True, eq=False)
class TrustOnFirstUse(HostKeyPolicy):
    """Accept the first key seen, then only a key with that recorded fingerprint."""

    #: status.hostKeyFingerprint, "SHA256:..."; None until the first contact.
    recorded_fingerprint: str | None = None
    name = "TrustOnFirstUse"

    def __post_init__(self) -> None:
        recorded = self.recorded_fingerprint
        if recorded is not None and not recorded.startswith("SHA256:"):
            raise HostKeyNotConfigured(
                "status.hostKeyFingerprint is not of the form 'SHA256:...'; clear it to "
                "trust the VM's current key again"
            )

    def known_hosts(self) -> KnownHosts:
        return ([], [], [])

    def server_host_key_algs(self) -> list[str]:
        # A fixed order, so that the same server presents the same key every time.
        return list(PLAIN_HOST_KEY_ALGS)

    def accept_unlisted_key(self, key: asyncssh.SSHKey) -> bool:
        if self.recorded_fingerprint is None:
            return True
        return fingerprint(key) == self.recorded_fingerprint

    def identity(self) -> str:
        return "TrustOnFirstUse"

    def record(self) -> str:
        return self.recorded_fingerprint or ""

    def accepts_fingerprint(self, presented: str) -> bool:
        return self.recorded_fingerprint is None or presented == self.recorded_fingerprint

    def mismatch_message(
        self, presented: asyncssh.SSHKey | None, ca: asyncssh.SSHKey | None, detail: str
    ) -> str:
        return (
            f"{_presented(presented)} differs from the one trusted on first use "
            f"({self.recorded_fingerprint}); credentials were not sent. If the VM was "
            "legitimately re-keyed, clear status.hostKeyFingerprint"
        )


@dataclass(frozen=True, eq=False)
class CertificateAuthority(HostKeyPolicy):
    """Trust host certificates signed by one of these CAs, unless the key is revoked.

    The certificate must name the target's address (or host name) among its principals
    and be within its validity period; plain host keys are refused.
    """

    ca_keys: tuple[asyncssh.SSHKey, ...]
    revoked_keys: tuple[asyncssh.SSHKey, ...] = field(default=())
    name = "CertificateAuthority"

    @classmethod
    def from_strings(
        cls, ca_lines: Sequence[str], revoked_lines: Sequence[str] = ()
    ) -> CertificateAuthority:
        return cls(
            parse_public_keys(ca_lines, field_name="spec.hostKey.caPublicKeys"),
            parse_public_keys(revoked_lines, field_name="spec.hostKey.revokedPublicKeys"),
        )

    def ensure_configured(self) -> None:
        if not self.ca_keys:
            raise HostKeyNotConfigured("hostKey policy CertificateAuthority has no caPublicKeys")

    def known_hosts(self) -> KnownHosts:
        return ([], list(self.ca_keys), list(self.revoked_keys))

    def server_host_key_algs(self) -> list[str]:
        # Plain types last: a server without a certificate then shows which key it has.
        return list(CERT_HOST_KEY_ALGS) + list(PLAIN_HOST_KEY_ALGS)

    def identity(self) -> str:
        cas = sorted(fingerprint(key) for key in self.ca_keys)
        revoked = sorted(fingerprint(key) for key in self.revoked_keys)
        return "CertificateAuthority:" + _digest([*cas, "revoked", *revoked])

    def accepts_fingerprint(self, presented: str) -> bool:
        return presented not in {fingerprint(key) for key in self.revoked_keys}

    def mismatch_message(
        self, presented: asyncssh.SSHKey | None, ca: asyncssh.SSHKey | None, detail: str
    ) -> str:
        if ca is not None:
            why = f"its certificate is signed by CA {fingerprint(ca)}, which is not trusted"
        elif presented is not None:
            why = (
                f"it presented a plain {_presented(presented)} and policy "
                "CertificateAuthority accepts only host certificates"
            )
        elif "revoked" in detail.lower():
            why = "its host key or signing CA is revoked"
        else:
            why = f"its host certificate is not valid ({detail})"
        return f"host key refused: {why}; credentials were not sent"


class HostKeyCheck(asyncssh.SSHClient):
    """One connection attempt's view of the host key: consulted by asyncssh, then read by us.

    asyncssh asks `validate_host_public_key` only about plain keys missing from
    `known_hosts()`, and `validate_host_ca_key` only about CAs missing from it.
    """

    def __init__(self, policy: HostKeyPolicy) -> None:
        self.policy = policy
        #: The plain key the server presented, when asyncssh asked us about it.
        self.presented: asyncssh.SSHKey | None = None
        #: The CA that signed a certificate whose CA is not trusted.
        self.presented_ca: asyncssh.SSHKey | None = None
        #: The fingerprint accepted on first use, for the caller to record.
        self.learned_fingerprint: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        accepted = self.policy.accept_unlisted_key(key)
        if (
            accepted
            and isinstance(self.policy, TrustOnFirstUse)
            and self.policy.recorded_fingerprint is None
        ):
            self.learned_fingerprint = fingerprint(key)
        return accepted

    def validate_host_ca_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.presented_ca = key
        return False

    def mismatch(self, detail: str, *, prefix: str = "") -> HostKeyMismatch:
        """The typed error for a refused host key, with what was presented."""
        presented = self.presented
        message = prefix + self.policy.mismatch_message(presented, self.presented_ca, detail)
        return HostKeyMismatch(
            message,
            presented_fingerprint=fingerprint(presented) if presented is not None else None,
        )
