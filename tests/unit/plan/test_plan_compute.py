"""Given what Git wants and what a VM reports, expect exactly these steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from planfixtures import desired, synced, with_marker, with_path, with_unit

from vmgitops.facts.observed import ObservedState, PackageState, ReleaseState, UnitState
from vmgitops.manifest.desired import DesiredState, ReleaseFile
from vmgitops.plan import compute_plan
from vmgitops.plan.inventory import Inventory, ReleaseInventory, ReleaseRecord, parse_inventory
from vmgitops.plan.plan import Plan
from vmgitops.plan.steps import RunCommand, SwitchRelease, UploadRelease, WriteFile, WriteInventory

BASE = r"""
files:
  - {path: /etc/hello/hello.conf, content: "greeting={{ params.greeting }}\n", template: true}
  - {path: /usr/local/bin/hello, content: "#!/bin/sh\necho hello\n", mode: "0755"}
  - {path: /etc/hello/token, content: "s3cr3t-token\n", mode: "0600", sensitive: true}
directories:
  - {path: /var/lib/hello, mode: "0750"}
packages:
  - {name: curl}
services:
  - name: hello.service
    unit: "[Service]\nExecStart=/usr/local/bin/hello\n"
    enabled: true
    state: running
    restartOnChange: [/etc/hello/hello.conf, release]
release: {path: /opt/hello, source: dist, keep: 2}
commands:
  - name: migrate
    run: [/opt/hello/current/bin/migrate, --yes]
    onChange: [release]
  - name: init-db
    run: [/usr/local/bin/hello, init]
    creates: /var/lib/hello/.initialised
"""
PARAMS = {"greeting": "hello"}
DIST2 = (ReleaseFile("bin/app", 0o755, b"#!/bin/sh\necho v2\n"),)
CONF = "/etc/hello/hello.conf"
BIN = "/usr/local/bin/hello"
UNIT = "/etc/systemd/system/hello.service"


def base(**kw: object) -> DesiredState:
    return desired(BASE, params=PARAMS, **kw)  # type: ignore[arg-type]


def inv(o: ObservedState) -> Inventory:
    return parse_inventory(o.inventory)


def with_inventory(o: ObservedState, **changes: object) -> ObservedState:
    new = dataclasses.replace(inv(o), **changes)  # type: ignore[arg-type]
    return dataclasses.replace(o, inventory=new.to_bytes())


def dropped(text: str) -> Callable[[], tuple[DesiredState, ObservedState]]:
    """The VM is synced to BASE; Git now has BASE without the lines containing `text`."""

    def case() -> tuple[DesiredState, ObservedState]:
        smaller = "\n".join(line for line in BASE.splitlines() if text not in line)
        return desired(smaller, params=PARAMS), synced(base())

    return case


def drift(
    mutate: Callable[[ObservedState], ObservedState],
) -> Callable[[], tuple[DesiredState, ObservedState]]:
    """Git has BASE; the VM was synced to BASE and then `mutate` happened to it."""

    def case() -> tuple[DesiredState, ObservedState]:
        d = base()
        return d, mutate(synced(d))

    return case


def new_revision(**kw: object) -> Callable[[], tuple[DesiredState, ObservedState]]:
    """The VM is synced to BASE at rev1; Git now has rev2 (with `kw` differences)."""

    def case() -> tuple[DesiredState, ObservedState]:
        return base(revision="rev2", **kw), synced(base())

    return case


def rollback() -> tuple[DesiredState, ObservedState]:
    v1, v2 = base(), base(revision="rev2", dist=DIST2)
    o = synced(v2)
    o = dataclasses.replace(
        o, release=ReleaseState("/opt/hello", "releases/rev2", "link", ("rev1", "rev2"))
    )
    assert v1.release and v2.release
    records = (ReleaseRecord("rev1", v1.release.digest), ReleaseRecord("rev2", v2.release.digest))
    o = with_inventory(o, releases=(ReleaseInventory("/opt/hello", records),))
    return base(revision="rev3"), o


def keep_two() -> tuple[DesiredState, ObservedState]:
    o = synced(base())
    o = dataclasses.replace(o, release=ReleaseState("/opt/hello", "releases/b", "link", ("a", "b")))
    records = (ReleaseRecord("a", "x" * 64), ReleaseRecord("b", "y" * 64))
    o = with_inventory(o, releases=(ReleaseInventory("/opt/hello", records),))
    return base(revision="c", dist=DIST2), o


def half_uploaded() -> tuple[DesiredState, ObservedState]:
    d = base(revision="rev2", dist=DIST2)
    o = synced(base())
    rel = ReleaseState("/opt/hello", "releases/rev1", "link", ("rev1", "rev2"))
    o = dataclasses.replace(o, release=rel)
    return d, o


def preinstalled_package() -> tuple[DesiredState, ObservedState]:
    d = base()
    return d, with_inventory(synced(d), packages=frozenset())


def package_missing() -> tuple[DesiredState, ObservedState]:
    d = base()
    o = synced(d)
    o = dataclasses.replace(o, packages={"curl": PackageState("curl", False)})
    return d, with_inventory(o, packages=frozenset())


def absent_package() -> tuple[DesiredState, ObservedState]:
    d = desired(BASE.replace("{name: curl}", "{name: curl, state: absent}"), params=PARAMS)
    o = synced(d)
    return d, dataclasses.replace(o, packages={"curl": PackageState("curl", True, "8.0")})


def service_dropped() -> tuple[DesiredState, ObservedState]:
    text = BASE.split("services:")[0] + "release:" + BASE.split("release:")[1]
    return desired(text, params=PARAMS), synced(base())


def unit_text_dropped() -> tuple[DesiredState, ObservedState]:
    text = "\n".join(line for line in BASE.splitlines() if "unit:" not in line)
    return desired(text, params=PARAMS), synced(base())


def release_dropped() -> tuple[DesiredState, ObservedState]:
    text = BASE.split("release:")[0] + "commands: []\n"
    text = text.replace(", release]", "]")
    return desired(text, params=PARAMS), synced(base())


K = tuple[str, str]
CASES: list[object] = [
    pytest.param(drift(lambda o: o), True, [], [], id="all in sync: empty plan"),
    pytest.param(
        drift(lambda o: with_path(o, BIN, sha256="0" * 64)),
        True,
        [("WriteFile", BIN)],
        [],
        id="one file edited by hand: exactly one WriteFile",
    ),
    pytest.param(
        drift(lambda o: with_path(o, BIN, mode=0o700)),
        True,
        [("WriteFile", BIN)],
        [],
        id="mode-only change: one WriteFile that keeps the content",
    ),
    pytest.param(
        drift(lambda o: with_path(o, BIN, user="nobody", uid=65534)),
        True,
        [],
        [],
        id="owner not managed (no owner in the manifest): not drift",
    ),
    pytest.param(
        drift(lambda o: with_path(o, UNIT, sha256="0" * 64)),
        True,
        [("WriteUnit", "hello.service"), ("DaemonReload", ""), ("RestartService", "hello.service")],
        [],
        id="unit changed: write it, one daemon-reload, restart",
    ),
    pytest.param(
        drift(lambda o: with_path(o, CONF, sha256="0" * 64)),
        True,
        [("WriteFile", CONF), ("RestartService", "hello.service")],
        [],
        id="restartOnChange file changed: write and restart",
    ),
    pytest.param(
        drift(lambda o: with_path(o, CONF, mode=0o600)),
        True,
        [("WriteFile", CONF)],
        [],
        id="mode-only change of a restartOnChange file: no restart",
    ),
    pytest.param(
        drift(
            lambda o: with_unit(
                with_path(o, CONF, kind="missing"), "hello.service", active="failed"
            )
        ),
        True,
        [("WriteFile", CONF), ("StartService", "hello.service")],
        [],
        id="service down and its config changed: start it, no extra restart",
    ),
    pytest.param(
        drift(lambda o: with_unit(o, "hello.service", enabled="disabled")),
        True,
        [("EnableService", "hello.service")],
        [],
        id="service disabled by hand: enable, no restart",
    ),
    pytest.param(
        drift(lambda o: with_path(o, "/var/lib/hello", kind="missing")),
        True,
        [("EnsureDirectory", "/var/lib/hello")],
        [],
        id="directory removed by hand: create it",
    ),
    pytest.param(
        dropped("/usr/local/bin/hello, content"),
        True,
        [("PruneFile", BIN), ("WriteInventory", "")],
        [],
        id="file dropped from Git, prune on: removed, inventory updated",
    ),
    pytest.param(
        dropped("/usr/local/bin/hello, content"),
        False,
        [],
        [],
        id="file dropped from Git, prune off: nothing touched (left as orphan)",
    ),
    pytest.param(
        dropped("/var/lib/hello"),
        True,
        [("PruneDirectory", "/var/lib/hello"), ("WriteInventory", "")],
        [],
        id="directory dropped, prune on: removed only if empty",
    ),
    pytest.param(
        dropped("{name: curl}"),
        True,
        [("RemovePackage", "curl"), ("WriteInventory", "")],
        [],
        id="package vmgitops installed dropped, prune on: removed",
    ),
    pytest.param(
        preinstalled_package,
        True,
        [],
        [],
        id="package already on the VM before vmgitops: in sync, not owned",
    ),
    pytest.param(
        package_missing,
        True,
        [("WriteInventory", ""), ("InstallPackage", "curl"), ("WriteInventory", "")],
        [],
        id="package missing: intent, install, inventory records it as owned",
    ),
    pytest.param(
        absent_package,
        True,
        [("RemovePackage", "curl")],
        [],
        id="package state absent but installed: remove",
    ),
    pytest.param(
        new_revision(dist=DIST2),
        True,
        [
            ("WriteInventory", ""),
            ("UploadRelease", "/opt/hello/releases/rev2"),
            ("SwitchRelease", "/opt/hello/current"),
            ("RunCommand", "migrate"),
            ("RestartService", "hello.service"),
            ("WriteInventory", ""),
        ],
        [],
        id="release changed: upload, switch, onChange release command, restart",
    ),
    pytest.param(
        new_revision(),
        True,
        [],
        [],
        id="new commit with the same release content: nothing to do",
    ),
    pytest.param(
        rollback,
        True,
        [
            ("SwitchRelease", "/opt/hello/current"),
            ("RunCommand", "migrate"),
            ("RestartService", "hello.service"),
            ("WriteInventory", ""),
        ],
        [],
        id="rollback to a kept release: switch without upload; the release changed, so migrate",
    ),
    pytest.param(
        keep_two,
        True,
        [
            ("WriteInventory", ""),
            ("UploadRelease", "/opt/hello/releases/c"),
            ("SwitchRelease", "/opt/hello/current"),
            ("PruneReleases", "/opt/hello/releases"),
            ("RunCommand", "migrate"),
            ("RestartService", "hello.service"),
            ("WriteInventory", ""),
        ],
        [],
        id="keep 2: the oldest inventoried releases are pruned",
    ),
    pytest.param(
        half_uploaded,
        True,
        [
            ("WriteInventory", ""),
            ("UploadRelease", "/opt/hello/releases/rev2"),
            ("SwitchRelease", "/opt/hello/current"),
            ("RunCommand", "migrate"),
            ("RestartService", "hello.service"),
            ("WriteInventory", ""),
        ],
        [],
        id="release dir on the VM but not in the inventory: uploaded again (replace)",
    ),
    pytest.param(
        drift(lambda o: dataclasses.replace(o, exists={"/var/lib/hello/.initialised": False})),
        True,
        [("RunCommand", "init-db")],
        [],
        id="creates path missing: run the command",
    ),
    pytest.param(
        drift(lambda o: with_marker(o, "done.init-db", None)),
        True,
        [],
        [],
        id="creates path present: no command, whatever its markers",
    ),
    pytest.param(
        drift(lambda o: with_marker(o, "done.migrate", b"0" * 64)),
        True,
        [("RunCommand", "migrate")],
        [],
        id="crash between release switch and command: the command still runs",
    ),
    pytest.param(
        drift(lambda o: with_marker(o, "pending.migrate", b"rev1")),
        True,
        [],
        ["CommandOutcomeUnknown"],
        id="pending marker of a non-idempotent command: CommandOutcomeUnknown",
    ),
    pytest.param(
        drift(lambda o: with_marker(o, "pending.gone", b"")),
        True,
        [],
        ["CommandOutcomeUnknown"],
        id="pending marker of a command no longer in Git: still needs a human",
    ),
    pytest.param(
        drift(lambda o: with_marker(o, "restart.hello.service", None)),
        True,
        [("RestartService", "hello.service")],
        [],
        id="crash between config write and restart: the restart still happens",
    ),
    pytest.param(
        drift(lambda o: with_path(o, BIN, kind="directory")),
        True,
        [],
        ["PathConflict"],
        id="a directory where a file belongs: refuse, a human decides",
    ),
    pytest.param(
        drift(lambda o: with_path(o, BIN, kind="symlink", sha256="")),
        True,
        [("WriteFile", BIN)],
        [],
        id="a symlink where a file belongs: replaced by the file",
    ),
    pytest.param(
        service_dropped,
        True,
        [("PruneUnit", "hello.service"), ("DaemonReload", ""), ("WriteInventory", "")],
        [],
        id="service dropped, prune on: stop, disable, remove its unit, one daemon-reload",
    ),
    pytest.param(
        unit_text_dropped,
        True,
        [
            ("PruneUnit", "hello.service"),
            ("DaemonReload", ""),
            ("RestartService", "hello.service"),
            ("WriteInventory", ""),
        ],
        [],
        id="unit text dropped but service kept: remove our unit file, reload, restart",
    ),
    pytest.param(
        release_dropped,
        True,
        [("PruneReleases", "/opt/hello/releases"), ("WriteInventory", "")],
        [],
        id="release dropped, prune on: inventoried releases and current removed",
    ),
    pytest.param(
        drift(lambda o: dataclasses.replace(o, inventory=b"{not json")),
        True,
        [],
        ["InventoryUnreadable"],
        id="unreadable inventory: blocked (prune cannot be trusted)",
    ),
    pytest.param(
        drift(lambda o: dataclasses.replace(o, package_manager="none")),
        True,
        [],
        ["PackageManagerUnsupported"],
        id="no supported package manager: blocked",
    ),
    pytest.param(
        drift(lambda o: with_unit(o, "hello.service", active="unknown", enabled="unknown")),
        True,
        [],
        ["SystemdUnavailable"],
        id="systemd not answering: blocked, never a blind start",
    ),
    pytest.param(
        drift(lambda o: dataclasses.replace(o, errors=("sha256sum: sha256sum is not installed",))),
        True,
        [],
        ["ObservationIncomplete"],
        id="the VM could not hash files: blocked rather than rewriting everything",
    ),
]


def _kinds(plan: Plan) -> list[K]:
    return [(str(s.kind), s.subject) for s in plan.steps]


@pytest.mark.parametrize(("case", "prune", "steps", "issues"), CASES)
def test_plan(
    case: Callable[[], tuple[DesiredState, ObservedState]],
    prune: bool,
    steps: list[K],
    issues: list[str],
) -> None:
    d, o = case()
    plan = compute_plan(d, o, prune=prune)
    assert _kinds(plan) == steps, plan.describe()
    assert [i.reason for i in plan.issues] == issues
    assert plan.blocked == bool(issues)
    assert compute_plan(d, o, prune=prune) == plan, "planning is deterministic"


def test_empty_plan_is_synced() -> None:
    d = base()
    plan = compute_plan(d, synced(d), prune=True)
    assert plan.in_sync
    assert plan.sync_status == "Synced"
    assert plan.describe() == "in sync: nothing to do\n"


def test_prune_off_reports_orphans_as_out_of_sync() -> None:
    d, o = dropped("/usr/local/bin/hello, content")()
    plan = compute_plan(d, o, prune=False)
    assert plan.orphans == (f"file {BIN}",)
    assert not plan.in_sync
    assert plan.sync_status == "OutOfSync"


def test_mode_only_change_keeps_content_and_shows_the_mode() -> None:
    d, o = drift(lambda o: with_path(o, BIN, mode=0o700))()
    (step,) = compute_plan(d, o, prune=True).steps
    assert isinstance(step, WriteFile)
    assert step.content_changed is False
    assert step.diff == "mode: 0700 -> 0755\n"
    d, o = drift(lambda o: with_path(o, CONF, mode=0o600))()
    (step,) = compute_plan(d, o, prune=True).steps
    assert isinstance(step, WriteFile) and step.restarts == (), "no marker reset, no restart"


def test_text_file_change_shows_a_unified_diff() -> None:
    d, o = drift(lambda o: with_path(o, CONF, sha256="0" * 64, content=b"greeting=hi\n"))()
    step = compute_plan(d, o, prune=True).steps[0]
    assert step.diff.splitlines()[2:] == ["@@ -1 +1 @@", "-greeting=hi", "+greeting=hello"]
    assert isinstance(step, WriteFile) and step.restarts == ("hello.service",)


def test_sensitive_file_content_appears_nowhere() -> None:
    token = "/etc/hello/token"
    d, o = drift(lambda o: with_path(o, token, sha256="0" * 64, content=b"old-secret\n"))()
    plan = compute_plan(d, o, prune=True)
    (step,) = plan.steps
    assert step.diff == "(sensitive content hidden)"
    shown = plan.describe(diffs=True) + repr(plan) + repr(d)
    assert "s3cr3t" not in shown and "old-secret" not in shown


def test_pending_idempotent_command_runs_again() -> None:
    text = BASE.replace("onChange: [release]", "onChange: [release]\n    idempotent: true")
    d = desired(text, params=PARAMS)
    o = with_marker(synced(d), "pending.migrate", b"rev1")
    (step,) = compute_plan(d, o, prune=True).steps
    assert isinstance(step, RunCommand) and "interrupted" in step.reason


NEW_VM = ObservedState(
    package_manager="apt",
    packages={"curl": PackageState("curl", False)},
    units={"hello.service": UnitState("hello.service", "not-found", "inactive")},
)


def test_intent_inventory_lists_new_entries_before_they_exist() -> None:
    d = base()
    first = compute_plan(d, NEW_VM, prune=True)
    intent, final = first.steps[0], first.steps[-1]
    assert isinstance(intent, WriteInventory) and not intent.final
    assert isinstance(final, WriteInventory) and final.final
    planned = parse_inventory(intent.content)
    assert BIN in planned.files and "curl" in planned.packages
    (rel,) = planned.releases
    assert rel.releases == (ReleaseRecord("rev1", None),), "upload not trusted until done"


def test_first_apply_orders_phases() -> None:
    plan = compute_plan(base(), NEW_VM, prune=True)
    kinds = [str(s.kind) for s in plan.steps]
    assert kinds == [
        "WriteInventory",
        "InstallPackage",
        "EnsureDirectory",
        "WriteFile",
        "WriteFile",
        "WriteFile",
        "WriteUnit",
        "DaemonReload",
        "UploadRelease",
        "SwitchRelease",
        "RunCommand",
        "RunCommand",
        "EnableService",
        "StartService",
        "WriteInventory",
    ]


def test_after_first_apply_the_plan_is_empty() -> None:
    d = base()
    assert compute_plan(d, synced(d), prune=True).in_sync
    assert compute_plan(d, synced(d), prune=False).in_sync


def test_a_release_change_clears_the_restart_markers_it_triggers() -> None:
    """Crash between a switch and the restart: the next plan still restarts (the
    executor removes the markers the switch names before switching)."""
    d, o = new_revision(dist=DIST2)()
    switch = next(s for s in compute_plan(d, o, prune=True).steps if isinstance(s, SwitchRelease))
    assert switch.restarts == ("hello.service",)
    after_crash = with_marker(
        dataclasses.replace(
            o, release=ReleaseState("/opt/hello", "releases/rev2", "link", ("rev1", "rev2"))
        ),
        "restart.hello.service",
        None,
    )
    v1 = base().release
    assert d.release is not None and v1 is not None
    records = (ReleaseRecord("rev1", v1.digest), ReleaseRecord("rev2", d.release.digest))
    after_crash = with_inventory(after_crash, releases=(ReleaseInventory("/opt/hello", records),))
    kinds = [s.kind for s in compute_plan(d, after_crash, prune=True).steps]
    assert "SwitchRelease" not in kinds and "RestartService" in kinds


def test_replacing_the_release_current_shows_restarts_in_the_same_plan() -> None:
    d = base(dist=DIST2)  # same revision name, other content: an upload replaces it
    steps = compute_plan(d, synced(base()), prune=True).steps
    upload = next(s for s in steps if isinstance(s, UploadRelease))
    assert upload.replace and upload.restarts == ("hello.service",)
    assert "SwitchRelease" not in [s.kind for s in steps]
    assert "RestartService" in [s.kind for s in steps]
