"""Git URL policy: file://, ext:: and link-local or metadata hosts are refused unless the
operator's administrator allows them (VMGITOPS_GIT_ALLOW_*), before git ever runs.

Runs git on local repositories only (no network): a refused URL must never reach git, and
an `ext::` URL that did would run its command and create a canary file.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from vmgitops import settings
from vmgitops.source import GitSource, SourcePolicy, URLRefused, parse_repo_url
from vmgitops.source.errors import RepoURLRefused
from vmgitops.source.gitsource import policy_from_settings

METADATA_AND_LINK_LOCAL = [
    "git://169.254.169.254/x.git",
    "http://169.254.169.254/latest/meta-data.git",
    "https://metadata.google.internal/x.git",
    "http://metadata/x.git",
    "git://instance-data.ec2.internal/x.git",
    "git://[fe80::1]/x.git",
    "http://[::ffff:169.254.169.254]/x.git",
    "http://[::ffff:a9fe:a9fe]/x.git",
    "git://0xa9fea9fe/x.git",
    "git://2852039166/x.git",
    "git://0251.0376.0251.0376/x.git",
    "git://169.254.1/x.git",
    "http://[fd00:ec2::254]/x.git",
    "http://100.100.100.200/x.git",
    "http://[64:ff9b::a9fe:a9fe]/x.git",
    "http://[2002:a9fe:a9fe::1]/x.git",
    "ssh://git@169.254.169.254/x.git",
    "git@169.254.169.254:x.git",
    "git@metadata.google.internal:x.git",
]


def ext_urls(canary: Path) -> list[str]:
    return [
        f"ext::sh -c touch% {canary}",
        f"ext::touch {canary}",
        f"fd::17,{canary}",
        f"transport::{canary}",
        f"EXT::sh -c 'touch {canary}'",
    ]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "VMGITOPS_GIT_ALLOW_FILE",
        "VMGITOPS_GIT_ALLOW_INSECURE_HOSTS",
        "VMGITOPS_GIT_ALLOW_PLAIN_HTTP_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings, "_current", None)
    return monkeypatch


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def local_repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository on disk with one commit on main."""
    work, bare = tmp_path / "work", tmp_path / "repo.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    (work / "vmapp.yaml").write_text("files: []\n")
    git("add", "-A", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "one", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return bare, git("rev-parse", "HEAD", cwd=work)


@pytest.mark.parametrize("url", METADATA_AND_LINK_LOCAL, ids=lambda u: f"refused:{u}")
def test_metadata_and_link_local_hosts_are_refused_by_default(url: str) -> None:
    with pytest.raises(URLRefused) as caught:
        parse_repo_url(url)
    assert "metadata" in str(caught.value) or "link-local" in str(caught.value)
    assert "VMGITOPS_GIT_ALLOW_INSECURE_HOSTS" in str(caught.value)
    # Allowed only by the administrator's explicit setting.
    parse_repo_url(url, SourcePolicy(allow_insecure_hosts=True))


def test_remote_helpers_are_refused_even_when_everything_else_is_allowed(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("VMGITOPS_GIT_ALLOW_FILE", "true")
    env.setenv("VMGITOPS_GIT_ALLOW_INSECURE_HOSTS", "true")
    canary = tmp_path / f"canary-{uuid.uuid4().hex[:8]}"
    source = GitSource(tmp_path / "cache", check_dns=False)
    assert source.policy.allow_file and source.policy.allow_insecure_hosts
    refused = 0
    for url in ext_urls(canary):
        with pytest.raises(RepoURLRefused):
            asyncio.run(source.resolve(url, "main"))
        refused += 1
    assert not canary.exists(), "a remote helper ran a command"
    print(f"\nremote helpers refused: {refused}/{len(ext_urls(canary))}, canary runs: 0")


def test_file_urls_only_with_the_operator_setting(
    env: pytest.MonkeyPatch, tmp_path: Path, local_repo: tuple[Path, str]
) -> None:
    bare, sha = local_repo
    for url in (f"file://{bare}", str(bare)):
        with pytest.raises(RepoURLRefused) as caught:
            asyncio.run(GitSource(tmp_path / "cache-default").resolve(url, "main"))
        assert "VMGITOPS_GIT_ALLOW_FILE=true" in str(caught.value)
    env.setenv("VMGITOPS_GIT_ALLOW_FILE", "1")
    env.setattr(settings, "_current", None)
    allowed = GitSource(tmp_path / "cache-allowed")
    assert allowed.policy.allow_file and not allowed.policy.allow_insecure_hosts
    assert asyncio.run(allowed.resolve(f"file://{bare}", "main")).commit == sha
    # Allowing file:// allows nothing else.
    with pytest.raises(RepoURLRefused):
        asyncio.run(allowed.resolve("git://169.254.169.254/x.git", "main"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", False, id="unset-is-off"),
        pytest.param("true", True, id="true"),
        pytest.param("1", True, id="one"),
        pytest.param("off", False, id="off"),
    ],
)
def test_settings_read_booleans(env: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    env.setenv("VMGITOPS_GIT_ALLOW_INSECURE_HOSTS", value)
    assert settings.Settings().git_allow_insecure_hosts is expected
    env.setattr(settings, "_current", None)
    assert policy_from_settings().allow_insecure_hosts is expected


def test_a_typo_in_a_setting_stops_the_operator(env: pytest.MonkeyPatch) -> None:
    env.setenv("VMGITOPS_GIT_ALLOW_FILE", "yes please")
    with pytest.raises(SystemExit, match="VMGITOPS_GIT_ALLOW_FILE"):
        settings.Settings()
