"""GitSource: targetRevision -> commit, commit -> read-only folder. The asyncio face.

Each resolve asks the server what the revision names now (`git ls-remote`, one round
trip) and fetches only when the mirror lacks that commit, so a poll of an unchanged
repository transfers no objects. Git work runs in threads; a per-repository asyncio lock
keeps two fetches of one mirror from interleaving, and callers that queued behind a
listing made after they arrived reuse it: a hundred VMApplications on one repository
cost one round trip, never a stale answer. Everything downstream works from the
returned commit, which never changes meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .checkout import CheckoutStore, TreeLimits, resolve_app_folder
from .credentials import (
    GitCredentials,
    SecretLike,
    auth_env,
    check_fit,
    credentials_from_secret,
    fingerprint,
    secrets_of,
)
from .errors import GitFetchFailed, RepositoryTooLarge, RepoURLRefused, RevisionNotFound
from .mirror import Ambiguous, Mirror
from .revisions import FULL_SHA, MatchKind, Refs, describe_refs, extra_ref, match_revision
from .scrub import Scrubber
from .urls import RepoURL, SourcePolicy, URLRefused, address_refusal, parse_repo_url

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "VMGITOPS_CACHE_DIR"
#: Mirror refs that keep fetched commits no branch or tag points to (SHA revisions).
PINNED_PREFIX = "refs/vmgitops/"
TIMEOUT_ENV = "VMGITOPS_GIT_TIMEOUT"


def default_cache_dir() -> Path:
    """$VMGITOPS_CACHE_DIR, else ~/.cache/vmgitops/git."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "vmgitops" / "git"


def _default_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else 120.0
    except ValueError:
        return 120.0


@dataclass(frozen=True)
class Resolved:
    """What targetRevision named when Git was asked: a commit and the ref that led to it.

    `ref` is the full ref name (`refs/heads/main`, `refs/tags/v1`), "HEAD" when the server
    does not say which branch its HEAD is, or the commit itself for a SHA revision.
    """

    commit: str
    ref: str
    fetched_at: datetime


@dataclass(frozen=True)
class _Listing:
    refs: Refs
    started: float
    at: datetime
    fingerprint: str
    extra_ref: str | None


class GitSource:
    """Fetch cache, revision resolution and immutable checkouts; one per operator process."""

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        *,
        policy: SourcePolicy | None = None,
        timeout: float | None = None,
        checkout_timeout: float = 300.0,
        max_checkouts: int = 50,
        checkout_grace: float = 600.0,
        max_repo_bytes: int = 2 * 1024 * 1024 * 1024,
        tree_limits: TreeLimits | None = None,
        check_dns: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.policy = policy or SourcePolicy()
        #: Seconds any one network git command may take before it is killed.
        self.timeout = timeout if timeout is not None else _default_timeout()
        self.max_checkouts = max_checkouts
        self.checkout_grace = checkout_grace
        self.max_repo_bytes = max_repo_bytes
        self.check_dns = check_dns
        self.checkouts = CheckoutStore(
            self.cache_dir / "checkouts", checkout_timeout, tree_limits or TreeLimits()
        )
        self._repo_locks: dict[str, asyncio.Lock] = {}
        self._checkout_locks: dict[str, asyncio.Lock] = {}
        self._listings: dict[str, _Listing] = {}

    # -- public API -----------------------------------------------------------------

    async def resolve(
        self,
        url: str,
        target_revision: str | None = "HEAD",
        credentials: SecretLike | None = None,
    ) -> Resolved:
        """The commit `target_revision` (branch, tag, SHA, "HEAD"/"") names now.

        Raises RepoURLRefused, GitCredentialsInvalid, GitAuthenticationFailed,
        GitFetchFailed (all GitFetchFailed), RevisionNotFound or RepositoryTooLarge.
        """
        arrived = time.monotonic()
        repo = self._parse(url)
        creds = credentials_from_secret(credentials)
        check_fit(creds, repo, self.policy)
        revision = (target_revision or "").strip() or "HEAD"
        who, extra = fingerprint(creds), extra_ref(revision)
        async with self._lock(self._repo_locks, repo.cache_key):
            listing = self._listings.get(repo.cache_key)
            if (
                listing is None
                or listing.started < arrived
                or listing.fingerprint != who
                or (extra is not None and listing.extra_ref != extra)
            ):
                listing = await asyncio.to_thread(self._list, repo, creds, extra, who)
                self._listings[repo.cache_key] = listing
            resolved = await asyncio.to_thread(self._resolve, repo, creds, revision, listing)
        log.debug("resolved %r of %s to %s", revision, repo.display, resolved.commit)
        return resolved

    async def checkout(
        self,
        url: str,
        commit: str,
        path: str | None = ".",
        credentials: SecretLike | None = None,
    ) -> Path:
        """The folder `path` in a read-only checkout of `commit` (a full SHA).

        Works offline once the commit is in the cache; otherwise it is fetched first
        (with `credentials`). Raises RevisionNotFound, PathNotFound or PathEscape.
        """
        repo = self._parse(url)
        if not FULL_SHA.match(commit):
            raise RevisionNotFound(
                f"checkout needs the full 40-character commit SHA that resolve() returned, "
                f"not {commit[:64]!r}"
            )
        sha = commit.lower()
        mirror = self._mirror(repo, credentials_from_secret(credentials))
        if not await asyncio.to_thread(mirror.has_commit, sha):
            await self.resolve(url, sha, credentials)
        async with self._lock(self._checkout_locks, sha):
            root, created = await asyncio.to_thread(self._materialize, mirror, sha)
        if created:
            await self.gc_checkouts()
        return await asyncio.to_thread(resolve_app_folder, root, path)

    async def gc_checkouts(self, keep: int | None = None, protect: Iterable[str] = ()) -> list[str]:
        """Removes all but the `keep` (default max_checkouts) most recently used checkouts.

        `protect`: commits to keep anyway (deployed revisions); checkouts used within
        `checkout_grace` seconds also stay. Returns the removed commits.
        """
        limit = self.max_checkouts if keep is None else keep
        return await asyncio.to_thread(self.checkouts.gc, limit, list(protect), self.checkout_grace)

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _lock(locks: dict[str, asyncio.Lock], key: str) -> asyncio.Lock:
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock

    def _parse(self, url: str) -> RepoURL:
        try:
            return parse_repo_url(url, self.policy)
        except URLRefused as exc:
            raise RepoURLRefused(str(exc)) from None

    def _mirror(self, repo: RepoURL, creds: GitCredentials | None) -> Mirror:
        return Mirror(
            self.cache_dir / "repos" / f"{repo.cache_key}.git",
            repo,
            self.policy,
            self.timeout,
            Scrubber(secrets_of(creds)),
        )

    def _materialize(self, mirror: Mirror, sha: str) -> tuple[Path, bool]:
        """The checkout of `sha` and whether it was just made."""
        root = self.checkouts.existing(sha)
        if root is not None:
            return root, False
        return self.checkouts.create(mirror, sha), True

    def _check_dns(self, repo: RepoURL) -> None:
        """Refuses a host name that resolves to a link-local or metadata address."""
        if not self.check_dns or self.policy.allow_insecure_hosts or repo.scheme == "file":
            return
        try:
            ipaddress.ip_address(repo.host)
            return
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(repo.host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return  # git reports the failure to resolve in its own words
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            why = address_refusal(address)
            if why:
                raise RepoURLRefused(
                    f"repoURL {repo.display!r} is refused: {repo.host} resolves to {why}"
                )

    def _list(
        self, repo: RepoURL, creds: GitCredentials | None, extra: str | None, who: str
    ) -> _Listing:
        self._check_dns(repo)
        mirror = self._mirror(repo, creds)
        started, at = time.monotonic(), datetime.now(UTC)
        try:
            mirror.ensure()
        except OSError as exc:
            raise GitFetchFailed(
                f"the Git cache {self.cache_dir} is not writable ({exc.strerror or exc}); "
                "check the operator's volume"
            ) from None
        with auth_env(creds, connect_timeout=min(self.timeout, 30)) as auth:
            refs = mirror.ls_remote(auth, extra)
        return _Listing(refs, started, at, who, extra)

    def _fetch(
        self, mirror: Mirror, creds: GitCredentials | None, refspec: str | None = None
    ) -> None:
        """All branches and tags (pruned), or just `refspec` (not pruned)."""
        with auth_env(creds, connect_timeout=min(self.timeout, 30)) as auth:
            if refspec is None:
                mirror.fetch(auth)
            else:
                mirror.fetch(auth, [refspec], prune=False)
        size = mirror.size_bytes()
        if size > self.max_repo_bytes:
            mirror.remove()
            self._listings.pop(mirror.repo.cache_key, None)
            raise RepositoryTooLarge(
                f"{mirror.repo.display} takes {size} bytes, above the limit of "
                f"{self.max_repo_bytes}; it was removed from the cache"
            )

    def _resolve(
        self, repo: RepoURL, creds: GitCredentials | None, revision: str, listing: _Listing
    ) -> Resolved:
        mirror = self._mirror(repo, creds)
        refs = listing.refs
        match = match_revision(revision, refs)
        if match is None:
            raise RevisionNotFound(
                f"targetRevision {revision[:200]!r} names no branch, tag or commit of "
                f"{repo.display} ({describe_refs(refs)}); fix spec.source.targetRevision "
                "or push it"
            )
        if match.kind is MatchKind.REF:
            assert match.commit is not None
            commit = self._ensure_ref_commit(mirror, creds, revision, match.ref, match.commit, refs)
            return Resolved(commit, match.ref, listing.at)
        if match.kind is MatchKind.COMMIT:
            sha = match.ref
            if not mirror.has_commit(sha):
                self._fetch(mirror, creds)
            if not mirror.has_commit(sha):
                # Most servers refuse a commit that no branch or tag points to.
                with contextlib.suppress(GitFetchFailed):
                    self._fetch(mirror, creds, f"+{sha}:{PINNED_PREFIX}{sha}")
            if not mirror.has_commit(sha):
                raise RevisionNotFound(
                    f"commit {sha} is not in {repo.display} (not reachable from any branch "
                    "or tag); check spec.source.targetRevision"
                )
            return Resolved(sha, sha, listing.at)
        sha = self._expand(mirror, creds, repo, match.ref)
        return Resolved(sha, sha, listing.at)

    def _ensure_ref_commit(
        self,
        mirror: Mirror,
        creds: GitCredentials | None,
        revision: str,
        ref: str,
        commit: str,
        refs: Refs,
    ) -> str:
        """The commit of `ref`, fetched into the mirror if it is not there yet."""
        if mirror.has_commit(commit):
            return commit
        if ref.startswith(("refs/heads/", "refs/tags/")):
            self._fetch(mirror, creds)
            local = dataclasses.replace(mirror.local_refs(), head_target=refs.head_target)
            again = match_revision(revision, local)
            if again and again.ref == ref and again.commit and mirror.has_commit(again.commit):
                return again.commit  # the server moved on between listing and fetch
        else:
            local_name = f"{PINNED_PREFIX}HEAD" if ref == "HEAD" else ref
            self._fetch(mirror, creds, f"+{ref}:{local_name}")
        if mirror.has_commit(commit):
            return commit
        kind = mirror.object_type(commit)
        what = f"a {kind}, not a commit" if kind else "a commit that could not be fetched"
        raise RevisionNotFound(
            f"targetRevision {revision[:200]!r} ({ref}) of {mirror.repo.display} names "
            f"{what}; point it at a branch, tag or commit"
        )

    def _expand(
        self, mirror: Mirror, creds: GitCredentials | None, repo: RepoURL, abbrev: str
    ) -> str:
        for attempt in range(2):
            try:
                sha = mirror.expand(abbrev)
            except Ambiguous:
                raise RevisionNotFound(
                    f"targetRevision {abbrev!r} is an ambiguous short commit SHA in "
                    f"{repo.display}; write more of it (or all 40 characters)"
                ) from None
            if sha is not None:
                return sha
            if attempt == 0:
                self._fetch(mirror, creds)
        raise RevisionNotFound(
            f"targetRevision {abbrev!r} names no branch, tag or commit of {repo.display}; "
            "fix spec.source.targetRevision or push it"
        )
