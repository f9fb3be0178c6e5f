"""What `vmgitops promote`, `approve` and the status sections build from their input."""

from __future__ import annotations

from typing import Any

import pytest

from vmgitops.promotion.cliops import (
    WaitTimedOut,
    approval_refusal,
    approvals,
    in_progress,
    involves,
    parse_ref,
    pipeline_row,
    promotion_manifest,
    wait_for,
)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        pytest.param(
            "web-prod", {"kind": "VMApplication", "name": "web-prod"}, id="bare-name-is-a-vmapp"
        ),
        pytest.param(
            "Application/web-k8s", {"kind": "Application", "name": "web-k8s"}, id="argo-app"
        ),
        pytest.param(
            "app/web-k8s", {"kind": "Application", "name": "web-k8s"}, id="argo-short-kind"
        ),
        pytest.param("vmapp/web", {"kind": "VMApplication", "name": "web"}, id="vmapp-short-kind"),
    ],
)
def test_parse_ref(text: str, ref: dict[str, str]) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Deployment/web", id="unknown-kind"),
        pytest.param("Web_Prod", id="not-a-dns-name"),
        pytest.param("Application/", id="no-name"),
    ],
)
def test_parse_ref_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ref(text)


def test_manifest_defaults_and_generated_name() -> None:
    m = promotion_manifest(parse_ref("web-staging"), [parse_ref("web-prod")])
    assert m["metadata"] == {"generateName": "web-staging-to-web-prod-"}
    assert m["spec"]["approval"] == {"required": False} and m["spec"]["revision"] == ""
    assert "gitCommit" not in m["spec"]


@pytest.mark.parametrize(
    ("source", "to", "message"),
    [
        pytest.param("web", ["web"], "also a --to", id="promote-to-itself"),
        pytest.param("web", ["prod", "prod"], "twice", id="same-destination-twice"),
    ],
)
def test_manifest_refuses(source: str, to: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        promotion_manifest(parse_ref(source), [parse_ref(t) for t in to])


def promo(name: str, phase: str | None, to: str = "prod", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"from": {"name": "staging"}, "to": [{"name": to}]},
        "status": {"phase": phase, **status} if phase else {},
    }


def test_status_rows_split_approvals_from_progress() -> None:
    items = [
        promo("a", "WaitingForApproval", revision="abc"),
        promo("b", "Verifying"),
        promo("c", None),
        promo("d", "Succeeded"),
    ]
    assert [(r["name"], r["approve"]) for r in approvals(items)] == [
        ("a", "vmgitops approve a -n shop")
    ]
    assert [r["name"] for r in in_progress(items)] == ["b", "c"]
    assert involves(items[0], "staging") and involves(items[0], "prod")
    assert not involves(items[0], "dev")


def test_finished_promotion_cannot_be_approved() -> None:
    assert (
        approval_refusal(promo("d", "RolledBack"))
        == "Promotion d is already RolledBack; nothing to approve"
    )
    assert approval_refusal(promo("a", "WaitingForApproval")) is None


def test_pipeline_row_keeps_spec_order_and_status() -> None:
    row = pipeline_row(
        {
            "metadata": {"name": "web"},
            "spec": {
                "stages": [{"name": "staging"}, {"name": "prod", "approval": {"required": True}}]
            },
            "status": {
                "summary": "staging@1 > prod@0 (held)",
                "holds": 1,
                "stages": [{"name": "prod", "revision": "0", "hold": {"reason": "ManualRollback"}}],
            },
        }
    )
    assert [s["name"] for s in row["stages"]] == ["staging", "prod"]
    assert row["stages"][1]["hold"] == {"reason": "ManualRollback"} and row["stages"][1]["approval"]
    assert row["holds"] == 1


def test_wait_reports_each_new_phase_and_times_out() -> None:
    seen: list[str] = []
    answers = iter(
        [
            promo("p", "Pending"),
            promo("p", "Pending"),
            promo("p", "Verifying"),
            promo("p", "Succeeded"),
        ]
    )
    final = wait_for(
        lambda: next(answers), 60, lambda o: seen.append(o["status"]["phase"]), sleep=lambda s: None
    )
    assert final["status"]["phase"] == "Succeeded" and seen == ["Pending", "Verifying", "Succeeded"]
    with pytest.raises(WaitTimedOut, match="still Pending"):
        wait_for(lambda: promo("p", "Pending"), 0, lambda o: None, sleep=lambda s: None)
