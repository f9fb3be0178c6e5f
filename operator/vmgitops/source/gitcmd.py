"""Running git: one locked-down environment and a hard timeout for every invocation.

Commands go through GitPython's `Git.execute`, which kills the process and all its
descendants (git-remote-https, ssh) when `kill_after_timeout` expires. The environment
ignores system and global configuration and attributes, allows only our transports,
never prompts, runs no hooks and never recurses into submodules; inherited variables
that would redirect git (GIT_DIR, `git -c` parameters, traces) are overridden.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from .urls import SourcePolicy

_CONFIG: tuple[tuple[str, str], ...] = (
    ("protocol.allow", "never"),
    ("core.hooksPath", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.symlinks", "true"),
    ("core.logAllRefUpdates", "false"),
    ("credential.helper", ""),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("gc.autoDetach", "false"),
    ("maintenance.autoDetach", "false"),
    ("http.lowSpeedLimit", "1000"),
    ("http.lowSpeedTime", "30"),
    ("protocol.version", "2"),
)


#: The remote every network command names; its URL lives only in the environment.
REMOTE = "origin"


def base_env(policy: SourcePolicy, git_dir: Path, remote_url: str | None = None) -> dict[str, str]:
    """What every git command of vmgitops runs with (credentials come on top).

    `remote_url` becomes `remote.origin.url` through GIT_CONFIG_*: the URL (which may
    carry a user name) is then in no argv, no log line of GitPython, and no file.
    """
    config = [
        *_CONFIG,
        *((f"protocol.{name}.allow", "always") for name in policy.protocols),
        *([(f"remote.{REMOTE}.url", remote_url)] if remote_url else []),
    ]
    env = {
        "GIT_DIR": str(git_dir),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_PARAMETERS": "",
        "GIT_ALLOW_PROTOCOL": ":".join(policy.protocols),
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TRACE": "0",
        "GIT_TRACE_PACKET": "0",
        "GIT_TRACE_CURL": "0",
        "GIT_TRACE_REDACT": "1",
        "GIT_NAMESPACE": "",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": "",
        "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
        "GIT_CONFIG_COUNT": str(len(config)),
        "LC_ALL": "C",
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


@dataclass(frozen=True)
class GitResult:
    """What a git command did; `stderr` is raw and must be scrubbed before it is shown."""

    status: int
    stdout: str
    stderr: str
    timed_out: bool
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out


def run_git(
    git_dir: Path,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
) -> GitResult:
    """Runs `git ARGS` (blocking): killed with its children after `timeout` seconds."""
    runner = git.Git(str(cwd or git_dir))
    started = time.monotonic()
    status, stdout, stderr = runner.execute(
        ["git", *args],
        env=dict(env),
        kill_after_timeout=timeout,
        with_extended_output=True,
        with_exceptions=False,
        strip_newline_in_stdout=False,
    )
    elapsed = time.monotonic() - started
    err = stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")
    out = stdout if isinstance(stdout, str) else stdout.decode("utf-8", "replace")
    timed_out = status != 0 and (err.startswith("Timeout:") or elapsed >= timeout)
    return GitResult(int(status), out, err, timed_out, elapsed)
