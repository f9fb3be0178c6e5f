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
