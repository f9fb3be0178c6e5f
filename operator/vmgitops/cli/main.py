"""The `vmgitops` command (also installed as `kubectl-vmgitops`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vmgitops.cli import (
    cmd_approve,
    cmd_diff,
    cmd_import,
    cmd_promote,
    cmd_render,
    cmd_resolve,
    cmd_rollback,
    cmd_run,
    cmd_status,
    cmd_sync,
)

Command = Callable[[argparse.Namespace], int]

#: Each module registers its sub-parser with `register(subparsers)`.
COMMANDS = (
    cmd_run,
    cmd_status,
    cmd_diff,
    cmd_sync,
    cmd_rollback,
    cmd_resolve,
    cmd_promote,
    cmd_approve,
    cmd_import,
    cmd_render,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmgitops",
        description="GitOps for plain virtual machines: the operator and its command line.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


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
