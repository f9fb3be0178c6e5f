"""What makes the target controller probe: Secret changes reach the targets that use
them (through bastions too), and our own writes are not mistaken for stale bodies."""

from __future__ import annotations

from typing import Any

import pytest

from vmgitops.handlers import targets as handlers


def refs(table: dict[tuple[str, str, str], list[str]]) -> Any:
    return lambda key: table.get(key, [])


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param({}, [], id="unused-secret"),
        pytest.param({("secret", "ns", "s"): ["a", "b"]}, ["a", "b"], id="direct-users"),
        pytest.param(
            {("secret", "ns", "s"): ["jump"], ("bastion", "ns", "jump"): ["private"]},
            ["jump", "private"],
            id="targets-behind-a-bastion-that-uses-it",
        ),
        pytest.param(
            {
                ("secret", "ns", "s"): ["j1"],
                ("bastion", "ns", "j1"): ["j2"],
                ("bastion", "ns", "j2"): ["j1", "leaf"],
            },
            ["j1", "j2", "leaf"],
            id="a-bastion-loop-ends",
        ),
        pytest.param({("secret", "other", "s"): ["x"]}, [], id="same-name-in-another-namespace"),
    ],
)
def test_dependents_of_a_secret(
    table: dict[tuple[str, str, str], list[str]], expected: list[str]
) -> None:
    assert handlers.dependents("ns", "s", refs(table)) == expected


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [
        pytest.param("10", "9", True, id="numeric-not-lexical"),
        pytest.param("9", "10", False, id="older"),
        pytest.param("7", "7", False, id="same"),
        pytest.param("x", "y", True, id="opaque-and-different-trusts-the-body"),
    ],
)
def test_resource_version_order(a: str, b: str, newer: bool) -> None:
    assert handlers._newer(a, b) is newer


def test_status_prefers_our_write_until_the_body_catches_up() -> None:
    st = handlers.state()
    key = "ns/vm"
    ours = {"conditions": [{"type": "Reachable", "status": "True"}], "observedGeneration": 2}
    st.written[key] = handlers._Written("20", ours)
    stale = {"metadata": {"resourceVersion": "19"}, "status": {"observedGeneration": 1}}
    assert st.status_of(key, stale) == ours
    same = {"metadata": {"resourceVersion": "20"}, "status": ours}
    assert st.status_of(key, same) == ours
    edited = {"metadata": {"resourceVersion": "21"}, "status": {"observedGeneration": 2}}
    assert st.status_of(key, edited) == {"observedGeneration": 2}
    assert key not in st.written  # the body is the truth from now on


def test_secret_digest_changes_with_data_and_type_only() -> None:
    a = {"type": "Opaque", "data": {"password": "YQ=="}, "metadata": {"resourceVersion": "1"}}
    b = {"type": "Opaque", "data": {"password": "YQ=="}, "metadata": {"resourceVersion": "2"}}
    c = {"type": "Opaque", "data": {"password": "Yg=="}}
    d = {"type": "kubernetes.io/basic-auth", "data": {"password": "YQ=="}}
    assert handlers._secret_digest(a) == handlers._secret_digest(b)
    assert handlers._secret_digest(a) != handlers._secret_digest(c)
    assert handlers._secret_digest(a) != handlers._secret_digest(d)
