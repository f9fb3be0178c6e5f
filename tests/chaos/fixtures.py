"""Fixtures shared by tests/chaos and tests/security (imported by both conftests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chaos import bed, figures
from testbed import VM


def terminal_summary(terminalreporter: Any) -> None:
    figures.print_summary(terminalreporter)


@pytest.fixture(scope="session")
def chaos_vms(fleet: list[VM]) -> list[VM]:
    """vm61..vm80 (CHAOS_VMS of them), booted once and left running like the others."""
    return bed.boot(bed.chaos_vm_names())


@pytest.fixture
def chaos_namespace(crds: None) -> Iterator[str]:
    """A namespace only the test's own operator watches (c<session>-d-*)."""
    name = bed.create_namespace(kind=bed.DEDICATED)
    yield name
    bed.clean_namespace(name)


_shared: bed.Operator | None = None
_shared_users = 0


@pytest.fixture(scope="session")
def shared_operator(crds: None) -> Iterator[bed.Operator]:
    """One `vmgitops run --verbose` (asyncssh at DEBUG too) for every test that never
    kills its operator: it watches c<session>-s-*, the shared namespaces. Tests look at
    their own slice of its log (`op.mark()`, `op.log(since=...)`).

    tests/chaos and tests/security each import this fixture into their conftest, which
    makes two session fixtures: both hand out the one process held here."""
    global _shared, _shared_users
    if _shared is None or not _shared.alive():
        _shared = bed.Operator(
            [f"{bed.NAMESPACE_PREFIX}{bed.SHARED}*"],
            label="shared",
            env={"VMGITOPS_DEBUG_SSH": "1"},
        )
        _shared.start()
        _shared.wait_ready()
    _shared_users += 1
    op = _shared
    yield op
    _shared_users -= 1
    if _shared_users == 0:
        op.stop()
        print(f"\nshared operator log: {op.log_path}")


@pytest.fixture
def shared_namespace(shared_operator: bed.Operator) -> Iterator[str]:
    """A namespace the shared operator watches (c<session>-s-*)."""
    name = bed.create_namespace(kind=bed.SHARED)
    yield name
    bed.clean_namespace(name)
