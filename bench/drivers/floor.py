"""The floor: bare asyncssh, nothing but what SSH itself costs on this machine.

    --mode connect    open one fresh connection to every host at once, then close them
    --mode commands   open them, then --rounds rounds of one `true` per host at once
    --mode workload   per host: a fresh connection and ONE hand-written shell command
                      that does the whole workload (bench.workload.FLOOR_SCRIPT), the
                      config on stdin; batches and a health gate with --batch-percent
    --light           the light hosts and the light workload (FLOOR_SCRIPT_LIGHT)

No planning, no drift report, no safety (no lock, no atomic multi-file apply, no fence):
the least any tool could do over SSH for this workload.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import asyncio  # noqa: E402
from typing import Any  # noqa: E402

import asyncssh  # noqa: E402

from bench import workload  # noqa: E402
from bench.drivers.common import arguments, batches, emit  # noqa: E402
from bench.fleetctl import CIPHER, KEX, Host, load_fleet  # noqa: E402


async def connect(h: Host, key: asyncssh.SSHKey) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        h.address,
        h.port,
        username=h.user,
        client_keys=[key],
        known_hosts=([asyncssh.import_public_key(h.host_key)], [], []),
        kex_algs=[KEX],
        encryption_algs=[CIPHER],
        config=None,
        agent_path=None,
        connect_timeout=30,
    )


async def main() -> dict[str, Any]:
    args = arguments(__doc__ or "")
    imported = time.monotonic()
    hosts = load_fleet(args.dev, args.light)[: args.hosts]
    key = asyncssh.read_private_key(str(hosts[0].key_file))
    out: dict[str, Any] = {"hosts": len(hosts), "import_seconds": imported - STARTED}

    if args.mode in ("connect", "commands"):
        t0 = time.monotonic()
        conns = await asyncio.gather(*(connect(h, key) for h in hosts))
        t1 = time.monotonic()
        out["connect_seconds"] = t1 - t0
        out["connections"] = len(conns)
        out["connections_per_second"] = len(conns) / (t1 - t0)
        if args.mode == "commands":
            rounds = []
            for _ in range(args.rounds):
                r0 = time.monotonic()
                done = await asyncio.gather(*(c.run("true", check=True) for c in conns))
                rounds.append(time.monotonic() - r0)
                assert len(done) == len(conns)
            out["round_seconds"] = rounds
            out["commands"] = len(conns) * len(rounds)
            out["commands_per_second"] = out["commands"] / sum(rounds)
        for c in conns:
            c.close()
        await asyncio.gather(*(c.wait_closed() for c in conns))
        out["work_seconds"] = time.monotonic() - t0
        return out

    began = time.monotonic()

    async def one(h: Host) -> tuple[str, bool, bool]:
        config = workload.expected(h.name, args.version)
        async with await connect(h, key) as conn:
            r = await conn.run(
                asyncssh_cmd(workload.floor_argv(h.name, args.version, args.light)),
                input=config.decode(),
                check=False,
                timeout=120,
            )
        return h.name, r.exit_status == 0, "changed" in str(r.stdout or "")

    results: dict[str, tuple[bool, bool]] = {}
    stopped = ""
    n = 0
    for batch in batches(hosts, args.batch_percent):
        got = await asyncio.gather(*(one(h) for h in batch))
        n += 1
        results.update((name, (ok, changed)) for name, ok, changed in got)
        bad = [name for name, ok, _ in got if not ok]
        if bad:
            stopped = f"health gate: {bad[:5]} failed"
            break
    out.update(
        done=len(results),
        failed={name: "script failed" for name, (ok, _) in results.items() if not ok},
        stopped=stopped,
        batches=n,
        commands=len(results),
        connections=len(results),
        restarted=sorted(name for name, (_, changed) in results.items() if changed),
        work_seconds=time.monotonic() - began,
    )
    return out


def asyncssh_cmd(argv: Any) -> str:
    """argv as one command line for the remote shell (asyncssh sends a string)."""
    import shlex

    return shlex.join(argv)


if __name__ == "__main__":
    emit(asyncio.run(main()))
