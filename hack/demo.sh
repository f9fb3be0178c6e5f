#!/usr/bin/env bash
# `make demo`: from a fresh clone to a running story. Leaves the environment up
# (`make down` stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export KUBECONFIG="$ROOT/.dev/kubeconfig"
NS="${DEMO_NAMESPACE:-vmgitops-demo}"
export FLEET="${FLEET:-4}"
GIT_PORT="${GIT_PORT:-9418}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "environment: control plane, fleet of ${FLEET:-3} VMs, Git server"
bash hack/up.sh

step "CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

step "operator (log: .dev/logs/operator.log)"
mkdir -p .dev/logs .dev/run
if [[ -f .dev/run/operator.pid ]] && kill -0 "$(cat .dev/run/operator.pid)" 2>/dev/null; then
  echo "already running (pid $(cat .dev/run/operator.pid))" >&2
else
  # Metrics on loopback only: the demo VMs share this host's network, and a service on a
  # VM could not bind a port that the operator holds on 0.0.0.0.
  VMGITOPS_PROBE_INTERVAL="${VMGITOPS_PROBE_INTERVAL:-20}" setsid .venv/bin/vmgitops run \
    --metrics-address 127.0.0.1 --metrics-port "${METRICS_PORT:-0}" \
    >.dev/logs/operator.log 2>&1 < /dev/null &
  echo $! > .dev/run/operator.pid
fi

step "examples/quickstart: the fleet as VirtualMachineTargets in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
python3 hack/render-example.py examples/quickstart | kubectl -n "$NS" apply -f -

step "waiting until every target is Reachable"
for _ in $(seq 1 120); do
  total=$(kubectl -n "$NS" get vmt -o name | wc -l)
  ready=$(kubectl -n "$NS" get vmt -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Reachable")].status}{"\n"}{end}' | grep -c '^True$' || true)
  [[ "$ready" == "$total" && "$total" -gt 0 ]] && break
  sleep 1
done

step "the shop's Git repository: examples/shop pushed to git://127.0.0.1:$GIT_PORT/shop.git"
SHOP_WORK="$ROOT/.dev/demo/shop"
rm -rf "$SHOP_WORK" "$ROOT/.dev/git/shop.git"
git init -q --bare -b main "$ROOT/.dev/git/shop.git"
mkdir -p "$SHOP_WORK" && cp -r examples/shop/apps "$SHOP_WORK/"
gitc() { git -C "$SHOP_WORK" -c user.name=demo -c user.email=demo@example.invalid "$@"; }
gitc init -q -b main && gitc add -A && gitc commit -qm "web: first release"
gitc push -q "$ROOT/.dev/git/shop.git" main
FIRST=$(gitc rev-parse HEAD)

step "examples/shop/deploy: web-staging (env=staging) and web-prod (env=prod)"
python3 hack/render-example.py examples/shop/deploy | kubectl -n "$NS" apply -f -

wait_app() {  # name revision
  for _ in $(seq 1 180); do
    got=$(kubectl -n "$NS" get vmapp "$1" -o jsonpath='{.status.sync.status}/{.status.health.status}/{.status.sync.revision}/{.status.operation.phase}')
    [[ "$got" == "Synced/Healthy/$2/Succeeded" ]] && return 0
    sleep 1
  done
  echo "timed out waiting for $1 Synced/Healthy at $2 (now: $got)" >&2; return 1
}
wait_app web-staging "$FIRST"; wait_app web-prod "$FIRST"
# prod is pinned to what it runs: from here on only a promotion moves it.
kubectl -n "$NS" patch vmapp web-prod --type merge -p "{\"spec\":{\"source\":{\"targetRevision\":\"$FIRST\"}}}" >/dev/null
kubectl -n "$NS" get vmapp

VM1=$(python3 -c 'import json; print(json.load(open(".dev/fleet.json"))[0]["address"])')
step "on vm1: /etc/hello/hello.conf and the service's answer"
ssh -F /dev/null -i .dev/keys/fleet_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o LogLevel=ERROR "root@$VM1" "cat /etc/hello/hello.conf; curl -s http://$VM1:8080/; ls -l /opt/hello"

step "a commit: a new release rolls out to staging one VM at a time"
echo "release 2" > "$SHOP_WORK/apps/web/dist/NOTES"
gitc commit -qam "web: release 2" && gitc push -q "$ROOT/.dev/git/shop.git" main
SECOND=$(gitc rev-parse HEAD)
kubectl -n "$NS" annotate vmapp web-staging vmgitops.io/refresh=now --overwrite >/dev/null
wait_app web-staging "$SECOND"
kubectl -n "$NS" get vmapp web-staging -o jsonpath='{.status.operation}{"\n"}{.status.history}{"\n"}'

step "a promotion: web-staging's verified revision to web-prod, approved with the CLI"
# The Promotion gates on web-staging being Synced and Healthy at the revision, waits for
# approval, patches web-prod's targetRevision and verifies web-prod at the revision.
PROMO=$(.venv/bin/vmgitops promote --from web-staging --to web-prod --require-approval \
  -n "$NS" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["name"])')
promo_phase() { kubectl -n "$NS" get promotion "$PROMO" -o jsonpath='{.status.phase}'; }
for _ in $(seq 1 120); do
  phase=$(promo_phase)
  [[ "$phase" == WaitingForApproval || "$phase" == Succeeded || "$phase" == Failed ]] && break
  sleep 1
done
.venv/bin/vmgitops status -n "$NS"
if [[ "$(promo_phase)" == WaitingForApproval ]]; then
  .venv/bin/vmgitops approve "$PROMO" --by demo -n "$NS"
fi
for _ in $(seq 1 300); do
  phase=$(promo_phase)
  [[ "$phase" == Succeeded || "$phase" == Failed || "$phase" == RolledBack ]] && break
  sleep 1
done
if [[ "$phase" != Succeeded ]]; then
  kubectl -n "$NS" get promotion "$PROMO" -o yaml >&2
  echo "promotion $PROMO ended $phase" >&2; exit 1
fi
wait_app web-prod "$SECOND"
kubectl -n "$NS" get promotion "$PROMO" \
  -o jsonpath='{.status.phase} {.status.reason}: {.status.message}{"\n"}approved by {.status.approvedBy} at {.status.approvedAt}; previous revisions {.status.previousRevisions}{"\n"}'
.venv/bin/vmgitops status -n "$NS"

step "kubectl get vmgitops -n $NS"
kubectl -n "$NS" get vmgitops
cat >&2 <<MSG

Look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $NS get vmt -o yaml          # conditions, facts, per-application status
  kubectl -n $NS get vmapp web-staging -o yaml   # sync, health, operation, history
  kubectl -n $NS describe vmt vm1         # Events on transitions
  tail -f .dev/logs/operator.log
  make down                               # stop everything
MSG
