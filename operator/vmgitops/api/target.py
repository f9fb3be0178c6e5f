"""VirtualMachineTarget (short name vmt): one VM reachable over SSH."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from vmgitops.api.base import ApiModel, ObjectName, Time
from vmgitops.api.common import (
    Credentials,
    HealthStatusCode,
    LocalObjectReference,
    ObjectMeta,
    ObservedStatus,
    OperationPhase,
    SyncStatusCode,
)
from vmgitops.api.meta import API_VERSION, TARGET

SshPublicKey = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=16384, pattern=r"^[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,3}( [^\n]*)?$"
    ),
]
"""An OpenSSH public key line, "type base64 [comment]"."""

UnixUser = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$"),
]


class HostKeyPolicy(StrEnum):
    """How the VM's SSH host key is verified before any credential is sent."""

    PINNED = "Pinned"
    TRUST_ON_FIRST_USE = "TrustOnFirstUse"
    CERTIFICATE_AUTHORITY = "CertificateAuthority"


class ReachableReason(StrEnum):
    """Reasons of the Reachable condition; the first six are those of api.md."""

    HOST_KEY_MISMATCH = "HostKeyMismatch"
    HOST_KEY_NOT_CONFIGURED = "HostKeyNotConfigured"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    CONNECTION_REFUSED = "ConnectionRefused"
    TIMEOUT = "Timeout"
    CREDENTIALS_MISSING = "CredentialsMissing"
    BASTION_UNREACHABLE = "BastionUnreachable"
    HOST_UNREACHABLE = "HostUnreachable"
    CONNECTION_LOST = "ConnectionLost"
    SUDO_PASSWORD_REQUIRED = "SudoPasswordRequired"  # noqa: S105 - a reason, not a secret
    SUDO_PASSWORD_REJECTED = "SudoPasswordRejected"  # noqa: S105 - a reason, not a secret
    FACTS_FAILED = "FactsFailed"
    INVALID_SPEC = "InvalidSpec"
    CONNECTED = "Connected"


CA_KEYS_REQUIRED = "caPublicKeys must list at least one key when policy is CertificateAuthority"


class HostKey(ApiModel):
    """How to verify the VM's host key. Pinned with no keys is accepted here, and the
    operator reports Reachable=False with reason HostKeyNotConfigured, so that the object
    can be created before its key is known."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.policy) || self.policy != 'CertificateAuthority'"
                    " || (has(self.caPublicKeys) && size(self.caPublicKeys) > 0)",
                    "message": CA_KEYS_REQUIRED,
                }
            ]
        }
    )

    policy: HostKeyPolicy = HostKeyPolicy.PINNED
    """Pinned (default): only publicKeys are accepted. TrustOnFirstUse: the first key seen
    is recorded in status.hostKeyFingerprint and pinned from then on. CertificateAuthority:
    host certificates signed by one of caPublicKeys are accepted."""
    public_keys: list[SshPublicKey] = Field(default_factory=list, max_length=64)
    """The accepted host keys, as OpenSSH "type base64" lines; for Pinned."""
    ca_public_keys: list[SshPublicKey] = Field(default_factory=list, max_length=64)
    """The keys of the CAs that sign host certificates; for CertificateAuthority."""
    revoked_public_keys: list[SshPublicKey] = Field(default_factory=list, max_length=256)
    """Host keys (or CA keys) never to trust, even when a trusted CA signed them; for
    CertificateAuthority. A VM presenting one is refused with HostKeyMismatch."""

    @model_validator(mode="after")
    def _ca_keys_for_ca_policy(self) -> Self:
        if self.policy is HostKeyPolicy.CERTIFICATE_AUTHORITY and not self.ca_public_keys:
            raise ValueError(CA_KEYS_REQUIRED)
        return self


class BecomeMethod(StrEnum):
    """How to run commands as another user on the VM."""

    SUDO = "sudo"


class SecretKeyReference(ApiModel):
    """One key of a Secret in the same namespace."""

    name: ObjectName
    """The Secret's name."""
    key: str = Field(default="password", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key inside the Secret's data."""


class Become(ApiModel):
    """Privilege escalation for the commands run on the VM."""

    method: BecomeMethod = BecomeMethod.SUDO
    """Only sudo for now, non-interactive: without a password sudo -n is used, and a sudo
    that asks for one gives Reachable=False with reason SudoPasswordRequired."""
    user: UnixUser = "root"
    """The user to become."""
    password_secret_ref: SecretKeyReference | None = None
    """The login user's sudo password, read from this Secret (any type; key "password" by
    default). It is written to sudo's standard input, never to its command line, and only
    when sudo asks for it."""


class Bastion(ApiModel):
    """Connect through another VirtualMachineTarget as a jump host."""

    target_ref: LocalObjectReference
    """The VirtualMachineTarget to jump through, in the same namespace."""


class VirtualMachineTargetSpec(ApiModel):
    """One VM reachable over SSH."""

    address: str = Field(min_length=1, max_length=253, pattern=r"^[^\s-]\S*$")
    """Host name or IP address of the VM."""
    port: int = Field(default=22, ge=1, le=65535)
    """SSH port."""
    user: UnixUser
    """The user to log in as."""
    credentials: Credentials | None = None
    """A Secret of type kubernetes.io/ssh-auth (key ssh-privatekey) in the same namespace.
    Without it the target is not reachable (reason CredentialsMissing)."""
    host_key: HostKey = Field(default_factory=HostKey, json_schema_extra={"default": {}})
    """How the VM's host key is verified."""
    become: Become | None = None
    """Run commands as another user (sudo); default: as the login user."""
    bastion: Bastion | None = None
    """Reach this VM through another target."""
    paused: bool = False
    """When true the operator neither probes nor changes this VM."""


class OSInfo(ApiModel):
    """From /etc/os-release."""

    id: str | None = None
    """ID, for example debian."""
    version_id: str | None = None
    """VERSION_ID, for example 12."""
    pretty_name: str | None = None
    """PRETTY_NAME, for example Debian GNU/Linux 12 (bookworm)."""


class Facts(ApiModel):
    """What the last probe found on the VM."""

    hostname: str | None = None
    os: OSInfo | None = None
    kernel: str | None = None
    """Kernel release (uname -r)."""
    arch: str | None = None
    """Machine architecture (uname -m), for example x86_64."""
    init_system: str | None = None
    """For example systemd."""
    package_manager: str | None = None
    """apt, dnf or apk."""


class TargetApplicationStatus(ApiModel):
    """The state of one VMApplication on this VM."""

    name: str
    """The VMApplication's name."""
    revision: str | None = None
    """The revision last applied to this VM."""
    sync: SyncStatusCode | None = None
    """Whether the VM matches the application's desired state at its revision."""
    health: HealthStatusCode | None = None
    """The application's health on this VM."""
    phase: OperationPhase | None = None
    """How the last rollout step on this VM ended (Running while it is applied)."""
    last_sync_time: Time | None = None
    """When a sync last finished on this VM."""
    message: str = ""
    """What went wrong, if anything."""


class VirtualMachineTargetStatus(ObservedStatus):
    """What the operator observed on the VM. Conditions: Reachable, Ready."""

    host_key_fingerprint: str | None = None
    """SHA256 fingerprint of the host key the VM presented (pinned for TrustOnFirstUse)."""
    facts: Facts | None = None
    last_probe_time: Time | None = None
    """When the VM was last probed, successfully or not."""
    applications: list[TargetApplicationStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """One entry per VMApplication that selects this target."""


class VirtualMachineTarget(ApiModel):
    """A whole VirtualMachineTarget object."""

    api_version: str = API_VERSION
    kind: str = TARGET.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: VirtualMachineTargetSpec
    status: VirtualMachineTargetStatus = Field(default_factory=VirtualMachineTargetStatus)
