"""What `vmgitops promote`, `approve` and the status sections need, without the CLI.

The CLI never changes an application: it creates a Promotion, sets the approval
annotation, and reads; the operator does the rest. These are plain functions over a
kubernetes CustomObjectsApi (blocking) and over objects already read (pure rows), so the
commands stay thin and the rows are shared by tables and `-o json`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vmgitops.api import meta
from vmgitops.api.promotion import ApplicationKind, PromotionPhase

_KIND_ALIASES = {
    "application": ApplicationKind.ARGO_APPLICATION,
    "applications": ApplicationKind.ARGO_APPLICATION,
    "app": ApplicationKind.ARGO_APPLICATION,
    "argo": ApplicationKind.ARGO_APPLICATION,
    "vmapplication": ApplicationKind.VM_APPLICATION,
    "vmapplications": ApplicationKind.VM_APPLICATION,
    "vmapp": ApplicationKind.VM_APPLICATION,
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class WaitTimedOut(Exception):
    """The promotion did not finish within the wait; the message says where it stands."""


def parse_ref(text: str) -> dict[str, str]:
    """NAME (a VMApplication), or KIND/NAME: Application/NAME for Argo CD. ValueError
    says what to write instead."""
    kind_text, sep, name = text.partition("/")
    if not sep:
        kind, name = ApplicationKind.VM_APPLICATION, kind_text
    else:
        found = _KIND_ALIASES.get(kind_text.lower())
        if found is None:
            raise ValueError(
                f"{text!r}: the kind must be VMApplication or Application (Argo CD), "
                "as in Application/web-prod"
            )
        kind = found
    if not _NAME.match(name) or len(name) > 253:
        raise ValueError(f"{text!r} is not an application name")
    return {"kind": kind.value, "name": name}


def describe_ref(ref: Mapping[str, Any]) -> str:
    kind = ref.get("kind") or ApplicationKind.VM_APPLICATION.value
    name = str(ref.get("name"))
    return f"Application/{name}" if kind == ApplicationKind.ARGO_APPLICATION.value else name


def promotion_manifest(
    source: Mapping[str, str],
    destinations: Sequence[Mapping[str, str]],
    *,
    revision: str = "",
    approval: bool = False,
    soak_time: str | None = None,
    timeout: str | None = None,
    method: str = "Patch",
    git_commit: Mapping[str, Any] | None = None,
    rollback: bool = True,
    name: str | None = None,
) -> dict[str, Any]:
    """The Promotion `vmgitops promote` creates; ValueError for what the API would refuse."""
    keys = [(d["kind"], d["name"]) for d in destinations]
    if (source["kind"], source["name"]) in keys:
        raise ValueError(
            f"--from {describe_ref(source)} is also a --to: promote it to another application"
        )
    if len(set(keys)) != len(keys):
        raise ValueError("--to names the same application twice")
    verification: dict[str, str] = {}
    if soak_time:
        verification["soakTime"] = soak_time
    if timeout:
        verification["timeout"] = timeout
    spec: dict[str, Any] = {
        "from": dict(source),
        "to": [dict(d) for d in destinations],
        "revision": revision,
        "approval": {"required": approval},
        "verification": verification,
        "method": method,
        "rollbackOnFailure": rollback,
    }
    if git_commit:
        spec["gitCommit"] = dict(git_commit)
    metadata: dict[str, Any] = {}
    if name:
        metadata["name"] = name
    else:
        base = f"{source['name']}-to-{destinations[0]['name']}"[:200].rstrip("-.")
        metadata["generateName"] = base + "-"
    return {
        "apiVersion": meta.API_VERSION,
        "kind": meta.PROMOTION.kind,
        "metadata": metadata,
        "spec": spec,
    }


def phase_of(obj: Mapping[str, Any]) -> PromotionPhase | None:
    raw = (obj.get("status") or {}).get("phase")
    try:
        return PromotionPhase(raw) if raw else None
    except ValueError:
        return None


def approval_patch(who: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {meta.ANNOTATION_APPROVED_BY: who[:253]}}}


def approval_refusal(obj: Mapping[str, Any]) -> str | None:
    """Why this Promotion cannot be approved any more (None: it can)."""
    phase = phase_of(obj)
    name = (obj.get("metadata") or {}).get("name")
    if phase is not None and phase.is_final:
        return f"Promotion {name} is already {phase.value}; nothing to approve"
    return None


def approved_by(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(meta.ANNOTATION_APPROVED_BY)
    return str(value) if value else None


def wait_for(
    get: Callable[[], Mapping[str, Any]],
    timeout: float,
    report: Callable[[Mapping[str, Any]], None],
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """Polls the Promotion (`get`) until its phase is final, calling `report` on every new
    phase or reason; WaitTimedOut after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, Any] | None = None
    while True:
        obj = get()
        status = obj.get("status") or {}
        seen = (status.get("phase"), status.get("reason"))
        if seen != last and seen[0]:
            report(obj)
            last = seen
        phase = phase_of(obj)
        if phase is not None and phase.is_final:
            return obj
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"the promotion is still {phase.value if phase else 'Pending'} after "
                f"{timeout:g}s; it goes on in the operator"
            )
        sleep(interval)


# -- rows for `vmgitops status` --------------------------------------------------------


def promotion_row(p: Mapping[str, Any]) -> dict[str, Any]:
    st, spec = p.get("status") or {}, p.get("spec") or {}
    m = p.get("metadata") or {}
    return {
        "namespace": m.get("namespace") or "",
        "name": m.get("name") or "",
        "phase": st.get("phase") or "Pending",
        "reason": st.get("reason") or "",
        "revision": st.get("revision") or spec.get("revision") or "",
        "from": describe_ref(spec.get("from") or {}),
        "to": [describe_ref(t) for t in spec.get("to") or []],
        "method": spec.get("method") or "Patch",
        "message": st.get("message") or "",
        "approvedBy": st.get("approvedBy"),
        "startedAt": st.get("startedAt"),
        "finishedAt": st.get("finishedAt"),
        "pipeline": (m.get("annotations") or {}).get(f"{meta.GROUP}/pipeline"),
    }


def involves(p: Mapping[str, Any], app: str) -> bool:
    """Whether the Promotion reads from or writes to the VMApplication `app`."""
    spec = p.get("spec") or {}
    refs = [spec.get("from") or {}, *(spec.get("to") or [])]
    return any(
        r.get("name") == app
        and (r.get("kind") or ApplicationKind.VM_APPLICATION.value)
        == ApplicationKind.VM_APPLICATION.value
        for r in refs
    )


def approvals(promotions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Promotions waiting for approval, each with the command that approves it."""
    out = []
    for p in promotions:
        if phase_of(p) is PromotionPhase.WAITING_FOR_APPROVAL:
            row = promotion_row(p)
            ns = f" -n {row['namespace']}" if row["namespace"] else ""
            out.append({**row, "approve": f"vmgitops approve {row['name']}{ns}"})
    return out


def in_progress(promotions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Promotions neither finished nor waiting for approval."""
    out = []
    for p in promotions:
        phase = phase_of(p)
        if phase is PromotionPhase.WAITING_FOR_APPROVAL:
            continue
        if phase is None or not phase.is_final:
            out.append(promotion_row(p))
    return out


def pipeline_row(p: Mapping[str, Any]) -> dict[str, Any]:
    st, spec = p.get("status") or {}, p.get("spec") or {}
    m = p.get("metadata") or {}
    by_name = {s.get("name"): s for s in st.get("stages") or []}
    stages = []
    for s in spec.get("stages") or []:
        got = by_name.get(s.get("name")) or {}
        stages.append(
            {
                "name": s.get("name"),
                "kind": s.get("kind") or ApplicationKind.VM_APPLICATION.value,
                "auto": s.get("auto", True),
                "approval": bool((s.get("approval") or {}).get("required")),
                "revision": got.get("revision") or "",
                "phase": got.get("phase") or "",
                "promotion": got.get("promotion") or "",
                "hold": got.get("hold"),
                "waiting": got.get("waiting"),
            }
        )
    return {
        "namespace": m.get("namespace") or "",
        "name": m.get("name") or "",
        "summary": st.get("summary") or "",
        "holds": int(st.get("holds") or 0),
        "stages": stages,
    }
