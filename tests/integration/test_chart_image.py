"""The container image the chart runs. No image can be built on the test bed (no container
engine), so this checks what can be checked: the Dockerfile's shape against the chart, and
its install step for real: `uv sync --frozen --no-dev --no-editable` from a copy of the
build context (what .dockerignore lets through) gives a working `vmgitops` without dev
tools."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from testbed import ROOT

pytestmark = pytest.mark.integration

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_multi_stage_slim_and_non_root_as_the_chart_expects() -> None:
    ins = instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) >= 2, "multi-stage: build and runtime"
    assert "slim" in froms[-1], f"the runtime stage is not slim: {froms[-1]}"
    user = [a for i, a in ins if i == "USER"][-1]
    values = yaml.safe_load((ROOT / "charts/vmgitops/values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert user.split(":")[0] == str(uid), "the image's user is the chart's runAsUser"
    assert user.split(":")[0] != "0"
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "uv sync --frozen --no-dev" in runs, "installed from uv.lock without dev dependencies"
    entry = [a for i, a in ins if i == "ENTRYPOINT"][-1]
    assert entry == '["vmgitops"]', "the chart passes `run ...` as args"
    chart_args = (ROOT / "charts/vmgitops/templates/deployment.yaml").read_text()
    assert "- run\n" in chart_args
    # What the operator needs at run time besides Python: git (sources) and ssh (ssh:// Git).
    assert "git" in runs and "openssh-client" in runs


def context_files() -> list[Path]:
    """The files `docker build .` would send, per .dockerignore (its allowlist form)."""
    rules = [
        r.strip()
        for r in (ROOT / ".dockerignore").read_text().splitlines()
        if r.strip() and not r.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore is an allowlist: '*' first, then '!' entries"
    allowed = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    ignored = [r for r in rules[1:] if not r.startswith("!")]
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file():
            continue
        if not any(rel == a or rel.startswith(f"{a}/") for a in allowed):
            continue
        if any(
            fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat.split("/")[-1])
            for pat in ignored
        ):
            continue
        files.append(path)
    return files


def test_install_step_from_the_build_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    files = context_files()
    names = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"pyproject.toml", "uv.lock", "README.md"} <= names
    assert not any(n.startswith((".dev/", ".venv/", "tests/", ".git/")) for n in names)
    for path in files:
        dest = ctx / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_COMPILE_BYTECODE": "0",
    }
    env.pop("VIRTUAL_ENV", None)
    for cmd in (
        ["uv", "sync", "--frozen", "--no-dev", "--no-install-project", "-q"],
        ["uv", "sync", "--frozen", "--no-dev", "--no-editable", "-q"],
    ):
        out = subprocess.run(cmd, cwd=ctx, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
    shutil.rmtree(ctx)  # non-editable: the environment must not need the sources
    for exe in ("vmgitops", "kubectl-vmgitops"):
        out = subprocess.run([str(venv / "bin" / exe), "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "run" in out.stdout, out.stderr
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", "import vmgitops.handlers, kopf, asyncssh"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    for dev in ("pytest", "mypy", "ruff", "lupa"):
        out = subprocess.run([str(venv / "bin/python"), "-c", f"import {dev}"], capture_output=True)
        assert out.returncode != 0, f"the image would ship the dev dependency {dev}"
