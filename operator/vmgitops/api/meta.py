"""Names of the vmgitops API: group, version, kinds, plurals and annotations.

Kept free of pydantic and Kubernetes imports so that any layer (handlers, CLI, Helm
chart tests) can spell a resource the same way without pulling in the models.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "vmgitops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "vmgitops"

ANNOTATION_REFRESH = f"{GROUP}/refresh"
"""Set by a user or the CLI: fetch Git now. The operator removes it once acted on."""
ANNOTATION_SYNC = f"{GROUP}/sync"
"""Set by a user or the CLI: sync now, also without `automated`. Removed once acted on."""
ANNOTATION_APPROVED_BY = f"{GROUP}/approved-by"
"""Set on a Promotion to approve it; the value (who approved) goes to status.approvedBy."""
ANNOTATION_RESOLVE_COMMAND = f"{GROUP}/resolve-command"
"""Set on a VirtualMachineTarget by a user or `vmgitops resolve`: `APP/COMMAND=ran` or
`APP/COMMAND=rerun` settles a CommandOutcomeUnknown. The operator acts on it at the
application's next tick and removes it, leaving ANNOTATION_RESOLVE_RESULT."""
ANNOTATION_RESOLVE_RESULT = f"{GROUP}/resolve-command-result"
"""Written by the operator when it removes ANNOTATION_RESOLVE_COMMAND: `REQUEST: REASON:
MESSAGE` (REASON CommandResolved or ResolveRefused), what `vmgitops resolve` prints."""

FINALIZER = f"{GROUP}/finalizer"


@dataclass(frozen=True)
class KindInfo:
    """How one kind is spelled in URLs, kubectl and the CRD."""

    kind: str
    plural: str
    short_names: tuple[str, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's metadata.name."""
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return API_VERSION


TARGET = KindInfo("VirtualMachineTarget", "virtualmachinetargets", ("vmt",))
APPLICATION = KindInfo("VMApplication", "vmapplications", ("vmapp",))
PROMOTION = KindInfo("Promotion", "promotions", ("promo",))
PIPELINE = KindInfo("PromotionPipeline", "promotionpipelines", ("vmpipe",))

ALL_KINDS: tuple[KindInfo, ...] = (TARGET, APPLICATION, PROMOTION, PIPELINE)

ARGO_API_VERSION = "argoproj.io/v1alpha1"
ARGO_APPLICATION_KIND = "Application"
