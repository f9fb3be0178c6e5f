"""The objects a promotion reads and writes: applications of both kinds, Promotions.

VMApplications and Promotions go through `vmgitops.kube.client.Kube`; Argo CD
Applications (another API group, which Kube does not speak) and creating or deleting
Promotions use the same API client's CustomObjectsApi, in worker threads like Kube.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from vmgitops.api import meta
from vmgitops.api.promotion import ApplicationKind, ApplicationRef
from vmgitops.kube.client import Conflict, Kube, NotFound

ARGO_GROUP, ARGO_VERSION = meta.ARGO_API_VERSION.split("/")
ARGO_PLURAL = "applications"


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking client call in a worker thread; the result is a plain JSON dict."""
    return await asyncio.to_thread(fn, *args)


def status_patch(raw: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch from the status as stored (`raw`) to `new` (no None values): what
    changed, and None for what went away."""
    patch = {k: v for k, v in new.items() if raw.get(k) != v}
    patch.update({k: None for k in raw if k not in new})
    return patch


class Objects:
    """Async access to the applications and Promotions of one API server."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.custom = client.CustomObjectsApi(kube.api_client)

    async def get_app(self, namespace: str, ref: ApplicationRef) -> dict[str, Any] | None:
        """The application's object, or None when it (or its CRD) does not exist."""
        if ref.kind is ApplicationKind.ARGO_APPLICATION:
            try:
                obj: dict[str, Any] = await _call(
                    self.custom.get_namespaced_custom_object,
                    ARGO_GROUP,
                    ARGO_VERSION,
                    namespace,
                    ARGO_PLURAL,
                    ref.name,
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return obj
        try:
            return await self.kube.get(meta.APPLICATION, namespace, ref.name)
        except NotFound:
            return None

    async def patch_app(
        self, namespace: str, ref: ApplicationRef, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the application; NotFound when it is gone."""
        if ref.kind is ApplicationKind.ARGO_APPLICATION:
            try:
                obj: dict[str, Any] = await _call(
                    self.custom.patch_namespaced_custom_object,
                    ARGO_GROUP,
                    ARGO_VERSION,
                    namespace,
                    ARGO_PLURAL,
                    ref.name,
                    dict(patch),
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise NotFound(f"Application {namespace}/{ref.name} not found") from None
                raise
            return obj
        return await self.kube.patch(meta.APPLICATION, namespace, ref.name, patch)

    async def promotions(self, namespace: str) -> list[dict[str, Any]]:
        return await self.kube.list(meta.PROMOTION, namespace)

    async def create_promotion(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Creates a Promotion; Conflict when one of that name exists."""
        try:
            obj: dict[str, Any] = await _call(
                self.custom.create_namespaced_custom_object,
                meta.GROUP,
                meta.VERSION,
                namespace,
                meta.PROMOTION.plural,
                dict(body),
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(
                    f"Promotion {namespace}/{body['metadata'].get('name')} exists"
                ) from None
            raise
        return obj

    async def delete_promotion(self, namespace: str, name: str) -> None:
        try:
            await _call(
                self.custom.delete_namespaced_custom_object,
                meta.GROUP,
                meta.VERSION,
                namespace,
                meta.PROMOTION.plural,
                name,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
