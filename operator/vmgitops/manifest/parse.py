"""vmapp.yaml text -> Manifest, or one ManifestError listing every problem.

The YAML reader is stricter than `yaml.safe_load`: a duplicated key is an error (PyYAML
would keep the last one silently) and anchors/aliases are refused (an alias bomb of a
few hundred bytes would otherwise expand to millions of nodes).
"""

from __future__ import annotations

import difflib
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from vmgitops.manifest.crosscheck import check_manifest
from vmgitops.manifest.errors import MANIFEST_INVALID, ManifestError
from vmgitops.manifest.model import Manifest

MAX_PROBLEMS = 10
TOO_DEEP = "the YAML is nested too deeply"


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not supported", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(problem).split())  # one line (a ReaderError spans two)


def parse_manifest(text: str, filename: str = "vmapp.yaml") -> Manifest:
    """Validate vmapp.yaml text; raise ManifestError(ManifestInvalid) naming every problem."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestError(MANIFEST_INVALID, f"{filename}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ManifestError(MANIFEST_INVALID, f"{filename}: {TOO_DEEP}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ManifestError(MANIFEST_INVALID, f"{filename}: the top level must be a mapping")
    try:
        manifest = Manifest.model_validate(data)
    except RecursionError:
        raise ManifestError(MANIFEST_INVALID, f"{filename}: {TOO_DEEP}") from None
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        raise ManifestError(MANIFEST_INVALID, _join(filename, problems)) from None
    cross = check_manifest(manifest)
    if cross:
        raise ManifestError(MANIFEST_INVALID, _join(filename, cross))
    return manifest


def _join(filename: str, problems: list[tuple[str, str]]) -> str:
    shown = [f"{loc}: {why}" if loc else why for loc, why in problems[:MAX_PROBLEMS]]
    more = len(problems) - MAX_PROBLEMS
    if more > 0:
        shown.append(f"and {more} more")
    return f"{filename}: " + "; ".join(shown)


def location(loc: tuple[int | str, ...]) -> str:
    """('files', 1, 'mode') -> 'files[1].mode'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _describe(err: Any) -> tuple[str, str]:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return location(loc), _unknown_field(loc)
    if kind == "missing":
        return location(loc), "is required"
    if kind == "vmgitops":
        return location(loc), str(err["ctx"]["reason"])
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return location(loc), "should be a mapping"
    if kind == "too_short":
        return location(loc), "must not be empty"
    # pydantic's own messages never quote the input, so no secret can leak through them.
    return location(loc), str(err["msg"]).replace("Input should", "should")


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    name = str(loc[-1])
    known = _fields_at(loc[:-1], Manifest)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field{hint}"


def _fields_at(loc: tuple[int | str, ...], cls: Any) -> list[str]:
    """The camelCase field names of the model found by following `loc` from `cls`."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in cls.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        cls = _model_of(field.annotation)
        if cls is None:
            return []
    return [f.alias or n for n, f in cls.model_fields.items()]


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
