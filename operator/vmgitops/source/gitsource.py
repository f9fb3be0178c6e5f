"""GitSource: targetRevision -> commit, commit -> read-only folder. The asyncio face.

Each resolve asks the server what the revision names now (`git ls-remote`, one round
trip) and fetches only when the mirror lacks that commit, so a poll of an unchanged
repository transfers no objects. Git work runs in worker threads of its own (a hung
server never starves the event loop's default executor, which asyncio also uses for DNS);
a per-repository asyncio lock keeps two fetches of one mirror from interleaving, and
callers that queued behind a listing begun after they arrived share its answer, success
or failure: a hundred VMApplications on one repository cost one round trip, never a
stale answer. Everything downstream works from the returned commit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from vmgitops import settings

from .checkout import CheckoutStore, TreeLimits, checked_subpath, resolve_app_folder
from .credentials import (
    GitCredentials,
    SecretLike,
    check_fit,
    credentials_from_secret,
    fingerprint,
    secrets_of,
    sweep_stale_scratch,
)
from .errors import RepoURLRefused, RevisionNotFound, SourceError
from .mirror import Mirror
from .resolver import RepoAccess, refuse_unsafe_resolution
from .revisions import FULL_SHA, Refs, extra_ref
from .scrub import Scrubber
from .urls import RepoURL, SourcePolicy, URLRefused, parse_repo_url

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_DIR_ENV = "VMGITOPS_CACHE_DIR"
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
    does not say which branch its HEAD is, or the full commit itself for a SHA revision.
    """

    commit: str
    ref: str
    fetched_at: datetime


@dataclass(frozen=True)
class _Listing:
    """One `ls-remote` answer (or failure), and what it may be shared with."""

    started: float
    fingerprint: str
    extra_ref: str | None
    at: datetime
    refs: Refs | None = None
    error: SourceError | None = None

    def serves(self, arrived: float, who: str, extra: str | None) -> bool:
        fresh = self.started >= arrived and self.fingerprint == who
        return fresh and (extra is None or self.extra_ref == extra)


def policy_from_settings() -> SourcePolicy:
    """The operator's SourcePolicy: the safe default unless VMGITOPS_GIT_ALLOW_* say so."""
    s = settings.current()
    return SourcePolicy(
        allow_file=s.git_allow_file,
        allow_insecure_hosts=s.git_allow_insecure_hosts,
        allow_plain_http_credentials=s.git_allow_plain_http_credentials,
    )


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
        workers: int = 8,
        check_dns: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.policy = policy or policy_from_settings()
        #: Seconds any one git command may take before it is killed with its children.
        self.timeout = timeout if timeout is not None else _default_timeout()
        self.max_checkouts = max_checkouts
        self.checkout_grace = checkout_grace
        self.max_repo_bytes = max_repo_bytes
        self.check_dns = check_dns and not self.policy.allow_insecure_hosts
        self.checkouts = CheckoutStore(
            self.cache_dir / "checkouts", checkout_timeout, tree_limits or TreeLimits()
        )
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="vmgitops-git")
        swept = sweep_stale_scratch()
        if swept:
            log.info("removed %d scratch folder(s) left by a stopped operator", len(swept))
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

        Raises GitFetchFailed (or its RepoURLRefused, GitCredentialsInvalid,
        GitAuthenticationFailed), RevisionNotFound or RepositoryTooLarge.
        """
        arrived = time.monotonic()
        repo = self._parse(url)
        creds = credentials_from_secret(credentials)
        check_fit(creds, repo, self.policy)
        revision = (target_revision or "").strip() or "HEAD"
        access = self._access(repo, creds)
        who, extra = fingerprint(creds), extra_ref(revision)
        async with self._lock(self._repo_locks, repo.cache_key):
            listing = self._listings.get(repo.cache_key)
            if listing is None or not listing.serves(arrived, who, extra):
                listing = await self._run(self._list, access, who, extra)
                self._listings[repo.cache_key] = listing
            if listing.error is not None:
                raise type(listing.error)(listing.error.message)
            assert listing.refs is not None
            commit, ref = await self._run(access.resolve, revision, listing.refs)
        log.debug("resolved %r of %s to %s", revision[:200], repo.display, commit)
        return Resolved(commit, ref, listing.at)

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
        checked_subpath(path)
        if not FULL_SHA.match(commit):
            raise RevisionNotFound(
                "checkout needs the full 40-character commit SHA that resolve() returned, "
                f"not {commit[:64]!r}"
            )
        sha = commit.lower()
        mirror = self._mirror(repo, credentials_from_secret(credentials))
        if not await self._run(mirror.has_commit, sha):
            await self.resolve(url, sha, credentials)
        async with self._lock(self._checkout_locks, sha):
            root, created = await self._run(self._materialize, mirror, sha)
        if created:
            await self.gc_checkouts()
        return await self._run(resolve_app_folder, root, path)

    async def gc_checkouts(self, keep: int | None = None, protect: Iterable[str] = ()) -> list[str]:
        """Removes all but the `keep` (default max_checkouts) most recently used checkouts.

        `protect`: commits to keep anyway (deployed revisions); checkouts used within
        `checkout_grace` seconds also stay. Returns the removed commits.
        """
        limit = self.max_checkouts if keep is None else keep
        return await self._run(self.checkouts.gc, limit, list(protect), self.checkout_grace)

    def close(self) -> None:
        """Stops the worker threads (after the git commands running now)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- internals --------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

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
        path = self.cache_dir / "repos" / f"{repo.cache_key}.git"
        return Mirror(path, repo, self.policy, self.timeout, Scrubber(secrets_of(creds)))

    def _access(self, repo: RepoURL, creds: GitCredentials | None) -> RepoAccess:
        connect_timeout = min(self.timeout, 30.0)
        return RepoAccess(self._mirror(repo, creds), creds, connect_timeout, self.max_repo_bytes)

    def _list(self, access: RepoAccess, who: str, extra: str | None) -> _Listing:
        started, at = time.monotonic(), datetime.now(UTC)
        try:
            if self.check_dns:
                refuse_unsafe_resolution(access.mirror.repo)
            refs = access.list(extra)
        except SourceError as exc:
            return _Listing(started, who, extra, at, error=exc)
        return _Listing(started, who, extra, at, refs=refs)

    def _materialize(self, mirror: Mirror, sha: str) -> tuple[Path, bool]:
        """The checkout of `sha` and whether it was just made."""
        root = self.checkouts.existing(sha)
        if root is not None:
            return root, False
        return self.checkouts.create(mirror, sha), True
