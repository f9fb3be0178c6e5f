"""Credentials never reach a message: every spelling of a secret is masked."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus

import pytest

from vmgitops.source import GitAuthenticationFailed, GitFetchFailed, Scrubber, secret_forms
from vmgitops.source.failures import excerpt, fetch_failure

TOKEN = "ghp_S3cr3t+T0ken/with=odd&chars"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "leak",
    [
        pytest.param(TOKEN, id="plain"),
        pytest.param(quote(TOKEN, safe=""), id="url-encoded"),
        pytest.param(
            re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(TOKEN, safe="")),
            id="url-encoded-lower-hex",
        ),
        pytest.param(quote_plus(TOKEN), id="form-encoded"),
        pytest.param(quote(TOKEN), id="url-encoded-keeping-slash"),
        pytest.param(b64(TOKEN), id="base64"),
        pytest.param(base64.urlsafe_b64encode(TOKEN.encode()).decode(), id="base64-urlsafe"),
        pytest.param(b64(f"x-access-token:{TOKEN}"), id="basic-header-offset-1"),
        pytest.param(b64(f"ab:{TOKEN}"), id="basic-header-offset-0"),
        pytest.param(b64(f"a:{TOKEN}"), id="basic-header-offset-2"),
        pytest.param(f"Authorization: Basic {b64('deploy:' + TOKEN)}", id="authorization-header"),
        pytest.param(f"https://deploy:{quote(TOKEN, safe='')}@example.com/r.git", id="in-url"),
    ],
)
def test_every_spelling_is_masked(leak: str) -> None:
    scrub = Scrubber([TOKEN])
    text = scrub(f"fatal: something said {leak} here")
    assert TOKEN not in text
    for form in secret_forms(TOKEN):
        assert form not in text
    assert "***" in text or "example.com" in text


def test_password_and_userinfo_of_urls() -> None:
    scrub = Scrubber(["hunter2"])
    line = "fatal: unable to access 'https://bob:hunter2@example.com/r.git/': auth hunter2"
    assert scrub(line) == "fatal: unable to access 'https://example.com/r.git/': auth ***"


def test_no_secrets_only_userinfo() -> None:
    assert Scrubber()("see https://u:p@h/r") == "see https://h/r"


def test_short_secret_plain_form_still_masked() -> None:
    assert Scrubber(["pw"])("the pw is pw") == "the *** is ***"


def test_empty_secret_ignored() -> None:
    assert Scrubber([""])("text") == "text"


def test_longer_form_masked_before_its_prefix() -> None:
    scrub = Scrubber(["abc", "abcdef"])
    assert scrub("xx abcdef yy") == "xx *** yy"


def test_excerpt_is_scrubbed_bounded_and_printable() -> None:
    stderr = "hint: ignore me\n" + "x" * 500 + "\nfatal: token hunter2\x1b[0m\n"
    text = excerpt(stderr, Scrubber(["hunter2"]), limit=80)
    assert "hunter2" not in text and "hint" not in text and "\x1b" not in text
    assert len(text) <= 80 and text.endswith("*** [0m")


@pytest.mark.parametrize(
    ("stderr", "cls", "says"),
    [
        pytest.param(
            "fatal: Authentication failed for 'http://127.0.0.1:1/r.git/'",
            GitAuthenticationFailed,
            "refused the credentials",
            id="http-auth-failed",
        ),
        pytest.param(
            "fatal: could not read Username for 'https://h': terminal prompts disabled",
            GitAuthenticationFailed,
            "refused the credentials",
            id="private-repo-without-credentials",
        ),
        pytest.param(
            "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            GitAuthenticationFailed,
            "refused the credentials",
            id="ssh-key-refused",
        ),
        pytest.param(
            "Host key verification failed.\nfatal: Could not read from remote repository.",
            GitAuthenticationFailed,
            "known_hosts",
            id="ssh-host-key-unknown",
        ),
        pytest.param(
            "fatal: remote error: access denied or repository not exported: /x.git",
            GitFetchFailed,
            "no such repository",
            id="git-daemon-missing-repo",
        ),
        pytest.param(
            "fatal: remote error: no such repository: /x.git",
            GitFetchFailed,
            "no such repository",
            id="git-daemon-informative-missing-repo",
        ),
        pytest.param(
            "fatal: unable to connect to 127.0.0.1:\n"
            "127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
            GitFetchFailed,
            "could not be reached",
            id="server-down",
        ),
        pytest.param(
            "error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503\n"
            "send-pack: unexpected disconnect while reading sideband packet\n"
            "fatal: the remote end hung up unexpectedly",
            GitFetchFailed,
            "answered with an error (HTTP 5xx)",
            id="push-answered-503",
        ),
        pytest.param(
            "fatal: unable to access 'https://h/': The requested URL returned error: 502",
            GitFetchFailed,
            "answered with an error (HTTP 5xx)",
            id="listing-answered-502",
        ),
        pytest.param(
            "fatal: unable to access 'https://h/': Could not resolve host: h",
            GitFetchFailed,
            "could not be reached",
            id="dns-failure",
        ),
        pytest.param(
            "bash: line 1: git-upload-pack: command not found\n"
            "fatal: Could not read from remote repository.",
            GitFetchFailed,
            "no git-upload-pack",
            id="ssh-server-without-git",
        ),
        pytest.param(
            "fatal: something new", GitFetchFailed, "git: fatal: something new", id="other"
        ),
    ],
)
def test_fetch_failure_classified(stderr: str, cls: type[GitFetchFailed], says: str) -> None:
    error = fetch_failure(
        "listing", "https://h/r.git", stderr, timed_out=False, timeout=5, scrub=Scrubber()
    )
    assert type(error) is cls
    assert says in error.message
    assert error.message.startswith("listing https://h/r.git failed")


def test_askpass_noise_is_left_out() -> None:
    stderr = (
        "error: unable to read askpass response from '/usr/bin/false'\n"
        "fatal: could not read Username for 'https://h': terminal prompts disabled"
    )
    assert "askpass" not in excerpt(stderr, Scrubber())


def test_timeout_message() -> None:
    error = fetch_failure(
        "fetching", "git://h/r", "", timed_out=True, timeout=2.5, scrub=Scrubber()
    )
    assert type(error) is GitFetchFailed
    assert "timed out after 2.5s" in error.message
    assert error.retryable


def test_failure_message_never_quotes_the_secret() -> None:
    stderr = (
        f"fatal: Authentication failed for 'https://bot:{TOKEN}@h/r.git/' ({b64('bot:' + TOKEN)})"
    )
    error = fetch_failure(
        "listing", "https://h/r.git", stderr, timed_out=False, timeout=5, scrub=Scrubber([TOKEN])
    )
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert b64("bot:" + TOKEN)[4:20] not in str(error)
