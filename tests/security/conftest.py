"""Fixtures of the security tests: those of the chaos tests (see tests/chaos/bed.py)."""

from __future__ import annotations

from typing import Any

from chaos.fixtures import (
    chaos_namespace,
    chaos_vms,
    shared_namespace,
    shared_operator,
    terminal_summary,
)

__all__ = ["chaos_namespace", "chaos_vms", "shared_namespace", "shared_operator"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminal_summary(terminalreporter)
