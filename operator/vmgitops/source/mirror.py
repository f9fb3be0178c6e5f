"""One bare mirror per repository URL: list the remote, fetch, look objects up. Blocking.

The mirror holds the remote's branches and tags under their own names (`+refs/heads/*`,
`+refs/tags/*`, pruned), so it always says what the server said at the last fetch,
force-pushes included. Callers serialize access per mirror (GitSource's per-repo lock).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .failures import fetch_failure
from .gitcmd import REMOTE, GitResult, base_env, run_git
from .revisions import FULL_SHA, Refs, parse_refs
from .urls import RepoURL, SourcePolicy

log = logging.getLogger(__name__)

HEADS_AND_TAGS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_SIZE = re.compile(r"^(size|size-pack|size-garbage):\s*(\d+)$", re.M)


class Ambiguous(LookupError):
    """A SHA prefix matches several objects."""


@dataclass
class Mirror:
    """The bare repository `path` mirroring `repo`."""

    path: Path
    repo: RepoURL
    policy: SourcePolicy
    timeout: float
    scrub: Callable[[str], str]

    def ensure(self) -> None:
        """Creates the bare mirror if it is not there yet (idempotent)."""
        if (self.path / "HEAD").is_file():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        result = self._run(["init", "--bare", "--quiet", str(self.path)])
        if not result.ok:
            raise OSError(f"cannot create the Git cache {self.path}: {result.stderr.strip()}")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _run(self, args: Sequence[str], auth: Mapping[str, str] | None = None) -> GitResult:
        """A git command on the mirror; with `auth`, a network one that may use REMOTE."""
        remote = self.repo.raw if auth is not None else None
        env = {**base_env(self.policy, self.path, remote), **(auth or {})}
        return run_git(self.path, args, env=env, timeout=self.timeout)

    def ls_remote(self, auth: Mapping[str, str], extra_ref: str | None = None) -> Refs:
        """The server's HEAD, branches and tags now (plus `extra_ref`, a full ref name)."""
        patterns = ["HEAD", "refs/heads/*", "refs/tags/*", *([extra_ref] if extra_ref else [])]
        result = self._run(["ls-remote", "--symref", "--", REMOTE, *patterns], auth)
        if not result.ok:
            raise self._failure("listing", result)
        return parse_refs(result.stdout)

    def fetch(
        self,
        auth: Mapping[str, str],
        refspecs: Sequence[str] = HEADS_AND_TAGS,
        *,
        prune: bool = True,
    ) -> None:
        """Fetches refspecs into the mirror, pruning (by default) what the server deleted."""
        args = ["fetch", *(["--prune"] if prune else []), "--no-tags", "--no-write-fetch-head"]
        args += ["--no-recurse-submodules", "--quiet", "--", REMOTE, *refspecs]
        result = self._run(args, auth)
        if not result.ok:
            raise self._failure("fetching", result)
        log.debug("fetched %s in %.2fs", self.repo.display, result.elapsed)

    def _failure(self, action: str, result: GitResult) -> Exception:
        stderr = result.stderr.replace(self.repo.raw, self.repo.display)
        if self.repo.user:
            stderr = stderr.replace(f"{self.repo.user}@", "")
        return fetch_failure(
            action,
            self.repo.display,
            stderr,
            timed_out=result.timed_out,
            timeout=self.timeout,
            scrub=self.scrub,
        )

    def local_refs(self) -> Refs:
        """The mirror's own refs (as of the last fetch), peeled like ls-remote's."""
        result = self._run(["show-ref", "-d"])
        return parse_refs(result.stdout) if result.ok else Refs()

    def object_type(self, sha: str) -> str | None:
        """ "commit", "tag", "tree" or "blob" when the mirror has the object, else None."""
        if not FULL_SHA.match(sha):
            return None
        result = self._run(["cat-file", "-t", sha])
        return result.stdout.strip() if result.ok else None

    def has_commit(self, sha: str) -> bool:
        return self.object_type(sha) == "commit"

    def expand(self, abbrev: str) -> str | None:
        """The full SHA of the one commit starting with `abbrev`; Ambiguous if several."""
        result = self._run(["rev-parse", "--verify", "--quiet", f"{abbrev}^{{commit}}"])
        if result.ok:
            sha = result.stdout.strip()
            return sha if FULL_SHA.match(sha) else None
        if "ambiguous" in result.stderr:
            raise Ambiguous(abbrev)
        return None

    def size_bytes(self) -> int:
        """Bytes the mirror's objects take (loose, packed, garbage)."""
        result = self._run(["count-objects", "-v"])
        return sum(int(n) for _, n in _SIZE.findall(result.stdout)) * 1024
