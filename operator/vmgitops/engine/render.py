"""Load and render an app folder for one target, with the controller's error contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmgitops.manifest.desired import DesiredState
from vmgitops.manifest.loader import LoadedApp, load_app
from vmgitops.manifest.render import TargetInfo, render


def load_and_render(
    folder: Path,
    *,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    revision: str,
    root: Path | None = None,
) -> tuple[LoadedApp, DesiredState]:
    """The loaded app and its desired state for `target`.

    Raises ManifestError, whose `reason` (ManifestNotFound, ManifestInvalid, PathEscape,
    ManifestTooLarge, TemplateError) and one-line `message` (file, field, why; never file
    content) go as they are into a condition. `root` is the checkout: the folder must
    resolve inside it. Load once per revision and render per target: `sync_target` takes
    the LoadedApp and renders with each target's own facts.
    """
    app = load_app(folder, root=root)
    return app, render(app, params, target, facts, revision)
