"""`vmgitops import ansible-inventory FILE`: VirtualMachineTargets from an Ansible inventory.

Prints the manifests (YAML stream, or a JSON List) on standard output, or applies them
with server-side apply; the report of what did not map goes to standard error.

Exit codes: 0 everything mapped; 3 something was reported (what mapped is still printed
or applied); 2 usage or parse error; 1 the apply failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from vmgitops.api.base import DNS_SUBDOMAIN_PATTERN
from vmgitops.api.target import HostKeyPolicy
from vmgitops.inventory.known_hosts import KnownHosts, parse_known_hosts
from vmgitops.inventory.load import load_inventory, parse_inventory
from vmgitops.inventory.mapping import ImportOptions, ImportResult, map_inventory
from vmgitops.inventory.model import Inventory, InventoryError
from vmgitops.inventory.names import (
    UNIX_USER,
    is_secret_name,
    valid_label_key,
    valid_label_value,
)
from vmgitops.inventory.report import render, summary

EXIT_OK, EXIT_APPLY_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
PROG = "vmgitops import ansible-inventory"

EPILOG = """\
what maps:
  host name                       metadata.name (DNS-1123) and the annotation
                                  vmgitops.io/ansible-inventory-hostname
  ansible_host, ansible_port,     spec.address, spec.port, spec.user
  ansible_user (and host:port)
  ansible_become + _become_user   spec.become (sudo only)
  ProxyJump, ssh -W ProxyCommand  spec.bastion.targetRef, when the jump host is a
  (ansible_ssh_*_args)            host of the inventory
  groups, with their parents      labels vmgitops.io/group-<group>: "true"
  --label-vars variables          labels <var>: <value>
  --known-hosts keys              spec.hostKey.publicKeys (policy Pinned)
Every other variable is listed on stderr (never its value), with its hosts.
group_vars/ and host_vars/ beside FILE are read as Ansible reads them.

exit codes: 0 everything mapped, 3 something was reported (what mapped is still
printed or applied), 2 usage or parse error, 1 apply failed.

examples:
  vmgitops import ansible-inventory hosts.ini --secret fleet-ssh \\
      --known-hosts ~/.ssh/known_hosts --label-vars env,region > targets.yaml
  vmgitops import ansible-inventory inventory.yml --secret fleet-ssh -n prod --apply
"""


class UsageError(Exception):
    """A bad option value; the message says what to write instead."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="create VirtualMachineTargets from another tool's inventory",
        description="Create VirtualMachineTargets from another tool's inventory.",
    )
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    a = sources.add_parser(
        "ansible-inventory",
        help="an Ansible inventory file (INI or YAML)",
        description=(
            "Turn an Ansible inventory (INI or YAML, or ansible-inventory --list JSON) into "
            "VirtualMachineTarget manifests."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("file", metavar="FILE", help="the inventory file ('-' reads stdin)")
    a.add_argument(
        "--secret",
        required=True,
        metavar="NAME",
        help="the kubernetes.io/ssh-auth Secret (key ssh-privatekey) every target logs in with",
    )
    a.add_argument("-n", "--namespace", help="namespace of the targets (written in manifests)")
    a.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format")
    a.add_argument(
        "--apply",
        action="store_true",
        help="server-side apply the targets instead of printing them",
    )
    a.add_argument("--kubeconfig", metavar="FILE", help="for --apply; default $KUBECONFIG")
    a.add_argument(
        "--force-conflicts",
        action="store_true",
        help="for --apply: take over fields another field manager owns",
    )
    a.add_argument(
        "--host-key-policy",
        choices=(HostKeyPolicy.PINNED.value, HostKeyPolicy.TRUST_ON_FIRST_USE.value),
        default=HostKeyPolicy.PINNED.value,
        help="for hosts without a key in --known-hosts: Pinned (default; the host is "
        "reported, and its target says HostKeyNotConfigured) or TrustOnFirstUse",
    )
    a.add_argument(
        "--known-hosts",
        metavar="FILE",
        help="OpenSSH known_hosts file whose keys are pinned (hashed entries are matched too)",
    )
    a.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for every target (repeatable)",
    )
    a.add_argument(
        "--label-vars",
        default="",
        metavar="VAR[,VAR...]",
        help="inventory variables that become labels when they hold simple strings "
        "(e.g. env,region)",
    )
    a.add_argument(
        "--default-user",
        metavar="USER",
        help="login user for hosts without ansible_user (default root, with a warning)",
    )
    a.add_argument(
        "--short-names",
        action="store_true",
        help="name targets after the first label of the host name (web01.example.com -> web01)",
    )
    a.add_argument(
        "--format",
        choices=("auto", "ini", "yaml"),
        default="auto",
        help="inventory format (default: from the file name and content)",
    )
    a.add_argument(
        "--no-vars-dirs",
        action="store_true",
        help="do not read group_vars/ and host_vars/ beside the inventory",
    )
    a.add_argument("-v", "--verbose", action="store_true", help="list every host in the report")
    a.set_defaults(func=run)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not valid_label_key(key):
            raise UsageError(
                f"--label {pair!r}: write KEY=VALUE with a Kubernetes label key "
                "(e.g. team=payments or example.com/tier=web)"
            )
        if not valid_label_value(value):
            raise UsageError(
                f"--label {key}: the value is not a label value (at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit)"
            )
        labels[key] = value
    return labels


def _label_vars(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if is_secret_name(name):
            raise UsageError(
                f"--label-vars {name}: its name suggests a secret, and labels are readable by "
                "anyone who can list targets; leave it out"
            )
        if not valid_label_key(name):
            raise UsageError(
                f"--label-vars {name}: not usable as a label key (letters, digits, '-', '_', "
                "'.'; at most 63 characters)"
            )
    return names


def options(args: argparse.Namespace, known_hosts: KnownHosts | None) -> ImportOptions:
    """The mapping options from the command line; UsageError when one is wrong."""
    if not re.match(DNS_SUBDOMAIN_PATTERN, args.secret) or len(args.secret) > 253:
        raise UsageError(
            f"--secret {args.secret!r} is not a Kubernetes object name (lower case letters, "
            "digits, '-' and '.')"
        )
    if args.namespace is not None and not re.match(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", args.namespace
    ):
        raise UsageError(f"-n {args.namespace!r} is not a namespace name")
    if args.default_user is not None and not UNIX_USER.match(args.default_user):
        raise UsageError(f"--default-user {args.default_user!r} is not a Unix user name")
    return ImportOptions(
        secret=args.secret,
        namespace=args.namespace,
        host_key_policy=HostKeyPolicy(args.host_key_policy),
        known_hosts=known_hosts,
        labels=_labels(args.label),
        label_vars=_label_vars(args.label_vars),
        default_user=args.default_user,
        short_names=args.short_names,
    )


def _read_known_hosts(path: str | None) -> KnownHosts | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"--known-hosts {path}: {exc.strerror or exc}") from None
    return parse_known_hosts(text, path)


def _read_inventory(args: argparse.Namespace) -> Inventory:
    if args.file == "-":
        return parse_inventory(sys.stdin.read(), "<stdin>", args.format)
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file (give the path of an inventory file)")
    try:
        return load_inventory(path, args.format, vars_dirs=not args.no_vars_dirs)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None


def _print(result: ImportResult, output: str, out: TextIO) -> None:
    if output == "json":
        json.dump({"apiVersion": "v1", "kind": "List", "items": result.targets}, out, indent=2)
        out.write("\n")
    elif result.targets:
        # libyaml's emitter when PyYAML has it: the pure-Python one takes seconds per 1000.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        yaml.dump_all(result.targets, out, Dumper=dumper, sort_keys=False, default_flow_style=False)


def _apply(args: argparse.Namespace, result: ImportResult) -> int:
    from vmgitops.kube.apply import ApplyError, server_side_apply

    try:
        counts = server_side_apply(
            result.targets,
            namespace=args.namespace,
            kubeconfig=args.kubeconfig,
            force_conflicts=args.force_conflicts,
        )
    except ApplyError as exc:
        for what, outcome in exc.counts.results:
            print(f"{what} {outcome}")
        print(f"{PROG}: apply failed: {exc}", file=sys.stderr)
        return EXIT_APPLY_FAILED
    for what, outcome in counts.results:
        print(f"{what} {outcome}")
    print(
        f"applied {len(counts.results)} target(s): {counts.created} created, "
        f"{counts.updated} updated, {counts.unchanged} unchanged",
        file=sys.stderr,
    )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        known_hosts = _read_known_hosts(args.known_hosts)
        opts = options(args, known_hosts)
        inventory = _read_inventory(args)
    except (UsageError, InventoryError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = map_inventory(inventory, opts)
    for line in render(result, verbose=args.verbose):
        print(line, file=sys.stderr)
    print(summary(result, len(inventory.hosts)), file=sys.stderr)
    if args.apply:
        if result.targets:
            code = _apply(args, result)
            if code != EXIT_OK:
                return code
    else:
        _print(result, args.output, sys.stdout)
    return EXIT_OK if result.complete else EXIT_INCOMPLETE
