"""A real Git repository on the test bed's git daemon, holding a generated VM app."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from testbed import DEV, GIT_BASE_URL

APP_TEMPLATE = """\
files:
  - path: /etc/{app}/{app}.conf
    content: |
      greeting={{{{ params.greeting }}}}
      listen={{{{ target.address }}}}
      port={port}
      host={{{{ target.name }}}}
      revision={{{{ revision }}}}
      version={version}
    template: true
    mode: "0644"
{extra_files}directories:
  - {{path: /var/lib/{app}, mode: "0750"}}
services:
  - name: {app}.service
    unit: |
      [Service]
      ExecStart=/usr/bin/python3 /opt/{app}/current/bin/serve /etc/{app}/{app}.conf
    enabled: true
    state: running
    restartOnChange: [/etc/{app}/{app}.conf]
release:
  path: /opt/{app}
  source: dist
  keep: 3
commands:
  - name: stamp
    run: ["/opt/{app}/current/bin/stamp", "/var/lib/{app}/stamps.log"]
    onChange: [/etc/{app}/{app}.conf]
healthChecks:
  - {{name: unit, command: ["systemctl", "is-active", "{app}.service"]}}
  - name: http
    http: {{url: "http://{{{{ target.address }}}}:{port}/healthz", expectStatus: 200}}
    timeoutSeconds: 5
"""

SERVE = """\
import http.server, sys
conf = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l)
healthy = conf.get("healthy", "yes") == "yes"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/healthz" or healthy
        body = (conf.get("greeting", "") + " " + conf.get("version", "") + "\\n").encode()
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((conf["listen"], int(conf["port"])), H).serve_forever()
"""

# Records when each VM ran it: a rollout test reads these intervals to prove that at most
# maxUnavailable VMs were being changed at once.
STAMP = """\
#!/bin/sh
start=$(date +%s.%N)
sleep 2
echo "$start $(date +%s.%N)" >> "$1"
"""


class AppRepo:
    """A bare repo under .dev/git served by git daemon, and a work tree to commit from."""

    def __init__(self, tmp: Path, app: str | None = None, port: int = 0) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.app = app or f"app{self.id}"
        self.port = port or 20000 + int(self.id[:4], 16) % 20000
        self.name = f"repo-{self.id}"
        self.bare = DEV / "git" / f"{self.name}.git"
        self.url = f"{GIT_BASE_URL}/{self.name}.git"
        self.work = tmp / f"work-{self.id}"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        self.work.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(self.bare))

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, check=True, capture_output=True, text=True
        ).stdout.strip()

    @property
    def folder(self) -> Path:
        return self.work / "apps" / self.app

    def write_app(
        self,
        *,
        version: str = "1",
        extra_files: str = "",
        manifest: str | None = None,
        healthy: bool = True,
    ) -> None:
        d = self.folder
        (d / "dist" / "bin").mkdir(parents=True, exist_ok=True)
        text = (
            manifest
            if manifest is not None
            else APP_TEMPLATE.format(
                app=self.app, port=self.port, version=version, extra_files=extra_files
            )
        )
        if not healthy:
            text = text.replace("      version=", "      healthy=no\n      version=")
        (d / "vmapp.yaml").write_text(text)
        (d / "dist" / "bin" / "serve").write_text(SERVE)
        (d / "dist" / "bin" / "stamp").write_text(STAMP)
        (d / "dist" / "bin" / "stamp").chmod(0o755)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git(
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "-qm",
            message,
        )
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD")

    def remove(self) -> None:
        shutil.rmtree(self.bare, ignore_errors=True)

    def cleanup_vm_command(self) -> str:
        a = self.app
        return (
            f"systemctl disable --now {a}.service 2>/dev/null; "
            f"rm -rf /etc/{a} /opt/{a} /var/lib/{a} /etc/systemd/system/{a}.service "
            f"/var/lib/vmgitops/*_{a}* ; systemctl daemon-reload"
        )
