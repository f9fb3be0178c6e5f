"""Limits found by the chaos tests, kept as tests that will pass once they are lifted.

An app's observe and apply commands carry every managed path as an argv item, and SSH
hands the remote login shell ONE command string (`bash -c STRING`): Linux refuses a single
argument above MAX_ARG_STRLEN (128 KiB) with E2BIG, so an app of about 1,000 files (or
fewer, with long paths) can never be observed: ObserveFailed "Argument list too long",
retried forever. See the report of issue 8.
"""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

import pytest
import yaml

from chaos import bed, figures
from security import engine
from testbed import VM
from vmgitops.engine import observe_request
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.render import render

pytestmark = pytest.mark.integration

MAX_ARG_STRLEN = 128 * 1024


@pytest.mark.xfail(
    strict=True,
    reason="observe/apply argv travels as one SSH command string, capped at 128 KiB",
)
def test_an_app_of_1500_files_syncs(chaos_vms: list[VM], tmp_path: Path) -> None:
    vm = chaos_vms[-3]
    run = uuid.uuid4().hex[:8]
    root = f"/etc/vmgt-limit-{run}"
    doc = {"files": [{"path": f"{root}/f{i:04d}.conf", "content": f"{i}\n"} for i in range(1500)]}
    (tmp_path / "vmapp.yaml").write_text(yaml.safe_dump(doc))
    desired = render(load_app(tmp_path), {}, TargetInfo(vm.name, vm.address, {}), {}, "rev1")
    size = len(shlex.join(observe_request(desired, f"limit_{run}", {}).argv()))
    per_file = size / 1500
    figures.record(
        "limits",
        "files of ~35-char paths per app before the 128 KiB SSH command limit",
        int(MAX_ARG_STRLEN / per_file),
        "informative (known limit)",
        True,
    )
    try:
        result = engine.sync(vm, tmp_path, f"security_limit-{run}")
        assert result.error is None, result.error
    finally:
        bed.vm_sh(vm, f"rm -rf {root} /var/lib/vmgitops/security_limit-{run}", check=False)
