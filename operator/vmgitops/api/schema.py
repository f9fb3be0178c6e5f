"""Turn a pydantic model's JSON schema into a Kubernetes structural OpenAPI v3 schema.

Kubernetes accepts a subset of OpenAPI: no $ref, anyOf only for int-or-string, no
`additionalProperties` beside `properties`, boolean exclusiveMinimum, and every default
valid against its schema. Anything outside what is handled here raises
`UnsupportedSchemaError`, so that a new kind of field fails the generator instead of
producing a CRD the API server refuses.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

_PASSTHROUGH = frozenset(
    {
        "type",
        "format",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "nullable",
    }
)
_DROPPED = frozenset({"title", "$defs"})
_SINGLE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")

Schema = dict[str, Any]


class UnsupportedSchemaError(ValueError):
    """A model uses a JSON schema construct that has no structural equivalent."""


def structural_schema(model: type[BaseModel], *, defaults: bool = True) -> Schema:
    """The structural schema of `model`, by alias, with every $ref inlined.

    With `defaults=False` all defaults are left out (status schemas: the operator, not
    the API server, decides what a status holds).
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _Converter(definitions, defaults).convert(raw, path=model.__name__, seen=())


class _Converter:
    def __init__(self, definitions: Mapping[str, Schema], defaults: bool) -> None:
        self._definitions = definitions
        self._defaults = defaults

    def convert(self, node: Schema, *, path: str, seen: tuple[str, ...]) -> Schema:
        node = dict(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            if name in seen:
                raise UnsupportedSchemaError(f"{path}: recursive reference to {name}")
            target = self.convert(self._definitions[name], path=path, seen=(*seen, name))
            return {**target, **self.convert(node, path=path, seen=seen)} if node else target
        if "allOf" in node and len(node["allOf"]) == 1:
            inner = self.convert(node.pop("allOf")[0], path=path, seen=seen)
            return {**inner, **self.convert(node, path=path, seen=seen)}
        if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
            return self._optional(node, path=path, seen=seen)
        return self._plain(node, path=path, seen=seen)

    def _optional(self, node: Schema, *, path: str, seen: tuple[str, ...]) -> Schema:
        """`X | None`: the API server drops nulls of non-nullable fields, so keep only X."""
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise UnsupportedSchemaError(f"{path}: unions other than `X | None` and int-or-string")
        if node.get("default", 0) is None:
            del node["default"]
        inner = self.convert(branches[0], path=path, seen=seen)
        return {**inner, **self.convert(node, path=path, seen=seen)} if node else inner

    def _plain(self, node: Schema, *, path: str, seen: tuple[str, ...]) -> Schema:
        out: Schema = {}
        for key, value in node.items():
            if key in _DROPPED:
                continue
            if key in _PASSTHROUGH or key.startswith("x-kubernetes-"):
                out[key] = copy.deepcopy(value)
            elif key == "anyOf":  # int-or-string: the exact shape Kubernetes requires
                out[key] = [{"type": "integer"}, {"type": "string"}]
            elif key == "description":
                out[key] = _SINGLE_NEWLINE.sub(" ", value).strip()
            elif key == "default":
                if self._defaults and value is not None:
                    out[key] = copy.deepcopy(value)
            elif key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
            elif key == "required":
                out[key] = sorted(value)
            elif key == "properties":
                out[key] = {
                    name: self.convert(sub, path=f"{path}.{name}", seen=seen)
                    for name, sub in value.items()
                }
            elif key == "items":
                out[key] = self.convert(value, path=f"{path}[]", seen=seen)
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out[key] = self.convert(value, path=f"{path}.*", seen=seen)
                elif value is True:
                    out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                raise UnsupportedSchemaError(f"{path}: unsupported JSON schema keyword {key!r}")
        if "properties" in out:
            out.pop("additionalProperties", None)
            out.pop("x-kubernetes-preserve-unknown-fields", None)
        elif out.get("type") == "object" and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True  # a free-form dict[str, Any]
        return out
