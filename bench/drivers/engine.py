"""The vmgitops engine, driven directly: `sync_target` on every host over one pooled
connection per host (no operator, no API server, no Git), the way the controller calls
it. With --batch-percent, batch after batch, stopping at the first batch with a target
that is not Synced and Healthy (the health gate).

    python -m bench.drivers.engine --dev DIR --hosts N --version V --app-dir FOLDER
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import asyncio  # noqa: E402 - the import time is part of what is reported
from typing import Any  # noqa: E402

import asyncssh  # noqa: E402

from bench.drivers.common import arguments, batches, emit  # noqa: E402
from bench.fleetctl import Host, load_fleet  # noqa: E402
from vmgitops.engine import TargetResult, sync_target  # noqa: E402
from vmgitops.manifest import TargetInfo, load_app  # noqa: E402
from vmgitops.plan.health import Health, SyncStatus  # noqa: E402
from vmgitops.settings import Settings  # noqa: E402
from vmgitops.transport import ConnectionConfig, ConnectionPool, Pinned, PoolLimits  # noqa: E402

APP_KEY = "bench_engine"
STARTS = {"StartService", "RestartService"}
#: On light hosts the restart is the app's onChange command.
LIGHT_STARTS = {"RunCommand"}


def _ok(r: TargetResult) -> bool:
    return r.ok and r.sync == SyncStatus.SYNCED and r.health.health == Health.HEALTHY


async def main() -> dict[str, Any]:
    args = arguments(__doc__ or "")
    imported = time.monotonic()
    hosts = load_fleet(args.dev, args.light)[: args.hosts]
    starts = LIGHT_STARTS if args.light else STARTS
    app = load_app(args.app_dir)
    key = asyncssh.read_private_key(str(hosts[0].key_file))
    s = Settings()  # the operator's defaults
    pool = ConnectionPool(
        PoolLimits(max_connects=s.max_concurrent_connects, max_commands=s.max_inflight_commands)
    )

    async def one(h: Host) -> TargetResult:
        config = ConnectionConfig(
            target=f"bench/{h.name}",
            address=h.address,
            port=h.port,
            user=h.user,
            key=key,
            host_key_policy=Pinned.from_strings([h.host_key]),
        )
        return await sync_target(
            pool.runner(config),
            app_key=APP_KEY,
            generation=args.generation,
            revision=f"v{args.version}",
            app=app,
            params={},
            target=TargetInfo(h.name, h.address),
            facts={},
            prune=True,
        )

    began = time.monotonic()
    results: dict[str, TargetResult] = {}
    stopped = ""
    done_batches = 0
    for batch in batches(hosts, args.batch_percent):
        got = await asyncio.gather(*(one(h) for h in batch))
        results.update((h.name, r) for h, r in zip(batch, got, strict=True))
        done_batches += 1
        bad = [h.name for h, r in zip(batch, got, strict=True) if not _ok(r)]
        if bad:
            stopped = f"health gate: {bad[:5]} not Synced and Healthy"
            break
    finished = time.monotonic()
    await pool.close()
    failed = {n: r.message for n, r in results.items() if not _ok(r)}
    return {
        "hosts": len(hosts),
        "done": len(results),
        "failed": failed,
        "stopped": stopped,
        "batches": done_batches,
        "commands": sum(r.commands for r in results.values()),
        "round_trips": sum(r.round_trips for r in results.values()),
        "round_trips_max": max((r.round_trips for r in results.values()), default=0),
        "connections": pool.stats.connections_opened,
        "restarted": sorted(
            n for n, r in results.items() if any(o.kind in starts and o.ok for o in r.steps)
        ),
        "import_seconds": imported - STARTED,
        "work_seconds": finished - began,
    }


if __name__ == "__main__":
    emit(asyncio.run(main()))
