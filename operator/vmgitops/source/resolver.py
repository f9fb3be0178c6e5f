"""Resolution on one mirror with one caller's credentials: list, fetch, pick. Blocking.

The server's listing decides what a branch or tag names; the mirror is only fetched
when it lacks that commit. A SHA revision is looked up in the mirror, fetching when it
is not there yet. GitSource runs this in a worker thread under the repository's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import socket
from dataclasses import dataclass

from .credentials import GitCredentials, auth_env
from .errors import GitFetchFailed, RepositoryTooLarge, RepoURLRefused, RevisionNotFound
from .mirror import Ambiguous, Mirror
from .revisions import MatchKind, Refs, describe_refs, match_revision
from .urls import RepoURL, address_refusal

#: Mirror refs that keep fetched commits no branch or tag points to (SHA revisions).
PINNED_PREFIX = "refs/vmgitops/"


def refuse_unsafe_resolution(repo: RepoURL) -> None:
    """Refuses a host name that resolves to a link-local or metadata address."""
    if repo.scheme == "file":
        return
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(repo.host)
        return  # literals were checked by the URL policy
    try:
        infos = socket.getaddrinfo(repo.host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return  # git reports the failure to resolve in its own words
    for info in infos:
        why = address_refusal(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        if why:
            raise RepoURLRefused(
                f"repoURL {repo.display!r} is refused: {repo.host} resolves to {why}"
            )


@dataclass
class RepoAccess:
    """A repository's mirror as one caller (with its credentials) may use it."""

    mirror: Mirror
    creds: GitCredentials | None
    connect_timeout: float
    max_repo_bytes: int

    @property
    def display(self) -> str:
        return self.mirror.repo.display

    def list(self, extra_ref: str | None) -> Refs:
        """What the server's branches, tags and HEAD name now (one round trip)."""
        try:
            self.mirror.ensure()
        except OSError as exc:
            raise GitFetchFailed(
                f"the Git cache {self.mirror.path.parent} is not writable "
                f"({exc.strerror or exc}); check the operator's volume"
            ) from None
        with auth_env(self.creds, self.mirror.repo, connect_timeout=self.connect_timeout) as auth:
            return self.mirror.ls_remote(auth, extra_ref)

    def fetch(self, refspec: str | None = None) -> None:
        """All branches and tags (pruned), or just `refspec` (not pruned); size-checked."""
        with auth_env(self.creds, self.mirror.repo, connect_timeout=self.connect_timeout) as auth:
            if refspec is None:
                self.mirror.fetch(auth)
            else:
                self.mirror.fetch(auth, [refspec], prune=False)
        size = self.mirror.size_bytes()
        if size > self.max_repo_bytes:
            self.mirror.remove()
            raise RepositoryTooLarge(
                f"{self.display} takes {size} bytes, above the limit of "
                f"{self.max_repo_bytes}; it was removed from the cache"
            )

    def resolve(self, revision: str, refs: Refs) -> tuple[str, str]:
        """(commit, ref) for `revision` given the server's `refs`; the mirror has the commit."""
        match = match_revision(revision, refs)
        if match is None:
            raise RevisionNotFound(
                f"targetRevision {revision[:200]!r} names no branch, tag or commit of "
                f"{self.display} ({describe_refs(refs)}); fix spec.source.targetRevision "
                "or push it"
            )
        if match.kind is MatchKind.REF:
            assert match.commit is not None
            return self._ref_commit(revision, match.ref, match.commit, refs), match.ref
        if match.kind is MatchKind.COMMIT:
            return self._commit(match.ref), match.ref
        sha = self._expand(match.ref)
        return sha, sha

    def _ref_commit(self, revision: str, ref: str, commit: str, refs: Refs) -> str:
        mirror = self.mirror
        if mirror.has_commit(commit):
            return commit
        if ref.startswith(("refs/heads/", "refs/tags/")):
            self.fetch()
            local = dataclasses.replace(mirror.local_refs(), head_target=refs.head_target)
            again = match_revision(revision, local)
            if again and again.ref == ref and again.commit and mirror.has_commit(again.commit):
                return again.commit  # the server moved on between listing and fetch
        else:
            local_name = f"{PINNED_PREFIX}HEAD" if ref == "HEAD" else ref
            self.fetch(f"+{ref}:{local_name}")
        if mirror.has_commit(commit):
            return commit
        kind = mirror.object_type(commit)
        what = f"a {kind}, not a commit" if kind else "a commit that could not be fetched"
        raise RevisionNotFound(
            f"targetRevision {revision[:200]!r} ({ref}) of {self.display} names {what}; "
            "point it at a branch, tag or commit"
        )

    def _commit(self, sha: str) -> str:
        if not self.mirror.has_commit(sha):
            self.fetch()
        if not self.mirror.has_commit(sha):
            # Most servers refuse a commit that no branch or tag points to.
            with contextlib.suppress(GitFetchFailed):
                self.fetch(f"+{sha}:{PINNED_PREFIX}{sha}")
        if not self.mirror.has_commit(sha):
            raise RevisionNotFound(
                f"commit {sha} is not in {self.display} (not reachable from any branch or "
                "tag); check spec.source.targetRevision"
            )
        return sha

    def _expand(self, abbrev: str) -> str:
        for attempt in range(2):
            try:
                sha = self.mirror.expand(abbrev)
            except Ambiguous:
                raise RevisionNotFound(
                    f"targetRevision {abbrev!r} is an ambiguous short commit SHA in "
                    f"{self.display}; write more of it (or all 40 characters)"
                ) from None
            if sha is not None:
                return sha
            if attempt == 0:
                self.fetch()
        raise RevisionNotFound(
            f"targetRevision {abbrev!r} names no branch, tag or commit of {self.display}; "
            "fix spec.source.targetRevision or push it"
        )
