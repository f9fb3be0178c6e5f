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
from vmgitops.transport.keys import KeyCache, secret_bytes
from vmgitops.transport.pool import ConnectionPool

#: (namespace, name) -> Secret body as the API returns it, or None when absent.
SecretLookup = Callable[[str, str], Mapping[str, Any] | None]
#: (namespace, name) -> VirtualMachineTarget body, or None when absent.
TargetLookup = Callable[[str, str], Mapping[str, Any] | None]


#: The key of a sudo password in its Secret when spec.become.passwordSecretRef names none.
DEFAULT_PASSWORD_KEY = "password"  # noqa: S105 - the name of a Secret key


class BastionUnreachable(TransportError):
    """spec.bastion names a target that does not exist (or a chain that is too long)."""

    reason = "BastionUnreachable"


def _secret_name(spec: Mapping[str, Any]) -> str:
    return str(((spec.get("credentials") or {}).get("secretRef") or {}).get("name") or "")


def password_secret_ref(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(Secret name, key) of spec.become.passwordSecretRef, if any."""
    become = spec.get("become") or {}
    ref = become.get("passwordSecretRef") or {}
    name = str(ref.get("name") or "")
    if not become or not name:
        return None
    return name, str(ref.get("key") or DEFAULT_PASSWORD_KEY)


def bastion_name(spec: Mapping[str, Any]) -> str:
    return str(((spec.get("bastion") or {}).get("targetRef") or {}).get("name") or "")


def referenced_secrets(spec: Mapping[str, Any]) -> list[str]:
    """The Secrets a target's connection depends on directly (not its bastion's)."""
    names = [_secret_name(spec)]
    ref = password_secret_ref(spec)
    if ref is not None:
        names.append(ref[0])
    return sorted({n for n in names if n})


def sudo_password(
    spec: Mapping[str, Any], *, namespace: str, secrets: SecretLookup
) -> bytes | None:
    """The sudo password named by spec.become.passwordSecretRef; None when none is set.

    Raises CredentialsMissing (naming the Secret and key, never the value) when the
    Secret or its key is missing.
    """
    ref = password_secret_ref(spec)
    if ref is None:
        return None
    name, key = ref
    secret = secrets(namespace, name)
    if secret is None:
        raise CredentialsMissing(
            f"Secret {namespace}/{name} (spec.become.passwordSecretRef) does not exist"
        )
    value = secret_bytes(secret, namespace=namespace, name=name, field=key)
    assert value is not None
    # A password written from a file usually ends in a newline that is not part of it.
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]
    if not value:
        raise CredentialsMissing(f"Secret {namespace}/{name} key {key!r} is empty")
    return value


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
    hop = bastion_name(spec)
    if hop:
        if depth >= MAX_BASTION_DEPTH:
            raise BastionUnreachable(f"more than {MAX_BASTION_DEPTH} bastion hops from {name}")
        bastion_body = targets(namespace, hop)
        if bastion_body is None:
            raise BastionUnreachable(
                f"bastion VirtualMachineTarget {namespace}/{hop} (spec.bastion.targetRef) "
                "does not exist"
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
    # A bastion only carries the tunnel: its own sudo settings play no part in it.
    password = sudo_password(spec, namespace=namespace, secrets=secrets) if depth == 0 else None
    return build_connection_config(
        spec,
        namespace=namespace,
        name=name,
        secret=secret,
        key_cache=key_cache,
        recorded_fingerprint=recorded,
        bastion=bastion,
        sudo_password=password,
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
