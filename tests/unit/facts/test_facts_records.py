"""The length-prefixed record format: exact bytes in, exact bytes out, or a clear error."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vmgitops.facts.records import (
    ITEM_READER,
    PRELUDE,
    MalformedOutput,
    Record,
    parse_records,
    request_stream,
    unhex,
)

SHELLS = [s for s in ("sh", "dash", "bash", "busybox") if shutil.which(s)]
#: Reads a request on stdin and prints its items back as one record.
ECHO = (
    PRELUDE
    + ITEM_READER
    + r"""
exec 8<&0 </dev/null
set --
while item; do set -- "$@" "$_iv"; done
r items "$@"
r state "$_ist"
r end
"""
)
TRICKY = [
    "",
    "plain",
    "\n",
    "\n\n",
    "a\n",
    "\nb",
    "-",
    "+",
    ".",
    "-.",
    "\n.\n",
    "  spaces  ",
    "\ttab\t",
    "back\\slash\\",
    "\\",
    "$(touch /tmp/vmgt-pwned) `id` ${HOME} $HOME '\" ;|&",
    "caf\u00e9 \U0001f600",
    "\r\n\r",
    "\udcff\udc80 not UTF-8",
    "x" * 200_000,
]


@pytest.mark.parametrize(
    ("stream", "records"),
    [
        pytest.param(b"end 0\n", [], id="nothing but the end"),
        pytest.param(b"a 1\n3:xyz\nend 0\n", [Record("a", (b"xyz",))], id="one field"),
        pytest.param(
            b"a 2\n0:\n1:\n\nend 0\n", [Record("a", (b"", b"\n"))], id="empty and newline fields"
        ),
        pytest.param(
            b"a 1\n5:x\ny\nz\nend 0\n", [Record("a", (b"x\ny\nz",))], id="newlines inside"
        ),
        pytest.param(
            b"p 1\n4:\x00\xff:\n\nend 0\n", [Record("p", (b"\x00\xff:\n",))], id="any byte"
        ),
        pytest.param(
            b"a 0\nb 1\n1:1\nend 0\ngarbage",
            [Record("a", ()), Record("b", (b"1",))],
            id="anything after the end is ignored",
        ),
        pytest.param(
            "n 1\n2:\u00e9\nend 0\n".encode(),
            [Record("n", ("\u00e9".encode(),))],
            id="utf-8 counted in bytes",
        ),
    ],
)
def test_parse(stream: bytes, records: list[Record]) -> None:
    assert parse_records(stream) == records


@pytest.mark.parametrize(
    ("stream", "fragment"),
    [
        pytest.param(b"", "ended before its end record", id="empty output"),
        pytest.param(b"a 1\n3:xyz\n", "ended before its end record", id="cut before end"),
        pytest.param(b"a 1\n9:xyz\nend 0\n", "cut short", id="length longer than data"),
        pytest.param(b"a 1\n2:xyz\nend 0\n", "cut short", id="length shorter than data"),
        pytest.param(b"A 1\n1:x\nend 0\n", "record header", id="bad tag"),
        pytest.param(b"a one\n", "record header", id="bad count"),
        pytest.param(b"a 1\nx:y\nend 0\n", "field length", id="bad length"),
        pytest.param(b"sh: 1: stat: not found\n", "record header", id="shell noise on stdout"),
    ],
)
def test_malformed(stream: bytes, fragment: str) -> None:
    with pytest.raises(MalformedOutput, match=fragment):
        parse_records(stream)


def test_text_keeps_undecodable_bytes() -> None:
    rec = Record("p", (b"a\xffb",))
    assert rec.text(0).encode("utf-8", "surrogateescape") == b"a\xffb"
    assert rec.text(5) == ""


def test_unhex() -> None:
    assert unhex(b"00ff41") == b"\x00\xffA"
    with pytest.raises(MalformedOutput):
        unhex(b"zz")


@pytest.mark.parametrize("shell", SHELLS)
def test_a_request_reaches_the_shell_exactly(shell: str) -> None:
    argv = ["busybox", "sh"] if shell == "busybox" else [shell]
    done = subprocess.run(
        [*argv, "-c", ECHO, "echo"],
        input=request_stream(TRICKY),
        capture_output=True,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    items, state = parse_records(done.stdout)
    assert [f.decode("utf-8", "surrogateescape") for f in items.fields] == TRICKY
    assert state.fields == (b"1",)  # ended at the "." line


@pytest.mark.parametrize("cut", [-2, -1, 5], ids=["no end line", "end line cut", "mid-item"])
def test_a_request_cut_short_is_told_apart(cut: int) -> None:
    data = request_stream(["a", "b\nc"])[:cut]
    done = subprocess.run(
        ["sh", "-c", ECHO, "echo"], input=data, capture_output=True, timeout=60, check=True
    )
    assert parse_records(done.stdout)[1].fields == (b"2",)


def test_nul_cannot_be_a_request_item() -> None:
    with pytest.raises(ValueError, match="NUL"):
        request_stream(["a\x00b"])
