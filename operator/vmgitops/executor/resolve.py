"""The VM side of settling a CommandOutcomeUnknown (see `plan.resolution`).

One constant script, run as `env LC_ALL=C sh -c RESOLVE_SCRIPT vmgitops-resolve ROOT
STATE NAME MODE DIGEST WAIT`: nothing is interpolated into its text. It takes the VM lock
the apply script takes (a pending marker under a running apply is a command running now,
not a lost one: the answer is `busy`), then changes the app's markers so that every
moment in between is safe:

* `ran`: the done marker is written whole (temp file, fsync, rename), then the pending
  marker goes. A crash in between leaves both: still blocked, and the request (its
  annotation not yet removed) finishes the job at the next tick.
* `rerun`: the done marker goes first, then the pending one: a crash in between leaves
  the pending marker, still blocked, never "recorded as run".
* `forget`: the pending marker of a command the app no longer has goes.

It answers with one line `STATUS MESSAGE`; STATUS `already` when the end state holds
already (a repeated request changes nothing), `nopending` when there is nothing to do.
"""

from __future__ import annotations

from vmgitops.facts.records import MalformedOutput
from vmgitops.plan.resolution import STATUSES

RESOLVE_SCRIPT = r"""
ROOT=$1; STATE=$2; NAME=$3; MODE=$4; DIGEST=$5; WAIT=$6
M="$STATE/markers"; P="$M/pending.$NAME"; D="$M/done.$NAME"; T="$M/.done.$NAME.vmgitops-tmp"
say() { printf '%s %s\n' "$1" "$2"; exit 0; }
fsyncd() { sync -- "$1" 2>/dev/null || sync; }
gone() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
if [ ! -d "$M" ]; then say nopending "no state directory for this application"; fi
command -v flock >/dev/null 2>&1 || say error "flock (util-linux) is not installed"
exec 9>>"$ROOT/.lock" || say error "cannot open $ROOT/.lock"
flock -w "$WAIT" 9 || say busy "an apply holds the VM lock: the command may be running now"
if gone "$P"; then
  case $MODE in
  ran) if [ -f "$D" ] && [ "$(cat -- "$D" 2>/dev/null)" = "$DIGEST" ]; then say already "done"; fi;;
  rerun) if gone "$D"; then say already "nothing recorded"; fi;;
  esac
  say nopending "no markers/pending.$NAME"
fi
case $MODE in
ran)
  rm -f -- "$T"
  umask 077
  if printf '%s\n' "$DIGEST" > "$T" && { sync -- "$T" 2>/dev/null || sync; } &&
     mv -f -T -- "$T" "$D"; then :
  else rm -f -- "$T"; say error "cannot write markers/done.$NAME"; fi
  fsyncd "$M"
  rm -f -- "$P" || say error "cannot remove markers/pending.$NAME"
  fsyncd "$M";;
rerun)
  rm -f -- "$D" || say error "cannot remove markers/done.$NAME"
  fsyncd "$M"
  rm -f -- "$P" || say error "cannot remove markers/pending.$NAME"
  fsyncd "$M";;
forget)
  rm -f -- "$P" || say error "cannot remove markers/pending.$NAME"
  fsyncd "$M";;
*) say error "unknown mode $MODE";;
esac
say resolved "$MODE"
"""


def resolve_argv(
    *, state_root: str, state_dir: str, name: str, mode: str, digest: str, lock_wait: float
) -> list[str]:
    return [
        "env",
        "LC_ALL=C",
        "sh",
        "-c",
        RESOLVE_SCRIPT,
        "vmgitops-resolve",
        state_root,
        state_dir,
        name,
        mode,
        digest,
        str(max(0, int(lock_wait))),
    ]


def parse_resolve_output(stdout: bytes) -> tuple[str, str]:
    """(status, message) from the script's one line; MalformedOutput for anything else."""
    line = stdout.decode("utf-8", "replace").strip().splitlines()
    status, _, message = (line[-1] if line else "").partition(" ")
    if status not in STATUSES:
        raise MalformedOutput(f"the resolve command printed {stdout[-200:]!r}")
    return status, message.strip()
