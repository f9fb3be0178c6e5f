"""The pure parsers of probe output, in one place for callers and for the import contract.

Nothing under `vmgitops.facts` runs a command: a probe is a constant script plus one of
these parsers; the transport runs the script.
"""

from vmgitops.facts.health import parse_health
from vmgitops.facts.observe import parse_observation
from vmgitops.facts.records import MalformedOutput, parse_records
from vmgitops.facts.system import parse_os_release, parse_system_facts

__all__ = [
    "MalformedOutput",
    "parse_health",
    "parse_observation",
    "parse_os_release",
    "parse_records",
    "parse_system_facts",
]
