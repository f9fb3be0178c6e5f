"""Probe one VirtualMachineTarget: connect through the pool, read facts in one round trip.

The caller hands in what it already holds in memory (the credentials Secret, the other
targets for a bastion), so a probe costs one SSH command and no API call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vmgitops.facts.records import MalformedOutput
from vmgitops.facts.system import parse_system_facts, system_probe_argv
from vmgitops.reconcile.target_status import CONNECTED, ProbeOutcome
from vmgitops.transport.config import (
    MAX_BASTION_DEPTH,
    ConnectionConfig,
    Timeouts,
    build_connection_config,
)
from vmgitops.transport.errors import CredentialsMissing, TransportError
from vmgitops.transport.keys import KeyCache
from vmgitops.transport.pool import ConnectionPool

#: (namespace, name) -> Secret body as the API returns it, or None when absent.
SecretLookup = Callable[[str, str], Mapping[str, Any] | None]
#: (namespace, name) -> VirtualMachineTarget body, or None when absent.
TargetLookup = Callable[[str, str], Mapping[str, Any] | None]


def _secret_name(spec: Mapping[str, Any]) -> str:
    return str(((spec.get("credentials") or {}).get("secretRef") or {}).get("name") or "")


def connection_config(
    body: Mapping[str, Any],
    *,
    secrets: SecretLookup,
    targets: TargetLookup,
    key_cache: KeyCache,
    timeouts: Timeouts,
    depth: int = 0,
) -> ConnectionConfig:
    """The ConnectionConfig of a target body, with its bastion chain resolved."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    spec = body.get("spec") or {}
    secret_name = _secret_name(spec)
    secret = secrets(namespace, secret_name) if secret_name else None
    if secret_name and secret is None:
        raise CredentialsMissing(
            f"Secret {namespace}/{secret_name} (spec.credentials.secretRef) does not exist or "
            "is not of type kubernetes.io/ssh-auth; create it with the key in ssh-privatekey"
        )
    bastion = None
    bastion_name = str(((spec.get("bastion") or {}).get("targetRef") or {}).get("name") or "")
    if bastion_name:
        if depth >= MAX_BASTION_DEPTH:
            raise TransportError(f"more than {MAX_BASTION_DEPTH} bastion hops from {name}")
        bastion_body = targets(namespace, bastion_name)
        if bastion_body is None:
            raise TransportError(
                f"bastion VirtualMachineTarget {namespace}/{bastion_name} does not exist"
            )
        bastion = connection_config(
            bastion_body,
            secrets=secrets,
            targets=targets,
            key_cache=key_cache,
            timeouts=timeouts,
            depth=depth + 1,
        )
    recorded = str((body.get("status") or {}).get("hostKeyFingerprint") or "") or None
    return build_connection_config(
        spec,
        namespace=namespace,
        name=name,
        secret=secret,
        key_cache=key_cache,
        recorded_fingerprint=recorded,
        bastion=bastion,
        timeouts=timeouts,
    )


async def probe(
    body: Mapping[str, Any],
    *,
    pool: ConnectionPool,
    secrets: SecretLookup,
    targets: TargetLookup,
    key_cache: KeyCache,
    timeouts: Timeouts,
) -> ProbeOutcome:
    """Connect (or reuse the connection) and read the system facts; never raises."""
    try:
        config = connection_config(
            body, secrets=secrets, targets=targets, key_cache=key_cache, timeouts=timeouts
        )
        runner = await pool.connect(config)
        result = await runner.run(system_probe_argv(), timeout=timeouts.command)
        if not result.ok:
            return ProbeOutcome(
                False, "FactsFailed", f"{config.where}: the facts probe exited {result.exit_status}"
            )
        facts = parse_system_facts(result.stdout)
        fingerprint = runner.learned_fingerprint or runner.host_key_fingerprint
        return ProbeOutcome(
            True,
            CONNECTED,
            f"connected to {config.where}",
            facts=facts.to_status(),
            fingerprint=fingerprint,
        )
    except TransportError as exc:
        return ProbeOutcome(False, exc.reason, exc.message)
    except MalformedOutput as exc:
        return ProbeOutcome(False, "FactsFailed", f"unexpected facts output: {exc}")
    except ValueError as exc:
        return ProbeOutcome(False, "InvalidSpec", str(exc))
