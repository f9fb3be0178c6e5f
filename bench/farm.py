"""A farm of simulated SSH hosts for the scale run ONLY: one asyncssh server process
listening on N loopback addresses (127.1.X.Y), each address standing in for one VM.

What the farm answers is real: every distinct command (with its stdin) is run once on a
real systemd VM of the bench fleet (the backend) and its answer is replayed to every
other simulated host that sends the same command. That works because the scale app
renders the same bytes for every host (no per-host value), so every host of a healthy
fleet gives the same answers. A command with stdin (an apply; not the observe script,
which reads its paths on stdin) changes the backend; reads are answered from the answers
recorded when the backend was in the asking host's state (see `Farm`), and a read that
failed is never recorded (it is asked again); identical concurrent commands share one
backend run. The backend's own sshd and CPU are therefore not what 5,000 VMs would cost:
the scale run measures the operator, the API server and etcd, not the fleet.

    python -m bench.farm --targets N --host-key FILE --authorized-keys FILE \
        --backend ADDRESS --backend-key FILE --backend-host-key "ssh-ed25519 ..." \
        --stats FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncssh

from bench.fleetctl import CIPHER, KEX
from vmgitops.facts.look import look_argv
from vmgitops.facts.observe import ObserveRequest

PORT = 2222


def address_of(index: int) -> str:
    """Host 0 -> 127.1.0.1; 250 per /24, so 5,000 fit in 127.1.0.0/16."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


@dataclass
class Stats:
    connections: int = 0
    open_connections: int = 0
    commands: int = 0
    forwarded: int = 0
    replayed: int = 0
    applies: int = 0
    listening: int = 0


class _Server(asyncssh.SSHServer):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.stats.connections += 1
        self.stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open_connections -= 1


Answer = tuple[int, bytes, bytes]


#: The $0 of vmgitops's observing scripts (alone, or with the health checks), as the
#: engine names them: they read the paths to look at on stdin and change nothing.
READ_NAMES = (ObserveRequest("").argv()[5], look_argv(())[5])


def changes_host(command: str, data: bytes) -> bool:
    """Whether a command may change the host: one with stdin, except vmgitops's observing
    scripts. (Treated as a write, an observation was replayed from before the apply:
    every service "inactive".)"""
    return bool(data) and not any(n in command for n in READ_NAMES)


class Farm:
    """Answers each simulated host as if it were the backend in the same state.

    Every host's state is its *level*: how many writes (applies) it has sent. The
    backend's level is how many distinct writes it ran. A read is answered from the
    answers recorded at the asking host's level: after the first host's apply moved the
    backend on, the hosts that have not applied yet still see the state before it (not
    the backend's "already in sync", which would let them skip their own apply and make
    the scale run's initial sync look cheaper than 5,000 real VMs would be).
    """

    def __init__(self, backend: asyncssh.SSHClientConnection) -> None:
        self.backend = backend
        self.channels = asyncio.Semaphore(8)  # below the backend sshd's MaxSessions
        self.stats = Stats()
        self.reads: dict[tuple[bytes, int], Answer] = {}
        self.writes: dict[bytes, Answer] = {}
        self.inflight: dict[tuple[bytes, int], asyncio.Future[Answer]] = {}
        self.levels: dict[str, int] = {}
        self.generation = 0

    async def _run(self, command: str, data: bytes) -> Answer:
        async with self.channels:
            self.stats.forwarded += 1
            process = await self.backend.create_process(command, encoding=None)
            # A command may exit before reading its stdin (an apply refused by the VM's
            # fence): its answer is what counts, not the broken pipe.
            with contextlib.suppress(OSError, asyncssh.Error):
                if data:
                    process.stdin.write(data)
                process.stdin.write_eof()
            r = await process.wait()
        out = r.stdout if isinstance(r.stdout, bytes) else b""
        err = r.stderr if isinstance(r.stderr, bytes) else b""
        return int(r.exit_status if r.exit_status is not None else -1), out, err

    async def answer(self, command: str, data: bytes, host: str = "") -> Answer:
        digest = hashlib.sha256(command.encode() + b"\0" + data).digest()
        write = changes_host(command, data)
        level = self.levels.get(host, 0)
        got = await self._answer(command, data, digest, write, level)
        if write and got[0] == 0:
            self.levels[host] = level + 1
        return got

    async def _answer(
        self, command: str, data: bytes, digest: bytes, write: bool, level: int
    ) -> Answer:
        # Writes are shared by every host that sends the same bytes (their level is the
        # same then); reads by the hosts at the same level.
        key = (digest, -1 if write else level)
        cached = self.writes.get(digest) if write else self.reads.get(key)
        if cached is not None:
            self.stats.replayed += 1
            return cached
        pending = self.inflight.get(key)
        if pending is not None:
            self.stats.replayed += 1
            return await asyncio.shield(pending)
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        generation = self.generation
        try:
            got = await self._run(command, data)
            if write:
                self.stats.applies += 1
                self.generation += 1
                self.writes[digest] = got
            elif generation == self.generation == level and got[0] == 0:
                # Recorded only when the backend was at the host's level throughout. A
                # failed read is asked again next time: a health check that ran while
                # the backend's service was still starting must not fail every host
                # forever (its retries would all be answered from the record).
                self.reads[key] = got
            fut.set_result(got)
            return got
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it too
            raise
        finally:
            del self.inflight[key]

    async def handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        self.stats.commands += 1
        try:
            data = await process.stdin.read()
            sock = process.get_extra_info("sockname") or ("",)
            status, out, err = await self.answer(process.command or "", data, str(sock[0]))
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(status)
        except Exception as exc:  # the farm must never take a simulated host down
            process.stderr.write(f"farm: {exc}".encode())
            process.exit(255)


async def serve(args: argparse.Namespace) -> None:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    backend = await asyncssh.connect(
        args.backend,
        22,
        username="root",
        client_keys=[args.backend_key],
        known_hosts=([asyncssh.import_public_key(args.backend_host_key)], [], []),
        kex_algs=[KEX],
        encryption_algs=[CIPHER],
        config=None,
        agent_path=None,
        keepalive_interval=30,
    )
    farm = Farm(backend)
    host_key = asyncssh.read_private_key(args.host_key)
    authorized = asyncssh.import_authorized_keys(args.authorized_text)
    servers = []
    for i in range(args.targets):
        servers.append(
            await asyncssh.create_server(
                lambda: _Server(farm.stats),
                address_of(i),
                PORT,
                server_host_keys=[host_key],
                authorized_client_keys=authorized,
                process_factory=farm.handle,
                encoding=None,
                kex_algs=[KEX],
                encryption_algs=[CIPHER],
                allow_scp=False,
                agent_forwarding=False,
                x11_forwarding=False,
                line_editor=False,
                keepalive_interval=60,
                reuse_address=True,
            )
        )
        farm.stats.listening += 1
    stats_path = Path(args.stats)
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:  # bounded: the farm ends by itself
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**asdict(farm.stats), "time": time.time()}))
        tmp.replace(stats_path)
        await asyncio.sleep(0.2)
    for s in servers:
        s.close()
    backend.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__)
    p.add_argument("--targets", type=int, required=True)
    p.add_argument("--host-key", required=True)
    p.add_argument("--authorized-keys", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--backend-key", required=True)
    p.add_argument("--backend-host-key", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--lifetime", type=float, default=7200, help="seconds before it exits")
    args = p.parse_args()
    args.authorized_text = Path(args.authorized_keys).read_text()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
