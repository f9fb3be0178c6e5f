"""Secret canaries: an SSH key, a sudo password and Git tokens, used on the good paths and
the error paths, never appear in the operator's DEBUG log (asyncssh's included), Events,
status, annotations (kopf's included), metrics or error messages; nor in the commits a
Promotion by GitCommit pushes with the token (its push and rollback, a wrong token, a
password or token in gitCommit.repoURL).

Every secret is a fresh canary, searched for plain, base64 (at every alignment, so inside
a longer base64 string too) and URL-encoded. Objects are created with `kubectl create`,
not `apply`, so that kubectl's own last-applied annotation does not copy them.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos import bed, figures
from gitserver import SmartHTTPServer, Workdir, git, init_bare, remove
from testbed import VM

pytestmark = pytest.mark.e2e

AREA = "7 secrets"

SUDO_SETUP = """
set -e
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
echo 'deploy:{password}' | chpasswd
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
printf '%s\\n' '{pubkey}' > /home/deploy/.ssh/authorized_keys
chown deploy:deploy /home/deploy/.ssh/authorized_keys
chmod 600 /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL:ALL) ALL' > /etc/sudoers.d/deploy
chmod 440 /etc/sudoers.d/deploy
"""

#: A destination's manifest, where GitCommit promotions write its revision.
DEST = """\
---
apiVersion: vmgitops.io/v1alpha1
kind: VMApplication
metadata:
  name: {name}
spec:
  source:
    repoURL: {url}
    targetRevision: {revision}
"""

APP = """\
files:
  - path: /etc/{app}/hello.conf
    content: "hello {{{{ target.name }}}}\\n"
    template: true
"""


def keypair(tmp: Path, name: str) -> tuple[str, str]:
    path = tmp / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "canary", "-f", str(path)],
        check=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def create(obj: dict[str, Any]) -> None:
    bed.kubectl("create", "-f", "-", input=json.dumps(obj))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def condition(kind: str, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    status = bed.get(kind, ns, name).get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def wait_reason(kind: str, ns: str, name: str, type_: str, reasons: set[str]) -> str:
    def check() -> str | None:
        c = condition(kind, ns, name, type_)
        return str(c["reason"]) if c and c.get("reason") in reasons else None

    return bed.eventually(
        check, timeout=120, what=f"{kind}/{name} {type_} reason in {sorted(reasons)}"
    )


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[tuple[SmartHTTPServer, Workdir, str]]:
    root = tmp_path / "srv"
    token = f"Canary+tok/{secrets.token_hex(10)}=&%x"
    init_bare(root / "shop.git")
    work = Workdir(tmp_path / "work", root / "shop.git")
    with SmartHTTPServer(root, "deployer", token) as server:
        yield server, work, token
    remove(root)


def test_secret_canaries_never_leak(
    shared_namespace: str,
    shared_operator: bed.Operator,
    chaos_vms: list[VM],
    tmp_path: Path,
    git_server: tuple[SmartHTTPServer, Workdir, str],
) -> None:
    ns, op = shared_namespace, shared_operator
    mark = op.mark()
    key_vm, sudo_vm = chaos_vms[-2], chaos_vms[-1]
    server, work, token = git_server
    key, pub = keypair(tmp_path, "canary")
    wrong_key, _ = keypair(tmp_path, "unauthorized")
    sudo_pw = f"Sudo+pw/{secrets.token_hex(8)}=&%"
    wrong_pw = f"Wrong+pw/{secrets.token_hex(8)}"
    wrong_token = f"Bad+tok/{secrets.token_hex(10)}"
    url_password = f"UrlPw{secrets.token_hex(10)}"
    url_user_token = f"ghp_{secrets.token_hex(16)}"
    app = f"sec{secrets.token_hex(3)}"

    # The VMs accept the canary key: root on key_vm, `deploy` (sudo with a password) on
    # sudo_vm; both removed afterwards.
    bed.vm_sh(key_vm, f"printf '%s\\n' '{pub}' >> /root/.ssh/authorized_keys")
    bed.vm_sh(sudo_vm, SUDO_SETUP.format(password=sudo_pw, pubkey=pub))
    repo = f"{server.url}/shop.git"
    # The configuration the promotions write to: the destinations at the first commit.
    dests = ("dest-ok", "dest-wrong-token", "dest-password-in-url", "dest-token-as-user")
    work.write(
        "envs/dests.yaml",
        "".join(DEST.format(name=d, url=repo, revision="main") for d in dests),
    )
    config_commit = work.commit("configuration")
    work.write(f"apps/{app}/vmapp.yaml", APP.format(app=app))
    work.commit("app")
    work.push("main")

    def ssh_secret(name: str, private: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/ssh-auth",
            "metadata": {"name": name, "namespace": ns},
            "data": {"ssh-privatekey": b64(private)},
        }

    def opaque(name: str, **data: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": ns},
            "data": {k: b64(v) for k, v in data.items()},
        }

    def basic(name: str, password: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/basic-auth",
            "metadata": {"name": name, "namespace": ns},
            "data": {"username": b64("deployer"), "password": b64(password)},
        }

    def target(name: str, vm: VM, secret: str, labels: dict[str, str], **spec: Any) -> None:
        obj = bed.target(ns, vm, labels, secret=secret, **spec)
        obj["metadata"]["name"] = name
        create(obj)

    def application(
        name: str, url: str, creds: str | None, selector: str, revision: str = "main"
    ) -> None:
        source: dict[str, Any] = {"repoURL": url, "targetRevision": revision, "path": f"apps/{app}"}
        if creds:
            source["credentials"] = {"secretRef": {"name": creds}}
        create(
            {
                "apiVersion": "vmgitops.io/v1alpha1",
                "kind": "VMApplication",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "source": source,
                    "destination": {"selector": {"matchLabels": {"sel": selector}}},
                    "syncPolicy": {"automated": {"prune": True}},
                    "refreshInterval": "5s",
                },
            }
        )

    for s in (
        ssh_secret("ssh-canary", key),
        ssh_secret("ssh-unauthorized", wrong_key),
        opaque("sudo-pw", password=sudo_pw),
        opaque("sudo-wrong", password=wrong_pw),
        basic("git-ok", token),
        basic("git-wrong", wrong_token),
    ):
        create(s)
    try:
        sudo = {"method": "sudo", "user": "root"}
        target("t-key", key_vm, "ssh-canary", {"sel": "good"})
        target(
            "t-sudo",
            sudo_vm,
            "ssh-canary",
            {"sel": "good"},
            user="deploy",
            become={**sudo, "passwordSecretRef": {"name": "sudo-pw"}},
        )
        target("t-badkey", key_vm, "ssh-unauthorized", {"sel": "none"})
        target(
            "t-badsudo",
            sudo_vm,
            "ssh-canary",
            {"sel": "none"},
            user="deploy",
            become={**sudo, "passwordSecretRef": {"name": "sudo-wrong"}},
        )
        application("app-ok", repo, "git-ok", "good")
        application("app-wrong-token", repo, "git-wrong", "none")
        pw_url = repo.replace("http://", f"http://deployer:{url_password}@")
        application("app-password-in-url", pw_url, None, "none")
        user_url = repo.replace("http://", f"http://{url_user_token}@")
        application("app-token-as-user", user_url, None, "none")

        paths = {
            "vmt/t-key Reachable": wait_reason("vmt", ns, "t-key", "Reachable", {"Connected"}),
            "vmt/t-sudo Reachable": wait_reason("vmt", ns, "t-sudo", "Reachable", {"Connected"}),
            "vmt/t-badkey Reachable": wait_reason(
                "vmt", ns, "t-badkey", "Reachable", {"AuthenticationFailed"}
            ),
            "vmt/t-badsudo Reachable": wait_reason(
                "vmt", ns, "t-badsudo", "Reachable", {"SudoPasswordRejected"}
            ),
            "vmapp/app-wrong-token Ready": wait_reason(
                "vmapp", ns, "app-wrong-token", "Ready", {"GitAuthenticationFailed"}
            ),
            "vmapp/app-password-in-url Ready": wait_reason(
                "vmapp", ns, "app-password-in-url", "Ready", {"RepoURLRefused"}
            ),
            "vmapp/app-token-as-user Ready": wait_reason(
                "vmapp",
                ns,
                "app-token-as-user",
                "Ready",
                {"GitAuthenticationFailed", "GitFetchFailed", "RepoURLRefused"},
            ),
        }

        def synced() -> bool:
            st = bed.get("vmapp", ns, "app-ok").get("status") or {}
            return (st.get("sync") or {}).get("status") == "Synced" and (
                st.get("summary") or {}
            ).get("synced") == 2

        bed.eventually(synced, timeout=120, what="app-ok Synced on both VMs (key and sudo)")
        paths["vmapp/app-ok Synced"] = "Synced"

        # Promotions by GitCommit from app-ok, pushing with the token (or failing to).
        for d in dests:
            application(d, repo, "git-ok", "none", revision=config_commit)

        def promote(name: str, dest: str, url: str, creds: str | None) -> None:
            git_commit: dict[str, Any] = {"repoURL": url, "branch": "main", "path": "envs"}
            if creds:
                git_commit["credentials"] = {"secretRef": {"name": creds}}
            create(
                {
                    "apiVersion": "vmgitops.io/v1alpha1",
                    "kind": "Promotion",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "from": {"name": "app-ok"},
                        "to": [{"name": dest}],
                        "method": "GitCommit",
                        "gitCommit": git_commit,
                        # Nobody syncs the file: verification times out, the rollback
                        # pushes again with the token.
                        "verification": {"timeout": "5s"},
                    },
                }
            )

        pushes_before = server.pushes
        promote("promo-ok", "dest-ok", repo, "git-ok")
        promote("promo-wrong-token", "dest-wrong-token", repo, "git-wrong")
        promote("promo-password-in-url", "dest-password-in-url", pw_url, None)
        promote("promo-token-as-user", "dest-token-as-user", user_url, None)
        for name, reasons in (
            ("promo-ok", {"VerificationTimedOut"}),
            ("promo-wrong-token", {"GitAuthenticationFailed"}),
            ("promo-password-in-url", {"RepoURLRefused"}),
            (
                "promo-token-as-user",
                {"GitAuthenticationFailed", "GitFetchFailed", "RepoURLRefused"},
            ),
        ):
            paths[f"promotion/{name} Ready"] = wait_reason("promotion", ns, name, "Ready", reasons)
        promo_ok = bed.get("promotion", ns, "promo-ok").get("status") or {}
        assert promo_ok.get("phase") == "RolledBack", promo_ok
        assert server.pushes - pushes_before == 2, "promo-ok pushes its commit and the rollback"
        for vm in (key_vm, sudo_vm):
            assert bed.vm_out(vm, f"cat /etc/{app}/hello.conf").startswith("hello t-")
        # Let every path run again (the error paths retry, probes repeat), then look.
        bed.kubectl("-n", ns, "annotate", "vmapp", "--all", "vmgitops.io/refresh=now")
        import time

        time.sleep(8)
        haystacks = {
            "operator log (DEBUG, asyncssh DEBUG)": op.log(since=mark),
            "metrics": op.metrics(),
            "Events": bed.kubectl("-n", ns, "get", "events", "-o", "json").stdout,
        }
        haystacks["pushed commits (shop.git log)"] = git(
            "--git-dir", str(server.root / "shop.git"), "log", "-p", "--format=%an %ae%n%B", "main"
        )
        for kind in ("vmt", "vmapp", "promotion"):
            for obj in bed.get_all(kind, ns):
                name = f"{kind}/{obj['metadata']['name']}"
                haystacks[f"{name} status"] = json.dumps(obj.get("status") or {})
                haystacks[f"{name} annotations"] = json.dumps(
                    obj["metadata"].get("annotations") or {}
                )
        for s in bed.get_all("secrets", ns):
            haystacks[f"secret/{s['metadata']['name']} annotations"] = json.dumps(
                s["metadata"].get("annotations") or {}
            )
        canaries = {
            "ssh private key": key,
            "unauthorized ssh private key": wrong_key,
            "sudo password": sudo_pw,
            "wrong sudo password": wrong_pw,
            "git token": token,
            "wrong git token": wrong_token,
            "password in repoURL": url_password,
            "token as repoURL user": url_user_token,
        }
        for i, line in enumerate(key.splitlines()[1:-1]):
            canaries[f"ssh key line {i}"] = line
        for i, line in enumerate(wrong_key.splitlines()[1:-1]):
            canaries[f"unauthorized key line {i}"] = line
        leaks = bed.find_leaks(haystacks, canaries)
        spellings = sum(len(bed.variants(v)) for v in canaries.values())
        size = sum(len(h) for h in haystacks.values())
        for where, reason in paths.items():
            print(f"  exercised {where}: {reason}")
        figures.record(
            AREA,
            "canary spellings searched / places / bytes",
            f"{spellings} / {len(haystacks)} / {size}",
            "informative",
            True,
        )
        figures.at_least(AREA, "good and error paths exercised", len(paths), 12)
        figures.count(
            AREA, "secrets found in logs, Events, status, annotations, metrics", len(leaks)
        )
        assert not leaks, leaks
        assert not op.tracebacks(mark), op.tracebacks(mark)[0]
    finally:
        bed.vm_sh(
            key_vm,
            "grep -v canary /root/.ssh/authorized_keys > /tmp/ak; "
            "cat /tmp/ak > /root/.ssh/authorized_keys",
            check=False,
        )
        bed.vm_sh(sudo_vm, f"rm -rf /etc/{app}", check=False)
        bed.vm_sh(key_vm, f"rm -rf /etc/{app}", check=False)
