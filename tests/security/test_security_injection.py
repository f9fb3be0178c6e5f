"""Injection on a real VM: 680+ payloads as file and directory paths, template parameters,
command arguments (argv[0] and the rest) and health-check arguments, applied by the
engine over SSH in one sync. A canary command (`touch /tmp/vmgt-canary-RUN`) must never
run, and every accepted value must arrive byte for byte: each file at exactly its path,
each argument exactly as written (a program on the VM writes its argv to files), each
parameter rendered once, literally.

What the model refuses (NUL, control characters, '..', unit and package names...) is
counted in tests/unit/security/test_security_injection_model.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos import bed, figures
from security import engine
from security.payloads import canary_path, payloads
from testbed import VM
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.parse import parse_manifest

pytestmark = pytest.mark.integration

AREA = "5 injection"

WRITER = (
    "import os,sys\n"
    "d=sys.argv[1]\n"
    "os.makedirs(d, exist_ok=True)\n"
    "for i, a in enumerate(sys.argv[2:]):\n"
    "    open(os.path.join(d, str(i)), 'wb').write(os.fsencode(a))\n"
)

#: Run on the VM with the expectations on stdin; prints what it found, as JSON.
CHECK = r"""
import json, os, sys
exp = json.load(sys.stdin)
root = exp["root"]
out = {"canary": os.path.exists(exp["canary"]), "missing": [], "wrong": [], "extra": []}
def listing(top):
    found = set()
    for d, dirs, files in os.walk(os.fsencode(top)):
        for f in files:
            found.add(os.path.join(d, f))
    return found
want_files = {os.fsencode(p) for p in exp["files"]}
for sub, want in (("p", want_files),):
    got = listing(os.path.join(root, sub))
    out["extra"] += [os.fsdecode(x) for x in sorted(got - want)]
for i, p in enumerate(exp["files"]):
    b = os.fsencode(p)
    if not os.path.isfile(b):
        out["missing"].append(p)
    elif open(b, "rb").read() != exp["contents"][i].encode():
        out["wrong"].append(p)
for p in exp["dirs"]:
    if not os.path.isdir(os.fsencode(p)):
        out["missing"].append(p)
def argv_dir(d, n):
    got = []
    for i in range(n):
        f = os.path.join(d, str(i))
        ok = os.path.exists(f)
        got.append(open(f, "rb").read().decode("utf-8", "surrogateescape") if ok else None)
    return got
out["argv"] = argv_dir(os.path.join(root, "argv"), len(exp["args"]))
out["health"] = argv_dir(os.path.join(root, "health"), len(exp["args"]))
params = open(os.path.join(root, "params.txt"), "rb").read()
out["params"] = params.decode("utf-8", "surrogateescape")
ran = os.path.join(root, "ran")
out["ran"] = sorted(os.listdir(ran)) if os.path.isdir(ran) else []
print(json.dumps(out))
"""


def accepted(doc: dict[str, Any]) -> bool:
    try:
        parse_manifest(yaml.safe_dump(doc, allow_unicode=True, width=10**6))
    except ManifestError:
        return False
    return True


def test_injection_payloads_never_run_and_arrive_exactly(
    chaos_vms: list[VM], tmp_path: Path
) -> None:
    vm = chaos_vms[-3]
    run = uuid.uuid4().hex[:8]
    root = f"/tmp/vmgt-inj-{run}"
    canary = canary_path(run)
    all_payloads = payloads(run)
    assert len(all_payloads) >= 500
    key = f"security_inj-{run}"

    def file_ok(p: str) -> bool:
        return accepted({"files": [{"path": f"{root}/p/0/{p}", "content": "x"}]})

    path_payloads = [(i, p) for i, p in enumerate(all_payloads) if file_ok(p)]
    args = [p for p in all_payloads if "\x00" not in p]
    exe = path_payloads[: bed.scale(40, 120)]
    params = {f"p{i:03d}": p for i, p in enumerate(all_payloads)}
    template = "".join(
        "{{ params.%s|length }}:{{ params.%s }}\n" % (k, k)  # noqa: UP031 - Jinja braces
        for k in params
    )
    # One app per chunk of paths: a whole app's paths travel in one SSH command line,
    # which Linux caps at 128 KiB (see test_chaos_limits.py).
    docs: list[dict[str, Any]] = [
        {
            "files": [{"path": f"{root}/params.txt", "content": template, "template": True}],
            "directories": [{"path": f"{root}/ran"}],
            "commands": [
                {"name": "argv", "run": ["/usr/bin/python3", "-c", WRITER, f"{root}/argv", *args]}
            ]
            + [{"name": f"exe{i}", "run": [f"{root}/x/{i}/{p}"]} for i, p in exe],
            "healthChecks": [
                {
                    "name": "argv",
                    "command": ["/usr/bin/python3", "-c", WRITER, f"{root}/health", *args],
                    "timeoutSeconds": 60,
                }
            ],
        }
    ]
    docs[0]["files"] += [
        {"path": f"{root}/x/{i}/{p}", "content": f"#!/bin/sh\n: > {root}/ran/{i}\n", "mode": "0755"}
        for i, p in exe
    ]
    chunk = 150
    for start in range(0, len(path_payloads), chunk):
        part = path_payloads[start : start + chunk]
        docs.append(
            {
                "files": [{"path": f"{root}/p/{i}/{p}", "content": f"{i}\n"} for i, p in part],
                "directories": [{"path": f"{root}/d/{i}/{p}"} for i, p in part],
            }
        )
    keys = [f"{key}-{n}" for n in range(len(docs))]
    try:
        trips = 0
        for n, doc in enumerate(docs):
            folder = tmp_path / f"app{n}"
            folder.mkdir()
            text = yaml.safe_dump(doc, allow_unicode=True, width=10**6)
            (folder / "vmapp.yaml").write_text(text)
            result = engine.sync(vm, folder, keys[n], params=params, lock_wait=60)
            assert result.error is None, result.error
            assert result.sync == "Synced", [i.message for i in result.issues][:3]
            trips += result.round_trips
        expect = {
            "root": root,
            "canary": canary,
            "files": [f"{root}/p/{i}/{p}" for i, p in path_payloads]
            + [f"{root}/x/{i}/{p}" for i, p in exe],
            "contents": [f"{i}\n" for i, _ in path_payloads]
            + [f"#!/bin/sh\n: > {root}/ran/{i}\n" for i, _ in exe],
            "dirs": [f"{root}/d/{i}/{p}" for i, p in path_payloads],
            "args": args,
        }
        out = json.loads(
            bed.vm_out(vm, "python3 -c " + _sh_quote(CHECK), input=json.dumps(expect).encode())
        )
        wanted_params = "".join(f"{len(p)}:{p}\n" for p in all_payloads)
        argv_wrong = [a for a, got in zip(args, out["argv"], strict=True) if got != a]
        health_wrong = [a for a, got in zip(args, out["health"], strict=True) if got != a]
        ran = sorted(out["ran"], key=int)
        canaries = int(out["canary"]) + int(Path(canary).exists())
        values = len(path_payloads) * 2 + len(args) * 2 + len(all_payloads) + len(exe)
        wrong = (
            len(out["missing"])
            + len(out["wrong"])
            + len(out["extra"])
            + len(argv_wrong)
            + len(health_wrong)
            + int(out["params"] != wanted_params)
            + (len(exe) - len(ran))
        )
        print(
            f"\n{len(all_payloads)} payloads: {len(path_payloads)} as file and directory paths, "
            f"{len(args)} as command and health-check arguments, {len(exe)} as argv[0], "
            f"{len(all_payloads)} as template parameters; {len(docs)} syncs, {trips} round trips"
        )
        figures.at_least(AREA, "payloads sent to a VM", len(all_payloads), 500)
        figures.count(AREA, "canary commands run (VM and operator host)", canaries)
        figures.record(
            AREA,
            "values that arrived other than exactly (paths, argv, params)",
            f"{wrong} of {values}",
            "== 0",
            wrong == 0,
        )
        assert canaries == 0
        assert not out["missing"] and not out["wrong"] and not out["extra"], (
            out["missing"][:3],
            out["wrong"][:3],
            out["extra"][:3],
        )
        assert not argv_wrong and not health_wrong, (argv_wrong[:3], health_wrong[:3])
        assert out["params"] == wanted_params
        assert len(ran) == len(exe)
    finally:
        bed.vm_sh(vm, f"rm -rf {root} {canary} /var/lib/vmgitops/{key}-*", check=False)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
