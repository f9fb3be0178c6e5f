"""Credentials from Secrets, checked against the URL, handed to git out of argv and URL."""

from __future__ import annotations

import base64
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vmgitops.source import (
    BasicAuth,
    GitCredentialsInvalid,
    SourcePolicy,
    SSHAuth,
    credentials_from_secret,
    parse_repo_url,
)
from vmgitops.source.credentials import (
    PASSWORD_ENV,
    auth_env,
    check_fit,
    fingerprint,
    secrets_of,
    sweep_stale_scratch,
)
from vmgitops.source.gitcmd import base_env

PASSWORD = "pa55:w0rd with spaces'\"$(id)"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(kind: str, **data: str) -> dict[str, Any]:
    return {
        "type": kind,
        "metadata": {"name": "git-creds", "namespace": "shop"},
        "data": {k.replace("_", "-"): b64(v) for k, v in data.items()},
    }


def test_basic_auth_secret() -> None:
    creds = credentials_from_secret(
        secret("kubernetes.io/basic-auth", username="deploy", password=PASSWORD + "\n")
    )
    assert creds == BasicAuth("deploy", PASSWORD)
    assert PASSWORD not in repr(creds)


def test_ssh_auth_secret_normalizes_key() -> None:
    raw = secret("kubernetes.io/ssh-auth", ssh_privatekey=KEY.replace("\n", "\r\n"))
    raw["data"]["known_hosts"] = b64("h ssh-ed25519 AAAA")
    creds = credentials_from_secret(raw)
    assert isinstance(creds, SSHAuth)
    assert creds.private_key == KEY + "\n"
    assert creds.known_hosts == "h ssh-ed25519 AAAA"
    assert "b3BlbnNz" not in repr(creds)


def test_parsed_credentials_and_none_pass_through() -> None:
    creds = BasicAuth("u", "p")
    assert credentials_from_secret(creds) is creds
    assert credentials_from_secret(None) is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        pytest.param({"type": "Opaque", "data": {}}, "has type 'Opaque'", id="wrong-type"),
        pytest.param(secret("kubernetes.io/basic-auth"), "neither", id="basic-auth-empty"),
        pytest.param(secret("kubernetes.io/ssh-auth"), "'ssh-privatekey'", id="ssh-key-missing"),
        pytest.param(
            {"type": "kubernetes.io/basic-auth", "data": {"password": "%%%"}},
            "not base64",
            id="bad-base64",
        ),
        pytest.param(
            {"type": "kubernetes.io/basic-auth", "data": ["x"]}, "no data", id="data-not-a-map"
        ),
    ],
)
def test_bad_secrets(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(GitCredentialsInvalid, match=says) as info:
        credentials_from_secret(raw)
    assert "%%%" not in str(info.value)


def test_secret_named_in_message() -> None:
    with pytest.raises(GitCredentialsInvalid, match="Secret shop/git-creds"):
        credentials_from_secret(secret("kubernetes.io/ssh-auth"))


SSH_OK = SSHAuth(KEY + "\n", "h ssh-ed25519 AAAA")


@pytest.mark.parametrize(
    ("url", "creds", "policy", "says"),
    [
        pytest.param(
            "ssh://git@h/r.git",
            None,
            SourcePolicy(),
            "name a kubernetes.io/ssh-auth",
            id="ssh-without-secret",
        ),
        pytest.param(
            "git@h:r.git", BasicAuth("u", "p"), SourcePolicy(), "ssh-auth", id="ssh-with-basic-auth"
        ),
        pytest.param(
            "ssh://git@h/r.git",
            SSHAuth(KEY, None),
            SourcePolicy(),
            "add the server's host keys",
            id="ssh-without-known-hosts",
        ),
        pytest.param(
            "ssh://git@h/r.git",
            SSHAuth(KEY, "  \n"),
            SourcePolicy(),
            "known_hosts",
            id="ssh-with-blank-known-hosts",
        ),
        pytest.param(
            "https://h/r.git",
            SSH_OK,
            SourcePolicy(),
            "use a kubernetes.io/basic-auth",
            id="https-with-ssh-key",
        ),
        pytest.param(
            "http://git.example.com/r.git",
            BasicAuth("u", "p"),
            SourcePolicy(),
            "clear text",
            id="password-over-plain-http",
        ),
    ],
)
def test_credentials_that_do_not_fit(
    url: str, creds: BasicAuth | SSHAuth | None, policy: SourcePolicy, says: str
) -> None:
    with pytest.raises(GitCredentialsInvalid, match=says):
        check_fit(creds, parse_repo_url(url), policy)


@pytest.mark.parametrize(
    ("url", "creds", "policy"),
    [
        pytest.param(
            "ssh://git@h/r.git", SSH_OK, SourcePolicy(), id="ssh-with-key-and-known-hosts"
        ),
        pytest.param("https://h/r.git", BasicAuth("u", "p"), SourcePolicy(), id="https-basic-auth"),
        pytest.param(
            "http://127.0.0.1:8080/r.git",
            BasicAuth("u", "p"),
            SourcePolicy(),
            id="plain-http-loopback",
        ),
        pytest.param(
            "http://git.example.com/r.git",
            BasicAuth("u", "p"),
            SourcePolicy(allow_plain_http_credentials=True),
            id="plain-http-allowed-by-policy",
        ),
        pytest.param(
            "git://h/r.git",
            BasicAuth("u", "p"),
            SourcePolicy(),
            id="git-protocol-ignores-credentials",
        ),
        pytest.param("https://h/r.git", None, SourcePolicy(), id="public-https"),
    ],
)
def test_credentials_that_fit(
    url: str, creds: BasicAuth | SSHAuth | None, policy: SourcePolicy
) -> None:
    check_fit(creds, parse_repo_url(url), policy)


HTTPS = parse_repo_url("https://git.example.com:8443/shop.git")


def test_askpass_answers_from_environment_only() -> None:
    creds = BasicAuth("deploy", PASSWORD)
    with auth_env(creds, HTTPS) as env:
        script = Path(env["GIT_ASKPASS"])
        assert stat.S_IMODE(script.stat().st_mode) == 0o700
        assert PASSWORD not in script.read_text()

        def ask(prompt: str) -> tuple[int, str]:
            run_env = {"PATH": os.environ["PATH"], **env}
            done = subprocess.run(
                [str(script), prompt], env=run_env, capture_output=True, text=True, check=False
            )
            return done.returncode, done.stdout

        host = "git.example.com:8443"
        assert ask(f"Username for 'https://{host}': ") == (0, "deploy\n")
        assert ask(f"Password for 'https://deploy@{host}': ") == (0, PASSWORD + "\n")
        assert ask(f"Password for 'https://{host}': ") == (0, PASSWORD + "\n")
        assert ask("Username for 'https://evil.example.com': ")[0] == 1
        assert ask("Password for 'https://deploy@evil.example.com': ")[0] == 1
        assert ask(f"Password for 'https://deploy@x{host}': ")[0] == 1
        assert ask("Something else? ")[0] == 1
        assert env[PASSWORD_ENV] == PASSWORD
    assert not script.parent.exists()


def test_ssh_key_in_private_file_removed_afterwards() -> None:
    with auth_env(SSH_OK, HTTPS, connect_timeout=7) as env:
        argv = shlex.split(env["GIT_SSH_COMMAND"])
        key = Path(argv[argv.index("-i") + 1])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        assert key.read_text() == SSH_OK.private_key
        options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
        known = next(o for o in options if o.startswith("UserKnownHostsFile="))
        assert Path(known.split("=", 1)[1]).read_text() == SSH_OK.known_hosts
        for wanted in (
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "ConnectTimeout=7",
        ):
            assert wanted in options
        assert argv[1:3] == ["-F", "/dev/null"]
        assert "b3BlbnNz" not in env["GIT_SSH_COMMAND"]
    assert not key.exists() and not key.parent.exists()


def test_anonymous_never_prompts() -> None:
    with auth_env(None, HTTPS) as env:
        assert Path(env["GIT_ASKPASS"]).name == "false"


def test_files_removed_when_git_fails() -> None:
    with pytest.raises(RuntimeError), auth_env(BasicAuth("u", "p"), HTTPS) as env:
        folder = Path(env["GIT_ASKPASS"]).parent
        raise RuntimeError("git failed")
    assert not folder.exists()


def test_fingerprint_and_scrub_list() -> None:
    assert fingerprint(None) == "anonymous"
    assert fingerprint(BasicAuth("u", "p")) != fingerprint(BasicAuth("u", "q"))
    assert PASSWORD not in fingerprint(BasicAuth("u", PASSWORD))
    assert secrets_of(BasicAuth("deploy", "pw")) == ["pw"]
    token = "t" * 40
    assert secrets_of(BasicAuth(token, "")) == ["", token]
    assert secrets_of(SSH_OK) == ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"]


def test_base_env_locks_git_down(tmp_path: Path) -> None:
    env = base_env(SourcePolicy(), tmp_path)
    assert env["GIT_ALLOW_PROTOCOL"] == "git:http:https:ssh"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_DIR"] == str(tmp_path)
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert config["protocol.allow"] == "never"
    assert config["protocol.https.allow"] == "always"
    assert "protocol.file.allow" not in config
    assert config["submodule.recurse"] == "false"
    assert config["core.hooksPath"] == "/dev/null"
    assert "file" in base_env(SourcePolicy(allow_file=True), tmp_path)["GIT_ALLOW_PROTOCOL"]


def test_sweep_removes_only_old_scratch_folders(tmp_path: Path) -> None:
    """A SIGKILLed operator's key folder goes at the next start; young ones and others stay."""
    old_ts = 1_000_000_000.0
    for name in ("vmgitops-git-old", "vmgitops-promote-old", "vmgitops-git-young", "other-old"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "id").write_text("key")
    (tmp_path / "vmgitops-git-file").write_text("not a folder")
    for name in ("vmgitops-git-old", "vmgitops-promote-old", "other-old", "vmgitops-git-file"):
        os.utime(tmp_path / name, (old_ts, old_ts))

    removed = sweep_stale_scratch(max_age=3600, root=tmp_path)

    assert sorted(removed) == ["vmgitops-git-old", "vmgitops-promote-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other-old",
        "vmgitops-git-file",
        "vmgitops-git-young",
    ]


def test_sweep_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert sweep_stale_scratch(root=tmp_path / "absent") == []
