"""The engine against a real systemd VM (vm5): converge, stay still, heal, prune, roll back.

Every figure printed here (SSH round trips, commands) is measured on a real VM over the
real transport; the connection handshake is made before the sync and not counted.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_engine_support import EngineBed, bed_for, engine_vm

from testbed import VM

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vm5(fleet: list[VM]) -> VM:
    return engine_vm("vm5")


@pytest.fixture
def bed(vm5: VM, tmp_path: Path) -> Iterator[EngineBed]:
    yield from bed_for(vm5, tmp_path)


def statuses(result: object) -> list[tuple[str, str]]:
    return [(s.kind, s.status) for s in result.steps]  # type: ignore[attr-defined]


def test_first_apply_converges_then_a_second_changes_nothing(bed: EngineBed) -> None:
    bed.write_app()
    first = bed.sync()
    assert first.error is None, first.message
    assert {s.status for s in first.steps} == {"ok"}, statuses(first)
    assert first.sync == "Synced" and first.health.health == "Healthy", first.message
    assert [(c.name, c.ok) for c in first.checks] == [("unit", True), ("http", True), ("tcp", True)]
    conf = f"/etc/vmgt-{bed.id}/app.conf"
    assert bed.sh(f"cat {conf}") == "greeting=hello\n"
    assert bed.sh(f"stat -c %a {conf} /etc/vmgt-{bed.id}/token /var/lib/vmgt-{bed.id}") == (
        "640\n600\n750\n"
    )
    assert bed.sh(f"systemctl is-active {bed.unit}; systemctl is-enabled {bed.unit}") == (
        "active\nenabled\n"
    )
    assert bed.sh(f"readlink /opt/vmgt-{bed.id}/current") == "releases/rev1\n"
    assert bed.sh(f"curl -s http://127.0.0.1:{bed.port}/index.html") == "<h1>v1</h1>\n"
    assert bed.log_lines() == ["migrate"]
    assert "s3cr3t" not in str(first.to_dict())
    print(
        f"\nfirst apply: {len(first.steps)} steps, {first.round_trips} round trips, "
        f"{first.commands} SSH commands, {first.seconds:.2f}s"
    )

    files = [
        conf,
        f"/etc/vmgt-{bed.id}/motd",
        f"/etc/vmgt-{bed.id}/token",
        f"/etc/systemd/system/{bed.unit}",
        f"/opt/vmgt-{bed.id}/releases/rev1/index.html",
    ]
    before, since = bed.stat(*files), bed.active_since()
    second = bed.sync()
    assert second.error is None and not second.applied and second.steps == ()
    assert second.sync == "Synced" and second.health.health == "Healthy"
    assert bed.stat(*files) == before  # no write: inode and mtime unchanged
    assert bed.active_since() == since  # no restart
    assert bed.log_lines() == ["migrate"]  # no command
    assert second.round_trips == 1 and second.commands == 1  # observe, then the checks
    print(
        f"no-change sync: {second.round_trips} round trip ({second.commands} SSH command: "
        f"observe, then the health checks), {second.seconds:.2f}s"
    )


def test_a_file_edited_by_hand_is_the_only_step_and_is_fixed(bed: EngineBed) -> None:
    bed.write_app()
    assert bed.sync().ok
    motd = f"/etc/vmgt-{bed.id}/motd"
    bed.sh(f"echo tampered > {motd}")
    since = bed.active_since()
    drift = bed.sync(dry_run=True)
    assert drift.sync == "OutOfSync" and not drift.applied
    assert drift.plan is not None and [s.describe() for s in drift.plan.steps] == [
        f"write {motd} (0644)"
    ]
    assert "-tampered" in drift.plan.describe(diffs=True)
    assert [(r.name, r.sync) for r in drift.resources if r.sync != "Synced"] == [
        (motd, "OutOfSync")
    ]
    fixed = bed.sync()
    assert statuses(fixed) == [("WriteFile", "ok")]
    assert fixed.sync == "Synced" and fixed.health.health == "Healthy"
    assert bed.sh(f"cat {motd}") == f"hello from {bed.vm.name}\n"
    assert bed.active_since() == since  # motd feeds no service
    print(
        f"\none-file change: {fixed.round_trips} round trips, {fixed.commands} SSH commands "
        "(observe with the health checks, whose answer a planned change sets aside; apply; "
        f"health checks), {fixed.seconds:.2f}s"
    )


def test_a_trigger_file_restarts_its_service_once(bed: EngineBed) -> None:
    bed.write_app()
    assert bed.sync().ok
    since = bed.active_since()
    bed.params["greeting"] = "bonjour"
    result = bed.sync()
    assert statuses(result) == [("WriteFile", "ok"), ("RestartService", "ok")]
    assert bed.active_since() != since
    assert result.health.health == "Healthy", result.message
    again = bed.sync()
    assert again.steps == () and bed.active_since() != since


def test_prune_removes_exactly_what_was_dropped(bed: EngineBed) -> None:
    bed.write_app()
    assert bed.sync().ok
    bed.sh(f"echo mine > /etc/vmgt-{bed.id}/unmanaged; echo data > /var/lib/vmgt-{bed.id}/data")
    bed.write_app(
        """
files:
  - path: /etc/vmgt-ID/app.conf
    content: "greeting={{ params.greeting }}\\n"
    template: true
    mode: "0640"
"""
    )
    kept = bed.sync(prune=False)
    assert kept.steps == () and kept.sync == "OutOfSync"
    assert bed.sh(f"systemctl is-active {bed.unit}") == "active\n"
    pruned = bed.sync()
    assert pruned.error is None and pruned.sync == "Synced", pruned.message
    kinds = [s.kind for s in pruned.steps]
    assert kinds == [
        "PruneUnit",
        "DaemonReload",
        "PruneReleases",
        "PruneFile",
        "PruneFile",
        "PruneDirectory",
        "WriteInventory",
    ], kinds
    left = bed.sh(
        f"ls -A /etc/vmgt-{bed.id}; test -e /opt/vmgt-{bed.id} && echo opt; "
        f"ls -A /var/lib/vmgt-{bed.id}; test -e /etc/systemd/system/{bed.unit} && echo unit; "
        f"systemctl is-active {bed.unit} || true",
    )
    assert left.split() == ["app.conf", "unmanaged", "data", "log", "inactive"]


def test_release_switch_and_rollback(bed: EngineBed) -> None:
    bed.write_app(index="v1")
    assert bed.sync("rev1").ok
    url = f"http://127.0.0.1:{bed.port}/index.html"
    bed.write_app(index="v2")
    since = bed.active_since()
    up = bed.sync("rev2")
    assert [s.kind for s in up.steps] == [
        "WriteInventory",
        "UploadRelease",
        "SwitchRelease",
        "RunCommand",
        "RestartService",
        "WriteInventory",
    ], statuses(up)
    assert up.health.health == "Healthy", up.message
    assert bed.sh(f"curl -s {url}") == "<h1>v2</h1>\n" and bed.active_since() != since
    assert bed.sh(f"ls /opt/vmgt-{bed.id}/releases") == "rev1\nrev2\n"
    bed.write_app(index="v1")  # roll back: the old release is still on the VM
    back = bed.sync("rev3")
    assert [s.kind for s in back.steps] == [
        "SwitchRelease",
        "RunCommand",
        "RestartService",
        "WriteInventory",
    ], statuses(back)
    assert bed.sh(f"readlink /opt/vmgt-{bed.id}/current") == "releases/rev1\n"
    assert bed.sh(f"curl -s {url}") == "<h1>v1</h1>\n"
    assert bed.log_lines() == ["migrate"] * 3


def test_health_checks_are_reported_per_check(bed: EngineBed) -> None:
    bed.write_app()
    assert bed.sync().ok
    bed.sh(f"systemctl stop {bed.unit}")
    result = bed.sync(dry_run=True)
    assert result.health.health == "Degraded"
    checks = {c.name: (c.ok, c.message) for c in result.checks}
    assert checks["unit"][0] is False and "exit 3" in checks["unit"][1]
    assert checks["http"] == (False, "no answer within 3s (curl)")
    assert checks["tcp"] == (False, f"cannot connect to 127.0.0.1:{bed.port}")
    healed = bed.sync()
    assert statuses(healed) == [("StartService", "ok")]
    assert healed.health.health == "Healthy" and all(c.ok for c in healed.checks)


# -- packages ---------------------------------------------------------------------------

PKG = "vmgitops-test-hello"


def build_deb(tmp: Path) -> bytes:
    root = tmp / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PKG}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: vmgitops tests <tests@example.invalid>\n"
        "Description: a package built by the engine tests\n"
    )
    share = root / "usr/share" / PKG
    share.mkdir(parents=True)
    (share / "hello.txt").write_text("hello\n")
    deb = tmp / f"{PKG}_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb.read_bytes()


@pytest.fixture
def local_repo(vm5: VM, tmp_path: Path) -> Iterator[None]:
    """A flat apt repository on the VM (file: source), so no network is needed."""
    deb = build_deb(tmp_path)
    control = (
        f"Package: {PKG}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: vmgitops tests <tests@example.invalid>\n"
        f"Filename: ./{PKG}_1.0_all.deb\nSize: {len(deb)}\n"
        f"SHA256: {hashlib.sha256(deb).hexdigest()}\n"
        "Description: a package built by the engine tests\n\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((f"{PKG}_1.0_all.deb", deb), ("Packages", control.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    only_ours = (
        "-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/vmgt-test.list "
        "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    )
    vm5.ssh(
        "rm -rf /srv/vmgt-debs && mkdir -p /srv/vmgt-debs && tar -x -C /srv/vmgt-debs && "
        "echo 'deb [trusted=yes] file:/srv/vmgt-debs ./' > /etc/apt/sources.list.d/vmgt-test.list"
        f" && apt-get -q update {only_ours} >/dev/null",
        input=buf.getvalue(),
        timeout=120,
    )
    try:
        yield
    finally:
        vm5.ssh(
            f"dpkg -r {PKG} >/dev/null 2>&1; rm -rf /srv/vmgt-debs "
            "/etc/apt/sources.list.d/vmgt-test.list",
            check=False,
        )


def test_packages_install_remove_and_prune_with_apt(bed: EngineBed, local_repo: None) -> None:
    installed = f"dpkg-query -W -f '${{Status}}' {PKG} 2>/dev/null || true"
    bed.write_app(f"packages:\n  - {{name: {PKG}, state: present}}\n")
    first = bed.sync()
    assert statuses(first) == [
        ("WriteInventory", "ok"),
        ("InstallPackage", "ok"),
        ("WriteInventory", "ok"),
    ], first.message
    assert first.sync == "Synced"
    assert bed.sh(installed) == "install ok installed"
    assert bed.sync().steps == ()
    bed.write_app(f"packages:\n  - {{name: {PKG}, state: absent}}\n")
    absent = bed.sync()
    assert ("RemovePackage", "ok") in statuses(absent) and absent.sync == "Synced"
    assert "installed" not in bed.sh(installed).replace("not-installed", "")
    # Installed by vmgitops, then dropped from the manifest: prune removes it.
    bed.write_app(f"packages:\n  - {{name: {PKG}, state: present}}\n")
    assert bed.sync().ok
    bed.write_app("files: []\n")
    pruned = bed.sync()
    assert ("RemovePackage", "ok") in statuses(pruned) and pruned.sync == "Synced"
    assert "ok installed" not in bed.sh(installed)
