"""The `vmgitops` command (also installed as `kubectl-vmgitops`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vmgitops.cli import cmd_run

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmgitops",
        description="GitOps for plain virtual machines: the operator and its command line.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd_run.register(sub)
    for register in _optional_commands():
        register(sub)
    return parser


def _optional_commands() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Commands whose modules exist; each registers its own sub-parser."""
    import importlib

    found = []
    for name in ("cmd_render", "cmd_import", "cmd_status", "cmd_diff", "cmd_sync",
                 "cmd_rollback", "cmd_promote", "cmd_approve"):
        try:
            module = importlib.import_module(f"vmgitops.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"vmgitops.cli.{name}":
                raise
            continue
        found.append(module.register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
