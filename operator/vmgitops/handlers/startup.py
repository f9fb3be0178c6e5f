"""Operator-wide kopf configuration: where kopf keeps its own bookkeeping, what it posts."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from vmgitops import settings as settings_mod
from vmgitops.api import meta


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our schemas are structural, so kopf's default `status.kopf` would be pruned; keep
    # its progress and diff-base in annotations under our own prefix instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=meta.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=meta.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{meta.GROUP}/finalizer"
    # Only explicit Events (transitions) are posted; log lines never become Events.
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    # Peering is for running several replicas; the chart runs one with Recreate.
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60)
    ours = settings_mod.current()
    logging.getLogger("vmgitops").info(
        "vmgitops operator starting: probe interval %.0fs", ours.probe_interval
    )
