"""The one constant shell script that applies a batch of steps on a VM.

Run as `env LC_ALL=C sh -c APPLY_SCRIPT vmgitops-apply HEADER...`, with one tar stream
on stdin. Nothing is ever interpolated into the script text, and the command line carries
only the fixed-size header: the ops (every path, name, mode and command argv item) are
the tar member `ops`, a request stream (`facts.records.request_stream`), and file
contents are members named by index, so no VM path is ever a tar member name. Why not
argv: sshd hands the login shell ONE command string, and Linux refuses an argument over
128 KiB (E2BIG), about 1,200 files' worth of ops. The script only ever expands data
inside double quotes, and never evaluates any.

Header (7 items): STATE_ROOT STATE_DIR GENERATION REVISION EXPECTED_SERIAL LOCK_WAIT
CRASH_POINT. Ops, each `NAME INDEX ARGS...` (see `ops.py`), are read one at a time.

What it guarantees:

* **One applier at a time per VM.** `flock` on STATE_ROOT/.lock is held by this shell for
  the whole batch (fd 9, closed for every child that could outlive it). A flock is
  released by the kernel when its holder dies, whatever the cause: no stale lock.
* **Fencing.** Under the lock, the app's `markers/fence` record ("v1 SERIAL GENERATION
  REVISION STATE") is checked: a newer generation than ours refuses the batch
  (StaleGeneration), and a serial other than the one the plan was computed from refuses
  it too (ChangedSinceObserved: someone applied in between, so the plan is stale). The
  serial is bumped before the first change, and STATE ends as applied or failed.
* **Nothing changes before all content is on the VM.** The tar stream is extracted into
  a private stage directory first; a stream cut short aborts the batch untouched. `ops`
  is the last member and ends with the request's "." line: a stream cut even at a
  member boundary (which tar does not notice) is caught by that.
* **Atomic files.** A file is written as `.NAME.vmgitops-tmp` in its own directory:
  created empty (0600), chowned, chmodded, filled with `dd conv=fsync`, renamed over the
  old one with `mv -T`, then the directory is fsynced. A crash leaves the old or the new
  content, never a mix.
* **Commands at most once.** `markers/pending.NAME` is written and fsynced before a
  command starts; `done.NAME` (its trigger digest) replaces it after exit 0. A pending
  marker that survives tells the next plan that the outcome is unknown.

Output: the record format of `facts.records`: `begin`, `locked SERIAL`, one
`op INDEX ok|failed MESSAGE OUTPUT` per op, then `stopped` after a failure, `abort
REASON MESSAGE` when the batch could not start, `crash POINT` (tests only), and `end`.
"""

from __future__ import annotations

from vmgitops.facts.records import ITEM_READER, PRELUDE

APPLY_SCRIPT = (
    PRELUDE  # noqa: S608 - a shell script that mentions `apt-get update`, not SQL
    + ITEM_READER
    + r"""
ROOT=$1; STATE=$2; GEN=$3; REV=$4; EXPECT=$5; WAIT=$6; CRASH=$7
shift 7
STAGE="$STATE/.stage"
ERR=/dev/null
OUT=/dev/null
SERIAL=0
umask 022
r begin

abort() { r abort "$1" "$2"; r end; exit 0; }
crashpoint() {
  if [ -n "$CRASH" ] && [ "$CRASH" = "$1" ]; then r crash "$1"; kill -9 0; sleep 60; fi
}
errtail() { if [ -s "$ERR" ]; then tail -c 400 "$ERR" | tr '\n' ' '; fi; }
outtail() { if [ -s "$OUT" ]; then tail -c 1024 "$OUT"; fi; }
parent() { _pp=${1%/*}; [ -n "$_pp" ] || _pp=/; }
fsyncd() { sync -- "$1" 2>/dev/null || sync; }
own() {
  if [ -n "$2" ] && [ -n "$3" ]; then chown -- "$2:$3" "$1"
  elif [ -n "$2" ]; then chown -- "$2" "$1"
  elif [ -n "$3" ]; then chgrp -- "$3" "$1"
  fi
}
# put SRC DEST MODE OWNER GROUP: replace DEST atomically with the bytes of SRC.
# It runs once per file of a batch (thousands, for a big app): every fork it saves counts,
# so mkdir and rm only run when needed, and the empty temp file is made without a
# subshell (`true` is a regular builtin: a failed redirection fails it, not the script).
put() {
  parent "$2"; _pd=$_pp; _pt="$_pd/.${2##*/}.vmgitops-tmp"
  if [ ${#_pt} -gt $((${#_pd} + 250)) ]; then _pt="$_pd/.vmgitops-tmp"; fi
  if [ ! -d "$_pd" ]; then mkdir -p -- "$_pd" 2>>"$ERR" || return 1; fi
  if [ -e "$_pt" ] || [ -L "$_pt" ]; then rm -f -- "$_pt" 2>>"$ERR" || return 1; fi
  umask 077; true 2>>"$ERR" >"$_pt"; _prc=$?; umask 022
  [ "$_prc" -eq 0 ] || return 1
  if own "$_pt" "$4" "$5" 2>>"$ERR" && chmod "$3" "$_pt" 2>>"$ERR" &&
     dd if="$1" of="$_pt" bs=65536 conv=fsync 2>"$ERR.dd"; then :
  else
    cat "$ERR.dd" >>"$ERR" 2>/dev/null; rm -f -- "$_pt"; return 1
  fi
  crashpoint "write:$2"
  mv -f -T -- "$_pt" "$2" 2>>"$ERR" || { rm -f -- "$_pt"; return 1; }
  fsyncd "$_pd"
}
mark() { printf '%s\n' "$2" > "$STAGE/.mark" && put "$STAGE/.mark" "$STATE/markers/$1" 0600 "" ""; }
unmark() {
  if [ -e "$STATE/markers/$1" ] || [ -L "$STATE/markers/$1" ]; then
    rm -f -- "$STATE/markers/$1" 2>>"$ERR" || return 1
    fsyncd "$STATE/markers"
  fi
}
fence() { mark fence "v1 $SERIAL $GEN $REV $1"; }
ok() { r op "$1" ok "$2" "${3-}"; }
bad() { r op "$1" failed "$2" "${3-}"; return 1; }

op_write() {  # IDX MEMBER PATH MODE OWNER GROUP
  put "$STAGE/$2" "$3" "$4" "$5" "$6" || bad "$1" "cannot write $3: $(errtail)" || return 1
  ok "$1" "written"
}
op_meta() {  # IDX PATH MODE OWNER GROUP
  if [ ! -e "$2" ]; then bad "$1" "$2 does not exist"; return 1; fi
  if own "$2" "$4" "$5" 2>>"$ERR" && chmod "$3" "$2" 2>>"$ERR"; then
    parent "$2"; fsyncd "$_pp"; ok "$1" "mode/owner set"
  else bad "$1" "cannot set mode/owner of $2: $(errtail)"; fi
}
op_mkdir() {  # IDX PATH MODE OWNER GROUP
  if mkdir -p -- "$2" 2>>"$ERR" && own "$2" "$4" "$5" 2>>"$ERR" && chmod "$3" "$2" 2>>"$ERR"
  then parent "$2"; fsyncd "$_pp"; ok "$1" "directory ready"
  else bad "$1" "cannot create $2: $(errtail)"; fi
}
op_mark() {  # IDX NAME VALUE
  mark "$2" "$3" 2>>"$ERR" || bad "$1" "cannot write marker $2: $(errtail)" || return 1
  ok "$1" "marker $2 written"
}
op_unmark() {  # IDX NAME
  unmark "$2" || bad "$1" "cannot remove marker $2: $(errtail)" || return 1
  ok "$1" "marker $2 removed"
}
op_sysd() {  # IDX VERB UNIT|-
  if [ "$3" = - ]; then systemctl "$2" </dev/null >"$OUT" 2>&1 8<&- 9>&-
  else systemctl "$2" "$3" </dev/null >"$OUT" 2>&1 8<&- 9>&-; fi
  _rc=$?
  if [ $_rc -eq 0 ]; then ok "$1" "systemctl $2 ok"
  else bad "$1" "systemctl $2 $3 failed (exit $_rc)" "$(outtail)"; fi
}
op_pruneunit() {  # IDX UNIT PATH STOP
  if [ "$4" = 1 ]; then systemctl disable --now "$2" </dev/null >/dev/null 2>&1 8<&- 9>&-; fi
  if rm -f -- "$3" 2>>"$ERR" && unmark "restart.$2"; then
    parent "$3"; fsyncd "$_pp"; ok "$1" "unit file removed"
  else bad "$1" "cannot remove $3: $(errtail)"; fi
}
op_pkg() {  # IDX MANAGER install|remove NAME...
  _pi=$1; _pm=$2; _pa=$3; shift 3
  case $_pm in
  apt)
    _ao='-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold'
    _ao="$_ao -o DPkg::Lock::Timeout=300"
    if DEBIAN_FRONTEND=noninteractive apt-get $_ao "$_pa" "$@" </dev/null >"$OUT" 2>&1 8<&- 9>&-
    then _rc=0
    elif [ "$_pa" = install ]; then
      # Package lists may be missing or stale: refresh them once, then try again.
      DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null >/dev/null 2>&1 8<&- 9>&-
      DEBIAN_FRONTEND=noninteractive apt-get $_ao "$_pa" "$@" </dev/null >"$OUT" 2>&1 8<&- 9>&-
      _rc=$?
    else _rc=1; fi;;
  dnf)
    if command -v dnf >/dev/null 2>&1; then _d=dnf; else _d=yum; fi
    "$_d" -y -q "$_pa" "$@" </dev/null >"$OUT" 2>&1 8<&- 9>&-; _rc=$?;;
  apk)
    if [ "$_pa" = install ]; then _a=add; else _a=del; fi
    apk "$_a" --no-progress "$@" </dev/null >"$OUT" 2>&1 8<&- 9>&-; _rc=$?;;
  *) bad "$_pi" "unsupported package manager $_pm"; return 1;;
  esac
  if [ $_rc -eq 0 ]; then ok "$_pi" "$_pa ok ($_pm)"
  else bad "$_pi" "$_pm $_pa failed (exit $_rc)" "$(outtail)"; fi
}
op_upload() {  # IDX PATH REVISION MEMBER
  _rd="$2/releases"; _new="$_rd/.$3.tmp"; _old="$_rd/.$3.old"
  if ! mkdir -p -- "$_rd" 2>>"$ERR"; then bad "$1" "cannot create $_rd: $(errtail)"; return 1; fi
  # Leftovers of an interrupted upload are ours by their names: remove them.
  for _x in "$_rd"/.*.tmp "$_rd"/.*.old; do
    if [ -e "$_x" ] || [ -L "$_x" ]; then rm -rf -- "$_x"; fi
  done
  if ! mv -- "$STAGE/$4" "$_new" 2>>"$ERR"; then
    rm -rf -- "$_new"; bad "$1" "cannot upload into $_new: $(errtail)"; return 1
  fi
  sync -f -- "$_new" 2>/dev/null || sync
  if [ -e "$_rd/$3" ] || [ -L "$_rd/$3" ]; then
    if ! mv -T -- "$_rd/$3" "$_old" 2>>"$ERR"; then
      bad "$1" "cannot replace $_rd/$3: $(errtail)"; return 1
    fi
  fi
  if ! mv -T -- "$_new" "$_rd/$3" 2>>"$ERR"; then
    bad "$1" "cannot rename $_new: $(errtail)"; return 1
  fi
  rm -rf -- "$_old"
  fsyncd "$_rd"
  ok "$1" "uploaded releases/$3"
}
op_switch() {  # IDX PATH REVISION
  _l="$2/.current.vmgitops-tmp"
  if [ ! -d "$2/releases/$3" ]; then bad "$1" "$2/releases/$3 is missing"; return 1; fi
  if rm -f -- "$_l" 2>>"$ERR" && ln -s -- "releases/$3" "$_l" 2>>"$ERR" &&
     mv -f -T -- "$_l" "$2/current" 2>>"$ERR"; then
    fsyncd "$2"; ok "$1" "current -> releases/$3"
  else rm -f -- "$_l"; bad "$1" "cannot switch $2/current: $(errtail)"; fi
}
op_prunerel() {  # IDX PATH REMOVE_CURRENT ID...
  _ri=$1; _rp=$2; _rmc=$3; shift 3
  _cur=
  if [ -L "$_rp/current" ]; then
    _cur=$(readlink "$_rp/current"); _cur=${_cur%/}; _cur=${_cur##*/}
  fi
  _gone=
  for _id in "$@"; do
    if [ "$_id" = "$_cur" ] && [ "$_rmc" != 1 ]; then continue; fi
    if [ -d "$_rp/releases/$_id" ] && [ ! -L "$_rp/releases/$_id" ]; then
      if ! rm -rf -- "$_rp/releases/$_id" 2>>"$ERR"; then
        bad "$_ri" "cannot remove $_rp/releases/$_id: $(errtail)"; return 1
      fi
      _gone="$_gone $_id"
    fi
  done
  if [ "$_rmc" = 1 ]; then
    if [ -L "$_rp/current" ]; then rm -f -- "$_rp/current"; fi
    # Leftovers of interrupted uploads and switches are ours by their names.
    rm -rf -- "$_rp"/releases/.*.tmp "$_rp"/releases/.*.old "$_rp/.current.vmgitops-tmp"
    rmdir -- "$_rp/releases" 2>/dev/null && rmdir -- "$_rp" 2>/dev/null
  fi
  if [ -d "$_rp/releases" ]; then fsyncd "$_rp/releases"; fi
  ok "$_ri" "removed:${_gone:- nothing}"
}
op_cmd() {  # IDX NAME TIMEOUT IDEMPOTENT DIGEST ARGV...
  _ci=$1; _cn=$2; _ct=$3; _cid=$4; _cd=$5; shift 5
  _now=$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
  if ! mark "pending.$_cn" "started $_now generation $GEN revision $REV" 2>>"$ERR"; then
    bad "$_ci" "cannot write markers/pending.$_cn: $(errtail)"; return 1
  fi
  crashpoint "pending:$_cn"
  if command -v timeout >/dev/null 2>&1; then
    (cd / && timeout "$_ct" "$@") </dev/null >"$OUT" 2>&1 8<&- 9>&-
  else
    (cd / && "$@") </dev/null >"$OUT" 2>&1 8<&- 9>&-
  fi
  _crc=$?
  crashpoint "ran:$_cn"
  case $_crc in
  0)
    if mark "done.$_cn" "$_cd" 2>>"$ERR" && unmark "pending.$_cn"; then
      ok "$_ci" "exit 0" "$(outtail)"
    else bad "$_ci" "ran, but cannot record it in markers/done.$_cn: $(errtail)" "$(outtail)"; fi;;
  124|137|143)
    if [ "$_cid" = 1 ]; then unmark "pending.$_cn"; _keep=
    else _keep="; outcome unknown, markers/pending.$_cn kept for a human"; fi
    bad "$_ci" "killed after ${_ct}s (exit $_crc)$_keep" "$(outtail)";;
  126|127)
    unmark "pending.$_cn"; bad "$_ci" "cannot execute $1 (exit $_crc)" "$(outtail)";;
  *)
    unmark "pending.$_cn"; bad "$_ci" "exit $_crc" "$(outtail)";;
  esac
}
op_rmfile() {  # IDX PATH
  if [ -d "$2" ] && [ ! -L "$2" ]; then ok "$1" "is a directory now, left in place"; return 0; fi
  if [ ! -e "$2" ] && [ ! -L "$2" ]; then ok "$1" "already gone"; return 0; fi
  rm -f -- "$2" 2>>"$ERR" || bad "$1" "cannot remove $2: $(errtail)" || return 1
  parent "$2"; fsyncd "$_pp"; ok "$1" "removed"
}
op_rmdir() {  # IDX PATH
  if [ ! -d "$2" ] || [ -L "$2" ]; then ok "$1" "already gone"; return 0; fi
  if rmdir -- "$2" 2>/dev/null; then parent "$2"; fsyncd "$_pp"; ok "$1" "removed"
  else ok "$1" "not empty, left in place"; fi
}

# -- lock, fence, stage -----------------------------------------------------------------
if ! mkdir -p -- "$STATE/markers" 2>/dev/null; then abort StateUnwritable "cannot create $STATE"; fi
chmod 0700 "$ROOT" "$STATE" 2>/dev/null
command -v flock >/dev/null 2>&1 || abort LockUnavailable "flock (util-linux) is not installed"
exec 9>>"$ROOT/.lock" || abort LockUnavailable "cannot open $ROOT/.lock"
flock -w "$WAIT" 9 || abort LockHeld "another apply holds $ROOT/.lock (waited ${WAIT}s)"
_fv=; _fs=0; _fg=0; _fr=; _fst=
if [ -f "$STATE/markers/fence" ]; then read -r _fv _fs _fg _fr _fst < "$STATE/markers/fence"; fi
case "$_fs$_fg" in *[!0-9]*|'') abort FenceUnreadable "markers/fence is not a fence record";; esac
if [ "$_fg" -gt "$GEN" ]; then
  abort StaleGeneration \
    "generation $_fg (revision $_fr) was applied here; refusing older generation $GEN"
fi
if [ "$_fs" != "$EXPECT" ]; then
  abort ChangedSinceObserved "apply serial is $_fs, the plan was made at $EXPECT"
fi
rm -rf -- "$STAGE"
mkdir -m 0700 -- "$STAGE" || abort StateUnwritable "cannot create $STAGE"
trap 'rm -rf -- "$STAGE"' EXIT
ERR="$STAGE/.err"; OUT="$STAGE/.out"
if ! tar -x -o -f - -C "$STAGE" 2>"$ERR"; then
  abort UploadIncomplete "the content stream did not arrive whole: $(errtail)"
fi
if [ ! -f "$STAGE/ops" ] || [ "$(tail -n 1 "$STAGE/ops")" != . ]; then
  abort UploadIncomplete "the content stream did not arrive whole: its ops are cut short"
fi
exec 8<"$STAGE/ops" || abort StateUnwritable "cannot read $STAGE/ops"
SERIAL=$((_fs + 1))
fence applying 2>>"$ERR" || abort StateUnwritable "cannot write markers/fence: $(errtail)"
r locked "$SERIAL"

# -- ops --------------------------------------------------------------------------------
# call FN N: read N more items of the request and run FN with them as its arguments.
# callv FN N: the same, then a count C and C items (lists: package names, command argv).
# Inside a function `set --` changes that function's arguments only; no eval anywhere.
call() {
  _cf=$1; _cc=$2; set --
  while [ "$_cc" -gt 0 ]; do
    item || { r op "$_oi" failed "the ops are cut short"; return 1; }
    set -- "$@" "$_iv"; _cc=$((_cc - 1))
  done
  "$_cf" "$_oi" "$@"
}
callv() {
  _cf=$1; _cc=$2; set --
  while [ "$_cc" -gt 0 ]; do
    item || { r op "$_oi" failed "the ops are cut short"; return 1; }
    set -- "$@" "$_iv"; _cc=$((_cc - 1))
  done
  item || { r op "$_oi" failed "the ops are cut short"; return 1; }
  _cc=$_iv
  case $_cc in ''|*[!0-9]*) r op "$_oi" failed "bad item count"; return 1;; esac
  while [ "$_cc" -gt 0 ]; do
    item || { r op "$_oi" failed "the ops are cut short"; return 1; }
    set -- "$@" "$_iv"; _cc=$((_cc - 1))
  done
  "$_cf" "$_oi" "$@"
}
while item; do
  _op=$_iv; _oi=-
  : > "$ERR"
  if [ "$_op" = crash ]; then item; r crash "$_iv"; kill -9 0; sleep 60; fi
  if item; then _oi=$_iv; fi
  case $_op in
  write) call op_write 5;;
  meta|mkdir) call "op_$_op" 4;;
  pruneunit|upload) call "op_$_op" 3;;
  mark|sysd|switch) call "op_$_op" 2;;
  unmark|rmfile|rmdir) call "op_$_op" 1;;
  pkg|prunerel) callv "op_$_op" 2;;
  cmd) callv op_cmd 4;;
  *) r op "$_oi" failed "unknown op $_op"; false;;
  esac
  _st=$?
  if [ "$_st" -ne 0 ]; then
    fence failed 2>/dev/null
    r stopped; r end; exit 0
  fi
done
if [ "$_ist" != 1 ]; then
  fence failed 2>/dev/null
  r op - failed "the ops are cut short"; r stopped; r end; exit 0
fi
fence applied 2>>"$ERR" || { r op - failed "cannot write markers/fence: $(errtail)"; r stopped; }
r end
"""
)

#: Prints `busy` while an apply holds the VM lock, else `free`. Read-only: a free lock is
#: taken and let go at once (flock -n), a missing lock file is not created.
LOCK_PROBE_SCRIPT = r"""
if [ ! -e "$1" ]; then echo free
elif ! command -v flock >/dev/null 2>&1; then echo unknown
elif flock -n -s "$1" true 2>/dev/null; then echo free
else echo busy; fi
"""


def lock_probe_argv(state_root: str) -> list[str]:
    return [
        "env",
        "LC_ALL=C",
        "sh",
        "-c",
        LOCK_PROBE_SCRIPT,
        "vmgitops-lock",
        f"{state_root}/.lock",
    ]
