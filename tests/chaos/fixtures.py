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
    """vm41..vm60 (CHAOS_VMS of them), booted once and left running like the others."""
    return bed.boot(bed.chaos_vm_names())


@pytest.fixture
def chaos_namespace(crds: None) -> Iterator[str]:
    """A namespace no session operator watches (only the test's own operator acts)."""
    name = bed.create_namespace()
    yield name
    bed.clean_namespace(name)
