"""Promotion (short name promo): move the revision of one application to others."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from vmgitops.api.application import REPO_URL_PATTERN
from vmgitops.api.base import ApiModel, Duration, ObjectName, Time
from vmgitops.api.common import Credentials, ObjectMeta, ObservedStatus
from vmgitops.api.meta import API_VERSION, ARGO_API_VERSION, PROMOTION

API_VERSION_MISMATCH = (
    "apiVersion must be vmgitops.io/v1alpha1 for kind VMApplication "
    "and argoproj.io/v1alpha1 for kind Application"
)
GIT_COMMIT_REQUIRED = "gitCommit is required when method is GitCommit"
FROM_IN_TO = "to must not include the from application"
DUPLICATE_DESTINATION = "to lists the same application twice"

GIT_COMMIT_RULE: JsonDict = {
    "rule": "!has(self.method) || self.method != 'GitCommit' || has(self.gitCommit)",
    "message": GIT_COMMIT_REQUIRED,
}
"""CEL for the specs that have method and gitCommit (Promotion, PromotionPipeline)."""

_FILE_PATH_PATTERN = r"^[^/\s][^\n]*$"


class ApplicationKind(StrEnum):
    """The kinds a promotion can read a revision from and write it to."""

    VM_APPLICATION = "VMApplication"
    ARGO_APPLICATION = "Application"


class ApplicationRef(ApiModel):
    """A VMApplication, or an Argo CD Application, in the same namespace."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.apiVersion) || self.apiVersion == "
                    "((has(self.kind) && self.kind == 'Application')"
                    " ? 'argoproj.io/v1alpha1' : 'vmgitops.io/v1alpha1')",
                    "message": API_VERSION_MISMATCH,
                }
            ]
        }
    )

    kind: ApplicationKind = ApplicationKind.VM_APPLICATION
    """VMApplication (default) or Application (Argo CD)."""
    api_version: str | None = Field(default=None, max_length=253)
    """Optional; implied by kind."""
    name: ObjectName
    """The application's name."""

    @model_validator(mode="after")
    def _api_version_matches_kind(self) -> Self:
        if self.api_version is not None and self.api_version != self.resolved_api_version:
            raise ValueError(API_VERSION_MISMATCH)
        return self

    @property
    def resolved_api_version(self) -> str:
        """The apiVersion implied by kind."""
        if self.kind is ApplicationKind.ARGO_APPLICATION:
            return ARGO_API_VERSION
        return API_VERSION

    @property
    def key(self) -> tuple[str, str]:
        """(kind, name): what identifies the application in its namespace."""
        return (self.kind.value, self.name)


class Approval(ApiModel):
    """A human gate before the revision moves."""

    required: bool = False
    """When true, wait for the annotation vmgitops.io/approved-by=<who>."""


class Verification(ApiModel):
    """The gate before the revision moves, and the check after it moved."""

    soak_time: Duration = "0s"
    """How long `from` must have been Synced and Healthy at the revision before it moves
    on (a gate, checked before approval is asked for)."""
    timeout: Duration = "30m"
    """How long the destinations may take, once written, to be Synced and Healthy at the
    revision; past it the promotion fails (and rolls back with rollbackOnFailure)."""


class PromotionMethod(StrEnum):
    """How the revision is written to a destination."""

    PATCH = "Patch"
    GIT_COMMIT = "GitCommit"


DEFAULT_REVISION_KEY = "spec.source.targetRevision"
_KEY_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"


class GitCommitFile(ApiModel):
    """Where one destination's revision lives, when it is not a manifest of the
    destination itself: for example a values file (`envs/prod/values.yaml`, key
    `web.revision`) that Argo CD renders the application from."""

    kind: ApplicationKind = ApplicationKind.VM_APPLICATION
    """The destination's kind: VMApplication (default) or Application."""
    name: ObjectName
    """The destination's name, as in spec.to."""
    path: str = Field(min_length=1, max_length=4096, pattern=_FILE_PATH_PATTERN)
    """The YAML file, relative to the repository root."""
    key: str = Field(
        default=DEFAULT_REVISION_KEY, min_length=1, max_length=1024, pattern=_KEY_PATTERN
    )
    """Dotted path of the value to set, from the document's root (`image.tag`). In a file
    of several documents, the one whose kind and metadata.name match the destination."""

    @property
    def ref_key(self) -> tuple[str, str]:
        return (self.kind.value, self.name)


class GitCommitTarget(ApiModel):
    """Where method GitCommit writes the revision: the Git repository that holds the
    destinations' manifests (for example the one Argo CD syncs them from). In the file or
    folder at path, `key` of each document whose kind and metadata.name match a
    destination is set to the revision (a destination listed in `files` is written where
    that entry says instead); the change is committed, naming the Promotion, and pushed,
    rebasing and retrying when the branch moved meanwhile."""

    repo_url: str = Field(alias="repoURL", min_length=1, max_length=2048, pattern=REPO_URL_PATTERN)
    branch: str = Field(default="main", min_length=1, max_length=255)
    """The branch to commit to."""
    path: str = Field(default=".", min_length=1, max_length=4096, pattern=_FILE_PATH_PATTERN)
    """File or folder (searched for *.yaml and *.yml), relative to the repository root,
    holding the destinations' manifests; default the whole repository."""
    key: str = Field(
        default=DEFAULT_REVISION_KEY, min_length=1, max_length=1024, pattern=_KEY_PATTERN
    )
    """Dotted path of the revision inside each matching manifest."""
    files: list[GitCommitFile] = Field(default_factory=list, max_length=64)
    """Per destination: a given key in a given YAML file, instead of path and key."""
    credentials: Credentials | None = None
    """A Secret of type kubernetes.io/basic-auth or kubernetes.io/ssh-auth; needs push access."""

    def file_for(self, ref: ApplicationRef) -> GitCommitFile | None:
        """The explicit file entry of a destination, if it has one."""
        return next((f for f in self.files if f.ref_key == ref.key), None)


SPEC_IMMUTABLE = "spec is immutable: create a new Promotion instead"


class PromotionSpec(ApiModel):
    """Move a revision from one application to others, with gates and verification.

    Immutable once created: a Promotion is an audit record of what moved where."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                GIT_COMMIT_RULE,
                {"rule": "self == oldSelf", "message": SPEC_IMMUTABLE},
                {
                    "rule": "!self.to.exists(t, t.name == self.from.name"
                    " && (has(t.kind) ? t.kind : 'VMApplication')"
                    " == (has(self.from.kind) ? self.from.kind : 'VMApplication'))",
                    "message": FROM_IN_TO,
                },
            ]
        }
    )

    from_: ApplicationRef = Field(alias="from")
    """Where the revision comes from."""
    to: list[ApplicationRef] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["kind", "name"],
        },
    )
    """The destinations, promoted together."""
    revision: str = Field(default="", max_length=1024)
    """Empty: the revision `from` is Synced and Healthy at when the promotion starts."""
    approval: Approval = Field(default_factory=Approval, json_schema_extra={"default": {}})
    verification: Verification = Field(
        default_factory=Verification, json_schema_extra={"default": {}}
    )
    method: PromotionMethod = PromotionMethod.PATCH
    """Patch: set spec.source.targetRevision in the cluster. GitCommit: commit it to Git,
    which is the way when the destination is itself managed from Git (Argo CD self-heal
    would revert a patch)."""
    git_commit: GitCommitTarget | None = None
    """Where to commit; required for method GitCommit."""
    rollback_on_failure: bool = True
    """When verification fails, restore the destinations' previous revisions."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.method is PromotionMethod.GIT_COMMIT and self.git_commit is None:
            raise ValueError(GIT_COMMIT_REQUIRED)
        keys = [t.key for t in self.to]
        if self.from_.key in keys:
            raise ValueError(FROM_IN_TO)
        if len(set(keys)) != len(keys):
            raise ValueError(DUPLICATE_DESTINATION)
        return self


class PromotionPhase(StrEnum):
    """Where a promotion stands."""

    PENDING = "Pending"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    PROMOTING = "Promoting"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_PHASES


_FINAL_PHASES = frozenset(
    {PromotionPhase.SUCCEEDED, PromotionPhase.FAILED, PromotionPhase.ROLLED_BACK}
)


class PromotionStatus(ObservedStatus):
    """Progress of the promotion, persisted so that it resumes after a restart."""

    phase: PromotionPhase | None = None
    revision: str | None = None
    """The revision being promoted (a full commit), fixed when the gates pass."""
    previous_revisions: dict[str, str] = Field(default_factory=dict)
    """Each destination's revision before the promotion, by name (`Application/<name>`
    for an Argo CD Application whose name a VMApplication destination also has): what
    a rollback restores."""
    approved_by: str | None = None
    """Who approved (the vmgitops.io/approved-by annotation), once acted on."""
    approved_at: Time | None = None
    started_at: Time | None = None
    """When the promotion first reconciled."""
    verifying_since: Time | None = None
    """When verification began; verification.timeout counts from here."""
    soak_started_at: Time | None = None
    """When the operator first saw `from` Synced and Healthy at the revision; the soak
    counts from here when `from`'s own status does not say since when it has been."""
    finished_at: Time | None = None
    reason: str | None = Field(default=None, max_length=1024)
    """CamelCase reason of the phase: Soaking, ConflictingPromotion, AlreadyAtRevision..."""
    message: str = ""
    commit: str | None = None
    """For method GitCommit: the commit pushed to gitCommit.repoURL (or, after a
    rollback, the commit that restored the previous revisions)."""


class Promotion(ApiModel):
    """A whole Promotion object."""

    api_version: str = API_VERSION
    kind: str = PROMOTION.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PromotionSpec
    status: PromotionStatus = Field(default_factory=PromotionStatus)
