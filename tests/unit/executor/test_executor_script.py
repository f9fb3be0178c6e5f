"""The real apply script, run by this machine's shells on temporary directories.

Everything but systemd and package managers (covered against fleet VMs): atomic files,
directories, releases, commands and their markers, prune, the lock and the fence.
The engine drives it exactly as over SSH, through a Runner that runs argv locally.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localrunner import LocalRunner

from vmgitops.engine import EngineOptions, TargetResult, observe_target, sync_target
from vmgitops.executor import ApplyOptions, apply_plan
from vmgitops.executor.ops import compile_steps, stage_tar
from vmgitops.facts.observe import parse_observation
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.render import render
from vmgitops.plan import compute_plan
from vmgitops.transport.base import CommandResult

SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)] or ["sh"]
KEY = "ns_app"
TARGET = TargetInfo("local", "127.0.0.1")
ROOT = Path(__file__).resolve().parents[3]


class Bed:
    """An app folder, a pretend VM root and a state root, all under tmp_path."""

    def __init__(self, tmp: Path, shell: str = "dash") -> None:
        self.app = tmp / "app"
        self.vm = tmp / "vm"
        self.state = tmp / "state"
        self.app.mkdir()
        self.vm.mkdir()
        self.runner = LocalRunner(shell)
        self.opts = EngineOptions(state_root=str(self.state), settle_seconds=0)

    def p(self, rel: str) -> str:
        return f"{self.vm}/{rel}"

    def write_app(self, manifest: str, files: dict[str, str] | None = None) -> None:
        (self.app / "vmapp.yaml").write_text(manifest.replace("@", str(self.vm)))
        for rel, text in (files or {}).items():
            path = self.app / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755 if "/bin/" in f"/{rel}" else 0o644)

    def sync(
        self, revision: str = "rev1", *, generation: int = 1, prune: bool = True, **kw: Any
    ) -> TargetResult:
        opts = EngineOptions(**{**self.opts.__dict__, **kw})
        return asyncio.run(
            sync_target(
                self.runner,
                app_key=KEY,
                generation=generation,
                revision=revision,
                app=load_app(self.app),
                params={"greeting": "hello"},
                target=TARGET,
                facts={},
                prune=prune,
                options=opts,
            )
        )

    def marker(self, name: str) -> str | None:
        path = self.state / KEY / "markers" / name
        return path.read_text() if path.exists() else None

    def log_lines(self) -> list[str]:
        log = self.vm / "log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(params=SHELLS)
def bed(request: pytest.FixtureRequest, tmp_path: Path) -> Bed:
    return Bed(tmp_path, str(request.param))


@pytest.fixture
def dash(tmp_path: Path) -> Bed:
    return Bed(tmp_path, SHELLS[0])


APP = """
files:
  - {path: "@/etc/hello.conf", content: "greeting={{ params.greeting }}\\n", template: true,
     mode: "0640"}
  - {path: "@/etc/odd name 'q' $(touch pwned) `x` caf\u00e9", content: "odd\\n"}
  - {path: "@/etc/token", content: "t0ken-value-123\\n", sensitive: true, mode: "0600"}
directories:
  - {path: "@/var/data", mode: "0750"}
release: {path: "@/opt/app", source: dist, keep: 2}
commands:
  - {name: migrate, run: ["sh", "-c", "echo migrate $0 >> @/log", "arg $(x)"],
     onChange: [release]}
  - {name: seed, run: ["sh", "-c", "echo seed >> @/log; touch @/var/data/.seeded"],
     creates: "@/var/data/.seeded"}
"""


def dist(version: str) -> dict[str, str]:
    return {"dist/bin/run": f"#!/bin/sh\necho {version}\n", "dist/README": "readme\n"}


def stat_of(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_mode & 0o7777


def test_first_apply_converges_and_a_second_changes_nothing(bed: Bed) -> None:
    bed.write_app(APP, dist("v1"))
    first = bed.sync()
    assert first.error is None, first.message
    assert [s.status for s in first.steps] == ["ok"] * len(first.steps)
    assert first.sync == "Synced" and first.deployed_revision == "rev1"
    assert Path(bed.p("etc/hello.conf")).read_text() == "greeting=hello\n"
    assert stat_of(bed.p("etc/hello.conf"))[2] == 0o640
    assert Path(bed.p("etc/odd name 'q' $(touch pwned) `x` caf\u00e9")).read_text() == "odd\n"
    assert not (Path.cwd() / "pwned").exists() and not Path("/pwned").exists()
    assert stat_of(bed.p("var/data"))[2] == 0o750
    assert os.readlink(bed.p("opt/app/current")) == "releases/rev1"
    run = Path(bed.p("opt/app/current/bin/run"))
    assert run.read_text() == "#!/bin/sh\necho v1\n" and os.access(run, os.X_OK)
    assert bed.log_lines() == ["migrate arg $(x)", "seed"]
    assert bed.marker("fence") == "v1 1 1 rev1 applied\n"
    assert bed.marker("pending.migrate") is None
    assert json.loads((bed.state / KEY / "inventory.json").read_text())["files"]
    assert "t0ken" not in json.dumps(first.to_dict())

    before = {p: stat_of(p) for p in (bed.p("etc/hello.conf"), bed.p("etc/token"))}
    second = bed.sync()
    assert second.plan is not None and second.plan.in_sync
    assert not second.applied and second.steps == ()
    assert (second.round_trips, second.commands) == (1, 1)
    assert {p: stat_of(p) for p in before} == before
    assert bed.log_lines() == ["migrate arg $(x)", "seed"]
    assert bed.marker("fence") == "v1 1 1 rev1 applied\n"


def test_a_file_edited_by_hand_is_the_only_step(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    assert dash.sync().ok
    Path(dash.p("etc/hello.conf")).write_text("greeting=tampered\n")
    result = dash.sync()
    assert [s.kind for s in result.steps] == ["WriteFile"]
    assert result.steps[0].subject == dash.p("etc/hello.conf")
    assert "-greeting=tampered" in (result.plan.describe(diffs=True) if result.plan else "")
    assert Path(dash.p("etc/hello.conf")).read_text() == "greeting=hello\n"
    assert result.sync == "Synced" and result.round_trips == 2


def test_a_mode_change_keeps_the_inode(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    dash.sync()
    before = stat_of(dash.p("etc/hello.conf"))
    os.chmod(dash.p("etc/hello.conf"), 0o666)
    result = dash.sync()
    assert [s.description for s in result.steps] == [
        f"fix mode/owner of {dash.p('etc/hello.conf')} (0640)"
    ]
    after = stat_of(dash.p("etc/hello.conf"))
    assert after[0] == before[0] and after[2] == 0o640


def test_release_switch_and_rollback(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    dash.sync("rev1")
    dash.write_app(APP, dist("v2"))
    second = dash.sync("rev2")
    assert [s.kind for s in second.steps] == [
        "WriteInventory",
        "UploadRelease",
        "SwitchRelease",
        "RunCommand",
        "WriteInventory",
    ]
    assert os.readlink(dash.p("opt/app/current")) == "releases/rev2"
    assert sorted(os.listdir(dash.p("opt/app/releases"))) == ["rev1", "rev2"]
    # Rolling back to rev1's content switches back without an upload (it is still there).
    dash.write_app(APP, dist("v1"))
    back = dash.sync("rev3")
    assert [s.kind for s in back.steps] == ["SwitchRelease", "RunCommand", "WriteInventory"]
    assert os.readlink(dash.p("opt/app/current")) == "releases/rev1"
    assert Path(dash.p("opt/app/current/bin/run")).read_text().endswith("echo v1\n")
    assert dash.log_lines().count("migrate arg $(x)") == 3
    # keep: 2 -> a third distinct release prunes the oldest one that is not current.
    dash.write_app(APP, dist("v3"))
    third = dash.sync("rev4")
    assert third.ok
    assert sorted(os.listdir(dash.p("opt/app/releases"))) == ["rev1", "rev4"]


def test_prune_removes_exactly_what_was_dropped(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    dash.sync()
    Path(dash.p("etc/unmanaged")).write_text("not ours\n")
    Path(dash.p("var/data/user-file")).write_text("data\n")
    smaller = """
files:
  - {path: "@/etc/hello.conf", content: "greeting={{ params.greeting }}\\n", template: true,
     mode: "0640"}
"""
    dash.write_app(smaller)
    kept = dash.sync(prune=False)
    assert kept.steps == () and kept.sync == "OutOfSync"
    assert {r.name for r in kept.resources if r.message == "requires pruning"} >= {
        dash.p("etc/token"),
        dash.p("var/data"),
        dash.p("opt/app"),
    }
    pruned = dash.sync()
    assert pruned.ok and pruned.sync == "Synced", pruned.message
    assert not Path(dash.p("etc/token")).exists()
    assert not Path(dash.p("opt/app")).exists()
    assert Path(dash.p("etc/unmanaged")).read_text() == "not ours\n"
    assert Path(dash.p("var/data/user-file")).exists()  # a non-empty directory stays
    assert Path(dash.p("etc/hello.conf")).exists()
    assert [s.message for s in pruned.steps if s.kind == "PruneDirectory"] == [
        "not empty, left in place"
    ]


def test_a_failing_command_stops_the_apply_and_runs_again_next_time(dash: Bed) -> None:
    dash.write_app(
        """
files:
  - {path: "@/etc/a", content: "a\\n"}
commands:
  - {name: flaky, run: ["sh", "-c", "echo try >> @/log; test -e @/ok || exit 3"]}
  - {name: after, run: ["sh", "-c", "echo after >> @/log"]}
"""
    )
    failed = dash.sync()
    assert failed.error is not None and failed.error.reason == "StepFailed"
    statuses = {s.subject: s.status for s in failed.steps}
    assert statuses["flaky"] == "failed" and statuses["after"] == "skipped"
    assert "exit 3" in failed.steps[[s.subject for s in failed.steps].index("flaky")].message
    assert dash.marker("pending.flaky") is None  # the outcome is known: it failed
    assert (dash.marker("fence") or "").endswith(" failed\n")
    Path(dash.p("ok")).touch()
    fixed = dash.sync()
    assert fixed.ok and fixed.sync == "Synced"
    assert dash.log_lines() == ["try", "try", "after"]


def test_sensitive_content_printed_by_a_command_is_hidden(dash: Bed) -> None:
    dash.write_app(
        """
files:
  - {path: "@/etc/token", content: "t0ken-value-123\\n", sensitive: true}
commands:
  - {name: leak, run: ["sh", "-c", "cat @/etc/token; exit 1"]}
"""
    )
    result = dash.sync()
    leak = next(s for s in result.steps if s.subject == "leak")
    assert leak.status == "failed" and "(hidden)" in leak.output
    assert "t0ken" not in json.dumps(result.to_dict())


def test_a_command_killed_by_its_timeout_keeps_its_pending_marker(dash: Bed) -> None:
    dash.write_app(
        """
commands:
  - {name: slow, run: ["sh", "-c", "echo slow >> @/log; sleep 30"], timeoutSeconds: 1}
"""
    )
    first = dash.sync()
    slow = next(s for s in first.steps if s.subject == "slow")
    assert slow.status == "failed" and "outcome unknown" in slow.message
    assert dash.marker("pending.slow") is not None
    again = dash.sync()
    assert not again.applied and [i.reason for i in again.blocking_issues] == [
        "CommandOutcomeUnknown"
    ]
    assert dash.log_lines() == ["slow"]


def test_an_older_generation_is_refused(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    assert dash.sync(generation=5).ok
    dash.write_app(APP.replace("0640", "0600"), dist("v1"))
    old = dash.sync(generation=4)
    assert not old.applied and [i.reason for i in old.blocking_issues] == ["StaleGeneration"]
    assert stat_of(dash.p("etc/hello.conf"))[2] == 0o640
    # The VM side refuses too, under the lock, even if a caller skipped the check.
    app = load_app(dash.app)
    desired = render(app, {"greeting": "hello"}, TARGET, {}, "rev1")
    observed = _observe(dash, desired)
    plan = compute_plan(desired, observed, prune=True)
    result = asyncio.run(
        apply_plan(
            dash.runner,
            plan,
            app_key=KEY,
            generation=4,
            revision="rev1",
            expected_serial=1,
            options=ApplyOptions(str(dash.state)),
        )
    )
    assert result.error is not None and result.error.reason == "StaleGeneration"
    assert not result.error.retryable and {o.status for o in result.outcomes} == {"skipped"}


def _observe(bed: Bed, desired: Any) -> Any:
    from vmgitops.engine import observe_request

    req = observe_request(desired, KEY, {}, str(bed.state))
    out = subprocess.run(req.argv(), input=req.stdin(), capture_output=True, check=True)
    return parse_observation(out.stdout)


def test_a_plan_from_a_stale_observation_is_refused(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    app = load_app(dash.app)
    desired = render(app, {"greeting": "hello"}, TARGET, {}, "rev1")
    plan = compute_plan(desired, _observe(dash, desired), prune=True)
    assert dash.sync().ok  # someone else applies after our observation
    result = asyncio.run(
        apply_plan(
            dash.runner,
            plan,
            app_key=KEY,
            generation=1,
            revision="rev1",
            expected_serial=0,
            options=ApplyOptions(str(dash.state)),
        )
    )
    assert result.error is not None and result.error.reason == "ChangedSinceObserved"
    assert result.error.retryable
    assert dash.log_lines() == ["migrate arg $(x)", "seed"]


def test_the_engine_replans_once_when_the_vm_changed_under_it(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    assert dash.sync().ok
    Path(dash.p("etc/hello.conf")).write_text("drift\n")
    runner = dash.runner
    real_run = runner.run
    calls = {"n": 0}

    async def racing(argv: Any, **kw: Any) -> CommandResult:
        calls["n"] += 1
        if calls["n"] == 2:  # someone bumps the serial between our observe and apply
            fence = dash.state / KEY / "markers" / "fence"
            fence.write_text("v1 9 1 rev1 applied\n")
        return await real_run(argv, **kw)

    runner.run = racing  # type: ignore[method-assign]
    result = dash.sync()
    assert result.ok and result.sync == "Synced", result.message
    assert dash.marker("fence") == "v1 10 1 rev1 applied\n"


def test_a_held_lock_makes_the_apply_wait_then_give_up(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    dash.state.mkdir(parents=True, exist_ok=True)
    with open(dash.state / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = dash.sync(lock_wait=1)
    assert held.error is not None and held.error.reason == "LockHeld" and held.error.retryable
    assert not Path(dash.p("etc/hello.conf")).exists()
    assert dash.sync().ok  # the kernel let go with the holder


def test_a_cut_content_stream_changes_nothing(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    app = load_app(dash.app)
    desired = render(app, {"greeting": "hello"}, TARGET, {}, "rev1")
    plan = compute_plan(desired, _observe(dash, desired), prune=True)
    batch = compile_steps(plan.steps, state_dir=f"{dash.state}/{KEY}")
    data = stage_tar(batch)
    argv = batch.argv(
        state_root=str(dash.state),
        state_dir=f"{dash.state}/{KEY}",
        generation=1,
        revision="rev1",
        expected_serial=0,
        lock_wait=5,
    )
    # Cut mid-stream (tar notices), and exactly where the ops member starts: tar takes a
    # stream cut at a member boundary for a whole one; the missing ops must not.
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        ops_at = tar.getmember("ops").offset
    for cut in (len(data) // 2, ops_at):
        out = asyncio.run(dash.runner.run(argv, stdin=data[:cut]))
        assert b"UploadIncomplete" in out.stdout, cut
        assert not Path(dash.p("etc")).exists() and not Path(dash.p("opt")).exists()
        assert dash.marker("fence") is None
        assert not (dash.state / KEY / ".stage").exists()


def test_a_big_app_applies_and_observes_through_stdin(dash: Bed) -> None:
    # Many ops and paths, all read from the request stream; the command lines stay the
    # same small size as for one file (an SSH command string is capped at 128 KiB, which
    # about 1,200 files' ops exceeded: tests/chaos/test_chaos_limits.py has the VM side).
    bed = dash
    files = "".join(
        f'  - {{path: "@/etc/many/f{i:04d}.conf", content: "{i}"}}\n' for i in range(300)
    )
    bed.write_app("files:\n" + files)
    first = bed.sync()
    assert first.error is None and first.sync == "Synced", first.message
    assert len(os.listdir(bed.p("etc/many"))) == 300
    assert Path(bed.p("etc/many/f0299.conf")).read_text() == "299"
    # Each command is its script and a few header items, not a list of 300 paths.
    assert all(len(" ".join(c)) < len(c[4]) + 1024 for c in bed.runner.commands)
    again = bed.sync()
    assert again.error is None and again.sync == "Synced" and not again.steps


@pytest.fixture
def job(dash: Bed, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "job.json"
    path.write_text(
        json.dumps(
            {
                "folder": str(dash.app),
                "revision": "rev1",
                "generation": 1,
                "prune": True,
                "appKey": KEY,
                "params": {"greeting": "hello"},
                "ssh": None,
                "stateRoot": str(dash.state),
            }
        )
    )
    yield path


def harness(job: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    env.pop("VMGITOPS_CRASH_AT", None)
    if crash_at:
        env["VMGITOPS_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "vmgitops.engine.crashtest", str(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


class Died(BaseException):
    """What the crash hook raises in-process instead of ending the test run."""


@pytest.fixture
def die_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def die(point: str) -> None:
        raise Died(point)

    monkeypatch.setattr("vmgitops.executor.apply._die", die)


@pytest.mark.parametrize(
    ("crash_at", "unknown", "runs"),
    [
        pytest.param("write:@/etc/hello.conf", False, 0, id="mid-write: no file or the new one"),
        pytest.param("before:RunCommand", False, 0, id="before the pending marker"),
        pytest.param("pending:migrate", True, 0, id="after the pending marker: a human decides"),
        pytest.param("ran:migrate", True, 1, id="after the command, before its done marker"),
        pytest.param("after:SwitchRelease", False, 0, id="after the release switch"),
        pytest.param("after:RunCommand:2", False, 1, id="after the last command"),
        pytest.param("upload", False, 0, id="mid-upload"),
    ],
)
def test_a_crash_leaves_no_half_file_and_no_second_run(
    dash: Bed, die_in_process: None, crash_at: str, unknown: bool, runs: int
) -> None:
    dash.write_app(APP, dist("v1"))
    with pytest.raises(Died):
        dash.sync(crash_at=crash_at.replace("@", str(dash.vm)))
    conf = Path(dash.p("etc/hello.conf"))
    assert not conf.exists() or conf.read_text() == "greeting=hello\n"
    assert dash.log_lines().count("migrate arg $(x)") == runs
    result = dash.sync()
    if unknown:
        # Stopped for a human, and the command did not run a second time.
        assert [i.reason for i in result.issues] == ["CommandOutcomeUnknown"]
        assert not result.applied and result.stalled
        assert dash.log_lines().count("migrate arg $(x)") == runs
        (dash.state / KEY / "markers" / "pending.migrate").unlink()  # the human's decision
        result = dash.sync()
        runs += 1
    runs = max(runs, 1)
    assert result.error is None and result.sync == "Synced", result.message
    assert conf.read_text() == "greeting=hello\n"
    assert dash.log_lines().count("seed") == 1
    assert dash.log_lines().count("migrate arg $(x)") == runs


def test_the_crash_harness_really_dies_with_137(dash: Bed, job: Path) -> None:
    dash.write_app(APP, dist("v1"))
    crashed = harness(job, "pending:migrate")
    assert crashed.returncode == 137, crashed.stderr
    assert dash.marker("pending.migrate") is not None
    after = harness(job)
    assert after.returncode == 0, after.stderr
    result = json.loads(after.stdout)
    assert [i["reason"] for i in result["issues"]] == ["CommandOutcomeUnknown"]
    assert dash.log_lines() == []


def test_observe_target_never_changes_anything(dash: Bed) -> None:
    dash.write_app(APP, dist("v1"))
    result = asyncio.run(
        observe_target(
            dash.runner,
            app_key=KEY,
            revision="rev1",
            app=load_app(dash.app),
            params={"greeting": "hello"},
            target=TARGET,
            facts={},
            prune=True,
            options=dash.opts,
        )
    )
    assert result.sync == "OutOfSync" and not result.applied
    assert result.plan is not None and len(result.plan.steps) > 3
    assert not Path(dash.p("etc")).exists() and not dash.state.exists()


def test_a_pending_marker_of_a_running_apply_is_not_an_unknown_outcome(dash: Bed) -> None:
    dash.write_app(
        """
commands:
  - {name: slow, run: ["sh", "-c", "echo slow >> @/log; sleep 2"]}
"""
    )
    app = load_app(dash.app)

    async def race() -> tuple[TargetResult, TargetResult]:
        kw: dict[str, Any] = {
            "app_key": KEY,
            "revision": "rev1",
            "app": app,
            "params": {},
            "target": TARGET,
            "facts": {},
            "prune": True,
            "options": dash.opts,
        }
        applying = asyncio.ensure_future(sync_target(dash.runner, generation=1, **kw))
        for _ in range(100):
            if dash.marker("pending.slow") is not None:
                break
            await asyncio.sleep(0.05)
        looking = await observe_target(dash.runner, **kw)
        return await applying, looking

    applied, looked = asyncio.run(race())
    assert looked.error is not None and looked.error.reason == "ApplyInProgress"
    assert looked.error.retryable and not looked.stalled
    assert [i.reason for i in looked.issues] == ["ApplyInProgress"]
    assert applied.ok and applied.sync == "Synced", applied.message
    assert dash.log_lines() == ["slow"]


def test_a_very_long_file_name_still_gets_an_atomic_write(dash: Bed) -> None:
    name = "n" * 250
    dash.write_app(f'files:\n  - {{path: "@/etc/{name}", content: "long\\n"}}\n')
    result = dash.sync()
    assert result.ok, result.message
    assert Path(dash.p(f"etc/{name}")).read_text() == "long\n"


def test_render_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vmgitops.cli.main import main

    (tmp_path / "vmapp.yaml").write_text(
        'files:\n  - {path: /etc/x, content: "hi {{ params.who }}\\n", template: true}\n'
    )
    assert main(["render", str(tmp_path), "--param", "who=bob"]) == 0
    assert "hi bob" in capsys.readouterr().out
    assert main(["render", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: TemplateError: vmapp.yaml: files[0]")
    assert main(["render", str(tmp_path), "-p", "novalue"]) == 2
