"""The real resolve script (executor.resolve), run by this machine's shells on temporary
state directories: every starting state of the markers, every mode, and the VM lock."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import pytest
from localrunner import LocalRunner

from vmgitops.engine.resolve import resolve_command
from vmgitops.executor.resolve import parse_resolve_output, resolve_argv
from vmgitops.facts.records import MalformedOutput
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.plan.resolution import DEFERRED, REFUSED, RESOLVED, parse_resolve

SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)] or ["sh"]
KEY = "ns_app"

# (markers before, mode, digest) -> (status, markers after); None: absent.
CASES = [
    pytest.param(
        {"pending.m": "started x", "done.m": "old"},
        "ran",
        "new",
        ("resolved", {"pending.m": None, "done.m": "new\n"}),
        id="ran-replaces-pending-with-done-at-the-digest",
    ),
    pytest.param(
        {"pending.m": "started x"},
        "ran",
        "new",
        ("resolved", {"pending.m": None, "done.m": "new\n"}),
        id="ran-of-a-first-run",
    ),
    pytest.param(
        {"pending.m": "started x", "done.m": "new\n"},
        "ran",
        "new",
        ("resolved", {"pending.m": None, "done.m": "new\n"}),
        id="ran-finishes-after-a-crash-between-its-two-steps",
    ),
    pytest.param(
        {"done.m": "new\n"},
        "ran",
        "new",
        ("already", {"pending.m": None, "done.m": "new\n"}),
        id="ran-again-changes-nothing",
    ),
    pytest.param(
        {"done.m": "old\n"},
        "ran",
        "new",
        ("nopending", {"pending.m": None, "done.m": "old\n"}),
        id="ran-without-a-pending-run-is-refused-and-changes-nothing",
    ),
    pytest.param(
        {"pending.m": "started x", "done.m": "old\n"},
        "rerun",
        "",
        ("resolved", {"pending.m": None, "done.m": None}),
        id="rerun-forgets-the-run-and-its-record",
    ),
    pytest.param(
        {},
        "rerun",
        "",
        ("already", {"pending.m": None, "done.m": None}),
        id="rerun-again-changes-nothing",
    ),
    pytest.param(
        {"done.m": "old\n"},
        "rerun",
        "",
        ("nopending", {"pending.m": None, "done.m": "old\n"}),
        id="rerun-of-a-command-that-completed-is-refused",
    ),
    pytest.param(
        {"pending.m": "started x", "done.m": "old\n"},
        "forget",
        "",
        ("resolved", {"pending.m": None, "done.m": "old\n"}),
        id="forget-clears-only-the-pending-marker",
    ),
    pytest.param(
        {"done.m": "old\n"},
        "forget",
        "",
        ("nopending", {"pending.m": None, "done.m": "old\n"}),
        id="forget-without-pending",
    ),
]


def _markers(state: Path) -> Path:
    return state / KEY / "markers"


def _read(markers: Path, name: str) -> str | None:
    p = markers / name
    return p.read_text() if p.exists() else None


async def _run(shell: str, state: Path, mode: str, digest: str, wait: float = 5) -> tuple[str, str]:
    argv = resolve_argv(
        state_root=str(state),
        state_dir=f"{state}/{KEY}",
        name="m",
        mode=mode,
        digest=digest,
        lock_wait=wait,
    )
    result = await LocalRunner(shell).run(argv)
    return parse_resolve_output(result.stdout)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("before", "mode", "digest", "expected"), CASES)
async def test_markers(
    tmp_path: Path,
    shell: str,
    before: dict[str, str],
    mode: str,
    digest: str,
    expected: tuple[str, dict[str, str | None]],
) -> None:
    markers = _markers(tmp_path)
    markers.mkdir(parents=True)
    for name, text in before.items():
        (markers / name).write_text(text)
    status, _ = await _run(shell, tmp_path, mode, digest)
    want_status, want = expected
    assert status == want_status
    assert {n: _read(markers, n) for n in want} == want
    # Nothing left behind: no temp file, no other marker.
    assert sorted(p.name for p in markers.iterdir()) == sorted(n for n, v in want.items() if v)
    if mode == "ran" and status == "resolved":
        assert (markers / "done.m").stat().st_mode & 0o777 == 0o600


async def test_no_state_directory_is_nothing_pending(tmp_path: Path) -> None:
    assert (await _run(SHELLS[0], tmp_path, "ran", "d"))[0] == "nopending"
    assert not (tmp_path / ".lock").exists()


async def test_a_held_vm_lock_answers_busy_and_changes_nothing(tmp_path: Path) -> None:
    markers = _markers(tmp_path)
    markers.mkdir(parents=True)
    (markers / "pending.m").write_text("started x")
    with open(tmp_path / ".lock", "w") as lock:  # noqa: ASYNC230 - a local temp file
        fcntl.flock(lock, fcntl.LOCK_EX)
        status, message = await _run(SHELLS[0], tmp_path, "ran", "d", wait=0)
    assert status == "busy" and "lock" in message
    assert _read(markers, "pending.m") == "started x" and _read(markers, "done.m") is None


@pytest.mark.parametrize(
    "stdout",
    [pytest.param(b"", id="empty"), pytest.param(b"sh: syntax error\n", id="not-a-status")],
)
def test_other_output_is_malformed(stdout: bytes) -> None:
    with pytest.raises(MalformedOutput):
        parse_resolve_output(stdout)


MANIFEST = """\
commands:
  - name: m
    run: ["/bin/true"]
    onChange: [/etc/x.conf]
files:
  - {path: /etc/x.conf, content: "x"}
"""


async def test_engine_records_the_digest_the_plan_expects(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "vmapp.yaml").write_text(MANIFEST)
    app = load_app(app_dir)
    markers = _markers(tmp_path / "state")
    markers.mkdir(parents=True)
    (markers / "pending.m").write_text("started x")
    common = {
        "app_key": KEY,
        "revision": "abc",
        "app": app,
        "params": {},
        "target": TargetInfo("local", "127.0.0.1"),
        "facts": {},
        "state_root": str(tmp_path / "state"),
    }
    runner = LocalRunner()
    got = await resolve_command(runner, request=parse_resolve("app/m=ran"), **common)  # type: ignore[arg-type]
    assert got.reason == RESOLVED, got
    from vmgitops.manifest.render import render

    digest = render(app, {}, TargetInfo("local", "127.0.0.1"), {}, "abc").commands[0].trigger_digest
    assert _read(markers, "done.m") == digest + "\n" and _read(markers, "pending.m") is None
    again = await resolve_command(runner, request=parse_resolve("app/m=ran"), **common)  # type: ignore[arg-type]
    assert again.reason == RESOLVED and "already" in again.message
    refused = await resolve_command(runner, request=parse_resolve("app/other=rerun"), **common)  # type: ignore[arg-type]
    assert refused.reason == REFUSED and len(runner.commands) == 2, "refused before the VM"


class _Down:
    async def run(self, argv: object, **_: object) -> object:
        from vmgitops.transport.errors import TransportError

        raise TransportError("connection refused")


async def test_an_unreachable_vm_defers_the_request(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "vmapp.yaml").write_text(MANIFEST)
    got = await resolve_command(
        _Down(),  # type: ignore[arg-type]
        app_key=KEY,
        revision="abc",
        app=load_app(app_dir),
        params={},
        target=TargetInfo("local", "127.0.0.1"),
        facts={},
        request=parse_resolve("app/m=ran"),
    )
    assert got.reason == DEFERRED and not got.final
