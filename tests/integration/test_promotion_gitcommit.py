"""Method GitCommit against a real smart-HTTP Git server with Basic auth: the one value
changes, the commit names the Promotion, a moved branch is rebased and pushed again, and
credentials never show up in what is reported."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitserver import SmartHTTPServer, Workdir, git, init_bare
from vmgitops.promotion.gitcommit import CommitResult, Edit, GitCommitError, commit_revisions
from vmgitops.promotion.yamledit import DocumentMatch
from vmgitops.source import BasicAuth, SourcePolicy, parse_repo_url

pytestmark = pytest.mark.integration

PASSWORD = "pr0m0te/s3cret+pa55@word"
OLD = "1b" * 20
NEW = "2a" * 20

PROD = f"""\
# web-prod: promoted by vmgitops, do not edit the revision by hand
apiVersion: vmgitops.io/v1alpha1
kind: VMApplication
metadata:
  name: web-prod
spec:
  source:
    repoURL: git://127.0.0.1:9418/shop.git
    targetRevision: {OLD}   # promoted
    path: apps/web
  destination:
    selector: {{matchLabels: {{env: prod}}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web-prod-k8s
spec:
  source: {{repoURL: "https://g.example/k.git", targetRevision: "{OLD}", path: web}}
"""
VALUES = "web:\n  image: web\n  revision: v1  # set by promotions\n"


class Config:
    def __init__(self, server: SmartHTTPServer, bare: Path, work: Workdir) -> None:
        self.server, self.bare, self.work = server, bare, work
        self.url = f"{server.url}/config.git"

    def show(self, path: str, ref: str = "main") -> str:
        return git("--git-dir", str(self.bare), "show", f"{ref}:{path}")

    def log(self) -> list[str]:
        return git("--git-dir", str(self.bare), "log", "--format=%an|%s|%b%x00", "main").split("\0")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    root = tmp_path / "served"
    bare = init_bare(root / "config.git")
    work = Workdir(tmp_path / "work", bare)
    work.write("envs/prod/apps.yaml", PROD)
    work.write("envs/prod/values.yaml", VALUES)
    work.write("README.md", "config\n")
    work.commit("initial")
    work.push("main")
    with SmartHTTPServer(root, "promoter", PASSWORD) as server:
        yield Config(server, bare, work)


def commit(
    cfg: Config,
    edits: list[Edit],
    password: str = PASSWORD,
    message: str = "Promote\n\nPromotion: ns/p1\n",
) -> CommitResult:
    repo = parse_repo_url(cfg.url)
    return commit_revisions(
        repo, BasicAuth("promoter", password), SourcePolicy(), "main", edits, message, timeout=60
    )


def vmapp_edit(value: str = NEW, path: str = "envs") -> Edit:
    return Edit(
        "web-prod",
        DocumentMatch("VMApplication", "web-prod", "vmgitops.io"),
        path,
        "spec.source.targetRevision",
        value,
    )


def argo_edit(value: str = NEW) -> Edit:
    return Edit(
        "Application/web-prod-k8s",
        DocumentMatch("Application", "web-prod-k8s", "argoproj.io"),
        "envs/prod/apps.yaml",
        "spec.source.targetRevision",
        value,
    )


def leaked(text: str) -> bool:
    basic = base64.b64encode(f"promoter:{PASSWORD}".encode()).decode()
    return PASSWORD in text or basic in text or "pr0m0te%2F" in text


def test_authenticated_push_changes_only_the_values(config: Config) -> None:
    values = Edit(
        "web-prod",
        DocumentMatch("VMApplication", "web-prod", "vmgitops.io"),
        "envs/prod/values.yaml",
        "web.revision",
        NEW,
        explicit_file=True,
    )
    result = commit(config, [vmapp_edit(), argo_edit()])
    assert result.commit and result.attempts == 1
    assert result.changed == ("web-prod", "Application/web-prod-k8s")
    assert git("--git-dir", str(config.bare), "rev-parse", "main") == result.commit
    after = config.show("envs/prod/apps.yaml")
    changed = [(a, b) for a, b in zip(PROD.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        (f"    targetRevision: {OLD}   # promoted", f"    targetRevision: {NEW}   # promoted"),
        (
            f'  source: {{repoURL: "https://g.example/k.git", targetRevision: "{OLD}", path: web}}',
            f'  source: {{repoURL: "https://g.example/k.git", targetRevision: "{NEW}", path: web}}',
        ),
    ]
    author, subject, body = config.log()[0].strip().split("|", 2)
    assert (author, subject) == ("vmgitops", "Promote")
    assert "Promotion: ns/p1" in body
    assert config.server.pushes == 1

    # A file and key of its own (a values file): same value again is no commit at all.
    result = commit(config, [values])
    assert result.commit is not None
    assert config.show("envs/prod/values.yaml") == VALUES.replace("v1  #", f"{NEW}  #").strip()
    again = commit(config, [values])
    assert (again.commit, again.changed) == (None, ())
    assert config.server.pushes == 2


def test_branch_moved_meanwhile_is_rebased_and_pushed_again(config: Config, tmp_path: Path) -> None:
    other = Workdir(tmp_path / "other", config.bare)
    other.run("pull", "-q", "origin", "main")

    def someone_else_pushes() -> None:
        other.write("README.md", "config, edited by someone else\n")
        other.commit("docs")
        other.push("main")

    config.server.before_push = someone_else_pushes
    result = commit(config, [vmapp_edit()])
    assert result.attempts == 2 and result.commit
    assert config.show("README.md") == "config, edited by someone else"
    assert f"targetRevision: {NEW}" in config.show("envs/prod/apps.yaml")
    parent = git("--git-dir", str(config.bare), "rev-parse", f"{result.commit}^")
    assert parent == other.head()  # on top of the other change, not a merge


def test_conflicting_change_meanwhile_is_made_again_on_the_new_tip(
    config: Config, tmp_path: Path
) -> None:
    other = Workdir(tmp_path / "other", config.bare)
    other.run("pull", "-q", "origin", "main")

    def someone_edits_the_same_line() -> None:
        other.write("envs/prod/apps.yaml", PROD.replace(f"{OLD}   # promoted", "main   # by hand"))
        other.commit("by hand")
        other.push("main")

    config.server.before_push = someone_edits_the_same_line
    result = commit(config, [vmapp_edit()])
    assert result.attempts == 2
    text = config.show("envs/prod/apps.yaml")
    assert f"targetRevision: {NEW}   # by hand" in text


def test_wrong_password_pushes_nothing_and_leaks_nothing(config: Config) -> None:
    before = git("--git-dir", str(config.bare), "rev-parse", "main")
    with pytest.raises(GitCommitError) as failed:
        commit(config, [vmapp_edit()], password=PASSWORD + "x")
    assert failed.value.reason == "GitAuthenticationFailed"
    assert "gitCommit.credentials" in failed.value.message
    assert not leaked(str(failed.value)) and not leaked(failed.value.message)
    assert git("--git-dir", str(config.bare), "rev-parse", "main") == before


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        pytest.param(
            Edit("x", DocumentMatch("VMApplication", "web-dev", "vmgitops.io"), "envs", "k", NEW),
            "ManifestNotFound",
            id="no-manifest-of-the-destination",
        ),
        pytest.param(
            Edit("x", DocumentMatch("VMApplication", "web-prod"), "nope.yaml", "k", NEW),
            "ManifestNotFound",
            id="no-such-file",
        ),
        pytest.param(
            Edit("x", DocumentMatch("VMApplication", "web-prod"), "../etc/passwd", "k", NEW),
            "GitCommitPathInvalid",
            id="path-leaving-the-repository",
        ),
        pytest.param(
            Edit(
                "x",
                DocumentMatch("VMApplication", "web-prod"),
                "envs",
                "spec.destination.selector",
                NEW,
            ),
            "ManifestInvalid",
            id="key-that-is-not-a-plain-value",
        ),
    ],
)
def test_bad_edits_commit_nothing(config: Config, edit: Edit, reason: str) -> None:
    before = git("--git-dir", str(config.bare), "rev-parse", "main")
    with pytest.raises(GitCommitError) as failed:
        commit(config, [edit])
    assert failed.value.reason == reason, failed.value.message
    assert git("--git-dir", str(config.bare), "rev-parse", "main") == before
    assert config.server.pushes == 0


def test_missing_branch_is_named(config: Config) -> None:
    repo = parse_repo_url(config.url)
    with pytest.raises(GitCommitError, match="branch 'release' does not exist"):
        commit_revisions(
            repo, BasicAuth("promoter", PASSWORD), SourcePolicy(), "release", [vmapp_edit()], "m"
        )


def test_a_push_made_before_a_restart_is_found_not_pushed_again(config: Config) -> None:
    """The operator died after its push, before recording it: the same edits again push
    nothing and name the commit already pushed (found by the Promotion in its message,
    whole line: ns/p1 is not ns/p1-2)."""
    message = f"Promote web-prod to {NEW[:12]}\n\nPromotion: ns/p1\nRevision: {NEW}\n"
    first = commit(config, [vmapp_edit()], message=message)
    assert first.commit
    config.work.run("pull", "-q", "origin", "main")
    config.work.write("README.md", "config, edited later\n")
    config.work.commit("docs")
    config.work.push("main")
    repo = parse_repo_url(config.url)
    creds = BasicAuth("promoter", PASSWORD)

    def again(identify: tuple[str, ...]) -> CommitResult:
        return commit_revisions(
            repo, creds, SourcePolicy(), "main", [vmapp_edit()], message, identify=identify
        )

    found = again(("Promotion: ns/p1", "Promote ", f"Revision: {NEW}"))
    assert (found.commit, found.changed) == (first.commit, ())
    assert again(("Promotion: ns/p", "Promote ")).commit is None  # a prefix is not the name
    assert again(("Promotion: ns/p1", "Roll back ")).commit is None  # not a rollback
    assert config.server.pushes == 1
