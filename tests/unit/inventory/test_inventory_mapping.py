"""Inventory -> VirtualMachineTarget manifests: what maps, what is reported, and that no
secret value ever reaches the report or the manifests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from textwrap import dedent
from typing import Any

import pytest

from vmgitops.api.target import HostKeyPolicy, VirtualMachineTarget
from vmgitops.inventory.known_hosts import parse_known_hosts
from vmgitops.inventory.load import parse_inventory
from vmgitops.inventory.mapping import Finding, ImportOptions, Severity, map_inventory
from vmgitops.inventory.names import (
    HOSTNAME_ANNOTATION,
    ansible_bool,
    target_name,
    valid_label_key,
)
from vmgitops.inventory.report import render, summary


def hostkey(seed: int, keytype: str = "ssh-ed25519") -> str:
    blob = struct.pack(">I", len(keytype)) + keytype.encode() + struct.pack(">I", 32)
    return f"{keytype} {base64.b64encode(blob + bytes([seed]) * 32).decode()}"


def hashed(name: str, salt: bytes = b"salt-of-twenty-bytes") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@dataclass
class Outcome:
    targets: dict[str, dict[str, Any]]
    findings: list[Finding]
    report: list[str]

    def spec(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.targets[name]["spec"]
        return spec

    def labels(self, name: str) -> dict[str, str]:
        labels: dict[str, str] = self.targets[name]["metadata"].get("labels", {})
        return labels

    def about(self, host: str) -> list[tuple[str, str | None, str]]:
        return [(f.severity.value, f.variable, f.message) for f in self.findings if f.host == host]


def run(
    text: str,
    source: str = "hosts.ini",
    *,
    known_hosts: str | None = None,
    **options: Any,
) -> Outcome:
    inv = parse_inventory(dedent(text).lstrip("\n"), source)
    kh = parse_known_hosts(dedent(known_hosts), "known_hosts") if known_hosts else None
    options.setdefault("secret", "fleet-ssh")
    if kh is None and "host_key_policy" not in options:
        options["host_key_policy"] = HostKeyPolicy.TRUST_ON_FIRST_USE
    result = map_inventory(inv, ImportOptions(known_hosts=kh, **options))
    for obj in result.targets:  # every manifest is a valid object of the API
        VirtualMachineTarget.model_validate(obj)
    return Outcome(
        {t["metadata"]["name"]: t for t in result.targets},
        result.findings,
        [*render(result), summary(result, len(inv.hosts))],
    )


# -- a realistic inventory that maps completely ---------------------------------------------------

SHOP_INI = """
    [web]
    web[01:02].shop.example.com
    web03.shop.example.com ansible_host=10.1.0.13 ansible_port=2222

    [db]
    db01.shop.example.com ansible_host=10.1.0.21 ansible_become=yes ansible_become_user=postgres

    [prod:children]
    web
    db

    [prod:vars]
    env=prod
    region=eu-west

    [all:vars]
    ansible_user=deploy
    ansible_connection=ssh
    """

SHOP_YAML = """
    all:
      vars:
        ansible_user: deploy
        ansible_connection: ssh
      children:
        prod:
          vars: {env: prod, region: eu-west}
          children:
            web:
              hosts:
                web[01:02].shop.example.com:
                web03.shop.example.com: {ansible_host: 10.1.0.13, ansible_port: 2222}
            db:
              hosts:
                db01.shop.example.com:
                  ansible_host: 10.1.0.21
                  ansible_become: true
                  ansible_become_user: postgres
    """

SHOP_KNOWN_HOSTS = f"""
    # ssh-keyscan output, one plain, one with a port, one hashed, one by wildcard
    web01.shop.example.com {hostkey(1)}
    [10.1.0.13]:2222 {hostkey(3)}
    {hashed("10.1.0.21")} {hostkey(4)}
    web0?.shop.example.com,!web01.shop.example.com {hostkey(2, "ecdsa-sha2-nistp256")}
    """


@pytest.mark.parametrize(
    ("text", "source"),
    [
        pytest.param(SHOP_INI, "shop.ini", id="ini-inventory-maps-completely"),
        pytest.param(SHOP_YAML, "shop.yml", id="yaml-inventory-maps-the-same"),
    ],
)
def test_realistic_inventory_maps_completely(text: str, source: str) -> None:
    out = run(
        text,
        source,
        known_hosts=SHOP_KNOWN_HOSTS,
        host_key_policy=HostKeyPolicy.PINNED,
        label_vars=("env", "region"),
        labels={"team": "shop"},
        namespace="shop-prod",
    )
    assert out.findings == [], out.report
    assert list(out.targets) == [
        "web01.shop.example.com",
        "web02.shop.example.com",
        "web03.shop.example.com",
        "db01.shop.example.com",
    ]
    web3 = out.targets["web03.shop.example.com"]
    assert web3 == {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {
            "name": "web03.shop.example.com",
            "namespace": "shop-prod",
            "labels": {
                "env": "prod",
                "region": "eu-west",
                "team": "shop",
                "vmgitops.io/group-prod": "true",
                "vmgitops.io/group-web": "true",
            },
            "annotations": {HOSTNAME_ANNOTATION: "web03.shop.example.com"},
        },
        "spec": {
            "address": "10.1.0.13",
            "port": 2222,
            "user": "deploy",
            "credentials": {"secretRef": {"name": "fleet-ssh"}},
            "hostKey": {"policy": "Pinned", "publicKeys": [hostkey(3)]},
        },
    }
    assert out.spec("web01.shop.example.com")["hostKey"]["publicKeys"] == [hostkey(1)]
    assert out.spec("web02.shop.example.com")["hostKey"]["publicKeys"] == [
        hostkey(2, "ecdsa-sha2-nistp256")
    ]
    db = out.spec("db01.shop.example.com")
    assert db["become"] == {"method": "sudo", "user": "postgres"}
    assert db["hostKey"]["publicKeys"] == [hostkey(4)]
    assert out.labels("db01.shop.example.com")["vmgitops.io/group-db"] == "true"
    assert "0 error(s), 0 warning(s), 0 ignored variable(s)" in out.report[-1]


# -- one host at a time: what maps and what is reported -------------------------------------------


@pytest.mark.parametrize(
    ("line", "spec_part", "reported"),
    [
        pytest.param(
            "h ansible_user=u ansible_become=true",
            {"become": {"method": "sudo", "user": "root"}},
            [],
            id="become-true-defaults-to-root",
        ),
        pytest.param(
            "h ansible_user=u ansible_become=True ansible_become_user=app",
            {"become": {"method": "sudo", "user": "app"}},
            [],
            id="become-user-maps",
        ),
        pytest.param(
            "h ansible_user=u ansible_become=no ansible_become_user=app",
            {"become": None},
            [("ignored", "ansible_become_user", "ansible_become is not true for this host")],
            id="become-user-without-become-is-ignored",
        ),
        pytest.param(
            "h ansible_user=u ansible_become=true ansible_become_method=su",
            {"become": None},
            [("warning", "ansible_become_method", "not supported (only sudo)")],
            id="become-method-su-is-not-supported",
        ),
        pytest.param(
            "h ansible_user=u ansible_become=maybe",
            {"become": None},
            [("warning", "ansible_become", "not a boolean")],
            id="become-not-a-boolean",
        ),
        pytest.param(
            "h ansible_ssh_host=10.0.0.9 ansible_ssh_port=2200 ansible_ssh_user=legacy",
            {"address": "10.0.0.9", "port": 2200, "user": "legacy"},
            [],
            id="legacy-ssh-aliases-map",
        ),
        pytest.param(
            "h:2201 ansible_user=u",
            {"port": 2201},
            [],
            id="port-from-host-pattern",
        ),
        pytest.param(
            "h:2201 ansible_user=u ansible_port=2202",
            {"port": 2202},
            [],
            id="explicit-ansible-port-beats-pattern-port",
        ),
        pytest.param(
            "h",
            {"user": "root"},
            [("warning", "ansible_user", "no ansible_user")],
            id="no-user-logs-in-as-root-with-a-warning",
        ),
        pytest.param(
            "h ansible_user=u ansible_python_interpreter=/usr/bin/python3 ntp=pool.ntp.org",
            {"user": "u"},
            [
                ("ignored", "ansible_python_interpreter", "vmgitops runs no Python on the VM"),
                ("ignored", "ntp", "a playbook variable"),
            ],
            id="unmapped-variables-are-listed",
        ),
        pytest.param(
            "h ansible_user=u ansible_ssh_private_key_file=~/.ssh/id_ed25519",
            {},
            [("ignored", "ansible_ssh_private_key_file", "comes from the Secret")],
            id="key-file-points-to-the-secret",
        ),
        pytest.param(
            "h ansible_user=u ansible_host_key_checking=false",
            {},
            [("ignored", "ansible_host_key_checking", "always verifies host keys")],
            id="host-key-checking-off-is-not-honoured",
        ),
        pytest.param(
            "h ansible_user=u ansible_ssh_common_args='-o StrictHostKeyChecking=no -C'",
            {},
            [
                ("warning", "ansible_ssh_common_args", "StrictHostKeyChecking is not used"),
                ("warning", "ansible_ssh_common_args", "ssh option -C is not supported"),
            ],
            id="ssh-args-without-jump-are-reported-by-option-name",
        ),
    ],
)
def test_one_host(
    line: str, spec_part: dict[str, Any], reported: list[tuple[str, str, str]]
) -> None:
    out = run(f"[g]\n{line}\n")
    spec = out.spec("h")
    for key, value in spec_part.items():
        assert spec.get(key) == value, (key, spec)
    got = out.about("h")
    assert len(got) == len(reported), got
    for (severity, variable, words), (g_sev, g_var, g_msg) in zip(reported, got, strict=True):
        assert (g_sev, g_var) == (severity, variable)
        assert words in g_msg


@pytest.mark.parametrize(
    ("line", "variable", "words"),
    [
        pytest.param("h ansible_connection=winrm", "ansible_connection", "not SSH", id="winrm"),
        pytest.param("h ansible_connection=local", "ansible_connection", "not SSH", id="local"),
        pytest.param(
            "h ansible_host='{{ inventory_hostname }}.internal'",
            "ansible_host",
            "Jinja2 template",
            id="templated-address",
        ),
        pytest.param("h ansible_port=ssh", "ansible_port", "not a number", id="port-not-a-number"),
        pytest.param("h ansible_port=0", "ansible_port", "not a number", id="port-zero"),
        pytest.param(
            "h ansible_user='a b'", "ansible_user", "not a plain Unix user", id="bad-user"
        ),
        pytest.param("___", None, "no Kubernetes name", id="no-name-can-be-made"),
    ],
)
def test_hosts_that_cannot_be_targets_are_errors(
    line: str, variable: str | None, words: str
) -> None:
    out = run(f"[g]\n{line}\nok ansible_user=u\n")
    assert list(out.targets) == ["ok"]
    errors = [f for f in out.findings if f.severity is Severity.ERROR]
    assert len(errors) == 1
    assert errors[0].variable == variable
    assert words in errors[0].message
    assert errors[0].location is not None and errors[0].location.line == 2


# -- bastions -------------------------------------------------------------------------------------

BASTION_INI = """
    jump ansible_host=203.0.113.10 ansible_user=ops ansible_ssh_common_args=''

    [app]
    app1 ansible_host=10.0.0.11
    app2 ansible_host=10.0.0.12 ansible_ssh_common_args='-o ProxyCommand="{SSH_W} ops@203.0.113.10"'
    app3 ansible_host=10.0.0.13 ansible_ssh_extra_args='-J jump'
    app4 ansible_host=10.0.0.14 ansible_ssh_common_args='-o ProxyJump=elsewhere.example.com'
    app5 ansible_host=10.0.0.15 ansible_ssh_common_args='-J a.example.com,b.example.com'
    app6 ansible_host=10.0.0.16 ansible_ssh_common_args='-o ProxyJump=admin@203.0.113.10'
    app7 ansible_host=10.0.0.17 ansible_ssh_common_args='-o ProxyCommand="{NC} %h %p"'

    [app:vars]
    ansible_user=deploy
    ansible_ssh_common_args='-o ProxyJump=ops@203.0.113.10:22'
    """.replace("{SSH_W}", "ssh -W %h:%p -q").replace("{NC}", "nc -X 5 -x proxy:1080")


@pytest.mark.parametrize(
    ("host", "bastion", "words"),
    [
        pytest.param("app1", "jump", None, id="proxyjump-to-the-bastion-address"),
        pytest.param("app2", "jump", None, id="ssh-W-proxycommand"),
        pytest.param("app3", "jump", None, id="dash-J-with-the-inventory-name"),
        pytest.param(
            "app4", None, "not a host of this inventory", id="jump-host-outside-inventory"
        ),
        pytest.param("app5", None, "several hops", id="multi-hop-jump"),
        pytest.param("app6", "jump", "logs in to the bastion as 'admin'", id="jump-user-differs"),
        pytest.param("app7", None, "ProxyCommand (only", id="other-proxycommand"),
        pytest.param("jump", None, None, id="bastion-overrides-the-group-args"),
    ],
)
def test_jump_hosts_map_to_bastions_in_the_inventory(
    host: str, bastion: str | None, words: str | None
) -> None:
    out = run(BASTION_INI)
    spec = out.spec(host)
    assert (spec.get("bastion") or {}).get("targetRef", {}).get("name") == bastion
    messages = [m for _, _, m in out.about(host)]
    if words is None:
        assert messages == []
    else:
        assert len(messages) == 1 and words in messages[0], messages


def test_a_jump_through_a_host_that_was_not_imported_says_so() -> None:
    out = run(
        """
        jump ansible_host=203.0.113.10 ansible_connection=local
        app1 ansible_user=u ansible_ssh_common_args='-J 203.0.113.10'
        """
    )
    assert list(out.targets) == ["app1"]
    assert [m for _, _, m in out.about("app1")] == [
        "jump host 203.0.113.10 is the inventory host 'jump', which is not imported (see the "
        "error about it), so spec.bastion is not set"
    ]


def test_a_group_jump_that_names_the_bastion_itself_is_reported() -> None:
    out = run(
        """
        [dmz]
        jump ansible_host=203.0.113.10
        app1 ansible_host=10.0.0.11
        [dmz:vars]
        ansible_user=ops
        ansible_ssh_common_args='-o ProxyJump=203.0.113.10'
        """
    )
    assert out.spec("app1")["bastion"] == {"targetRef": {"name": "jump"}}
    assert "bastion" not in out.spec("jump")
    assert [m for _, _, m in out.about("jump")] == [
        "jump host 203.0.113.10 is this host itself; no bastion set (set the variable to '' on "
        "the bastion, as Ansible would otherwise loop through it)"
    ]


# -- names and labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "short", "name"),
    [
        pytest.param("web01", False, "web01", id="simple"),
        pytest.param("Web_01.Example.COM", False, "web-01.example.com", id="case-and-underscore"),
        pytest.param("web01.example.com", True, "web01", id="short-name"),
        pytest.param("10.0.0.1", True, "10.0.0.1", id="short-keeps-ip-addresses"),
        pytest.param("-edge-.-x-", False, "edge.x", id="trimmed-parts"),
        pytest.param("fe80::1", False, "fe80-1", id="ipv6"),
        pytest.param("a" * 300, False, "a" * 253, id="truncated-to-253"),
    ],
)
def test_target_names_are_dns_1123(host: str, short: bool, name: str) -> None:
    assert target_name(host, short=short) == name


@pytest.mark.parametrize(
    ("text", "options", "kept", "colliding"),
    [
        pytest.param(
            "[g]\nweb_01\nweb-01\nweb02\n",
            {},
            ["web02"],
            ["web_01", "web-01"],
            id="underscore-and-dash-collide",
        ),
        pytest.param(
            "[g]\nWEB03\nweb03\n",
            {},
            [],
            ["WEB03", "web03"],
            id="case-collides",
        ),
        pytest.param(
            "[g]\nweb01.eu.example.com\nweb01.us.example.com\nweb02.eu.example.com\n",
            {"short_names": True},
            ["web02"],
            ["web01.eu.example.com", "web01.us.example.com"],
            id="short-names-collide",
        ),
    ],
)
def test_name_collisions_are_errors_and_neither_host_is_imported(
    text: str, options: dict[str, Any], kept: list[str], colliding: list[str]
) -> None:
    out = run(text, default_user="root", **options)
    assert list(out.targets) == kept
    errors = {f.host or "": f.message for f in out.findings if f.severity is Severity.ERROR}
    assert sorted(errors) == sorted(colliding)
    assert all("none of them is imported" in m for m in errors.values())


@pytest.mark.parametrize(
    ("host_vars", "labels", "reported"),
    [
        pytest.param("env=staging", {"env": "staging"}, [], id="simple-string-becomes-label"),
        pytest.param("env=7", {"env": "7"}, [], id="number-becomes-label"),
        pytest.param(
            "env='two words'",
            {},
            [("warning", "env", "value 'two words' is not a valid label value")],
            id="invalid-label-value-is-reported-with-its-value",
        ),
        pytest.param(
            "env=\"{'a': 1}\"",
            {},
            [("warning", "env", "not a simple string")],
            id="dict-is-not-a-label",
        ),
        pytest.param(
            "env=True", {}, [("warning", "env", "not a simple string")], id="bool-is-not-a-label"
        ),
        pytest.param("", {}, [], id="absent-variable-makes-no-label"),
    ],
)
def test_label_vars(
    host_vars: str, labels: dict[str, str], reported: list[tuple[str, str, str]]
) -> None:
    out = run(f"h ansible_user=u {host_vars}\n", label_vars=("env",))
    assert out.labels("h") == labels
    got = out.about("h")
    assert [(s, v) for s, v, _ in got] == [(s, v) for s, v, _ in reported]
    for (_, _, words), (_, _, message) in zip(reported, got, strict=True):
        assert words in message


def test_label_vars_never_label_a_secret() -> None:
    out = run("h ansible_user=u api_token=abc123\n", label_vars=("api_token",))
    assert out.labels("h") == {}
    assert out.about("h") == [
        ("warning", "api_token", "its name suggests a secret, so it is never made a label")
    ]


@pytest.mark.parametrize(
    ("group", "label"),
    [
        pytest.param("web_servers", "vmgitops.io/group-web_servers", id="underscore-kept"),
        pytest.param("Web.Frontend", "vmgitops.io/group-Web.Frontend", id="dots-and-case-kept"),
        pytest.param("g" * 60, None, id="too-long-for-a-label"),
    ],
)
def test_group_labels(group: str, label: str | None) -> None:
    out = run(f"[{group}]\nh ansible_user=u\n")
    assert out.labels("h") == ({label: "true"} if label else {})
    reported = [f.message for f in out.findings]
    assert bool(reported) == (label is None)


def test_cli_labels_override_inventory_labels() -> None:
    out = run("h ansible_user=u env=prod\n", label_vars=("env",), labels={"env": "override"})
    assert out.labels("h") == {"env": "override"}


# -- host keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("known_hosts", "policy", "host_key", "warned"),
    [
        pytest.param(
            f"10.0.0.1 {hostkey(1)}\n10.0.0.1 {hostkey(2, 'ecdsa-sha2-nistp256')}\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned", "publicKeys": [hostkey(1), hostkey(2, "ecdsa-sha2-nistp256")]},
            [],
            id="every-key-of-the-address-is-pinned",
        ),
        pytest.param(
            f"h1.example.com {hostkey(1)} comment@host\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned", "publicKeys": [hostkey(1)]},
            [],
            id="found-by-inventory-name-comment-dropped",
        ),
        pytest.param(
            f"[10.0.0.1]:2222 {hostkey(1)}\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned"},
            ["no host key to pin"],
            id="other-port-does-not-match",
        ),
        pytest.param(
            f"{hashed('10.0.0.1')} {hostkey(1)}\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned", "publicKeys": [hostkey(1)]},
            [],
            id="hashed-entry-is-matched",
        ),
        pytest.param(
            f"10.0.0.* {hostkey(1)}\n@revoked 10.0.0.1 {hostkey(1)}\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned"},
            ["marked @revoked", "no host key to pin"],
            id="revoked-key-is-never-pinned",
        ),
        pytest.param(
            f"@cert-authority *.example.com {hostkey(9)}\n",
            HostKeyPolicy.PINNED,
            {"policy": "Pinned"},
            ["@cert-authority line known_hosts:1", "no host key to pin"],
            id="cert-authority-line-is-reported",
        ),
        pytest.param(
            "",
            HostKeyPolicy.TRUST_ON_FIRST_USE,
            {"policy": "TrustOnFirstUse"},
            [],
            id="trust-on-first-use-without-a-key",
        ),
        pytest.param(
            f"10.0.0.1 {hostkey(1)}\n",
            HostKeyPolicy.TRUST_ON_FIRST_USE,
            {"policy": "Pinned", "publicKeys": [hostkey(1)]},
            [],
            id="a-known-key-is-pinned-even-under-trust-on-first-use",
        ),
    ],
)
def test_host_keys(
    known_hosts: str, policy: HostKeyPolicy, host_key: dict[str, Any], warned: list[str]
) -> None:
    out = run(
        "h1.example.com ansible_host=10.0.0.1 ansible_user=u\n",
        known_hosts=known_hosts or "# empty\n",
        host_key_policy=policy,
    )
    assert out.spec("h1.example.com")["hostKey"] == host_key
    messages = [m for _, _, m in out.about("h1.example.com")]
    assert len(messages) == len(warned), messages
    for words, message in zip(warned, messages, strict=True):
        assert words in message


def test_bad_known_hosts_lines_are_reported_with_their_line() -> None:
    out = run(
        "h ansible_user=u\n",
        known_hosts=f"""
        h {hostkey(1)}
        h ssh-ed25519
        h ssh-ed25519 not-base64!
        |1|bad|hash {hostkey(2)}
        @unknown h {hostkey(3)}
        h ssh-rsa {hostkey(4).split()[1]}
        """,
        host_key_policy=HostKeyPolicy.PINNED,
    )
    assert out.spec("h")["hostKey"]["publicKeys"] == [hostkey(1)]
    lines = sorted(
        (f.location.line, f.message.split(";")[0])
        for f in out.findings
        if f.location and f.host is None
    )
    assert lines == [
        (3, "not of the form 'hosts keytype base64 [comment]'"),
        (4, "the ssh-ed25519 key is not valid base64 of that key type"),
        (5, "malformed hashed host name"),
        (6, "unknown marker '@unknown'"),
        (7, "the ssh-rsa key is not valid base64 of that key type"),
    ]


def test_pinned_without_known_hosts_warns_once_for_all_hosts() -> None:
    out = run("[g]\nh[1:3] ansible_user=u\n", host_key_policy=HostKeyPolicy.PINNED)
    warnings = [line for line in out.report if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "no --known-hosts given" in warnings[0]
    assert "HostKeyNotConfigured" in warnings[0]
    assert "[3 hosts: h1, h2, h3]" in warnings[0]


def test_unmatched_hashed_entries_are_noted() -> None:
    out = run(
        "h ansible_user=u\n",
        known_hosts=f"{hashed('h')} {hostkey(1)}\n{hashed('other')} {hostkey(2)}\n",
    )
    assert out.findings == []
    assert any("1 hashed entry matched no host" in line for line in out.report)


# -- secrets and the report -----------------------------------------------------------------------

SECRETS_INI = """
    [web]
    web1 ansible_password=hunter2-login ansible_ssh_pass=hunter2-ssh
    web2 ansible_become=true ansible_become_password=hunter2-sudo

    [web:vars]
    ansible_user=deploy
    vault_db_password=hunter2-db
    api_token=hunter2-token
    aws_secret_access_key=hunter2-aws
    ansible_ssh_common_args='-o IdentityFile=/home/hunter2-path/key'
    """

SECRETS_YAML = """
    all:
      vars:
        ansible_user: deploy
        db_pass: hunter2-db
        ansible_become_pass: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          68756e746572322d7661756c74
      hosts:
        web1:
          ansible_password: hunter2-login
          private_key_passphrase: hunter2-passphrase
    """


@pytest.mark.parametrize(
    ("text", "source", "secret_vars"),
    [
        pytest.param(
            SECRETS_INI,
            "secrets.ini",
            {
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_become_password",
                "vault_db_password",
                "api_token",
                "aws_secret_access_key",
            },
            id="ini-secrets",
        ),
        pytest.param(
            SECRETS_YAML,
            "secrets.yml",
            {"db_pass", "ansible_become_pass", "ansible_password", "private_key_passphrase"},
            id="yaml-secrets-and-vault",
        ),
    ],
)
def test_secret_values_are_never_printed(text: str, source: str, secret_vars: set[str]) -> None:
    out = run(text, source)
    everything = "\n".join(out.report) + json.dumps(list(out.targets.values()))
    everything += "".join(repr(f) for f in out.findings)
    assert "hunter2" not in everything
    assert {f.variable for f in out.findings if f.secret} == secret_vars


def test_report_groups_hosts_and_names_where_variables_come_from() -> None:
    out = run(
        """
        [web]
        web[1:3]
        [web:vars]
        ansible_user=deploy
        ansible_python_interpreter=/usr/bin/python3
        ansible_password=hunter2
        """
    )
    assert out.report == [
        "ignored variables (no VirtualMachineTarget field; values are never shown):",
        "  ansible_password (from group web): the login credentials come from the Secret named "
        "by --secret [3 hosts: web1, web2, web3]",
        "  ansible_python_interpreter (from group web): vmgitops runs no Python on the VM "
        "[3 hosts: web1, web2, web3]",
        "3 of 3 hosts mapped to VirtualMachineTargets; 0 error(s), 0 warning(s), "
        "2 ignored variable(s)",
    ]


def test_empty_inventory_is_reported() -> None:
    out = run("# nothing yet\n")
    assert out.targets == {}
    assert [f.message for f in out.findings] == [
        "the inventory has no hosts, so there is nothing to import"
    ]


def test_parse_warnings_become_findings() -> None:
    out = run("all:\n  hosts:\n    h: {ansible_user: u}\n  chidlren: {}\n", "typo.yml")
    assert list(out.targets) == ["h"]
    assert [(f.location.line if f.location else None) for f in out.findings] == [4]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, True, id="bool-true"),
        pytest.param("yes", True, id="yes"),
        pytest.param("On", True, id="on-any-case"),
        pytest.param(1, True, id="one"),
        pytest.param("false", False, id="false-string"),
        pytest.param(0, False, id="zero"),
        pytest.param("", False, id="empty-is-false"),
        pytest.param(2, None, id="other-number-is-not-a-boolean"),
        pytest.param("maybe", None, id="other-word-is-not-a-boolean"),
        pytest.param(["yes"], None, id="list-is-not-a-boolean"),
    ],
)
def test_ansible_booleans(value: object, expected: bool | None) -> None:
    assert ansible_bool(value) is expected


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        pytest.param("env", True, id="plain"),
        pytest.param("example.com/tier", True, id="prefixed"),
        pytest.param("Example.com/tier", False, id="prefix-must-be-lower-case"),
        pytest.param("-env", False, id="starts-with-dash"),
        pytest.param("e" * 64, False, id="name-longer-than-63"),
        pytest.param("a/b/c", False, id="two-slashes"),
    ],
)
def test_label_keys(key: str, valid: bool) -> None:
    assert valid_label_key(key) is valid
