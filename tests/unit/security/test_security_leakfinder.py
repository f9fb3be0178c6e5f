"""The leak finder of the secret-canary tests finds what it must (a test of the test)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from chaos.bed import find_leaks, variants

SECRET = "Canary+tok/3f9a=&%x"


@pytest.mark.parametrize(
    "haystack",
    [
        pytest.param(f"password={SECRET}", id="plain"),
        pytest.param(base64.b64encode(SECRET.encode()).decode(), id="base64"),
        pytest.param(
            base64.b64encode(f"deployer:{SECRET}".encode()).decode(), id="base64-basic-auth"
        ),
        pytest.param(
            base64.b64encode(f"xx{SECRET}yy".encode()).decode(), id="base64-other-alignment"
        ),
        pytest.param(f"http://u:{quote(SECRET, safe='')}@h/", id="url-encoded"),
        pytest.param(
            json.dumps({"m": base64.urlsafe_b64encode(SECRET.encode()).decode()}),
            id="base64url-in-json",
        ),
    ],
)
def test_finds_every_spelling(haystack: str) -> None:
    assert find_leaks({"h": haystack}, {"s": SECRET})


def test_finds_nothing_in_clean_text() -> None:
    assert find_leaks({"h": "Canary+tok/3f9a= redacted ***"}, {"s": SECRET}) == []
    assert len(variants(SECRET)) >= 5
