"""Git URL policy end to end: what the API server's schema refuses, what the operator
refuses (RepoURLRefused in the Ready condition, within one cycle), and that no refused URL
ever ran a command or reached git; for a VMApplication's repoURL and for a Promotion's
gitCommit.repoURL (refused before anything is written: Failed in Pending, no
previousRevisions, the destination untouched).

The operator-level "allowed by a setting" half is in tests/unit/security (it would
otherwise contact a link-local address, which the test bed never does).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from chaos import bed, figures
from testbed import DEV, GIT_BASE_URL

pytestmark = pytest.mark.e2e

AREA = "8 git URLs"


def canary() -> Path:
    return Path("/tmp") / f"vmgitops-canary-{uuid.uuid4().hex[:10]}"


def app(namespace: str, name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VMApplication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"repoURL": url, "targetRevision": "main"},
            "destination": {"selector": {"matchLabels": {"none": "selected"}}},
            "refreshInterval": "5s",
        },
    }


def ready(namespace: str, name: str) -> dict[str, Any] | None:
    status = bed.get("vmapp", namespace, name).get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "False":
            return dict(c)
    return None


def refused_urls(can: Path) -> tuple[list[str], list[str]]:
    """(URLs the CRD schema should refuse, URLs the operator must refuse)."""
    bare = sorted((DEV / "git").glob("*.git"))
    local = str(bare[0]) if bare else "/srv/git/shop.git"
    schema_refused = [
        f"file://{local}",
        local,
        f"ext::sh -c touch% {can}",
        f"ext::touch {can}",
        f"fd::17,{can}",
        "FILE:///etc",
        f"git@-oProxyCommand=touch {can}:x",
        "",
    ]
    operator_refused = [
        "git://169.254.169.254/x.git",
        "http://169.254.169.254/latest/meta-data.git",
        "https://metadata.google.internal/computeMetadata.git",
        "http://metadata/x.git",
        "git://[fe80::1]/x.git",
        "http://[::ffff:169.254.169.254]/x.git",
        "git://0xa9fea9fe/x.git",
        "git://2852039166/x.git",
        "http://[fd00:ec2::254]/x.git",
        "http://100.100.100.200/x.git",
        "git@169.254.169.254:x.git",
        f"ssh://-oProxyCommand=touch%20{can}/x.git",
        "git@-oProxyCommand:x.git",
        "git://127.0.0.1:9418/x.git?--upload-pack=touch",
        "https://127.0.0.1/x.git#frag",
    ]
    return schema_refused, operator_refused


def test_git_url_policy_refuses_file_ext_and_metadata(namespace: str, operator: Path) -> None:
    can = canary()
    schema_refused, operator_refused = refused_urls(can)
    by_schema, schema_msgs = 0, []
    for i, url in enumerate(schema_refused):
        done = bed.kubectl(
            "apply", "-f", "-", input=json.dumps(app(namespace, f"s{i}", url)), check=False
        )
        if done.returncode != 0:
            by_schema += 1
            schema_msgs.append(done.stderr.strip().splitlines()[-1][:160])
        else:
            operator_refused.append(url)  # accepted: the operator must refuse it
    names = {}
    for i, url in enumerate(operator_refused):
        bed.apply(app(namespace, f"o{i}", url))
        names[f"o{i}"] = url
    reasons: dict[str, str] = {}
    for name, url in names.items():
        cond = bed.eventually(
            lambda n=name: ready(namespace, n),  # type: ignore[misc]
            timeout=60,
            what=f"Ready=False for {url!r}",
        )
        reasons[url] = f"{cond['reason']}: {cond['message'][:120]}"
    wrong = {u: r for u, r in reasons.items() if not r.startswith("RepoURLRefused")}
    for url, why in reasons.items():
        print(f"  operator refused {url!r}: {why}")
    for msg in schema_msgs:
        print(f"  API server refused: {msg}")
    total = by_schema + len(names)
    refused = by_schema + len(reasons) - len(wrong)
    figures.percent(AREA, "file://, ext::, link-local/metadata URLs refused", refused, total)
    figures.record(
        AREA,
        "refused by the CRD schema / by the operator",
        f"{by_schema} / {len(reasons) - len(wrong)}",
        "informative",
        True,
    )
    figures.count(AREA, "canary commands run by a refused URL", int(can.exists()))
    assert not wrong, wrong
    assert not can.exists()


def promotion(namespace: str, name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "from": {"name": "staging"},
            "to": [{"name": "prod"}],
            "method": "GitCommit",
            "gitCommit": {"repoURL": url, "branch": "main", "path": "envs"},
        },
    }


def test_promotion_gitcommit_url_policy(namespace: str, operator: Path) -> None:
    can = canary()
    schema_refused, operator_refused = refused_urls(can)
    # Two real applications (selecting no VM) so that only the URL can be refused.
    good = f"{GIT_BASE_URL}/promotion-url-policy.git"
    for env in ("staging", "prod"):
        bed.apply({**app(namespace, env, good), "metadata": {"name": env, "namespace": namespace}})
    prod_spec = bed.get("vmapp", namespace, "prod")["spec"]
    by_schema, schema_msgs = 0, []
    for i, url in enumerate(schema_refused):
        done = bed.kubectl(
            "apply", "-f", "-", input=json.dumps(promotion(namespace, f"s{i}", url)), check=False
        )
        if done.returncode != 0:
            by_schema += 1
            schema_msgs.append(done.stderr.strip().splitlines()[-1][:160])
        else:
            operator_refused.append(url)
    names = {}
    for i, url in enumerate(operator_refused):
        bed.apply(promotion(namespace, f"o{i}", url))
        names[f"o{i}"] = url

    def final(name: str) -> dict[str, Any] | None:
        status = bed.get("promotion", namespace, name).get("status") or {}
        return status if status.get("phase") in ("Failed", "Succeeded", "RolledBack") else None

    outcomes: dict[str, str] = {}
    wrong: dict[str, str] = {}
    for name, url in names.items():
        status = bed.eventually(
            lambda n=name: final(n),  # type: ignore[misc]
            timeout=60,
            what=f"Promotion with gitCommit.repoURL {url!r} final",
        )
        outcomes[url] = f"{status['phase']} {status.get('reason')}: {status['message'][:120]}"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        if (
            status["phase"] != "Failed"
            or status.get("reason") != "RepoURLRefused"
            or ready["reason"] != "RepoURLRefused"
            or status.get("previousRevisions")
            or "nothing was changed" not in status["message"]
        ):
            wrong[url] = outcomes[url]
    for url, why in outcomes.items():
        print(f"  operator refused Promotion gitCommit {url!r}: {why}")
    for msg in schema_msgs:
        print(f"  API server refused: {msg}")
    total = by_schema + len(names)
    refused = by_schema + len(names) - len(wrong)
    figures.percent(
        AREA, "Promotion gitCommit: file://, ext::, link-local/metadata refused", refused, total
    )
    figures.count(AREA, "canary commands run by a refused Promotion URL", int(can.exists()))
    assert not wrong, wrong
    assert not can.exists()
    assert bed.get("vmapp", namespace, "prod")["spec"] == prod_spec
