"""A small, synchronous Kubernetes client for the harness: one kept-alive HTTPS
connection with the bench control plane's admin certificate, so that polling an object
every 0.1 s costs a request, not a kubectl process."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

T = TypeVar("T")
GROUP_PATH = "/apis/vmgitops.io/v1alpha1"


class KubeError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        url = urlsplit(cluster["server"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self.ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        self.conn: http.client.HTTPSConnection | None = None
        self.requests = 0

    def _conn(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.ctx, timeout=60
            )
        return self.conn

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(3):
            try:
                conn = self._conn()
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read().decode()
                break
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
        self.requests += 1
        if resp.status >= 400:
            raise KubeError(resp.status, raw)
        ctype = resp.getheader("Content-Type") or ""
        return json.loads(raw) if raw and "json" in ctype else raw

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        try:
            return self.request("POST", path, obj)
        except KubeError as exc:
            if exc.status != 409:
                raise
            return None

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> None:
        try:
            self.request("DELETE", path)
        except KubeError as exc:
            if exc.status != 404:
                raise


def app_path(namespace: str, name: str = "") -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/vmapplications"
    return f"{base}/{name}" if name else base


def target_path(namespace: str, name: str = "") -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/virtualmachinetargets"
    return f"{base}/{name}" if name else base


def poll(fn: Callable[[], T | None], *, timeout: float, interval: float = 0.1, what: str = "") -> T:
    """Calls fn until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
