"""The scale run: N VirtualMachineTargets (5,000 by default) through the REAL operator and
the REAL API server and etcd, with SIMULATED hosts (bench/farm.py: one asyncssh server
process on N loopback addresses, replaying what one real systemd VM answered).

Measured, phase by phase (creating the targets, their first probes, the initial sync,
full-fleet drift checks, an idle minute): wall time, operator CPU (its cgroup) and
memory (VmRSS, VmHWM, PSS), API requests per second (kube-apiserver's
`apiserver_request_total`, less the harness's own requests), etcd's database size
(`etcd_mvcc_db_total_size_in_bytes`), and the largest object of each kind.

The operator runs with its defaults (probe every 60 s, 64 handshakes and 512 commands at
once) except that it watches only the bench's namespace.

    python -m bench.scale --dev DIR --work DIR --targets 5000 --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fleetctl, measure, report
from bench.farm import PORT, address_of
from bench.fleetctl import ROOT, Host
from bench.kube import Kube, app_path, poll, target_path
from bench.operator_run import OperatorBench

METRICS_PORT = int(os.environ.get("BENCH_METRICS_PORT", "58080"))


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:  # loopback only
        return str(r.read().decode())


def _metric_sum(text: str, name: str, where: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and where in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class Scale:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev: Path = args.dev
        self.work: Path = args.work
        self.n: int = args.targets
        self.phases: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.etcd_port = int(fleetctl.bench_setting("ETCD_PORT"))
        self.git_port = int(fleetctl.bench_setting("GIT_PORT"))

    # -- environment --------------------------------------------------------------------

    def fresh_control_plane(self) -> None:
        """A clean etcd, so its size is this run's alone."""
        env = fleetctl.bench_env(self.dev)
        subprocess.run(["bash", str(ROOT / "hack/controlplane/down.sh")], env=env, check=True)
        for attempt in range(3):  # a restart right after a stop may find the port busy
            done = subprocess.run(["bash", str(ROOT / "hack/controlplane/up.sh")], env=env)
            if done.returncode == 0:
                break
            if attempt == 2:
                raise SystemExit("the bench control plane did not start")
            time.sleep(5)
        subprocess.run(["bash", str(ROOT / "hack/git/serve.sh"), "up"], env=env, check=True)
        crds = str(ROOT / "crds")
        subprocess.run(
            ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", crds],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["kubectl", "wait", "--for=condition=Established", "--timeout=60s", "-f", crds],
            env=env, check=True, capture_output=True,
        )  # fmt: skip

    def start_farm(self, backend: Host) -> None:
        keys = self.work / "farm"
        keys.mkdir(parents=True, exist_ok=True)
        host_key = keys / "host_ed25519"
        if not host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
            )
        self.farm_host_key = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
        self.farm_stats = keys / "stats.json"
        self.farm_stats.unlink(missing_ok=True)
        argv = [
            str(ROOT / ".venv/bin/python"), "-m", "bench.farm", "--targets", str(self.n),
            "--host-key", str(host_key),
            "--authorized-keys", str(backend.key_file.with_suffix(".pub")),
            "--backend", backend.address, "--backend-key", str(backend.key_file),
            "--backend-host-key", backend.host_key, "--stats", str(self.farm_stats),
            "--lifetime", str(self.args.lifetime),
        ]  # fmt: skip
        self.farm_cg = measure.Cgroup("farm") if measure.HAVE_CGROUPS else None
        if self.farm_cg is not None:
            argv = self.farm_cg.wrap(argv)
        self.farm_log = open(keys / "farm.log", "wb")  # noqa: SIM115 - lives with the farm
        self.farm = subprocess.Popen(
            argv,
            stdout=self.farm_log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        t0 = time.monotonic()
        poll(
            lambda: self.farm_stat("listening") >= self.n,
            timeout=600,
            interval=1,
            what="the farm listening on every address",
        )
        log(f"farm: {self.n} simulated hosts listening after {time.monotonic() - t0:.1f} s")

    def farm_stat(self, key: str) -> int:
        return int(self.farm_now().get(key, 0))

    def farm_now(self, fresh: bool = False) -> dict[str, Any]:
        """The farm's counters; with `fresh`, written after this call began (<= 2 s)."""
        asked = time.time()
        data: dict[str, Any] = {}
        for _ in range(40):
            try:
                data = json.loads(self.farm_stats.read_text())
            except (OSError, ValueError):
                data = {}
            if not fresh or float(data.get("time", 0)) > asked:
                break
            time.sleep(0.05)
        return data

    # -- probes of the system under test -------------------------------------------------

    def api_requests(self) -> float:
        return _metric_sum(self.kube.get("/metrics"), "apiserver_request_total")

    def etcd(self) -> dict[str, float]:
        text = _get(f"http://127.0.0.1:{self.etcd_port}/metrics")
        return {
            "db_bytes": _metric_sum(text, "etcd_mvcc_db_total_size_in_bytes"),
            "db_in_use_bytes": _metric_sum(text, "etcd_mvcc_db_total_size_in_use_in_bytes"),
            "keys": _metric_sum(text, "etcd_debugging_mvcc_keys_total"),
        }

    def operator_metrics(self) -> str:
        try:
            return _get(f"http://127.0.0.1:{METRICS_PORT}/metrics")
        except OSError:
            return ""

    def snapshot(self) -> dict[str, Any]:
        pss, hwm = self.ob.memory()
        rss = 0
        try:
            for line in Path(f"/proc/{self.ob.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        except OSError:
            pass
        farm = self.farm_now(fresh=True)
        return {
            "t": time.monotonic(),
            "cpu": self.ob.cpu(),
            "farm_cpu": self.farm_cg.cpu_seconds() if self.farm_cg is not None else 0.0,
            "api": self.api_requests(),
            "harness_requests": self.kube.requests + self.ob.kube.requests,
            "rss": rss,
            "hwm": hwm,
            "pss": pss,
            "farm_commands": int(farm.get("commands", 0)),
            "farm_connections": int(farm.get("connections", 0)),
            "farm_forwarded": int(farm.get("forwarded", 0)),
        }

    def phase(self, name: str, fn: Callable[[], Any]) -> dict[str, Any]:
        a = self.snapshot()
        fn()
        b = self.snapshot()
        wall = b["t"] - a["t"]
        # The harness's own requests (its polling, and the snapshot's /metrics read).
        own = b["harness_requests"] - a["harness_requests"]
        api = max(0.0, b["api"] - a["api"] - own)
        row = {
            "phase": name,
            "wall": wall,
            "operator_cpu": b["cpu"] - a["cpu"],
            "farm_cpu": b["farm_cpu"] - a["farm_cpu"],
            "api_requests": api,
            "api_requests_per_second": api / wall if wall > 0 else 0.0,
            "operator_rss": b["rss"],
            "operator_hwm": b["hwm"],
            "operator_pss": b["pss"],
            "ssh_commands": b["farm_commands"] - a["farm_commands"],
            "ssh_connections": b["farm_connections"] - a["farm_connections"],
            "backend_commands": b["farm_forwarded"] - a["farm_forwarded"],
            "etcd": self.etcd(),
        }
        log(
            f"{name}: {wall:.1f} s, operator {row['operator_cpu']:.1f} s CPU, "
            f"RSS {b['rss'] / 2**20:.0f} MiB, {row['api_requests_per_second']:.1f} API req/s, "
            f"{row['ssh_commands']} SSH commands, {row['ssh_connections']} connections, "
            f"etcd {row['etcd']['db_bytes'] / 2**20:.1f} MiB"
        )
        self.phases.append(row)
        self.save()
        return row

    def largest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, path in (
            ("VirtualMachineTarget", target_path(self.ob.ns)),
            ("VMApplication", app_path(self.ob.ns)),
        ):
            items = []
            cont = ""
            for _ in range(1000):  # bounded pagination
                page = self.kube.get(f"{path}?limit=1000" + (f"&continue={cont}" if cont else ""))
                items += page.get("items", [])
                cont = (page.get("metadata") or {}).get("continue") or ""
                if not cont:
                    break
            sizes = sorted(
                ((len(json.dumps(i, separators=(",", ":"))), i["metadata"]["name"]) for i in items),
                reverse=True,
            )
            out[kind] = {
                "count": len(items),
                "largest_bytes": sizes[0][0] if sizes else 0,
                "largest": sizes[0][1] if sizes else "",
                "total_bytes": sum(s for s, _ in sizes),
            }
        events = self.kube.get(f"/api/v1/namespaces/{self.ob.ns}/events?limit=1")
        out["Event"] = {"count_at_least": len(events.get("items", []))}
        remaining = (events.get("metadata") or {}).get("remainingItemCount")
        if remaining is not None:
            out["Event"] = {"count": int(remaining) + len(events.get("items", []))}
        return out

    # -- the run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        load = measure.loadavg()
        backend = fleetctl.fleet_up(self.dev, 1)[0]
        fleetctl.pin_crypto(self.dev, [backend])
        fleetctl.reset([backend])
        if not self.args.keep_control_plane:
            self.fresh_control_plane()
        self.kube = Kube(self.dev / "kubeconfig")
        self.start_farm(backend)
        hosts = [
            Host(f"sim{i + 1:05d}", address_of(i), PORT, "root", backend.key_file,
                 self.farm_host_key, 0)
            for i in range(self.n)
        ]  # fmt: skip
        self.ob = OperatorBench(dev=self.dev, work=self.work, hosts=hosts, git_port=self.git_port)
        # The operator's defaults, including a probe of every target every 60 s.
        self.ob.start(extra_env={"VMGITOPS_PROBE_INTERVAL": "60"}, metrics_port=METRICS_PORT)
        # Started (imports done, /metrics up) and settled before anything is measured.
        poll(self.operator_metrics, timeout=120, interval=0.5, what="the operator's /metrics")
        time.sleep(5)
        self.etcd_before = self.etcd()
        timeout = self.args.phase_timeout
        try:
            rev = self.ob.repo.commit_version("1", per_host=False)
            self.phase("create targets", lambda: self.ob.create_targets(workers=4))
            # Done when every target's status holds its facts (the probe's result written),
            # not when the probe counter reaches n: probes retried or repeated count twice.
            # Polled every 2 s: each poll lists all n objects (the harness's own requests
            # are left out of the API rate).
            self.phase(
                "first probe of every target",
                lambda: self.ob.wait_targets_probed(timeout=timeout, interval=2),
            )
            self.phase("initial sync (all at once)", lambda: self.ob.s1_initial(rev, timeout))
            for i in range(self.args.drift_checks):
                self.phase(f"full drift check {i + 1}", lambda: self.ob.refresh(rev, timeout))
            self.phase("idle, probes only", lambda: time.sleep(self.args.idle))
            self.objects = self.largest()
        finally:
            self.ob.stop()
            self.farm.terminate()
            try:
                self.farm.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.farm.kill()
                self.farm.wait()
            if self.farm_cg is not None:
                self.farm_cg.remove()
            fleetctl.reset([backend])
        return self.result(started, load)

    def result(self, started: str, load: list[float]) -> dict[str, Any]:
        return {
            "kind": "scale",
            "started": started,
            "targets": self.n,
            "machine": report.machine(),
            "load_at_start": load,
            "hosts": (
                f"SIMULATED: one asyncssh server process on {self.n} loopback addresses "
                "(127.1.x.y), replaying what one real systemd VM answered (bench/farm.py); "
                "the operator, kube-apiserver and etcd are real"
            ),
            "etcd_before": self.etcd_before,
            "phases": self.phases,
            "objects": getattr(self, "objects", {}),
            "notes": self.notes,
        }

    def save(self) -> None:
        (self.work / "partial.json").write_text(
            json.dumps(self.result("", []), indent=2, default=str)
        )


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    p.add_argument("--dev", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--targets", type=int, default=5000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--drift-checks", type=int, default=3)
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument("--phase-timeout", type=float, default=1800.0)
    p.add_argument("--lifetime", type=float, default=7200.0, help="the farm's own limit")
    p.add_argument("--keep-control-plane", action="store_true")
    args = p.parse_args()
    result = Scale(args).run()
    report.save(result, args.out)
    from bench.scale_report import render_scale

    print(render_scale(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
