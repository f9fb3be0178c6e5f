"""The one workload every tool runs, and each tool's way of writing it down.

On every host: ensure the directory /etc/bench; write /etc/bench/bench.conf, a 4 KiB
templated config with one per-host value (the host's name) and the app version; install
the unit benchsvc.service and keep it enabled and running; restart it only when the
config changed; verify the config's sha256 and run the health command
(`systemctl is-active benchsvc.service`).

The service records the sha256 of the config it started with in /run/benchsvc.loaded,
so the harness can tell afterwards, for every tool, that a restart happened exactly
when the config changed (see `bench.fleetctl.verify`).

The light variant, for light hosts (hack/fleet/light.py: sshd alone, no init system),
is the same directory, config, per-host value and sha256 verify; the service is replaced
by what every tool can express without systemd: a restart COMMAND, run only when the
config changed, that records the sha256 of the config it "loaded" in /run/benchsvc.loaded,
and the health command `sha256sum -c --status /run/benchsvc.loaded` (the config the
"service" loaded is the one on disk). No unit file, no enable/start step.
"""

from __future__ import annotations

import hashlib
import shlex
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

#: The light variant's restart (argv, no shell of the tool's own needed) and health check.
#: The restart writes through a temporary file so the health check never sees half a line;
#: the file's mtime is when the "service" last (re)started.
LIGHT_RESTART = ("/bin/sh", "-c", f"sha256sum {CONF} > {LOADED}.tmp && mv {LOADED}.tmp {LOADED}")
LIGHT_RESTART_SHELL = shlex.join(LIGHT_RESTART)
LIGHT_HEALTH = ("sha256sum", "-c", "--status", LOADED)
LIGHT_HEALTH_SHELL = " ".join(LIGHT_HEALTH)


def health_shell(light: bool) -> str:
    return LIGHT_HEALTH_SHELL if light else HEALTH_SHELL


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


def vmapp_manifest(version: str, per_host: bool = True, light: bool = False) -> str:
    """vmapp.yaml: the workload as a vmgitops app folder declares it.

    Without `per_host`, every host gets the same bytes (the scale run's simulated hosts
    replay one real VM's answers, so they must all want the same thing). With `light`,
    the light variant: the restart is a command run on a change of the config.
    """
    doc: dict[str, object] = {
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
        # 30 s, not the default 5: at hundreds of hosts on 2 shared cores one command's
        # round trip can take longer, and a timed-out check fails the whole run.
        "healthChecks": [{"name": "unit", "command": list(HEALTH), "timeoutSeconds": 30}],
    }
    if light:
        # vmgitops runs an onChange command when the config's desired content changed (or
        # it never ran on this host): a drift repair restores the same bytes and does not
        # run it again, the "service" having loaded exactly those bytes already.
        del doc["services"], doc["healthChecks"]
        doc["commands"] = [{"name": "restart", "run": list(LIGHT_RESTART), "onChange": [CONF]}]
        doc["healthChecks"] = [
            {"name": "loaded", "command": list(LIGHT_HEALTH), "timeoutSeconds": 30}
        ]
    return str(yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, width=1000))


def write_vmapp(folder: Path, version: str, per_host: bool = True, light: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vmapp.yaml").write_text(vmapp_manifest(version, per_host, light))
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


#: The light variant of FLOOR_SCRIPT: the same, with the restart command for the service.
FLOOR_SCRIPT_LIGHT = f"""\
set -e
umask 022
mkdir -p {CONF_DIR}
t=$(mktemp {CONF_DIR}/.bench.XXXXXX)
cat > "$t"
if cmp -s "$t" {CONF}; then rm -f "$t"
else chmod 0644 "$t"; mv "$t" {CONF}; {LIGHT_RESTART_SHELL}; echo changed; fi
echo "$1  {CONF}" | sha256sum -c --quiet
{LIGHT_HEALTH_SHELL}
"""


def floor_argv(host: str, version: str, light: bool = False) -> Sequence[str]:
    if light:
        return ("sh", "-c", FLOOR_SCRIPT_LIGHT, "bench-floor", expected_sha(host, version))
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

RESET_SCRIPT_LIGHT = f"rm -rf {CONF_DIR} {LOADED} {LOADED}.tmp /var/lib/vmgitops\n"

#: STATE_SCRIPT for light hosts: "active" when the health command passes, and the
#: loaded file's mtime in nanoseconds (each restart rewrites it) as the start time.
STATE_SCRIPT_LIGHT = (
    f"(sha256sum {CONF} 2>/dev/null || echo none) | cut -d' ' -f1; "
    f"(cut -d' ' -f1 {LOADED} 2>/dev/null || echo none); "
    f"if {LIGHT_HEALTH_SHELL} 2>/dev/null; then echo active; else echo failed; fi; "
    f"stat -c %.9Y {LOADED} 2>/dev/null; true"
)


def reset_script(light: bool) -> str:
    return RESET_SCRIPT_LIGHT if light else RESET_SCRIPT


def state_script(light: bool) -> str:
    return STATE_SCRIPT_LIGHT if light else STATE_SCRIPT
