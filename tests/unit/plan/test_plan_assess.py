"""A target's health: the worst of its services, its release and its checks."""

from __future__ import annotations

import dataclasses

import pytest
from planfixtures import desired, synced, with_path, with_unit

from vmgitops.facts.health import CheckResult
from vmgitops.facts.observed import ObservedState
from vmgitops.plan import compute_plan
from vmgitops.plan.assess import Assessment, assess_health
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.plan.resources import ResourceStatus, resource_statuses

APP = r"""
services:
  - {name: web.service, state: running}
  - {name: batch.service, state: stopped}
release: {path: /opt/web, source: dist}
"""
D = desired(APP)
OK = synced(D)
PASS = CheckResult("http", "http", True, "status 200 (curl)")
FAIL = CheckResult("http", "http", False, "status 503 (curl)")
NOCLIENT = CheckResult("tcp", "tcp", None, "no TCP client on the VM (bash or nc)")


@pytest.mark.parametrize(
    ("observed", "checks", "expected"),
    [
        pytest.param(OK, [PASS], Assessment(Health.HEALTHY), id="all good"),
        pytest.param(
            with_unit(OK, "web.service", active="failed"),
            [PASS],
            Assessment(Health.DEGRADED, "web.service is failed"),
            id="running service failed",
        ),
        pytest.param(
            with_unit(OK, "web.service", active="activating"),
            [],
            Assessment(Health.PROGRESSING, "web.service is activating"),
            id="service still starting",
        ),
        pytest.param(
            with_unit(OK, "batch.service", active="failed"),
            [],
            Assessment(Health.HEALTHY),
            id="a stopped service's state does not count",
        ),
        pytest.param(
            dataclasses.replace(OK, release=None),
            [PASS],
            Assessment(Health.MISSING, "/opt/web/current is missing"),
            id="release not deployed",
        ),
        pytest.param(
            OK,
            [PASS, FAIL],
            Assessment(Health.DEGRADED, "check http: status 503 (curl)"),
            id="a failing check",
        ),
        pytest.param(
            dataclasses.replace(OK, release=None),
            [FAIL, NOCLIENT],
            Assessment(Health.UNKNOWN, "check tcp: no TCP client on the VM (bash or nc)"),
            id="the worst wins: unknown over degraded over missing",
        ),
    ],
)
def test_assess(observed: ObservedState, checks: list[CheckResult], expected: Assessment) -> None:
    assert assess_health(D, observed, checks) == expected


def test_resource_statuses_name_what_a_sync_would_do() -> None:
    text = APP + "files:\n- {path: /etc/web.conf, content: a}\n- {path: /etc/b, content: b}\n"
    d = desired(text)
    o = with_path(synced(d), "/etc/web.conf", sha256="0" * 64)
    old = desired(text + "packages:\n- {name: curl}\n")
    o = dataclasses.replace(o, inventory=synced(old).inventory)
    statuses = resource_statuses(d, compute_plan(d, o, prune=False))
    assert statuses == [
        ResourceStatus(
            "File", "/etc/web.conf", SyncStatus.OUT_OF_SYNC, "write /etc/web.conf (0644)"
        ),
        ResourceStatus("File", "/etc/b", SyncStatus.SYNCED),
        ResourceStatus("Service", "web.service", SyncStatus.SYNCED),
        ResourceStatus("Service", "batch.service", SyncStatus.SYNCED),
        ResourceStatus("Release", "/opt/web", SyncStatus.SYNCED),
        ResourceStatus("Package", "curl", SyncStatus.OUT_OF_SYNC, "requires pruning"),
    ]
