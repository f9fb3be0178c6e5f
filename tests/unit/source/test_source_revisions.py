"""Revision parsing: ls-remote/show-ref output and targetRevision -> ref or commit."""

from __future__ import annotations

import pytest

from vmgitops.source import Refs, match_revision, normalize_revision, parse_refs
from vmgitops.source.revisions import MatchKind, candidate_refs, describe_refs, extra_ref

A = "a" * 40
B = "b" * 40
C = "c" * 40
T = "7" * 40  # an annotated tag object

LS_REMOTE = f"""ref: refs/heads/main\tHEAD
{A}\tHEAD
{B}\trefs/heads/dev
{A}\trefs/heads/main
{C}\trefs/heads/v1
{B}\trefs/tags/v1
{T}\trefs/tags/v2
{A}\trefs/tags/v2^{{}}
{C}\trefs/pull/7/head
"""

SHOW_REF = f"""{B} refs/heads/dev
{A} refs/heads/main
{T} refs/tags/v2
{A} refs/tags/v2^{{}}
"""


def test_parse_ls_remote() -> None:
    refs = parse_refs(LS_REMOTE)
    assert refs.head_target == "refs/heads/main"
    assert refs.objects["refs/tags/v2"] == T
    assert refs.peeled == {"refs/tags/v2": A}
    assert refs.commit_of("refs/tags/v2") == A
    assert refs.commit_of("refs/heads/dev") == B
    assert refs.commit_of("refs/heads/nope") is None


def test_parse_show_ref_same_shape() -> None:
    refs = parse_refs(SHOW_REF)
    assert refs.head_target is None
    assert refs.commit_of("refs/tags/v2") == A
    assert refs.names("refs/heads/") == ["dev", "main"]


def test_parse_ignores_noise() -> None:
    refs = parse_refs("warning: redirecting\n\nnot-a-sha refs/heads/x\n")
    assert refs == Refs()


REFS = parse_refs(LS_REMOTE)


@pytest.mark.parametrize(
    ("revision", "kind", "ref", "commit"),
    [
        pytest.param("HEAD", MatchKind.REF, "refs/heads/main", A, id="head-follows-symref"),
        pytest.param("", MatchKind.REF, "refs/heads/main", A, id="empty-means-head"),
        pytest.param(None, MatchKind.REF, "refs/heads/main", A, id="none-means-head"),
        pytest.param(
            "  main ", MatchKind.REF, "refs/heads/main", A, id="surrounding-space-ignored"
        ),
        pytest.param("dev", MatchKind.REF, "refs/heads/dev", B, id="branch"),
        pytest.param("v2", MatchKind.REF, "refs/tags/v2", A, id="annotated-tag-peeled-to-commit"),
        pytest.param("v1", MatchKind.REF, "refs/tags/v1", B, id="tag-wins-over-same-named-branch"),
        pytest.param("refs/heads/v1", MatchKind.REF, "refs/heads/v1", C, id="full-ref-name"),
        pytest.param("heads/dev", MatchKind.REF, "refs/heads/dev", B, id="refs-relative-name"),
        pytest.param("refs/pull/7/head", MatchKind.REF, "refs/pull/7/head", C, id="pull-ref"),
        pytest.param(B.upper(), MatchKind.COMMIT, B, B, id="full-sha-any-case"),
        pytest.param(
            "d" * 40, MatchKind.COMMIT, "d" * 40, "d" * 40, id="unknown-full-sha-is-commit"
        ),
        pytest.param("abcd123", MatchKind.ABBREV, "abcd123", None, id="short-sha-to-expand"),
        pytest.param("ABCD", MatchKind.ABBREV, "abcd", None, id="four-hex-is-minimum"),
    ],
)
def test_match_revision(
    revision: str | None, kind: MatchKind, ref: str, commit: str | None
) -> None:
    match = match_revision(revision, REFS)
    assert match is not None
    assert (match.kind, match.ref, match.commit) == (kind, ref, commit)


@pytest.mark.parametrize(
    "revision",
    [
        pytest.param("nope", id="unknown-name"),
        pytest.param("abc", id="three-hex-is-too-short-for-a-sha"),
        pytest.param("g" * 40, id="forty-non-hex"),
        pytest.param("refs/heads/nope", id="unknown-full-ref"),
        pytest.param("main~1", id="rev-parse-syntax-is-not-evaluated"),
    ],
)
def test_no_match(revision: str) -> None:
    assert match_revision(revision, REFS) is None


def test_head_without_symref_uses_head_commit() -> None:
    refs = parse_refs(f"{B}\tHEAD\n{B}\trefs/heads/main\n")
    match = match_revision("HEAD", refs)
    assert match is not None and (match.ref, match.commit) == ("HEAD", B)


def test_head_of_empty_repository_names_nothing() -> None:
    assert match_revision("HEAD", Refs()) is None


def test_normalize_revision() -> None:
    assert normalize_revision(None) == "HEAD"
    assert normalize_revision(" v1 ") == "v1"


def test_candidate_refs_follow_rev_parse_order() -> None:
    assert candidate_refs("x") == ["refs/x", "refs/tags/x", "refs/heads/x"]
    assert candidate_refs("refs/heads/x")[0] == "refs/heads/x"


@pytest.mark.parametrize(
    ("revision", "extra"),
    [
        pytest.param("refs/pull/7/head", "refs/pull/7/head", id="pull-ref-listed-explicitly"),
        pytest.param("refs/heads/main", None, id="branches-are-listed-anyway"),
        pytest.param("refs/tags/v1", None, id="tags-are-listed-anyway"),
        pytest.param("main", None, id="short-name"),
        pytest.param("refs/../x", None, id="dot-dot-never-sent"),
        pytest.param("refs/*", None, id="glob-never-sent"),
    ],
)
def test_extra_ref(revision: str, extra: str | None) -> None:
    assert extra_ref(revision) == extra


def test_describe_refs_for_messages() -> None:
    assert describe_refs(REFS) == "branches: dev, main, v1; tags: v1, v2"
    assert describe_refs(Refs()) == "the repository has no branches or tags"
    many = parse_refs("".join(f"{A}\trefs/heads/b{i}\n" for i in range(9)))
    assert describe_refs(many, limit=2) == "branches: b0, b1, ..."
