"""URL policy: which repoURLs vmgitops fetches, and how they are shown and cached."""

from __future__ import annotations

import pytest

from vmgitops.source import RepoURLRefused, SourcePolicy, URLRefused, parse_repo_url, redact_urls
from vmgitops.source.urls import host_refusal, is_loopback_host, safe_display

ALLOWED = [
    pytest.param("https://github.com/acme/shop.git", "https", id="https-public-host"),
    pytest.param("http://127.0.0.1:8080/shop.git", "http", id="plain-http-allowed"),
    pytest.param("git://127.0.0.1:9418/shop.git", "git", id="git-daemon"),
    pytest.param("ssh://git@git.example.com:2222/acme/shop.git", "ssh", id="ssh-url-with-port"),
    pytest.param("git@github.com:acme/shop.git", "ssh", id="scp-like-user-host-path"),
    pytest.param("github.com:acme/shop.git", "ssh", id="scp-like-without-user"),
    pytest.param(
        "https://deploy@git.example.com/shop.git", "https", id="user-name-without-password"
    ),
    pytest.param("ssh://git@[::1]/shop.git", "ssh", id="ipv6-loopback-literal"),
    pytest.param("HTTPS://Git.Example.COM/Shop.git", "https", id="scheme-and-host-any-case"),
    pytest.param("git+ssh://git@host/shop.git", "ssh", id="git+ssh-alias"),
    pytest.param("https://10.0.0.7/shop.git", "https", id="private-address-is-not-metadata"),
]

REFUSED = [
    pytest.param("file:///srv/git/shop.git", "file://", id="file-url-reads-operator-disk"),
    pytest.param("/srv/git/shop.git", "local path", id="absolute-local-path"),
    pytest.param("./shop", "local path", id="relative-local-path"),
    pytest.param("shop.git", "local path", id="bare-name-is-a-local-path"),
    pytest.param("ext::sh -c touch% /tmp/pwned", "whitespace", id="ext-transport-with-space"),
    pytest.param("ext::sh", "remote helper", id="ext-transport-runs-commands"),
    pytest.param("fd::3", "remote helper", id="fd-transport"),
    pytest.param("ftp://host/shop.git", "unsupported scheme", id="unsupported-scheme"),
    pytest.param("http://169.254.169.254/latest/meta-data", "link-local", id="aws-metadata-ip"),
    pytest.param("http://metadata.google.internal/x.git", "metadata", id="gcp-metadata-name"),
    pytest.param("http://METADATA.google.internal./x.git", "metadata", id="metadata-name-fqdn-dot"),
    pytest.param("git://[fe80::1]/x.git", "link-local", id="ipv6-link-local"),
    pytest.param("http://[::ffff:169.254.169.254]/x", "link-local", id="ipv4-mapped-metadata"),
    pytest.param("http://2852039166/x.git", "link-local", id="integer-spelled-metadata-ip"),
    pytest.param("http://0xa9fea9fe/x.git", "link-local", id="hex-spelled-metadata-ip"),
    pytest.param("https://[fd00:ec2::254]/x", "metadata", id="aws-ipv6-metadata"),
    pytest.param("git@169.254.169.254:x.git", "link-local", id="scp-like-metadata-ip"),
    pytest.param("https://user:s3cret@host/x.git", "password", id="password-in-url"),
    pytest.param("https://host/x.git\n", "whitespace", id="newline-injection"),
    pytest.param("ssh://-oProxyCommand=touch/x", "host name", id="option-like-host"),
    pytest.param("https:///x.git", "no host", id="missing-host"),
    pytest.param("https://host/", "no repository path", id="missing-path"),
    pytest.param("https://host:99999/x.git", "invalid host or port", id="port-out-of-range"),
    pytest.param("https://host/x.git#frag", "query or fragment", id="fragment"),
    pytest.param("", "empty", id="empty"),
    pytest.param("https://" + "a" * 2100, "longer than", id="too-long"),
]


@pytest.mark.parametrize(("url", "scheme"), ALLOWED)
def test_allowed_urls(url: str, scheme: str) -> None:
    assert parse_repo_url(url).scheme == scheme


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused_urls(url: str, why: str) -> None:
    with pytest.raises(URLRefused) as info:
        parse_repo_url(url)
    assert why in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        pytest.param(
            "file:///srv/git/shop.git", SourcePolicy(allow_file=True), id="file-when-allowed"
        ),
        pytest.param(
            "/srv/git/shop.git", SourcePolicy(allow_file=True), id="abs-path-when-allowed"
        ),
        pytest.param(
            "http://169.254.169.254/x.git",
            SourcePolicy(allow_insecure_hosts=True),
            id="metadata-when-allowed",
        ),
    ],
)
def test_policy_can_allow(url: str, policy: SourcePolicy) -> None:
    parse_repo_url(url, policy)


def test_relative_path_refused_even_when_file_allowed() -> None:
    with pytest.raises(URLRefused, match="absolute path"):
        parse_repo_url("shop.git", SourcePolicy(allow_file=True))


def test_policy_protocols_for_git_allow_protocol() -> None:
    assert SourcePolicy().protocols == ("git", "http", "https", "ssh")
    assert "file" in SourcePolicy(allow_file=True).protocols


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            "HTTPS://Example.com:443/r.git", "https://example.com/r.git", id="default-port-and-case"
        ),
        pytest.param(
            "https://alice@example.com/r.git", "https://bob@example.com/r.git", id="user-ignored"
        ),
        pytest.param(
            "https://example.com/r.git/", "https://example.com/r.git", id="trailing-slash"
        ),
        pytest.param("git://h/r.git", "git://h:9418/r.git", id="git-default-port"),
    ],
)
def test_same_repository_same_cache_key(a: str, b: str) -> None:
    assert parse_repo_url(a).cache_key == parse_repo_url(b).cache_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("https://example.com/a.git", "https://example.com/b.git", id="other-path"),
        pytest.param("https://example.com/a.git", "http://example.com/a.git", id="other-scheme"),
        pytest.param("git://h:9418/a.git", "git://h:9419/a.git", id="other-port"),
        pytest.param(
            "https://example.com/A.git", "https://example.com/a.git", id="path-case-matters"
        ),
    ],
)
def test_different_repository_different_cache_key(a: str, b: str) -> None:
    assert parse_repo_url(a).cache_key != parse_repo_url(b).cache_key


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "https://deploy@example.com/r.git", "https://example.com/r.git", id="https-user"
        ),
        pytest.param("git@github.com:acme/r.git", "github.com:acme/r.git", id="scp-like-user"),
        pytest.param("ssh://git@h:2222/r.git", "ssh://h:2222/r.git", id="ssh-user-and-port"),
        pytest.param("ssh://git@[::1]/r.git", "ssh://[::1]/r.git", id="ipv6"),
    ],
)
def test_display_has_no_userinfo(url: str, shown: str) -> None:
    assert parse_repo_url(url).display == shown


def test_redact_urls_in_free_text() -> None:
    text = "fatal: unable to access 'https://bob:hunter2@example.com/r.git/': 403 and git://x@h/y"
    assert redact_urls(text) == (
        "fatal: unable to access 'https://example.com/r.git/': 403 and git://h/y"
    )


def test_redact_urls_with_at_sign_in_password() -> None:
    assert redact_urls("https://u:p@ss@h/r") == "https://h/r"


def test_safe_display_of_unparsable_url() -> None:
    assert safe_display("ftp://me:pw@h/\x1b[31m") == "ftp://h/?[31m"


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        pytest.param("169.254.1.1", True, id="link-local-v4"),
        pytest.param("fe80::abcd", True, id="link-local-v6"),
        pytest.param("64:ff9b::a9fe:a9fe", True, id="nat64-embedded-metadata"),
        pytest.param("2002:a9fe:a9fe::1", True, id="6to4-embedded-link-local"),
        pytest.param("100.100.100.200", True, id="alibaba-metadata"),
        pytest.param("instance-data", True, id="aws-metadata-name"),
        pytest.param("127.0.0.1", False, id="loopback-fine"),
        pytest.param("example.com", False, id="public-name-fine"),
        pytest.param("deadbeef", False, id="hex-looking-name-is-a-name"),
    ],
)
def test_host_refusal(host: str, refused: bool) -> None:
    assert (host_refusal(host) is not None) is refused


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("localhost", True, id="localhost"),
        pytest.param("127.0.10.2", True, id="any-127"),
        pytest.param("::1", True, id="v6-loopback"),
        pytest.param("example.com", False, id="remote"),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_refused_error_type_for_conditions() -> None:
    assert RepoURLRefused.reason == "RepoURLRefused"
    assert RepoURLRefused.retryable is False
