"""Which targets carry a resolve-command request for an application, what refuses one
before any VM is asked, and the result the CLI reads back."""

from __future__ import annotations

from typing import Any

import pytest

from vmgitops.api import meta
from vmgitops.cli.cmd_resolve import answer, request_value
from vmgitops.cli.common import CliError
from vmgitops.plan.resolution import DEFERRED, REFUSED, RESOLVED, ResolveResult
from vmgitops.reconcile.app_resolve import precheck, requests_for, result_value


def t(name: str, value: str | None, rv: str = "1") -> dict[str, Any]:
    ann = {} if value is None else {meta.ANNOTATION_RESOLVE_COMMAND: value}
    return {"metadata": {"name": name, "resourceVersion": rv, "annotations": ann}}


@pytest.mark.parametrize(
    ("targets", "handled", "expected"),
    [
        pytest.param([t("a", None)], {}, [], id="no-annotation"),
        pytest.param([t("a", "web/m=ran")], {}, ["a"], id="names-this-app"),
        pytest.param([t("a", "other/m=ran")], {}, [], id="names-another-app"),
        pytest.param([t("a", "web/m=maybe")], {}, [], id="malformed-is-the-target-watchs"),
        pytest.param([t("a", "web/m=ran", "7")], {"a": "7"}, [], id="answered-at-this-version"),
        pytest.param([t("a", "web/m=ran", "8")], {"a": "7"}, ["a"], id="set-again-after-an-answer"),
        pytest.param(
            [t("b", "web/m=ran"), t("a", "web/n=rerun")], {}, ["a", "b"], id="in-name-order"
        ),
    ],
)
def test_requests_for(
    targets: list[dict[str, Any]], handled: dict[str, str], expected: list[str]
) -> None:
    assert [r.name for r in requests_for("web", targets, handled)] == expected


@pytest.mark.parametrize(
    ("selected", "observe_only", "loaded", "reason"),
    [
        pytest.param(True, False, True, None, id="asks-the-vm"),
        pytest.param(False, False, True, REFUSED, id="target-not-selected"),
        pytest.param(True, True, True, REFUSED, id="observe-only-changes-no-vm"),
        pytest.param(True, False, False, DEFERRED, id="no-revision-loaded-waits"),
    ],
)
def test_precheck(selected: bool, observe_only: bool, loaded: bool, reason: str | None) -> None:
    (r,) = requests_for("web", [t("a", "web/m=ran")], {})
    got = precheck(r, selected=selected, observe_only=observe_only, loaded=loaded)
    assert (got.reason if got else None) == reason


def test_the_cli_reads_back_the_result_of_its_own_request() -> None:
    value = request_value("web", "m", "ran")
    result = result_value(value, ResolveResult(RESOLVED, "command 'm' of web: recorded: x"))
    pending = {"metadata": {"annotations": {meta.ANNOTATION_RESOLVE_COMMAND: value}}}
    assert answer(pending, value) is None
    done = {"metadata": {"annotations": {meta.ANNOTATION_RESOLVE_RESULT: result}}}
    assert answer(done, value) == (RESOLVED, "command 'm' of web: recorded: x")
    assert answer(done, "web/m=rerun") is None, "another request's result"
    assert len(result_value(value, ResolveResult(REFUSED, "x" * 5000))) == 1024


def test_the_cli_refuses_a_malformed_request_before_the_cluster() -> None:
    with pytest.raises(CliError) as exc:
        request_value("web", "bad name", "ran")
    assert exc.value.code == 2 and "not a command name" in str(exc.value)
