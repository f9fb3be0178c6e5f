"""Limits found by the chaos tests, kept as tests so that they stay lifted.

An app's observe and apply commands used to carry every managed path as an argv item,
and SSH hands the remote login shell ONE command string (`bash -c STRING`): Linux refuses
a single argument above MAX_ARG_STRLEN (128 KiB) with E2BIG, so an app of about 1,200
files (fewer, with long paths) could never be observed: ObserveFailed "Argument list too
long", retried forever (issue 8). The paths and ops now travel on stdin; the command
strings have the same size for any app.
"""

from __future__ import annotations

import shlex
import time
import uuid
from pathlib import Path

import pytest
import yaml

from chaos import bed, figures
from security import engine
from testbed import VM
from vmgitops.engine import observe_request
from vmgitops.executor.ops import compile_steps
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.render import render
from vmgitops.plan.steps import WriteFile

pytestmark = pytest.mark.integration

MAX_ARG_STRLEN = 128 * 1024
FILES = bed.scale(1500, 5000)


def command_sizes(folder: Path, vm: VM, key: str) -> tuple[int, int]:
    """The observe and (first) apply command strings of the app in `folder`, in bytes."""
    desired = render(load_app(folder), {}, TargetInfo(vm.name, vm.address, {}), {}, "rev1")
    observe = len(shlex.join(observe_request(desired, key, {}).argv()))
    steps = [WriteFile(f.path, f.content, f.sha256) for f in desired.files]
    batch = compile_steps(steps, state_dir=f"/var/lib/vmgitops/{key}")
    argv = batch.argv(
        state_root="/var/lib/vmgitops",
        state_dir=f"/var/lib/vmgitops/{key}",
        generation=1,
        revision="rev1",
        expected_serial=0,
        lock_wait=30,
    )
    return observe, len(shlex.join(argv))


def test_an_app_of_thousands_of_files_syncs(chaos_vms: list[VM], tmp_path: Path) -> None:
    vm = chaos_vms[-3]
    run = uuid.uuid4().hex[:8]
    root = f"/etc/vmgt-limit-{run}"
    key = f"security_limit-{run}"
    doc = {"files": [{"path": f"{root}/f{i:04d}.conf", "content": f"{i}\n"} for i in range(FILES)]}
    (tmp_path / "vmapp.yaml").write_text(yaml.safe_dump(doc))
    small = tmp_path / "small"
    small.mkdir()
    (small / "vmapp.yaml").write_text(yaml.safe_dump({"files": doc["files"][:1]}))
    sizes = command_sizes(tmp_path, vm, key)
    # The command strings do not grow with the app: what grows goes on stdin.
    assert sizes == command_sizes(small, vm, key)
    assert max(sizes) < MAX_ARG_STRLEN // 4
    figures.record(
        "limits",
        f"largest SSH command string, app of {FILES} files (bytes)",
        max(sizes),
        f"< {MAX_ARG_STRLEN} and the same for 1 file",
        True,
    )
    try:
        started = time.monotonic()
        result = engine.sync(vm, tmp_path, key)
        seconds = time.monotonic() - started
        assert result.error is None, result.error
        assert result.sync == "Synced" and len(result.steps) >= FILES
        listing = bed.vm_sh(vm, f"ls {root} | wc -l; cat {root}/f{FILES - 1:04d}.conf")
        assert listing.stdout.split() == [str(FILES).encode(), str(FILES - 1).encode()]
        again = engine.sync(vm, tmp_path, key)
        assert again.error is None and again.sync == "Synced" and not again.steps
        assert again.round_trips == 1
        figures.record(
            "limits", f"first sync of an app of {FILES} files (s)", seconds, "informative", True
        )
        figures.record(
            "limits",
            f"no-change sync of an app of {FILES} files (s)",
            again.seconds,
            "informative",
            True,
        )
    finally:
        bed.vm_sh(vm, f"rm -rf {root} /var/lib/vmgitops/{key}", check=False)
