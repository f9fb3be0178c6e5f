"""`vmgitops render FOLDER [--target-json F] [--param k=v ...]`: validate and render locally.

No cluster and no VM: the folder's vmapp.yaml is validated, every file it names is read
(with the same path safety as the operator), and the desired state for one target is
printed as YAML. Sensitive files never show their content.

Exit codes: 0 rendered; 1 the manifest is invalid (one line on stderr: reason, file,
field, why); 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vmgitops.manifest.render_cli import run_render

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "render",
        help="validate and render a vmapp.yaml folder locally (no cluster, no VM)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="the folder holding vmapp.yaml")
    p.add_argument(
        "--target-json",
        type=Path,
        default=None,
        metavar="FILE",
        help='the target: {"name", "address", "labels", "facts"} or a VirtualMachineTarget '
        "as `kubectl get vmt NAME -o json` prints it",
    )
    p.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter (params.KEY), repeatable",
    )
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, str]:
    """KEY=VALUE items -> a dict; raises ValueError naming the bad item."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {item!r}: write KEY=VALUE")
        params[key.strip()] = value
    return params


def run(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args.param)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    code, text = run_render(args.folder, params, args.target_json)
    (sys.stdout if code == EXIT_OK else sys.stderr).write(text)
    return EXIT_OK if code == 0 else EXIT_INVALID
