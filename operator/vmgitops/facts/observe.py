"""Observing everything one app manages on a VM in ONE command, and parsing the answer.

The script is a constant: what to look at travels as a request on stdin (triples KIND
VALUE EXTRA, see `records.request_stream`), never inside the script text, so no path can
become shell code, and never on the command line, so the command string has the same
size for 10 files or 10,000 (sshd passes it as one argument, capped at 128 KiB). It only
reads.
The answer is the record format of `records` (length-prefixed, any byte is safe):

    observe   [version]
    pm        [apt|dnf|apk|none]
    path      [path, kind, mode(octal), uid, gid, user, group, size, sha256, (content hex)]
              kind: file|directory|symlink|other|missing (missing: the first two only);
              sha256 only for `file` requests; content only when it differs from the
              expected sha256, is not sensitive and is at most MAX_DIFF_BYTES
    unit      [name, is-enabled word, is-active word]
    pkg       [name, installed|absent|unknown, version]
    release   [path, link|missing|other, current link target, release names...]
    exists    [path, 1|0]
    inventory [1|0, inventory.json content hex]
    marker    [file name under markers/, first 4 KiB of its content, hex]
    error     [what, why]   (a missing tool such as sha256sum: the plan blocks on it)

A request that arrives cut short prints `error request` and no `end` record, and exits 3:
a partial observation must never pass for a whole one.

Cost on the VM: two forks per file (stat, sha256sum), about 5 ms; 200 files in sync
took 1.2 s in one SSH command on a test-bed VM, an empty request 0.26 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vmgitops.facts.observed import (
    ObservedState,
    PackageState,
    PathKind,
    PathState,
    ReleaseState,
    UnitState,
)
from vmgitops.facts.records import (
    ITEM_READER,
    PRELUDE,
    MalformedOutput,
    Record,
    parse_records,
    request_stream,
    unhex,
)
from vmgitops.manifest.desired import DesiredState
from vmgitops.manifest.vmpaths import STATE_ROOT, unit_path

MAX_DIFF_BYTES = 65536
VERSION = "1"
NO_CONTENT = "-"

#: The observing part, without the shell helpers before it and the end record after it:
#: `look.LOOK_SCRIPT` runs it before an app's health checks, in the same command.
OBSERVE_BODY = r"""
MAXDIFF=65536
pm=none
obs() {
  if [ -L "$1" ]; then _k=symlink
  elif [ -f "$1" ]; then _k=file
  elif [ -d "$1" ]; then _k=directory
  elif [ -e "$1" ]; then _k=other
  else r path "$1" missing; return; fi
  _p=$1; _w=$2; _want=$3; _h=
  set -f; set -- $(stat -c '%a %u %g %U %G %s' "$_p" 2>/dev/null); set +f
  if [ "$_k" = file ] && [ "$_want" = hash ]; then
    _h=$(sha256sum < "$_p" 2>/dev/null); _h=${_h%% *}
    if [ "$_w" != - ] && [ "$_h" != "$_w" ] && [ "${6:-0}" -le "$MAXDIFF" ]; then
      r path "$_p" "$_k" "$1" "$2" "$3" "$4" "$5" "$6" "$_h" "$(hex < "$_p")"; return
    fi
  fi
  r path "$_p" "$_k" "$1" "$2" "$3" "$4" "$5" "$6" "$_h"
}
unit() {
  if command -v systemctl >/dev/null 2>&1; then
    _e=$(systemctl is-enabled "$1" 2>/dev/null); _a=$(systemctl is-active "$1" 2>/dev/null)
  else _e=unknown; _a=unknown; fi
  r unit "$1" "${_e%%"$NL"*}" "${_a%%"$NL"*}"
}
pkg() {
  case $pm in
  apt) _o=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null)
       _o=${_o%%"$NL"*}; _v=${_o#???}; _v=${_v# }
       case $_o in ?[itW]*) r pkg "$1" installed "$_v";; *) r pkg "$1" absent "";; esac;;
  dnf) if _o=$(rpm -q --qf '%{VERSION}-%{RELEASE}\n' "$1" 2>/dev/null); then
         r pkg "$1" installed "${_o%%"$NL"*}"; else r pkg "$1" absent ""; fi;;
  apk) if apk info -e "$1" >/dev/null 2>&1; then r pkg "$1" installed ""
       else r pkg "$1" absent ""; fi;;
  *) r pkg "$1" unknown "";;
  esac
}
rel() {
  _p=$1
  if [ -L "$_p/current" ]; then _ck=link; _ct=$(readlink "$_p/current")
  elif [ -e "$_p/current" ]; then _ck=other; _ct=
  else _ck=missing; _ct=; fi
  set -- "$_p" "$_ck" "$_ct"
  for _d in "$_p"/releases/*; do
    if [ -d "$_d" ] && [ ! -L "$_d" ]; then set -- "$@" "${_d##*/}"; fi
  done
  r release "$@"
}
state() {
  if [ -f "$1/inventory.json" ]; then r inventory 1 "$(hex < "$1/inventory.json")"
  else r inventory 0 ""; fi
  for _m in "$1"/markers/*; do
    if [ -f "$_m" ] && [ ! -L "$_m" ]; then
      r marker "${_m##*/}" "$(dd bs=4096 count=1 < "$_m" 2>/dev/null | hex)"
    fi
  done
}
# The request moves to fd 8; what runs here gets an empty stdin, so no tool can eat it.
exec 8<&0 </dev/null
r observe 1
command -v sha256sum >/dev/null 2>&1 || r error sha256sum "sha256sum is not installed"
command -v stat >/dev/null 2>&1 || r error stat "stat is not installed"
while item && _kind=$_iv && item && _val=$_iv && item; do
  _extra=$_iv
  case $_kind in
  pm) pm=$_val
      if [ "$pm" = auto ]; then
        if command -v dpkg-query >/dev/null 2>&1; then pm=apt
        elif command -v rpm >/dev/null 2>&1; then pm=dnf
        elif command -v apk >/dev/null 2>&1; then pm=apk
        else pm=none; fi
      fi
      r pm "$pm";;
  file) obs "$_val" "$_extra" hash;;
  dir) obs "$_val" "" nohash;;
  unit) unit "$_val";;
  pkg) pkg "$_val";;
  release) rel "$_val";;
  exists) if [ -e "$_val" ] || [ -L "$_val" ]; then r exists "$_val" 1
          else r exists "$_val" 0; fi;;
  state) state "$_val";;
  *) r error "$_kind" "unknown request";;
  esac
done
if [ "$_ist" != 1 ]; then r error request "the request was cut short"; exit 3; fi
"""

OBSERVE_SCRIPT = PRELUDE + ITEM_READER + OBSERVE_BODY + "r end\n"


@dataclass
class ObserveRequest:
    """What to look at; `files` maps a path to the sha256 expected there (or '-')."""

    state_dir: str
    package_manager: str = "auto"
    files: dict[str, str] = field(default_factory=dict)
    directories: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    release: str | None = None
    exists: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The command, the same for every request: what to observe is on `stdin()`."""
        return ["env", "LC_ALL=C", "sh", "-c", OBSERVE_SCRIPT, "vmgitops-observe"]

    def stdin(self) -> bytes:
        """The request stream of `items()`."""
        return request_stream(self.items())

    def items(self) -> list[str]:
        """`KIND VALUE EXTRA` triples, flat."""
        items = ["pm", self.package_manager, "", "state", self.state_dir, ""]
        for path, sha in self.files.items():
            items += ["file", path, sha]
        for path in self.directories:
            items += ["dir", path, ""]
        for name in self.units:
            items += ["unit", name, ""]
        for name in self.packages:
            items += ["pkg", name, ""]
        if self.release:
            items += ["release", self.release, ""]
        for path in self.exists:
            items += ["exists", path, ""]
        return items


def state_dir(app: str) -> str:
    """The per-application state directory on the VM (inventory, markers, lock)."""
    return f"{STATE_ROOT}/{app}"


def request_for(desired: DesiredState, app: str, package_manager: str = "auto") -> ObserveRequest:
    """Everything `desired` manages; sensitive files are hashed but never sent back."""
    req = ObserveRequest(state_dir(app), package_manager)
    for f in desired.files:
        req.files[f.path] = NO_CONTENT if f.sensitive else f.sha256
    for s in desired.services:
        if s.unit_sha256 is not None:
            req.files[unit_path(s.name)] = s.unit_sha256
        req.units.append(s.name)
    req.directories = [d.path for d in desired.directories]
    req.packages = [p.name for p in desired.packages]
    req.release = desired.release.path if desired.release else None
    req.exists = sorted({c.creates for c in desired.commands if c.creates})
    return req


def _int(text: str, base: int = 10) -> int | None:
    try:
        return int(text, base)
    except ValueError:
        return None


def _path(rec: Record) -> PathState:
    kind = rec.text(1)
    if kind not in ("file", "directory", "symlink", "other", "missing"):
        raise MalformedOutput(f"unknown path kind {kind!r}")
    pkind: PathKind = kind  # type: ignore[assignment]
    if pkind == "missing":
        return PathState(rec.text(0), "missing")
    return PathState(
        path=rec.text(0),
        kind=pkind,
        mode=_int(rec.text(2), 8),
        uid=_int(rec.text(3)),
        gid=_int(rec.text(4)),
        user=rec.text(5),
        group=rec.text(6),
        size=_int(rec.text(7)),
        sha256=rec.text(8),
        content=unhex(rec.fields[9]) if len(rec.fields) > 9 else None,
    )


def parse_observation(stdout: bytes | str) -> ObservedState:
    """The script's output -> ObservedState; raises MalformedOutput if it is not ours."""
    records = parse_records(stdout)
    if not records or records[0].tag != "observe" or records[0].text(0) != VERSION:
        raise MalformedOutput("the output does not start with 'observe 1'")
    paths: dict[str, PathState] = {}
    units: dict[str, UnitState] = {}
    packages: dict[str, PackageState] = {}
    exists: dict[str, bool] = {}
    markers: dict[str, bytes] = {}
    release = None
    inventory = None
    errors: list[str] = []
    manager = "unknown"
    for rec in records[1:]:
        if rec.tag == "path":
            state = _path(rec)
            paths[state.path] = state
        elif rec.tag == "unit":
            units[rec.text(0)] = UnitState(
                rec.text(0), rec.text(1) or "unknown", rec.text(2) or "unknown"
            )
        elif rec.tag == "pkg":
            installed = {"installed": True, "absent": False}.get(rec.text(1))
            packages[rec.text(0)] = PackageState(rec.text(0), installed, rec.text(2))
        elif rec.tag == "release":
            ck = rec.text(1)
            release = ReleaseState(
                path=rec.text(0),
                current=rec.text(2) if ck == "link" else None,
                current_kind="link" if ck == "link" else "other" if ck == "other" else "missing",
                releases=tuple(sorted(rec.text(i) for i in range(3, len(rec.fields)))),
            )
        elif rec.tag == "exists":
            exists[rec.text(0)] = rec.text(1) == "1"
        elif rec.tag == "inventory":
            inventory = unhex(rec.fields[1]) if rec.text(0) == "1" else None
        elif rec.tag == "marker":
            markers[rec.text(0)] = unhex(rec.fields[1])
        elif rec.tag == "pm":
            manager = rec.text(0)
        elif rec.tag == "error":
            errors.append(f"{rec.text(0)}: {rec.text(1)}")
    return ObservedState(
        paths=paths,
        units=units,
        packages=packages,
        release=release,
        exists=exists,
        markers=markers,
        inventory=inventory,
        errors=tuple(errors),
        package_manager=manager,
    )
