"""OpenSSH known_hosts files, to pin the host keys of imported targets.

Each line is `[@marker] patterns keytype base64 [comment]`. Patterns are a comma list
of host names or addresses, `[host]:port` for a port other than 22, with `*`/`?`
wildcards and `!` negation, or a hashed name `|1|salt|hmac` (`HashKnownHosts`, the
default on Debian and Ubuntu). Hashed names are matched the way ssh matches them: by
hashing the name looked up with the entry's salt. `@revoked` keys are never pinned;
`@cert-authority` lines are not used (they are reported when they match a host).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from vmgitops.inventory.model import Location

CERT_AUTHORITY = "@cert-authority"
REVOKED = "@revoked"
_MARKERS = (CERT_AUTHORITY, REVOKED)


@dataclass(frozen=True)
class Entry:
    """One usable line of the file."""

    location: Location
    key: str
    """The key as "type base64", the form spec.hostKey.publicKeys holds."""
    patterns: tuple[str, ...] = ()
    hashed: tuple[bytes, bytes] | None = None
    """(salt, hmac-sha1 of the name) for a hashed line."""
    marker: str | None = None
    matched: list[str] = field(default_factory=list, compare=False)
    _pads: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hashed is not None:
            # HMAC-SHA1 by hand with the pads hashed once: every host of a large inventory
            # is tried against every hashed line, and this is 2x faster than hmac.new.
            key = self.hashed[0]
            if len(key) > 64:
                key = hashlib.sha1(key, usedforsecurity=False).digest()
            key = key.ljust(64, b"\0")
            inner = hashlib.sha1(bytes(b ^ 0x36 for b in key), usedforsecurity=False)
            outer = hashlib.sha1(bytes(b ^ 0x5C for b in key), usedforsecurity=False)
            object.__setattr__(self, "_pads", (inner, outer))

    def matches(self, lookup: str) -> bool:
        """Whether this line is about `lookup` (`host` or `[host]:port`)."""
        if self.hashed is not None and self._pads is not None:
            inner, outer = (pad.copy() for pad in self._pads)
            inner.update(lookup.encode())
            outer.update(inner.digest())
            return bool(outer.digest() == self.hashed[1])
        positive = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if _wildcard(pattern[1:] if negated else pattern).match(lookup):
                if negated:
                    return False
                positive = True
        return positive

    @property
    def literal_names(self) -> tuple[str, ...] | None:
        """The names when the line has only plain names (no wildcard, negation or hash),
        so that it can be found by name rather than tried against every host."""
        if self.hashed is not None or any(c in p for p in self.patterns for c in "*?!"):
            return None
        return self.patterns


@dataclass(frozen=True)
class HostKeys:
    """What the file says about one host."""

    keys: list[str]
    revoked: list[str]
    cert_authorities: list[Location]


@dataclass
class KnownHosts:
    """A parsed known_hosts file and the lines that could not be used."""

    source: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[tuple[Location, str]] = field(default_factory=list)
    _index: dict[str, list[int]] | None = field(default=None, repr=False, compare=False)
    _wild: list[int] = field(default_factory=list, repr=False, compare=False)
    _hashed: list[tuple[int, Any, Any, bytes]] = field(
        default_factory=list, repr=False, compare=False
    )

    def lookup(self, names: list[str], port: int) -> HostKeys:
        """The keys for a host reached as any of `names` (address first) on `port`."""
        lookups = [
            (name.lower() if port == 22 else f"[{name.lower()}]:{port}")
            for name in dict.fromkeys(names)
        ]
        keys: list[str] = []
        revoked: list[str] = []
        cas: list[Location] = []
        for entry in self._matching(lookups):
            entry.matched.append(lookups[0])
            if entry.marker == REVOKED:
                revoked.append(entry.key)
            elif entry.marker == CERT_AUTHORITY:
                cas.append(entry.location)
            elif entry.key not in keys:
                keys.append(entry.key)
        return HostKeys([k for k in keys if k not in revoked], revoked, cas)

    def _matching(self, lookups: list[str]) -> list[Entry]:
        """The entries about any of `lookups`, in file order. Plain names are found in an
        index; wildcard and hashed lines are tried one by one, the hashed ones in a tight
        loop (a large fleet tries thousands of hosts against thousands of lines)."""
        if self._index is None:
            self._index = {}
            for position, entry in enumerate(self.entries):
                names = entry.literal_names
                if entry.hashed is not None and entry._pads is not None:
                    inner, outer = entry._pads
                    self._hashed.append((position, inner, outer, entry.hashed[1]))
                elif names is None:
                    self._wild.append(position)
                for name in names or ():
                    self._index.setdefault(name, []).append(position)
        hits: set[int] = set()
        for lookup in lookups:
            hits.update(self._index.get(lookup, ()))
        for position in self._wild:
            if any(self.entries[position].matches(lookup) for lookup in lookups):
                hits.add(position)
        encoded = [lookup.encode() for lookup in lookups]
        for position, inner_pad, outer_pad, digest in self._hashed:
            for candidate in encoded:
                inner = inner_pad.copy()
                inner.update(candidate)
                outer = outer_pad.copy()
                outer.update(inner.digest())
                if outer.digest() == digest:
                    hits.add(position)
                    break
        return [self.entries[p] for p in sorted(hits)]

    def unmatched_hashed(self) -> int:
        """Hashed lines that matched no host looked up so far."""
        return sum(1 for e in self.entries if e.hashed is not None and not e.matched)


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """ssh's host patterns: `*` and `?` are wildcards, everything else is literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$")


def _valid_key(keytype: str, blob64: str) -> bool:
    try:
        blob = base64.b64decode(blob64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(blob) < 4:
        return False
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length] == keytype.encode()


def _hashed(pattern: str) -> tuple[bytes, bytes] | None:
    parts = pattern.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return None
    try:
        return base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_known_hosts(text: str, source: str) -> KnownHosts:
    """Parse a known_hosts file; a bad line is recorded in `problems`, as ssh skips it."""
    out = KnownHosts(source)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        loc = Location(source, lineno)
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = None
        if fields[0].startswith("@"):
            if fields[0] not in _MARKERS:
                out.problems.append((loc, f"unknown marker '{fields[0]}'; line skipped"))
                continue
            marker = fields.pop(0)
        if len(fields) < 3:
            out.problems.append(
                (loc, "not of the form 'hosts keytype base64 [comment]'; line skipped")
            )
            continue
        patterns, keytype, blob = fields[0], fields[1], fields[2]
        if not _valid_key(keytype, blob):
            out.problems.append(
                (loc, f"the {keytype} key is not valid base64 of that key type; line skipped")
            )
            continue
        key = f"{keytype} {blob}"
        if patterns.startswith("|"):
            hashed = _hashed(patterns)
            if hashed is None:
                out.problems.append((loc, "malformed hashed host name; line skipped"))
                continue
            out.entries.append(Entry(loc, key, hashed=hashed, marker=marker))
        else:
            out.entries.append(
                Entry(loc, key, patterns=tuple(patterns.lower().split(",")), marker=marker)
            )
    return out
