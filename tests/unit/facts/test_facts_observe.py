"""The observe script, run for real by this machine's shells on real files, and its parser."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vmgitops.facts.observe import OBSERVE_SCRIPT, ObserveRequest, parse_observation, request_for
from vmgitops.facts.observed import ObservedState, ReleaseState
from vmgitops.facts.records import MalformedOutput
from vmgitops.manifest.desired import (
    DesiredCommand,
    DesiredFile,
    DesiredPackage,
    DesiredService,
    DesiredState,
)

SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def observe(req: ObserveRequest, shell: str = "sh") -> ObservedState:
    argv = req.argv()
    assert argv[:5] == ["env", "LC_ALL=C", "sh", "-c", OBSERVE_SCRIPT]
    argv[2] = shell
    done = subprocess.run(argv, input=req.stdin(), capture_output=True, timeout=60, check=True)
    return parse_observation(done.stdout)


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_files_and_directories(tmp_path: Path, shell: str) -> None:
    text = tmp_path / "hello.conf"
    text.write_bytes(b"greeting=hi\n")
    text.chmod(0o640)
    odd = tmp_path / "new\nline 'quote' $(touch pwned) caf\u00e9"
    odd.write_bytes(b"odd\n")
    binary = tmp_path / "blob"
    binary.write_bytes(b"\x00\xff" * 10)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70000)
    secret = tmp_path / "secret"
    secret.write_bytes(b"token=1\n")
    (tmp_path / "d").mkdir(mode=0o750)
    os.symlink("hello.conf", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    req = ObserveRequest(str(tmp_path / "state"), "none")
    req.files = {
        str(text): sha(b"greeting=hi\n"),  # in sync: no content back
        str(odd): "0" * 64,  # differs: content back
        str(binary): "0" * 64,
        str(big): "0" * 64,  # differs but too big to diff
        str(secret): "-",  # sensitive: never sent
        str(tmp_path / "missing"): "0" * 64,
        str(tmp_path / "link"): "0" * 64,
        str(tmp_path / "fifo"): "0" * 64,
    }
    req.directories = [str(tmp_path / "d"), str(tmp_path / "nodir")]
    o = observe(req, shell)

    t = o.path(str(text))
    assert (t.kind, t.mode, t.sha256, t.content, t.size) == (
        "file",
        0o640,
        sha(b"greeting=hi\n"),
        None,
        12,
    )
    assert t.uid == os.getuid() and t.user
    assert o.path(str(odd)).content == b"odd\n"
    assert o.path(str(binary)).content == b"\x00\xff" * 10
    assert o.path(str(big)).content is None and o.path(str(big)).sha256 == sha(b"x" * 70000)
    s = o.path(str(secret))
    assert s.sha256 == sha(b"token=1\n") and s.content is None
    assert o.path(str(tmp_path / "missing")).kind == "missing"
    assert o.path(str(tmp_path / "link")).kind == "symlink"
    assert o.path(str(tmp_path / "fifo")).kind == "other"
    d = o.path(str(tmp_path / "d"))
    assert (d.kind, d.mode, d.sha256) == ("directory", 0o750, "")
    assert not o.path(str(tmp_path / "nodir")).exists
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_release_markers_inventory_exists(tmp_path: Path, shell: str) -> None:
    rel = tmp_path / "opt"
    for name in ("abc", "we\nird", ".tmp-upload"):
        (rel / "releases" / name).mkdir(parents=True)
    (rel / "releases" / "afile").write_text("not a release")
    os.symlink("releases/abc", rel / "current")
    state = tmp_path / "state"
    (state / "markers").mkdir(parents=True)
    (state / "markers" / "done.migrate").write_text("d" * 64)
    (state / "markers" / "pending.seed").write_bytes(b"rev1 \x00 started")
    (state / "inventory.json").write_text('{"version": 1}\n')
    req = ObserveRequest(
        str(state), "none", release=str(rel), exists=[str(rel), str(tmp_path / "no")]
    )
    o = observe(req, shell)
    assert o.release == ReleaseState(str(rel), "releases/abc", "link", ("abc", "we\nird"))
    assert o.release.current_release == "abc"
    assert o.markers == {"done.migrate": b"d" * 64, "pending.seed": b"rev1 \x00 started"}
    assert o.inventory == b'{"version": 1}\n'
    assert o.exists == {str(rel): True, str(tmp_path / "no"): False}


def test_nothing_there_yet(tmp_path: Path, shell: str) -> None:
    req = ObserveRequest(str(tmp_path / "state"), "none", release=str(tmp_path / "opt"))
    o = observe(req, shell)
    assert o.inventory is None and o.markers == {}
    assert o.release == ReleaseState(str(tmp_path / "opt"), None, "missing", ())


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs dpkg")
def test_packages_with_dpkg(tmp_path: Path, shell: str) -> None:
    req = ObserveRequest(str(tmp_path), "auto", packages=["dpkg", "no-such-package-xyz"])
    o = observe(req, shell)
    assert o.package_manager == "apt"
    assert o.packages["dpkg"].installed is True and o.packages["dpkg"].version
    assert o.packages["no-such-package-xyz"].installed is False


def test_packages_without_a_manager(tmp_path: Path) -> None:
    o = observe(ObserveRequest(str(tmp_path), "none", packages=["curl"]))
    assert o.packages["curl"].installed is None


def test_units_without_systemd_are_unknown(tmp_path: Path) -> None:
    o = observe(ObserveRequest(str(tmp_path), "none", units=["nope-xyz.service"]))
    unit = o.units["nope-xyz.service"]
    assert unit.active in ("unknown", "inactive")  # no systemd here, or systemd answering


def test_script_is_constant_and_data_is_on_stdin(tmp_path: Path) -> None:
    req = ObserveRequest("/var/lib/vmgitops/a", "apt", files={"/etc/$(reboot)": "-"})
    argv = req.argv()
    assert argv[4] is OBSERVE_SCRIPT
    assert all("reboot" not in a for a in argv)
    assert b"/etc/$(reboot)" in req.stdin()
    # The command line is the same for any request: sshd passes it as one argument,
    # which Linux caps at 128 KiB (an app of ~1,200 files did not fit).
    many = {f"/etc/app/f{i:05d}.conf": "0" * 64 for i in range(5000)}
    assert ObserveRequest("/s", "apt", files=many).argv() == argv


def test_a_request_cut_short_is_never_a_whole_observation(tmp_path: Path, shell: str) -> None:
    (tmp_path / "a").write_bytes(b"a")
    req = ObserveRequest(str(tmp_path / "state"), "none", files={str(tmp_path / "a"): "-"})
    data = req.stdin()
    argv = req.argv()
    argv[2] = shell
    whole = subprocess.run(argv, input=data, capture_output=True, timeout=60, check=False)
    assert whole.returncode == 0 and parse_observation(whole.stdout).paths
    for cut in (data[:-2], data[: len(data) // 2], b"garbage\n"):
        done = subprocess.run(argv, input=cut, capture_output=True, timeout=60, check=False)
        assert done.returncode == 3, cut
        with pytest.raises(MalformedOutput):
            parse_observation(done.stdout)


def test_request_for_desired_state() -> None:
    d = DesiredState(
        revision="r",
        files=(
            DesiredFile("/etc/a", b"a", sha(b"a"), 0o644),
            DesiredFile("/etc/s", b"s", sha(b"s"), 0o600, sensitive=True),
        ),
        packages=(DesiredPackage("curl"),),
        services=(DesiredService("a.service", unit=b"[Unit]\n"), DesiredService("b.service")),
        commands=(DesiredCommand("m", ("/bin/true",), creates="/var/lib/a/.done"),),
    )
    req = request_for(d, "web", "apt")
    assert req.state_dir == "/var/lib/vmgitops/web"
    assert req.files == {
        "/etc/a": sha(b"a"),
        "/etc/s": "-",
        "/etc/systemd/system/a.service": sha(b"[Unit]\n"),
    }
    assert req.units == ["a.service", "b.service"]
    assert req.packages == ["curl"]
    assert req.exists == ["/var/lib/a/.done"]


def records(*recs: tuple[str, list[bytes]]) -> bytes:
    out = b"observe 1\n1:1\n"
    for tag, fields in recs:
        out += f"{tag} {len(fields)}\n".encode()
        for f in fields:
            out += str(len(f)).encode() + b":" + f + b"\n"
    return out + b"end 0\n"


@pytest.mark.parametrize(
    ("stream", "check"),
    [
        pytest.param(
            records(
                (
                    "path",
                    [b"/a", b"file", b"4755", b"0", b"0", b"root", b"root", b"3", b"ab", b"6869"],
                )
            ),
            lambda o: o.path("/a").mode == 0o4755 and o.path("/a").content == b"hi",
            id="setuid mode and content",
        ),
        pytest.param(
            records(("path", [b"/a", b"file", b"", b"", b"", b"", b"", b"", b""])),
            lambda o: o.path("/a").mode is None and o.path("/a").sha256 == "",
            id="stat failed: unknown, not an error",
        ),
        pytest.param(
            records(("unit", [b"a.service", b"", b""])),
            lambda o: o.units["a.service"].enabled == "unknown",
            id="empty systemctl answers are unknown",
        ),
        pytest.param(
            records(("pkg", [b"curl", b"installed", b"8.5.0-2"]), ("pkg", [b"jq", b"absent", b""])),
            lambda o: o.packages["curl"].installed and o.packages["jq"].installed is False,
            id="packages",
        ),
        pytest.param(
            records(("release", [b"/opt/a", b"link", b"/opt/a/releases/r2", b"r1", b"r2"])),
            lambda o: o.release.current_release == "r2" and o.release.releases == ("r1", "r2"),
            id="absolute current link",
        ),
        pytest.param(
            records(("release", [b"/opt/a", b"link", b"/elsewhere"])),
            lambda o: o.release.current_release is None,
            id="current pointing outside releases",
        ),
        pytest.param(
            records(("inventory", [b"0", b""])),
            lambda o: o.inventory is None,
            id="no inventory yet",
        ),
        pytest.param(
            records(("future-thing", [b"x"]), ("error", [b"bogus", b"unknown request"])),
            lambda o: o.errors == ("bogus: unknown request",),
            id="unknown records ignored, errors kept",
        ),
    ],
)
def test_parse_observation(stream: bytes, check: object) -> None:
    assert callable(check) and check(parse_observation(stream))


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"end 0\n", id="no header"),
        pytest.param(b"observe 1\n1:2\nend 0\n", id="another version"),
        pytest.param(records(("path", [b"/a", b"socket"])), id="unknown path kind"),
        pytest.param(records()[:-6], id="cut short"),
    ],
)
def test_parse_observation_refuses_what_is_not_ours(stream: bytes) -> None:
    with pytest.raises(MalformedOutput):
        parse_observation(stream)
