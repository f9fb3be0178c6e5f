"""`vmgitops import ansible-inventory` without a cluster: output formats, exit codes and
messages (the --apply path is exercised end to end in tests/e2e)."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest
import yaml

import vmgitops.inventory
from vmgitops.cli.main import main

INVENTORY = """\
[web]
web1 ansible_host=127.0.0.1
web2 ansible_host=127.0.0.2

[web:vars]
ansible_user=deploy
env=staging
"""

KNOWN_HOSTS = """\
127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFA/pSZNpjL0zfMhFxnKn2xGLlTofffmniCtWPdzZwoe
127.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKpczaD0QHyfTNKUoiDk1cLPCHsPtzCjxnqSb5opyLxD
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "hosts.ini").write_text(INVENTORY)
    (tmp_path / "known_hosts").write_text(KNOWN_HOSTS)
    return tmp_path


def cli(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("sys.stdin", io.StringIO(stdin))
            code = main(["import", "ansible-inventory", *argv])
    else:
        code = main(["import", "ansible-inventory", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_everything_mapped_exits_0_with_a_yaml_stream(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys,
        str(files / "hosts.ini"),
        "--secret",
        "fleet-ssh",
        "--known-hosts",
        str(files / "known_hosts"),
        "--label-vars",
        "env",
        "--label",
        "team=shop",
        "-n",
        "shop",
    )
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in docs] == ["web1", "web2"]
    assert docs[0]["metadata"]["namespace"] == "shop"
    assert docs[0]["metadata"]["labels"] == {
        "env": "staging",
        "team": "shop",
        "vmgitops.io/group-web": "true",
    }
    assert docs[1]["spec"]["hostKey"]["publicKeys"] == [
        KNOWN_HOSTS.splitlines()[1].split(" ", 1)[1]
    ]
    assert err.strip() == (
        "2 of 2 hosts mapped to VirtualMachineTargets; 0 error(s), 0 warning(s), "
        "0 ignored variable(s)"
    )


def test_something_reported_exits_3_and_still_prints_what_mapped(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, str(files / "hosts.ini"), "--secret", "fleet-ssh", "-o", "json")
    assert code == 3
    listing = json.loads(out)
    assert listing["kind"] == "List"
    assert [i["metadata"]["name"] for i in listing["items"]] == ["web1", "web2"]
    assert "no host key to pin (no --known-hosts given)" in err
    assert "env (from group web): a playbook variable" in err


def test_stdin_and_trust_on_first_use(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys,
        "-",
        "--secret",
        "s",
        "--host-key-policy",
        "TrustOnFirstUse",
        "--default-user",
        "admin",
        stdin="all:\n  hosts:\n    h1:\n",
    )
    assert code == 0, err
    (doc,) = yaml.safe_load_all(out)
    assert doc["spec"]["hostKey"] == {"policy": "TrustOnFirstUse"}
    assert doc["spec"]["user"] == "admin"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["--secret", "Fleet_SSH"], "--secret 'Fleet_SSH' is not", id="bad-secret-name"
        ),
        pytest.param(
            ["--secret", "s", "--label", "novalue"], "KEY=VALUE", id="label-without-equals"
        ),
        pytest.param(
            ["--secret", "s", "--label", "a=b c"], "not a label value", id="label-value-with-space"
        ),
        pytest.param(
            ["--secret", "s", "--label-vars", "env,db_password"],
            "suggests a secret",
            id="secret-label-var-refused",
        ),
        pytest.param(
            ["--secret", "s", "--known-hosts", "/nonexistent/kh"],
            "--known-hosts /nonexistent/kh",
            id="known-hosts-missing",
        ),
        pytest.param(["--secret", "s", "-n", "Not_A_NS"], "not a namespace", id="bad-namespace"),
    ],
)
def test_usage_errors_exit_2(
    files: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, out, err = cli(capsys, str(files / "hosts.ini"), *args)
    assert code == 2
    assert out == ""
    assert says in err


def test_parse_error_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[web]\nweb1\n[prod:children]\nweb\ndb\n")
    code, out, err = cli(capsys, str(bad), "--secret", "s")
    assert code == 2 and out == ""
    assert err.startswith(f"vmgitops import ansible-inventory: error: {bad}:5: ")
    assert "add a [db] section" in err


def test_missing_file_and_missing_secret_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, str(tmp_path / "nope.ini"), "--secret", "s")
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit) as exc:
        main(["import", "ansible-inventory", str(tmp_path / "nope.ini")])
    assert exc.value.code == 2
    assert "--secret" in capsys.readouterr().err


def test_apply_against_an_unreachable_server_exits_1(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, out, err = cli(
        capsys,
        str(files / "hosts.ini"),
        "--secret",
        "s",
        "--known-hosts",
        str(files / "known_hosts"),
        "--apply",
        "--kubeconfig",
        str(kubeconfig),
    )
    assert code == 1
    assert out == ""
    assert "apply failed: cannot reach the API server at http://127.0.0.1:9" in err


def test_inventory_package_is_pure() -> None:
    """No Kubernetes, kopf, SSH or operator I/O layer in the parsing and mapping code."""
    forbidden = (
        "kubernetes",
        "kopf",
        "asyncssh",
        "git",
        "vmgitops.kube",
        "vmgitops.transport",
        "vmgitops.handlers",
    )
    package = Path(vmgitops.inventory.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (
                    path.name,
                    name,
                )
