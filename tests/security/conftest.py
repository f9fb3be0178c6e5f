"""Fixtures of the security tests: those of the chaos tests (see tests/chaos/bed.py)."""

from __future__ import annotations

from typing import Any

from chaos.fixtures import chaos_namespace, chaos_vms, terminal_summary

__all__ = ["chaos_namespace", "chaos_vms"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminal_summary(terminalreporter)
