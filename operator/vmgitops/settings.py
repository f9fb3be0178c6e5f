"""Operator settings, from the command line and VMGITOPS_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name}={raw!r} is not a number of seconds") from exc


def _env_int(name: str, default: int) -> int:
    return int(_env_float(name, default))


def _env_count(name: str, default: int) -> int:
    """A whole number of at least 1 (a limit of 0 would stop all work)."""
    value = _env_int(name, default)
    if value < 1:
        raise SystemExit(f"{name}={value} must be at least 1")
    return value


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name}={raw!r} is not a boolean (true or false)")


@dataclass
class Settings:
    """Knobs that size the operator to its fleet; defaults suit thousands of targets."""

    probe_interval: float = field(default_factory=lambda: _env_float("VMGITOPS_PROBE_INTERVAL", 60))
    #: Reachability probes a second, fleet-wide: beyond probe_interval * probe_budget
    #: targets, each target's interval grows to fleet size / budget (0: no limit).
    probe_budget: float = field(default_factory=lambda: _env_float("VMGITOPS_PROBE_BUDGET", 20))
    #: Probes are spread over this fraction of the interval so 5,000 targets never align.
    probe_jitter: float = field(default_factory=lambda: _env_float("VMGITOPS_PROBE_JITTER", 0.2))
    connect_timeout: float = field(
        default_factory=lambda: _env_float("VMGITOPS_CONNECT_TIMEOUT", 10)
    )
    command_timeout: float = field(
        default_factory=lambda: _env_float("VMGITOPS_COMMAND_TIMEOUT", 30)
    )
    #: lastProbeTime is refreshed at most this often when nothing else changed.
    probe_time_refresh: float = field(
        default_factory=lambda: _env_float("VMGITOPS_PROBE_TIME_REFRESH", 300)
    )
    max_concurrent_connects: int = field(
        default_factory=lambda: _env_int("VMGITOPS_MAX_CONCURRENT_CONNECTS", 64)
    )
    max_inflight_commands: int = field(
        default_factory=lambda: _env_int("VMGITOPS_MAX_INFLIGHT_COMMANDS", 512)
    )
    #: Targets one VMApplication observes at once in a tick (each a few SSH commands
    #: over the shared pool, which max_inflight_commands bounds for all of them).
    observe_concurrency: int = field(
        default_factory=lambda: _env_count("VMGITOPS_OBSERVE_CONCURRENCY", 32)
    )
    #: Targets of one rollout batch synced at once. A batch of thousands (maxUnavailable
    #: 100%) otherwise holds every target's rendered files, plan and apply stream in
    #: memory together: at 5,000 targets that was the operator's peak RSS.
    sync_concurrency: int = field(
        default_factory=lambda: _env_count("VMGITOPS_SYNC_CONCURRENCY", 128)
    )
    idle_close: float = field(default_factory=lambda: _env_float("VMGITOPS_IDLE_CLOSE", 600))
    metrics_port: int = field(default_factory=lambda: _env_int("VMGITOPS_METRICS_PORT", 8080))
    health_port: int = field(default_factory=lambda: _env_int("VMGITOPS_HEALTH_PORT", 8081))
    #: Git sources beyond the safe default, for a test bed, never a shared cluster:
    #: file:// URLs and local paths (they read the operator's own disk)...
    git_allow_file: bool = field(default_factory=lambda: _env_bool("VMGITOPS_GIT_ALLOW_FILE"))
    #: ...link-local hosts and cloud metadata names (they hand out cloud credentials)...
    git_allow_insecure_hosts: bool = field(
        default_factory=lambda: _env_bool("VMGITOPS_GIT_ALLOW_INSECURE_HOSTS")
    )
    #: ...and Basic-auth passwords over plain http:// to a host other than loopback.
    #: `ext::` and other remote helpers run programs and are never allowed.
    git_allow_plain_http_credentials: bool = field(
        default_factory=lambda: _env_bool("VMGITOPS_GIT_ALLOW_PLAIN_HTTP_CREDENTIALS")
    )


_current: Settings | None = None


def current() -> Settings:
    """The process-wide settings, created on first use."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def install(settings: Settings) -> None:
    global _current
    _current = settings
