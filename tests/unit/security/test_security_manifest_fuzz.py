"""Malformed vmapp.yaml files (hypothesis): generated from the manifest's own schema and
then broken, plus raw YAML hostility (alias bombs, duplicate keys, deep nesting, binary,
tabs, huge numbers). Each load and render ends in a ManifestError with a known reason
and a one-line message, or in a valid app: never another exception (0 crashes).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chaos import bed, figures
from security.schemagen import malformed
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.model import Manifest
from vmgitops.manifest.render import render

REASONS = {"ManifestInvalid", "ManifestNotFound", "ManifestTooLarge", "PathEscape", "TemplateError"}
SCHEMA = Manifest.model_json_schema(by_alias=True)
RAW = [
    "a: &a [1]\nb: [*a, *a]\n",
    "files: []\nfiles: []\n",
    "\tfiles: []\n",
    "files:\n" + "  - " * 200 + "x\n",
    "[" * 5000,
    "files: 1e99999\n",
    "release: {keep: 99999999999999999999999}\n",
    "\x00\x01\x02",
    "--- !!python/object/apply:os.system ['touch /tmp/x']\n",
    "files: !!binary aGVsbG8=\n",
    "? [a, b]\n: c\n",
    "files:\n  - {path: /etc/x, content: '{{ range(10**9) | list }}', template: true}\n",
    "files:\n  - {path: /etc/x, content: \"{{ 'x' * 10**9 }}\", template: true}\n",
    "files:\n  - {path: /etc/x, content: '{{ 9 ** 9 ** 9 }}', template: true}\n",
    "files:\n  - {path: /etc/x, content: '{{ self.__init__ }}', template: true}\n",
    "files:\n  - {path: /etc/x, content: '{% for i in range(99999999) %}{% endfor %}', "
    "template: true}\n",
    "files:\n  - {path: /etc/x, content: '{{ params.nope }}', template: true}\n",
    "files:\n  - {path: /etc/x, content: '{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}', "
    "template: true}\n",
]

seen: Counter[str] = Counter()
crashes: list[str] = []


def check(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        (folder / "vmapp.yaml").write_bytes(data)
        try:
            app = load_app(folder)
            render(app, {"greeting": "hi"}, TargetInfo("vm1", "127.0.0.1", {}), {}, "rev1")
        except ManifestError as exc:
            if exc.reason not in REASONS or not exc.message or "\n" in exc.message:
                crashes.append(f"unclear {exc.reason}: {exc.message!r} for {text[:200]!r}")
            seen[exc.reason] += 1
            return
        except RecursionError:
            crashes.append(f"RecursionError for {text[:200]!r}")
            return
        except Exception as exc:  # a crash of the loader: what this test is for
            crashes.append(f"{type(exc).__name__}: {exc} for {text[:200]!r}")
            return
        seen["valid"] += 1


def dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, width=200)
    except yaml.YAMLError:
        return repr(doc)


@settings(
    max_examples=bed.scale(300, 1500),
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(malformed(SCHEMA))
def test_generated_malformed_manifests(doc: Any) -> None:
    check(dump(doc))


@settings(max_examples=100, deadline=None, database=None, phases=[Phase.generate])
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_and_text(data: bytes | str) -> None:
    check(data)


def test_hostile_yaml_and_templates() -> None:
    for text in RAW:
        check(text)


def test_manifest_fuzz_summary() -> None:
    """Runs last in this module: the figures of the three tests above."""
    total = sum(seen.values())
    area = "3 bad input"
    refused = total - seen["valid"]
    figures.at_least(
        area, "malformed vmapp.yaml files refused with a specific reason", refused, 100
    )
    figures.record(
        area, "vmapp.yaml refusals by reason", dict(sorted(seen.items())), "informative", True
    )
    figures.count(area, "vmapp.yaml loader/renderer crashes or unclear errors", len(crashes))
    assert not crashes, crashes[:5]
