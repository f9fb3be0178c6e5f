#!/usr/bin/env bash
# `make bench`: vmgitops side by side with Ansible, pyinfra and the SSH floor on the same
# fleet and workload, then the 5,000-target scale run; see bench/README.md.
#
# Everything runs in the bench's OWN environment (never the developers' .dev): its own
# state folder, fleet addresses, API server, etcd and git daemon ports:
#   BENCH_DEV=/tmp/vmgitops-bench-dev  BENCH_FLEET_BASE=120 (VMs on 127.0.120.x)
#   BENCH_APISERVER_PORT=56443  BENCH_ETCD_PORT=52379  BENCH_GIT_PORT=49418
# What to run:
#   BENCH_SIZES="10 100"   fleet sizes of systemd VMs, one full comparison each (empty: none)
#   BENCH_LIGHT=auto       light hosts (hack/fleet/light.py: sshd alone, no systemd) for
#                          one more comparison with the light workload, after the VMs are
#                          down: a number, or "auto" for as many as memory allows
#                          (light.py capacity: a quarter of MemAvailable at 4 MiB a host,
#                          at most 1000; BENCH_LIGHT_CAP changes the cap); 0: skip it
#   BENCH_SCALE=5000       simulated targets for the scale run (0: skip it)
#   BENCH_ARGS=...         passed to `python -m bench` (e.g. --tools vmgitops-engine,floor)
#   BENCH_LIGHT_ARGS=...   the same for the light-host run (default: BENCH_ARGS)
#   BENCH_KEEP=1           leave the bench environment up afterwards
# Everything runs under `nice` (the machine is shared); loops are bounded in count and time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${BENCH_NICED:-}" ]]; then
  export BENCH_NICED=1
  exec nice -n "${BENCH_NICENESS:-10}" bash "$0" "$@"
fi
cd "$ROOT"
export VMGITOPS_DEV="${BENCH_DEV:-/tmp/vmgitops-bench-dev}"
export FLEET_BASE="${BENCH_FLEET_BASE:-120}"
export APISERVER_PORT="${BENCH_APISERVER_PORT:-56443}"
export ETCD_PORT="${BENCH_ETCD_PORT:-52379}"
export GIT_PORT="${BENCH_GIT_PORT:-49418}"
export KUBECONFIG="$VMGITOPS_DEV/kubeconfig"
SIZES="${BENCH_SIZES-10 100}"
LIGHT="${BENCH_LIGHT:-auto}"
SCALE="${BENCH_SCALE:-5000}"
VENV="${BENCH_VENV:-$HOME/.cache/vmgitops/bench-venv}"
export BENCH_VENV="$VENV"
STAMP="$(date +%Y%m%d-%H%M%S)"
WORK="$VMGITOPS_DEV/work/$STAMP"
RESULTS="$ROOT/bench/results"
log() { echo "[bench] $*" >&2; }

# The peers, in their own virtualenv (installed once, pinned).
if [[ ! -x "$VENV/bin/ansible-playbook" || ! -x "$VENV/bin/pyinfra" ]] \
   || ! "$VENV/bin/python" - "$ROOT/bench/peers-requirements.txt" <<'PY'
import sys
from importlib.metadata import version
want = [l.split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")]
sys.exit(any(version(n.strip()) != v.strip() for n, v in want))
PY
then
  log "installing the peers into $VENV"
  uv venv -q --allow-existing --python "$ROOT/.venv/bin/python" "$VENV"
  uv pip install -q --python "$VENV/bin/python" -r "$ROOT/bench/peers-requirements.txt"
fi

cleanup() {
  if [[ -z "${BENCH_KEEP:-}" ]]; then
    log "taking the bench environment down (BENCH_KEEP=1 keeps it)"
    bash hack/git/serve.sh down >/dev/null 2>&1 || true
    python3 hack/fleet/fleet.py down >/dev/null 2>&1 || true
    python3 hack/fleet/light.py down >/dev/null 2>&1 || true
    bash hack/controlplane/down.sh >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

bash hack/controlplane/up.sh
bash hack/git/serve.sh up
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

files=()
rc=0
for n in $SIZES; do
  log "fleet of $n VMs"
  python3 hack/fleet/fleet.py up "$n"
  # shellcheck disable=SC2086
  out="$RESULTS/bench-${n}vms-$STAMP.json"
  .venv/bin/python -m bench --dev "$VMGITOPS_DEV" --work "$WORK/h$n" --hosts "$n" \
    --git-port "$GIT_PORT" --out "$out" ${BENCH_ARGS:-} || rc=1
  [[ -f "$out" ]] && files+=("$out")
done
if [[ "$LIGHT" != 0 ]]; then
  # The light hosts get the memory the VMs held.
  python3 hack/fleet/fleet.py down
  if [[ "$LIGHT" == auto ]]; then
    LIGHT="$(python3 hack/fleet/light.py capacity --cap "${BENCH_LIGHT_CAP:-1000}")"
    log "light hosts: $LIGHT fit in the free memory (light.py capacity)"
  fi
fi
if ((LIGHT > 0)); then
  log "fleet of $LIGHT light hosts"
  python3 hack/fleet/light.py up "$LIGHT"
  out="$RESULTS/bench-${LIGHT}light-$STAMP.json"
  # shellcheck disable=SC2086
  .venv/bin/python -m bench --light --dev "$VMGITOPS_DEV" --work "$WORK/light$LIGHT" \
    --hosts "$LIGHT" --git-port "$GIT_PORT" --out "$out" ${BENCH_LIGHT_ARGS-${BENCH_ARGS:-}} \
    || rc=1
  [[ -f "$out" ]] && files+=("$out")
  python3 hack/fleet/light.py down
fi
if ((SCALE > 0)); then
  # The scale run needs the memory and cores the VMs hold: they go first.
  python3 hack/fleet/fleet.py down
  out="$RESULTS/scale-${SCALE}-$STAMP.json"
  .venv/bin/python -m bench.scale --dev "$VMGITOPS_DEV" --work "$WORK/scale" \
    --targets "$SCALE" --out "$out" || rc=1
  [[ -f "$out" ]] && files+=("$out")
fi
if ((${#files[@]})); then
  .venv/bin/python -m bench.report --write "$ROOT/bench/RESULTS.md" "${files[@]}"
fi
log "done: bench/RESULTS.md, ${files[*]}"
exit $rc
