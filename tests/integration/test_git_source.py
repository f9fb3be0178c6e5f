"""GitSource against real Git servers: the test bed's git daemon, a private git daemon
that the test stops, and git http-backend behind Basic auth (tests/gitserver.py)."""

from __future__ import annotations

import asyncio
import base64
import glob
import logging
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitserver import GitDaemon, SmartHTTPServer, Workdir, free_port, init_bare, remove
from testbed import DEV, GIT_BASE_URL, VM
from vmgitops.source import (
    GitAuthenticationFailed,
    GitCredentialsInvalid,
    GitFetchFailed,
    GitSource,
    PathEscape,
    PathNotFound,
    RepoURLRefused,
    Resolved,
    RevisionNotFound,
    SourceError,
)
from vmgitops.source.mirror import Mirror

pytestmark = pytest.mark.integration

GIT_DAEMON = GIT_BASE_URL
PASSWORD = "s3cr3t-P@ss/word+42"


@dataclass
class Repo:
    """A bare repository served by a git server, and a working clone that pushes to it."""

    url: str
    bare: Path
    work: Workdir


@pytest.fixture(scope="module")
def served_root(fleet: list[VM]) -> Path:
    """The folder the test bed's git daemon serves as git://127.0.0.1:9418/."""
    root = DEV / "git"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_repo(root: Path, base_url: str, work_parent: Path) -> Repo:
    name = f"src-{uuid.uuid4().hex[:10]}.git"
    bare = init_bare(root / name)
    return Repo(f"{base_url}/{name}", bare, Workdir(work_parent / name, bare))


@pytest.fixture
def repo(served_root: Path, tmp_path: Path) -> Iterator[Repo]:
    """A fresh repository on the test bed's git daemon, removed afterwards."""
    made = new_repo(served_root, GIT_DAEMON, tmp_path)
    yield made
    remove(made.bare)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[GitSource]:
    cache = tmp_path / "cache"
    made = GitSource(cache, timeout=20)
    yield made
    made.close()
    remove(cache)


@dataclass
class History:
    """c1 (tag v1, branch dev) <- c2 (annotated tag v2) <- c3 (main, HEAD)."""

    repo: Repo
    c1: str
    c2: str
    c3: str


@pytest.fixture(scope="module")
def history(served_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    made = new_repo(served_root, GIT_DAEMON, tmp_path_factory.mktemp("history"))
    work = made.work
    work.write("apps/web/vmapp.yaml", "files: []\n")
    c1 = work.commit("one")
    work.run("tag", "v1")
    work.run("branch", "dev")
    work.write("apps/web/vmapp.yaml", "files: [] # two\n")
    c2 = work.commit("two")
    work.run("tag", "-a", "v2", "-m", "release two")
    work.write("apps/web/vmapp.yaml", "files: [] # three\n")
    c3 = work.commit("three")
    work.push("main", "dev", "v1", "v2")
    yield History(made, c1, c2, c3)
    remove(made.bare)


CASES = [
    pytest.param("main", "c3", "refs/heads/main", id="branch"),
    pytest.param("dev", "c1", "refs/heads/dev", id="other-branch"),
    pytest.param("v1", "c1", "refs/tags/v1", id="lightweight-tag"),
    pytest.param("v2", "c2", "refs/tags/v2", id="annotated-tag-peeled-to-its-commit"),
    pytest.param("HEAD", "c3", "refs/heads/main", id="head-is-remote-default-branch"),
    pytest.param("", "c3", "refs/heads/main", id="empty-means-head"),
    pytest.param("refs/heads/dev", "c1", "refs/heads/dev", id="full-ref-name"),
    pytest.param("<c2>", "c2", "<c2>", id="full-sha"),
    pytest.param("<c1:8>", "c1", "<c1>", id="short-sha"),
]


@pytest.mark.parametrize(("revision", "commit", "ref"), CASES)
async def test_resolve(
    source: GitSource, history: History, revision: str, commit: str, ref: str
) -> None:
    def sub(text: str) -> str:
        if text.startswith("<c"):
            name, _, length = text.strip("<>").partition(":")
            sha: str = getattr(history, name)
            return sha[: int(length)] if length else sha
        return text

    before = datetime.now(UTC)
    resolved = await source.resolve(history.repo.url, sub(revision))
    assert resolved == Resolved(getattr(history, commit), sub(ref), resolved.fetched_at)
    assert before <= resolved.fetched_at <= datetime.now(UTC)


async def test_new_commit_is_seen_on_next_resolve(source: GitSource, repo: Repo) -> None:
    repo.work.write("a.txt", "1")
    first = repo.work.commit("first")
    repo.work.push("main")
    assert (await source.resolve(repo.url, "main")).commit == first
    repo.work.write("a.txt", "2")
    second = repo.work.commit("second")
    repo.work.push("main")
    assert (await source.resolve(repo.url, "main")).commit == second
    root = await source.checkout(repo.url, second, ".")
    assert (root / "a.txt").read_text() == "2"


async def test_force_push_back_resolves_to_the_older_commit(source: GitSource, repo: Repo) -> None:
    old = repo.work.commit("old")
    repo.work.push("main")
    new = repo.work.commit("new")
    repo.work.push("main")
    assert (await source.resolve(repo.url, "main")).commit == new
    repo.work.run("reset", "--hard", old)
    repo.work.push("main", force=True)
    assert (await source.resolve(repo.url, "main")).commit == old


async def test_deleted_branch_is_not_found(source: GitSource, repo: Repo) -> None:
    repo.work.commit("one")
    repo.work.push("main", "main:feature")
    assert await source.resolve(repo.url, "feature")
    repo.work.push(":feature")
    with pytest.raises(RevisionNotFound, match="branches: main"):
        await source.resolve(repo.url, "feature")


async def test_checkout_read_only_and_reused(source: GitSource, history: History) -> None:
    folder = await source.checkout(history.repo.url, history.c2, "apps/web")
    assert folder.name == "web" and folder.parent.parent.name == history.c2
    assert (folder / "vmapp.yaml").read_text() == "files: [] # two\n"
    root = folder.parent.parent
    assert not (root / ".git").exists()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            assert stat.S_IMODE(os.lstat(Path(dirpath, name)).st_mode) & 0o222 == 0, name
    inode = (folder / "vmapp.yaml").stat().st_ino
    again = await source.checkout(history.repo.url, history.c2, "apps/web")
    assert again == folder and (again / "vmapp.yaml").stat().st_ino == inode
    other = await source.checkout(history.repo.url, history.c3, "apps/web")
    assert (other / "vmapp.yaml").read_text() == "files: [] # three\n"
    assert [p.name for p in source.checkouts.root.iterdir() if p.name.startswith(".")] == []


async def test_checkout_fetches_a_commit_not_yet_in_the_cache(
    source: GitSource, history: History
) -> None:
    folder = await source.checkout(history.repo.url, history.c1, "apps")
    assert (folder / "web" / "vmapp.yaml").read_text() == "files: []\n"


async def test_concurrent_checkouts_of_one_commit(source: GitSource, history: History) -> None:
    folders = await asyncio.gather(
        *(source.checkout(history.repo.url, history.c3, "apps/web") for _ in range(5))
    )
    assert len(set(folders)) == 1


@pytest.mark.parametrize(
    ("revision", "says"),
    [
        pytest.param("no-such-branch", "names no branch, tag or commit", id="unknown-name"),
        pytest.param("0123456789" * 4, "not in", id="unknown-full-sha"),
        pytest.param("0123abc", "names no branch, tag or commit", id="unknown-short-sha"),
    ],
)
async def test_missing_revision(
    source: GitSource, history: History, revision: str, says: str
) -> None:
    with pytest.raises(RevisionNotFound, match=says) as info:
        await source.resolve(history.repo.url, revision)
    assert info.value.reason == "RevisionNotFound"


async def test_empty_repository_has_no_head(source: GitSource, repo: Repo) -> None:
    with pytest.raises(RevisionNotFound, match="no branches or tags"):
        await source.resolve(repo.url, "HEAD")


async def test_checkout_of_unknown_commit(source: GitSource, history: History) -> None:
    with pytest.raises(RevisionNotFound):
        await source.checkout(history.repo.url, "f" * 40, ".")
    with pytest.raises(RevisionNotFound, match="full 40-character"):
        await source.checkout(history.repo.url, history.c1[:10], ".")


async def test_missing_repository(source: GitSource, served_root: Path) -> None:
    with pytest.raises(GitFetchFailed, match="no such repository"):
        await source.resolve(f"{GIT_DAEMON}/does-not-exist-{uuid.uuid4().hex}.git", "main")


async def test_path_escapes_are_refused(
    source: GitSource, served_root: Path, tmp_path: Path
) -> None:
    made = new_repo(served_root, GIT_DAEMON, tmp_path)
    try:
        made.work.write("apps/web/vmapp.yaml", "files: []\n")
        made.work.symlink("apps/out", "../..")
        made.work.symlink("apps/etc", "/etc")
        made.work.symlink("apps/alias", "web")
        commit = made.work.commit("links")
        made.work.push("main")
        resolved = await source.resolve(made.url, "main")
        assert resolved.commit == commit
        root = await source.checkout(made.url, commit, ".")
        assert (await source.checkout(made.url, commit, "apps/alias")) == root / "apps" / "web"
        for path in ("..", "apps/../..", "apps/out", "apps/out/tmp", "apps/etc", "/etc"):
            with pytest.raises(PathEscape):
                await source.checkout(made.url, commit, path)
        with pytest.raises(PathNotFound) as info:
            await source.checkout(made.url, commit, "apps/api")
        assert type(info.value) is PathNotFound
        with pytest.raises(PathNotFound):
            await source.checkout(made.url, commit, "apps/web/vmapp.yaml")
    finally:
        remove(made.bare)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file://{root}/x.git", id="file-url"),
        pytest.param("{root}/x.git", id="local-path"),
        pytest.param("ext::git daemon --inetd", id="ext-transport"),
        pytest.param("http://169.254.169.254/x.git", id="metadata-address"),
    ],
)
async def test_refused_urls_never_run_git(source: GitSource, served_root: Path, url: str) -> None:
    with pytest.raises(RepoURLRefused) as info:
        await source.resolve(url.format(root=served_root), "main")
    assert isinstance(info.value, GitFetchFailed) and not info.value.retryable
    assert not (source.cache_dir / "repos").exists()


async def test_nothing_listening_fails_fast(source: GitSource) -> None:
    started = time.monotonic()
    with pytest.raises(GitFetchFailed, match="could not be reached"):
        await source.resolve(f"git://127.0.0.1:{free_port()}/x.git", "main")
    assert time.monotonic() - started < 5


async def test_stopped_server_keeps_previous_checkout_usable(
    source: GitSource, tmp_path: Path
) -> None:
    root = tmp_path / "served"
    root.mkdir()
    with GitDaemon(root) as daemon:
        made = new_repo(root, daemon.url, tmp_path)
        made.work.write("apps/web/vmapp.yaml", "files: []\n")
        commit = made.work.commit("one")
        made.work.push("main")
        resolved = await source.resolve(made.url, "main")
        folder = await source.checkout(made.url, resolved.commit, "apps/web")
    started = time.monotonic()
    with pytest.raises(GitFetchFailed) as info:
        await source.resolve(made.url, "main")
    assert time.monotonic() - started < 5
    assert info.value.retryable
    assert await source.checkout(made.url, commit, "apps/web") == folder
    assert (folder / "vmapp.yaml").read_text() == "files: []\n"


async def test_hung_server_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """A server that accepts and never answers: git is killed after `timeout` seconds, and
    the callers that waited behind that attempt share its failure instead of queueing."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        source = GitSource(tmp_path / "cache", timeout=2)
        started = time.monotonic()
        results = await asyncio.gather(
            *(source.resolve(f"git://127.0.0.1:{port}/x.git", rev) for rev in ("a", "b", "c")),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - started
        source.close()
    for result in results:
        assert isinstance(result, GitFetchFailed), result
        assert "timed out after 2s" in result.message
    assert elapsed < 5, f"three callers took {elapsed:.1f}s: the timeout was not shared"


async def test_many_resolves_of_one_repository_share_one_listing(
    source: GitSource, history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"ls_remote": 0, "fetch": 0}
    lock = threading.Lock()
    real_ls_remote, real_fetch = Mirror.ls_remote, Mirror.fetch

    def counting_ls_remote(self: Mirror, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["ls_remote"] += 1
        return real_ls_remote(self, *args, **kwargs)

    def counting_fetch(self: Mirror, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["fetch"] += 1
        return real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(Mirror, "ls_remote", counting_ls_remote)
    monkeypatch.setattr(Mirror, "fetch", counting_fetch)
    results = await asyncio.gather(
        *(source.resolve(history.repo.url, rev) for rev in ["main", "dev", "v1", "v2"] * 5)
    )
    assert {r.commit for r in results} == {history.c1, history.c2, history.c3}
    # A listing in flight when a caller arrives may predate a push it must see, so such
    # callers make one more listing together: two round trips at most, one fetch.
    assert calls["ls_remote"] <= 2 and calls["fetch"] == 1, calls


# -- basic auth over smart HTTP ------------------------------------------------------


def basic_auth(username: str, password: str) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "type": "kubernetes.io/basic-auth",
        "metadata": {"name": "git-creds", "namespace": "shop"},
        "data": {"username": b64(username), "password": b64(password)},
    }


@pytest.fixture
def http_repo(tmp_path: Path) -> Iterator[tuple[SmartHTTPServer, Repo]]:
    root = tmp_path / "http-root"
    root.mkdir()
    with SmartHTTPServer(root, "deploy", PASSWORD) as server:
        made = new_repo(root, server.url, tmp_path)
        made.work.write("apps/web/vmapp.yaml", "files: []\n")
        made.work.commit("one")
        made.work.push("main")
        yield server, made


def leaked(text: str) -> bool:
    forms = [PASSWORD, base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()]
    forms.append(PASSWORD.replace("@", "%40").replace("/", "%2F").replace("+", "%2B"))
    return any(form in text for form in forms)


async def test_basic_auth_over_smart_http(
    source: GitSource,
    http_repo: tuple[SmartHTTPServer, Repo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, made = http_repo
    caplog.set_level(logging.DEBUG)
    errors: list[SourceError] = []

    resolved = await source.resolve(made.url, "main", basic_auth("deploy", PASSWORD))
    assert resolved.commit == made.work.head()
    folder = await source.checkout(made.url, resolved.commit, "apps/web")
    assert (folder / "vmapp.yaml").read_text() == "files: []\n"
    assert server.rejected >= 1  # git asked without credentials first, then used askpass

    with pytest.raises(GitAuthenticationFailed, match="refused the credentials") as wrong:
        await source.resolve(made.url, "main", basic_auth("deploy", PASSWORD + "x"))
    errors.append(wrong.value)
    with pytest.raises(GitAuthenticationFailed) as anonymous:
        await source.resolve(made.url, "main")
    errors.append(anonymous.value)
    with pytest.raises(GitAuthenticationFailed) as wrong_user:
        await source.resolve(made.url, "main", basic_auth(PASSWORD, PASSWORD))
    errors.append(wrong_user.value)

    with_user = made.url.replace("http://", "http://deploy@")
    assert (await source.resolve(with_user, "main", basic_auth("", PASSWORD))).commit
    with pytest.raises(GitAuthenticationFailed) as named_user:
        await source.resolve(with_user, "main", basic_auth("", "nope"))
    errors.append(named_user.value)

    for error in errors:
        assert isinstance(error, GitFetchFailed)
        assert not leaked(str(error)) and not leaked(repr(error)), error
        assert "deploy@" not in str(error)
    assert caplog.records, "expected DEBUG records from the fetch path"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert not leaked(text), text
        assert "deploy@" not in text, text


async def test_password_never_follows_a_redirect_to_another_host(
    source: GitSource, http_repo: tuple[SmartHTTPServer, Repo], tmp_path: Path
) -> None:
    """The askpass helper answers only for the repoURL's own host:port."""
    target, made = http_repo
    with SmartHTTPServer(tmp_path, "x", "y", redirect_to=target.url) as redirector:
        url = made.url.replace(target.url, redirector.url)
        with pytest.raises(GitAuthenticationFailed):
            await source.resolve(url, "main", basic_auth("deploy", PASSWORD))
        assert redirector.requests >= 1
    assert not any(leaked(header) for header in target.authorizations)


async def test_password_never_in_url_or_argv(
    source: GitSource, http_repo: tuple[SmartHTTPServer, Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """git is started with the password nowhere in its command line."""
    import git as gitpython

    seen: list[list[str]] = []
    real = gitpython.Git.execute

    def spy(self: gitpython.Git, command: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append([str(part) for part in command])
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(gitpython.Git, "execute", spy)
    _, made = http_repo
    await source.resolve(made.url, "main", basic_auth("deploy", PASSWORD))
    assert any("ls-remote" in argv for argv in seen)
    assert not any(leaked(" ".join(argv)) for argv in seen)


# -- SSH against the fleet's real sshd ------------------------------------------------


def ssh_auth(private_key: str, known_hosts: str | None) -> dict[str, Any]:
    data = {"ssh-privatekey": base64.b64encode(private_key.encode()).decode()}
    if known_hosts is not None:
        data["known_hosts"] = base64.b64encode(known_hosts.encode()).decode()
    return {"type": "kubernetes.io/ssh-auth", "data": data}


def other_key(tmp_path: Path) -> str:
    key = tmp_path / "other_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    return key.read_text()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ssh://{user}@{address}:{port}/srv/app.git", id="ssh-url"),
        pytest.param("{user}@{address}:/srv/app.git", id="scp-like"),
    ],
)
async def test_ssh_key_and_known_hosts_reach_a_real_sshd(
    source: GitSource, fleet: list[VM], tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet's VMs run OpenSSH without git: authentication succeeds, then the server
    has no git-upload-pack. A wrong host key or key fails earlier, with its own reason."""
    # This process's key folders only: operators SIGKILLed by the chaos tests (or other
    # checkouts' runs) leave theirs in the shared /tmp.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    vm = fleet[0]
    if "{port}" not in url and vm.port != 22:
        pytest.skip("scp-like URLs have no port")
    repo_url = url.format(user=vm.user, address=vm.address, port=vm.port)
    host = vm.address if vm.port == 22 else f"[{vm.address}]:{vm.port}"
    right_hosts = f"{host} {vm.host_public_key}\n"
    wrong_host_key = next((v.host_public_key for v in fleet[1:]), None)

    with pytest.raises(GitFetchFailed, match="no git-upload-pack") as ok:
        await source.resolve(repo_url, "main", ssh_auth(vm.private_key, right_hosts))
    assert type(ok.value) is GitFetchFailed  # got past host key and key checks

    if wrong_host_key is not None:
        with pytest.raises(GitAuthenticationFailed, match="known_hosts"):
            await source.resolve(
                repo_url, "main", ssh_auth(vm.private_key, f"{host} {wrong_host_key}\n")
            )
    with pytest.raises(GitAuthenticationFailed, match="refused the credentials") as refused:
        await source.resolve(repo_url, "main", ssh_auth(other_key(tmp_path), right_hosts))
    assert vm.private_key.splitlines()[1] not in str(refused.value)
    with pytest.raises(GitCredentialsInvalid, match="known_hosts"):
        await source.resolve(repo_url, "main", ssh_auth(vm.private_key, None))
    leftovers = glob.glob(os.path.join(tempfile.gettempdir(), "vmgitops-git-*"))
    assert leftovers == [], "key files must be removed after each git command"
