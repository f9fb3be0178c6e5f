"""How a run is measured: CPU and memory by cgroup, SSH activity from the VMs' sshd logs.

* Tool CPU seconds and peak memory: the tool runs in its own cgroup (the host's v1
  `cpuacct` hierarchy), so every process it starts counts, including
  daemonised helpers such as Ansible's ControlPersist masters, which are ended (by PID,
  from the cgroup's own list) when the run is over. Peak memory is the largest sum of
  the cgroup's processes' PSS (shared pages counted once, so Ansible's forked workers
  are not counted 50 times), sampled 5 times a second; the largest single process
  (`ru_maxrss` from wait4) is recorded too.
* Fleet CPU seconds: every process of every bench VM is in one cgroup (moved there right
  after boot; what they fork inherits it), so sshd, the commands it runs and systemd's
  restarts are all counted, and nothing else on this shared machine is.
* Connections and commands: each VM's sshd logs "Accepted publickey" once per
  connection and "Starting session: command" once per command; they are counted in the
  VM's journal after a cursor taken before the run.
* Light hosts (hack/fleet/light.py) share the machine's PID namespace, so their
  processes are found by their own MOUNT namespace instead (each host has one; sshd's
  sessions and commands inherit it), and they have no journal: sshd writes its log
  to a file, counted from the offset it had before the run.

Without the cgroup hierarchies (another kind of machine), CPU falls back to wait4's
rusage of the tool and to /proc of the VMs' processes, and peak memory to ru_maxrss.
Everything here reads /proc and /sys only; nothing is sent to a VM.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CGROOT = Path("/sys/fs/cgroup")
GROUP = "vmgitops-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _writable(hierarchy: str) -> bool:
    d = CGROOT / hierarchy
    return (d / "cgroup.procs").exists() and os.access(d, os.W_OK)


HAVE_CGROUPS = _writable("cpuacct")


class Cgroup:
    """A v1 `cpuacct` cgroup under vmgitops-bench/: CPU time and the list of processes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cpu = CGROOT / "cpuacct" / GROUP / name
        self.cpu.mkdir(parents=True, exist_ok=True)

    def add(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            (self.cpu / "cgroup.procs").write_text(str(pid))

    def cpu_seconds(self) -> float:
        return int((self.cpu / "cpuacct.usage").read_text()) / 1e9

    def memory_now(self) -> int:
        """The processes' proportional set size (PSS) summed: shared pages counted once."""
        return sum(pss(pid) for pid in self.procs())

    def procs(self) -> list[int]:
        text = (self.cpu / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def end_all(self, deadline: float = 5.0) -> None:
        """Ends what is left in the cgroup (all of it was started by this run)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.procs()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            until = time.monotonic() + deadline
            while self.procs() and time.monotonic() < until:
                time.sleep(0.05)

    def remove(self) -> None:
        self.end_all()
        with contextlib.suppress(OSError):
            self.cpu.rmdir()

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv, run from a shell that first moves itself into this cgroup."""
        return [
            "sh",
            "-c",
            'echo $$ > "$1" && shift && exec "$@"',
            "bench-cgroup",
            str(self.cpu / "cgroup.procs"),
            *argv,
        ]


def pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


# -- the fleet's CPU ---------------------------------------------------------------------


def _ns(pid: int, kind: str = "pid") -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _proc_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of one process, in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def processes_in_namespaces(namespaces: set[str], kind: str = "pid") -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _ns(int(entry.name), kind) in namespaces:
            out.append(int(entry.name))
    return out


class FleetCpu:
    """CPU seconds spent inside the bench VMs (all their processes).

    `kind`: the namespace that tells the fleet's processes from the machine's: "pid" for
    the systemd VMs, "mnt" for light hosts (which share the machine's PID namespace).
    """

    def __init__(self, vm_pids: Sequence[int], kind: str = "pid") -> None:
        self.vm_pids = list(vm_pids)
        self.kind = kind
        self.cgroup = Cgroup("fleet") if HAVE_CGROUPS else None
        self._own = _ns(os.getpid(), kind)
        self.attach()

    def _namespaces(self) -> set[str]:
        found = {ns for p in self.vm_pids if (ns := _ns(p, self.kind)) is not None}
        found.discard(self._own or "")  # never the harness's own (nor the machine's)
        return found

    def attach(self) -> None:
        """Moves every process of the VMs into the fleet cgroup (new ones inherit it)."""
        if self.cgroup is None:
            return
        for pid in processes_in_namespaces(self._namespaces(), self.kind):
            self.cgroup.add(pid)

    def seconds(self) -> float:
        if self.cgroup is not None:
            return self.cgroup.cpu_seconds()
        # Fallback: live processes' own and reaped children's CPU; misses little, since
        # each VM's systemd reaps what its services leave behind.
        found = processes_in_namespaces(self._namespaces(), self.kind)
        return sum(_proc_cpu(p) for p in found)

    def memory(self) -> int:
        """The fleet's processes' PSS, summed (shared pages counted once)."""
        return sum(pss(p) for p in processes_in_namespaces(self._namespaces(), self.kind))


# -- sshd's log ----------------------------------------------------------------------------


def _journal_dir(vm_pid: int) -> str:
    return f"/proc/{vm_pid}/root/run/log/journal"


def _journalctl(vm_pid: int, *args: str) -> str:
    done = subprocess.run(
        ["journalctl", "-D", _journal_dir(vm_pid), "--no-pager", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout


def journal_cursor(vm_pid: int) -> str:
    out = _journalctl(vm_pid, "-n", "0", "--show-cursor")
    for line in out.splitlines():
        if line.startswith("-- cursor: "):
            return line.removeprefix("-- cursor: ").strip()
    return ""


@dataclass
class SshdCounts:
    connections: int = 0
    commands: int = 0
    per_vm: dict[str, tuple[int, int]] = field(default_factory=dict)


def _count_since(vm_pid: int, cursor: str) -> tuple[int, int]:
    args = ["-o", "cat", "_COMM=sshd"]
    if cursor:
        args = [f"--after-cursor={cursor}", *args]
    out = _journalctl(vm_pid, *args)
    conns = sum(1 for line in out.splitlines() if line.startswith("Accepted publickey for "))
    cmds = sum(1 for line in out.splitlines() if line.startswith("Starting session: command"))
    return conns, cmds


class SshdLog:
    """Counts connections and commands in the VMs' sshd logs since `mark()`."""

    def __init__(self, vms: Mapping[str, int]) -> None:
        self.vms = dict(vms)  # name -> host PID of the VM's systemd
        self.cursors: dict[str, str] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    def mark(self) -> None:
        names = list(self.vms)
        cursors = self._pool.map(lambda n: journal_cursor(self.vms[n]), names)
        self.cursors = dict(zip(names, cursors, strict=True))

    def counts(self, settle: float = 1.0) -> SshdCounts:
        """The counts since mark(); waits until two readings agree (journald is async)."""

        def read() -> dict[str, tuple[int, int]]:
            names = list(self.vms)
            got = self._pool.map(
                lambda n: _count_since(self.vms[n], self.cursors.get(n, "")), names
            )
            return dict(zip(names, got, strict=True))

        return _settled(read, settle)


class SshdFileLog:
    """SshdLog for light hosts: each sshd's log file, counted from its size at `mark()`."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = dict(files)
        self.offsets: dict[str, int] = {}

    def mark(self) -> None:
        self.offsets = {n: _size(f) for n, f in self.files.items()}

    def _count(self, name: str) -> tuple[int, int]:
        try:
            with open(self.files[name], "rb") as f:
                f.seek(self.offsets.get(name, 0))
                text = f.read().decode(errors="replace")
        except OSError:
            return 0, 0
        lines = text.splitlines()
        conns = sum(1 for line in lines if "Accepted publickey for " in line)
        cmds = sum(1 for line in lines if "Starting session: command" in line)
        return conns, cmds

    def counts(self, settle: float = 0.5) -> SshdCounts:
        """The counts since mark(); waits until two readings agree (sessions may still be
        closing and writing their last lines)."""
        return _settled(lambda: {n: self._count(n) for n in self.files}, settle)


def _settled(read: Callable[[], dict[str, tuple[int, int]]], settle: float) -> SshdCounts:
    """(connections, commands) per host from `read`, once two readings `settle` seconds
    apart agree on the totals (at most 10 readings)."""
    last: SshdCounts | None = None
    for _ in range(10):
        got = read()
        now = SshdCounts(
            connections=sum(c for c, _ in got.values()),
            commands=sum(m for _, m in got.values()),
            per_vm=got,
        )
        if last is not None and (now.connections, now.commands) == (
            last.connections,
            last.commands,
        ):
            return now
        last = now
        time.sleep(settle)
    assert last is not None
    return last


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- one measured run of a tool ----------------------------------------------------------------


@dataclass
class Measured:
    """What one run of one tool cost."""

    argv: list[str]
    exit_code: int
    wall: float
    tool_cpu: float
    peak_mem: int
    max_rss: int
    stdout: str
    stderr: str


class _Sampler(threading.Thread):
    def __init__(self, cgroup: Cgroup) -> None:
        super().__init__(daemon=True)
        self.cgroup, self.peak, self.stop = cgroup, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.peak = max(self.peak, self.cgroup.memory_now())
            self.stop.wait(0.2)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800,
    out_dir: Path,
) -> Measured:
    """Runs argv to completion in a fresh cgroup; wall time is spawn to exit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    out_path, err_path = out_dir / f"{tag}.out", out_dir / f"{tag}.err"
    cg = Cgroup(f"tool-{tag}") if HAVE_CGROUPS else None
    full = cg.wrap(argv) if cg is not None else list(argv)
    sampler = _Sampler(cg) if cg is not None else None
    if sampler is not None:
        sampler.start()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            full,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        deadline = started + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if sampler is not None:
        sampler.stop.set()
        sampler.join()
    assert usage is not None
    if cg is not None:
        cg.end_all()
        tool_cpu = cg.cpu_seconds()
        cg.remove()
    else:
        tool_cpu = usage.ru_utime + usage.ru_stime
    max_rss = usage.ru_maxrss * 1024
    peak = sampler.peak if sampler is not None and sampler.peak else max_rss
    return Measured(
        argv=list(argv),
        exit_code=proc.returncode,
        wall=wall,
        tool_cpu=tool_cpu,
        peak_mem=peak,
        max_rss=max_rss,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
