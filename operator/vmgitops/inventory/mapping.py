"""Ansible inventory -> VirtualMachineTarget manifests, and a report of what did not map.

Nothing is dropped silently: every variable that has no VirtualMachineTarget field, every
host that cannot become a target and every host key that cannot be pinned is a
`Finding`. A finding names the host and the variable, never a variable's value (so a
password in the inventory never reaches the terminal or a log).

What maps:

| Ansible | VirtualMachineTarget |
|---|---|
| inventory host name | `metadata.name` (DNS-1123); annotation `HOSTNAME_ANNOTATION` |
| `ansible_host` (`ansible_ssh_host`), else the host name | `spec.address` |
| `ansible_port` (`ansible_ssh_port`, `host:port`) | `spec.port` |
| `ansible_user` (`ansible_ssh_user`) | `spec.user` |
| `ansible_become` true, `ansible_become_user`, method sudo | `spec.become` |
| ProxyJump / `ssh -W` ProxyCommand to a host of the inventory | `spec.bastion.targetRef` |
| groups (with parents) | labels `vmgitops.io/group-<group>: "true"` |
| `--label-vars` variables holding simple strings | labels `<var>: <value>` |
| known_hosts keys for the address and port | `spec.hostKey.publicKeys` |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from vmgitops.api.meta import API_VERSION, TARGET
from vmgitops.api.target import HostKeyPolicy, VirtualMachineTarget
from vmgitops.inventory.known_hosts import KnownHosts
from vmgitops.inventory.model import (
    GROUP_PRIORITY_VAR,
    Host,
    Inventory,
    Location,
    VarValue,
)
from vmgitops.inventory.names import (
    GROUP_LABEL_PREFIX,
    HOSTNAME_ANNOTATION,
    UNIX_USER,
    ansible_bool,
    ansible_port,
    group_label_key,
    is_secret_name,
    target_name,
    valid_label_value,
)
from vmgitops.inventory.sshargs import Jump, parse_ssh_args

ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
SSH_ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")
BECOME, BECOME_USER, BECOME_METHOD = (
    "ansible_become",
    "ansible_become_user",
    "ansible_become_method",
)
CONNECTION = "ansible_connection"
SSH_CONNECTIONS = frozenset(
    {
        "ssh",
        "smart",
        "paramiko",
        "paramiko_ssh",
        "ansible.builtin.ssh",
        "ansible.legacy.ssh",
        "ansible.builtin.paramiko_ssh",
    }
)
STRUCTURE_VARS = frozenset({GROUP_PRIORITY_VAR})
"""Variables that shape the inventory itself and are consumed by reading it."""

_LOGIN_CREDENTIALS = "the login credentials come from the Secret named by --secret"
_SUDO_CREDENTIALS = (
    "not copied: put the sudo password in a Secret and set spec.become.passwordSecretRef, "
    "or give the login user passwordless sudo"
)
_IGNORED_REASONS: dict[str, str] = {
    "ansible_password": _LOGIN_CREDENTIALS,
    "ansible_ssh_pass": _LOGIN_CREDENTIALS,
    "ansible_ssh_password": _LOGIN_CREDENTIALS,
    "ansible_become_password": _SUDO_CREDENTIALS,
    "ansible_become_pass": _SUDO_CREDENTIALS,
    "ansible_sudo_pass": _SUDO_CREDENTIALS,
    "ansible_sudo_password": _SUDO_CREDENTIALS,
    "ansible_ssh_private_key_file": (
        "the private key comes from the Secret named by --secret (store the key itself there)"
    ),
    "ansible_private_key_file": (
        "the private key comes from the Secret named by --secret (store the key itself there)"
    ),
    "ansible_host_key_checking": (
        "vmgitops always verifies host keys (see --host-key-policy and --known-hosts)"
    ),
    "ansible_ssh_host_key_checking": (
        "vmgitops always verifies host keys (see --host-key-policy and --known-hosts)"
    ),
    "ansible_python_interpreter": "vmgitops runs no Python on the VM",
}


class Severity(StrEnum):
    """How bad a finding is. Any finding makes the import incomplete (exit code 3)."""

    ERROR = "error"
    """The host (or an object) was not imported."""
    WARNING = "warning"
    """The host was imported, but something it asks for is not in the target."""
    IGNORED = "ignored"
    """A variable that has no VirtualMachineTarget field."""


@dataclass(frozen=True)
class Finding:
    """One thing that did not map. `message` never holds a variable's value."""

    severity: Severity
    message: str
    host: str | None = None
    variable: str | None = None
    origin: str | None = None
    """Where the variable was set: `from group NAME` or `host variable`."""
    location: Location | None = None
    secret: bool = False
    """The variable's name suggests a secret (its value is never shown anyway)."""


@dataclass(frozen=True)
class ImportOptions:
    """What the command line decides; see `vmgitops import ansible-inventory --help`."""

    secret: str
    namespace: str | None = None
    host_key_policy: HostKeyPolicy = HostKeyPolicy.PINNED
    known_hosts: KnownHosts | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    label_vars: tuple[str, ...] = ()
    default_user: str | None = None
    short_names: bool = False


@dataclass
class ImportResult:
    """The manifests that mapped and what did not."""

    targets: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Plain information (counts, policies chosen); does not make the import incomplete."""

    @property
    def complete(self) -> bool:
        return not self.findings


@dataclass
class _Draft:
    host: Host
    name: str
    address: str
    port: int
    user: str
    vars: dict[str, VarValue]
    labels: dict[str, str] = field(default_factory=dict)
    become: dict[str, str] | None = None
    jumps: list[tuple[str, Jump]] = field(default_factory=list)
    bastion: str | None = None
    host_key: dict[str, Any] = field(default_factory=dict)


def _origin(value: VarValue) -> str:
    return "host variable" if value.group is None else f"from group {value.group}"


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class _Mapper:
    def __init__(self, inv: Inventory, options: ImportOptions) -> None:
        self.inv = inv
        self.options = options
        self.result = ImportResult()
        self.group_keys = self._group_keys()

    def finding(
        self,
        severity: Severity,
        message: str,
        host: Host | None = None,
        variable: str | None = None,
        value: VarValue | None = None,
        location: Location | None = None,
    ) -> None:
        self.result.findings.append(
            Finding(
                severity,
                message,
                host=host.name if host else None,
                variable=variable,
                origin=_origin(value) if value is not None else None,
                location=location or (host.location if host else None),
                secret=variable is not None and is_secret_name(variable),
            )
        )

    def _group_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        owners: dict[str, str] = {}
        for name in self.inv.groups:
            key = group_label_key(name)
            if key is None:
                self.finding(
                    Severity.WARNING,
                    f"group '{name}' cannot be written as a label key "
                    f"({GROUP_LABEL_PREFIX}<group>, at most 63 characters after the '/'); "
                    "its hosts get no label for it",
                    location=self.inv.groups[name].location,
                )
                continue
            if key in owners:
                self.finding(
                    Severity.WARNING,
                    f"groups '{owners[key]}' and '{name}' both become the label {key}; "
                    "hosts of either carry it",
                    location=self.inv.groups[name].location,
                )
            owners.setdefault(key, name)
            keys[name] = key
        return keys

    # -- one host -------------------------------------------------------------------

    def draft(self, host: Host) -> _Draft | None:
        hv = self.inv.effective_vars(host)
        consumed: set[str] = set(STRUCTURE_VARS)
        ok = True

        conn = hv.get(CONNECTION)
        consumed.add(CONNECTION)
        if conn is not None and str(conn.value) not in SSH_CONNECTIONS:
            self.finding(
                Severity.ERROR,
                f"connection '{conn.value}' is not SSH; vmgitops reaches VMs over SSH only, "
                "so this host is not imported",
                host,
                CONNECTION,
                conn,
            )
            return None

        name = target_name(host.name, short=self.options.short_names)
        if not name:
            self.finding(
                Severity.ERROR,
                "no Kubernetes name can be made from this host name (it has no letters or "
                "digits); rename the host",
                host,
            )
            ok = False

        address = self._pick(host, hv, ADDRESS_VARS, consumed)
        address_text = host.name if address is None else str(address.value)
        if address is not None and (_templated(address.value) or not address_text.strip()):
            self.finding(
                Severity.ERROR,
                "the address is a Jinja2 template or empty, which only Ansible can resolve; "
                "set a literal ansible_host",
                host,
                "ansible_host",
                address,
            )
            ok = False

        port = 22
        port_value = self._pick(host, hv, PORT_VARS, consumed)
        if port_value is not None:
            parsed = ansible_port(port_value.value)
            if parsed is None:
                self.finding(
                    Severity.ERROR,
                    "the port is not a number from 1 to 65535",
                    host,
                    "ansible_port",
                    port_value,
                )
                ok = False
            else:
                port = parsed

        user_value = self._pick(host, hv, USER_VARS, consumed)
        if user_value is not None:
            user = str(user_value.value)
            if _templated(user_value.value) or not UNIX_USER.match(user):
                self.finding(
                    Severity.ERROR,
                    "the user is not a plain Unix user name (a Jinja2 template?)",
                    host,
                    "ansible_user",
                    user_value,
                )
                ok = False
        elif self.options.default_user is not None:
            user = self.options.default_user
        else:
            user = "root"
            self.finding(
                Severity.WARNING,
                "no ansible_user: the target logs in as root (say so with --default-user root, "
                "or set ansible_user)",
                host,
                "ansible_user",
            )
        if not ok:
            return None

        draft = _Draft(host, name, address_text.strip(), port, user, hv)
        draft.become = self._become(host, hv, consumed)
        draft.jumps = self._ssh_args(host, hv, consumed)
        draft.labels = self._labels(host, hv, consumed)
        self._ignored(host, hv, consumed)
        return draft

    @staticmethod
    def _pick(
        host: Host, hv: dict[str, VarValue], names: tuple[str, ...], consumed: set[str]
    ) -> VarValue | None:
        consumed.update(names)
        for n in names:
            if n in hv:
                return hv[n]
        return None

    def _become(
        self, host: Host, hv: dict[str, VarValue], consumed: set[str]
    ) -> dict[str, str] | None:
        flag = hv.get(BECOME)
        if flag is None:
            return None
        consumed.add(BECOME)
        on = ansible_bool(flag.value)
        if on is None:
            self.finding(
                Severity.WARNING,
                "ansible_become is not a boolean (true/false, yes/no); spec.become not set",
                host,
                BECOME,
                flag,
            )
            return None
        if not on:
            return None
        consumed.update((BECOME_USER, BECOME_METHOD))
        method = hv.get(BECOME_METHOD)
        if method is not None and str(method.value) != "sudo":
            self.finding(
                Severity.WARNING,
                f"become method '{method.value}' is not supported (only sudo); "
                "spec.become not set, so commands run as the login user",
                host,
                BECOME_METHOD,
                method,
            )
            return None
        become_user = hv.get(BECOME_USER)
        user = "root" if become_user is None else str(become_user.value)
        if become_user is not None and (_templated(become_user.value) or not UNIX_USER.match(user)):
            self.finding(
                Severity.WARNING,
                "ansible_become_user is not a plain Unix user name; spec.become not set",
                host,
                BECOME_USER,
                become_user,
            )
            return None
        return {"method": "sudo", "user": user}

    def _ssh_args(
        self, host: Host, hv: dict[str, VarValue], consumed: set[str]
    ) -> list[tuple[str, Jump]]:
        jumps: list[tuple[str, Jump]] = []
        for var in SSH_ARGS_VARS:
            value = hv.get(var)
            if value is None:
                continue
            consumed.add(var)
            if not isinstance(value.value, str):
                self.finding(
                    Severity.WARNING, "not a string of ssh arguments; ignored", host, var, value
                )
                continue
            args = parse_ssh_args(value.value)
            for option in args.host_key_options:
                self.finding(
                    Severity.WARNING,
                    f"ssh option {option} is not used: vmgitops always verifies host keys "
                    "(see --host-key-policy and --known-hosts)",
                    host,
                    var,
                    value,
                )
            for option in args.unsupported:
                self.finding(
                    Severity.WARNING,
                    f"ssh option {option} is not supported; it is not in the target",
                    host,
                    var,
                    value,
                )
            if args.jump is not None:
                jumps.append((var, args.jump))
        return jumps

    def _labels(self, host: Host, hv: dict[str, VarValue], consumed: set[str]) -> dict[str, str]:
        labels = {
            self.group_keys[g]: "true" for g in self.inv.group_names(host) if g in self.group_keys
        }
        for var in self.options.label_vars:
            value = hv.get(var)
            if value is None:
                continue
            consumed.add(var)
            if is_secret_name(var):
                self.finding(
                    Severity.WARNING,
                    "its name suggests a secret, so it is never made a label",
                    host,
                    var,
                    value,
                )
                continue
            raw = value.value
            if isinstance(raw, bool) or not isinstance(raw, str | int) or _templated(raw):
                self.finding(
                    Severity.WARNING,
                    "not a simple string, so no label is made from it",
                    host,
                    var,
                    value,
                )
                continue
            text = str(raw)
            if not valid_label_value(text):
                self.finding(
                    Severity.WARNING,
                    f"value '{text}' is not a valid label value (at most 63 letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit); no label",
                    host,
                    var,
                    value,
                )
                continue
            labels[var] = text
        labels.update(self.options.labels)
        return labels

    def _ignored(self, host: Host, hv: dict[str, VarValue], consumed: set[str]) -> None:
        for var, value in hv.items():
            if var in consumed:
                continue
            if var in _IGNORED_REASONS:
                reason = _IGNORED_REASONS[var]
            elif var in (BECOME_USER, BECOME_METHOD):
                reason = "ansible_become is not true for this host"
            elif var.startswith("ansible_"):
                reason = "no VirtualMachineTarget field for it"
            else:
                reason = "a playbook variable; --label-vars NAME makes a label of a simple string"
            self.finding(Severity.IGNORED, reason, host, var, value)

    # -- the whole inventory --------------------------------------------------------------

    def run(self) -> ImportResult:
        for warning in self.inv.warnings:
            self.finding(Severity.WARNING, warning.message, location=warning.location)
        if not self.inv.hosts:
            self.finding(
                Severity.WARNING,
                "the inventory has no hosts, so there is nothing to import",
                location=Location(self.inv.source),
            )
        drafts = [d for d in (self.draft(h) for h in self.inv) if d is not None]
        drafts = self._unique(drafts)
        self._bastions(drafts)
        self._host_keys(drafts)
        for d in drafts:
            obj = self._manifest(d)
            if obj is not None:
                self.result.targets.append(obj)
        return self.result

    def _unique(self, drafts: list[_Draft]) -> list[_Draft]:
        by_name: dict[str, list[_Draft]] = {}
        for d in drafts:
            by_name.setdefault(d.name, []).append(d)
        for name, same in by_name.items():
            if len(same) < 2:
                continue
            hosts = ", ".join(f"'{d.host.name}'" for d in same)
            for d in same:
                self.finding(
                    Severity.ERROR,
                    f"hosts {hosts} all become the name '{name}'; none of them is imported "
                    "(rename hosts in the inventory"
                    + ("" if not self.options.short_names else ", or drop --short-names")
                    + ")",
                    d.host,
                )
        return [d for d in drafts if len(by_name[d.name]) == 1]

    def _bastions(self, drafts: list[_Draft]) -> None:
        by_address: dict[tuple[str, int], _Draft] = {}
        by_host: dict[str, _Draft] = {}
        for d in drafts:
            by_address.setdefault((d.address.lower(), d.port), d)
            by_host.setdefault(d.host.name.lower(), d)
        for d in drafts:
            resolved: dict[str, _Draft] = {}
            for var, jump in d.jumps:
                bastion = self._resolve(d, var, jump, by_address, by_host)
                if bastion is not None:
                    resolved.setdefault(bastion.name, bastion)
            if len(resolved) > 1:
                self.finding(
                    Severity.WARNING,
                    f"the ssh arguments name different jump hosts ({', '.join(resolved)}); "
                    "only one bastion is supported, so none is set",
                    d.host,
                )
            elif resolved:
                d.bastion = next(iter(resolved))

    def _inventory_host(self, key: str) -> str | None:
        """The inventory host named or addressed as `key`, imported or not."""
        for host in self.inv:
            address = self.inv.effective_vars(host).get("ansible_host")
            if key in (host.name.lower(), str(address.value).lower() if address else None):
                return host.name
        return None

    def _resolve(
        self,
        d: _Draft,
        var: str,
        jump: Jump,
        by_address: dict[tuple[str, int], _Draft],
        by_host: dict[str, _Draft],
    ) -> _Draft | None:
        """The target a jump host names: by address and port, else by inventory name."""
        value = d.vars.get(var)
        key = jump.host.lower()
        bastion = by_address.get((key, jump.port or 22))
        named = by_host.get(key)
        if bastion is None and named is not None and jump.port in (None, named.port):
            bastion = named
        if bastion is None:
            skipped = self._inventory_host(key)
            self.finding(
                Severity.WARNING,
                f"jump host {jump} is the inventory host '{skipped}', which is not imported "
                "(see the error about it), so spec.bastion is not set"
                if skipped
                else f"jump host {jump} is not a host of this inventory, so spec.bastion is "
                "not set (add the bastion to the inventory to have it as a target)",
                d.host,
                var,
                value,
            )
            return None
        if bastion is d:
            self.finding(
                Severity.WARNING,
                f"jump host {jump} is this host itself; no bastion set (set the variable "
                "to '' on the bastion, as Ansible would otherwise loop through it)",
                d.host,
                var,
                value,
            )
            return None
        if jump.user and jump.user != bastion.user:
            self.finding(
                Severity.WARNING,
                f"the jump logs in to the bastion as '{jump.user}', but its target "
                f"'{bastion.name}' logs in as '{bastion.user}', which the operator uses",
                d.host,
                var,
                value,
            )
        return bastion

    def _host_keys(self, drafts: list[_Draft]) -> None:
        kh = self.options.known_hosts
        pinned = tofu = 0
        for d in drafts:
            keys: list[str] = []
            if kh is not None:
                found = kh.lookup([d.address, d.host.name], d.port)
                keys = found.keys
                for revoked in found.revoked:
                    self.finding(
                        Severity.WARNING,
                        f"a {revoked.split()[0]} key for this host is marked @revoked in "
                        f"{kh.source}; it is not pinned",
                        d.host,
                    )
                for ca in found.cert_authorities:
                    self.finding(
                        Severity.WARNING,
                        f"the @cert-authority line {ca} matches this host but is not used; set "
                        "spec.hostKey.policy CertificateAuthority and caPublicKeys yourself",
                        d.host,
                    )
            if keys:
                d.host_key = {"policy": HostKeyPolicy.PINNED.value, "publicKeys": keys}
                pinned += 1
            elif self.options.host_key_policy is HostKeyPolicy.TRUST_ON_FIRST_USE:
                d.host_key = {"policy": HostKeyPolicy.TRUST_ON_FIRST_USE.value}
                tofu += 1
            else:
                d.host_key = {"policy": HostKeyPolicy.PINNED.value}
                where = (
                    f"{kh.source} has no key for its address and port"
                    if kh is not None
                    else "no --known-hosts given"
                )
                self.finding(
                    Severity.WARNING,
                    f"no host key to pin ({where}): the target reports HostKeyNotConfigured "
                    "until spec.hostKey.publicKeys is set; pass --known-hosts FILE (e.g. "
                    "ssh-keyscan output) or --host-key-policy TrustOnFirstUse",
                    d.host,
                )
        if kh is not None:
            for loc, problem in kh.problems:
                self.finding(Severity.WARNING, problem, location=loc)
            unmatched = kh.unmatched_hashed()
            if unmatched:
                self.result.notes.append(
                    f"{kh.source}: {unmatched} hashed entr{'y' if unmatched == 1 else 'ies'} "
                    "matched no host of the inventory (hashed names are matched by address "
                    "and port, and by inventory host name)"
                )
        if pinned and tofu:
            self.result.notes.append(
                f"{pinned} target(s) pinned to keys from known_hosts; {tofu} trust their "
                "first key (TrustOnFirstUse)"
            )

    def _manifest(self, d: _Draft) -> dict[str, Any] | None:
        metadata: dict[str, Any] = {"name": d.name}
        if self.options.namespace:
            metadata["namespace"] = self.options.namespace
        if d.labels:
            metadata["labels"] = dict(sorted(d.labels.items()))
        metadata["annotations"] = {HOSTNAME_ANNOTATION: d.host.name}
        spec: dict[str, Any] = {
            "address": d.address,
            "port": d.port,
            "user": d.user,
            "credentials": {"secretRef": {"name": self.options.secret}},
            "hostKey": d.host_key,
        }
        if d.become is not None:
            spec["become"] = d.become
        if d.bastion is not None:
            spec["bastion"] = {"targetRef": {"name": d.bastion}}
        obj = {"apiVersion": API_VERSION, "kind": TARGET.kind, "metadata": metadata, "spec": spec}
        try:
            VirtualMachineTarget.model_validate(obj)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            self.finding(
                Severity.ERROR,
                f"the target would not be valid ({problems}); not imported",
                d.host,
            )
            return None
        return obj


def map_inventory(inv: Inventory, options: ImportOptions) -> ImportResult:
    """The VirtualMachineTarget manifests for an inventory, and what did not map."""
    return _Mapper(inv, options).run()
