"""Real Git servers the tests start themselves, on 127.0.0.1 ports of their own.

- `SmartHTTPServer`: git's own `git http-backend` (as CGI) behind a tiny Python HTTP
  server that demands Basic auth, the way a hosted Git server answers `https://`; it
  accepts pushes (receive-pack) from the authenticated user, and a test can run code
  just before a push is served (`before_push`) to make the branch move meanwhile.
- `GitDaemon`: a private `git daemon`, for tests that stop the server.
- `Workdir`: a working clone that commits and pushes into a bare repository.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git(*args: str, cwd: Path | None = None) -> str:
    """Runs git for test setup, isolated from the user's configuration."""
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "vmgitops tests",
        "GIT_AUTHOR_EMAIL": "tests@vmgitops.invalid",
        "GIT_COMMITTER_NAME": "vmgitops tests",
        "GIT_COMMITTER_EMAIL": "tests@vmgitops.invalid",
    }
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def init_bare(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", "-b", "main", str(path))
    return path


class Workdir:
    """A working repository whose `origin` is a bare repository on disk."""

    def __init__(self, path: Path, bare: Path) -> None:
        self.path = path
        git("init", "--quiet", "-b", "main", str(path))
        git("remote", "add", "origin", str(bare), cwd=path)

    def write(self, name: str, content: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def symlink(self, name: str, points_to: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(points_to)

    def commit(self, message: str) -> str:
        git("add", "-A", cwd=self.path)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.path)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.path)

    def run(self, *args: str) -> str:
        return git(*args, cwd=self.path)

    def push(self, *refspecs: str, force: bool = False) -> None:
        git("push", "--quiet", *(["--force"] if force else []), "origin", *refspecs, cwd=self.path)


class _CGIHandler(BaseHTTPRequestHandler):
    server: SmartHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        expected = base64.b64encode(
            f"{self.server.username}:{self.server.password}".encode()
        ).decode()
        header = self.headers.get("Authorization", "")
        return hmac.compare_digest(header.encode(), f"Basic {expected}".encode())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        self.server.requests += 1
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        body = self._body()
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self._authorized():
            self.server.rejected += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="vmgitops-tests"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        if self.command == "POST" and path.endswith("/git-receive-pack"):
            self.server.pushes += 1
            hook, self.server.before_push = self.server.before_push, None
            if hook is not None:
                hook()  # once: e.g. another writer pushes first, so this push is not a fast-forward
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.server.username,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class SmartHTTPServer(ThreadingHTTPServer):
    """`git http-backend` over http://127.0.0.1:<port>/ with one Basic-auth user."""

    daemon_threads = True

    def __init__(
        self, root: Path, username: str, password: str, *, redirect_to: str | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _CGIHandler)
        self.root = root
        self.username = username
        self.password = password
        #: Answer every request with a redirect to this base URL instead.
        self.redirect_to = redirect_to
        self.requests = 0
        self.rejected = 0
        #: The Authorization header of every request ("" when absent).
        self.authorizations: list[str] = []
        #: receive-pack requests (pushes) served, and a one-shot hook run before the next.
        self.pushes = 0
        self.before_push: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class GitDaemon:
    """A `git daemon` of the test's own, serving `root` on a free port; stop() kills it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.root}",
                "--export-all",
                "--informative-errors",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"git daemon did not listen on port {self.port}")

    def stop(self) -> None:
        """Kills the daemon and the per-connection children in its session."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def remove(path: Path) -> None:
    """Removes a directory tree even where checkouts made it read-only."""
    if not path.exists():
        return
    for dirpath, _dirs, _files in os.walk(path):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(path, ignore_errors=True)
