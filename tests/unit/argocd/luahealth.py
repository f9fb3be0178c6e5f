"""The Argo CD health checks of examples/argocd, run in a real Lua 5.1 interpreter (lupa)
the way Argo CD runs them (gopher-lua, Lua 5.1): the resource as the global `obj`, the
chunk's return value as the health, and no `os`, `io` or module loading.

`python3 tests/unit/argocd/luahealth.py > examples/argocd/argocd-cm.yaml` writes the
argocd-cm snippet from the scripts in examples/argocd/health/.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
HEALTH_DIR = ROOT / "examples" / "argocd" / "health"
CONFIGMAP = ROOT / "examples" / "argocd" / "argocd-cm.yaml"
GROUP = "vmgitops.io"
KINDS = ("VirtualMachineTarget", "VMApplication", "Promotion", "PromotionPipeline")
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
#: What Argo CD's sandbox leaves out.
UNSAFE = ("os", "io", "require", "dofile", "loadfile", "load", "loadstring", "package", "debug")


def script(kind: str) -> str:
    return (HEALTH_DIR / f"{kind}.lua").read_text()


def key(kind: str) -> str:
    """The argocd-cm key Argo CD reads a kind's health check from."""
    return f"resource.customizations.health.{GROUP}_{kind}"


def health(kind: str, obj: dict[str, Any], source: str | None = None) -> tuple[str, str]:
    """(status, message) the health check of `kind` gives `obj`."""
    import lupa.lua51 as lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    for name in UNSAFE:
        g[name] = None
    g.obj = lua.table_from(obj, recursive=True)
    result = lua.execute(source if source is not None else script(kind))
    assert result is not None, f"the {kind} health check returned nothing"
    status, message = result["status"], result["message"]
    assert status in STATUSES, f"{kind}: {status!r} is not an Argo CD health status"
    return str(status), "" if message is None else str(message)


def render_configmap() -> str:
    """The argocd-cm snippet holding every health check."""
    lines = [
        "# Health checks for the vmgitops kinds, for Argo CD's argocd-cm ConfigMap.",
        "# Without them Argo CD shows every vmgitops object as Healthy at once, and sync",
        "# waves would not wait for VMs to be reachable or applications to roll out.",
        "# Merge the data keys into your argocd-cm (generated from health/*.lua by",
        "# tests/unit/argocd/luahealth.py; a test checks the two agree).",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lines.append(f"  {key(kind)}: |")
        lines += [f"    {line}" if line else "" for line in script(kind).rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_configmap())
