"""`vmgitops run`: the operator itself."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from vmgitops import settings as settings_mod


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the operator (honours KUBECONFIG; logs to stderr)")
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--probe-interval",
        type=float,
        default=None,
        help="seconds between reachability probes of a target (default 60)",
    )
    p.add_argument(
        "--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus /metrics port (default $VMGITOPS_METRICS_PORT or 8080; 0: any free "
        "port, logged; negative: off)",
    )
    p.add_argument(
        "--metrics-address",
        default=os.environ.get("VMGITOPS_METRICS_ADDRESS") or "0.0.0.0",  # noqa: S104
        help="address /metrics listens on (default $VMGITOPS_METRICS_ADDRESS or 0.0.0.0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import kopf

    s = settings_mod.Settings()
    if args.probe_interval is not None:
        s.probe_interval = args.probe_interval
    settings_mod.install(s)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    # asyncssh logs every channel at INFO; keep it at WARNING unless debugging it.
    logging.getLogger("asyncssh").setLevel(
        logging.DEBUG if os.environ.get("VMGITOPS_DEBUG_SSH") else logging.WARNING
    )
    # kopf reports every handler run at INFO: at thousands of targets that drowns the
    # log, so only our own transitions are logged at INFO.
    if not args.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import vmgitops.handlers  # noqa: F401  (registers the handlers)

    _serve_metrics(
        args.metrics_address, s.metrics_port if args.metrics_port is None else args.metrics_port
    )

    namespaces = list(args.namespace)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=args.liveness,
        )
    )
    return 0


def _serve_metrics(address: str, port: int) -> None:
    """Start /metrics; a busy port is logged, not fatal (reconciling matters more)."""
    log = logging.getLogger("vmgitops.metrics")
    if port < 0:
        log.info("metrics disabled")
        return
    from vmgitops import metrics

    metrics.current()
    try:
        host, bound = metrics.serve(address, port)
    except OSError as exc:
        log.error(
            "metrics: cannot listen on %s:%d (%s); running without /metrics", address, port, exc
        )
        return
    log.info("metrics at http://%s:%d/metrics", host, bound)
