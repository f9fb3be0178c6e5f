"""The engine in this process against a real VM over pooled SSH (as the operator runs it),
for the security tests that need many variants of an app folder quickly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from testbed import VM
from vmgitops.engine import EngineOptions, TargetResult, sync_target
from vmgitops.engine.crashtest import ssh_spec
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.transport import ConnectionPool, KeyCache, build_connection_config

NAMESPACE = "security"


def entry(vm: VM) -> dict[str, Any]:
    return {
        "name": vm.name,
        "address": vm.address,
        "port": vm.port,
        "user": vm.user,
        "privateKeyFile": str(vm.private_key_file),
        "hostPublicKey": vm.host_public_key,
    }


def sync(
    vm: VM,
    folder: Path,
    app_key: str,
    *,
    revision: str = "rev1",
    params: dict[str, Any] | None = None,
    prune: bool = True,
    dry_run: bool = False,
    **options: Any,
) -> TargetResult:
    async def run() -> TargetResult:
        spec, secret = ssh_spec(entry(vm))
        config = build_connection_config(
            spec, namespace=NAMESPACE, name=vm.name, secret=secret, key_cache=KeyCache()
        )
        async with ConnectionPool() as pool:
            return await sync_target(
                pool.runner(config),
                app_key=app_key,
                generation=1,
                revision=revision,
                app=load_app(folder),
                params=params or {},
                target=TargetInfo(vm.name, vm.address, {"role": "security"}),
                facts={"packageManager": "apt"},
                prune=prune,
                dry_run=dry_run,
                options=EngineOptions(**options),
            )

    return asyncio.run(run())
