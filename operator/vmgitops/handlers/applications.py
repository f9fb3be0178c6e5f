"""kopf glue for VMApplication: one daemon per application runs its reconciler.

The daemon wakes every refreshInterval, or at once when the application changes (spec,
or the refresh/sync annotations) or when a target joins or leaves its namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from vmgitops.api import meta
from vmgitops.handlers import targets as target_handlers
from vmgitops.kube.client import Kube, NotFound
from vmgitops.reconcile.app_controller import AppReconciler, Deps
from vmgitops.reconcile.app_driver import SSHDriver
from vmgitops.source import GitSource

log = logging.getLogger("vmgitops.applications")
APPS = (meta.GROUP, meta.VERSION, meta.APPLICATION.plural)
TARGETS = (meta.GROUP, meta.VERSION, meta.TARGET.plural)

_wake: dict[str, asyncio.Event] = {}
_source: GitSource | None = None
_kube: Kube | None = None
_target_locks: dict[str, asyncio.Lock] = {}


def _git() -> GitSource:
    global _source
    if _source is None:
        _source = GitSource()
    return _source


def _api() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


@kopf.index(*TARGETS)
def targets_by_namespace(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    # Label selection needs labels; the index keeps them with what a sync needs.
    m = body.get("metadata") or {}
    return {
        namespace: {
            "apiVersion": meta.API_VERSION,
            "kind": meta.TARGET.kind,
            "metadata": {
                "namespace": namespace,
                "name": name,
                "labels": dict(m.get("labels") or {}),
                "uid": m.get("uid"),
                "generation": m.get("generation"),
            },
            "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {}),
        }
    }


def _wake_namespace(namespace: str | None) -> None:
    for key, ev in _wake.items():
        if key.startswith(f"{namespace}/"):
            ev.set()


@kopf.on.event(*APPS)
async def application_event(*, body: kopf.Body, type: str, **_: Any) -> None:
    ev = _wake.get(f"{body.meta.namespace}/{body.meta.name}")
    if ev is None:
        return
    annotations = body.meta.annotations
    changed = body.status.get("observedGeneration") != body.meta.get("generation")
    if changed or meta.ANNOTATION_SYNC in annotations or meta.ANNOTATION_REFRESH in annotations:
        ev.set()


_target_labels: dict[str, dict[str, str]] = {}


@kopf.on.event(*TARGETS)
async def target_membership_event(*, body: kopf.Body, type: str, **_: Any) -> None:
    # A target joining, leaving or relabelled may change an application's selection.
    key = f"{body.meta.namespace}/{body.meta.name}"
    labels = dict(body.meta.labels)
    if type == "DELETED":
        _target_labels.pop(key, None)
        _wake_namespace(body.meta.namespace)
    elif _target_labels.get(key) != labels:
        _target_labels[key] = labels
        _wake_namespace(body.meta.namespace)


async def _write_target_status(
    namespace: str, target: str, app: str, entry: dict[str, Any] | None, index: kopf.Index[Any, Any]
) -> None:
    """Replaces this application's entry in the target's status.applications."""
    key = f"{namespace}/{target}"
    lock = _target_locks.setdefault(key, asyncio.Lock())
    async with lock:
        try:
            current = await _api().get(meta.TARGET, namespace, target)
        except NotFound:
            return
        apps = [
            a
            for a in (current.get("status") or {}).get("applications") or []
            if a.get("name") != app
        ]
        if entry is not None:
            apps.append(entry)
        apps.sort(key=lambda a: str(a.get("name")))
        if apps == ((current.get("status") or {}).get("applications") or []):
            return
        try:
            await _api().patch_status(meta.TARGET, namespace, target, {"applications": apps})
        except NotFound:
            return


@kopf.daemon(*APPS, cancellation_timeout=60)
async def application_daemon(
    *, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any
) -> None:
    namespace, name = str(body.meta.namespace), str(body.meta.name)
    key = f"{namespace}/{name}"
    wake = _wake.setdefault(key, asyncio.Event())
    by_ns: kopf.Index[Any, Any] = kwargs["targets_by_namespace"]
    secrets: kopf.Index[Any, Any] = kwargs["credential_secrets"]
    st = target_handlers.state()

    def targets_in(ns: str) -> Sequence[Mapping[str, Any]]:
        return list(by_ns.get(ns, []))

    def secret(ns: str, n: str) -> Mapping[str, Any] | None:
        for v in secrets.get((ns, n), []):
            return v  # type: ignore[no-any-return]
        return None

    def post(type_: str, reason: str, message: str) -> None:
        log.info("%s: %s %s", key, reason, message)
        kopf.event(body, type=type_, reason=reason, message=message)

    async def write_status(patch: dict[str, Any]) -> None:
        await _api().patch_status(meta.APPLICATION, namespace, name, patch)

    async def write_target(target: str, app: str, entry: dict[str, Any] | None) -> None:
        await _write_target_status(namespace, target, app, entry, by_ns)

    async def remove_annotations(keys: Sequence[str]) -> None:
        await _api().patch(
            meta.APPLICATION, namespace, name, {"metadata": {"annotations": dict.fromkeys(keys)}}
        )

    driver = SSHDriver(
        pool=st.pool,
        keys=st.keys,
        timeouts=st.timeouts,
        secrets=secret,
        targets=lambda ns, n: next((t for t in targets_in(ns) if t["metadata"]["name"] == n), None),
    )
    reconciler = AppReconciler(
        namespace,
        name,
        Deps(
            source=_git(),
            driver=driver,
            targets_in=targets_in,
            secrets=secret,
            write_status=write_status,
            write_target_status=write_target,
            remove_annotations=remove_annotations,
            event=post,
        ),
    )
    reconciler.live_body = lambda: body
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await reconciler.tick(body)
            except NotFound:
                return  # deleted while we worked
            except Exception:
                log.exception("%s: reconcile failed; retrying in 10s", key)
                delay = 10.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
    finally:
        _wake.pop(key, None)
