"""Crash at any point: a rollout over 20 VMs, the operator SIGKILLed at instrumented
points, then restarted; nothing half-written, no command run twice, every rollout done.

The operator is a real `vmgitops run` of this test's own, started with
`VMGITOPS_CRASH_AT=POINT@VM`: when its sync of VM reaches POINT, the apply script on the VM
kills itself (SIGKILL to its process group) and the operator process dies with it
(`os._exit(137)`, no cleanup), while the other VMs of the batch are cut off wherever
their own applies were. `synced` dies after a verified sync, before any status write;
`sigkill` is a plain SIGKILL from outside at a random moment of the rollout.

Figures: VMs whose managed files match neither the old nor the new revision (0),
commands run twice by the operator (0), rollouts converged after the restart (100%).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import bed, figures
from chaos.chaosapp import ChaosApp, Revision, app_status, converged, dump, target_messages
from testbed import VM

pytestmark = pytest.mark.e2e

AREA = "1 crash"

#: (crash point, what it is); `ID` is the app's name. All are on every sync's path.
POINTS = [
    ("before:RunCommand", "before the pending marker"),
    ("pending:stamp", "after the pending marker, before the command"),
    ("upload", "mid-upload of the release"),
    ("write:/etc/ID/ID.conf", "mid-write of the config (temp file full, not renamed)"),
    ("after:SwitchRelease", "after the release switch"),
    ("after:PruneFile", "during prune"),
    ("synced", "after a verified sync, before the status write"),
    ("ran:stamp", "after the command, before its done marker"),
    ("after:RestartService", "after a service restart"),
    ("before:WriteInventory:2", "before the inventory is written"),
    ("sigkill", "SIGKILL from outside at a random moment"),
]
QUICK = [
    "before:RunCommand",
    "pending:stamp",
    "upload",
    "after:SwitchRelease",
    "after:PruneFile",
    "synced",
]


@pytest.fixture
def app(tmp_path: Path, chaos_vms: list[VM]) -> Iterator[ChaosApp]:
    a = ChaosApp(tmp_path)
    yield a
    bed.parallel(a.cleanup_vm, chaos_vms)
    a.repo.remove()


@pytest.mark.timeout(bed.scale(600, 3600))
def test_chaos_crash_at_any_point_during_a_rollout(
    chaos_namespace: str, chaos_vms: list[VM], app: ChaosApp, tmp_path: Path
) -> None:
    ns = chaos_namespace
    # make test: 10 VMs in 2 batches; make chaos: all 20 in 4 batches.
    vms = chaos_vms[: bed.scale(10, len(chaos_vms))]
    trials = bed.scale(len(QUICK), 33)
    rng = random.Random(8)
    schedule = QUICK if not bed.FULL else [POINTS[i % len(POINTS)][0] for i in range(trials)]
    label = {"chaos": ns}
    bed.apply([bed.ssh_secret(ns, vms[0]), *(bed.target(ns, vm, label) for vm in vms)])
    # The hook is armed through a file, so one operator start per trial suffices.
    crash_file = tmp_path / "crash-at"
    op = bed.Operator([ns], label="chaos-crash", env={"VMGITOPS_CRASH_FILE": str(crash_file)})
    try:
        rev = app.commit(0, "b")
        bed.apply(
            app.application(
                ns,
                label,
                strategy={
                    "type": "Rolling",
                    "rolling": {"maxUnavailable": 5, "maxFailures": 10},
                },
            )
        )
        op.start()
        wait_converged(ns, app, rev, vms, op)
        results: list[dict[str, object]] = []
        for i, point in enumerate(schedule):
            # Spread the victims over the batches (5 VMs each).
            victim = vms[(i * 7 + 2) % len(vms)]
            rev, row = trial(ns, app, vms, op, rev, i + 1, point, victim, rng, crash_file)
            results.append(row)
        report(results, len(vms))
        # A graceful stop (SIGTERM) while probes are in flight must not flip any target.
        time.sleep(2)
        op.stop()
        flipped = [
            t["metadata"]["name"]
            for t in bed.get_all("vmt", ns)
            if "pool is closed" in str(t.get("status"))
        ]
        figures.count(AREA, "targets flipped to Reachable=False by a graceful stop", len(flipped))
        assert not flipped, flipped
    finally:
        op.stop()
        print(f"\noperator log: {op.log_path}")


def trial(
    ns: str,
    app: ChaosApp,
    vms: list[VM],
    op: bed.Operator,
    old: Revision,
    version: int,
    point: str,
    victim: VM,
    rng: random.Random,
    crash_file: Path,
) -> tuple[Revision, dict[str, object]]:
    started = time.monotonic()
    assert op.alive()
    if point != "sigkill":
        crash_file.write_text(point.replace("ID", app.name) + f"@{victim.name}")
    new = app.commit(version, "a" if version % 2 else "b")
    bed.kubectl("-n", ns, "annotate", "--overwrite", "vmapp", app.name, "vmgitops.io/refresh=now")
    if point == "sigkill":
        # Wait for the rollout to be under way (a VM at the new revision), then kill.
        bed.eventually(
            lambda: any(app.classify(vm, app.snapshot(vm), old, new) != "old" for vm in vms[:10]),
            timeout=120,
            interval=0.2,
            what="the rollout to start",
        )
        time.sleep(rng.uniform(0, 3))
        op.kill()
        code: int | None = -9
    else:
        code = op.wait_exit(timeout=180)
        crash_file.write_text("")
    assert code is not None, f"{point}: the operator never reached the crash point"
    assert code in (137, -9), f"{point}: the operator exited {code}:\n{op.log()[-3000:]}"
    crashed_at = time.monotonic() - started
    # What the VMs hold right after the crash: every managed file old or new, whole.
    # (An apply that outlived its operator may still finish; look again after it has.)
    time.sleep(0.5)
    snaps = bed.parallel(app.snapshot, vms)
    states = {vm.name: app.classify(vm, snaps[vm.name], old, new) for vm in vms}
    neither = {n: s for n, s in states.items() if s.startswith("neither")}
    twice_at_crash = sum(
        1 for s in snaps.values() if app.stamp_counts(s).get(f"v{new.version}", 0) > 1
    )
    # Restart without the hook: the rollout resumes from status and the VMs' records.
    op.start()
    human = wait_converged(ns, app, new, vms, op)
    snaps = bed.parallel(app.snapshot, vms)
    final = {vm.name: app.classify(vm, snaps[vm.name], old, new) for vm in vms}
    runs = {n: app.stamp_counts(s).get(f"v{new.version}", 0) for n, s in snaps.items()}
    twice = {n: c for n, c in runs.items() if c > 1 and n not in human}
    never = {n: c for n, c in runs.items() if c == 0}
    row: dict[str, object] = {
        "point": point,
        "victim": victim.name,
        "states": sorted(set(states.values())),
        "neither": neither,
        "twice": twice_at_crash + len(twice),
        "never": never,
        "human": human,
        "converged": all(s == "new" for s in final.values()) and not never,
        "seconds": round(time.monotonic() - started, 1),
        "crash_after": round(crashed_at, 1),
    }
    print(
        f"\n{point:28} on {victim.name}: died after {crashed_at:5.1f}s; VMs "
        f"{','.join(sorted(set(states.values())))}; neither={len(neither)} "
        f"twice={row['twice']} human={sorted(human)} converged={row['converged']} "
        f"in {row['seconds']}s"
    )
    return new, row


def wait_converged(
    ns: str, app: ChaosApp, rev: Revision, vms: list[VM], op: bed.Operator
) -> dict[str, str]:
    """Until the app is Synced and Healthy at `rev` with its operation Succeeded.

    A command whose outcome is unknown (a crash between its pending marker and its done
    marker) stops that VM for a human: the test does what the condition message says
    (look at the VM, delete the pending marker, ask for a sync) and records it.
    """
    human: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert op.alive(), f"the operator died:\n{op.log()[-3000:]}"
        status = app_status(ns, app.name)
        if converged(status, rev, len(vms)):
            return human
        for name, message in target_messages(ns, app.name).items():
            if "CommandOutcomeUnknown" in message and name not in human:
                vm = next(v for v in vms if v.name == name)
                ran = f"v{rev.version}" in app.stamp_counts(app.snapshot(vm))
                human[name] = "ran" if ran else "did not run"
                bed.vm_sh(vm, f"rm -f {app.pending_marker_path(ns)}")
                bed.kubectl(
                    "-n", ns, "annotate", "--overwrite", "vmapp", app.name, "vmgitops.io/sync=now"
                )
        time.sleep(1)
    raise AssertionError(
        f"not converged at {rev.sha[:12]} after 300s:\n{dump(app_status(ns, app.name))}\n"
        f"targets: {target_messages(ns, app.name)}"
    )


def report(results: list[dict[str, object]], vm_count: int) -> None:
    neither = sum(len(r["neither"]) for r in results)  # type: ignore[arg-type]
    twice = sum(int(r["twice"]) for r in results)  # type: ignore[call-overload]
    done = sum(1 for r in results if r["converged"])
    human = sum(len(r["human"]) for r in results)  # type: ignore[arg-type]
    points = sorted({str(r["point"]) for r in results})
    figures.at_least(
        AREA, f"trials (SIGKILLed rollouts over {vm_count} VMs)", len(results), bed.scale(6, 30)
    )
    figures.at_least(AREA, "distinct crash points", len(points), 6)
    figures.count(AREA, "VMs whose files match neither old nor new revision", neither)
    figures.count(AREA, "commands run twice by the operator", twice)
    figures.percent(AREA, "rollouts converged after restart", done, len(results))
    figures.record(
        AREA,
        "VMs stopped for a human (CommandOutcomeUnknown)",
        human,
        "informative",
        True,
    )
    bad = [r for r in results if r["neither"] or r["twice"] or not r["converged"]]
    assert not bad, dump(bad)
