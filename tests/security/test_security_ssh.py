"""SSH security of a real operator against real sshd (LogLevel DEBUG1 on three VMs):

* a host key mismatch is refused before any authentication: the VM's sshd logs the
  operator's connections and not one `userauth-request`;
* the operator only ever opens `session` channels and sends `exec` requests: no agent,
  X11 or port forwarding, no pty, in probes, observes, applies and health checks;
* a sudo password never appears in any process's argv or environment on the VM (sampled
  every 50 ms while the operator probes and applies through sudo), nor in its journal.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apprepo import AppRepo
from chaos import bed, figures
from testbed import VM

pytestmark = pytest.mark.e2e

AREA = "4 ssh"
DEBUG_DROPIN = "/etc/ssh/sshd_config.d/05-vmgitops-chaos-debug.conf"
SUDO_SETUP = """
set -e
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
echo 'deploy:{password}' | chpasswd
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
install -m 600 -o deploy -g deploy /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL:ALL) ALL' > /etc/sudoers.d/deploy
chmod 440 /etc/sudoers.d/deploy
"""
SAMPLER = """
n=0
while [ ! -e {stop} ] && [ $n -lt 4000 ]; do
  ps -eo pid,user,args
  for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done
  echo =====
  n=$((n + 1))
  sleep 0.05
done > {out} 2>/dev/null
"""
FORBIDDEN = re.compile(
    r"auth-agent|x11|tcpip-forward|direct-tcpip|streamlocal|pty-req|ctype (?!session)"
)
APP = """\
files:
  - {{path: /etc/vmgt-ssh-{id}/a.conf, content: "on {{{{ target.name }}}}\\n", template: true}}
commands:
  - {{name: hello, run: ["/bin/sh", "-c", "echo hi > /var/lib/vmgt-ssh-{id}.log"]}}
healthChecks:
  - {{name: file, command: ["test", "-f", "/etc/vmgt-ssh-{id}/a.conf"]}}
"""


def journal_by_pid(vm: VM, cursor: str) -> dict[int, list[str]]:
    out = bed.vm_out(vm, f"journalctl -u ssh.service --after-cursor='{cursor}' --no-pager -o json")
    by_pid: dict[int, list[str]] = defaultdict(list)
    for line in out.splitlines():
        rec = json.loads(line)
        msg = rec.get("MESSAGE")
        if isinstance(msg, list):  # journald stores non-UTF-8 messages as bytes
            msg = bytes(msg).decode("utf-8", "replace")
        by_pid[int(rec.get("_PID", 0))].append(str(msg))
    return by_pid


@pytest.fixture
def debug_sshd(chaos_vms: list[VM]) -> Iterator[list[VM]]:
    vms = chaos_vms[-8:-5]  # vm53, vm54, vm55
    for vm in vms:
        bed.vm_sh(vm, f"printf 'LogLevel DEBUG1\\n' > {DEBUG_DROPIN}; systemctl restart ssh")
    yield vms
    for vm in vms:
        bed.vm_sh(vm, f"rm -f {DEBUG_DROPIN}; systemctl restart ssh", check=False)


def test_ssh_security(
    shared_namespace: str, shared_operator: bed.Operator, debug_sshd: list[VM], tmp_path: Path
) -> None:
    ns, op = shared_namespace, shared_operator
    mismatch_vm, sudo_vm, plain_vm = debug_sshd
    password = f"pw-{secrets.token_hex(12)}"
    run = secrets.token_hex(4)
    bed.vm_sh(sudo_vm, SUDO_SETUP.format(password=password))
    repo = AppRepo(tmp_path)
    (repo.work / "vmapp.yaml").write_text(APP.format(id=run))
    sha = repo.commit("ssh app")
    cursors = {vm.name: bed.sshd_cursor(vm) for vm in debug_sshd}
    stop, dump = f"/tmp/vmgt-ps-stop-{run}", f"/tmp/vmgt-ps-{run}"
    bed.vm_sh(
        sudo_vm,
        f"nohup sh -c '{SAMPLER.format(stop=stop, out=dump)}' </dev/null >/dev/null 2>&1 &",
    )
    objs: list[dict[str, Any]] = [
        bed.ssh_secret(ns, plain_vm),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "sudo-pw", "namespace": ns},
            "stringData": {"password": password},
        },
        bed.target(ns, plain_vm, {"app": "yes"}),
        bed.target(
            ns,
            sudo_vm,
            {"app": "yes"},
            user="deploy",
            become={"method": "sudo", "user": "root", "passwordSecretRef": {"name": "sudo-pw"}},
        ),
        bed.target(ns, mismatch_vm, {"app": "no"}),
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VMApplication",
            "metadata": {"name": "ssh", "namespace": ns},
            "spec": {
                "source": {"repoURL": repo.url, "targetRevision": "main"},
                "destination": {"selector": {"matchLabels": {"app": "yes"}}},
                "syncPolicy": {"automated": {}},
                "refreshInterval": "5s",
            },
        },
    ]
    # The mismatch target pins another VM's host key.
    objs[4]["spec"]["hostKey"]["publicKeys"] = [plain_vm.host_public_key]
    try:
        bed.apply(objs)

        def state() -> tuple[str, str] | None:
            mm = bed.get("vmt", ns, mismatch_vm.name)
            reason = next(
                (
                    c["reason"]
                    for c in (mm.get("status") or {}).get("conditions") or []
                    if c["type"] == "Reachable"
                ),
                "",
            )
            st = bed.get("vmapp", ns, "ssh").get("status") or {}
            synced = (st.get("sync") or {}).get("revision") == sha and (
                st.get("summary") or {}
            ).get("synced") == 2
            return (reason, "synced") if reason == "HostKeyMismatch" and synced else None

        bed.eventually(state, timeout=180, what="HostKeyMismatch and the app synced on two VMs")
        time.sleep(6)  # one more probe cycle of every target
    finally:
        bed.clean_namespace(ns)  # the operator stops probing these VMs
        bed.vm_sh(sudo_vm, f"touch {stop}")
        time.sleep(0.5)
        samples = bed.vm_out(sudo_vm, f"cat {dump}; rm -f {dump} {stop}", check=False)
        journal = bed.vm_out(
            sudo_vm,
            f"journalctl --after-cursor='{cursors[sudo_vm.name]}' --no-pager -o cat",
            check=False,
        )
        for vm in (plain_vm, sudo_vm):
            bed.vm_sh(
                vm,
                f"rm -rf /etc/vmgt-ssh-{run} /var/lib/vmgt-ssh-{run}.log "
                f"/var/lib/vmgitops/{ns}_ssh",
                check=False,
            )
        repo.remove()
        print(f"\noperator log: {op.log_path}")

    # (1) host key mismatch: connections, and no authentication at all.
    mm = journal_by_pid(mismatch_vm, cursors[mismatch_vm.name])
    mm_conns = [p for p, lines in mm.items() if any("Connection from" in x for x in lines)]
    auth = [
        x
        for lines in mm.values()
        for x in lines
        if re.search(r"userauth-request|publickey|Accepted|Failed|Postponed", x)
    ]
    # (2) channel and request types over everything the operator did on the other two.
    kinds: Counter[str] = Counter()
    forbidden: list[str] = []
    for vm in (plain_vm, sudo_vm):
        for lines in journal_by_pid(vm, cursors[vm.name]).values():
            for x in lines:
                m = re.search(
                    r"ctype (\S+)|rtype (\S+)|session_input_channel_req: session \d+ req (\S+)",
                    x,
                )
                if m:
                    kinds[next(g for g in m.groups() if g)] += 1
                if FORBIDDEN.search(x) and "key options" not in x:
                    forbidden.append(x)
    # (3) the sudo password in process lists and environments.
    n_samples = samples.count("=====")
    sudo_seen = sum(1 for x in samples.splitlines() if " sudo -k -S" in x)
    in_ps = samples.count(password)
    in_journal = journal.count(password)
    print(f"mismatch: {len(mm_conns)} connection(s), auth lines {auth[:3]}")
    print(f"requests seen: {dict(kinds)}")
    print(f"ps/environ samples: {n_samples}, sudo processes seen: {sudo_seen}")
    figures.record(
        AREA,
        "host key mismatch: connections / authentication attempts",
        f"{len(mm_conns)} / {len(auth)}",
        "attempts == 0",
        len(auth) == 0,
    )
    figures.record(AREA, "SSH requests seen (types)", dict(kinds), "session/exec only", True)
    figures.count(AREA, "agent, X11, port forwarding or pty requests", len(forbidden))
    figures.record(
        AREA,
        "process-list samples on the sudo VM / sudo processes seen",
        f"{n_samples} / {sudo_seen}",
        "informative",
        True,
    )
    figures.count(
        AREA, "sudo password in process lists, environments or journal", in_ps + in_journal
    )
    assert mm_conns, "the operator never connected to the mismatch VM"
    assert not auth, auth[:5]
    assert not forbidden, forbidden[:5]
    assert set(kinds) <= {
        "session",
        "exec",
        "no-more-sessions@openssh.com",
        "keepalive@openssh.com",
    }, kinds
    assert n_samples > 20 and sudo_seen > 0, (n_samples, sudo_seen)
    assert in_ps == 0 and in_journal == 0
