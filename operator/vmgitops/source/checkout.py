"""Immutable, read-only checkouts of commits, and the app folder inside one. Blocking.

`<cache>/checkouts/<sha>/` holds the tree of commit `<sha>` and nothing else (no .git).
It is written into a temporary directory with its own index file (so checkouts of
different commits never share a lock), made read-only, then renamed into place: a
directory under its SHA is complete by construction and is reused as is. Removal goes
the other way (rename away first, then delete), so a half-deleted tree never looks
complete. A directory's mtime records its last use, for garbage collection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import PathEscape, PathNotFound, RepositoryTooLarge, SourceError
from .gitcmd import base_env, run_git
from .mirror import Mirror
from .revisions import FULL_SHA

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Leftovers of a crash (temporary or trash directories) older than this are removed.
STALE_AFTER = 3600.0


def checked_subpath(path: str | None) -> PurePosixPath:
    """spec.source.path as a relative path with no '..': refused before any disk access."""
    value = (path or ".").strip()
    if _CONTROL.search(value):
        raise PathEscape(f"spec.source.path {value!r} contains a control character")
    if value.startswith("/"):
        raise PathEscape(
            f"spec.source.path {value!r} is absolute; write it relative to the repository root"
        )
    if ".." in value.split("/"):
        raise PathEscape(
            f"spec.source.path {value!r} contains '..'; it must stay inside the repository"
        )
    return PurePosixPath(value)


def resolve_app_folder(root: Path, path: str | None) -> Path:
    """The real path of `path` below checkout `root`; it must be a folder inside the root."""
    rel = checked_subpath(path)
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root.joinpath(*rel.parts)))
    if not real.is_relative_to(real_root):
        raise PathEscape(
            f"spec.source.path {str(rel)!r} leaves the repository through a symlink; "
            "point it at a folder inside the repository"
        )
    if not real.exists():
        raise PathNotFound(
            f"spec.source.path {str(rel)!r} does not exist in commit {root.name}; "
            "check the path and that it was pushed"
        )
    if not real.is_dir():
        raise PathNotFound(
            f"spec.source.path {str(rel)!r} is a file in commit {root.name}; "
            "it must name the folder that holds vmapp.yaml"
        )
    return real


@dataclass(frozen=True)
class TreeLimits:
    """What one checkout may write: bytes of all files, and their number."""

    max_bytes: int = 1024 * 1024 * 1024
    max_files: int = 100_000


def make_read_only(root: Path) -> None:
    """Drops every write bit below `root` (execute bits stay); symlinks are left alone."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames]:
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(full, stat.S_IMODE(info.st_mode) & ~0o222)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) & ~0o222)


def remove_tree(path: Path) -> None:
    """Deletes a (read-only) checkout: renamed away first, so it never looks complete."""
    trash = path.with_name(f".trash-{path.name}-{secrets.token_hex(4)}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    _force_remove(trash)


def _force_remove(path: Path) -> None:
    # Another collector (or a crash cleanup) may be deleting the same tree: whatever
    # vanished under us is already what we wanted.
    for dirpath, _dirnames, _filenames in os.walk(path):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(dirpath, 0o700)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class CheckoutStore:
    """`<cache>/checkouts`: one read-only directory per commit."""

    root: Path
    timeout: float
    limits: TreeLimits
    # checkout() collects after each new tree and the operator collects on a timer, on
    # different worker threads: one collection at a time keeps their scans consistent.
    _gc_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def path_of(self, sha: str) -> Path:
        return self.root / sha

    def existing(self, sha: str) -> Path | None:
        """The checkout of `sha` if it was made, marked as just used."""
        path = self.path_of(sha)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def create(self, mirror: Mirror, sha: str) -> Path:
        """Writes the tree of `sha` (which the mirror has) and renames it into place."""
        if not FULL_SHA.match(sha):
            raise ValueError("a checkout needs a full commit SHA")
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_size(mirror, sha)
        token = secrets.token_hex(4)
        tmp = self.root / f".tmp-{sha}-{token}"
        index = self.root / f".tmp-{sha}-{token}.index"
        tmp.mkdir(mode=0o700)
        try:
            env = {**base_env(mirror.policy, mirror.path), "GIT_INDEX_FILE": str(index)}
            result = run_git(
                mirror.path,
                [f"--work-tree={tmp}", "read-tree", "--reset", "-u", sha],
                env=env,
                timeout=self.timeout,
            )
            if not result.ok:
                why = "timed out" if result.timed_out else mirror.scrub(result.stderr.strip())
                raise SourceError(f"checking out {sha} of {mirror.repo.display} failed: {why}")
            make_read_only(tmp)
            final = self.path_of(sha)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                _force_remove(tmp)
            log.debug("checked out %s of %s", sha, mirror.repo.display)
            return final
        finally:
            index.unlink(missing_ok=True)
            if tmp.exists():
                _force_remove(tmp)

    def _check_size(self, mirror: Mirror, sha: str) -> None:
        """Refuses trees that would fill the disk (a small pack can expand enormously)."""
        result = run_git(
            mirror.path,
            ["ls-tree", "-r", "-l", "-z", sha],
            env=base_env(mirror.policy, mirror.path),
            timeout=self.timeout,
        )
        if not result.ok:
            raise SourceError(f"listing commit {sha} of {mirror.repo.display} failed")
        files = total = 0
        for entry in result.stdout.split("\0"):
            meta, _, _name = entry.partition("\t")
            fields = meta.split()
            if len(fields) == 4 and fields[1] == "blob":
                files += 1
                total += int(fields[3])
        if total > self.limits.max_bytes or files > self.limits.max_files:
            raise RepositoryTooLarge(
                f"commit {sha} of {mirror.repo.display} holds {files} files and {total} bytes, "
                f"above the limits ({self.limits.max_files} files, {self.limits.max_bytes} "
                "bytes); keep large artifacts out of the deployment repository"
            )

    def entries(self) -> list[tuple[float, str]]:
        """(last use, sha) of every complete checkout, most recently used first."""
        found: list[tuple[float, str]] = []
        if not self.root.is_dir():
            return found
        for entry in os.scandir(self.root):
            if FULL_SHA.match(entry.name) and entry.is_dir(follow_symlinks=False):
                try:
                    used = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:  # removed since the directory was listed
                    continue
                found.append((used, entry.name))
        return sorted(found, reverse=True)

    def gc(self, keep: int, protect: Iterable[str] = (), grace: float = 0.0) -> list[str]:
        """Removes all but the `keep` most recently used checkouts; returns removed SHAs.

        Checkouts in `protect` (e.g. revisions deployed somewhere) and those used within
        the last `grace` seconds (a sync may be reading them) always stay.
        """
        now = time.time()
        protected = {sha.lower() for sha in protect}
        removed: list[str] = []
        with self._gc_lock:
            for position, (used, sha) in enumerate(self.entries()):
                if position < keep or sha in protected or now - used < grace:
                    continue
                remove_tree(self.path_of(sha))
                removed.append(sha)
            self._remove_stale(now)
        if removed:
            log.info("removed %d unused checkouts", len(removed))
        return removed

    def _remove_stale(self, now: float) -> None:
        if not self.root.is_dir():
            return
        for entry in os.scandir(self.root):
            if not entry.name.startswith((".tmp-", ".trash-")):
                continue
            # A checkout being written or removed right now may vanish at any point here.
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                    if entry.is_dir(follow_symlinks=False):
                        _force_remove(Path(entry.path))
                    else:
                        os.unlink(entry.path)
