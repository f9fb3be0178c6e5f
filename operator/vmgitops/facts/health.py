"""Health checks of one VM in ONE command: command, HTTP and TCP probes with timeouts.

Like the other probes, the script is a constant and every value is an argv item. A
command check's argv reaches `eval` only as positional references ("${5}"), never as
text. HTTP uses curl, else wget, else bash's /dev/tcp (plain http only); TCP uses
bash's /dev/tcp, else nc. Output records (see `records`):

    check [name, command, exit status, output (first 512 bytes)]   status 124: timed out
    check [name, http, status code or "", tool]
    check [name, tcp, exit status, tool]
    check [name, KIND, "unsupported", why]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from vmgitops.facts.records import PRELUDE, parse_records
from vmgitops.manifest.desired import HealthCheck

#: The checks, without the shell helpers before them and the end record after them:
#: `look.LOOK_SCRIPT` runs them after the observation, in the same command. They read
#: their items from the positional parameters.
HEALTH_BODY = r"""
tmo() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }
chk_cmd() {
  _n=$1; _t=$2; shift 2
  _o=$(tmo "$_t" "$@" 2>&1 </dev/null); _rc=$?
  r check "$_n" command "$_rc" "$(printf '%.512s' "$_o")"
}
chk_http() {
  _n=$1; _t=$2; _u=$3; _h=$4; _p=$5; _pa=$6; _s=$7
  if command -v curl >/dev/null 2>&1; then
    _c=$(curl -s -g -o /dev/null -w '%{http_code}' --max-time "$_t" "$_u" 2>/dev/null); _tool=curl
  elif command -v wget >/dev/null 2>&1; then
    _c=$(tmo "$_t" wget -q -S -O /dev/null -T "$_t" "$_u" 2>&1 \
      | sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' | tail -n 1); _tool=wget
  elif [ "$_s" = http ] && command -v bash >/dev/null 2>&1; then
    _c=$(tmo "$_t" bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
      read -r _v _code _rest <&3; printf %s "$_code"' vmgitops-http "$_h" "$_p" "$_pa" \
      2>/dev/null); _tool=bash
  else
    r check "$_n" http unsupported "no HTTP client on the VM (curl, wget or bash)"; return
  fi
  case $_c in [1-5][0-9][0-9]) ;; *) _c=;; esac
  r check "$_n" http "$_c" "$_tool"
}
chk_tcp() {
  _n=$1; _t=$2; _h=$3; _p=$4
  if command -v bash >/dev/null 2>&1; then
    tmo "$_t" bash -c 'exec 3<>"/dev/tcp/$1/$2"' vmgitops-tcp "$_h" "$_p" >/dev/null 2>&1
    _rc=$?; _tool=bash
  elif command -v nc >/dev/null 2>&1; then
    tmo "$_t" nc -z -w "$_t" -- "$_h" "$_p" >/dev/null 2>&1; _rc=$?; _tool=nc
  else
    r check "$_n" tcp unsupported "no TCP client on the VM (bash or nc)"; return
  fi
  r check "$_n" tcp "$_rc" "$_tool"
}
while [ $# -gt 0 ]; do
  case $1 in
  cmd) _n=$2; _t=$3; _c=$4; shift 4
       _i=1; _a=
       while [ "$_i" -le "$_c" ]; do _a="$_a \"\${$_i}\""; _i=$((_i + 1)); done
       eval "chk_cmd \"\$_n\" \"\$_t\" $_a"
       shift "$_c";;
  http) chk_http "$2" "$3" "$4" "$5" "$6" "$7" "$8"; shift 8;;
  tcp) chk_tcp "$2" "$3" "$4" "$5"; shift 5;;
  *) r error "$1" "unknown check kind"; shift;;
  esac
done
"""

HEALTH_SCRIPT = PRELUDE + HEALTH_BODY + "r end\n"

#: Slack on top of the checks' own timeouts, for the runner's timeout of the whole probe.
RUNNER_SLACK_SECONDS = 10


@dataclass(frozen=True)
class CheckResult:
    """`ok` None: the check could not be run (no client on the VM, or no answer record)."""

    name: str
    kind: str
    ok: bool | None
    message: str


def health_argv(checks: Sequence[HealthCheck]) -> list[str]:
    """`env LC_ALL=C sh -c SCRIPT vmgitops-health ...` for all checks, in order."""
    return ["env", "LC_ALL=C", "sh", "-c", HEALTH_SCRIPT, "vmgitops-health", *health_items(checks)]


def health_items(checks: Sequence[HealthCheck]) -> list[str]:
    """The positional parameters of `HEALTH_BODY` for all checks, in order."""
    items: list[str] = []
    for c in checks:
        t = str(c.timeout_seconds)
        if c.kind == "command":
            items += ["cmd", c.name, t, str(len(c.command)), *c.command]
        elif c.kind == "http":
            u = urlsplit(c.url)
            port = str(u.port or (443 if u.scheme == "https" else 80))
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            items += ["http", c.name, t, c.url, u.hostname or "", port, path, u.scheme]
        else:
            items += ["tcp", c.name, t, c.host, str(c.port)]
    return items


def health_timeout(checks: Sequence[HealthCheck]) -> float:
    """How long the whole probe may take: the checks run one after the other."""
    return float(sum(c.timeout_seconds for c in checks) + RUNNER_SLACK_SECONDS)


def parse_health(stdout: bytes | str, checks: Sequence[HealthCheck]) -> list[CheckResult]:
    """One result per check, in the order of `checks`; a missing answer is ok=None."""
    answers = {r.text(0): r for r in parse_records(stdout) if r.tag == "check"}
    results = []
    for c in checks:
        rec = answers.get(c.name)
        if rec is None:
            results.append(CheckResult(c.name, c.kind, None, "no answer"))
            continue
        value, detail = rec.text(2), rec.text(3)
        if value == "unsupported":
            results.append(CheckResult(c.name, c.kind, None, detail))
        elif c.kind == "command":
            ok = value == "0"
            why = f"timed out after {c.timeout_seconds}s" if value == "124" else f"exit {value}"
            tail = detail.strip().splitlines()[-1:] if not ok else []
            results.append(CheckResult(c.name, c.kind, ok, ": ".join([why, *tail])))
        elif c.kind == "http":
            ok = value == str(c.expect_status)
            why = f"status {value}" if value else f"no answer within {c.timeout_seconds}s"
            results.append(CheckResult(c.name, c.kind, ok, f"{why} ({detail})"))
        else:
            ok = value == "0"
            why = "connected" if ok else f"cannot connect to {c.host}:{c.port}"
            results.append(CheckResult(c.name, c.kind, ok, why))
    return results
