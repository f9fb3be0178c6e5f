"""A small VM app in a real Git repository for the chaos tests, and what it must look like
on a VM at each revision (so a test can tell "old", "new" and "neither" apart).

Every revision changes the templated config (a restart and the `stamp` command), swaps
the extra file (one written, one pruned), and uploads a new release (upload, switch, and
pruning of old releases): each crash point of the engine is on the path of every sync.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprepo import AppRepo
from chaos import bed
from testbed import VM

MANIFEST = """\
files:
  - path: /etc/{app}/{app}.conf
    content: |
      host={{{{ target.name }}}}
      revision={{{{ revision }}}}
      version={version}
    template: true
    mode: "0644"
  - path: /etc/{app}/extra-{variant}.conf
    content: "variant {variant} version {version}\\n"
directories:
  - {{path: /var/lib/{app}, mode: "0750"}}
services:
  - name: {app}.service
    unit: |
      [Service]
      ExecStart=/opt/{app}/current/bin/run
    enabled: true
    state: running
    restartOnChange: [/etc/{app}/{app}.conf, release]
release:
  path: /opt/{app}
  source: dist
  keep: 2
commands:
  - name: stamp
    run: ["/opt/{app}/current/bin/stamp", "/var/lib/{app}/stamps.log", "v{version}", "{slow}"]
    onChange: [/etc/{app}/{app}.conf]
    idempotent: {idempotent}
healthChecks:
  - {{name: unit, command: ["systemctl", "is-active", "{app}.service"]}}
"""

RUN = "#!/bin/sh\nexec sleep infinity\n"
STAMP = '#!/bin/sh\nsleep "${3:-0}"\nprintf \'%s\\n\' "$2" >> "$1"\n'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Revision:
    sha: str
    version: int
    variant: str


class ChaosApp:
    """The app's repository (served by the test bed's git daemon) and its VM footprint."""

    def __init__(self, tmp: Path) -> None:
        self.repo = AppRepo(tmp)
        self.name = self.repo.app
        self.revisions: list[Revision] = []

    @property
    def url(self) -> str:
        return self.repo.url

    def commit(
        self, version: int, variant: str, *, slow: float = 0, idempotent: bool = False
    ) -> Revision:
        """A new revision; `slow` makes the stamp command take that long (a window for
        faults mid-apply), `idempotent` lets an interrupted stamp run again by itself."""
        d = self.repo.folder
        (d / "dist" / "bin").mkdir(parents=True, exist_ok=True)
        (d / "vmapp.yaml").write_text(
            MANIFEST.format(
                app=self.name,
                version=version,
                variant=variant,
                slow=slow,
                idempotent=str(idempotent).lower(),
            )
        )
        (d / "dist" / "VERSION").write_text(f"{version}\n")
        for name, text in (("run", RUN), ("stamp", STAMP)):
            (d / "dist" / "bin" / name).write_text(text)
            (d / "dist" / "bin" / name).chmod(0o755)
        rev = Revision(self.repo.commit(f"v{version}"), version, variant)
        self.revisions.append(rev)
        return rev

    def force_push(self, rev: Revision) -> None:
        """Moves main back to an older commit, as a force-push would."""
        self.repo.git("reset", "-q", "--hard", rev.sha)
        self.repo.git("push", "-q", "--force", "origin", "main")

    def application(
        self, namespace: str, selector: Mapping[str, str], **spec: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": {
                "repoURL": self.url,
                "targetRevision": "main",
                "path": f"apps/{self.name}",
            },
            "destination": {"selector": {"matchLabels": dict(selector)}},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "strategy": {
                "type": "Rolling",
                "rolling": {"maxUnavailable": "25%", "maxFailures": 10},
            },
            "refreshInterval": "10s",
            **spec,
        }
        return {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VMApplication",
            "metadata": {"name": self.name, "namespace": namespace},
            "spec": body,
        }

    # -- what a VM holds --------------------------------------------------------------

    def expected(self, vm: VM, rev: Revision) -> dict[str, str | None]:
        """path -> sha256 of every managed file at `rev` (None: must be absent)."""
        a = self.name
        other = "b" if rev.variant == "a" else "a"
        return {
            f"/etc/{a}/{a}.conf": sha(
                f"host={vm.name}\nrevision={rev.sha}\nversion={rev.version}\n"
            ),
            f"/etc/{a}/extra-{rev.variant}.conf": sha(
                f"variant {rev.variant} version {rev.version}\n"
            ),
            f"/etc/{a}/extra-{other}.conf": None,
            f"/opt/{a}/current/VERSION": sha(f"{rev.version}\n"),
            f"/opt/{a}/current/bin/run": sha(RUN),
            f"/opt/{a}/current/bin/stamp": sha(STAMP),
        }

    def snapshot_script(self) -> str:
        a = self.name
        paths = [
            f"/etc/{a}/{a}.conf",
            f"/etc/{a}/extra-a.conf",
            f"/etc/{a}/extra-b.conf",
            f"/opt/{a}/current/VERSION",
            f"/opt/{a}/current/bin/run",
            f"/opt/{a}/current/bin/stamp",
        ]
        quoted = " ".join(paths)
        return (
            f'for p in {quoted}; do if [ -e "$p" ]; then '
            f'printf "%s %s\\n" "$p" "$(sha256sum < "$p" | cut -c1-64)"; '
            f'else printf "%s -\\n" "$p"; fi; done; '
            f'printf "current %s\\n" "$(readlink /opt/{a}/current)"; '
            f'printf "stamps %s\\n" "$(cat /var/lib/{a}/stamps.log 2>/dev/null | tr "\\n" ,)"; '
            f'printf "pending %s\\n" "$(ls /var/lib/vmgitops/*_{a}/markers/ 2>/dev/null '
            f'| grep ^pending | tr "\\n" ,)"'
        )

    def revision_on(self, vm: VM) -> str:
        """The revision line of the VM's config ("" when absent or unreadable)."""
        out = bed.vm_sh(vm, f"grep '^revision=' /etc/{self.name}/{self.name}.conf", check=False)
        return out.stdout.decode().strip().removeprefix("revision=")

    def snapshot(self, vm: VM) -> dict[str, str]:
        out = bed.vm_out(vm, self.snapshot_script())
        snap: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            snap[key] = value
        return snap

    def classify(self, vm: VM, snap: Mapping[str, str], old: Revision, new: Revision) -> str:
        """ "old", "new", "mixed" (each file whole, some old some new: a rollout in the
        middle of one VM) or "neither: <why>" (a file that is neither)."""
        exp_old, exp_new = self.expected(vm, old), self.expected(vm, new)
        states = set()
        for path in exp_old.keys() | exp_new.keys():
            got = snap.get(path, "-")
            got_sha = None if got == "-" else got
            o, n = exp_old.get(path, "?"), exp_new.get(path, "?")
            if got_sha == o and got_sha == n:
                continue
            if got_sha == o:
                states.add("old")
            elif got_sha == n:
                states.add("new")
            else:
                return f"neither: {path} is {got_sha or 'absent'}"
        if not states:
            return "new"
        return states.pop() if len(states) == 1 else "mixed"

    def stamp_counts(self, snap: Mapping[str, str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in snap.get("stamps", "").split(","):
            if item:
                counts[item] = counts.get(item, 0) + 1
        return counts

    def pending_marker_path(self, namespace: str) -> str:
        return f"/var/lib/vmgitops/{namespace}_{self.name}/markers/pending.stamp"

    def cleanup_vm(self, vm: VM) -> None:
        bed.vm_sh(vm, self.repo.cleanup_vm_command(), check=False)


def app_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = bed.get("vmapp", namespace, name).get("status") or {}
    return status


def converged(status: Mapping[str, Any], rev: Revision, targets: int) -> bool:
    sync = status.get("sync") or {}
    op = status.get("operation") or {}
    summary = status.get("summary") or {}
    return (
        sync.get("status") == "Synced"
        and sync.get("revision") == rev.sha
        and (status.get("health") or {}).get("status") == "Healthy"
        and op.get("revision") == rev.sha
        and op.get("phase") == "Succeeded"
        and summary.get("synced") == targets
    )


def target_messages(namespace: str, app: str) -> dict[str, str]:
    """target name -> the message of this app's entry in its status.applications."""
    out = {}
    for t in bed.get_all("vmt", namespace):
        for entry in (t.get("status") or {}).get("applications") or []:
            if entry.get("name") == app:
                out[t["metadata"]["name"]] = str(entry.get("message") or "")
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)[:4000]
