"""The peers, set up the way their users would: an Ansible playbook and a pyinfra deploy
for the same workload, in a scratch folder, run from their own virtualenv.

* ansible-core: pipelining on, fact gathering off, forks 5 or 50, OpenSSH with
  ControlPersist (its default) and a fresh ControlPath folder per run, so every run
  starts cold like a cron job's; `-C` (compression) is left out of ssh_args so that no
  tool compresses. Restart through a handler; S4 is `serial: 10%` with
  `max_fail_percentage: 0`, the verify task being the health gate.
* pyinfra 3: its defaults (operations host by host in lockstep, parallel up to 20 per
  core); restart with `_if=config.did_change`; S4 runs one `pyinfra --limit ...` per
  batch and stops at the first batch that fails, since pyinfra has no batches of its own.

Both verify the config's sha256 and run the health command in one shell task.

On light hosts (no systemd) both run the light variant of the workload: no unit, and the
restart is the light restart command, run only when the config task changed something
(ansible: the handler is a `command` task; pyinfra: `server.shell(..., _if=...)`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import workload
from bench.fleetctl import CIPHER, KEX, Host, known_hosts_text

VENV = Path(os.environ.get("BENCH_VENV", Path.home() / ".cache/vmgitops/bench-venv")).expanduser()


def _verify(light: bool) -> str:
    return (
        f'echo "{{{{ expected_sha }}}}  {workload.CONF}" | sha256sum -c --quiet && '
        f"{workload.health_shell(light)}"
    )


VERIFY = _verify(False)

PLAY_TASKS = f"""\
  tasks:
    - name: directory
      ansible.builtin.file: {{path: {workload.CONF_DIR}, state: directory, mode: "0755"}}
    - name: unit file
      ansible.builtin.copy:
        dest: {workload.UNIT_PATH}
        mode: "0644"
        content: {workload.UNIT_TEXT!r}
      register: unit
    - name: config
      ansible.builtin.template:
        src: "templates/bench-v{{{{ bench_version }}}}.conf.j2"
        dest: {workload.CONF}
        mode: "0644"
      notify: restart
    - name: service enabled and running
      ansible.builtin.systemd_service:
        name: {workload.UNIT}
        enabled: true
        state: started
        daemon_reload: "{{{{ unit.changed }}}}"
    - name: restart if the config changed
      ansible.builtin.meta: flush_handlers
    - name: verify sha256 and health
      ansible.builtin.shell: {VERIFY!r}
      changed_when: false
  handlers:
    - name: restart
      ansible.builtin.systemd_service: {{name: {workload.UNIT}, state: restarted}}
"""


#: The light variant: the same file and template tasks; the handler runs the restart
#: command (argv, no shell of ansible's own).
PLAY_TASKS_LIGHT = f"""\
  tasks:
    - name: directory
      ansible.builtin.file: {{path: {workload.CONF_DIR}, state: directory, mode: "0755"}}
    - name: config
      ansible.builtin.template:
        src: "templates/bench-v{{{{ bench_version }}}}.conf.j2"
        dest: {workload.CONF}
        mode: "0644"
      notify: restart
    - name: restart if the config changed
      ansible.builtin.meta: flush_handlers
    - name: verify sha256 and health
      ansible.builtin.shell: {_verify(True)!r}
      changed_when: false
  handlers:
    - name: restart
      ansible.builtin.command:
        argv: {list(workload.LIGHT_RESTART)!r}
"""


def _ansible_play(serial: bool, light: bool = False) -> str:
    head = "- hosts: all\n  gather_facts: false\n"
    if serial:
        head += '  serial: "10%"\n  max_fail_percentage: 0\n'
    return head + (PLAY_TASKS_LIGHT if light else PLAY_TASKS)


def ansible_setup(run: Path, hosts: Sequence[Host], forks: int, light: bool = False) -> Path:
    d = run / f"ansible-f{forks}"
    (d / "templates").mkdir(parents=True, exist_ok=True)
    (d / "known_hosts").write_text(known_hosts_text(hosts))
    for version in ("1", "2"):
        (d / "templates" / f"bench-v{version}.conf.j2").write_text(
            workload.template("{{ inventory_hostname }}", version)
        )
    (d / "site.yml").write_text(_ansible_play(serial=False, light=light))
    (d / "rollout.yml").write_text(_ansible_play(serial=True, light=light))
    ssh_args = " ".join(
        [
            "-F /dev/null",
            "-o ControlMaster=auto -o ControlPersist=60s",
            f"-o UserKnownHostsFile={d / 'known_hosts'} -o StrictHostKeyChecking=yes",
            f"-o KexAlgorithms={KEX} -o Ciphers={CIPHER}",
            "-o IdentitiesOnly=yes",
        ]
    )
    (d / "ansible.cfg").write_text(
        f"""\
[defaults]
forks = {forks}
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
deprecation_warnings = False
local_tmp = {d}/tmp

[ssh_connection]
pipelining = True
ssh_args = {ssh_args}
"""
    )
    return d


def _ansible_inventory(d: Path, hosts: Sequence[Host], version: str) -> Path:
    lines = ["[all]"]
    for h in hosts:
        lines.append(
            f"{h.name} ansible_host={h.address} ansible_port={h.port} "
            f"expected_sha={workload.expected_sha(h.name, version)}"
        )
    lines += [
        "[all:vars]",
        f"ansible_user={hosts[0].user}",
        f"ansible_ssh_private_key_file={hosts[0].key_file}",
        f"bench_version={version}",
    ]
    path = d / f"inventory-v{version}.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible_command(
    d: Path, hosts: Sequence[Host], version: str, rollout: bool, tag: str
) -> tuple[list[str], dict[str, str]]:
    inventory = _ansible_inventory(d, hosts, version)
    # A fresh ControlPath folder: this run starts cold. Short and under /tmp: ssh refuses
    # a socket path over 108 bytes, which a deep work folder exceeded (every host
    # "unreachable" at 500 light hosts).
    key = hashlib.sha256(str(d / tag).encode()).hexdigest()[:12]
    control = Path(tempfile.gettempdir()) / f"vmgb-cp-{key}"
    control.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(d / "ansible.cfg"),
        "ANSIBLE_HOME": str(d / "home"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
    playbook = "rollout.yml" if rollout else "site.yml"
    argv = [str(VENV / "bin/ansible-playbook"), "-i", str(inventory), str(d / playbook)]
    return argv, env


# -- pyinfra -----------------------------------------------------------------------------

PYINFRA_DEPLOY = f"""\
from io import StringIO

from pyinfra import host
from pyinfra.operations import files, server, systemd

version = host.data.bench_version
files.directory(name="directory", path={workload.CONF_DIR!r}, mode="755")
unit = files.put(
    name="unit file", src=StringIO({workload.UNIT_TEXT!r}), dest={workload.UNIT_PATH!r},
    mode="644",
)
config = files.template(
    name="config", src=f"templates/bench-v{{version}}.conf.j2", dest={workload.CONF!r},
    mode="644",
)
systemd.daemon_reload(name="daemon-reload if the unit changed", _if=unit.did_change)
systemd.service(
    name="service enabled and running", service={workload.UNIT!r}, running=True,
    enabled=True,
)
systemd.service(
    name="restart if the config changed", service={workload.UNIT!r}, restarted=True,
    _if=config.did_change,
)
server.shell(
    name="verify sha256 and health",
    commands=[
        f'echo "{{host.data.expected_sha}}  {workload.CONF}" | sha256sum -c --quiet && '
        {workload.HEALTH_SHELL!r}
    ],
)
"""


#: The light variant: the restart is one shell command when the config changed.
PYINFRA_DEPLOY_LIGHT = f"""\
from pyinfra import host
from pyinfra.operations import files, server

version = host.data.bench_version
files.directory(name="directory", path={workload.CONF_DIR!r}, mode="755")
config = files.template(
    name="config", src=f"templates/bench-v{{version}}.conf.j2", dest={workload.CONF!r},
    mode="644",
)
server.shell(
    name="restart if the config changed", commands=[{workload.LIGHT_RESTART_SHELL!r}],
    _if=config.did_change,
)
server.shell(
    name="verify sha256 and health",
    commands=[
        f'echo "{{host.data.expected_sha}}  {workload.CONF}" | sha256sum -c --quiet && '
        {workload.LIGHT_HEALTH_SHELL!r}
    ],
)
"""


def pyinfra_setup(run: Path, hosts: Sequence[Host], light: bool = False) -> Path:
    d = run / "pyinfra"
    (d / "templates").mkdir(parents=True, exist_ok=True)
    (d / "known_hosts").write_text(known_hosts_text(hosts))
    for version in ("1", "2"):
        (d / "templates" / f"bench-v{version}.conf.j2").write_text(
            workload.template("{{ host.name }}", version)
        )
    (d / "deploy.py").write_text(PYINFRA_DEPLOY_LIGHT if light else PYINFRA_DEPLOY)
    return d


def _pyinfra_inventory(d: Path, hosts: Sequence[Host], version: str) -> Path:
    entries = []
    for h in hosts:
        data = {
            "ssh_hostname": h.address,
            "ssh_port": h.port,
            "ssh_user": h.user,
            "ssh_key": str(h.key_file),
            "ssh_known_hosts_file": str(d / "known_hosts"),
            "ssh_strict_host_key_checking": "yes",
            "ssh_look_for_keys": False,
            "ssh_allow_agent": False,
            "expected_sha": workload.expected_sha(h.name, version),
            "bench_version": version,
        }
        entries.append(f"    ({h.name!r}, {data!r}),")
    path = d / f"inventory_v{version}.py"
    path.write_text("hosts = [\n" + "\n".join(entries) + "\n]\n")
    return path


def pyinfra_commands(
    d: Path, hosts: Sequence[Host], version: str, batch_percent: float
) -> tuple[list[str], dict[str, str]]:
    """One command line; for batches, one `pyinfra --limit ...` per batch, chained by &&."""
    inventory = _pyinfra_inventory(d, hosts, version)
    exe = str(VENV / "bin/pyinfra")
    base = [exe, "-y", str(inventory), "deploy.py"]
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}"}
    if batch_percent <= 0:
        return base, env
    size = max(1, math.ceil(len(hosts) * batch_percent / 100))
    runs = []
    for i in range(0, len(hosts), size):
        # One --limit per host: a comma-separated list matches no host, and pyinfra
        # then does nothing and exits 0.
        limits = [arg for h in hosts[i : i + size] for arg in ("--limit", h.name)]
        runs.append(shlex.join([exe, "-y", *limits, str(inventory), "deploy.py"]))
    return ["sh", "-c", " && ".join(runs)], env
