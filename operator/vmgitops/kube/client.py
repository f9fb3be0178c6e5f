"""All Kubernetes API calls that do not go through kopf's own watches.

One small async facade over the official client (run in worker threads), so that the
reconcile logic depends on four verbs, not on a client library.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from vmgitops.api.meta import GROUP, VERSION, KindInfo

#: Asks a list for the objects' metadata only.
PARTIAL_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class NotFound(Exception):
    """The object does not exist."""


class Conflict(Exception):
    """The object changed under us (resourceVersion mismatch) or already exists."""


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster configuration inside a pod; otherwise KUBECONFIG or the given file."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=cfg
    )
    return client.ApiClient(cfg)


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs a blocking client call in a worker thread; results are plain JSON dicts."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def _wrap(exc: ApiException, what: str) -> Exception:
    if exc.status == 404:
        return NotFound(f"{what} not found")
    if exc.status == 409:
        return Conflict(f"{what}: conflict ({exc.reason})")
    return exc


#: API server answers that mean "not now" (overloaded, restarting), not "no".
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


def unreachable(exc: BaseException) -> str | None:
    """What went wrong, in a few words, when `exc` says the API server cannot be reached
    or cannot answer now (a retry later may succeed); None for any other error.

    Only class names and status codes: no URL, header or body, which may hold a token.
    """
    from urllib3.exceptions import HTTPError, MaxRetryError

    if isinstance(exc, ApiException):
        if exc.status in _RETRYABLE or not exc.status:
            return f"the API server answered {exc.status or 'nothing'} {exc.reason or ''}".strip()
        return None
    if isinstance(exc, MaxRetryError):
        cause = exc.reason
        return f"cannot connect ({type(cause).__name__ if cause else 'MaxRetryError'})"
    if isinstance(exc, HTTPError | OSError):
        return f"cannot connect ({type(exc).__name__})"
    return None


class Kube:
    """The handful of API verbs vmgitops needs beyond kopf's watches."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or load_api_client()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    async def _namespaced(
        self, fn: Callable[..., Any], kind: KindInfo, namespace: str, *args: Any, **kw: Any
    ) -> Any:
        """The namespaced CustomObjectsApi verb `fn` on `kind` objects in `namespace`."""
        return await _call(fn, GROUP, VERSION, namespace, kind.plural, *args, **kw)

    async def _object(
        self,
        fn: Callable[..., Any],
        kind: KindInfo,
        namespace: str,
        name: str,
        *args: Any,
        what: str = "",
    ) -> dict[str, Any]:
        """`fn` on the object `name`; a 404 or 409 raised as NotFound or Conflict."""
        try:
            obj: dict[str, Any] = await self._namespaced(fn, kind, namespace, name, *args)
        except ApiException as exc:
            raise _wrap(exc, f"{kind.kind} {namespace}/{name}{what}") from None
        return obj

    async def get(self, kind: KindInfo, namespace: str, name: str) -> dict[str, Any]:
        return await self._object(self.custom.get_namespaced_custom_object, kind, namespace, name)

    async def list(
        self, kind: KindInfo, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        kw: dict[str, Any] = {}
        if label_selector:
            kw["label_selector"] = label_selector
        if namespace:
            res = await self._namespaced(
                self.custom.list_namespaced_custom_object, kind, namespace, **kw
            )
        else:
            res = await _call(
                self.custom.list_cluster_custom_object, GROUP, VERSION, kind.plural, **kw
            )
        items: list[dict[str, Any]] = res.get("items", [])
        return items

    async def names(self, kind: KindInfo, namespace: str, page: int = 500) -> set[str]:
        """The names of every `kind` object in `namespace`, as the API server has them now.

        Metadata only (PartialObjectMetadataList) and in pages: at 5,000 targets the full
        objects are 15 MiB, their names a few hundred KiB.
        """
        out: set[str] = set()
        token = ""
        while True:
            kw: dict[str, Any] = {"limit": page, "_headers": {"Accept": PARTIAL_METADATA}}
            if token:
                kw["_continue"] = token
            res = await self._namespaced(
                self.custom.list_namespaced_custom_object, kind, namespace, **kw
            )
            for item in res.get("items") or []:
                name = (item.get("metadata") or {}).get("name")
                if name:
                    out.add(str(name))
            token = str((res.get("metadata") or {}).get("continue") or "")
            if not token:
                return out

    async def patch(
        self, kind: KindInfo, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the object (metadata and spec)."""
        return await self._object(
            self.custom.patch_namespaced_custom_object, kind, namespace, name, dict(patch)
        )

    async def patch_status(
        self, kind: KindInfo, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the status subresource."""
        return await self._object(
            self.custom.patch_namespaced_custom_object_status,
            kind,
            namespace,
            name,
            {"status": dict(status)},
            what=" status",
        )

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            secret = await _call(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = secret.metadata
        return {
            "type": secret.type,
            "data": dict(secret.data or {}),
            "metadata": {
                "uid": meta.uid if meta else None,
                "namespace": namespace,
                "name": name,
                "resourceVersion": meta.resource_version if meta else None,
            },
        }
