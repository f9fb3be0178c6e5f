"""Method GitCommit: write revisions into a configuration repository and push. Blocking.

A fresh clone of one branch per promotion (configuration repositories are small), the
files edited value by value (`yamledit`), one commit naming the Promotion, and a push.
When the branch moved meanwhile the push is refused as non-fast-forward: the commit is
rebased onto the new tip (or, when the rebase conflicts, the edit is made again on it)
and pushed again, a bounded number of times.

Git runs with the same locked-down environment as the Git source (no system or global
configuration, no hooks, our transports only) and the same credential handling: a
password reaches git through GIT_ASKPASS and the environment, a key through a private
file removed afterwards; git's output is scrubbed before any of it is quoted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vmgitops.source.credentials import GitCredentials, auth_env, check_fit, secrets_of
from vmgitops.source.errors import GitAuthenticationFailed, SourceError
from vmgitops.source.failures import excerpt, fetch_failure
from vmgitops.source.gitcmd import REMOTE, GitResult, base_env, run_git
from vmgitops.source.scrub import Scrubber
from vmgitops.source.urls import RepoURL, SourcePolicy

from .yamledit import DocumentMatch, YamlEditError, find_documents, set_value

COMMITTER_NAME = "vmgitops"
COMMITTER_EMAIL = "promotions@vmgitops.io"
MAX_PUSH_ATTEMPTS = 5
_REJECTED = re.compile(
    r"non-fast-forward|fetch first|\[rejected\]|\[remote rejected\].*(stale|lock)|"
    r"failed to update ref|cannot lock ref",
    re.I,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GitCommitError(Exception):
    """Writing the revision to Git failed; `reason` is CamelCase, the message is scrubbed."""

    def __init__(self, reason: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Edit:
    """One destination's value: where it is and what it becomes."""

    dest: str
    """The destination's key in previousRevisions, for messages."""
    match: DocumentMatch
    path: str
    """A file, or a folder searched for the matching document."""
    key: str
    value: str
    explicit_file: bool = False
    """path names the file (a gitCommit.files entry): the document may be any single one."""


@dataclass(frozen=True)
class CommitResult:
    commit: str | None
    """The pushed commit; None when every value already was what it should be."""
    changed: tuple[str, ...]
    """Destinations whose value changed."""
    attempts: int


def checked_path(path: str) -> PurePosixPath:
    """A repository-relative path with no '..', absolute part or control character."""
    value = path.strip()
    if not value or _CONTROL.search(value) or value.startswith("/"):
        raise GitCommitError("GitCommitPathInvalid", f"gitCommit path {value!r} is not relative")
    pure = PurePosixPath(value)
    if ".." in pure.parts:
        raise GitCommitError("GitCommitPathInvalid", f"gitCommit path {value!r} contains '..'")
    return pure


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


class _Clone:
    """A working clone in a private temporary directory."""

    def __init__(
        self,
        repo: RepoURL,
        creds: GitCredentials | None,
        policy: SourcePolicy,
        branch: str,
        timeout: float,
    ) -> None:
        self.repo, self.creds, self.policy, self.branch = repo, creds, policy, branch
        self.timeout = timeout
        self.scrub = Scrubber(secrets_of(creds))
        self.tmp = Path(tempfile.mkdtemp(prefix="vmgitops-promote-"))
        self.work = self.tmp / "work"
        self.work.mkdir()
        self.git_dir = self.work / ".git"

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, args: Sequence[str], *, network: bool = False) -> GitResult:
        env = {
            **base_env(self.policy, self.git_dir, self.repo.raw if network else None),
            "GIT_WORK_TREE": str(self.work),
            "GIT_AUTHOR_NAME": COMMITTER_NAME,
            "GIT_AUTHOR_EMAIL": COMMITTER_EMAIL,
            "GIT_COMMITTER_NAME": COMMITTER_NAME,
            "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
            "HOME": str(self.tmp),
        }
        if not network:
            return run_git(self.work, args, env=env, timeout=self.timeout, cwd=self.work)
        with auth_env(self.creds, self.repo, connect_timeout=min(self.timeout, 30.0)) as auth:
            return run_git(
                self.work, args, env={**env, **auth}, timeout=self.timeout, cwd=self.work
            )

    def must(self, args: Sequence[str], what: str) -> str:
        result = self.run(args)
        if not result.ok:
            raise GitCommitError(
                "GitCommitFailed", f"{what} failed: {excerpt(result.stderr, self.scrub)}"
            )
        return result.stdout.strip()

    def fetch(self) -> None:
        ref = f"refs/heads/{self.branch}"
        result = self.run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--",
                REMOTE,
                f"+{ref}:refs/remotes/origin/{self.branch}",
            ],
            network=True,
        )
        if result.ok:
            return
        if "couldn't find remote ref" in result.stderr.lower():
            raise GitCommitError(
                "GitCommitFailed",
                f"branch {self.branch!r} does not exist in {self.repo.display}; check "
                "gitCommit.branch",
            )
        raise self._failure("fetching", result.stderr, result.timed_out)

    def push(self) -> bool:
        """True when pushed; False when refused because the branch moved."""
        result = self.run(
            ["push", "--porcelain", "--", REMOTE, f"HEAD:refs/heads/{self.branch}"], network=True
        )
        if result.ok:
            return True
        said = result.stderr + "\n" + result.stdout
        if _REJECTED.search(said):
            return False
        raise self._failure("pushing to", said, result.timed_out, push=True)

    def _failure(
        self, action: str, said: str, timed_out: bool, *, push: bool = False
    ) -> GitCommitError:
        failure = fetch_failure(
            action,
            self.repo.display,
            said,
            timed_out=timed_out,
            timeout=self.timeout,
            scrub=self.scrub,
        )
        message = failure.message.replace("spec.source.credentials", "gitCommit.credentials")
        message = message.replace("spec.source.repoURL", "gitCommit.repoURL")
        auth = isinstance(failure, GitAuthenticationFailed)
        if auth and push:
            message += " (pushing needs write access)"
        return GitCommitError(failure.reason, message, retryable=failure.retryable and not auth)


def _apply(clone: _Clone, edits: Sequence[Edit]) -> list[str]:
    """Edits the files of the work tree; returns the destinations whose value changed."""
    changed: list[str] = []
    root = clone.work
    for edit in edits:
        rel = checked_path(edit.path)
        target = root / rel
        if not _inside(root, target):
            raise GitCommitError(
                "GitCommitPathInvalid", f"gitCommit path {edit.path!r} leaves the repository"
            )
        file = _find_file(root, target, edit) if target.is_dir() else target
        if not file.is_file() or file.is_symlink():
            raise GitCommitError(
                "ManifestNotFound",
                f"{edit.path} is not a file of {clone.repo.display} ({clone.branch}); "
                f"check gitCommit for {edit.dest}",
            )
        text = file.read_text(encoding="utf-8")
        match = edit.match
        if edit.explicit_file and len(find_documents_safe(text, DocumentMatch())) == 1:
            match = DocumentMatch()
        try:
            new, _old = set_value(text, edit.key, edit.value, match)
        except YamlEditError as exc:
            where = file.relative_to(root).as_posix()
            raise GitCommitError("ManifestInvalid", f"{where}, for {edit.dest}: {exc}") from None
        if new != text:
            file.write_text(new, encoding="utf-8")
            changed.append(edit.dest)
    return changed


def find_documents_safe(text: str, match: DocumentMatch) -> list[int]:
    try:
        return find_documents(text, match)
    except YamlEditError:
        return []


def _find_file(root: Path, folder: Path, edit: Edit) -> Path:
    """The one YAML file under `folder` holding the destination's document."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not _inside(root, path):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if find_documents_safe(text, edit.match):
                found.append(path)
    where = folder.relative_to(root).as_posix() or "."
    if not found:
        raise GitCommitError(
            "ManifestNotFound",
            f"no {edit.match.kind} named {edit.match.name} in the YAML files under {where}/; "
            "add its manifest or name its file in gitCommit.files",
        )
    if len(found) > 1:
        names = ", ".join(p.relative_to(root).as_posix() for p in found[:3])
        raise GitCommitError(
            "ManifestInvalid",
            f"{edit.match.kind} {edit.match.name} is in several files ({names}); "
            "name the file in gitCommit.files",
        )
    return found[0]


def commit_revisions(
    repo: RepoURL,
    creds: GitCredentials | None,
    policy: SourcePolicy,
    branch: str,
    edits: Sequence[Edit],
    message: str,
    *,
    timeout: float = 120.0,
    identify: Sequence[str] = (),
) -> CommitResult:
    """Clones `branch`, applies `edits`, commits with `message` and pushes, rebasing and
    retrying while the push is refused because the branch moved. Raises GitCommitError.

    When every value already is what it should be, nothing is pushed; the result names
    the newest commit of the branch with a message line starting with each of
    `identify` (the commit an earlier attempt pushed before its caller could record it),
    or None."""
    try:
        check_fit(creds, repo, policy)
    except SourceError as exc:  # GitCredentialsInvalid: says what to fix, holds no secret
        raise GitCommitError(exc.reason, exc.message) from None
    clone = _Clone(repo, creds, policy, branch, timeout)
    try:
        clone.must(["init", "--quiet"], "git init")
        clone.fetch()
        upstream = f"refs/remotes/origin/{branch}"
        clone.must(["checkout", "--quiet", "-B", branch, upstream], "checkout")
        changed = _apply(clone, edits)
        if not changed:
            return CommitResult(_pushed_before(clone, upstream, identify), (), 0)
        clone.must(["add", "--all", "--", "."], "git add")
        clone.must(["commit", "--quiet", "--no-verify", "-m", message], "git commit")
        for attempt in range(1, MAX_PUSH_ATTEMPTS + 1):
            if clone.push():
                head = clone.must(["rev-parse", "HEAD"], "rev-parse")
                return CommitResult(head, tuple(changed), attempt)
            clone.fetch()
            rebased = clone.run(["rebase", "--quiet", upstream])
            if not rebased.ok:
                clone.run(["rebase", "--abort"])
                clone.must(["reset", "--quiet", "--hard", upstream], "reset")
                changed = _apply(clone, edits)
                if not changed:
                    return CommitResult(_pushed_before(clone, upstream, identify), (), attempt)
                clone.must(["add", "--all", "--", "."], "git add")
                clone.must(["commit", "--quiet", "--no-verify", "-m", message], "git commit")
        raise GitCommitError(
            "GitCommitFailed",
            f"{repo.display} ({branch}) kept moving: the push was refused "
            f"{MAX_PUSH_ATTEMPTS} times as non-fast-forward",
            retryable=True,
        )
    finally:
        clone.close()


_ERE_SPECIAL = re.compile(r"([.\[\]()*+?{}|^$\\])")


def _pushed_before(clone: _Clone, upstream: str, identify: Sequence[str]) -> str | None:
    """The newest commit of `upstream` whose message has a line starting with each of
    `identify` (whole lines for those ending in a name, see `commit_revisions`)."""
    if not identify:
        return None
    args = ["log", "-1", "--format=%H", "--extended-regexp", "--all-match"]
    for line in identify:
        pattern = "^" + _ERE_SPECIAL.sub(r"\\\1", line)
        # "Promotion: ns/name" must not match "Promotion: ns/name-2": whole line.
        args.append(f"--grep={pattern}" + ("" if line.endswith(" ") else "$"))
    result = clone.run([*args, upstream, "--"])
    found = result.stdout.strip() if result.ok else ""
    return found or None


def edits_summary(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v[:12]}" for k, v in sorted(values.items()))
