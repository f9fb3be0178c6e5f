"""VMApplication (short name vmapp): the desired state of a set of VMs, from a Git folder."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, NonNegativeInt

from vmgitops.api.base import ApiModel, Duration, IntOrPercent, Time
from vmgitops.api.common import (
    Credentials,
    HealthStatusCode,
    LabelSelector,
    ObjectMeta,
    ObservedStatus,
    OperationPhase,
    SyncStatusCode,
)
from vmgitops.api.meta import API_VERSION, APPLICATION

_URL_CHAR = r"[^\x00-\x20\x7f]"
_IPV6 = r"\[[0-9A-Fa-f:.%]+\]"
_NAME = r"[^@/:\[\]\x00-\x20\x7f]"
REPO_URL_PATTERN = (
    rf"^([A-Za-z][A-Za-z0-9+.-]*://{_URL_CHAR}+"
    rf"|/{_URL_CHAR}*"
    rf"|([^-@/:\x00-\x20\x7f]{_NAME}*@({_IPV6}|{_NAME}+)|{_IPV6}|[^-@/:\[\]\x00-\x20\x7f]{_NAME}*)"
    rf":{_URL_CHAR}+)$"
)
"""The shape of a Git location, and no more: SCHEME://..., an absolute path, or the
scp-like [user@]host:path; no whitespace or control character anywhere, and no leading
"-" (git could read the whole URL as an option). Which schemes, hosts and local paths
are allowed is the operator's policy (file:// and local paths only with
VMGITOPS_GIT_ALLOW_FILE, no cloud metadata or option-like hosts...): a refused one is
reported as RepoURLRefused with the reason. The schema used to allow only
git/http(s)/ssh, which made VMGITOPS_GIT_ALLOW_FILE useless: file:// was refused at
admission whatever the setting."""

_SEGMENT = r"(\.|\.\.[^/\n]+|\.?[^/.\n][^/\n]*)"
RELATIVE_PATH_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*/?$"
"""A relative path with no ".." segment and no empty segment."""


class ApplicationSource(ApiModel):
    """Where the desired state lives: a folder in a Git repository."""

    repo_url: str = Field(alias="repoURL", min_length=1, max_length=2048, pattern=REPO_URL_PATTERN)
    """git://, https://, ssh:// URL or user@host:path of the repository (file:// or a local
    path only where the operator allows them, VMGITOPS_GIT_ALLOW_FILE)."""
    target_revision: str = Field(default="HEAD", min_length=1, max_length=1024)
    """Branch, tag or commit to deploy."""
    path: str = Field(default=".", min_length=1, max_length=4096, pattern=RELATIVE_PATH_PATTERN)
    """Folder holding vmapp.yaml, relative to the repository root; ".." is refused."""
    credentials: Credentials | None = None
    """A Secret of type kubernetes.io/basic-auth or kubernetes.io/ssh-auth."""


class ApplicationDestination(ApiModel):
    """Which VMs the application is applied to."""

    selector: LabelSelector
    """Selects VirtualMachineTargets in the same namespace; {} selects all of them."""


class AutomatedSync(ApiModel):
    """Sync on every new revision without being asked."""

    prune: bool = False
    """Remove from the VMs what was removed from Git."""
    self_heal: bool = False
    """Sync again when a VM drifts from the desired state."""


class Backoff(ApiModel):
    """Delay between sync retries: duration, then times factor, capped at maxDuration."""

    duration: Duration = "5s"
    factor: int = Field(default=2, ge=1)
    max_duration: Duration = "3m"


class RetryPolicy(ApiModel):
    """How a failed sync is retried."""

    limit: int = Field(default=3, ge=-1)
    """Retries after the first attempt; -1 retries forever."""
    backoff: Backoff = Field(default_factory=Backoff, json_schema_extra={"default": {}})


class SyncPolicy(ApiModel):
    """When to sync. Without automated, only on request (vmgitops.io/sync annotation)."""

    automated: AutomatedSync | None = None
    retry: RetryPolicy | None = None


class StrategyType(StrEnum):
    """How a revision reaches the selected VMs."""

    ROLLING = "Rolling"
    ALL_AT_ONCE = "AllAtOnce"


class RollingStrategy(ApiModel):
    """Batches for a Rolling strategy."""

    max_unavailable: IntOrPercent = "25%"
    """Targets changed at once: a count or a percentage of the selected targets, at least 1."""
    max_failures: NonNegativeInt = 1
    """Failed targets after which the rollout stops."""
    pause_between_batches: Duration = "0s"


class Strategy(ApiModel):
    """How a revision is rolled out."""

    type: StrategyType = StrategyType.ROLLING
    rolling: RollingStrategy = Field(
        default_factory=RollingStrategy, json_schema_extra={"default": {}}
    )


class ManagementPolicy(StrEnum):
    """Whether the operator may change the VMs."""

    FULL = "Full"
    OBSERVE_ONLY = "ObserveOnly"


class VMApplicationSpec(ApiModel):
    """The desired state of a set of VMs, from a folder in Git."""

    source: ApplicationSource
    destination: ApplicationDestination
    parameters: dict[str, str] = Field(default_factory=dict)
    """Template values for this environment (params.* in templates)."""
    sync_policy: SyncPolicy | None = None
    """Absent: manual sync only."""
    strategy: Strategy = Field(default_factory=Strategy, json_schema_extra={"default": {}})
    management_policy: ManagementPolicy = ManagementPolicy.FULL
    """Full: converge the VMs. ObserveOnly: never change a VM, only report drift."""
    refresh_interval: Duration = "3m"
    """Git poll and drift check period."""
    revision_history_limit: NonNegativeInt = 10
    """Entries kept in status.history."""
    paused: bool = False
    """When true nothing is synced, not even on request."""


class SyncStatus(ApiModel):
    """Whether the selected VMs match Git."""

    status: SyncStatusCode = SyncStatusCode.UNKNOWN
    revision: str | None = None
    """The full commit the desired state was resolved to."""


class HealthStatus(ApiModel):
    """How healthy the application is across its targets."""

    status: HealthStatusCode = HealthStatusCode.UNKNOWN
    message: str = ""


class BatchProgress(ApiModel):
    """Where a rollout is among its batches."""

    current: NonNegativeInt = 0
    total: NonNegativeInt = 0


class TargetProgress(ApiModel):
    """Targets of the current rollout by outcome."""

    succeeded: NonNegativeInt = 0
    failed: NonNegativeInt = 0
    pending: NonNegativeInt = 0


class Operation(ApiModel):
    """The current or last rollout; persisted so that it resumes after a restart."""

    phase: OperationPhase
    revision: str
    started_at: Time | None = None
    finished_at: Time | None = None
    message: str = ""
    batches: BatchProgress | None = None
    targets: TargetProgress | None = None
    retry_count: NonNegativeInt = 0
    """Retries of this revision so far (see syncPolicy.retry)."""


class Summary(ApiModel):
    """Counts over the selected targets; per-target detail is in each target's status."""

    targets: NonNegativeInt = 0
    synced: NonNegativeInt = 0
    out_of_sync: NonNegativeInt = 0
    healthy: NonNegativeInt = 0
    degraded: NonNegativeInt = 0
    unreachable: NonNegativeInt = 0


class HistoryEntry(ApiModel):
    """One deployed revision."""

    id: NonNegativeInt
    revision: str
    deployed_at: Time | None = None
    phase: OperationPhase | None = None


class VMApplicationStatus(ObservedStatus):
    """Conditions: Synced, Healthy, Ready."""

    sync: SyncStatus = Field(default_factory=SyncStatus)
    health: HealthStatus = Field(default_factory=HealthStatus)
    operation: Operation | None = None
    summary: Summary = Field(default_factory=Summary)
    history: list[HistoryEntry] = Field(default_factory=list)
    """Newest last, at most spec.revisionHistoryLimit entries."""
    reconciled_at: Time | None = None
    """When Git and the targets were last compared."""


class VMApplication(ApiModel):
    """A whole VMApplication object."""

    api_version: str = API_VERSION
    kind: str = APPLICATION.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: VMApplicationSpec
    status: VMApplicationStatus = Field(default_factory=VMApplicationStatus)
