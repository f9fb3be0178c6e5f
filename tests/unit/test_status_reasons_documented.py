"""Every reason the operator can write is documented in docs/status-reasons.md.

The reasons are collected from the source with `ast` (no import, no I/O), wherever the
code makes one:

* a keyword argument `reason=...` of any call (Condition, StageHold, kopf.event, ...);
* a positional argument of a call whose callee, defined in the package, names that
  parameter `reason` (ManifestError, EngineError, PlanIssue, ProbeOutcome, Decision,
  `w.issue`, the conditions' `put`, the pipeline's `_write`...), or of `event(type,
  reason, message)` (the EventPoster callables);
* a class attribute `reason = ...` (TransportError, SourceError, FenceUnreadable...);
* the members of an enum class named `...Reason`;
* a local variable named `reason` (`reason, message = "Held", ...`);
* a `(reason, message)` pair: a tuple of a CamelCase string and a message
  (the VMApplication's Git and manifest errors);
* `abort REASON` in the apply script that runs on the VM;
* the values of the phase enums in PHASES (shown next to the reasons).

Each such argument is resolved to its possible values: string literals, module
constants (also imported ones), enum members, `x if c else y`, `a or b`, and local
assignments. An expression that cannot be resolved must be listed in DYNAMIC, saying
where its values are collected instead, so a new way of making a reason fails here
instead of going unnoticed.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "vmgitops"
DOC = ROOT / "docs" / "status-reasons.md"

#: Not scanned: the CLI and the Ansible import read reasons but write none; metrics
#: only label time series with reasons made elsewhere.
SKIPPED = ("cli/", "inventory/", "metrics.py")

#: A reason: CamelCase, one word, at least one lower-case letter (not HEAD, DELETED).
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")
#: `abort REASON "message"` in the apply script's shell text (executor/script.py).
SHELL_ABORT = re.compile(r"\babort ([A-Z][A-Za-z0-9]+)\b")

#: Callables that are not a `def` of the package, with their parameter names.
EXTRA_SIGNATURES = {
    # Deps.event / PipelineDeps.event / the handlers' `post`: an EventPoster.
    "event": ["type", "reason", "message"],
}

#: Expressions passed as a reason whose values cannot be read off the call, and where
#: they are collected instead. A str value names an enum whose every value is a reason.
DYNAMIC: dict[str, str | None] = {
    # The `reason` of an error: its class attribute or constructor argument, collected.
    "exc.reason": None,
    "e.reason": None,
    "err.reason": None,
    "failure.reason": None,
    "last.reason": None,
    "str(exc.reason)": None,
    # `abort REASON` records of the apply script, collected from the script's text.
    "rec.text(0)": None,
    # A ProbeOutcome's reason (Reachable), collected at the ProbeOutcome(...) calls.
    "outcome.reason": None,
    "t.reason": None,
    # A pipeline Event's reason, collected at the Event(...) calls.
    "ev.reason": None,
    # A ResolveResult's reason (vmgitops.io/resolve-command), collected where made.
    "result.reason": None,
    # A Promotion's reason kept or carried on (Decision, WriteOutcome, status.reason of
    # a pipeline's Promotion), collected where each is made.
    "decision.reason": None,
    "underway.reason": None,
    "status.reason": None,
    "facts.status.reason": None,
    "a.reason": None,
    "status.get('reason')": None,
    # The (reason, message) error of a VMApplication's source, collected as pairs.
    "error[0]": None,
    # A local `reason` unpacked from a (reason, message) pair (first_status()'s loop,
    # a Promotion's refused repoURL), collected as pairs.
    "reason": None,
    # The Healthy condition's reason is the application's health.
    "health.value": "Health",
    # A Promotion's Events are named after its phase (and so is a reason-less phase).
    "phase.value": "PromotionPhase",
    "f'{decision.phase.value}'": "PromotionPhase",
}

#: Enums whose every value is documented too, though not a reason: the phases users see
#: next to the reasons (a Promotion's phases are also its Events' reasons).
PHASES = ("OperationPhase", "PromotionPhase")


@dataclass
class Source:
    module: str
    path: Path
    tree: ast.Module
    constants: dict[str, str] = field(default_factory=dict)
    #: local name -> (module, name) of `from module import name`.
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: names bound by `import x` (a call `x.f(...)` is not one of ours).
    modules: set[str] = field(default_factory=set)
    #: def or class name -> parameter lists (several: methods of different classes).
    signatures: dict[str, list[list[str]]] = field(default_factory=dict)


@dataclass
class Found:
    reasons: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: unparsed expression -> where it was passed as a reason.
    dynamic: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Source]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(SKIPPED):
            continue
        src = Source(_module_name(path), path, ast.parse(path.read_text(), str(path)))
        out[src.module] = src
    return out


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def _fields(cls: ast.ClassDef, classes: dict[str, ast.ClassDef], depth: int = 0) -> list[str]:
    """A dataclass's fields in order, those of its bases (defined here) first."""
    inherited: list[str] = []
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes and depth < 10:
            inherited += _fields(classes[base.id], classes, depth + 1)
    own = [
        s.target.id
        for s in cls.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and not ast.unparse(s.annotation).startswith("ClassVar")
    ]
    return inherited + own


@dataclass
class Package:
    sources: dict[str, Source]
    #: enum class name -> member -> value.
    enums: dict[str, dict[str, str]]

    @classmethod
    def load(cls) -> Package:
        sources = _sources()
        enums: dict[str, dict[str, str]] = {}
        for src in sources.values():
            classes = {c.name: c for c in ast.walk(src.tree) if isinstance(c, ast.ClassDef)}
            sigs: dict[str, list[list[str]]] = defaultdict(list)
            for node in ast.walk(src.tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    sigs[node.name].append(_params(node))
                elif isinstance(node, ast.ClassDef):
                    init = next(
                        (
                            s
                            for s in node.body
                            if isinstance(s, ast.FunctionDef) and s.name == "__init__"
                        ),
                        None,
                    )
                    sigs[node.name].append(_params(init) if init else _fields(node, classes))
                    if {ast.unparse(b) for b in node.bases} & {"StrEnum", "Enum", "str, Enum"}:
                        enums[node.name] = {
                            t.id: s.value.value
                            for s in node.body
                            if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
                            for t in s.targets
                            if isinstance(t, ast.Name) and isinstance(s.value.value, str)
                        }
            src.signatures = dict(sigs)
            for node in src.tree.body:
                if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
                    node.value, ast.Constant
                ):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name) and isinstance(node.value.value, str):
                            src.constants[t.id] = node.value.value
                elif isinstance(node, ast.ImportFrom) and node.module:
                    for a in node.names:
                        src.imported[a.asname or a.name] = (node.module, a.name)
                elif isinstance(node, ast.Import):
                    src.modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
        return cls(sources, enums)

    def constant(self, module: str, name: str, depth: int = 0) -> str | None:
        src = self.sources.get(module)
        if src is None or depth > 10:
            return None
        if name in src.constants:
            return src.constants[name]
        if name in src.imported:
            return self.constant(*src.imported[name], depth=depth + 1)
        return None

    def reason_positions(self, src: Source, call: ast.Call) -> set[int]:
        """Indexes of the positional arguments of `call` that its callee calls `reason`."""
        func = call.func
        sigs: list[list[str]] = []
        if isinstance(func, ast.Name):
            name = func.id
            if name in src.signatures:
                sigs = src.signatures[name]
            elif name in src.imported:
                module, original = src.imported[name]
                other = self.sources.get(module)
                sigs = other.signatures.get(original, []) if other else []
        elif isinstance(func, ast.Attribute):
            name = func.attr
            if isinstance(func.value, ast.Name) and func.value.id in src.modules:
                return set()  # asyncio.wait(...), kopf.event(...): keywords only
            if name in src.signatures:
                sigs = src.signatures[name]
            else:
                sigs = [s for o in self.sources.values() for s in o.signatures.get(name, [])]
        else:
            return set()
        if name.startswith("__"):
            return set()
        sigs = [*sigs, *([EXTRA_SIGNATURES[name]] if name in EXTRA_SIGNATURES else [])]
        return {s.index("reason") for s in sigs if "reason" in s}


def _prose(e: ast.expr) -> bool:
    """Human text (a sentence), never a reason: an f-string or a join with spaces."""
    if isinstance(e, ast.BinOp):
        return _prose(e.left) or _prose(e.right)
    if isinstance(e, ast.JoinedStr):
        return any(
            isinstance(v, ast.Constant) and isinstance(v.value, str) and " " in v.value
            for v in e.values
        )
    return isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "join"


def _message_like(e: ast.expr) -> bool:
    if isinstance(e, ast.JoinedStr):
        return True
    if isinstance(e, ast.Constant):
        return isinstance(e.value, str) and " " in e.value
    if isinstance(e, ast.Call):
        return isinstance(e.func, ast.Name) and e.func.id == "str"
    name = e.id if isinstance(e, ast.Name) else e.attr if isinstance(e, ast.Attribute) else ""
    return name in ("message", "msg", "text") or name.endswith("_message")


class _Collector(ast.NodeVisitor):
    def __init__(self, pkg: Package, src: Source, found: Found) -> None:
        self.pkg, self.src, self.found = pkg, src, found
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []

    def where(self, node: ast.AST) -> str:
        rel = self.src.path.relative_to(ROOT).as_posix()
        return f"{rel}:{getattr(node, 'lineno', '?')}"

    # -- resolving an expression to its possible values ------------------------------

    def _locals(self, name: str) -> Iterator[ast.expr] | None:
        """What a local variable is assigned in the enclosing function (None: it is a
        parameter, or not local)."""
        if not self.functions:
            return None
        fn = self.functions[-1]
        if name in [a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]:
            return None
        values: list[ast.expr] = []
        for node in ast.walk(fn):
            if not isinstance(node, ast.Assign):
                continue
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id == name:
                    values.append(node.value)
                elif isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    values += [
                        v
                        for n, v in zip(t.elts, node.value.elts, strict=False)
                        if isinstance(n, ast.Name) and n.id == name
                    ]
        return iter(values) if values else None

    def values(self, e: ast.expr, node: ast.AST, *, strict: bool = True) -> set[str]:
        """The strings `e` can be; an unresolvable `e` is recorded (when `strict`)."""
        if isinstance(e, ast.Constant):
            return {e.value} if isinstance(e.value, str) else set()
        if isinstance(e, ast.IfExp):
            return self.values(e.body, node, strict=strict) | self.values(
                e.orelse, node, strict=strict
            )
        if isinstance(e, ast.BoolOp):
            return set().union(*(self.values(v, node, strict=strict) for v in e.values))
        if _prose(e):
            return set()
        if isinstance(e, ast.Name):
            value = self.pkg.constant(self.src.module, e.id)
            if value is not None:
                return {value}
            params = (
                [
                    a.arg
                    for a in [*self.functions[-1].args.args, *self.functions[-1].args.kwonlyargs]
                ]
                if self.functions
                else []
            )
            if e.id == "reason" and e.id in params:
                return set()  # passed through: the callers' arguments are collected
            assigned = self._locals(e.id)
            if assigned is not None:
                return set().union(*(self.values(v, node, strict=strict) for v in assigned))
        if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name):
            members = self.pkg.enums.get(e.value.id, {})
            if e.attr in members:
                return {members[e.attr]}
        if (
            isinstance(e, ast.Attribute)
            and e.attr == "value"
            and isinstance(e.value, ast.Attribute)
            and isinstance(e.value.value, ast.Name)
        ):
            members = self.pkg.enums.get(e.value.value.id, {})
            if e.value.attr in members:
                return {members[e.value.attr]}
        if strict:
            self.found.dynamic[ast.unparse(e)].add(self.where(node))
        return set()

    def add(self, e: ast.expr, node: ast.AST, *, strict: bool = True) -> None:
        for value in self.values(e, node, strict=strict):
            if CAMEL.match(value):
                self.found.reasons[value].add(self.where(node))

    # -- where reasons are made -------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        for kw in node.keywords:
            if kw.arg == "reason":
                self.add(kw.value, node)
        for i in self.pkg.reason_positions(self.src, node):
            if i < len(node.args) and not isinstance(node.args[i], ast.Starred):
                self.add(node.args[i], node)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for s in node.body:
            value = s.value if isinstance(s, ast.Assign | ast.AnnAssign) else None
            targets = (
                s.targets
                if isinstance(s, ast.Assign)
                else [s.target]
                if isinstance(s, ast.AnnAssign)
                else []
            )
            if value is not None and any(
                isinstance(t, ast.Name) and t.id == "reason" for t in targets
            ):
                # A default or a class attribute; a pydantic Field(...) declares, not makes.
                self.add(value, s, strict=False)
        if node.name.endswith("Reason"):
            for member in self.pkg.enums.get(node.name, {}).values():
                self.found.reasons[member].add(self.where(node))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            # Literals only: a local `reason` may also be a library's text (asyncssh's,
            # kopf's); one that reaches a condition is resolved where it is passed.
            if isinstance(t, ast.Name) and t.id == "reason":
                self.add(node.value, node, strict=False)
            elif isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for n, v in zip(t.elts, node.value.elts, strict=False):
                    if isinstance(n, ast.Name) and n.id == "reason":
                        self.add(v, node, strict=False)
        self.generic_visit(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        if len(node.elts) == 2 and _message_like(node.elts[1]):
            self.add(node.elts[0], node, strict=False)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "abort" in node.value:
            for reason in SHELL_ABORT.findall(node.value):
                self.found.reasons[reason].add(self.where(node))


@cache
def collect() -> Found:
    pkg = Package.load()
    found = Found()
    for src in pkg.sources.values():
        _Collector(pkg, src, found).visit(src.tree)
    for expr, enum in DYNAMIC.items():
        if enum is not None and expr in found.dynamic:
            for value in pkg.enums[enum].values():
                found.reasons[value].add(f"{expr} ({enum})")
    for enum in PHASES:
        for value in pkg.enums[enum].values():
            found.reasons[value].add(f"enum {enum}")
    return found


def documented(text: str) -> set[str]:
    """The reasons in the first column of the page's tables."""
    out: set[str] = set()
    for line in text.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            out |= set(re.findall(r"`([A-Za-z0-9]+)`", cells[1]))
    return out


def undocumented(reasons: dict[str, set[str]], text: str) -> list[str]:
    have = documented(text)
    return [
        f"{r} (from {', '.join(sorted(reasons[r])[:3])})" for r in sorted(reasons) if r not in have
    ]


def test_every_reason_is_documented() -> None:
    missing = undocumented(collect().reasons, DOC.read_text())
    assert not missing, (
        f"{len(missing)} reason(s) the operator can write are not in a table of "
        f"{DOC.relative_to(ROOT)} (first column, as `Reason`); add a row saying what it "
        "means and what to do:\n  " + "\n  ".join(missing)
    )


def test_every_reason_expression_is_resolved() -> None:
    unknown = {e: w for e, w in collect().dynamic.items() if e not in DYNAMIC}
    assert not unknown, (
        "a reason is passed as an expression this test cannot resolve to its values; "
        "make it a literal or a constant, or add it to DYNAMIC saying where its values "
        "are collected:\n  "
        + "\n  ".join(f"{e} at {', '.join(sorted(w))}" for e, w in sorted(unknown.items()))
    )


@pytest.mark.parametrize(
    "reason",
    ["HostKeyMismatch", "CommandOutcomeUnknown", "GitFetchFailed", "Held", "SyncFailed"],
)
def test_a_missing_row_is_reported(reason: str) -> None:
    text = "\n".join(
        line for line in DOC.read_text().splitlines() if not line.startswith(f"| `{reason}` |")
    )
    assert reason in collect().reasons
    assert any(m.startswith(f"{reason} (from ") for m in undocumented(collect().reasons, text))
