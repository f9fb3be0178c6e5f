"""Server-side apply of a list of objects, the way `kubectl apply --server-side` does it,
for the command line (import, examples). Any kind the API server knows, found through
discovery; each object is reported as created, configured or unchanged."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

CREATED, CONFIGURED, UNCHANGED = "created", "configured", "unchanged"


class ApplyError(Exception):
    """An object could not be applied; the message names it and says why. `counts` holds
    what was applied before it."""

    def __init__(self, message: str, counts: ApplyCounts | None = None) -> None:
        super().__init__(message)
        self.counts = counts if counts is not None else ApplyCounts()


@dataclass
class ApplyCounts:
    """What happened to each object, in order, and the totals."""

    results: list[tuple[str, str]] = field(default_factory=list)
    """(`kind.group/name`, created | configured | unchanged)."""

    def count(self, outcome: str) -> int:
        return sum(1 for _, o in self.results if o == outcome)

    @property
    def created(self) -> int:
        return self.count(CREATED)

    @property
    def updated(self) -> int:
        return self.count(CONFIGURED)

    @property
    def unchanged(self) -> int:
        return self.count(UNCHANGED)


def _api_client(kubeconfig: str | None) -> tuple[Any, str]:
    """A client and the namespace of the current context ("default" when unset)."""
    # The client's functions are untyped; go through Any rather than silence each call.
    from kubernetes import config as _config
    from kubernetes.config.config_exception import ConfigException

    config: Any = _config

    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        client = config.new_client_from_config(config_file=path)
        _, active = config.list_kube_config_contexts(config_file=path)
        namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except (ConfigException, OSError, TypeError) as exc:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            from kubernetes import client as k8s

            config.load_incluster_config()
            ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
            with open(ns_file, encoding="utf-8") as f:
                return k8s.ApiClient(), f.read().strip() or "default"
        raise ApplyError(
            f"cannot load the kubeconfig{f' {path}' if path else ''}: {exc}; pass "
            "--kubeconfig FILE or set KUBECONFIG"
        ) from None
    return client, namespace


def _describe(obj: Mapping[str, Any]) -> str:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", "")).lower()
    return (
        f"{kind}.{group}/{obj['metadata']['name']}"
        if group
        else f"{kind}/{obj['metadata']['name']}"
    )


def _reason(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        import json

        try:
            return str(json.loads(body).get("message", body))
        except (ValueError, AttributeError):
            return str(body)
    status = getattr(exc, "status", None)
    return f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else str(exc)


def server_side_apply(
    objects: Iterable[Mapping[str, Any]],
    namespace: str | None = None,
    kubeconfig: str | None = None,
    field_manager: str = "vmgitops",
    *,
    force_conflicts: bool = False,
    workers: int = 8,
) -> ApplyCounts:
    """Apply every object with server-side apply, `workers` at a time; results keep the
    order of `objects`. Objects that fail do not stop the others: ApplyError then names
    each of them and carries the counts of those that were applied. A namespaced object
    without metadata.namespace goes to `namespace`, else to the current context's."""
    import urllib3
    from kubernetes import dynamic as _dynamic
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

    api, context_namespace = _api_client(kubeconfig)
    dynamic: Any = _dynamic

    def unreachable(exc: Exception) -> ApplyError:
        return ApplyError(
            f"cannot reach the API server at {api.configuration.host}: {_reason(exc)}"
        )

    def apply_one(dyn: Any, resource: Any, obj: Mapping[str, Any]) -> str:
        body = {**obj, "metadata": dict(obj["metadata"])}
        ns = None
        if resource.namespaced:
            ns = body["metadata"].get("namespace") or namespace or context_namespace
            body["metadata"]["namespace"] = ns
        name = body["metadata"]["name"]
        try:
            try:
                before = resource.get(name=name, namespace=ns).metadata.resourceVersion
            except NotFoundError:
                before = None
            after = dyn.server_side_apply(
                resource,
                body=body,
                name=name,
                namespace=ns,
                field_manager=field_manager,
                force_conflicts=force_conflicts,
            ).metadata.resourceVersion
        except DynamicApiError as exc:
            hint = (
                " (another field manager owns these fields: re-run with --force-conflicts "
                "to take them over)"
                if getattr(exc, "status", None) == 409
                else ""
            )
            raise ApplyError(f"{_describe(obj)}: {_reason(exc)}{hint}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, TLS, timeouts
            raise unreachable(exc) from None
        return CREATED if before is None else UNCHANGED if before == after else CONFIGURED

    items = list(objects)
    counts = ApplyCounts()
    try:
        try:
            dyn = dynamic.DynamicClient(api)
            resources: list[Any] = []
            for obj in items:
                try:
                    resources.append(
                        dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
                    )
                except ResourceNotFoundError:
                    raise ApplyError(
                        f"{_describe(obj)}: the API server does not serve {obj['kind']} in "
                        f"{obj['apiVersion']} (are the CRDs installed? kubectl apply -f crds/)"
                    ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(exc) from None
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [
                pool.submit(apply_one, dyn, resource, obj)
                for resource, obj in zip(resources, items, strict=True)
            ]
            for obj, future in zip(items, futures, strict=True):
                try:
                    counts.results.append((_describe(obj), future.result()))
                except ApplyError as exc:
                    failures.append(str(exc))
    finally:
        api.close()
    if failures:
        distinct = list(dict.fromkeys(failures))
        shown = "; ".join(distinct[:5]) + ("; ..." if len(distinct) > 5 else "")
        raise ApplyError(f"{len(failures)} of {len(items)} object(s) failed: {shown}", counts)
    return counts
