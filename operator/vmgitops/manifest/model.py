"""The pydantic model of vmapp.yaml: what a Git folder asks of a VM.

Strict on purpose: unknown fields are errors (a typo must not silently mean "unset"),
and values are not coerced (`mode: 0644` unquoted is the YAML number 420, so it is
refused with a hint). Cross-entry rules (duplicates, references) live in `crosscheck`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from vmgitops.manifest import vmpaths

_ERR = "vmgitops"


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError(_ERR, "{reason}", {"reason": message})


def _check_vm_path(value: str) -> str:
    problem = vmpaths.vm_path_problem(value)
    if problem:
        raise _fail(f"{value!r} {problem}" if "\n" not in value else f"path {problem}")
    return value


def _pattern(regex: Any, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise _fail(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _mode_before(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise _fail(
            f'write the mode as a quoted string like "0644" (YAML read {value} as a number)'
        )
    if isinstance(value, str) and not vmpaths.OCTAL_MODE.fullmatch(value):
        raise _fail(f"{value!r} is not an octal mode like '0644'")
    return value


VmPath = Annotated[str, AfterValidator(_check_vm_path)]
Mode = Annotated[str, BeforeValidator(_mode_before)]
Account = Annotated[str, _pattern(vmpaths.ACCOUNT_NAME, "a user or group name (or number)")]
PackageName = Annotated[str, _pattern(vmpaths.PACKAGE_NAME, "a safe package name")]
UnitName = Annotated[
    str, _pattern(vmpaths.UNIT_NAME, "a systemd unit name ending in .service, .socket or .timer")
]
ItemName = Annotated[
    str, _pattern(vmpaths.ITEM_NAME, "a name of lowercase letters, digits, '.', '_' or '-'")
]
Timeout = Annotated[int, Field(ge=1, le=86400)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise _fail("an argument contains a NUL character")
    return value


Argv = Annotated[list[Annotated[str, AfterValidator(_no_nul)]], Field(min_length=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


class FileSpec(_Spec):
    """One file on the VM, from inline `content` or from a `source` file in the folder."""

    path: VmPath
    content: str | None = None
    source: str | None = None
    template: bool = False
    mode: Mode = "0644"
    owner: Account | None = None
    group: Account | None = None
    sensitive: bool = False

    @model_validator(mode="after")
    def _one_origin(self) -> FileSpec:
        if (self.content is None) == (self.source is None):
            raise _fail("give exactly one of 'content' or 'source'")
        return self


class DirectorySpec(_Spec):
    """A directory that must exist with this mode and ownership."""

    path: VmPath
    mode: Mode = "0755"
    owner: Account | None = None
    group: Account | None = None


class PackageSpec(_Spec):
    """A package that must be installed or absent (apt, dnf or apk, from the facts)."""

    name: PackageName
    state: Literal["present", "absent"] = "present"


class ServiceSpec(_Spec):
    """A systemd unit: optionally its unit file, its enablement and its running state."""

    name: UnitName
    unit: str | None = None
    template: bool = False
    enabled: bool | None = None
    state: Literal["running", "stopped"] | None = None
    restart_on_change: list[str] = Field(default_factory=list)


class ReleaseSpec(_Spec):
    """A versioned release: `releases/<revision>/` under `path`, `current` links one."""

    path: VmPath
    source: str
    keep: int = Field(default=5, ge=1, le=100)


class CommandSpec(_Spec):
    """A command run as argv (no shell), when its inputs changed or `creates` is missing."""

    name: ItemName
    run: Argv
    on_change: list[str] = Field(default_factory=list)
    creates: VmPath | None = None
    idempotent: bool = False
    timeout_seconds: Timeout = 300


class HttpCheck(_Spec):
    # A template (`http://{{ target.address }}:8080/`): spaces may sit inside `{{ }}`;
    # the rendered URL is what must be a single http(s) URL without white space.
    url: Annotated[str, Field(pattern=r"^https?://[^\n\r\t]+$")]
    expect_status: int = Field(default=200, ge=100, le=599)


class TcpCheck(_Spec):
    # Never a leading "-": the host becomes an argument of nc on a VM without bash.
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]][A-Za-z0-9.:\[\]-]{0,252}$")] = (
        "127.0.0.1"
    )
    port: int = Field(ge=1, le=65535)


class HealthCheckSpec(_Spec):
    """One probe run on the VM: exactly one of a command, an HTTP GET or a TCP connect."""

    name: ItemName
    command: Argv | None = None
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 5

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheckSpec:
        given = [k for k in ("command", "http", "tcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _fail("give exactly one of 'command', 'http' or 'tcp'")
        return self


class Manifest(_Spec):
    """The whole of vmapp.yaml; every list defaults to empty (also when written empty)."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    files: list[FileSpec] = Field(default_factory=list)
    directories: list[DirectorySpec] = Field(default_factory=list)
    packages: list[PackageSpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(default_factory=list)
    release: ReleaseSpec | None = None
    commands: list[CommandSpec] = Field(default_factory=list)
    health_checks: list[HealthCheckSpec] = Field(default_factory=list)
