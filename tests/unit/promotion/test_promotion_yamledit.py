"""Setting one value in a YAML file changes that value and nothing else."""

from __future__ import annotations

import pytest

from vmgitops.promotion.yamledit import DocumentMatch, YamlEditError, set_value

SHA = "0123456789abcdef0123456789abcdef01234567"
VMAPP = DocumentMatch("VMApplication", "web-prod", "vmgitops.io")
ARGO = DocumentMatch("Application", "web-prod", "argoproj.io")
ANY = DocumentMatch()

MANIFESTS = """\
# prod, promoted by vmgitops
apiVersion: vmgitops.io/v1alpha1
kind: VMApplication
metadata:
  name: web-prod   # the prod one
spec:
  source:
    repoURL: git://127.0.0.1/shop.git
    targetRevision: main  # set by promotions
    path: apps/web
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web-prod}
spec:
  source: {repoURL: "https://git.example/k.git", targetRevision: 'v1'}
"""


def diff_lines(a: str, b: str) -> list[tuple[str, str]]:
    return [(x, y) for x, y in zip(a.splitlines(), b.splitlines(), strict=True) if x != y]


CASES = [
    pytest.param(
        MANIFESTS,
        VMAPP,
        "spec.source.targetRevision",
        SHA,
        [
            (
                "    targetRevision: main  # set by promotions",
                f"    targetRevision: {SHA}  # set by promotions",
            )
        ],
        id="block-value-keeps-its-comment",
    ),
    pytest.param(
        MANIFESTS,
        ARGO,
        "spec.source.targetRevision",
        "1234567",
        [
            (
                "  source: {repoURL: \"https://git.example/k.git\", targetRevision: 'v1'}",
                "  source: {repoURL: \"https://git.example/k.git\", targetRevision: '1234567'}",
            )
        ],
        id="flow-value-keeps-its-quotes-and-a-numeric-sha-stays-a-string",
    ),
    pytest.param(
        "image:\n  tag: 1.0  # old\n",
        ANY,
        "image.tag",
        "1234567",
        [("  tag: 1.0  # old", '  tag: "1234567"  # old')],
        id="number-like-value-is-quoted",
    ),
    pytest.param(
        'web:\n  revision: "abc"\n',
        ANY,
        "web.revision",
        SHA,
        [('  revision: "abc"', f'  revision: "{SHA}"')],
        id="double-quoted-stays-double-quoted",
    ),
]


@pytest.mark.parametrize(("text", "match", "key", "value", "changed"), CASES)
def test_only_the_value_changes(
    text: str, match: DocumentMatch, key: str, value: str, changed: list[tuple[str, str]]
) -> None:
    new, _ = set_value(text, key, value, match)
    assert diff_lines(text, new) == changed


def test_old_value_is_returned_and_same_value_is_no_change() -> None:
    new, old = set_value(MANIFESTS, "spec.source.targetRevision", "main", VMAPP)
    assert (new, old) == (MANIFESTS, "main")


def test_missing_key_is_inserted_at_the_mapping_indent() -> None:
    text = "kind: VMApplication\nmetadata:\n  name: web-prod\nspec:\n  source:\n    repoURL: x\n"
    new, old = set_value(
        text, "spec.source.targetRevision", SHA, DocumentMatch("VMApplication", "web-prod")
    )
    assert old is None
    assert new.splitlines()[4:] == ["  source:", f"    targetRevision: {SHA}", "    repoURL: x"]


def test_missing_mapping_is_inserted_nested() -> None:
    text = "values:\n  replicas: 2\n"
    new, _ = set_value(text, "values.web.revision", "v2", ANY)
    assert new == "values:\n  web:\n    revision: v2\n  replicas: 2\n"


def test_key_in_a_sequence_item_mapping() -> None:
    text = "apps:\n- name: web\n  rev: old\n"
    with pytest.raises(YamlEditError, match="not a mapping"):
        set_value(text, "apps.rev", "new", ANY)


REFUSALS = [
    pytest.param("a: [1\n", ANY, "a", "not valid YAML", id="broken-yaml"),
    pytest.param(
        MANIFESTS,
        DocumentMatch("VMApplication", "web-dev"),
        "spec.x",
        "no document",
        id="no-matching-document",
    ),
    pytest.param(
        MANIFESTS, ANY, "spec.x", "2 documents match", id="several-documents-without-a-name"
    ),
    pytest.param("a:\n  b: |\n    text\n", ANY, "a.b", "block scalar", id="block-scalar-value"),
    pytest.param("a:\n  b: [1, 2]\n", ANY, "a.b", "not a plain value", id="list-value"),
    pytest.param("a: 1\n", ANY, "a.b", "not a mapping", id="path-through-a-scalar"),
    pytest.param("a: {}\n", ANY, "a.b", "flow-style or empty", id="empty-flow-mapping"),
    pytest.param("a: 1\n", ANY, "a..b", "dotted path", id="empty-key-segment"),
]


@pytest.mark.parametrize(("text", "match", "key", "message"), REFUSALS)
def test_refused(text: str, match: DocumentMatch, key: str, message: str) -> None:
    with pytest.raises(YamlEditError, match=message):
        set_value(text, key, "v", match)


def test_anchor_shared_value_is_refused_rather_than_changing_two_places() -> None:
    text = "base: &rev main\nprod:\n  revision: *rev\n"
    with pytest.raises(YamlEditError):
        set_value(text, "base", "v2", ANY)
