"""LoadedApp + (params, target, facts, revision) -> DesiredState, for one VM.

Templates see exactly four names: `params` (the VMApplication's parameters), `target`
(name, labels, address), `facts` (the target's probed facts) and `revision`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vmgitops.manifest import vmpaths
from vmgitops.manifest.desired import (
    DesiredCommand,
    DesiredDirectory,
    DesiredFile,
    DesiredPackage,
    DesiredRelease,
    DesiredService,
    DesiredState,
    HealthCheck,
    input_digest,
    sha256_hex,
)
from vmgitops.manifest.errors import MANIFEST_INVALID, MANIFEST_TOO_LARGE, ManifestError
from vmgitops.manifest.loader import MANIFEST_FILE, LoadedApp
from vmgitops.manifest.model import FileSpec, HealthCheckSpec, ServiceSpec
from vmgitops.manifest.templates import render_text


@dataclass(frozen=True)
class TargetInfo:
    """What a template may know of the VM it renders for."""

    name: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_context(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "labels": dict(self.labels)}


def render(
    app: LoadedApp,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    revision: str,
) -> DesiredState:
    """The concrete desired state of `target`; raises ManifestError(TemplateError, ...)."""
    if not vmpaths.REVISION.fullmatch(revision):
        raise ManifestError(MANIFEST_INVALID, f"revision {revision!r} is not a safe name")
    context = {
        "params": dict(params),
        "target": target.as_context(),
        "facts": dict(facts),
        "revision": revision,
    }
    m = app.manifest
    files = tuple(_file(app, i, spec, context) for i, spec in enumerate(m.files))
    release = None
    if m.release is not None and app.release_digest is not None:
        release = DesiredRelease(
            path=m.release.path,
            revision=revision,
            keep=m.release.keep,
            files=app.release_files,
            directories=app.release_directories,
            digest=app.release_digest,
        )
    services = tuple(
        _service(app, i, spec, context, files, release) for i, spec in enumerate(m.services)
    )
    commands = tuple(
        DesiredCommand(
            name=c.name,
            argv=tuple(c.run),
            on_change=tuple(c.on_change),
            creates=c.creates,
            idempotent=c.idempotent,
            timeout_seconds=c.timeout_seconds,
            trigger_digest=input_digest(list(c.run), tuple(c.on_change), files, release),
        )
        for c in m.commands
    )
    return DesiredState(
        revision=revision,
        files=files,
        directories=tuple(
            DesiredDirectory(d.path, vmpaths.parse_mode(d.mode), d.owner, d.group)
            for d in m.directories
        ),
        packages=tuple(DesiredPackage(p.name, p.state == "present") for p in m.packages),
        services=services,
        release=release,
        commands=commands,
        health_checks=tuple(_check(app, h, context) for h in m.health_checks),
    )


def _text(app: LoadedApp, raw: str, context: Mapping[str, Any], what: str) -> bytes:
    data = render_text(raw, context, what).encode("utf-8")
    if len(data) > app.limits.max_file_bytes:
        raise ManifestError(
            MANIFEST_TOO_LARGE, f"{what}: renders to more than {app.limits.max_file_bytes} bytes"
        )
    return data


def _file(app: LoadedApp, i: int, spec: FileSpec, context: Mapping[str, Any]) -> DesiredFile:
    what = f"{MANIFEST_FILE}: files[{i}] ({spec.path})"
    if spec.source is not None:
        data = app.sources[spec.source]
        if spec.template:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(
                    MANIFEST_INVALID, f"{what}: a template source must be UTF-8 text"
                ) from None
            data = _text(app, text, context, what)
    else:
        assert spec.content is not None
        raw = spec.content
        data = _text(app, raw, context, what) if spec.template else raw.encode("utf-8")
    return DesiredFile(
        path=spec.path,
        content=data,
        sha256=sha256_hex(data),
        mode=vmpaths.parse_mode(spec.mode),
        owner=spec.owner,
        group=spec.group,
        sensitive=spec.sensitive,
    )


def _service(
    app: LoadedApp,
    i: int,
    spec: ServiceSpec,
    context: Mapping[str, Any],
    files: tuple[DesiredFile, ...],
    release: DesiredRelease | None,
) -> DesiredService:
    unit = None
    if spec.unit is not None:
        what = f"{MANIFEST_FILE}: services[{i}] ({spec.name}).unit"
        unit = _text(app, spec.unit, context, what) if spec.template else spec.unit.encode()
    refs = tuple(spec.restart_on_change)
    digest = None
    if unit is not None or refs:
        base = sha256_hex(unit) if unit is not None else ""
        digest = input_digest(base, refs, files, release)
    return DesiredService(
        name=spec.name,
        unit=unit,
        enabled=spec.enabled,
        state=spec.state,
        restart_on_change=refs,
        restart_digest=digest,
    )


def _check(app: LoadedApp, h: HealthCheckSpec, context: Mapping[str, Any]) -> HealthCheck:
    # URLs and hosts are templates: a check usually names the VM's own address
    # (`http://{{ target.address }}:8080/healthz`), which differs on every target.
    if h.http is not None:
        url = _text(app, h.http.url, context, f"healthChecks {h.name}: http.url").decode()
        if not re.fullmatch(r"https?://\S+", url):
            raise ManifestError(
                MANIFEST_INVALID,
                f"healthChecks {h.name}: http.url renders to {url[:200]!r}, "
                "which is not one http(s) URL without white space",
            )
        return HealthCheck(
            h.name, "http", h.timeout_seconds, url=url, expect_status=h.http.expect_status
        )
    if h.tcp is not None:
        host = _text(app, h.tcp.host, context, f"healthChecks {h.name}: tcp.host").decode()
        return HealthCheck(h.name, "tcp", h.timeout_seconds, host=host, port=h.tcp.port)
    return HealthCheck(h.name, "command", h.timeout_seconds, command=tuple(h.command or ()))
