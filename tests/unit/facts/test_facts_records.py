"""The length-prefixed record format: exact bytes in, exact bytes out, or a clear error."""

from __future__ import annotations

import pytest

from vmgitops.facts.records import MalformedOutput, Record, parse_records, unhex


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
