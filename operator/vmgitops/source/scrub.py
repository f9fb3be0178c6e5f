"""Removing credentials from text before it reaches a message or a log. Pure.

git and curl may echo what they were given: a URL with userinfo, an `Authorization`
header (base64 of `user:password`), a token percent-encoded into a URL. A Scrubber knows
the secrets of one git invocation and replaces every spelling of them, plus the userinfo
of every URL, with `***`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from .urls import redact_urls

MASK = "***"
#: Encoded fragments shorter than this are not masked: they would match ordinary words.
MIN_ENCODED_FRAGMENT = 4


def _base64_fragments(secret: bytes) -> set[str]:
    """The base64 text that the secret produces at any byte offset inside a longer value.

    base64 maps 3 bytes to 4 characters, so the encoding of a secret embedded after k
    other bytes depends on k mod 3. For each shift, the characters whose 6 bits all come
    from the secret are the same whatever surrounds it; masking those hides the secret in
    `user:password`, in a Basic header or in any larger blob.
    """
    fragments: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret).decode("ascii")
        start = -(-8 * shift // 6)
        end = (8 * (shift + len(secret))) // 6
        core = encoded[start:end]
        if len(core) >= MIN_ENCODED_FRAGMENT:
            fragments.add(core)
            fragments.add(core.replace("+", "-").replace("/", "_"))
    return fragments


def _percent_variants(text: str) -> set[str]:
    """Upper- and lower-case hex escapes: servers and clients use both."""
    return {text, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)}


def secret_forms(secret: str) -> set[str]:
    """Every spelling of `secret` worth masking: plain, URL-encoded and base64."""
    if not secret:
        return set()
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote_plus(secret), quote(secret)):
        forms |= _percent_variants(encoded)
    forms |= _base64_fragments(secret.encode("utf-8"))
    return forms


class Scrubber:
    """Masks the given secrets (in every spelling) and URL userinfo in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Also mask `secret` from now on."""
        self._forms |= secret_forms(secret)
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        text = redact_urls(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
