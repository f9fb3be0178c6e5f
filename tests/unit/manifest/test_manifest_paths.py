"""Loading an app folder never reads outside it, never blocks, and stays within limits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from vmgitops.manifest import load_app
from vmgitops.manifest.errors import ManifestError

ONE_FILE = "files:\n- {path: /etc/x, source: SRC}\n"
RELEASE = "release: {path: /opt/app, source: dist}\n"


def app(tmp_path: Path, manifest: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "repo" / "app"
    folder.mkdir(parents=True)
    (folder / "vmapp.yaml").write_text(manifest)
    for rel, content in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content)
    (tmp_path / "outside.txt").write_text("secret outside\n")
    return folder


def source(src: str) -> str:
    return ONE_FILE.replace("SRC", src)


def link(folder: Path, name: str, target: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, folder / name)


Setup = Callable[[Path], Path]


def case_dotdot(t: Path) -> Path:
    return app(t, source("../../outside.txt"))


def case_dotdot_inside(t: Path) -> Path:
    return app(t, source("bin/../bin/x"), {"bin/x": "x"})


def case_absolute(t: Path) -> Path:
    return app(t, source(str(t / "outside.txt")))


def case_symlink_escape(t: Path) -> Path:
    f = app(t, source("bin/hello"))
    link(f, "bin/hello", str(t / "outside.txt"))
    return f


def case_symlink_chain(t: Path) -> Path:
    f = app(t, source("a"))
    link(f, "a", "b")
    link(f, "b", "sub/c")
    link(f, "sub/c", "../../../outside.txt")
    return f


def case_symlink_shadow(t: Path) -> Path:
    f = app(t, source("shadow"))
    link(f, "shadow", "/etc/shadow")
    return f


def case_symlink_dir_escape(t: Path) -> Path:
    f = app(t, source("conf/outside.txt"))
    link(f, "conf", str(t))
    return f


def case_git(t: Path) -> Path:
    return app(t, source(".git/config"), {".git/config": "[core]"})


def case_symlink_into_git(t: Path) -> Path:
    f = app(t, source("cfg"), {".git/config": "[core]"})
    link(f, "cfg", ".git/config")
    return f


def case_fifo(t: Path) -> Path:
    f = app(t, source("pipe"))
    os.mkfifo(f / "pipe")
    return f


def case_directory_as_file(t: Path) -> Path:
    f = app(t, source("dir"))
    (f / "dir").mkdir()
    return f


def case_missing_source(t: Path) -> Path:
    return app(t, source("nope"))


def case_big_file(t: Path) -> Path:
    return app(t, source("big"), {"big": "x" * 2000})


def case_big_tree(t: Path) -> Path:
    return app(t, RELEASE, {f"dist/f{i}": "x" * 900 for i in range(6)})


def case_many_files(t: Path) -> Path:
    return app(t, RELEASE, {f"dist/f{i}": "x" for i in range(30)})


def case_manifest_symlink_escape(t: Path) -> Path:
    f = app(t, "")
    (f / "vmapp.yaml").unlink()
    (t / "evil.yaml").write_text("files: []\n")
    link(f, "vmapp.yaml", str(t / "evil.yaml"))
    return f


def case_no_manifest(t: Path) -> Path:
    f = app(t, "")
    (f / "vmapp.yaml").unlink()
    return f


def case_release_link_out(t: Path) -> Path:
    f = app(t, RELEASE, {"dist/ok": "ok"})
    link(f, "dist/passwd", "/etc/passwd")
    return f


def case_release_link_dir(t: Path) -> Path:
    f = app(t, RELEASE, {"dist/ok": "ok", "other/x": "x"})
    link(f, "dist/loop", "..")
    return f


def case_release_git(t: Path) -> Path:
    return app(t, RELEASE, {"dist/.git/HEAD": "ref"})


def case_release_fifo(t: Path) -> Path:
    f = app(t, RELEASE, {"dist/ok": "ok"})
    os.mkfifo(f / "dist" / "pipe")
    return f


def case_release_not_dir(t: Path) -> Path:
    return app(t, RELEASE.replace("dist", "file"), {"file": "x"})


PATH_CASES = [
    pytest.param(case_dotdot, "PathEscape", "contains '..'", id="dot-dot leaves the folder"),
    pytest.param(
        case_dotdot_inside, "PathEscape", "contains '..'", id="dot-dot even when it stays inside"
    ),
    pytest.param(case_absolute, "PathEscape", "is not a relative path", id="absolute source"),
    pytest.param(case_symlink_escape, "PathEscape", "outside the app folder", id="symlink escapes"),
    pytest.param(
        case_symlink_chain, "PathEscape", "outside the app folder", id="symlink chain escapes"
    ),
    pytest.param(
        case_symlink_shadow, "PathEscape", "outside the app folder", id="symlink to /etc/shadow"
    ),
    pytest.param(
        case_symlink_dir_escape, "PathEscape", "outside", id="symlinked directory escapes"
    ),
    pytest.param(case_git, "PathEscape", "inside .git", id=".git path"),
    pytest.param(case_symlink_into_git, "PathEscape", "resolves into .git", id="symlink into .git"),
    pytest.param(case_fifo, "ManifestInvalid", "is a fifo, not a file", id="fifo never blocks"),
    pytest.param(
        case_directory_as_file, "ManifestInvalid", "is a directory", id="directory as file"
    ),
    pytest.param(case_missing_source, "ManifestInvalid", "does not exist", id="missing source"),
    pytest.param(case_big_file, "ManifestTooLarge", "larger than 1000 bytes", id="oversized file"),
    pytest.param(
        case_big_tree, "ManifestTooLarge", "exceed 5000 bytes in all", id="oversized tree"
    ),
    pytest.param(case_many_files, "ManifestTooLarge", "more than 20 files", id="too many files"),
    pytest.param(case_manifest_symlink_escape, "PathEscape", "outside", id="vmapp.yaml links out"),
    pytest.param(case_no_manifest, "ManifestNotFound", "not found", id="no vmapp.yaml"),
    pytest.param(case_release_link_out, "PathEscape", "links outside", id="release file links out"),
    pytest.param(
        case_release_link_dir, "ManifestInvalid", "links to a directory", id="release dir link"
    ),
    pytest.param(case_release_git, "PathEscape", ".git entry", id="release with .git"),
    pytest.param(case_release_fifo, "ManifestInvalid", "is a fifo", id="release with a fifo"),
    pytest.param(
        case_release_not_dir, "ManifestInvalid", "is not a directory", id="release not a dir"
    ),
]


@pytest.mark.parametrize(("setup", "reason", "fragment"), PATH_CASES)
def test_unsafe_folders_are_refused(
    tmp_path: Path, setup: Setup, reason: str, fragment: str
) -> None:
    folder = setup(tmp_path)
    with pytest.raises(ManifestError) as err:
        load_app(folder, max_file_bytes=1000, max_tree_bytes=5000, max_files=20)
    assert err.value.reason == reason, err.value.message
    assert fragment in err.value.message
    assert "secret outside" not in err.value.message


def test_folder_outside_the_checkout_is_refused(tmp_path: Path) -> None:
    folder = app(tmp_path, "")
    os.symlink(folder, tmp_path / "repo" / "alias")
    load_app(tmp_path / "repo" / "alias", root=tmp_path / "repo")
    with pytest.raises(ManifestError, match="outside the checkout"):
        load_app(folder, root=tmp_path / "elsewhere")


def test_symlinks_inside_the_folder_are_followed(tmp_path: Path) -> None:
    folder = app(tmp_path, source("bin/hello") + RELEASE, {"real/hello": "hi\n", "dist/a": "a"})
    link(folder, "bin/hello", "../real/hello")
    link(folder, "dist/b", "a")
    loaded = load_app(folder)
    assert loaded.sources == {"bin/hello": b"hi\n"}
    assert [(f.path, f.content) for f in loaded.release_files] == [("a", b"a"), ("b", b"a")]


def test_release_tree_digest_is_stable_and_normalises_modes(tmp_path: Path) -> None:
    one = app(tmp_path / "1", RELEASE, {"dist/bin/run": "#!/bin/sh\n", "dist/README": "r"})
    two = app(tmp_path / "2", RELEASE, {"dist/README": "r", "dist/bin/run": "#!/bin/sh\n"})
    (one / "dist/bin/run").chmod(0o700)
    (two / "dist/bin/run").chmod(0o775)
    (two / "dist/README").chmod(0o600)
    a, b = load_app(one), load_app(two)
    assert a.release_digest == b.release_digest
    assert [(f.path, oct(f.mode)) for f in a.release_files] == [
        ("README", "0o644"),
        ("bin/run", "0o755"),
    ]
    assert a.release_directories == ("bin",)
    (two / "dist/README").write_text("changed")
    assert load_app(two).release_digest != a.release_digest
