"""Hypothesis strategies for malformed documents, derived from a JSON schema (a CRD's
openAPIV3Schema, or the pydantic JSON schema of vmapp.yaml).

A document is first generated close to valid (required fields, enums, patterns, bounds,
so it reaches deep into the schema), then 1 to 3 mutations make it malformed: a wrong
type, a value out of range or off pattern, a dropped required field, an unknown field, a
null, a huge or hostile string, or deep nesting.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

HOSTILE = [
    "",
    " ",
    "-",
    "--help",
    "\x00",
    "a\nb",
    "$(touch /tmp/x)",
    "`id`",
    "'\"",
    "../../etc/passwd",
    "/etc/shadow",
    "\u202e\u200b",
    "😀" * 10,
    "{{ 7*7 }}",
    "%s%n",
    "null",
    "true",
    "0x10",
    "1e309",
    "a" * 5000,
]

Doc = Any


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return _resolve(root["$defs"][name], root)
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**merged, **_resolve(options[0], root)}
    return schema


def _safe_regex(pattern: str) -> bool:
    # hypothesis handles most patterns; skip look-arounds and backreferences it may not.
    return not re.search(r"\(\?[=!<]|\\[1-9]", pattern)


def valid(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Doc]:
    """Values that mostly satisfy `schema` (patterns, bounds, enums, required fields)."""
    s = _resolve(schema, root)
    if "anyOf" in s:
        return st.one_of([valid(o, root, depth + 1) for o in s["anyOf"]])
    if s.get("x-kubernetes-int-or-string"):
        return st.one_of(
            st.integers(0, 100), st.from_regex(r"^(100|[1-9]?[0-9])%$", fullmatch=True)
        )
    if "enum" in s:
        return st.sampled_from(s["enum"])
    kind = s.get("type")
    if kind == "object" or "properties" in s:
        props: dict[str, Any] = s.get("properties") or {}
        required = set(s.get("required") or [])
        if not props:
            extra = s.get("additionalProperties")
            if isinstance(extra, dict) and depth < 6:
                return st.dictionaries(
                    st.from_regex(r"^[a-z][a-z0-9]{0,8}$", fullmatch=True),
                    valid(extra, root, depth + 1),
                    max_size=3,
                )
            return st.just({})
        if depth > 6:
            return st.just({})
        fields = {k: valid(v, root, depth + 1) for k, v in props.items()}
        req = {k: v for k, v in fields.items() if k in required}
        opt = {k: v for k, v in fields.items() if k not in required}
        return st.fixed_dictionaries(req, optional=opt)
    if kind == "array":
        items = s.get("items") or {}
        hi = min(int(s.get("maxItems", 3)), 3)
        lo = min(int(s.get("minItems", 0)), hi)
        return st.lists(valid(items, root, depth + 1), min_size=lo, max_size=hi)
    if kind == "integer":
        lo = int(s.get("minimum", -5))
        hi = int(s.get("maximum", lo + 1000))
        return st.integers(lo, hi)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        lo = int(s.get("minLength", 0))
        hi = min(int(s.get("maxLength", 40)), 60)
        pattern = s.get("pattern")
        if pattern and _safe_regex(pattern):
            return st.from_regex(pattern, fullmatch=True).filter(lambda v: lo <= len(v) <= hi)
        return st.text(min_size=lo, max_size=max(lo, hi))
    return st.none()


def _paths(doc: Doc, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Doc, path: tuple[Any, ...]) -> Doc:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Doc, path: tuple[Any, ...], value: Doc) -> Doc:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    parent[path[-1]] = value
    return doc


def _delete(doc: Doc, path: tuple[Any, ...]) -> Doc:
    if not path:
        return doc
    parent = _get(doc, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and path[-1] < len(parent):
        parent.pop(path[-1])
    return doc


def _bad_value(draw: st.DrawFn, old: Doc) -> Doc:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return None
    if choice == 1:
        return draw(st.sampled_from(HOSTILE))
    if choice == 2:
        return draw(st.integers(-(2**63), 2**63)) if not isinstance(old, int) else str(old)
    if choice == 3:
        return {"unexpected": draw(st.sampled_from(HOSTILE))}
    if choice == 4:
        return [old, old]
    if choice == 5:
        return draw(st.text(max_size=30))
    if choice == 6:
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if choice == 7:
        return not old if isinstance(old, bool) else True
    if choice == 8:
        nested: Doc = "x"
        for _ in range(draw(st.integers(5, 40))):
            nested = {"a": nested}
        return nested
    return -1 if isinstance(old, int) and not isinstance(old, bool) else "-1"


@st.composite
def malformed(draw: st.DrawFn, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Doc:
    """A document from `schema`, then 1 to 3 mutations (see the module doc)."""
    root = root or schema
    doc = draw(valid(schema, root))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["value", "value", "delete", "unknown"]))
        if how == "delete" and path:
            doc = _delete(doc, path)
        elif how == "unknown" and isinstance(_get(doc, path), dict):
            _get(doc, path)[draw(st.sampled_from(["extra", "Spec", "x-y", ""]))] = draw(
                st.sampled_from(HOSTILE)
            )
        else:
            doc = _set(doc, path, _bad_value(draw, _get(doc, path)))
    return doc
