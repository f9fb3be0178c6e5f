"""An app folder of a checked-out revision -> a validated, fully read LoadedApp.

Everything the VM will get is read here, once, through `appfs` (so nothing escapes the
folder), before anything is rendered or planned: a bad folder fails as a whole and
applies nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vmgitops.manifest.appfs import (
    Budget,
    Limits,
    TreeFile,
    read_regular,
    resolve_inside,
    walk_tree,
)
from vmgitops.manifest.desired import ReleaseFile, release_digest
from vmgitops.manifest.errors import (
    MANIFEST_INVALID,
    MANIFEST_NOT_FOUND,
    PATH_ESCAPE,
    ManifestError,
)
from vmgitops.manifest.model import Manifest
from vmgitops.manifest.parse import parse_manifest

MANIFEST_FILE = "vmapp.yaml"


@dataclass(frozen=True)
class LoadedApp:
    """A validated manifest with every byte it refers to, ready to render per target."""

    folder: Path
    manifest: Manifest
    sources: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    release_files: tuple[ReleaseFile, ...] = field(default=(), repr=False)
    release_directories: tuple[str, ...] = ()
    release_digest: str | None = None
    limits: Limits = field(default_factory=Limits)


def load_app(
    folder: Path,
    *,
    root: Path | None = None,
    max_file_bytes: int = Limits.max_file_bytes,
    max_tree_bytes: int = Limits.max_tree_bytes,
    max_files: int = Limits.max_files,
) -> LoadedApp:
    """Read and validate `folder`/vmapp.yaml and every file it names.

    `root`, when given (the checkout), must contain the folder after resolving symlinks.
    Raises ManifestError (ManifestNotFound, ManifestInvalid, PathEscape, ManifestTooLarge).
    """
    limits = Limits(max_file_bytes, max_tree_bytes, max_files)
    real = _real_folder(folder, root)
    budget = Budget(limits)
    manifest_path = real / MANIFEST_FILE
    if not manifest_path.exists() and not manifest_path.is_symlink():
        raise ManifestError(MANIFEST_NOT_FOUND, f"{MANIFEST_FILE}: not found in the app folder")
    where = resolve_inside(real, MANIFEST_FILE, MANIFEST_FILE)
    raw, _ = read_regular(where, MANIFEST_FILE, budget)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(MANIFEST_INVALID, f"{MANIFEST_FILE}: is not UTF-8 text") from None
    manifest = parse_manifest(text, MANIFEST_FILE)

    sources: dict[str, bytes] = {}
    for i, spec in enumerate(manifest.files):
        if spec.source is None or spec.source in sources:
            continue
        what = f"{MANIFEST_FILE}: files[{i}].source"
        content, _ = read_regular(resolve_inside(real, spec.source, what), what, budget)
        sources[spec.source] = content

    tree: list[TreeFile] = []
    dirs: list[str] = []
    digest = None
    if manifest.release is not None:
        what = f"{MANIFEST_FILE}: release.source"
        tree, dirs = walk_tree(real, manifest.release.source, what, budget)
        files = tuple(ReleaseFile(f.path, f.mode, f.content) for f in tree)
        digest = release_digest(files, tuple(dirs))
    return LoadedApp(
        folder=real,
        manifest=manifest,
        sources=sources,
        release_files=tuple(ReleaseFile(f.path, f.mode, f.content) for f in tree),
        release_directories=tuple(dirs),
        release_digest=digest,
        limits=limits,
    )


def _real_folder(folder: Path, root: Path | None) -> Path:
    real = Path(os.path.realpath(folder))
    if root is not None:
        real_root = Path(os.path.realpath(root))
        if not real.is_relative_to(real_root):
            raise ManifestError(PATH_ESCAPE, "the app folder resolves outside the checkout")
        if ".git" in real.relative_to(real_root).parts:
            raise ManifestError(PATH_ESCAPE, "the app folder is inside .git")
    if not real.is_dir():
        raise ManifestError(MANIFEST_NOT_FOUND, "the app folder does not exist")
    return real
