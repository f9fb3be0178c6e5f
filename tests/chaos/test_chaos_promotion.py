"""Crash at any point of a Promotion, and Git failing under a GitCommit push.

staging (one VM, tracking main) and prod (one VM, pinned) are real VMApplications; each
trial commits a new revision, waits for staging to be Synced and Healthy at it, and
creates a Promotion staging -> prod, by Patch or by GitCommit into a configuration
repository served over authenticated smart HTTP (the test plays Argo CD: when the
file's value changes it sets prod's targetRevision to it). Some revisions are unhealthy
with prod's parameters, so their promotion rolls back.

The operator is a real `vmgitops run` of this test's own with
`VMGITOPS_PROMOTION_CRASH_FILE` (see vmgitops.promotion.crashpoints): it dies (exit 137,
no cleanup) at the armed point of the trial's Promotion, is restarted without the hook,
and the promotion must end as it would have without the crash: the same phase and
reason, prod at exactly the promoted revision (or back at the previous one), the
configuration file whole with that one value changed, exactly one commit per write
(no double push), status.commit naming it, no duplicate history entry, at most one
Event of the final phase. `push-landed` is a SIGKILL from outside the moment the Git
server has stored the pushed commit, before its answer; `sigkill` one at a random moment.

Figures: trials, double pushes (0), wrong final revisions (0), converged (100%); Git
down or refusing the push: the reason in status within one retry cycle, then success.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from apprepo import AppRepo
from chaos import bed, figures
from gitserver import SmartHTTPServer, Workdir, _CGIHandler, git, init_bare, remove
from testbed import VM
from vmgitops.promotion.crashpoints import CRASH_FILE_ENV

pytestmark = pytest.mark.e2e

AREA = "9 promotion"
PASSWORD = "pr0mo-chaos/t0ken+x"
PATCH, GIT = "Patch", "GitCommit"
#: Seconds between the operator's retries of a push Git refused (policy.RETRY_GIT), plus
#: the attempts within one (three, 2 s and 4 s apart).
RETRY_CYCLE = 15 + 10

CONFIG = """\
# prod: promoted by vmgitops (the test plays Argo CD and syncs this into the cluster)
apiVersion: vmgitops.io/v1alpha1
kind: VMApplication
metadata:
  name: {name}
spec:
  source:
    repoURL: git://127.0.0.1/unused.git
    targetRevision: {revision}  # moved by promotions
    path: apps/x
"""


@dataclass(frozen=True)
class Trial:
    point: str
    method: str
    healthy: bool = True
    """False: the revision is unhealthy in prod, the promotion rolls back."""


QUICK = [
    Trial("written", PATCH),
    Trial("push-landed", GIT),
    Trial("final", GIT),
    Trial("restored", GIT, healthy=False),
]
FULL = [
    *(
        Trial(p, m)
        for p in ("decided", "promoting", "written", "verifying", "final")
        for m in (PATCH, GIT)
    ),
    Trial("push-landed", GIT),
    *(Trial(p, m, healthy=False) for p in ("rollback", "restored", "final") for m in (PATCH, GIT)),
    Trial("verifying", GIT, healthy=False),
    *(Trial("sigkill", m) for m in (PATCH, GIT, PATCH, GIT)),
    Trial("sigkill", GIT, healthy=False),
]


# -- the configuration repository's server ------------------------------------------------


class _Handler(_CGIHandler):
    server: ConfigServer

    def _receive_pack(self) -> bool:
        return self.command == "POST" and self.path.split("?")[0].endswith("/git-receive-pack")

    def _serve(self) -> None:
        if self.server.refuse_pushes and self._receive_pack():
            self.server.requests += 1
            self.server.refused += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._serve()

    def send_response(self, code: int, message: str | None = None) -> None:
        # After git http-backend stored the pushed commit, before the pusher hears of it.
        if code == 200 and self._receive_pack() and self.server.on_push_stored:
            hook, self.server.on_push_stored = self.server.on_push_stored, None
            hook()
        super().send_response(code, message)


class ConfigServer(SmartHTTPServer):
    """Smart HTTP with Basic auth on a fixed port (so it can stop and come back at the
    same URL); `refuse_pushes` answers 503 to pushes only; `on_push_stored` runs once,
    the moment a push has been stored and before it is answered."""

    def __init__(self, root: Path, port: int) -> None:
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), _Handler)
        self.root, self.username, self.password = root, "promoter", PASSWORD
        self.redirect_to: str | None = None
        self.requests = self.rejected = self.pushes = self.refused = 0
        self.authorizations: list[str] = []
        self.before_push: Callable[[], None] | None = None
        self.refuse_pushes = False
        self.on_push_stored: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a pusher killed mid-answer breaks the connection: expected here


class Config:
    """The configuration repository (envs/prod.yaml holds prod's manifest)."""

    def __init__(self, tmp: Path, prod: str, revision: str) -> None:
        self.root = tmp / "config-srv"
        self.bare = init_bare(self.root / "config.git")
        self.prod = prod
        work = Workdir(tmp / "config-work", self.bare)
        work.write("envs/prod.yaml", CONFIG.format(name=prod, revision=revision))
        work.write("README.md", "configuration\n")
        work.commit("initial")
        work.push("main")
        self.port = bed.free_port()
        self.server = ConfigServer(self.root, self.port).__enter__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/config.git"

    def stop(self) -> None:
        self.server.__exit__(None, None, None)

    def restart(self) -> None:
        self.server = ConfigServer(self.root, self.port).__enter__()

    def text(self) -> str:
        return git("--git-dir", str(self.bare), "show", "main:envs/prod.yaml") + "\n"

    def value(self) -> str:
        return str(yaml.safe_load(self.text())["spec"]["source"]["targetRevision"])

    def head(self) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", "main")

    def commits_of(self, namespace: str, promotion: str) -> list[tuple[str, str]]:
        """(commit, subject) of every commit whose message names the Promotion."""
        out = git("--git-dir", str(self.bare), "log", "--format=%H%x1f%B%x1e", "main")
        found = []
        for entry in out.split("\x1e"):
            sha, _, body = entry.strip().partition("\x1f")
            if f"Promotion: {namespace}/{promotion}" in body.splitlines():
                found.append((sha, body.splitlines()[0]))
        return found


class FakeArgo:
    """Argo CD's part of GitOps: when envs/prod.yaml's value changes, prod's
    targetRevision is set to it (edge-triggered, so Patch promotions are left alone)."""

    def __init__(self, namespace: str, config: Config) -> None:
        self.ns, self.config = namespace, config
        self.seen = config.value()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                value = self.config.value()
                if value != self.seen:
                    patch = {"spec": {"source": {"targetRevision": value}}}
                    bed.kubectl(
                        "-n",
                        self.ns,
                        "patch",
                        "vmapp",
                        self.config.prod,
                        "--type=merge",
                        "-p",
                        json.dumps(patch),
                    )
                    self.seen = value
            except Exception as exc:  # the sampler must not die silently
                self.errors.append(repr(exc))

    def __enter__(self) -> FakeArgo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- the two environments -------------------------------------------------------------


class Envs:
    """staging and prod VMApplications on one VM each, and the app's repository."""

    def __init__(self, ns: str, repo: AppRepo, staging_vm: VM, prod_vm: VM) -> None:
        self.ns, self.repo = ns, repo
        self.vms = {"staging": staging_vm, "prod": prod_vm}
        self.staging, self.prod = f"{repo.app}-staging", f"{repo.app}-prod"
        self.version = 0

    def commit(self, healthy: bool = True) -> str:
        """A new revision on main; unhealthy ones are so with prod's parameters only."""
        self.version += 1
        self.repo.write_app(version=str(self.version))
        if not healthy:
            manifest = self.repo.folder / "vmapp.yaml"
            manifest.write_text(
                manifest.read_text().replace(
                    "      version=", "      healthy={{ params.bad_ok }}\n      version="
                )
            )
        return self.repo.commit(f"v{self.version}{'' if healthy else ' (unhealthy in prod)'}")

    def setup(self, git_secret: dict[str, Any]) -> None:
        label = {"chaos": self.ns}
        bed.apply(
            [
                bed.ssh_secret(self.ns, self.vms["staging"]),
                git_secret,
                *(bed.target(self.ns, vm, {**label, "env": env}) for env, vm in self.vms.items()),
            ]
        )

    def application(self, env: str, revision: str) -> dict[str, Any]:
        return {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VMApplication",
            "metadata": {"name": f"{self.repo.app}-{env}", "namespace": self.ns},
            "spec": {
                "source": {
                    "repoURL": self.repo.url,
                    "targetRevision": revision,
                    "path": f"apps/{self.repo.app}",
                },
                "destination": {"selector": {"matchLabels": {"chaos": self.ns, "env": env}}},
                "parameters": {
                    "greeting": f"hello from {env}",
                    "bad_ok": "yes" if env == "staging" else "no",
                },
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                # An unhealthy VM fails the sync (so the promotion sees it and rolls back).
                "strategy": {"rolling": {"maxUnavailable": 1, "maxFailures": 0}},
                "refreshInterval": "5s",
            },
        }

    def status(self, name: str) -> dict[str, Any]:
        return bed.get("vmapp", self.ns, name).get("status") or {}

    def at(self, name: str, revision: str) -> bool:
        obj = bed.get("vmapp", self.ns, name)
        s = obj.get("status") or {}
        return (
            (s.get("sync") or {}).get("status") == "Synced"
            and (s.get("sync") or {}).get("revision") == revision
            and (s.get("health") or {}).get("status") == "Healthy"
            and (s.get("operation") or {}).get("phase") in (None, "Succeeded")
            and s.get("observedGeneration") == obj["metadata"]["generation"]
            and (s.get("summary") or {}).get("synced") == 1
        )

    def wait_at(self, name: str, revision: str, op: bed.Operator, timeout: float = 180) -> None:
        def check() -> bool:
            assert op.alive(), f"the operator died:\n{op.log()[-3000:]}"
            return self.at(name, revision)

        bed.eventually(check, timeout=timeout, what=f"{name} Synced and Healthy at {revision[:12]}")

    def refresh_staging(self) -> None:
        bed.kubectl(
            "-n",
            self.ns,
            "annotate",
            "--overwrite",
            "vmapp",
            self.staging,
            "vmgitops.io/refresh=now",
        )

    def on_vm(self, env: str) -> str:
        """The revision line of the app's config on the env's VM."""
        app = self.repo.app
        out = bed.vm_sh(self.vms[env], f"grep '^revision=' /etc/{app}/{app}.conf", check=False)
        return out.stdout.decode().strip().removeprefix("revision=")

    def promotion(self, name: str, method: str, config: Config) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "from": {"name": self.staging},
            "to": [{"name": self.prod}],
            "verification": {"timeout": "3m"},
            "method": method,
        }
        if method == GIT:
            spec["gitCommit"] = {
                "repoURL": config.url,
                "branch": "main",
                "path": "envs",
                "credentials": {"secretRef": {"name": "git-push"}},
            }
        return {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "Promotion",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }

    def promo(self, name: str) -> dict[str, Any]:
        return bed.get("promotion", self.ns, name).get("status") or {}

    def wait_final(self, name: str, op: bed.Operator, timeout: float = 300) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            assert op.alive(), f"the operator died:\n{op.log()[-3000:]}"
            s = self.promo(name)
            return s if s.get("phase") in ("Succeeded", "Failed", "RolledBack") else None

        return bed.eventually(check, timeout=timeout, what=f"Promotion {name} final")

    def final_events(self, name: str, phase: str) -> int:
        items = bed.get_all("events", self.ns)
        return sum(
            int(e.get("count") or 1)
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") == phase
        )


def git_secret(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/basic-auth",
        "metadata": {"name": "git-push", "namespace": ns},
        "stringData": {"username": "promoter", "password": PASSWORD},
    }


def history_duplicates(status: dict[str, Any]) -> list[str]:
    """Adjacent history entries of one revision, or repeated ids (append_history keeps
    one entry per distinct deployment)."""
    history = status.get("history") or []
    bad = []
    for a, b in itertools.pairwise(history):
        if a.get("revision") == b.get("revision"):
            bad.append(f"revision {str(a.get('revision'))[:12]} twice in a row")
    ids = [h.get("id") for h in history]
    if len(ids) != len(set(ids)):
        bad.append(f"ids repeated: {ids}")
    return bad


@pytest.fixture
def repo(tmp_path: Path, chaos_vms: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    bed.parallel(lambda vm: bed.vm_sh(vm, r.cleanup_vm_command(), check=False), chaos_vms[:4])
    r.remove()


# -- crash at any point ------------------------------------------------------------------


@pytest.mark.timeout(bed.scale(600, 3000))
def test_chaos_crash_at_any_point_of_a_promotion(
    chaos_namespace: str, chaos_vms: list[VM], repo: AppRepo, tmp_path: Path
) -> None:
    ns = chaos_namespace
    envs = Envs(ns, repo, chaos_vms[0], chaos_vms[1])
    schedule = FULL if bed.FULL else QUICK
    # CHAOS_PROMOTION_POINTS=restored,final runs those trials only (to try one point).
    only = [p for p in os.environ.get("CHAOS_PROMOTION_POINTS", "").split(",") if p]
    schedule = [t for t in schedule if not only or t.point in only]
    rng = random.Random(9)
    crash_file = tmp_path / "promotion-crash-at"
    op = bed.Operator([ns], label="chaos-promotion", env={CRASH_FILE_ENV: str(crash_file)})
    envs.setup(git_secret(ns))
    v0 = envs.commit()
    config = Config(tmp_path, envs.prod, v0)
    results: list[dict[str, Any]] = []
    try:
        bed.apply([envs.application("staging", "main"), envs.application("prod", v0)])
        op.start()
        envs.wait_at(envs.staging, v0, op)
        envs.wait_at(envs.prod, v0, op)
        with FakeArgo(ns, config) as argo:
            for i, trial in enumerate(schedule):
                results.append(run_trial(envs, config, op, i + 1, trial, rng, crash_file))
            assert not argo.errors, argo.errors
        report(results)
    finally:
        op.stop()
        config.stop()
        remove(config.root)
        print(f"\noperator log: {op.log_path}")


def run_trial(
    envs: Envs,
    config: Config,
    op: bed.Operator,
    number: int,
    trial: Trial,
    rng: random.Random,
    crash_file: Path,
) -> dict[str, Any]:
    ns = envs.ns
    started = time.monotonic()
    before = bed.get("vmapp", ns, envs.prod)["spec"]["source"]["targetRevision"]
    new = envs.commit(healthy=trial.healthy)
    envs.refresh_staging()
    envs.wait_at(envs.staging, new, op)
    name = f"p{number}-{re.sub('[^a-z0-9]+', '-', trial.point)}-{trial.method.lower()}"
    if trial.point == "push-landed":
        config.server.on_push_stored = op.kill
    elif trial.point != "sigkill":
        crash_file.write_text(f"{trial.point}@{name}")
    bed.apply(envs.promotion(name, trial.method, config))
    if trial.point == "sigkill":
        time.sleep(rng.uniform(0.5, 4.0))
        op.kill()
        code: int | None = -9
    else:
        code = op.wait_exit(timeout=240)
    crash_file.write_text("")
    config.server.on_push_stored = None
    assert code is not None, f"{name}: the operator never reached {trial.point}"
    assert code in (137, -9), f"{name}: the operator exited {code}:\n{op.log()[-3000:]}"
    at_crash = envs.promo(name)
    op.start()
    status = envs.wait_final(name, op)
    expected = new if trial.healthy else before
    want = ("Succeeded", "Promoted") if trial.healthy else ("RolledBack", "VerificationFailed")
    got = (status.get("phase"), status.get("reason"))
    envs.wait_at(envs.prod, expected, op)
    spec_revision = bed.get("vmapp", ns, envs.prod)["spec"]["source"]["targetRevision"]
    problems: list[str] = []
    if got != want:
        problems.append(f"ended {got}, expected {want}: {status.get('message')}")
    if spec_revision != expected or envs.on_vm("prod") != expected:
        problems.append(f"prod at {spec_revision[:12]} / VM {envs.on_vm('prod')[:12]}")
    pushes = 0
    if trial.method == GIT:
        commits = config.commits_of(ns, name)
        pushes = len(commits)
        wanted_commits = 1 if trial.healthy else 2
        if pushes != wanted_commits:
            problems.append(f"{pushes} commits name the promotion, expected {wanted_commits}")
        if commits and status.get("commit") != commits[0][0]:
            problems.append(f"status.commit {status.get('commit')} is not {commits[0][0]}")
        if config.text() != CONFIG.format(name=envs.prod, revision=expected):
            problems.append(f"envs/prod.yaml is not the original with {expected[:12]}")
    dupes = history_duplicates(envs.status(envs.prod))
    problems += dupes
    events = envs.final_events(name, str(status.get("phase")))
    if events > 1:
        problems.append(f"{events} Events of the final phase")
    row = {
        "trial": name,
        "at_crash": f"{at_crash.get('phase')}/{at_crash.get('reason')}",
        "pushes": pushes,
        "extra_pushes": max(0, pushes - (1 if trial.healthy else 2)) if trial.method == GIT else 0,
        "wrong_revision": int(spec_revision != expected),
        "history_duplicates": len(dupes),
        "converged": not problems,
        "problems": problems,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(
        f"\n{name:34} status at crash {row['at_crash']:32} -> {got[0]}/{got[1]} "
        f"pushes={pushes} in {row['seconds']}s {'; '.join(problems)}"
    )
    return row


def report(results: list[dict[str, Any]]) -> None:
    points = sorted({str(r["trial"]).split("-", 1)[1].rsplit("-", 1)[0] for r in results})
    done = sum(1 for r in results if r["converged"])
    figures.at_least(AREA, "trials (operator SIGKILLed mid-promotion)", len(results), len(results))
    figures.record(AREA, "crash points", ", ".join(points), "informative", True)
    figures.count(
        AREA,
        "double pushes (extra commits naming a promotion)",
        sum(r["extra_pushes"] for r in results),
    )
    figures.count(
        AREA, "promotions ending at a wrong revision", sum(r["wrong_revision"] for r in results)
    )
    figures.count(AREA, "duplicate history records", sum(r["history_duplicates"] for r in results))
    figures.percent(AREA, "promotions converged as without the crash", done, len(results))
    bad = [r for r in results if not r["converged"]]
    assert not bad, json.dumps(bad, indent=1)


# -- Git down, then refusing pushes, under a GitCommit promotion -----------------------


def promoting_reason(envs: Envs, name: str) -> tuple[str, str] | None:
    s = envs.promo(name)
    ready = next((c for c in s.get("conditions") or [] if c.get("type") == "Ready"), {})
    reason = str(s.get("reason") or "")
    if s.get("phase") == "Promoting" and reason and reason != "Promoting":
        assert ready.get("reason") == reason, (s, ready)
        return reason, str(s.get("message") or "")
    assert s.get("phase") not in ("Failed", "RolledBack", "Succeeded"), s
    return None


@pytest.mark.timeout(bed.scale(600, 900))
def test_chaos_git_down_or_refusing_during_a_gitcommit_promotion(
    shared_namespace: str,
    shared_operator: bed.Operator,
    chaos_vms: list[VM],
    repo: AppRepo,
    tmp_path: Path,
) -> None:
    ns, op = shared_namespace, shared_operator
    starts = op.starts
    envs = Envs(ns, repo, chaos_vms[2], chaos_vms[3])
    envs.setup(git_secret(ns))
    v0 = envs.commit()
    config = Config(tmp_path, envs.prod, v0)
    timings: dict[str, float] = {}
    reasons: dict[str, str] = {}
    try:
        bed.apply([envs.application("staging", "main"), envs.application("prod", v0)])
        envs.wait_at(envs.staging, v0, op)
        envs.wait_at(envs.prod, v0, op)
        with FakeArgo(ns, config) as argo:
            for fault in ("down", "refusing"):
                new = envs.commit()
                envs.refresh_staging()
                envs.wait_at(envs.staging, new, op)
                before = config.head()
                if fault == "down":
                    config.stop()
                else:
                    config.server.refuse_pushes = True
                name = f"git-{fault}"
                t = time.monotonic()
                bed.apply(envs.promotion(name, GIT, config))
                reason, message = bed.eventually(
                    lambda n=name: promoting_reason(envs, n),  # type: ignore[misc]
                    timeout=120,
                    what=f"{name}: a reason while Git is {fault}",
                )
                timings[fault] = time.monotonic() - t
                reasons[fault] = reason
                print(f"\nGit {fault}: {reason}: {message[:300]}")
                assert PASSWORD not in message
                assert config.head() == before and envs.at(
                    envs.prod, envs.promo(name)["previousRevisions"][envs.prod]
                )
                time.sleep(5)  # still retrying, not given up
                assert envs.promo(name)["phase"] == "Promoting"
                if fault == "down":
                    config.restart()
                else:
                    config.server.refuse_pushes = False
                t = time.monotonic()
                status = envs.wait_final(name, op, timeout=240)
                timings[f"{fault} recovered"] = time.monotonic() - t
                assert (status["phase"], status["reason"]) == ("Succeeded", "Promoted"), status
                commits = config.commits_of(ns, name)
                assert [c for c, _ in commits] == [status["commit"]], commits
                assert config.text() == CONFIG.format(name=envs.prod, revision=new)
                envs.wait_at(envs.prod, new, op)
            assert not argo.errors, argo.errors
        figures.record(
            AREA,
            "seconds to a reason in status: Git down / refusing pushes",
            f"{timings['down']:.0f} / {timings['refusing']:.0f}",
            f"<= {RETRY_CYCLE} (one retry cycle)",
            max(timings["down"], timings["refusing"]) <= RETRY_CYCLE,
        )
        figures.record(
            AREA,
            "Git fault reasons (Promoting, retried)",
            f"{reasons['down']} / {reasons['refusing']}",
            "specific",
            all(r.startswith("Git") for r in reasons.values()),
        )
        figures.record(
            AREA,
            "Succeeded after Git recovered, one commit each (s)",
            f"{timings['down recovered']:.0f} / {timings['refusing recovered']:.0f}",
            "converged",
            True,
        )
        figures.count(AREA, "operator restarts (Git faults under a promotion)", op.starts - starts)
        assert max(timings["down"], timings["refusing"]) <= RETRY_CYCLE, timings
        assert all(r.startswith("Git") for r in reasons.values()), reasons
    finally:
        config.stop()
        remove(config.root)
