"""`vmgitops render FOLDER [--target-json F]`: validate and render locally, no VM.

The target JSON is either `{"name", "address", "labels", "facts"}` or a whole
VirtualMachineTarget as `kubectl get vmt NAME -o json` prints it. The output is YAML;
sensitive files show "(sensitive content hidden)", binary files their size only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vmgitops.manifest.desired import DesiredState
from vmgitops.manifest.errors import MANIFEST_INVALID, ManifestError
from vmgitops.manifest.loader import load_app
from vmgitops.manifest.render import TargetInfo, render
from vmgitops.manifest.vmpaths import format_mode

HIDDEN = "(sensitive content hidden)"
DEFAULT_TARGET = TargetInfo(name="local", address="127.0.0.1")


def load_target(target_json: Path | None) -> tuple[TargetInfo, dict[str, Any]]:
    """(target, facts) from a target JSON file; a local placeholder when there is none."""
    if target_json is None:
        return DEFAULT_TARGET, {}
    try:
        data = json.loads(target_json.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(MANIFEST_INVALID, f"{target_json}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(MANIFEST_INVALID, f"{target_json}: must be a JSON object")
    if "metadata" in data:  # a VirtualMachineTarget object
        meta, spec, status = data["metadata"], data.get("spec", {}), data.get("status", {})
        data = {
            "name": meta.get("name", ""),
            "labels": meta.get("labels", {}),
            "address": spec.get("address", ""),
            "facts": status.get("facts", {}),
        }
    labels = data.get("labels") or {}
    target = TargetInfo(
        name=str(data.get("name", "local")),
        address=str(data.get("address", "")),
        labels={str(k): str(v) for k, v in labels.items()},
    )
    facts = data.get("facts") or {}
    return target, dict(facts) if isinstance(facts, dict) else {}


def render_folder(
    folder: Path,
    params: Mapping[str, Any] | None = None,
    target_json: Path | None = None,
    *,
    revision: str = "local",
) -> str:
    """The rendered desired state of `folder` as YAML; raises ManifestError."""
    target, facts = load_target(target_json)
    app = load_app(folder)
    desired = render(app, params or {}, target, facts, revision)
    return summarize(desired, target)


def format_error(exc: ManifestError) -> str:
    return f"error: {exc.reason}: {exc.message}\n"


def run_render(
    folder: Path, params: Mapping[str, Any] | None = None, target_json: Path | None = None
) -> tuple[int, str]:
    """(exit status, text) for the CLI: 0 and the YAML, or 1 and the error."""
    try:
        return 0, render_folder(folder, params, target_json)
    except ManifestError as exc:
        return 1, format_error(exc)


def _content(data: bytes, sensitive: bool) -> str:
    if sensitive:
        return HIDDEN
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(data)} bytes)"
    return f"(binary, {len(data)} bytes)" if "\x00" in text else text


def summarize(desired: DesiredState, target: TargetInfo) -> str:
    doc: dict[str, Any] = {
        "revision": desired.revision,
        "target": target.as_context(),
        "files": [
            {
                "path": f.path,
                "mode": format_mode(f.mode),
                **({"owner": f.owner} if f.owner else {}),
                **({"group": f.group} if f.group else {}),
                **({} if f.sensitive else {"sha256": f.sha256}),
                "content": _content(f.content, f.sensitive),
            }
            for f in desired.files
        ],
        "directories": [{"path": d.path, "mode": format_mode(d.mode)} for d in desired.directories],
        "packages": [
            {"name": p.name, "state": "present" if p.present else "absent"}
            for p in desired.packages
        ],
        "services": [
            {
                "name": s.name,
                "enabled": s.enabled,
                "state": s.state,
                "restartOnChange": list(s.restart_on_change),
                **({"unit": _content(s.unit, False)} if s.unit is not None else {}),
            }
            for s in desired.services
        ],
        "commands": [
            {
                "name": c.name,
                "run": list(c.argv),
                "onChange": list(c.on_change),
                "creates": c.creates,
            }
            for c in desired.commands
        ],
        "healthChecks": [{"name": h.name, "kind": h.kind} for h in desired.health_checks],
    }
    if desired.release is not None:
        r = desired.release
        doc["release"] = {
            "path": r.path,
            "keep": r.keep,
            "digest": r.digest,
            "files": len(r.files),
            "bytes": sum(len(f.content) for f in r.files),
        }
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
