"""kopf glue for VMApplication: one daemon per application runs its reconciler.

The daemon wakes every refreshInterval, or at once when the application changes (spec,
or the refresh/sync annotations) or when a target joins or leaves its namespace. Targets
come from in-memory indices (no API call to select or look them up); each target's
status.applications is written through one process-wide `TargetStatusBook`, which
patches only what changed, without a GET first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from vmgitops import metrics as metrics_mod
from vmgitops import settings as settings_mod
from vmgitops.api import meta
from vmgitops.handlers import targets as target_handlers
from vmgitops.kube.client import Kube, NotFound, unreachable
from vmgitops.plan.resolution import REFUSED, MalformedResolve, ResolveResult, parse_resolve
from vmgitops.reconcile.app_controller import AppReconciler, Deps
from vmgitops.reconcile.app_driver import SSHDriver
from vmgitops.reconcile.app_resolve import result_value
from vmgitops.reconcile.app_targets import TargetStatusBook, catch_up
from vmgitops.source import GitSource

log = logging.getLogger("vmgitops.applications")
APPS = (meta.GROUP, meta.VERSION, meta.APPLICATION.plural)
TARGETS = (meta.GROUP, meta.VERSION, meta.TARGET.plural)
#: Seconds before the first retry of a tick that failed, doubled after each failure in a
#: row up to API_BACKOFF_MAX (an API server that is down is not asked every 10 s).
RETRY_DELAY = 10.0
API_BACKOFF_MAX = 300.0
#: Seconds between two garbage collections of Git checkouts.
GC_INTERVAL = 600.0
#: Seconds a new application's first tick waits for the target index to hold every
#: target the API server lists in its namespace (see reconcile.app_targets.catch_up).
INDEX_CATCH_UP = 120.0

_wake: dict[str, asyncio.Event] = {}
_reconcilers: dict[str, AppReconciler] = {}
_source: GitSource | None = None
_kube: Kube | None = None
_book: TargetStatusBook | None = None
_by_key: kopf.Index[Any, Any] | None = None
_gc = {"last": 0.0}
_gc_lock: asyncio.Lock | None = None
#: namespace -> (when it started, the running or finished catch-up of its target index).
_catch_ups: dict[str, tuple[float, asyncio.Future[set[str]]]] = {}


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


def _target_body(namespace: str, name: str) -> Mapping[str, Any] | None:
    if _by_key is None:
        return None
    for v in _by_key.get((namespace, name), []):
        return v  # type: ignore[no-any-return]
    return None


async def _patch_applications(
    namespace: str, name: str, applications: list[dict[str, Any]]
) -> Mapping[str, Any] | None:
    try:
        return await _api().patch_status(
            meta.TARGET, namespace, name, {"applications": applications}
        )
    except NotFound:
        return None


def book() -> TargetStatusBook:
    global _book
    if _book is None:
        _book = TargetStatusBook(_patch_applications, _target_body)
    return _book


def _light(namespace: str | None, name: str, body: kopf.Body) -> dict[str, Any]:
    """What selecting a target, syncing it and writing its entry need from its body."""
    m = body.get("metadata") or {}
    annotations = m.get("annotations") or {}
    return {
        "apiVersion": meta.API_VERSION,
        "kind": meta.TARGET.kind,
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": dict(m.get("labels") or {}),
            "uid": m.get("uid"),
            "generation": m.get("generation"),
            "resourceVersion": m.get("resourceVersion"),
            # Only the request an application acts on (see _answer_resolve).
            "annotations": {
                k: v for k, v in annotations.items() if k == meta.ANNOTATION_RESOLVE_COMMAND
            },
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


# Index handlers are coroutines: kopf runs a plain function in a worker thread, one
# thread hop per handler per watch event, and at thousands of targets that queue made
# the index lag a minute behind the watch.
@kopf.index(*TARGETS)
async def targets_by_namespace(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> Any:
    # Label selection needs labels; the index keeps them with what a sync needs.
    return {namespace: _light(namespace, name, body)}


@kopf.index(*TARGETS)
async def app_targets_by_key(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    """(namespace, name) -> labels, resourceVersion and status.applications: one lookup
    per target instead of a walk over its namespace."""
    m = body.get("metadata") or {}
    return {
        (namespace, name): {
            "metadata": {
                "name": name,
                "labels": dict(m.get("labels") or {}),
                "resourceVersion": m.get("resourceVersion"),
            },
            "status": {"applications": list((body.get("status") or {}).get("applications") or [])},
        }
    }


def _wake_namespace(namespace: str | None) -> None:
    for key, ev in _wake.items():
        if key.startswith(f"{namespace}/"):
            ev.set()


@kopf.on.event(*APPS)
async def application_event(*, body: kopf.Body, type: str, **_: Any) -> None:
    key = f"{body.meta.namespace}/{body.meta.name}"
    ev = _wake.get(key)
    if ev is None:
        return
    reconciler = _reconcilers.get(key)
    # The reconciler knows what its last tick consumed: its own writes (made while the
    # request annotation is still set) do not start another full pass of every target.
    if reconciler is None or reconciler.woken_by(body):
        ev.set()


_target_labels: dict[str, dict[str, str]] = {}
#: target key -> the resolve-command value last seen on it (handled or handed over).
_resolve_seen: dict[str, str] = {}


@kopf.on.event(*TARGETS)
async def target_membership_event(*, body: kopf.Body, type: str, **_: Any) -> None:
    # A target joining, leaving or relabelled may change an application's selection.
    key = f"{body.meta.namespace}/{body.meta.name}"
    labels = dict(body.meta.labels)
    if type == "DELETED":
        _target_labels.pop(key, None)
        _resolve_seen.pop(key, None)
        book().forget(str(body.meta.namespace), str(body.meta.name))
        _wake_namespace(body.meta.namespace)
        return
    if _target_labels.get(key) != labels:
        _target_labels[key] = labels
        _wake_namespace(body.meta.namespace)
    await _resolve_request(key, body)


async def _resolve_request(key: str, body: kopf.Body) -> None:
    """A vmgitops.io/resolve-command request: wakes the application it names, whose tick
    acts on it; one that names none (malformed) or a missing one is refused here."""
    value = body.meta.annotations.get(meta.ANNOTATION_RESOLVE_COMMAND)
    if value is None:
        _resolve_seen.pop(key, None)
        return
    if _resolve_seen.get(key) == value:
        return  # this watch event is another change of the target, or our own write
    _resolve_seen[key] = value
    namespace, name = str(body.meta.namespace), str(body.meta.name)
    try:
        request = parse_resolve(value)
    except MalformedResolve as exc:
        await _answer_resolve(body, value, ResolveResult(REFUSED, f"target {name}: {exc}"))
        return
    ev = _wake.get(f"{namespace}/{request.app}")
    if ev is not None:
        ev.set()
        return
    try:
        await _api().get(meta.APPLICATION, namespace, request.app)
    except NotFound:
        message = f"target {name}: {value}: no VMApplication {request.app} in {namespace}"
        await _answer_resolve(body, value, ResolveResult(REFUSED, message))
    # Otherwise its daemon is starting: its first tick acts on the request.


async def _answer_resolve(target: Mapping[str, Any], value: str, result: ResolveResult) -> None:
    """Removes the request, leaves the result beside it and posts an Event on the target
    (the value names an application, a command and an answer: nothing secret)."""
    m = target.get("metadata") or {}
    namespace, name = str(m.get("namespace")), str(m.get("name"))
    patch = {
        "metadata": {
            "annotations": {
                meta.ANNOTATION_RESOLVE_COMMAND: None,
                meta.ANNOTATION_RESOLVE_RESULT: result_value(value, result),
            }
        }
    }
    try:
        await _api().patch(meta.TARGET, namespace, name, patch)
    except NotFound:
        return
    type_ = "Warning" if result.reason == REFUSED else "Normal"
    log.info("%s/%s: %s %s", namespace, name, result.reason, result.message)
    ref: Any = {
        "apiVersion": meta.API_VERSION,
        "kind": meta.TARGET.kind,
        "metadata": {"namespace": namespace, "name": name, "uid": m.get("uid")},
    }
    kopf.event(kopf.Body(ref), type=type_, reason=result.reason, message=result.message[:1024])


async def _collect_checkouts() -> None:
    """Drops Git checkouts no application uses, now and then; what is deployed stays."""
    global _gc_lock
    if time.monotonic() - _gc["last"] < GC_INTERVAL:
        return
    if _gc_lock is None:
        _gc_lock = asyncio.Lock()
    async with _gc_lock:
        if time.monotonic() - _gc["last"] < GC_INTERVAL:
            return
        _gc["last"] = time.monotonic()
        protect: set[str] = set()
        for r in list(_reconcilers.values()):
            protect |= r.in_use()
        try:
            removed = await _git().gc_checkouts(protect=sorted(protect))
        except Exception:
            log.exception("Git checkout garbage collection failed")
            return
        if removed:
            log.info("removed %d unused Git checkout(s)", len(removed))


async def _forget_application(namespace: str, name: str, by_ns: kopf.Index[Any, Any]) -> None:
    """The application is gone: its entry leaves every target's status."""
    b = book()
    listed = [
        str(t["metadata"]["name"])
        for t in by_ns.get(namespace, [])
        if b.has_entry(namespace, str(t["metadata"]["name"]), name)
    ]
    with contextlib.suppress(Exception):
        await b.write(namespace, name, dict.fromkeys(listed))
    metrics_mod.current().app_forgotten(namespace, name)


async def _index_caught_up(
    key: str, namespace: str, by_ns: kopf.Index[Any, Any], since: float, stopped: Any
) -> None:
    """Before a new application's first selection: the target index holds every target
    the API server has in the namespace, or INDEX_CATCH_UP has passed.

    Applications of one namespace share one check (one metadata-only list): the one
    still running (hundreds of daemons start one after the other when the operator
    starts), or a finished one that started after the application's daemon did.
    """
    entry = _catch_ups.get(namespace)
    if entry is None or (entry[1].done() and entry[0] < since):
        check: asyncio.Future[set[str]] = asyncio.ensure_future(
            catch_up(
                lambda: _api().names(meta.TARGET, namespace),
                lambda: {str(t["metadata"]["name"]) for t in by_ns.get(namespace, [])},
                patience=INDEX_CATCH_UP,
            )
        )
        entry = _catch_ups[namespace] = (time.monotonic(), check)
    fut = entry[1]
    stop = asyncio.ensure_future(stopped.wait())
    try:
        # asyncio.wait cancels neither: a daemon that stops leaves the shared check be.
        await asyncio.wait([fut, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)
    if not fut.done():
        return  # stopping
    exc = fut.exception()
    if exc is not None:
        log.warning(
            "%s: could not list the namespace's targets (%s); selecting from the "
            "operator's index as it is",
            key,
            type(exc).__name__,
        )
        log.debug("%s: listing targets failed", key, exc_info=exc)
        return
    missing = fut.result()
    if missing:
        log.warning(
            "%s: %d target(s) the API server lists are not in the operator's index after "
            "%.0fs (%s); they join when indexed",
            key,
            len(missing),
            INDEX_CATCH_UP,
            ", ".join(sorted(missing)[:5]),
        )


async def _tick(
    reconciler: AppReconciler, body: Mapping[str, Any], key: str, failures: int
) -> tuple[float, int]:
    """One tick; returns the delay before the next one and the failures in a row.

    An API server that cannot be reached is an outage, not a bug: one line says what
    failed and when it is tried again (the traceback only at DEBUG), and the retries
    back off. Any other error is logged with its traceback.
    """
    try:
        delay = await reconciler.tick(body)
    except NotFound:
        raise
    except Exception as exc:
        failures += 1
        retry = min(API_BACKOFF_MAX, RETRY_DELAY * 2 ** (failures - 1))
        what = unreachable(exc)
        if what is None:
            log.exception("%s: reconcile failed; retrying in %.0fs", key, retry)
        else:
            log.warning(
                "%s: the Kubernetes API server is unreachable: %s; retrying in %.0fs "
                "(failure %d in a row)",
                key,
                what,
                retry,
                failures,
            )
            log.debug("%s: the tick failed on", key, exc_info=exc)
        return retry, failures
    if failures:
        log.info("%s: reconciled again after %d failed tick(s)", key, failures)
    return delay, 0


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Until `delay` passes, the application is woken, or the daemon is asked to stop."""
    waiters = [
        asyncio.ensure_future(wake.wait()),
        asyncio.ensure_future(stopped.wait()),
    ]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# On deletion or exit the daemon is first asked to stop (a rollout stops between batches
# and stays Running, to be resumed), and cancelled only after cancellation_backoff.
@kopf.daemon(*APPS, cancellation_backoff=30, cancellation_timeout=60)
async def application_daemon(
    *, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any
) -> None:
    global _by_key
    started = time.monotonic()
    namespace, name = str(body.meta.namespace), str(body.meta.name)
    key = f"{namespace}/{name}"
    wake = _wake.setdefault(key, asyncio.Event())
    by_ns: kopf.Index[Any, Any] = kwargs["targets_by_namespace"]
    _by_key = kwargs["app_targets_by_key"]
    secrets: kopf.Index[Any, Any] = kwargs["credential_secrets"]
    target_index: kopf.Index[Any, Any] = kwargs["target_bodies"]
    st = target_handlers.state()
    targets_book = book()

    def targets_in(ns: str) -> Sequence[Mapping[str, Any]]:
        return list(by_ns.get(ns, []))

    def secret(ns: str, n: str) -> Mapping[str, Any] | None:
        for v in secrets.get((ns, n), []):
            return v  # type: ignore[no-any-return]
        return None

    def target(ns: str, n: str) -> Mapping[str, Any] | None:
        # A bastion hop's body, from the target controller's keyed index.
        for v in target_index.get((ns, n), []):
            return v  # type: ignore[no-any-return]
        return None

    def target_labels(n: str) -> Mapping[str, str] | None:
        found = _target_body(namespace, n)
        return None if found is None else dict(found["metadata"].get("labels") or {})

    def post(type_: str, reason: str, message: str) -> None:
        log.info("%s: %s %s", key, reason, message)
        kopf.event(body, type=type_, reason=reason, message=message[:1024])

    async def write_status(patch: dict[str, Any]) -> Mapping[str, Any] | None:
        return await _api().patch_status(meta.APPLICATION, namespace, name, patch)

    async def write_targets(changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        await targets_book.write(namespace, name, changes)

    async def remove_annotations(keys: Sequence[str]) -> None:
        await _api().patch(
            meta.APPLICATION, namespace, name, {"metadata": {"annotations": dict.fromkeys(keys)}}
        )

    driver = SSHDriver(
        pool=st.pool, keys=st.keys, timeouts=st.timeouts, secrets=secret, targets=target
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
            write_targets=write_targets,
            lists_app=lambda t: targets_book.has_entry(namespace, t, name),
            target_labels=target_labels,
            remove_annotations=remove_annotations,
            event=post,
            metrics=metrics_mod.current(),
            stopping=lambda: bool(stopped),
            observe_concurrency=settings_mod.current().observe_concurrency,
            sync_concurrency=settings_mod.current().sync_concurrency,
            answer_resolve=_answer_resolve,
        ),
    )
    reconciler.live_body = lambda: body
    _reconcilers[key] = reconciler
    deleted = False
    try:
        await _index_caught_up(key, namespace, by_ns, started, stopped)
        failures = 0
        while not stopped:
            wake.clear()
            try:
                delay, failures = await _tick(reconciler, body, key, failures)
            except NotFound:
                deleted = True  # deleted while we worked
                return
            await _collect_checkouts()
            await _sleep(wake, stopped, delay)
    finally:
        _wake.pop(key, None)
        _reconcilers.pop(key, None)
        reason = stopped.reason
        if deleted or (reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED):
            # Shielded: kopf may cancel this task meanwhile; the cleanup still completes.
            await asyncio.shield(_forget_application(namespace, name, by_ns))
