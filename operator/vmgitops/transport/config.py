"""What it takes to reach one VM: address, login, key, host key policy, sudo, bastion.

`ConnectionConfig` is immutable and carries two identities. `connection_id` changes when
an open connection would no longer be the right one (address, user, key, host key
policy, bastion, timeouts); the pool then replaces the connection. `config_id` also
covers what is merely recorded (TrustOnFirstUse's fingerprint), so that an edit clears a
cached failure such as a host key mismatch. Neither holds secret material: keys enter
through their public fingerprints only, and the sudo password not at all (it is sent
per command, so a changed password needs no new connection).

`build_connection_config` maps a VirtualMachineTarget spec, as the API returns it
(camelCase mapping), plus its credentials Secret, onto a `ConnectionConfig`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import asyncssh

from .errors import CredentialsMissing, HostKeyNotConfigured
from .hostkeys import (
    CertificateAuthority,
    HostKeyPolicy,
    Pinned,
    TrustOnFirstUse,
    fingerprint,
)
from .keys import KeyCache

#: Connections through more bastions than this are refused (and loops with them).
MAX_BASTION_DEPTH = 4


@dataclass(frozen=True)
class Become:
    """Run commands as another user through sudo."""

    user: str = "root"
    method: str = "sudo"
    #: The login user's sudo password; sent as the first line of stdin, never in argv.
    password: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method != "sudo":
            raise ValueError(f"become method {self.method!r} is not supported; use 'sudo'")
        if not self.user or self.user.startswith("-"):
            raise ValueError("become user must be a user name")
        if self.password is not None and (b"\n" in self.password or b"\r" in self.password):
            raise CredentialsMissing("the sudo password must be a single line")


@dataclass(frozen=True)
class Timeouts:
    """Seconds; asyncssh's own defaults (no connect timeout, no keepalive) are never used."""

    #: TCP connect, key exchange and authentication together.
    connect: float = 10.0
    #: A command's default when the caller gives none.
    command: float = 300.0
    #: Keepalive requests on an idle connection, and how many may go unanswered.
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3


@dataclass(frozen=True, eq=False)
class ConnectionConfig:
    """One target's connection settings; `target` ("namespace/name") keys the pool."""

    target: str
    address: str
    user: str
    key: asyncssh.SSHKey = field(repr=False)
    host_key_policy: HostKeyPolicy
    port: int = 22
    become: Become | None = None
    bastion: ConnectionConfig | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError(f"{self.target}: address is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"{self.target}: port {self.port} is out of range")
        seen = [self.target]
        hop = self.bastion
        while hop is not None:
            if hop.target in seen:
                raise ValueError(f"{self.target}: bastion loop through {hop.target}")
            seen.append(hop.target)
            if len(seen) > MAX_BASTION_DEPTH + 1:
                raise ValueError(f"{self.target}: more than {MAX_BASTION_DEPTH} bastion hops")
            hop = hop.bastion

    @property
    def where(self) -> str:
        """`user@address:port`, the prefix of every message about this target."""
        return f"{self.user}@{self.address}:{self.port}"

    @cached_property
    def connection_id(self) -> str:
        timeouts = self.timeouts
        parts = [
            self.target,
            self.address,
            str(self.port),
            self.user,
            fingerprint(self.key),
            self.host_key_policy.identity(),
            f"{timeouts.connect}/{timeouts.keepalive_interval}/{timeouts.keepalive_count_max}",
            self.bastion.config_id if self.bastion is not None else "",
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]

    @cached_property
    def config_id(self) -> str:
        record = self.host_key_policy.record()
        return hashlib.sha256(f"{self.connection_id}\0{record}".encode()).hexdigest()[:24]


def host_key_policy_from_spec(
    host_key: Mapping[str, Any] | None, *, recorded_fingerprint: str | None = None
) -> HostKeyPolicy:
    """`spec.hostKey` -> policy; `recorded_fingerprint` is status.hostKeyFingerprint."""
    host_key = host_key or {}
    policy = host_key.get("policy") or "Pinned"
    if policy == "Pinned":
        return Pinned.from_strings(list(host_key.get("publicKeys") or []))
    if policy == "TrustOnFirstUse":
        return TrustOnFirstUse(recorded_fingerprint or None)
    if policy == "CertificateAuthority":
        return CertificateAuthority.from_strings(
            list(host_key.get("caPublicKeys") or []),
            list(host_key.get("revokedPublicKeys") or []),
        )
    raise HostKeyNotConfigured(
        f"spec.hostKey.policy {policy!r} is not one of Pinned, TrustOnFirstUse, "
        "CertificateAuthority"
    )


def build_connection_config(
    spec: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    secret: Mapping[str, Any] | None,
    key_cache: KeyCache,
    recorded_fingerprint: str | None = None,
    bastion: ConnectionConfig | None = None,
    sudo_password: bytes | None = None,
    timeouts: Timeouts | None = None,
) -> ConnectionConfig:
    """A VirtualMachineTarget's spec and credentials Secret -> ConnectionConfig.

    `secret` is the Secret named by spec.credentials.secretRef (None when it does not
    exist); `bastion` is the config built the same way for spec.bastion.targetRef.
    Raises CredentialsMissing or HostKeyNotConfigured (TransportErrors, so callers
    handle them like connection failures) and ValueError for a spec that validation
    should have refused.
    """
    credentials = spec.get("credentials") or {}
    secret_name = ((credentials.get("secretRef") or {}).get("name")) or ""
    if not secret_name:
        raise CredentialsMissing("spec.credentials.secretRef.name is empty")
    key = key_cache.load(secret, namespace=namespace, name=secret_name)
    policy = host_key_policy_from_spec(
        spec.get("hostKey"), recorded_fingerprint=recorded_fingerprint
    )
    become_spec = spec.get("become")
    become = None
    if become_spec:
        become = Become(
            user=become_spec.get("user") or "root",
            method=become_spec.get("method") or "sudo",
            password=sudo_password,
        )
    return ConnectionConfig(
        target=f"{namespace}/{name}",
        address=str(spec.get("address") or ""),
        port=int(spec.get("port") or 22),
        user=str(spec.get("user") or "root"),
        key=key,
        host_key_policy=policy,
        become=become,
        bastion=bastion,
        timeouts=timeouts or Timeouts(),
    )
