"""vmapp.yaml: the model, loading from a checkout without leaving the folder, rendering.

The public entry points: `load_app(folder) -> LoadedApp`, then per target
`render(app, params, target, facts, revision) -> DesiredState`; any problem is a
`ManifestError(reason, message)` and nothing is applied.
"""

from vmgitops.manifest.appfs import Limits
from vmgitops.manifest.desired import DesiredState
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.loader import LoadedApp, load_app
from vmgitops.manifest.render import TargetInfo, render

__all__ = [
    "DesiredState",
    "Limits",
    "LoadedApp",
    "ManifestError",
    "TargetInfo",
    "load_app",
    "render",
]
