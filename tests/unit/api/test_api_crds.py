"""The generated CRDs are structural, their defaults and CEL rules are sound, and crds/
is what the models generate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from vmgitops.api import meta
from vmgitops.api.crdgen import SOURCES, file_name, generate, main, stale_files, write
from vmgitops.api.schema import UnsupportedSchemaError, structural_schema

ROOT = Path(__file__).resolve().parents[3]
CRDS: dict[str, dict[str, Any]] = {name: yaml.safe_load(text) for name, text in generate().items()}
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
ALLOWED_KEYS = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "nullable",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


def nodes(having: str | None = None) -> list[Any]:
    """Every schema node of every CRD (that has the keyword `having`), as test params."""
    return [
        pytest.param(node, id=f"{name.split('_')[1].split('.')[0]}{path}")
        for name, crd in CRDS.items()
        for path, node in walk(schema_of(crd))
        if having is None or having in node
    ]


ALL_NODES = nodes()


@pytest.mark.parametrize("node", ALL_NODES)
def test_every_node_is_structural(node: dict[str, Any]) -> None:
    assert set(node) <= ALLOWED_KEYS, "keyword Kubernetes does not take (e.g. $ref, title)"
    int_or_string = node.get("x-kubernetes-int-or-string", False)
    if "anyOf" in node:
        assert int_or_string and node["anyOf"] == INT_OR_STRING_ANY_OF
    if int_or_string:
        assert "type" not in node
    elif not node.get("x-kubernetes-preserve-unknown-fields"):
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
    assert not ("properties" in node and "additionalProperties" in node)
    if node.get("type") == "array":
        assert "items" in node
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        assert node.get(bound, True) is True, "OpenAPI v3.0 takes a boolean here"
    for name in node.get("required", []):
        assert name in node.get("properties", {}), f"required {name} is not a property"


def _validate(value: Any, node: dict[str, Any]) -> None:
    """The checks the API server makes of a default (a small structural validator)."""
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        assert isinstance(value, int | str) and not isinstance(value, bool)
    elif kind == "object":
        assert isinstance(value, dict)
        for key, sub in value.items():
            _validate(sub, node["properties"][key])
    elif kind == "string":
        assert isinstance(value, str)
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool)
    elif kind == "boolean":
        assert isinstance(value, bool)
    if "enum" in node:
        assert value in node["enum"]
    if isinstance(value, str):
        if "pattern" in node:
            assert re.search(node["pattern"], value), (node["pattern"], value)
        assert node.get("minLength", 0) <= len(value) <= node.get("maxLength", 1 << 30)
    if isinstance(value, int) and not isinstance(value, bool):
        assert node.get("minimum", value) <= value <= node.get("maximum", value)


@pytest.mark.parametrize("node", nodes("default"))
def test_defaults_are_valid(node: dict[str, Any]) -> None:
    _validate(node["default"], node)


def test_status_schemas_have_no_defaults() -> None:
    """The operator decides what a status holds; the API server must not add to it."""
    for crd in CRDS.values():
        for path, node in walk(schema_of(crd)["properties"]["status"]):
            assert "default" not in node, path


_SELF_PATH = re.compile(r"\bself((?:\.[A-Za-z_]\w*)+)")


@pytest.mark.parametrize("node", nodes("x-kubernetes-validations"))
def test_cel_rules_guard_every_optional_field_with_has(node: dict[str, Any]) -> None:
    for validation in node["x-kubernetes-validations"]:
        rule: str = validation["rule"]
        assert validation["message"]
        for match in _SELF_PATH.finditer(rule):
            here = node
            walked = "self"
            names = match.group(1).strip(".").split(".")
            if rule[match.end() : match.end() + 1] == "(":
                names.pop()  # a macro or method, such as self.to.exists(...)
            for name in names:
                assert name in here.get("properties", {}), f"{rule}: no field {name}"
                walked += f".{name}"
                if name not in here.get("required", []):
                    assert f"has({walked})" in rule, f"{rule}: {walked} is optional"
                here = here["properties"][name]


@pytest.mark.parametrize("node", nodes("x-kubernetes-list-map-keys"))
def test_list_map_keys_are_required_or_defaulted(node: dict[str, Any]) -> None:
    item = node["items"]
    for key in node["x-kubernetes-list-map-keys"]:
        assert key in item.get("required", []) or "default" in item["properties"][key]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.info.kind)
def test_crd_names_and_subresources(source: Any) -> None:
    crd = CRDS[file_name(source.info)]
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{source.info.plural}.vmgitops.io"
    assert spec["group"] == "vmgitops.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["vmgitops"]
    assert spec["names"]["shortNames"] == list(source.info.short_names)
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["required"] == ["spec"]
    for name in ("observedGeneration", "conditions"):
        assert name in root["properties"]["status"]["properties"]
    assert root["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-type"] == (
        "map"
    )


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        pytest.param(
            meta.TARGET, ["Address", "User", "Reachable", "Reason", "OS", "Age"], id="vmt"
        ),
        pytest.param(
            meta.APPLICATION, ["Sync", "Health", "Revision", "Targets", "Age"], id="vmapp"
        ),
        pytest.param(meta.PROMOTION, ["Phase", "Revision", "Age"], id="promo"),
        pytest.param(meta.PIPELINE, ["Stages", "Held", "Ready", "Age"], id="vmpipe"),
    ],
)
def test_default_printer_columns(kind: meta.KindInfo, columns: list[str]) -> None:
    printed = CRDS[file_name(kind)]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in printed if not c.get("priority")] == columns
    paths = {c["name"]: c["jsonPath"] for c in printed}
    if kind is meta.TARGET:
        assert paths["Reachable"] == '.status.conditions[?(@.type=="Reachable")].status'
        assert paths["OS"] == ".status.facts.os.prettyName"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.info.kind)
def test_printer_columns_point_at_fields_that_exist(source: Any) -> None:
    root = schema_of(CRDS[file_name(source.info)])
    for column in source.columns:
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        node = root
        for part in re.sub(r"\[\?.*?\]", "[]", path).strip(".").split("."):
            name, _, rest = part.partition("[")
            node = node["properties"][name]
            if rest:
                node = node["items"]


def test_spec_properties_are_the_models_fields_by_alias() -> None:
    for source in SOURCES:
        spec = schema_of(CRDS[file_name(source.info)])["properties"]["spec"]
        aliases = {f.alias or n for n, f in source.spec.model_fields.items()}
        assert set(spec["properties"]) == aliases


def test_crds_dir_is_up_to_date() -> None:
    assert stale_files(ROOT / "crds") == [], "crds/ is stale: run `make crds`"


def test_check_passes_after_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CRDS)
    assert main(["--check", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        pytest.param(lambda d: (d / file_name(meta.TARGET)).write_text("x"), "differs", id="edit"),
        pytest.param(lambda d: (d / file_name(meta.PROMOTION)).unlink(), "missing", id="deleted"),
        pytest.param(
            lambda d: (d / "vmgitops.io_gone.yaml").write_text("x"),
            "not generated",
            id="leftover-kind",
        ),
    ],
)
def test_check_reports_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, problem: str
) -> None:
    write(tmp_path)
    damage(tmp_path)
    assert main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}/ is stale: run `make crds`" in err
    assert problem in err
    write(tmp_path)
    assert stale_files(tmp_path) == []


def test_module_entry_point_is_deterministic(tmp_path: Path) -> None:
    """A fresh interpreter with another hash seed writes the same bytes."""
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run(
        [sys.executable, "-m", "vmgitops.api.crdgen", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
    )
    assert stale_files(tmp_path) == []


class _Union(BaseModel):
    value: int | str


class _Recursive(BaseModel):
    child: _Recursive | None = None


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(_Union, id="union-without-int-or-string-marker"),
        pytest.param(_Recursive, id="recursive-model"),
    ],
)
def test_schema_refuses_what_kubernetes_cannot_express(model: type[BaseModel]) -> None:
    with pytest.raises(UnsupportedSchemaError):
        structural_schema(model)
