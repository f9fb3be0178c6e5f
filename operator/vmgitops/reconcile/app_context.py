"""What one reconcile of a VMApplication hands to the per-target driver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vmgitops.manifest import LoadedApp
from vmgitops.plan.resolution import ResolveRequest, ResolveResult
from vmgitops.reconcile.app_status import TargetView


@dataclass(frozen=True)
class AppContext:
    """The immutable inputs of one sync: the app at one revision, for one generation."""

    namespace: str
    name: str
    generation: int
    revision: str
    app: LoadedApp
    params: Mapping[str, str] = field(default_factory=dict)
    prune: bool = False

    @property
    def app_key(self) -> str:
        # "_" appears in neither a namespace nor a name, so the key is unambiguous on the VM.
        return f"{self.namespace}_{self.name}"


@dataclass(frozen=True)
class SyncOutcome:
    view: TargetView
    ok: bool
    message: str = ""
    #: The VM could not be reached: neither a success nor a failure.
    unreachable: bool = False
    #: What ran on the VM is not known (CommandOutcomeUnknown): a failure, never a skip.
    unknown: bool = False


class TargetDriver(Protocol):
    """Observes and syncs one target for one application (the engine over SSH)."""

    async def observe(self, target: Mapping[str, Any], ctx: AppContext) -> TargetView: ...

    async def sync(self, target: Mapping[str, Any], ctx: AppContext) -> SyncOutcome: ...

    async def resolve(
        self, target: Mapping[str, Any], ctx: AppContext, request: ResolveRequest
    ) -> ResolveResult:
        """Settles a CommandOutcomeUnknown as `request` says (vmgitops.io/resolve-command)."""
        ...
