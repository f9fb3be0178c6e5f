"""Repository escapes: app folders in a real Git repository (git daemon) that try to read
outside their folder: `..`, absolute paths, symlinks to /etc/shadow, to a canary file and
to a sibling repository's checkout, symlink chains and loops, `.git/` paths, submodules,
Jinja includes, oversized files and trees, and spec.source.path escapes.

Each goes through the operator's own path (GitSource.checkout, then load_app and render)
and must be refused with a specific reason; inotify proves that no canary was opened; the
allowed look-alikes (links that stay inside the folder) are applied to a real VM, whose
overlay's upper layer shows every file written: nothing outside the declared paths.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos import bed, figures
from gitserver import Workdir, git, init_bare
from security import engine
from security.inotify import Watch
from testbed import DEV, GIT_BASE_URL, VM
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.render import render
from vmgitops.source import GitSource
from vmgitops.source.errors import SourceError

pytestmark = pytest.mark.integration

AREA = "6 repo escapes"
MiB = 1024 * 1024

Case = tuple[str, Callable[[Workdir, str], None], set[str], str]


def files_app(*sources: str) -> str:
    lines = ["files:"]
    for i, s in enumerate(sources):
        lines += [f"  - path: /etc/vmgt-esc/f{i}", f"    source: {s!r}"]
    return "\n".join(lines) + "\n"


def release_app(source: str = "dist") -> str:
    return f"release: {{path: /opt/vmgt-esc, source: {source!r}}}\n"


def cases(run: str, canary: Path, sibling_file: Path) -> list[Case]:
    """(name, how to build apps/<name> in the work tree, refusal reasons, what it tries)."""

    def app(text: str) -> Callable[[Workdir, str], None]:
        return lambda w, d: w.write(f"{d}/vmapp.yaml", text)

    def link(name: str, to: str, text: str) -> Callable[[Workdir, str], None]:
        def build(w: Workdir, d: str) -> None:
            w.write(f"{d}/vmapp.yaml", text)
            w.symlink(f"{d}/{name}", to)

        return build

    def chain(text: str, *links: tuple[str, str]) -> Callable[[Workdir, str], None]:
        def build(w: Workdir, d: str) -> None:
            w.write(f"{d}/vmapp.yaml", text)
            for name, to in links:
                w.symlink(f"{d}/{name}", to)

        return build

    def big_file(w: Workdir, d: str) -> None:
        w.write(f"{d}/vmapp.yaml", files_app("big.bin"))
        (w.path / d / "big.bin").write_bytes(b"\0" * (9 * MiB))

    def big_tree(w: Workdir, d: str) -> None:
        w.write(f"{d}/vmapp.yaml", release_app())
        for i in range(9):
            (w.path / d / "dist").mkdir(parents=True, exist_ok=True)
            (w.path / d / "dist" / f"part{i}").write_bytes(bytes([i]) * (int(7.5 * MiB)))

    def many_files(w: Workdir, d: str) -> None:
        w.write(f"{d}/vmapp.yaml", release_app())
        for i in range(5001):
            w.write(f"{d}/dist/d{i // 500}/f{i}", "x")

    def git_file(w: Workdir, d: str) -> None:
        w.write(f"{d}/vmapp.yaml", release_app())
        w.write(f"{d}/dist/.git", "gitdir: /etc\n")

    def submodule(w: Workdir, d: str) -> None:
        w.write(f"{d}/vmapp.yaml", files_app("sub/secret.txt"))
        sha = git("rev-parse", "HEAD", cwd=w.path) if (w.path / ".git" / "refs").exists() else ""
        w.write(
            ".gitmodules",
            f'[submodule "sub"]\n\tpath = {d}/sub\n\turl = {GIT_BASE_URL}/sibling-{run}.git\n',
        )
        if sha:
            git("update-index", "--add", "--cacheinfo", f"160000,{sha},{d}/sub", cwd=w.path)

    shadow = "/etc/shadow"
    return [
        ("dotdot", app(files_app("../../../etc/passwd")), {"PathEscape"}, "'..' in source"),
        ("dotdot-middle", app(files_app("a/../../x")), {"PathEscape"}, "'..' mid-path"),
        ("absolute", app(files_app(shadow)), {"PathEscape"}, "absolute source"),
        ("link-shadow", link("x", shadow, files_app("x")), {"PathEscape"}, "symlink to shadow"),
        (
            "link-canary",
            link("x", str(canary), files_app("x")),
            {"PathEscape"},
            "symlink to a canary file",
        ),
        (
            "link-sibling-repo",
            link("x", str(sibling_file), files_app("x")),
            {"PathEscape"},
            "symlink into another repository's checkout",
        ),
        (
            "link-sibling-app",
            link("x", "../sibling/secret.txt", files_app("x")),
            {"PathEscape"},
            "symlink to a sibling app folder",
        ),
        (
            "link-relative-up",
            link("x", "../../../../../../../../" + str(canary).lstrip("/"), files_app("x")),
            {"PathEscape"},
            "relative symlink climbing out",
        ),
        (
            "chain",
            chain(files_app("a"), ("a", "b"), ("b", "c"), ("c", str(canary))),
            {"PathEscape"},
            "symlink chain ending outside",
        ),
        (
            "chain-through-outside",
            chain(files_app("a"), ("a", "../sibling/b"), ("x", "y")),
            {"PathEscape"},
            "chain via a link outside the folder",
        ),
        (
            "loop",
            chain(files_app("a"), ("a", "b"), ("b", "a")),
            {"PathEscape", "ManifestInvalid"},
            "symlink loop",
        ),
        ("dot-git", app(files_app(".git/config")), {"PathEscape"}, ".git/ in source"),
        ("dot-git-deep", app(files_app("x/.git/HEAD")), {"PathEscape"}, ".git/ deeper"),
        (
            "release-link-shadow",
            chain(release_app(), ("dist/x", shadow)),
            {"PathEscape"},
            "release tree holding a symlink to shadow",
        ),
        (
            "release-link-dir",
            chain(release_app(), ("dist/etc", "/etc")),
            {"PathEscape"},
            "release tree holding a symlink to /etc",
        ),
        (
            "release-link-inner-dir",
            chain(release_app() + files_app(), ("dist/self", ".")),
            {"ManifestInvalid"},
            "release tree with a link to a directory (cycle)",
        ),
        (
            "release-dot-git",
            git_file,
            {"PathEscape", "ManifestInvalid"},  # git itself never stores a `.git` entry
            ".git entry in a release tree",
        ),
        ("release-outside", app(release_app("..")), {"PathEscape"}, "release source '..'"),
        (
            "manifest-link",
            lambda w, d: w.symlink(f"{d}/vmapp.yaml", str(canary)),
            {"PathEscape"},
            "vmapp.yaml itself a symlink out",
        ),
        (
            "include",
            app(
                "files:\n  - path: /etc/vmgt-esc/f\n    template: true\n"
                f"    content: \"{{% include '{canary}' %}}\"\n"
            ),
            {"TemplateError"},
            "Jinja include of a file outside",
        ),
        (
            "import",
            app(
                "files:\n  - path: /etc/vmgt-esc/f\n    template: true\n"
                f"    content: \"{{% from '{canary}' import x %}}\"\n"
            ),
            {"TemplateError"},
            "Jinja import of a file outside",
        ),
        ("submodule", submodule, {"ManifestInvalid"}, "submodule content (never fetched)"),
        ("big-file", big_file, {"ManifestTooLarge"}, "a 9 MiB file"),
        ("big-tree", big_tree, {"ManifestTooLarge"}, "a 67 MiB release tree"),
        ("many-files", many_files, {"ManifestTooLarge"}, "5001 files"),
    ]


PATH_CASES = [
    ("../..", {"PathEscape"}),
    ("/etc", {"PathEscape"}),
    ("apps/../..", {"PathEscape"}),
    ("apps/link-out", {"PathEscape"}),
    ("apps/link-canary-dir", {"PathEscape"}),
    ("apps/.git", {"PathNotFound", "PathEscape"}),
    (".git", {"PathNotFound", "PathEscape"}),
]


def upper_snapshot(vm: VM) -> dict[str, tuple[int, int]]:
    """VM path -> (mtime ns, size) of everything in the VM overlay's upper layer."""
    upper = bed.fleet().vm_dir(vm.name) / "upper"
    out = {}
    for dirpath, dirs, files in os.walk(upper):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out["/" + os.path.relpath(full, upper)] = (st.st_mtime_ns, st.st_size)
    return out


#: Writes an SSH login itself makes (not vmgitops): login records.
LOGIN_RECORDS = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog", "/var/log/journal")


def test_repository_escapes_are_refused_and_read_nothing(
    chaos_vms: list[VM], tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    canary = Path("/tmp") / f"vmgt-canary-file-{run}"
    canary.write_text(f"CANARY-{run}\n")
    canary_dir = Path("/tmp") / f"vmgt-canary-dir-{run}"
    canary_dir.mkdir()
    (canary_dir / "vmapp.yaml").write_text(f"# CANARY-DIR-{run}\n")
    source = GitSource(tmp_path / "cache", check_dns=False)

    # A sibling repository, checked out by the same GitSource (as another app would be).
    sib_bare = init_bare(DEV / "git" / f"sibling-{run}.git")
    sib = Workdir(tmp_path / "sibling", sib_bare)
    sib.write("secret.txt", f"SIBLING-{run}\n")
    sib.commit("sibling")
    sib.push("main")
    sib_url = f"{GIT_BASE_URL}/sibling-{run}.git"
    sib_sha = asyncio.run(source.resolve(sib_url, "main")).commit
    sibling_file = asyncio.run(source.checkout(sib_url, sib_sha, ".")) / "secret.txt"

    bare = init_bare(DEV / "git" / f"escapes-{run}.git")
    work = Workdir(tmp_path / "work", bare)
    work.write("apps/sibling/secret.txt", f"SIBAPP-{run}\n")
    work.write("apps/sibling/b", "b\n")
    all_cases = cases(run, canary, sibling_file)
    # The submodule case needs a commit to point at: commit everything else first.
    for name, build, _, _ in all_cases:
        if name != "submodule":
            build(work, f"apps/{name}")
    work.symlink("apps/link-out", "/etc")
    work.symlink("apps/link-canary-dir", str(canary_dir))
    work.commit("escapes")
    for name, build, _, _ in all_cases:
        if name == "submodule":
            build(work, f"apps/{name}")
    # Allowed look-alikes: links that stay inside the app folder.
    work.write(
        "apps/ok/vmapp.yaml",
        f"files:\n  - {{path: /etc/vmgt-esc-{run}/a.conf, source: conf/real.conf}}\n"
        f"  - {{path: /etc/vmgt-esc-{run}/b.conf, source: conf/link.conf}}\n"
        f"release: {{path: /opt/vmgt-esc-{run}, source: dist}}\n",
    )
    work.write("apps/ok/conf/real.conf", "real\n")
    work.symlink("apps/ok/conf/link.conf", "real.conf")
    work.write("apps/ok/dist/index.html", "<h1>ok</h1>\n")
    work.symlink("apps/ok/dist/same.html", "index.html")
    sha = work.commit("escapes and an allowed app")
    work.push("main")
    url = f"{GIT_BASE_URL}/escapes-{run}.git"

    outcomes: dict[str, str] = {}
    wrong: dict[str, str] = {}
    messages: list[str] = []
    with Watch([canary, canary_dir / "vmapp.yaml", sibling_file]) as watch:
        assert asyncio.run(source.resolve(url, "main")).commit == sha
        for name, _build, expected, what in all_cases:
            reason, message = load(source, url, sha, f"apps/{name}")
            outcomes[name] = reason
            messages.append(message)
            if reason not in expected:
                wrong[name] = f"{what}: expected {sorted(expected)}, got {reason}: {message}"
            print(f"  {name:24} {what:44} -> {reason}: {message[:110]}")
        for path, expected in PATH_CASES:
            reason, message = load(source, url, sha, path)
            outcomes[f"path:{path}"] = reason
            messages.append(message)
            if reason not in expected:
                wrong[f"path:{path}"] = f"expected {sorted(expected)}, got {reason}: {message}"
            print(f"  spec.source.path {path!r:14} -> {reason}: {message[:110]}")
        ok_reason, ok_message = load(source, url, sha, "apps/ok")
        opened = watch.drain()
    # The submodule was never fetched: its folder in the checkout is empty.
    sub = asyncio.run(source.checkout(url, sha, "apps/submodule")) / "sub"
    assert not sub.exists() or not any(sub.iterdir())

    # The allowed app on a real VM: the only files written are the declared ones.
    vm = chaos_vms[-4]
    folder = asyncio.run(source.checkout(url, sha, "apps/ok"))
    key = f"security_esc-{run}"
    before = upper_snapshot(vm)
    started = time.time_ns()
    try:
        result = engine.sync(vm, folder, key, revision=sha[:12])
        assert result.error is None and result.sync == "Synced", result.error
        after = upper_snapshot(vm)
        changed = sorted(p for p, v in after.items() if before.get(p) != v and v[0] >= started)
        declared = (f"/etc/vmgt-esc-{run}", f"/opt/vmgt-esc-{run}", f"/var/lib/vmgitops/{key}")
        parents = {"/etc", "/opt", "/var", "/var/lib", "/var/lib/vmgitops", "/var/log"}
        outside = [
            p
            for p in changed
            if not any(p == d or p.startswith(d + "/") for d in declared)
            and p not in parents
            and p != "/var/lib/vmgitops/.lock"
            and not p.startswith(LOGIN_RECORDS)
        ]
        got = bed.vm_out(
            vm, f"cat /etc/vmgt-esc-{run}/b.conf /opt/vmgt-esc-{run}/current/same.html"
        )
        assert got == "real\n<h1>ok</h1>\n"
    finally:
        bed.vm_sh(
            vm,
            f"rm -rf /etc/vmgt-esc-{run} /opt/vmgt-esc-{run} /var/lib/vmgitops/{key}",
            check=False,
        )
        for p in (sib_bare, bare):
            subprocess.run(["rm", "-rf", str(p)], check=False)
        canary.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(canary_dir)], check=False)
    leaked = [m for m in messages if f"CANARY-{run}" in m or f"SIBLING-{run}" in m]
    total = len(all_cases) + len(PATH_CASES)
    refused = total - len(wrong)
    figures.percent(AREA, "escape fixtures refused with their specific reason", refused, total)
    figures.count(AREA, "opens/reads of canary files outside the checkout", len(opened))
    figures.count(AREA, "files written on the VM outside declared paths", len(outside))
    print(f"\nallowed app: {ok_reason or 'loaded'}; VM files written: {len(changed)}: {changed}")
    assert ok_reason == "", ok_message
    assert not wrong, wrong
    assert not opened, opened
    assert not outside, outside
    assert not leaked, leaked


def load(source: GitSource, url: str, sha: str, path: str) -> tuple[str, str]:
    """("", "") when the folder loads and renders, else (reason, message)."""
    try:
        folder = asyncio.run(source.checkout(url, sha, path))
        app = load_app(folder)
        render(app, {}, TargetInfo("vm", "127.0.0.1", {}), {}, sha[:12])
    except ManifestError as exc:
        return exc.reason, exc.message
    except SourceError as exc:
        return exc.reason, exc.message
    return "", ""
