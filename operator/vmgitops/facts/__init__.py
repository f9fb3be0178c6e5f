"""Fact probes: each a constant shell script (data only as argv) and a pure parser.

`system` reports what a VM is (OS, init, package manager); `observe` reports, in one
command, the state of everything one application manages on it; `health` runs an
application's health checks, also in one command.
"""

from vmgitops.facts.health import CheckResult, health_argv, health_timeout, parse_health
from vmgitops.facts.observe import ObserveRequest, parse_observation, request_for
from vmgitops.facts.observed import ObservedState
from vmgitops.facts.records import MalformedOutput
from vmgitops.facts.system import SystemFacts, parse_system_facts, system_probe_argv

__all__ = [
    "CheckResult",
    "MalformedOutput",
    "ObserveRequest",
    "ObservedState",
    "SystemFacts",
    "health_argv",
    "health_timeout",
    "parse_health",
    "parse_observation",
    "parse_system_facts",
    "request_for",
    "system_probe_argv",
]
