"""Reading Ansible inventories (INI, YAML, ansible-inventory --list JSON) as Ansible does:
hosts, ranges, groups and children, variables and their precedence, and errors that say
where (file and line) without quoting values."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from vmgitops.inventory.hostpattern import HostPatternError, parse_host_pattern
from vmgitops.inventory.load import detect_format, load_inventory, parse_inventory
from vmgitops.inventory.model import Inventory, InventoryError


def inv(text: str, source: str) -> Inventory:
    return parse_inventory(dedent(text).lstrip("\n"), source)


def effective(i: Inventory, host: str) -> dict[str, Any]:
    return {k: v.value for k, v in i.effective_vars(i.hosts[host]).items()}


# -- host patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "hosts", "port"),
    [
        pytest.param("web1", ["web1"], None, id="plain-name"),
        pytest.param("web1.example.com:2222", ["web1.example.com"], 2222, id="name-with-port"),
        pytest.param(
            "web[01:03].example.com",
            ["web01.example.com", "web02.example.com", "web03.example.com"],
            None,
            id="zero-padded-numeric-range-keeps-width",
        ),
        pytest.param("web[8:10]", ["web8", "web9", "web10"], None, id="unpadded-range-grows"),
        pytest.param("db-[a:c]", ["db-a", "db-b", "db-c"], None, id="alphabetic-range"),
        pytest.param("n[0:6:3]", ["n0", "n3", "n6"], None, id="range-with-step"),
        pytest.param(
            "r[1:2]-c[a:b]", ["r1-ca", "r1-cb", "r2-ca", "r2-cb"], None, id="two-ranges-multiply"
        ),
        pytest.param(
            "web[1:2].example.com:2200",
            ["web1.example.com", "web2.example.com"],
            2200,
            id="range-and-port",
        ),
        pytest.param("10.0.0.1:22", ["10.0.0.1"], 22, id="ipv4-with-port"),
        pytest.param("[2001:db8::1]:2222", ["2001:db8::1"], 2222, id="bracketed-ipv6-with-port"),
        pytest.param("2001:db8::1", ["2001:db8::1"], None, id="bare-ipv6-has-no-port"),
    ],
)
def test_host_patterns(pattern: str, hosts: list[str], port: int | None) -> None:
    assert parse_host_pattern(pattern) == (hosts, port)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        pytest.param("web[3:1]", "begin <= end", id="range-backwards"),
        pytest.param("web[01:100]", "same width", id="padded-range-widths-differ"),
        pytest.param("web[1:]", "name its end", id="range-without-end"),
        pytest.param("web[1:3", "unbalanced", id="unclosed-bracket"),
        pytest.param("web[a:3]", "not a mix", id="letters-and-numbers-mixed"),
        pytest.param("web:70000", "outside 1-65535", id="port-out-of-range"),
        pytest.param("web[0:999999]", "more than", id="expansion-too-large"),
    ],
)
def test_bad_host_patterns(pattern: str, says: str) -> None:
    with pytest.raises(HostPatternError, match=says):
        parse_host_pattern(pattern)


# -- structure ---------------------------------------------------------------------------------

INI_NESTED = """
    # hosts before any section are ungrouped
    bastion.example.com ansible_host=203.0.113.10

    [web]
    web[01:02].example.com
    web03.example.com:2222 ansible_user=deploy

    [db]
    db1.example.com

    [eu:children]
    web
    db

    [prod:children]
    eu
    """

YAML_NESTED = """
    all:
      hosts:
        bastion.example.com:
          ansible_host: 203.0.113.10
      children:
        prod:
          children:
            eu:
              children:
                web:
                  hosts:
                    web[01:02].example.com:
                    web03.example.com:2222:
                      ansible_user: deploy
                db:
                  hosts: db1.example.com
    """


@pytest.mark.parametrize(
    ("text", "source"),
    [
        pytest.param(INI_NESTED, "hosts.ini", id="ini-children-sections"),
        pytest.param(YAML_NESTED, "hosts.yml", id="yaml-nested-children"),
    ],
)
def test_the_same_inventory_in_both_formats(text: str, source: str) -> None:
    i = inv(text, source)
    assert list(i.hosts) == [
        "bastion.example.com",
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
        "db1.example.com",
    ]
    assert i.group_names(i.hosts["web01.example.com"]) == ["eu", "prod", "web"]
    assert i.group_names(i.hosts["db1.example.com"]) == ["db", "eu", "prod"]
    assert i.group_names(i.hosts["bastion.example.com"]) == []
    assert effective(i, "web03.example.com") == {"ansible_user": "deploy", "ansible_port": 2222}
    assert i.hosts["web03.example.com"].location is not None
    assert i.hosts["web03.example.com"].location.line == (6 if source.endswith("ini") else 13)
    assert i.groups["prod"].depth == 1 and i.groups["web"].depth == 3


PRECEDENCE_INI = """
    [web]
    web1 role=host-level
    web2

    [eu:children]
    web

    [all:vars]
    role=all-level
    tier=all-level
    site=all-level

    [eu:vars]
    role=parent-level
    tier=parent-level

    [web:vars]
    role=child-level
    """

PRECEDENCE_YAML = """
    all:
      vars: {role: all-level, tier: all-level, site: all-level}
      children:
        eu:
          vars: {role: parent-level, tier: parent-level}
          children:
            web:
              vars: {role: child-level}
              hosts:
                web1: {role: host-level}
                web2:
    """


@pytest.mark.parametrize(
    ("text", "source"),
    [
        pytest.param(PRECEDENCE_INI, "p.ini", id="ini-host-beats-child-beats-parent-beats-all"),
        pytest.param(PRECEDENCE_YAML, "p.yaml", id="yaml-host-beats-child-beats-parent-beats-all"),
    ],
)
def test_variable_precedence(text: str, source: str) -> None:
    i = inv(text, source)
    assert effective(i, "web1") == {
        "role": "host-level",
        "tier": "parent-level",
        "site": "all-level",
    }
    assert effective(i, "web2")["role"] == "child-level"
    origins = {k: v.group for k, v in i.effective_vars(i.hosts["web2"]).items()}
    assert origins == {"role": "web", "tier": "eu", "site": "all"}


def test_group_priority_orders_groups_of_the_same_depth() -> None:
    i = inv(
        """
        [a]
        h1
        [b]
        h1
        [a:vars]
        x=from-a
        ansible_group_priority=10
        [b:vars]
        x=from-b
        """,
        "prio.ini",
    )
    # Alphabetically b would win; a's higher priority makes it merge last.
    assert effective(i, "h1")["x"] == "from-a"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("h ansible_port=2222", 2222, id="number-is-int"),
        pytest.param("h ansible_become=true", "true", id="lowercase-true-stays-a-string"),
        pytest.param("h ansible_become=True", True, id="python-True-is-bool"),
        pytest.param('h x="two words"', "two words", id="quoted-value-with-space"),
        pytest.param("h x='[1, 2]'", [1, 2], id="list-literal"),
        pytest.param("h x=a#b", "a", id="hash-starts-a-comment-even-inside-a-word"),
        pytest.param("h x=1 # trailing comment", 1, id="trailing-comment-dropped"),
    ],
)
def test_ini_values_read_as_ansible_reads_them(line: str, expected: object) -> None:
    i = inv(line, "v.ini")
    (value,) = [v for k, v in i.hosts["h"].vars.items()]
    assert value == expected


def test_ini_host_lines_with_addresses_and_ports() -> None:
    i = inv(
        """
        10.0.0.1:2200 a=1
        [2001:db8::1]:2222
        2001:db8::2
        [web]
        w1
        w1:2299
        """,
        "addr.ini",
    )
    assert list(i.hosts) == ["10.0.0.1", "2001:db8::1", "2001:db8::2", "w1"]
    assert effective(i, "10.0.0.1") == {"a": 1, "ansible_port": 2200}
    assert effective(i, "2001:db8::1") == {"ansible_port": 2222}
    # As in Ansible, a port in a pattern counts only where the host is first written.
    assert effective(i, "w1") == {}


def test_hosts_in_several_groups_merge_their_variables() -> None:
    i = inv(
        """
        [web]
        h1 a=1
        [db]
        h1 b=2
        """,
        "m.ini",
    )
    assert i.hosts["h1"].vars == {"a": 1, "b": 2}
    assert i.hosts["h1"].groups == ["web", "db"]


def test_children_may_be_declared_after_their_parent() -> None:
    i = inv(
        """
        [prod:children]
        web
        [prod:vars]
        env=prod
        [web]
        w1
        """,
        "late.ini",
    )
    assert effective(i, "w1") == {"env": "prod"}


def test_yaml_vault_values_stay_opaque_and_unsafe_ones_are_strings() -> None:
    i = inv(
        """
        all:
          hosts:
            h1:
              ansible_become_password: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                6162636465
              motd: !unsafe '{{ not a template }}'
        """,
        "vault.yml",
    )
    hv = i.hosts["h1"].vars
    assert repr(hv["ansible_become_password"]) == "<vault-encrypted>"
    assert hv["motd"] == "{{ not a template }}"


def test_ansible_inventory_list_json_is_read() -> None:
    text = """
    {"_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}, "d1": {}}},
     "all": {"children": ["ungrouped", "web", "db"]},
     "web": {"hosts": ["w1"], "vars": {"env": "prod"}},
     "db": {"hosts": ["d1"]}}
    """
    i = inv(text, "list.json")
    assert list(i.hosts) == ["w1", "d1"]
    assert effective(i, "w1") == {"ansible_host": "10.0.0.1", "env": "prod"}
    assert i.group_names(i.hosts["d1"]) == ["db"]


@pytest.mark.parametrize(
    ("text", "source"),
    [
        pytest.param("", "empty.ini", id="empty-ini"),
        pytest.param("# only comments\n; and more\n", "comments.ini", id="comments-only-ini"),
        pytest.param("", "empty.yml", id="empty-yaml"),
        pytest.param("all:\n", "all.yml", id="yaml-all-with-nothing"),
        pytest.param("[web]\n[db]\n", "groups.ini", id="groups-without-hosts"),
    ],
)
def test_empty_inventories(text: str, source: str) -> None:
    assert inv(text, source).hosts == {}


@pytest.mark.parametrize(
    ("text", "source", "line", "says"),
    [
        pytest.param("[web:hosts2]\nh1\n", "a.ini", 1, "unknown type", id="unknown-section-type"),
        pytest.param("[web servers]\nh1\n", "a.ini", 1, "no spaces", id="space-in-section"),
        pytest.param(
            "[web]\nh1\n\n[prod:children]\nweb\ndb\n",
            "a.ini",
            6,
            "includes group 'db', which is never declared",
            id="undefined-child-group",
        ),
        pytest.param(
            "[web]\nh1\n[webs:vars]\nx=1\n",
            "a.ini",
            3,
            "never declared",
            id="vars-of-undefined-group",
        ),
        pytest.param(
            "[web]\nh1\n[web:vars]\njust-a-word\n",
            "a.ini",
            4,
            "name=value",
            id="vars-line-without-equals",
        ),
        pytest.param(
            "[web]\nh1 ansible_port 22\n", "a.ini", 2, "word 2", id="host-variable-without-equals"
        ),
        pytest.param(
            "[web]\nh1 x='unclosed\n", "a.ini", 2, "unclosed quote", id="unbalanced-quote"
        ),
        pytest.param("[web]\nweb[5:1]\n", "a.ini", 2, "begin <= end", id="bad-range-in-ini"),
        pytest.param("[a:children]\nb\n[b:children]\na\n", "a.ini", 4, "cycle", id="group-cycle"),
        pytest.param(
            "all:\n  hosts:\n    h1:\n  vars: [a\n", "a.yml", 5, "not valid YAML", id="yaml-syntax"
        ),
        pytest.param(
            "all:\n  hosts:\n    - h1\n", "a.yml", 3, "not a list", id="yaml-hosts-as-a-list"
        ),
        pytest.param("- a\n- b\n", "a.yml", 1, "mapping of group names", id="yaml-top-is-a-list"),
        pytest.param(
            "all:\n  hosts:\n    web[9:1]:\n", "a.yml", 3, "begin <= end", id="bad-range-in-yaml"
        ),
        pytest.param(
            "all:\n  hosts:\n    h1: just-a-string\n",
            "a.yml",
            3,
            "variables of host 'h1'",
            id="yaml-host-vars-not-a-mapping",
        ),
        pytest.param(
            "all:\n  hosts:\n    h1: {x: !custom 1}\n",
            "a.yml",
            3,
            "cannot read",
            id="yaml-unknown-tag",
        ),
    ],
)
def test_errors_name_the_file_and_line(text: str, source: str, line: int, says: str) -> None:
    with pytest.raises(InventoryError) as err:
        parse_inventory(text, source)
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line) == (source, line)
    assert says in str(err.value)
    assert str(err.value).startswith(f"{source}:{line}: ")


@pytest.mark.parametrize(
    ("text", "source"),
    [
        pytest.param("[web]\nh1 ansible_password hunter2\n", "s.ini", id="ini-detached-value"),
        pytest.param("[web]\nh1 ansible_password='hunter2\n", "s.ini", id="ini-unclosed-quote"),
        pytest.param("[web:vars]\nhunter2\n[web]\nh\n", "s.ini", id="ini-vars-line"),
        pytest.param(
            "all:\n  vars:\n    ansible_password: 'hunter2\n", "s.yml", id="yaml-unclosed-quote"
        ),
        pytest.param(
            "all:\n  vars:\n    ansible_password: hunter2\n   bad: indent\n",
            "s.yml",
            id="yaml-bad-indent-after-secret",
        ),
    ],
)
def test_errors_never_quote_values(text: str, source: str) -> None:
    with pytest.raises(InventoryError) as err:
        parse_inventory(text, source)
    assert "hunter2" not in str(err.value)


def test_unexpected_yaml_keys_are_warned_about_not_dropped() -> None:
    i = inv(
        """
        all:
          children:
            web:
              host:
                w1:
        """,
        "typo.yml",
    )
    assert i.hosts == {}
    assert [
        (w.location.line if w.location else None, "'host'" in w.message) for w in i.warnings
    ] == [(4, True)]


def test_vault_encrypted_inventory_is_refused_with_advice() -> None:
    with pytest.raises(InventoryError, match="ansible-vault view"):
        parse_inventory("$ANSIBLE_VAULT;1.1;AES256\n3132\n", "secret.yml")


@pytest.mark.parametrize(
    ("text", "source", "fmt"),
    [
        pytest.param("[web]\nh1\n", "hosts", "ini", id="section-header-is-ini"),
        pytest.param("h1 ansible_port=22\n", "hosts", "ini", id="host-line-is-ini"),
        pytest.param("all:\n  hosts:\n", "hosts", "yaml", id="key-colon-is-yaml"),
        pytest.param("---\nall:\n", "hosts", "yaml", id="document-start-is-yaml"),
        pytest.param("[web]\n", "hosts.yml", "yaml", id="yml-suffix-wins"),
        pytest.param("web1:2222\n", "hosts", "ini", id="host-with-port-is-ini"),
        pytest.param("h x=\"{'a': 1}\"\n", "hosts", "ini", id="colon-in-an-ini-value"),
        pytest.param("all: {hosts: {h: }}\n", "hosts", "yaml", id="flow-mapping-is-yaml"),
    ],
)
def test_format_detection(text: str, source: str, fmt: str) -> None:
    assert detect_format(text, source) == fmt


def test_group_vars_and_host_vars_folders_layer_as_in_ansible(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(
        "[web]\nw1 from_host=inline\nw2\n[web:vars]\nx=inline-group\ny=inline-group\n"
    )
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("x: group_vars-all\nz: group_vars-all\n")
    (tmp_path / "group_vars" / "web").mkdir()
    (tmp_path / "group_vars" / "web" / "main.yml").write_text("z: group_vars-web\n")
    (tmp_path / "group_vars" / "nosuchgroup.yml").write_text("a: 1\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w1.yaml").write_text("from_host: host_vars\n")
    (tmp_path / "host_vars" / "w2.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    i = load_inventory(tmp_path / "hosts.ini")
    # group_vars/all beats inline [web:vars] (Ansible's precedence 4 over 3).
    assert effective(i, "w1") == {
        "x": "group_vars-all",
        "y": "inline-group",
        "z": "group_vars-web",
        "from_host": "host_vars",
    }
    messages = sorted((str(w.location), w.message.split(";")[0]) for w in i.warnings)
    assert messages == [
        (str(tmp_path / "group_vars" / "nosuchgroup.yml"), "names no group of the inventory"),
        (
            str(tmp_path / "host_vars" / "w2.yml"),
            "encrypted with ansible-vault, so its variables are not read (decrypt it, or move "
            "what vmgitops needs into a plain file)",
        ),
    ]
    assert load_inventory(tmp_path / "hosts.ini", vars_dirs=False).warnings == []
