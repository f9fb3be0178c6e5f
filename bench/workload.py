"""The one workload every tool runs, and each tool's way of writing it down.

On every host: ensure the directory /etc/bench; write /etc/bench/bench.conf, a 4 KiB
templated config with one per-host value (the host's name) and the app version; install
the unit benchsvc.service and keep it enabled and running; restart it only when the
config changed; verify the config's sha256 and run the health command
(`systemctl is-active benchsvc.service`).

The service records the sha256 of the config it started with in /run/benchsvc.loaded,
so the harness can tell afterwards, for every tool, that a restart happened exactly
when the config changed (see `bench.fleetctl.verify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import yaml

APP = "bench"
CONF_DIR = "/etc/bench"
CONF = "/etc/bench/bench.conf"
UNIT = "benchsvc.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
LOADED = "/run/benchsvc.loaded"
HEALTH = ("systemctl", "is-active", UNIT)
HEALTH_SHELL = " ".join(HEALTH)

UNIT_TEXT = f"""\
[Unit]
Description=vmgitops benchmark service (records the config it started with)

[Service]
ExecStart=/bin/sh -c 'sha256sum {CONF} > {LOADED} && exec sleep infinity'

[Install]
WantedBy=multi-user.target
"""

_HOST = "\x00HOST\x00"
_VERSION = "\x00VERSION\x00"
_LINES = 61


def _body() -> str:
    head = [
        "# bench.conf: the vmgitops benchmark workload (4 KiB, one per-host value)",
        f"host = {_HOST}",
        f"version = {_VERSION}",
    ]
    opts = [
        f"option_{i:02d} = " + hashlib.sha256(f"option {i}".encode()).hexdigest()[:52]
        for i in range(_LINES)
    ]
    return "\n".join(head + opts) + "\n"


BODY = _body()


def template(host_expression: str, version: str) -> str:
    """The config as a Jinja2 template, the host's name written as `host_expression`."""
    return BODY.replace(_HOST, host_expression).replace(_VERSION, version)


def expected(host: str, version: str) -> bytes:
    """The config bytes `host` must end up with at `version`."""
    return template(host, version).encode()


def expected_sha(host: str, version: str) -> str:
    return hashlib.sha256(expected(host, version)).hexdigest()


# -- vmgitops --------------------------------------------------------------------------


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, the way a person writes vmapp.yaml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def vmapp_manifest(version: str, per_host: bool = True) -> str:
    """vmapp.yaml: the workload as a vmgitops app folder declares it.

    Without `per_host`, every host gets the same bytes (the scale run's simulated hosts
    replay one real VM's answers, so they must all want the same thing).
    """
    doc = {
        "directories": [{"path": CONF_DIR, "mode": "0755"}],
        "files": [
            {
                "path": CONF,
                "content": template("{{ target.name }}" if per_host else "any", version),
                "template": True,
                "mode": "0644",
            }
        ],
        "services": [
            {
                "name": UNIT,
                "unit": UNIT_TEXT,
                "enabled": True,
                "state": "running",
                "restartOnChange": [CONF],
            }
        ],
        "healthChecks": [{"name": "unit", "command": list(HEALTH)}],
    }
    return str(yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, width=1000))


def write_vmapp(folder: Path, version: str, per_host: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vmapp.yaml").write_text(vmapp_manifest(version, per_host))
    return folder


# -- the floor: one hand-written shell command per host --------------------------------

#: Reads the config on stdin; prints "changed" when it restarted the service. Exit 0 only
#: when the config's sha256 is $1 and the health command passes.
FLOOR_SCRIPT = f"""\
set -e
umask 022
mkdir -p {CONF_DIR}
t=$(mktemp {CONF_DIR}/.bench.XXXXXX)
cat > "$t"
unit_changed=0
if ! printf '%s' "$2" | cmp -s - {UNIT_PATH}; then
  printf '%s' "$2" > {UNIT_PATH}.tmp && mv {UNIT_PATH}.tmp {UNIT_PATH}
  unit_changed=1
fi
conf_changed=0
if cmp -s "$t" {CONF}; then rm -f "$t"; else chmod 0644 "$t"; mv "$t" {CONF}; conf_changed=1; fi
[ $unit_changed = 0 ] || systemctl daemon-reload
systemctl is-enabled -q {UNIT} || systemctl enable -q {UNIT}
if systemctl is-active -q {UNIT}; then
  [ $conf_changed = 0 ] || {{ systemctl restart {UNIT}; echo changed; }}
else
  systemctl start {UNIT}; echo changed
fi
echo "$1  {CONF}" | sha256sum -c --quiet
{HEALTH_SHELL} >/dev/null
"""


def floor_argv(host: str, version: str) -> Sequence[str]:
    return ("sh", "-c", FLOOR_SCRIPT, "bench-floor", expected_sha(host, version), UNIT_TEXT)


# -- state the harness sets up and checks ----------------------------------------------

RESET_SCRIPT = f"""\
systemctl disable --now {UNIT} >/dev/null 2>&1
rm -rf {CONF_DIR} {UNIT_PATH} {LOADED} /var/lib/vmgitops
systemctl daemon-reload
systemctl reset-failed >/dev/null 2>&1
true
"""

#: Prints the config's sha256, the sha256 the service loaded, the unit's state and when
#: it last entered it (a restart changes that), one per line.
STATE_SCRIPT = (
    f"(sha256sum {CONF} 2>/dev/null || echo none) | cut -d' ' -f1; "
    f"(cut -d' ' -f1 {LOADED} 2>/dev/null || echo none); "
    f"{HEALTH_SHELL} 2>/dev/null; "
    f"systemctl show -p ActiveEnterTimestampMonotonic --value {UNIT} 2>/dev/null; true"
)

DRIFT_SCRIPT = f"echo 'edited by hand' >> {CONF}"
