"""Set one scalar in a YAML file and change nothing else. Pure.

A promotion by Git commit must leave a diff a reviewer reads at a glance: the one value,
with comments, order, quoting style and indentation untouched. So the file is never
dumped again: PyYAML's composer gives each node's position in the text, and only the
characters of the old value are replaced (or one line is inserted when the key is
missing). The result is parsed again and compared with what was intended, so a
surprising file is refused rather than damaged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]*$")


class YamlEditError(ValueError):
    """The file cannot be edited safely; the message says where and why."""


@dataclass(frozen=True)
class DocumentMatch:
    """Which document of a file: the one with this kind and metadata.name (and an
    apiVersion in this group), or the only document when kind is None."""

    kind: str | None = None
    name: str | None = None
    group: str | None = None


def split_key(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise YamlEditError(f"key {key!r} is not a dotted path like spec.source.targetRevision")
    return parts


def _scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) and isinstance(node.value, str) else None


def _get(mapping: MappingNode, key: str) -> Node | None:
    for k, v in mapping.value:
        if _scalar(k) == key:
            return v  # type: ignore[no-any-return]
    return None


def _documents(text: str) -> list[Node]:
    try:
        return [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise YamlEditError(f"not valid YAML: {str(exc).splitlines()[0]}") from None


def _matches(doc: Node, match: DocumentMatch) -> bool:
    if not isinstance(doc, MappingNode) or match.kind is None:
        return False
    if _scalar(_get(doc, "kind")) != match.kind:
        return False
    meta = _get(doc, "metadata")
    if not isinstance(meta, MappingNode) or _scalar(_get(meta, "name")) != match.name:
        return False
    if match.group is not None:
        api_version = _scalar(_get(doc, "apiVersion")) or ""
        return api_version.split("/")[0] == match.group
    return True


def find_documents(text: str, match: DocumentMatch) -> list[int]:
    """Indexes of the documents of `text` that `match` selects."""
    docs = _documents(text)
    if match.kind is None:
        return list(range(len(docs)))
    return [i for i, d in enumerate(docs) if _matches(d, match)]


def _render(value: str, style: str | None) -> str:
    """The value as YAML text, in the old value's quoting style where that is safe."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value)
    if _PLAIN_SAFE.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _lookup(doc: Any, parts: Sequence[str]) -> Any:
    node = doc
    for p in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(p)
    return node


def _assign(doc: Any, parts: Sequence[str], value: str) -> None:
    node = doc
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _insert(text: str, mapping: MappingNode, parts: Sequence[str], value: str) -> str:
    """Adds the missing `parts` (a key path) as the first entries of `mapping`."""
    if mapping.flow_style or not mapping.value:
        raise YamlEditError(
            f"cannot add {'.'.join(parts)} to a flow-style or empty mapping at line "
            f"{mapping.start_mark.line + 1}; write the key in the file first"
        )
    first_key = mapping.value[0][0]
    at = int(first_key.start_mark.index)
    column = int(first_key.start_mark.column)
    lines = []
    for depth, part in enumerate(parts):
        indent = " " * (column + 2 * depth)
        last = depth == len(parts) - 1
        lines.append(
            f"{indent if depth else ''}{part}:{' ' + _render(value, None) if last else ''}"
        )
    block = "\n".join(lines) + "\n" + " " * column
    return text[:at] + block + text[at:]


def set_value(text: str, key: str, value: str, match: DocumentMatch) -> tuple[str, str | None]:
    """`text` with `key` of the matching document set to `value`, and the old value.

    Raises YamlEditError when no document or several match, the key runs through a
    non-mapping, the old value is not a scalar, or the result would differ from the
    original in anything but that value.
    """
    parts = split_key(key)
    docs = _documents(text)
    chosen = [i for i, d in enumerate(docs) if _matches(d, match)] if match.kind else []
    if match.kind is None:
        chosen = list(range(len(docs)))
    if not chosen:
        raise YamlEditError(f"no document with kind {match.kind} and name {match.name}")
    if len(chosen) > 1:
        raise YamlEditError(
            f"{len(chosen)} documents match"
            + (f" kind {match.kind} and name {match.name}" if match.kind else "")
            + "; name the document (kind and metadata.name) or split the file"
        )
    index = chosen[0]
    node: Node = docs[index]
    for depth, part in enumerate(parts):
        if not isinstance(node, MappingNode):
            raise YamlEditError(
                f"{'.'.join(parts[:depth]) or 'the document'} is not a mapping "
                f"(line {node.start_mark.line + 1})"
            )
        child = _get(node, part)
        if child is None:
            new_text = _insert(text, node, parts[depth:], value)
            return _checked(text, new_text, index, parts, value), None
        node = child
    if not isinstance(node, ScalarNode) or node.tag not in (
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
    ):
        raise YamlEditError(f"{key} is not a plain value (line {node.start_mark.line + 1})")
    if node.style in ("|", ">"):
        raise YamlEditError(f"{key} is a block scalar (line {node.start_mark.line + 1})")
    old = node.value if node.tag == "tag:yaml.org,2002:str" else None
    if old == value:
        return text, old
    start, end = node.start_mark.index, node.end_mark.index
    if node.tag == "tag:yaml.org,2002:null" and start == end:
        new_text = text[:start] + " " + _render(value, None) + text[end:]
        if start > 0 and text[start - 1] == " ":
            new_text = text[:start] + _render(value, None) + text[end:]
    else:
        new_text = text[:start] + _render(value, node.style) + text[end:]
    return _checked(text, new_text, index, parts, value), str(node.value)


def _checked(old_text: str, new_text: str, index: int, parts: Sequence[str], value: str) -> str:
    """new_text, once its documents are the old ones with only `parts` set to `value`."""
    try:
        before = list(yaml.safe_load_all(old_text))
        after = list(yaml.safe_load_all(new_text))
    except yaml.YAMLError as exc:
        raise YamlEditError(f"the edit would break the file: {str(exc).splitlines()[0]}") from None
    before = [d for d in before if d is not None]
    after = [d for d in after if d is not None]
    if len(before) != len(after) or index >= len(after):
        raise YamlEditError("the edit would change the number of documents")
    expected = before
    _assign(expected[index], parts, value)
    if after != expected or _lookup(after[index], parts) != value:
        raise YamlEditError(
            f"setting {'.'.join(parts)} would change more than that value; edit the file by hand"
        )
    return new_text


def yaml_files(names: Sequence[str]) -> Iterator[str]:
    """The YAML file names among `names`."""
    return (n for n in names if n.endswith((".yaml", ".yml")))
