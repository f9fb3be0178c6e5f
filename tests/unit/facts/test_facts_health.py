"""Health checks: the real script against a real local HTTP server and real ports."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmgitops.facts.health import CheckResult, health_argv, health_timeout, parse_health
from vmgitops.manifest.desired import HealthCheck


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz?deep=1" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    srv = socketserver.TCPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(checks: list[HealthCheck], path: str | None = None) -> list[CheckResult]:
    env = dict(os.environ, PATH=path) if path else None
    argv = health_argv(checks)
    if path:
        argv[0] = shutil.which("env") or "/usr/bin/env"
    out = subprocess.run(argv, capture_output=True, timeout=health_timeout(checks), env=env)
    return parse_health(out.stdout, checks)


def cmd(name: str, *argv: str, timeout: int = 5) -> HealthCheck:
    return HealthCheck(name, "command", timeout, command=argv)


def test_command_checks(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    results = run(
        [
            cmd("ok", "true"),
            cmd("fails", "sh", "-c", "echo first; echo 'disk full' >&2; exit 3"),
            cmd("slow", "sleep", "10", timeout=1),
            cmd(
                "quoting",
                "test",
                "$(touch " + str(canary) + ")",
                "=",
                "$(touch " + str(canary) + ")",
            ),
            cmd("missing-binary", "/nonexistent/bin/check"),
        ]
    )
    assert [(r.name, r.ok, r.message) for r in results] == [
        ("ok", True, "exit 0"),
        ("fails", False, "exit 3: disk full"),
        ("slow", False, "timed out after 1s"),
        ("quoting", True, "exit 0"),
        ("missing-binary", False, results[4].message),
    ]
    assert results[4].message.startswith("exit 12")  # 126/127 from timeout or the shell
    assert not canary.exists()


def test_http_and_tcp_checks(port: int) -> None:
    down = closed_port()
    results = run(
        [
            HealthCheck("http", "http", 3, url=f"http://127.0.0.1:{port}/healthz?deep=1"),
            HealthCheck("http-503", "http", 3, url=f"http://127.0.0.1:{port}/other"),
            HealthCheck("http-down", "http", 2, url=f"http://127.0.0.1:{down}/"),
            HealthCheck("tcp", "tcp", 3, host="127.0.0.1", port=port),
            HealthCheck("tcp-down", "tcp", 3, host="127.0.0.1", port=down),
        ]
    )
    assert [(r.name, r.ok) for r in results] == [
        ("http", True),
        ("http-503", False),
        ("http-down", False),
        ("tcp", True),
        ("tcp-down", False),
    ]
    assert results[1].message.startswith("status 503")


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_http_without_curl_or_wget_uses_bash(tmp_path: Path, port: int) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "bash", "timeout", "printf", "od", "tr"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, tools / tool)
    results = run(
        [
            HealthCheck("http", "http", 3, url=f"http://127.0.0.1:{port}/healthz?deep=1"),
            HealthCheck("https", "http", 3, url=f"https://127.0.0.1:{port}/"),
        ],
        path=str(tools),
    )
    assert results[0] == CheckResult("http", "http", True, "status 200 (bash)")
    assert results[1].ok is None and "no HTTP client" in results[1].message


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(b"end 0\n", CheckResult("c", "command", None, "no answer"), id="no answer"),
        pytest.param(
            b"check 4\n1:c\n7:command\n3:124\n0:\nend 0\n",
            CheckResult("c", "command", False, "timed out after 5s"),
            id="timeout exit status",
        ),
        pytest.param(
            b"check 4\n1:c\n7:command\n1:1\n6:a\nb\nc\n\nend 0\n",
            CheckResult("c", "command", False, "exit 1: c"),
            id="failure shows the last line of output",
        ),
    ],
)
def test_parse_health(stream: bytes, expected: CheckResult) -> None:
    assert parse_health(stream, [cmd("c", "x")]) == [expected]


def test_argv_carries_checks_as_data() -> None:
    argv = health_argv(
        [
            HealthCheck("h", "http", 2, url="https://example.test/a/b?c=d"),
            cmd("c", "a", "b c"),
        ]
    )
    http = ["http", "h", "2", "https://example.test/a/b?c=d", "example.test", "443"]
    assert argv[6:] == [*http, "/a/b?c=d", "https", "cmd", "c", "5", "2", "a", "b c"]
    assert health_timeout([cmd("a", "x", timeout=3), cmd("b", "y", timeout=4)]) == 17.0
