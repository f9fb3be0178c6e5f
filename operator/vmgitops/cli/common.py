"""What the cluster-facing commands (status, diff, sync, ...) share.

The same options everywhere (`-n/--namespace`, `--kubeconfig`, `--context`, `-o`), one
way to reach the API server, one set of exit codes, and errors that say what to do
next. A command raises `CliError`; `guarded` turns it into one line on stderr and the
exit code, so no command prints a traceback for a situation a user can fix.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import yaml
from rich.console import Console

from vmgitops.api import meta
from vmgitops.api.base import parse_time
from vmgitops.api.meta import KindInfo
from vmgitops.api.units import parse_duration

T = TypeVar("T")

EXIT_OK = 0
"""Done; the answer is "yes" (in sync, sync Succeeded)."""
EXIT_FAILED = 1
"""Done; the answer is "no": a sync Failed, or a diff found differences."""
EXIT_USAGE = 2
"""Nothing done: bad arguments, no such object, or a request the object refuses (paused)."""
EXIT_UNAVAILABLE = 3
"""Nothing (or not everything) done: the API server, Git or a VM could not be reached, or
the API server refused the request (RBAC)."""
EXIT_TIMEOUT = 4
"""`--timeout` passed before the answer; the operation may still finish."""

EXIT_CODES_HELP = """\
exit codes:
  0  done: in sync, or the sync Succeeded
  1  done, and the answer is no: the sync Failed, or the diff found differences
  2  usage: bad arguments, no such object, or the object refuses (paused, ObserveOnly)
  3  unavailable: the API server, Git or a VM could not be reached, or RBAC refused
  4  timeout: --timeout passed first (the operation may still finish)
"""

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class CliError(Exception):
    """Ends a command: `message` says what happened and what to do; `code` is the exit."""

    def __init__(self, message: str, code: int = EXIT_UNAVAILABLE) -> None:
        super().__init__(message)
        self.code = code


def add_command(
    sub: Any, name: str, *, help: str, description: str | None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A command's sub-parser, its description and epilog printed as written."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_app_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="APP", help="the VMApplication")


def add_wait_options(
    parser: argparse.ArgumentParser, *, wait: str | None, timeout: str, timeout_help: str
) -> None:
    """--wait (when `wait` is its help), --timeout (default `timeout`) and the hidden
    --interval between two looks."""
    if wait is not None:
        parser.add_argument("--wait", action="store_true", help=wait)
    parser.add_argument("--timeout", default=timeout, metavar="DURATION", help=timeout_help)
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help=argparse.SUPPRESS
    )


def add_common_options(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    formats: tuple[str, ...] = ("text", "yaml", "json"),
    *,
    all_namespaces: bool = False,
) -> None:
    """The cluster options, -o, and `run` as the command's function."""
    add_cluster_options(parser, all_namespaces=all_namespaces)
    add_output_option(parser, formats)
    parser.set_defaults(func=run)


def add_cluster_options(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """-n/--namespace, --kubeconfig and --context, the way kubectl spells them."""
    g = parser.add_argument_group("cluster")
    g.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace (default: the kubeconfig context's, else 'default')",
    )
    if all_namespaces:
        g.add_argument(
            "-A", "--all-namespaces", action="store_true", help="every namespace (lists only)"
        )
    g.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)",
    )
    g.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")


def add_output_option(parser: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=formats,
        default=formats[0],
        help=f"output format (default {formats[0]})",
    )


@dataclass
class Cluster:
    """A connection to the API server and the namespace the command works in."""

    api_client: Any
    namespace: str
    server: str

    def kube(self) -> Any:
        """The async API facade (vmgitops.kube.client.Kube) over this connection."""
        from vmgitops.kube.client import Kube

        return Kube(self.api_client)


def connect(args: argparse.Namespace) -> Cluster:
    """The API client for --kubeconfig/--context (or in-cluster) and the namespace to use."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    config: Any = k8s_config
    path = getattr(args, "kubeconfig", None) or os.environ.get("KUBECONFIG") or None
    context = getattr(args, "context", None)
    namespace = getattr(args, "namespace", None)
    in_cluster = (
        path is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.path.exists(os.path.expanduser("~/.kube/config"))
    )
    try:
        if in_cluster:
            config.load_incluster_config()
            api_client = k8s.ApiClient()
            if namespace is None and os.path.exists(SERVICE_ACCOUNT_NAMESPACE):
                with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
                    namespace = f.read().strip() or None
        else:
            cfg = k8s.Configuration()
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
            # Fail fast when the server is down: urllib3's default retries take seconds.
            cfg.retries = 1
            api_client = k8s.ApiClient(cfg)
            if namespace is None:
                _, active = config.list_kube_config_contexts(config_file=path)
                if context:
                    contexts, _ = config.list_kube_config_contexts(config_file=path)
                    active = next((c for c in contexts if c.get("name") == context), active)
                namespace = ((active or {}).get("context") or {}).get("namespace")
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = f" {path}" if path else ""
        raise CliError(
            f"cannot load the kubeconfig{where}: {exc}; pass --kubeconfig FILE or set "
            "KUBECONFIG (the local test bed writes .dev/kubeconfig: make up)",
            EXIT_USAGE,
        ) from None
    server = str(getattr(api_client.configuration, "host", "") or "the API server")
    return Cluster(api_client=api_client, namespace=namespace or "default", server=server)


def describe_api_error(exc: BaseException, what: str, cluster: Cluster | None = None) -> CliError:
    """An API or connection error as a CliError that says what to check."""
    from kubernetes.client.exceptions import ApiException

    server = cluster.server if cluster else "the API server"
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = _api_message(exc) or str(exc.reason or "")
        if status == 404:
            return CliError(
                f"{what}: not found ({reason}); are the vmgitops CRDs installed? "
                "(kubectl get crd | grep vmgitops.io; helm install or kubectl apply -f crds/)",
                EXIT_USAGE,
            )
        if status in (401, 403):
            return CliError(
                f"{what}: the API server refused ({status}: {reason}); ask for RBAC that "
                "allows it, or use another --context",
                EXIT_UNAVAILABLE,
            )
        return CliError(f"{what}: the API server answered {status}: {reason}", EXIT_UNAVAILABLE)
    return CliError(
        f"{what}: cannot reach {server} ({type(exc).__name__}: {_first_line(exc)}); is the "
        "cluster up (make up) and is --kubeconfig/--context the right one?",
        EXIT_UNAVAILABLE,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _connection_errors() -> tuple[type[BaseException], ...]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return (ApiException, HTTPError, OSError)


@contextmanager
def api_errors(what: str, cluster: Cluster | None = None) -> Iterator[None]:
    """Turns API and connection errors raised inside into CliErrors naming `what`."""
    try:
        yield
    except CliError:
        raise
    except _connection_errors() as exc:
        raise describe_api_error(exc, what, cluster) from None


def on_cluster(
    args: argparse.Namespace, command: Callable[[Cluster], Coroutine[Any, Any, int]]
) -> int:
    """Connects as --kubeconfig/--context/-n say and runs the async `command` there."""
    cluster = connect(args)
    return asyncio.run(command(cluster))


async def get_object(
    cluster: Cluster, kind: KindInfo, name: str, *, hint: str = ""
) -> dict[str, Any]:
    """The `kind` object `name` in the cluster's namespace; a CliError (usage) ending in
    `hint` when there is none."""
    from vmgitops.kube.client import NotFound

    try:
        with api_errors(f"get {kind.kind} {cluster.namespace}/{name}", cluster):
            obj: dict[str, Any] = await cluster.kube().get(kind, cluster.namespace, name)
    except NotFound:
        raise CliError(
            f"{kind.kind} {name!r} not found in namespace {cluster.namespace!r}{hint}",
            EXIT_USAGE,
        ) from None
    return obj


async def get_application(cluster: Cluster, name: str) -> dict[str, Any]:
    """The VMApplication `name` in the cluster's namespace, or a CliError saying what to do."""
    return await get_object(
        cluster,
        meta.APPLICATION,
        name,
        hint=f"; list them with `vmgitops status -n {cluster.namespace}` "
        "(or -A for every namespace)",
    )


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    limit: float,
    interval: float,
    waiting: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T | None:
    """Calls `check` every `interval` seconds until it returns something (that) or `limit`
    seconds have passed (None); `waiting` hears the seconds passed after each miss."""
    start = clock()
    while True:
        found = await check()
        if found is not None:
            return found
        elapsed = clock() - start
        if waiting is not None:
            waiting(elapsed)
        if elapsed >= limit:
            return None
        await asyncio.sleep(interval)


def fail(prog: str, message: str, code: int) -> int:
    """Says `prog: message` on stderr; returns the exit `code`."""
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def guarded(prog: str) -> Callable[[Callable[[argparse.Namespace], int]], Any]:
    """Decorator for a command's run(): a CliError becomes `prog: error: ...` and its code."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except CliError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return exc.code

        return run

    return wrap


def dump(data: Any, fmt: str, out: TextIO | None = None) -> None:
    """Writes `data` as YAML or JSON (stable key order as given)."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump(data, out, indent=2, default=str)
        out.write("\n")
    else:
        yaml.safe_dump(data, out, sort_keys=False, default_flow_style=False)


def parse_timeout(value: str) -> float:
    """`--timeout` as seconds; a usage error (exit 2) naming the flag otherwise."""
    try:
        return float(parse_duration(value))
    except ValueError:
        raise CliError(
            f"--timeout {value!r}: write a duration such as 90s or 10m", EXIT_USAGE
        ) from None


def age(value: Any, now: datetime | None = None) -> str:
    """kubectl's short age ("45s", "3m", "2h5m", "4d") of an RFC 3339 time; "" when unset."""
    t = parse_time(value)
    if t is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - t).total_seconds())
    return short_duration(max(0, seconds))


def short_duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest and hours < 6 else f"{hours}h"
    return f"{hours // 24}d"


def short_sha(revision: Any) -> str:
    text = str(revision or "")
    return text[:12] if len(text) == 40 else text


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    """The condition `type_` of an object's status ({} when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


@contextmanager
def output_console(stream: TextIO | None = None) -> Iterator[Console]:
    """A rich Console for tables: live on a terminal; in a pipe, wide, without colour and
    without trailing blanks, so that scripts and `grep` read whole rows."""
    stream = stream or sys.stdout
    if bool(getattr(stream, "isatty", lambda: False)()):
        yield Console(file=stream, highlight=False)
        return
    buf = io.StringIO()
    yield Console(file=buf, width=200, highlight=False, soft_wrap=False)
    stream.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
    stream.flush()
