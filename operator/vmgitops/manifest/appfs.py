"""Reading files of an app folder without ever leaving it.

A checkout is untrusted input: a `source:` may say `../../etc/shadow`, or name a symlink
(or a chain of them) that points out of the folder, or a fifo that would block a read
forever. Every path is resolved with realpath and must stay below the folder; files are
opened with O_NOFOLLOW|O_NONBLOCK and checked to be regular with fstat on the open file.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vmgitops.manifest.errors import (
    MANIFEST_INVALID,
    MANIFEST_TOO_LARGE,
    PATH_ESCAPE,
    ManifestError,
)

MAX_DEPTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Size limits for one app folder: per file, for all files together, and a count."""

    max_file_bytes: int = 8 * 1024 * 1024
    max_tree_bytes: int = 64 * 1024 * 1024
    max_files: int = 5000


@dataclass
class Budget:
    """What has been read so far, against the limits."""

    limits: Limits
    files: int = 0
    bytes: int = field(default=0)

    def take(self, size: int, what: str) -> None:
        self.files += 1
        self.bytes += size
        if self.files > self.limits.max_files:
            raise ManifestError(
                MANIFEST_TOO_LARGE, f"{what}: more than {self.limits.max_files} files in all"
            )
        if self.bytes > self.limits.max_tree_bytes:
            raise ManifestError(
                MANIFEST_TOO_LARGE,
                f"{what}: the app's files exceed {self.limits.max_tree_bytes} bytes in all",
            )


def check_relative(source: str, what: str) -> PurePosixPath:
    """A `source:` as written: relative, no '..', no '.git', no control characters."""
    if not source or source.startswith("/"):
        raise ManifestError(PATH_ESCAPE, f"{what}: {source!r} is not a relative path")
    if _CONTROL.search(source):
        raise ManifestError(PATH_ESCAPE, f"{what}: the path contains a control character")
    parts = PurePosixPath(source).parts
    if ".." in source.split("/"):
        raise ManifestError(PATH_ESCAPE, f"{what}: {source!r} contains '..'")
    if ".git" in parts:
        raise ManifestError(PATH_ESCAPE, f"{what}: {source!r} is inside .git")
    return PurePosixPath(source)


def resolve_inside(folder: Path, source: str, what: str) -> Path:
    """The real path of `source` below the real `folder`; refuses anything that leaves it."""
    rel = check_relative(source, what)
    real = Path(os.path.realpath(folder.joinpath(*rel.parts)))
    if not real.is_relative_to(folder):
        raise ManifestError(
            PATH_ESCAPE, f"{what}: {source!r} resolves to a path outside the app folder"
        )
    if ".git" in real.relative_to(folder).parts:
        raise ManifestError(PATH_ESCAPE, f"{what}: {source!r} resolves into .git")
    if not real.exists():
        raise ManifestError(
            MANIFEST_INVALID, f"{what}: {source!r} does not exist in the app folder"
        )
    return real


def read_regular(path: Path, what: str, budget: Budget) -> tuple[bytes, int]:
    """(content, st_mode) of a regular file, within the limits; never follows a link."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ManifestError(MANIFEST_INVALID, f"{what}: cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(MANIFEST_INVALID, f"{what}: is {_kind(st.st_mode)}, not a file")
        limit = budget.limits.max_file_bytes
        if st.st_size > limit:
            raise ManifestError(MANIFEST_TOO_LARGE, f"{what}: is larger than {limit} bytes")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ManifestError(MANIFEST_TOO_LARGE, f"{what}: is larger than {limit} bytes")
    finally:
        os.close(fd)
    budget.take(size, what)
    return b"".join(chunks), st.st_mode


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


@dataclass(frozen=True)
class TreeFile:
    """One file of a release tree: path relative to the tree, normalised mode, bytes."""

    path: str
    mode: int
    content: bytes


def walk_tree(
    folder: Path, source: str, what: str, budget: Budget
) -> tuple[list[TreeFile], list[str]]:
    """Every file and directory below `source`, sorted; symlinks to files are followed
    (inside the folder only), symlinks to directories are refused (no cycles)."""
    top = resolve_inside(folder, source, what)
    if not top.is_dir():
        raise ManifestError(MANIFEST_INVALID, f"{what}: {source!r} is not a directory")
    files: list[TreeFile] = []
    dirs: list[str] = []
    _walk(folder, top, PurePosixPath(), what, budget, files, dirs)
    return files, dirs


def _walk(
    folder: Path,
    top: Path,
    rel: PurePosixPath,
    what: str,
    budget: Budget,
    files: list[TreeFile],
    dirs: list[str],
) -> None:
    if len(rel.parts) > MAX_DEPTH:
        raise ManifestError(MANIFEST_INVALID, f"{what}: deeper than {MAX_DEPTH} directories")
    with os.scandir(top.joinpath(*rel.parts)) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child = rel / entry.name
        where = f"{what}: {str(child)!r}"
        if entry.name == ".git":
            raise ManifestError(PATH_ESCAPE, f"{where} is a .git entry")
        if _CONTROL.search(entry.name):
            raise ManifestError(MANIFEST_INVALID, f"{what}: a file name has a control character")
        path = Path(entry.path)
        if entry.is_symlink():
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(folder) or ".git" in real.relative_to(folder).parts:
                raise ManifestError(PATH_ESCAPE, f"{where} links outside the app folder")
            if real.is_dir():
                raise ManifestError(
                    MANIFEST_INVALID, f"{where} links to a directory (not supported)"
                )
            path = real
        elif entry.is_dir(follow_symlinks=False):
            dirs.append(str(child))
            _walk(folder, top, child, what, budget, files, dirs)
            continue
        content, mode = read_regular(path, where, budget)
        files.append(TreeFile(str(child), 0o755 if mode & 0o111 else 0o644, content))
