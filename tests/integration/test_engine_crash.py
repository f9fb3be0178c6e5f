"""Killing the applier at chosen points on a real VM (vm6): no half-written file, no
command run twice, and the next sync converges or stops for a human.

The applier runs in a process of its own (`python -m vmgitops.engine.crashtest`). At a
crash point the apply script on the VM kills its whole process group with SIGKILL and
the process exits 137, as if both had been killed; one test also SIGKILLs the process
from outside while its apply runs, with no hook at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_engine_support import APP, EngineBed, bed_for, engine_vm

from testbed import VM

pytestmark = pytest.mark.integration

#: rev2: app.conf changes (a restart), motd and token are dropped (two prunes), a new
#: file appears, and the release changes (upload, switch, migrate, restart).
REV2 = APP.replace(
    '  - {path: /etc/vmgt-ID/motd, content: "hello from {{ target.name }}\\n", template: true}\n',
    '  - {path: /etc/vmgt-ID/extra, content: "extra\\n"}\n',
).replace(
    '  - {path: /etc/vmgt-ID/token, content: "s3cr3t-token-ID\\n", sensitive: true, '
    'mode: "0600"}\n',
    "",
)


@pytest.fixture(scope="module")
def vm6(fleet: list[VM]) -> VM:
    return engine_vm("vm6")


@pytest.fixture
def bed(vm6: VM, tmp_path: Path) -> Iterator[EngineBed]:
    yield from bed_for(vm6, tmp_path)


def converge_rev1(bed: EngineBed) -> dict[str, str]:
    bed.write_app(index="v1")
    first = bed.sync("rev1")
    assert first.ok and first.sync == "Synced", first.message
    return bed.desired_files("rev1")


def to_rev2(bed: EngineBed, manifest: str = REV2) -> dict[str, str]:
    assert REV2 != APP
    bed.params["greeting"] = "bonjour"
    bed.write_app(manifest, index="v2")
    return bed.desired_files("rev2")


def assert_no_half_state(bed: EngineBed, old: dict[str, str], new: dict[str, str]) -> None:
    """Every file is whole: old content, new content, or absent where either says so."""
    got = bed.sha256(*sorted(set(old) | set(new)))
    for path, sha in got.items():
        allowed = {old.get(path), new.get(path)}
        assert sha in allowed, f"{path}: {sha} is neither the old nor the new content"
    current = bed.sh(f"readlink /opt/vmgt-{bed.id}/current").strip()
    index = bed.sh(f"cat /opt/vmgt-{bed.id}/current/index.html")
    assert (current, index) in {
        ("releases/rev1", "<h1>v1</h1>\n"),
        ("releases/rev2", "<h1>v2</h1>\n"),
    }


def assert_converged(bed: EngineBed, new: dict[str, str]) -> None:
    result = bed.sync("rev2")
    assert result.error is None and result.sync == "Synced", result.message
    assert result.steps == (), "a second sync after convergence must do nothing"
    assert bed.sha256(*new) == new
    assert bed.sh(f"ls -A /etc/vmgt-{bed.id}").split() == ["app.conf", "extra"]
    assert bed.sh(f"readlink /opt/vmgt-{bed.id}/current") == "releases/rev2\n"
    assert bed.sh(f"curl -s http://127.0.0.1:{bed.port}/index.html") == "<h1>v2</h1>\n"
    assert bed.sh(f"systemctl is-active {bed.unit}") == "active\n"


@pytest.mark.parametrize(
    ("crash_at", "ran"),
    [
        pytest.param("write:/etc/vmgt-ID/app.conf", 0, id="mid-write of a changed file"),
        pytest.param("upload", 0, id="mid-upload of the release"),
        pytest.param("after:SwitchRelease", 0, id="after the release switch"),
        pytest.param("before:RunCommand", 0, id="before the pending marker"),
        pytest.param("pending:migrate", 0, id="after the pending marker, before the command"),
        pytest.param("ran:migrate", 1, id="after the command, before its done marker"),
        pytest.param("after:RunCommand", 1, id="after the command's markers"),
        pytest.param("after:PruneFile:1", 1, id="during prune"),
    ],
)
def test_killed_at_a_point(bed: EngineBed, tmp_path: Path, crash_at: str, ran: int) -> None:
    old = converge_rev1(bed)
    new = to_rev2(bed)
    crashed = bed.harness("rev2", crash_at, tmp_path)
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    assert_no_half_state(bed, old, new)
    assert bed.log_lines() == ["migrate"] * (1 + ran)

    after = bed.sync("rev2")
    pending = bed.marker("pending.migrate") is not None
    if pending:
        # The outcome of migrate is unknown: the engine stops for a human, runs nothing.
        assert [i.reason for i in after.blocking_issues] == ["CommandOutcomeUnknown"]
        assert not after.applied and after.stalled
        assert bed.log_lines() == ["migrate"] * (1 + ran)
        bed.sh(f"rm /var/lib/vmgitops/{bed.key}/markers/pending.migrate")  # a human's call
        after = bed.sync("rev2")
        ran = 0  # the human let it run again
    assert after.error is None and after.sync == "Synced", after.message
    assert after.health.health == "Healthy", after.message
    assert_converged(bed, new)
    runs = bed.log_lines().count("migrate")
    assert runs == 2 + (1 if pending and crash_at == "ran:migrate" else 0), bed.log_lines()
    print(
        f"\n{crash_at}: crashed, then {'stopped for a human, then ' if pending else ''}"
        f"converged; migrate ran {runs - 1} time(s) for rev2"
    )


def test_sigkill_from_outside_while_a_command_runs(bed: EngineBed, tmp_path: Path) -> None:
    """No hook: the applier process is SIGKILLed while its apply runs on the VM."""
    old = converge_rev1(bed)
    slow = REV2.replace(
        '"echo migrate >> /var/lib/vmgt-ID/log"]',
        '"echo migrate >> /var/lib/vmgt-ID/log; sleep 2"]',
    )
    new = to_rev2(bed, slow)
    job_proc = start_harness(bed, tmp_path)
    deadline = time.monotonic() + 60
    while bed.marker("pending.migrate") is None:
        assert job_proc.poll() is None, "the apply ended before its command started"
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.1)
    os.kill(job_proc.pid, signal.SIGKILL)
    job_proc.wait(timeout=30)
    assert job_proc.returncode == -signal.SIGKILL
    # The apply on the VM outlives its applier: while it holds the VM lock, its pending
    # marker is a command that runs, not one whose outcome is lost.
    look = bed.sync("rev2", dry_run=True)
    if look.error is not None:
        assert look.error.reason == "ApplyInProgress" and not look.stalled, look.message
    print(f"\nright after the SIGKILL, a drift check says: {look.message}")
    time.sleep(3)  # let what still runs on the VM finish (or die)
    assert_no_half_state(bed, old, new)
    assert bed.log_lines() == ["migrate", "migrate"]  # started once, never again
    after = bed.sync("rev2")
    if bed.marker("pending.migrate") is not None:
        assert [i.reason for i in after.blocking_issues] == ["CommandOutcomeUnknown"]
        bed.sh(f"rm /var/lib/vmgitops/{bed.key}/markers/pending.migrate")
        after = bed.sync("rev2")
        print("\nSIGKILL from outside: the command's outcome was unknown; stopped for a human")
    else:
        print("\nSIGKILL from outside: the VM side finished the command and recorded it")
    assert after.error is None and after.sync == "Synced", after.message
    assert_converged(bed, new)
    assert bed.log_lines().count("migrate") in (2, 3)


def start_harness(bed: EngineBed, tmp_path: Path) -> subprocess.Popen[bytes]:
    argv, env = bed.harness_command("rev2", None, tmp_path)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def test_two_appliers_never_interleave(bed: EngineBed) -> None:
    """Both plan the same change; the VM lock and the serial let one apply it, once."""
    converge_rev1(bed)
    new = to_rev2(bed)

    async def both() -> list[object]:
        return list(
            await asyncio.gather(
                bed._sync("rev2", 1, True, False, {}), bed._sync("rev2", 1, True, False, {})
            )
        )

    results = asyncio.run(both())
    for r in results:
        assert r.error is None and r.sync == "Synced", r.message  # type: ignore[attr-defined]
    applied = [r for r in results if r.steps]  # type: ignore[attr-defined]
    assert len(applied) == 1
    assert bed.log_lines() == ["migrate", "migrate"]
    assert bed.marker("fence") == "v1 2 1 rev2 applied\n"
    assert_converged(bed, new)


def test_an_older_generation_is_refused_on_the_vm(bed: EngineBed) -> None:
    bed.write_app(index="v1")
    assert bed.sync("rev1", generation=7).ok
    to_rev2(bed)
    stale = bed.sync("rev2", generation=6)
    assert not stale.applied and [i.reason for i in stale.blocking_issues] == ["StaleGeneration"]
    assert bed.sh(f"readlink /opt/vmgt-{bed.id}/current") == "releases/rev1\n"
    assert bed.sync("rev2", generation=8).sync == "Synced"


def test_killed_after_a_release_only_switch_the_service_still_restarts(
    bed: EngineBed, tmp_path: Path
) -> None:
    converge_rev1(bed)
    since = bed.active_since()
    bed.write_app(index="v2")  # only the release changes: no file write announces it
    crashed = bed.harness("rev2", "after:SwitchRelease", tmp_path)
    assert crashed.returncode == 137, crashed.stderr
    assert bed.active_since() == since  # died before the restart
    after = bed.sync("rev2")
    # The upload was not yet recorded as complete, so it is made again (replacing what
    # `current` shows), then migrate runs (never ran for rev2) and the service restarts.
    assert [(s.kind, s.status) for s in after.steps] == [
        ("UploadRelease", "ok"),
        ("RunCommand", "ok"),
        ("RestartService", "ok"),
        ("WriteInventory", "ok"),
    ], after.message
    assert bed.log_lines() == ["migrate", "migrate"]
    assert bed.active_since() != since
    assert bed.sh(f"curl -s http://127.0.0.1:{bed.port}/index.html") == "<h1>v2</h1>\n"
