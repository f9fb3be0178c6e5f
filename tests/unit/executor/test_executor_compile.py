"""Steps -> apply-script ops, the content stream, and reading outcomes back. Pure."""

from __future__ import annotations

import io
import tarfile

import pytest

from vmgitops.executor.ops import (
    OP_SECONDS,
    CrashPoint,
    compile_steps,
    parse_crash_point,
    stage_tar,
)
from vmgitops.executor.outcome import (
    APPLY_INTERRUPTED,
    STEP_FAILED,
    Scrubber,
    parse_partial,
    read_run,
)
from vmgitops.facts.records import request_stream
from vmgitops.manifest.desired import ReleaseFile
from vmgitops.plan.steps import (
    DaemonReload,
    DisableService,
    EnableService,
    EnsureDirectory,
    InstallPackage,
    PruneDirectory,
    PruneFile,
    PruneReleases,
    PruneUnit,
    RemovePackage,
    RestartService,
    RunCommand,
    StartService,
    Step,
    StopService,
    SwitchRelease,
    UploadRelease,
    WriteFile,
    WriteInventory,
    WriteUnit,
)

STATE = "/var/lib/vmgitops/ns_app"
REL = UploadRelease(
    "/opt/app",
    "rev1",
    "d" * 64,
    (ReleaseFile("bin/run", 0o755, b"#!/bin/sh\n"), ReleaseFile("README", 0o644, b"hi\n")),
    ("bin",),
)


@pytest.mark.parametrize(
    ("step", "ops"),
    [
        pytest.param(
            WriteInventory(b"{}", final=False),
            ["write", "0", "f0", f"{STATE}/inventory.json", "0600", "", ""],
            id="the inventory is a staged file in the state dir, root-only",
        ),
        pytest.param(
            WriteFile("/etc/a b", b"x", "s", 0o640, "www-data", None),
            ["write", "0", "f0", "/etc/a b", "0640", "www-data", ""],
            id="a file's path, mode and owner travel as argv items",
        ),
        pytest.param(
            WriteFile("/etc/a", b"x", "s", 0o600, None, "adm", content_changed=False),
            ["meta", "0", "/etc/a", "0600", "", "adm"],
            id="a metadata-only change touches the inode in place",
        ),
        pytest.param(
            WriteFile("/etc/a", b"x", "s", restarts=("web.service", "api.service")),
            [
                *["unmark", "0", "restart.web.service"],
                *["unmark", "0", "restart.api.service"],
                *["write", "0", "f0", "/etc/a", "0644", "", ""],
            ],
            id="restart markers of the units it feeds go before the write",
        ),
        pytest.param(
            WriteUnit(
                "web.service", "/etc/systemd/system/web.service", b"[Service]\n", ("web.service",)
            ),
            [
                *["unmark", "0", "restart.web.service"],
                *["write", "0", "f0", "/etc/systemd/system/web.service", "0644", "", ""],
            ],
            id="a unit file is written like a file, 0644",
        ),
        pytest.param(
            EnsureDirectory("/srv/d", 0o2750, "app", "app"),
            ["mkdir", "0", "/srv/d", "2750", "app", "app"],
            id="directory with setgid mode",
        ),
        pytest.param(
            InstallPackage(("curl", "jq"), "apt"),
            ["pkg", "0", "apt", "install", "2", "curl", "jq"],
            id="packages: manager, action, counted names",
        ),
        pytest.param(
            RemovePackage(("jq",), "apk"),
            ["pkg", "0", "apk", "remove", "1", "jq"],
            id="package removal",
        ),
        pytest.param(
            PruneUnit("old.service", "/etc/systemd/system/old.service"),
            ["pruneunit", "0", "old.service", "/etc/systemd/system/old.service", "1"],
            id="a unit that left the manifest is stopped first",
        ),
        pytest.param(DaemonReload(), ["sysd", "0", "daemon-reload", "-"], id="daemon-reload"),
        pytest.param(
            REL, ["upload", "0", "/opt/app", "rev1", "r"], id="a release comes from the r/ member"
        ),
        pytest.param(
            SwitchRelease("/opt/app", "rev1"), ["switch", "0", "/opt/app", "rev1"], id="switch"
        ),
        pytest.param(
            PruneReleases("/opt/app", ("a", "b"), remove_current=True),
            ["prunerel", "0", "/opt/app", "1", "2", "a", "b"],
            id="release prune: listed ids only",
        ),
        pytest.param(
            RunCommand("migrate", ("/bin/m", "--yes", "$(x)"), 30, False, "t" * 8),
            ["cmd", "0", "migrate", "30", "0", "t" * 8, "3", "/bin/m", "--yes", "$(x)"],
            id="a command's argv is counted, never joined",
        ),
        pytest.param(
            EnableService("web.service"), ["sysd", "0", "enable", "web.service"], id="enable"
        ),
        pytest.param(
            DisableService("web.service"), ["sysd", "0", "disable", "web.service"], id="disable"
        ),
        pytest.param(StopService("web.service"), ["sysd", "0", "stop", "web.service"], id="stop"),
        pytest.param(
            StartService("web.service", marker_digest="m1"),
            [*["sysd", "0", "start", "web.service"], *["mark", "0", "restart.web.service", "m1"]],
            id="a start records the restart marker after it",
        ),
        pytest.param(
            RestartService("web.service", marker_digest=None),
            ["sysd", "0", "restart", "web.service"],
            id="a restart without inputs records nothing",
        ),
        pytest.param(PruneFile("/etc/old"), ["rmfile", "0", "/etc/old"], id="prune a file"),
        pytest.param(PruneDirectory("/srv/old"), ["rmdir", "0", "/srv/old"], id="prune a dir"),
    ],
)
def test_each_step_compiles_to_ops(step: Step, ops: list[str]) -> None:
    batch = compile_steps([step], state_dir=STATE)
    assert batch.ops == ops
    names = {
        "write",
        "meta",
        "mkdir",
        "mark",
        "unmark",
        "sysd",
        "pruneunit",
        "pkg",
        "upload",
        "switch",
        "prunerel",
        "cmd",
        "rmfile",
        "rmdir",
    }
    assert batch.op_count == {
        0: sum(1 for i, x in enumerate(ops) if x in names and ops[i + 1 : i + 2] == ["0"])
    }


def test_the_argv_header_and_staging() -> None:
    steps = [WriteFile("/etc/a", b"A", "s"), REL, SwitchRelease("/opt/app", "rev1")]
    batch = compile_steps(steps, state_dir=STATE)
    argv = batch.argv(
        state_root="/var/lib/vmgitops",
        state_dir=STATE,
        generation=3,
        revision="abc",
        expected_serial=7,
        lock_wait=30,
    )
    assert argv[:4] == ["env", "LC_ALL=C", "sh", "-c"]
    assert argv[5:] == ["vmgitops-apply", "/var/lib/vmgitops", STATE, "3", "abc", "7", "30", ""]
    assert batch.op_count == {0: 1, 1: 1, 2: 1}
    with tarfile.open(fileobj=io.BytesIO(stage_tar(batch))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert [m.name for m in tar.getmembers()][-1] == "ops"  # last: see script.py
        assert sorted(members) == ["f0", "ops", "r", "r/README", "r/bin", "r/bin/run"]
        ops = tar.extractfile("ops")
        assert ops is not None and ops.read() == request_stream(batch.ops)
        assert members["r/bin/run"].mode == 0o755 and members["r/README"].mode == 0o644
        assert members["f0"].mode == 0o600 and members["r"].isdir()
        f0 = tar.extractfile("f0")
        assert f0 is not None and f0.read() == b"A"


def test_the_command_line_does_not_grow_with_the_plan() -> None:
    # sshd passes the command as ONE argument, capped at 128 KiB by Linux: the ops of a
    # big plan must travel on stdin, never on the command line.
    def argv_of(n: int) -> list[str]:
        steps = [WriteFile(f"/etc/app/f{i:05d}.conf", b"x", "s") for i in range(n)]
        return compile_steps(steps, state_dir=STATE).argv(
            state_root="/r",
            state_dir="/r/x",
            generation=1,
            revision="r",
            expected_serial=0,
            lock_wait=1,
        )

    assert argv_of(1) == argv_of(5000)
    with tarfile.open(fileobj=io.BytesIO(stage_tar(compile_steps([], state_dir=STATE)))) as tar:
        assert tar.getnames() == ["ops"]  # nothing to stage: still the (empty) ops


def test_the_deadline_covers_commands_packages_and_bytes() -> None:
    steps = [
        RunCommand("a", ("x",), 100, False, "d"),
        InstallPackage(("curl",), "apt"),
        WriteFile("/big", b"x" * 5_000_000, "s"),
    ]
    batch = compile_steps(steps, state_dir=STATE)
    assert batch.timeout == pytest.approx(60 + 110 + 900 + 5 + 3 * OP_SECONDS)


@pytest.mark.parametrize(
    ("text", "point"),
    [
        pytest.param(
            "before:RunCommand", CrashPoint("before", "RunCommand", 1), id="before, first"
        ),
        pytest.param("after:PruneFile:2", CrashPoint("after", "PruneFile", 2), id="after the 2nd"),
        pytest.param("write:/etc/a", CrashPoint("inline", inline="write:/etc/a"), id="mid-write"),
        pytest.param(
            "pending:migrate",
            CrashPoint("inline", inline="pending:migrate"),
            id="after the pending marker",
        ),
        pytest.param("upload", CrashPoint("upload"), id="mid-upload"),
    ],
)
def test_crash_points(text: str, point: CrashPoint) -> None:
    assert parse_crash_point(text) == point


@pytest.mark.parametrize("text", ["before:Nope", "sideways:x", "write:", "pending"])
def test_unknown_crash_points_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_crash_point(text)


def test_crash_ops_land_around_the_chosen_step() -> None:
    steps = [PruneFile("/a"), PruneFile("/b"), PruneFile("/c")]
    batch = compile_steps(steps, state_dir=STATE, crash=parse_crash_point("after:PruneFile:1"))
    assert batch.ops == [
        *["rmfile", "0", "/a"],
        *["crash", "after:PruneFile:1"],
        *["rmfile", "1", "/b"],
        *["rmfile", "2", "/c"],
    ]


def rec(tag: str, *fields: str) -> bytes:
    out = f"{tag} {len(fields)}\n".encode()
    for f in fields:
        b = f.encode()
        out += f"{len(b)}:".encode() + b + b"\n"
    return out


STEPS3: list[Step] = [WriteFile("/a", b"1", "s"), WriteFile("/b", b"2", "s"), PruneFile("/c")]


@pytest.mark.parametrize(
    ("stdout", "statuses", "reason"),
    [
        pytest.param(
            rec("begin")
            + rec("locked", "4")
            + rec("op", "0", "ok", "written", "")
            + rec("op", "1", "ok", "written", "")
            + rec("op", "2", "ok", "removed", "")
            + rec("end"),
            ["ok", "ok", "ok"],
            None,
            id="all steps reported ok",
        ),
        pytest.param(
            rec("begin")
            + rec("locked", "4")
            + rec("op", "0", "ok", "written", "")
            + rec("op", "1", "failed", "cannot write /b: disk full", "")
            + rec("stopped")
            + rec("end"),
            ["ok", "failed", "skipped"],
            STEP_FAILED,
            id="a failure stops the batch: later steps are skipped",
        ),
        pytest.param(
            rec("begin") + rec("abort", "LockHeld", "another apply holds it") + rec("end"),
            ["skipped", "skipped", "skipped"],
            "LockHeld",
            id="an abort applies nothing",
        ),
        pytest.param(
            rec("begin") + rec("locked", "4") + rec("op", "0", "ok", "written", "") + b"op 4\n3:1",
            ["ok", "unknown", "unknown"],
            APPLY_INTERRUPTED,
            id="output cut short: unreported steps are unknown, not skipped",
        ),
        pytest.param(
            rec("begin") + rec("locked", "4") + rec("crash", "before:WriteFile:2"),
            ["unknown", "unknown", "unknown"],
            APPLY_INTERRUPTED,
            id="a crash before any report",
        ),
    ],
)
def test_reading_outcomes(stdout: bytes, statuses: list[str], reason: str | None) -> None:
    batch = compile_steps(STEPS3, state_dir=STATE)
    run = read_run(stdout, b"", 0, STEPS3, batch, Scrubber([]))
    assert [o.status for o in run.outcomes] == statuses
    assert (run.error.reason if run.error else None) == reason


def test_stale_generation_is_not_retryable_but_a_held_lock_is() -> None:
    batch = compile_steps(STEPS3, state_dir=STATE)
    stale = read_run(
        rec("abort", "StaleGeneration", "x") + rec("end"), b"", 0, STEPS3, batch, Scrubber([])
    )
    held = read_run(rec("abort", "LockHeld", "x") + rec("end"), b"", 0, STEPS3, batch, Scrubber([]))
    assert stale.error is not None and not stale.error.retryable
    assert held.error is not None and held.error.retryable


def test_sensitive_content_never_reaches_a_message() -> None:
    secret = b"password=hunter2-very-secret\nuser=admin\n"
    scrub = Scrubber([secret])
    steps: list[Step] = [RunCommand("leak", ("cat", "/etc/s"), 5, False, "d")]
    batch = compile_steps(steps, state_dir=STATE)
    out = rec("op", "0", "failed", "exit 1", "line password=hunter2-very-secret\nuser=admin")
    run = read_run(
        rec("locked", "1") + out + rec("stopped") + rec("end"), b"", 0, steps, batch, scrub
    )
    assert "hunter2" not in run.outcomes[0].output
    assert "user=admin" not in run.outcomes[0].output
    assert "(hidden)" in run.outcomes[0].output


def test_partial_records() -> None:
    records, complete = parse_partial(rec("a", "1") + rec("b") + b"c 2\n1:x\n")
    assert [r.tag for r in records] == ["a", "b"] and not complete
    records, complete = parse_partial(rec("a") + rec("end") + b"garbage")
    assert [r.tag for r in records] == ["a"] and complete
