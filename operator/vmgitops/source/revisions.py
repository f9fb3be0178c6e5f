"""From targetRevision and a list of refs to a ref or commit. Pure.

The same rules as `git rev-parse` (a full SHA is a commit; otherwise `refs/<name>`,
`refs/tags/<name>`, `refs/heads/<name>` in that order; then an abbreviated SHA), applied
to what the server advertises (`git ls-remote --symref`) or what the mirror holds (`git
show-ref --head -d`): both print `<sha> <refname>` lines, annotated tags followed by a
peeled `<refname>^{}` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
ABBREV_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")
#: A ref name worth asking the server for by itself (pull-request refs and the like).
PLAIN_REFNAME = re.compile(r"^refs/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$")
_LINE = re.compile(r"^([0-9a-f]{40})\s+(\S+)$")
_SYMREF = re.compile(r"^ref:\s+(\S+)\s+(\S+)$")
_PEELED = "^{}"


@dataclass(frozen=True)
class Refs:
    """Refs of one repository: name -> object id, peeled tags, and where HEAD points."""

    objects: dict[str, str] = field(default_factory=dict)
    peeled: dict[str, str] = field(default_factory=dict)
    head_target: str | None = None

    def commit_of(self, refname: str) -> str | None:
        """The object a ref finally names: the peeled target for an annotated tag."""
        return self.peeled.get(refname) or self.objects.get(refname)

    def names(self, prefix: str) -> list[str]:
        """Short names under a prefix, sorted: for "did you mean" messages."""
        return sorted(n[len(prefix) :] for n in self.objects if n.startswith(prefix))


def parse_refs(output: str) -> Refs:
    """Parses `git ls-remote --symref` or `git show-ref --head -d` output."""
    objects: dict[str, str] = {}
    peeled: dict[str, str] = {}
    head_target: str | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        symref = _SYMREF.match(line)
        if symref:
            if symref.group(2) == "HEAD":
                head_target = symref.group(1)
            continue
        match = _LINE.match(line)
        if not match:
            continue
        sha, name = match.groups()
        if name.endswith(_PEELED):
            peeled[name[: -len(_PEELED)]] = sha
        else:
            objects[name] = sha
    return Refs(objects, peeled, head_target)


class MatchKind(StrEnum):
    """How targetRevision was understood."""

    REF = "ref"
    COMMIT = "commit"
    ABBREV = "abbrev"


@dataclass(frozen=True)
class RevisionMatch:
    """A ref with its commit (REF), a full SHA (COMMIT) or a SHA prefix to expand (ABBREV)."""

    kind: MatchKind
    ref: str
    commit: str | None


def normalize_revision(revision: str | None) -> str:
    """targetRevision as git sees it: "" and None mean the remote's default branch."""
    value = (revision or "").strip()
    return value or "HEAD"


def extra_ref(revision: str) -> str | None:
    """A full ref name outside branches and tags (`refs/pull/1/head`) to list explicitly."""
    if not PLAIN_REFNAME.match(revision) or ".." in revision:
        return None
    return None if revision.startswith(("refs/heads/", "refs/tags/")) else revision


def candidate_refs(revision: str) -> list[str]:
    """The ref names `git rev-parse` would try for `revision`, in its order."""
    names = [f"refs/{revision}", f"refs/tags/{revision}", f"refs/heads/{revision}"]
    return [revision, *names] if revision.startswith("refs/") else names


def match_revision(revision: str | None, refs: Refs) -> RevisionMatch | None:
    """What `revision` names among `refs`, or None when it names nothing there."""
    rev = normalize_revision(revision)
    if rev == "HEAD":
        target = refs.head_target
        if target and refs.commit_of(target):
            return RevisionMatch(MatchKind.REF, target, refs.commit_of(target))
        head = refs.commit_of("HEAD")
        return RevisionMatch(MatchKind.REF, "HEAD", head) if head else None
    if FULL_SHA.match(rev):
        return RevisionMatch(MatchKind.COMMIT, rev.lower(), rev.lower())
    for name in candidate_refs(rev):
        commit = refs.commit_of(name)
        if commit:
            return RevisionMatch(MatchKind.REF, name, commit)
    if ABBREV_SHA.match(rev):
        return RevisionMatch(MatchKind.ABBREV, rev.lower(), None)
    return None


def describe_refs(refs: Refs, limit: int = 5) -> str:
    """A short "branches: ...; tags: ..." list for a RevisionNotFound message."""
    parts = []
    for label, prefix in (("branches", "refs/heads/"), ("tags", "refs/tags/")):
        names = refs.names(prefix)
        if names:
            shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) if parts else "the repository has no branches or tags"
