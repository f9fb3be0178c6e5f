"""`python -m bench`: the same workload and scenarios for every tool on the same fleet.

bench/run.sh prepares the machine (peers' virtualenv, the bench's own control plane,
fleet and git daemon) and calls this; see bench/README.md for what is measured how.
With --light: on the light hosts of hack/fleet/light.py, with the light workload.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import fleetctl, measure, peers, report, workload
from bench.fleetctl import Host
from bench.operator_run import OperatorBench
from bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv/bin/python")
ALL_TOOLS = (
    "floor",
    "vmgitops-engine",
    "vmgitops-operator",
    "pyinfra",
    "ansible-f50",
    "ansible-f5",
)
ALL_SCENARIOS = ("S1", "S2", "S3", "S4")
#: Above this many hosts, ansible with 5 forks runs S2 only unless --only says otherwise.
SLOW_LIMIT = 50
#: Above this many light hosts, ansible with 50 forks runs S2 only too (at 100 VMs it took
#: 3 to 5 minutes per scenario; ten times the hosts would take hours for the four).
LIGHT_SLOW_LIMIT = 200


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev: Path = args.dev
        self.work: Path = args.work
        self.hosts: list[Host] = []
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.floor: dict[str, Any] = {}
        self.crypto = ""
        self.light: bool = args.light
        self.light_fleet: dict[str, Any] = {}

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.hosts = fleetctl.load_fleet(self.dev, self.light)[: self.args.hosts]
        if len(self.hosts) < self.args.hosts:
            raise SystemExit(f"the fleet lists {len(self.hosts)} hosts, wanted {self.args.hosts}")
        fleetctl.pin_crypto(self.dev, self.hosts)
        self.crypto = fleetctl.check_pin(self.hosts)
        self.sshd: measure.SshdLog | measure.SshdFileLog
        if self.light:
            # Light hosts share the machine's PID namespace: their mount namespaces tell
            # their processes apart; they have no journal, sshd logs to a file.
            self.fleet_cpu = measure.FleetCpu([h.pid for h in self.hosts], kind="mnt")
            self.sshd = measure.SshdFileLog(
                {h.name: fleetctl.sshd_log_file(self.dev, h) for h in self.hosts}
            )
            summary = self.dev / "light" / "summary.json"
            if summary.exists():
                self.light_fleet = json.loads(summary.read_text())
            self.light_fleet["pss_per_host_at_start"] = round(
                self.fleet_cpu.memory() / len(self.hosts)
            )
        else:
            self.fleet_cpu = measure.FleetCpu([h.pid for h in self.hosts])
            self.sshd = measure.SshdLog({h.name: h.pid for h in self.hosts})
        for version in ("1", "2"):
            workload.write_vmapp(self.work / f"app-v{version}", version, light=self.light)

    # -- one measured run ---------------------------------------------------------------------

    def measured(
        self,
        tool: str,
        scenario: str,
        version: str,
        restarted: set[str],
        run: Callable[[], tuple[float, float, int, int, int, dict[str, Any]]],
        may_restart: set[str] | None = None,
    ) -> Row:
        """Runs `run` between the harness's before/after views of the fleet.

        `run` returns (wall, tool CPU, peak memory, max RSS, exit code, extra).
        `may_restart`: hosts whose service may restart or not (light S3, see drift_plan).
        """
        before = fleetctl.state(self.hosts)
        self.fleet_cpu.attach()
        self.sshd.mark()
        load = measure.loadavg()
        fleet0 = self.fleet_cpu.seconds()
        wall, cpu, peak, rss, code, extra = run()
        counts = self.sshd.counts()
        fleet = self.fleet_cpu.seconds() - fleet0
        _, problems = fleetctl.verify(self.hosts, version, before, restarted, may_restart or ())
        if code != 0:
            problems.insert(0, f"exit code {code}")
        row = Row(
            tool=tool,
            scenario=scenario,
            hosts=len(self.hosts),
            wall=wall,
            tool_cpu=cpu,
            fleet_cpu=fleet,
            peak_mem=peak,
            max_rss=rss,
            connections=counts.connections,
            commands=counts.commands,
            ok=not problems,
            problems=problems[:10],
            load=load,
            extra=extra,
        )
        log(
            f"{tool:18} {scenario}: {wall:7.2f} s wall, {cpu:6.2f} s CPU, fleet {fleet:6.2f} s, "
            f"{peak / 2**20:5.0f} MiB, {counts.connections} conns, {counts.commands} cmds"
            + ("" if row.ok else f"  PROBLEMS: {problems[:3]}")
        )
        self.rows.append(row)
        self.save()
        return row

    def process(
        self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Callable[[], tuple[float, float, int, int, int, dict[str, Any]]]:
        def run() -> tuple[float, float, int, int, int, dict[str, Any]]:
            m = measure.run_measured(
                argv,
                env=env,
                cwd=cwd,
                timeout=self.args.tool_timeout,
                out_dir=self.work / "logs",
            )
            extra: dict[str, Any] = {}
            last = m.stdout.strip().splitlines()[-1:] if m.stdout.strip() else []
            if last and last[0].startswith("{"):
                try:
                    extra = json.loads(last[0])
                except ValueError:
                    extra = {}
            if m.exit_code != 0:
                extra["output_tail"] = (m.stdout[-1500:] + "\n" + m.stderr[-1500:]).strip()
            return m.wall, m.tool_cpu, m.peak_mem, m.max_rss, m.exit_code, extra

        return run

    # -- scenarios, the same for every tool ---------------------------------------------------

    def scenarios(self, tool: str, command: Callable[[str, str, float], Callable[[], Any]]) -> None:
        """S1..S4 for one tool; command(scenario, version, batch_percent) -> run."""
        wanted = self.wanted(tool)
        if not wanted:
            return
        fleetctl.reset(self.hosts)
        everyone = {h.name for h in self.hosts}
        plan = [
            ("S1", "1", 0.0, everyone),
            ("S2", "1", 0.0, set()),
            ("S3", "1", 0.0, None),
            ("S4", "2", 10.0, everyone),
        ]
        for scenario, version, batch, restarted in plan:
            if scenario not in wanted:
                if scenario == "S1":
                    # The state later scenarios start from; the floor's script writes the
                    # same bytes as every peer, and quickly (vmgitops keeps its own state
                    # on the VM, so it converges itself).
                    setup = command if tool.startswith("vmgitops") else self.floor_command
                    setup(scenario, version, batch)()
                continue
            may: set[str] = set()
            if scenario == "S3":
                restarted, may = self.drift_plan()
            assert restarted is not None
            self.measured(
                tool, scenario, version, restarted, command(scenario, version, batch), may
            )

    def drift_plan(self) -> tuple[set[str], set[str]]:
        """Drifts 1% of the hosts; returns (must restart, may restart).

        With systemd every tool restarts the drifted hosts' service (the unit's input was
        written). In the light workload the restart is a command run on a change of the
        config: Ansible's handler, pyinfra's did_change and the floor run it whenever they
        write the file, vmgitops when the desired config changed (a repair restores the
        bytes the "service" had loaded already, so its loaded sha256 stays right). Both
        are accepted there; the check that the loaded config is the right one remains.
        """
        drifted = fleetctl.drift_hosts(self.hosts)
        fleetctl.drift(drifted)
        names = {h.name for h in drifted}
        return (set(), names) if self.light else (names, set())

    def wanted(self, tool: str) -> list[str]:
        if tool not in self.args.tools:
            return []
        only = [s.split(":", 1)[1] for s in self.args.only if s.startswith(f"{tool}:")]
        if not only and tool == "ansible-f50" and self.light and len(self.hosts) > LIGHT_SLOW_LIMIT:
            note = (
                f"ansible-f50 measured S2 only above {LIGHT_SLOW_LIMIT} light hosts (its S1 "
                "setup was done by the floor script, which writes the same bytes)"
            )
            if note not in self.notes:
                self.notes.append(note)
            only = ["S2"]
        if not only and tool == "ansible-f5" and len(self.hosts) > SLOW_LIMIT:
            # Ten times the forks-50 run for the same work; S2, the drift check, says it.
            note = (
                f"ansible-f5 measured S2 only above {SLOW_LIMIT} hosts (its S1 setup was "
                "done by the floor script, which writes the same bytes)"
            )
            if note not in self.notes:
                self.notes.append(note)
            only = ["S2"]
        return only or list(self.args.scenarios)

    def run_engine(self) -> None:
        def command(scenario: str, version: str, batch: float) -> Callable[[], Any]:
            argv = [
                PY, "-m", "bench.drivers.engine", "--dev", str(self.dev),
                "--hosts", str(len(self.hosts)), "--version", version,
                "--app-dir", str(self.work / f"app-v{version}"),
                "--generation", version, "--batch-percent", str(batch),
                *self.light_flag(),
            ]  # fmt: skip
            return self.process(argv, env=self.py_env(), cwd=ROOT)

        self.scenarios("vmgitops-engine", command)

    def run_floor(self) -> None:
        if "floor" not in self.args.tools:
            return
        argv = [
            PY, "-m", "bench.drivers.floor", "--dev", str(self.dev),
            "--hosts", str(len(self.hosts)), "--version", "1", "--mode", "commands",
            "--rounds", "5", *self.light_flag(),
        ]  # fmt: skip
        m = measure.run_measured(argv, env=self.py_env(), cwd=ROOT, out_dir=self.work / "logs")
        self.floor = json.loads(m.stdout.strip().splitlines()[-1])
        self.floor.update(wall=m.wall, tool_cpu=m.tool_cpu)
        log(
            f"floor: {self.floor['connect_seconds']:.2f} s for {len(self.hosts)} fresh "
            f"connections, {min(self.floor['round_seconds']):.3f} s per command round"
        )

        self.scenarios("floor", self.floor_command)

    def floor_command(self, scenario: str, version: str, batch: float) -> Callable[[], Any]:
        argv = [
            PY, "-m", "bench.drivers.floor", "--dev", str(self.dev),
            "--hosts", str(len(self.hosts)), "--version", version,
            "--batch-percent", str(batch), *self.light_flag(),
        ]  # fmt: skip
        return self.process(argv, env=self.py_env(), cwd=ROOT)

    def light_flag(self) -> list[str]:
        return ["--light"] if self.light else []

    def run_ansible(self, forks: int) -> None:
        tool = f"ansible-f{forks}"
        d = peers.ansible_setup(self.work, self.hosts, forks, light=self.light)

        def command(scenario: str, version: str, batch: float) -> Callable[[], Any]:
            argv, env = peers.ansible_command(
                d, self.hosts, version, batch > 0, f"{scenario}-{time.time_ns()}"
            )
            return self.process(argv, env=env, cwd=d)

        self.scenarios(tool, command)

    def run_pyinfra(self) -> None:
        d = peers.pyinfra_setup(self.work, self.hosts, light=self.light)

        def command(scenario: str, version: str, batch: float) -> Callable[[], Any]:
            argv, env = peers.pyinfra_commands(d, self.hosts, version, batch)
            return self.process(argv, env=env, cwd=d)

        self.scenarios("pyinfra", command)

    def run_operator(self) -> None:
        wanted = self.wanted("vmgitops-operator")
        if not wanted:
            return
        fleetctl.reset(self.hosts)
        ob = OperatorBench(
            dev=self.dev, work=self.work, hosts=self.hosts, git_port=self.args.git_port
        )
        everyone = {h.name for h in self.hosts}
        timeout = self.args.tool_timeout
        try:
            ob.start()
            rev1 = ob.repo.commit_version("1", light=self.light)
            ob.create_targets()
            ob.wait_targets_probed()

            def window(fn: Callable[[], Any]) -> Callable[[], Any]:
                def run() -> tuple[float, float, int, int, int, dict[str, Any]]:
                    w = fn()
                    return w.wall, w.tool_cpu, w.pss, w.hwm, 0, {"operation": ob.operation()}

                return run

            self.measured(
                "vmgitops-operator", "S1", "1", everyone,
                window(lambda: ob.s1_initial(rev1, timeout)),
            )  # fmt: skip
            # Warm up once: the first refresh after the initial sync is not the steady state.
            ob.refresh(rev1, timeout)
            if "S2" in wanted:
                self.measured(
                    "vmgitops-operator", "S2", "1", set(), window(lambda: ob.refresh(rev1, timeout))
                )
            if "S3" in wanted:
                must, may = self.drift_plan()
                self.measured(
                    "vmgitops-operator", "S3", "1", must,
                    window(lambda: ob.refresh(rev1, timeout, operation=True)), may,
                )  # fmt: skip
            if "S4" in wanted:
                ob.set_batches("10%", rev1)
                rev2 = ob.repo.commit_version("2", light=self.light)
                self.measured(
                    "vmgitops-operator", "S4", "2", everyone,
                    window(lambda: ob.refresh(rev2, timeout, operation=True)),
                )  # fmt: skip
        finally:
            ob.cleanup()

    def py_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}"}

    # -- results -------------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "hosts": len(self.hosts),
            "light": self.light,
            "light_fleet": self.light_fleet,
            "machine": report.machine(),
            "load_at_start": self.load_at_start,
            "crypto": self.crypto,
            "floor": self.floor,
            "rows": [report.row_dict(r) for r in self.rows],
            "notes": self.notes,
        }

    def save(self) -> None:
        (self.work / "partial.json").write_text(json.dumps(self.result(), indent=2))

    def main(self) -> int:
        self.started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.load_at_start = measure.loadavg()
        self.setup()
        kind = "light hosts" if self.light else "VMs"
        log(f"{len(self.hosts)} {kind}; sshd: {self.crypto}; load {self.load_at_start}")
        for tool in self.args.tools:
            if tool == "floor":
                self.run_floor()
            elif tool == "vmgitops-engine":
                self.run_engine()
            elif tool == "vmgitops-operator":
                self.run_operator()
            elif tool == "pyinfra":
                self.run_pyinfra()
            elif tool.startswith("ansible-f"):
                self.run_ansible(int(tool.removeprefix("ansible-f")))
        fleetctl.reset(self.hosts)
        result = self.result()
        kind = "light" if self.light else "vms"
        path = self.args.out or self.args.results_dir / (
            f"bench-{len(self.hosts)}{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        )
        report.save(result, path)
        print(report.render(result))
        log(f"results: {path}")
        return 0 if all(r.ok for r in self.rows) else 1


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--dev", type=Path, required=True, help="the bench's VMGITOPS_DEV")
    p.add_argument("--work", type=Path, required=True, help="scratch folder of this run")
    p.add_argument("--hosts", type=int, default=10)
    p.add_argument(
        "--light",
        action="store_true",
        help="the light hosts of hack/fleet/light.py (light.json), the light workload",
    )
    p.add_argument("--tools", default=",".join(ALL_TOOLS))
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    p.add_argument(
        "--only", default="", help="TOOL:SCENARIO,... measure only these for those tools"
    )
    p.add_argument("--git-port", type=int, default=int(fleetctl.bench_setting("GIT_PORT")))
    p.add_argument("--tool-timeout", type=float, default=1800)
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench/results")
    p.add_argument("--out", type=Path, help="the JSON result file (default: in results-dir)")
    a = p.parse_args(argv)
    a.tools = [t for t in a.tools.split(",") if t]
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    a.only = [s for s in a.only.split(",") if s]
    return a


if __name__ == "__main__":
    raise SystemExit(Bench(parse()).main())
