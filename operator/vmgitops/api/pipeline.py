"""PromotionPipeline (short name vmpipe): an ordered chain of applications that a
revision moves through, one Promotion per step."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, NonNegativeInt, model_validator

from vmgitops.api.base import ApiModel, Duration, Reason, Time
from vmgitops.api.common import ObjectMeta, ObservedStatus
from vmgitops.api.meta import API_VERSION, GROUP, PIPELINE
from vmgitops.api.promotion import (
    GIT_COMMIT_REQUIRED,
    GIT_COMMIT_RULE,
    ApplicationRef,
    Approval,
    GitCommitTarget,
    PromotionMethod,
    PromotionPhase,
)

DUPLICATE_STAGE = "stage names must be unique"

ANNOTATION_CLEAR_HOLD = f"{GROUP}/clear-hold"
"""Set on a PromotionPipeline to clear the hold on stages: a stage name, several separated
by commas, or "*". The operator removes it once acted on."""
LABEL_PIPELINE = f"{GROUP}/pipeline"
"""On a Promotion a PromotionPipeline created: the pipeline's name."""
LABEL_STAGE = f"{GROUP}/stage"
"""On a Promotion a PromotionPipeline created: the stage it promotes into."""


class PipelineStage(ApplicationRef):
    """One application in the chain. The first stage is where revisions enter; auto,
    soakTime and approval of a later stage govern promotion into it."""

    auto: bool = True
    """Promote into this stage as soon as the previous stage allows; false: only when
    asked (vmgitops promote)."""
    soak_time: Duration = "0s"
    """How long a revision must stay Synced and Healthy in this stage before it may move
    on to the next stage."""
    approval: Approval = Field(default_factory=Approval, json_schema_extra={"default": {}})
    """A human gate before a revision enters this stage."""
    timeout: Duration = "30m"
    """verification.timeout of the promotions into this stage."""


class PromotionPipelineSpec(ApiModel):
    """The chain of stages and how revisions move between them."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [GIT_COMMIT_RULE]})

    stages: list[PipelineStage] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """In order: a revision moves from each stage to the next."""
    method: PromotionMethod = PromotionMethod.PATCH
    """As in Promotion: Patch or GitCommit."""
    git_commit: GitCommitTarget | None = None
    """Where to commit; required for method GitCommit."""
    rollback_on_failure: bool = True
    """When verification of a stage fails, restore its previous revision."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.method is PromotionMethod.GIT_COMMIT and self.git_commit is None:
            raise ValueError(GIT_COMMIT_REQUIRED)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(DUPLICATE_STAGE)
        return self


class StageHold(ApiModel):
    """Why a revision is not moving into a stage."""

    reason: Reason
    """As a hold: ManualRollback or PromotionFailed. As a wait: WaitingForApproval,
    Soaking, AutoPromotionDisabled, Promoting..."""
    since: Time | None = None
    message: str = ""
    promotion: str | None = None
    """The Promotion concerned, if any."""


class StageStatus(ApiModel):
    """Where one stage stands."""

    name: str
    """The stage's name, as in spec.stages."""
    revision: str | None = None
    """The revision the stage is at."""
    phase: PromotionPhase | None = None
    """The phase of the last promotion into this stage."""
    promotion: str | None = None
    """The Promotion that moved the revision into this stage."""
    hold: StageHold | None = None
    """Automatic promotion into this stage is stopped, after a manual rollback or a failed
    promotion, until a user clears it: annotate the pipeline with
    vmgitops.io/clear-hold=<stage> (or "*" for every stage)."""
    waiting: StageHold | None = None
    """Why the previous stage's revision has not entered this stage yet, while nothing is
    wrong: approval, soak, a promotion in progress, automatic promotion off."""
    accepted_revision: str | None = Field(default=None, max_length=1024)
    """The revision the pipeline last saw this stage at, on its own or through one of its
    Promotions: a change to any other revision without a Promotion of the pipeline is a
    manual rollback."""


class PromotionPipelineStatus(ObservedStatus):
    """Progress of revisions through the stages."""

    stages: list[StageStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    holds: NonNegativeInt = 0
    """How many stages are held right now."""
    summary: str = ""
    """One line for kubectl get: each stage's name and short revision, in order, for
    example "web-staging@3f2a1c9 > web-prod@9b8e7d6 (held)"."""


class PromotionPipeline(ApiModel):
    """A whole PromotionPipeline object."""

    api_version: str = API_VERSION
    kind: str = PIPELINE.kind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PromotionPipelineSpec
    status: PromotionPipelineStatus = Field(default_factory=PromotionPipelineStatus)
