"""The framed record format every probe script prints, and its parser.

A probe's output must survive any byte in a file name, a link target or a file: so
nothing is delimited, everything is length-prefixed. The grammar:

    stream := record* "end 0\\n"
    record := TAG " " COUNT "\\n" field{COUNT}
    field  := LENGTH ":" BYTES "\\n"          (LENGTH counts BYTES, in decimal)

The shell side is `PRELUDE` below. Lengths come from `${#v}`, which counts bytes only
in the C locale, so probes always run as `env LC_ALL=C sh -c SCRIPT ...`.

The other direction, a request: what a probe or the apply script is to work on (paths,
ops) travels as a stream of items on its stdin, never on its command line. sshd hands
the remote shell ONE command string, and Linux refuses a single argument longer than
128 KiB (MAX_ARG_STRLEN, E2BIG): an app of about 1,200 files never fitted. On stdin the
command string stays constant whatever the app's size. A POSIX shell cannot read exact
byte counts without forking, but `IFS= read -r` returns one line exactly, so:

    request := item* ".\n"
    item    := ("+" LINE "\n")* "-" LINE "\n"    (the item's lines, split on "\n")

`-` marks an item's last line, `+` one that continues it, so any item but one holding
NUL (which no argv can carry either) arrives exactly: empty, trailing newlines, leading
dashes, backslashes. The `.` line makes a request that was cut short detectable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Shell helpers shared by the probe scripts: `r TAG FIELD...` prints one record,
#: `hex FILE` prints a file as lowercase hex on one line (NUL-safe, exact).
PRELUDE = r"""
r() {
  _t=$1; shift
  printf '%s %s\n' "$_t" "$#"
  for _f in "$@"; do printf '%s:%s\n' "${#_f}" "$_f"; done
}
hex() { od -An -v -tx1 | tr -d ' \n'; }
"""

#: Shell helper of the scripts that read a request (see above) on fd 8: `item` puts
#: the next item in $_iv and succeeds; at the end it fails with _ist=1 (the "." line)
#: or _ist=2 (input cut short, or not a request).
ITEM_READER = r"""
NL='
'
_ist=0
item() {
  IFS= read -r _il <&8 || { _ist=2; return 1; }
  _iv=${_il#?}
  while :; do
    case $_il in
    -*) return 0;;
    +*) IFS= read -r _il <&8 || { _ist=2; return 1; }; _iv="$_iv$NL${_il#?}";;
    .) _ist=1; return 1;;
    *) _ist=2; return 1;;
    esac
  done
}
"""

_HEADER = re.compile(rb"([a-z][a-z0-9-]*) ([0-9]{1,6})\n")
_LENGTH = re.compile(rb"([0-9]{1,10}):")


class MalformedOutput(ValueError):
    """A probe printed something that is not the record format (or was cut short)."""

    reason = "MalformedOutput"


@dataclass(frozen=True)
class Record:
    tag: str
    fields: tuple[bytes, ...]

    def text(self, i: int) -> str:
        """Field `i` as text; bytes that are not UTF-8 are kept as surrogate escapes."""
        return self.fields[i].decode("utf-8", "surrogateescape") if i < len(self.fields) else ""


def parse_records(data: bytes | str) -> list[Record]:
    """All records of a complete stream; raises MalformedOutput if it does not end."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    records: list[Record] = []
    pos = 0
    while pos < len(raw):
        head = _HEADER.match(raw, pos)
        if head is None:
            raise MalformedOutput(f"expected a record header at byte {pos}")
        tag, count = head.group(1).decode(), int(head.group(2))
        pos = head.end()
        fields = []
        for _ in range(count):
            m = _LENGTH.match(raw, pos)
            if m is None:
                raise MalformedOutput(f"expected a field length at byte {pos} ({tag})")
            start = m.end()
            end = start + int(m.group(1))
            if end >= len(raw) or raw[end : end + 1] != b"\n":
                raise MalformedOutput(f"field of {tag} at byte {start} is cut short")
            fields.append(raw[start:end])
            pos = end + 1
        if tag == "end":
            return records
        records.append(Record(tag, tuple(fields)))
    raise MalformedOutput("the output ended before its end record (cut short?)")


def unhex(field: bytes) -> bytes:
    """The inverse of the shell's `hex`."""
    try:
        return bytes.fromhex(field.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedOutput("a hex field is not hex") from None


def request_stream(items: Iterable[str]) -> bytes:
    """Items -> the request stream that `ITEM_READER` reads back exactly."""
    out = bytearray()
    for item in items:
        if "\x00" in item:
            # No argv can carry NUL either: refusing it here keeps "exactly" true.
            raise ValueError("a request item cannot contain NUL")
        *more, last = item.encode("utf-8", "surrogateescape").split(b"\n")
        for line in more:
            out += b"+" + line + b"\n"
        out += b"-" + last + b"\n"
    out += b".\n"
    return bytes(out)
