#!/usr/bin/env bash
# `make demo`: from a fresh clone to a running story. Leaves the environment up
# (`make down` stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export KUBECONFIG="$ROOT/.dev/kubeconfig"
NS="${DEMO_NAMESPACE:-vmgitops-demo}"
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
  VMGITOPS_PROBE_INTERVAL="${VMGITOPS_PROBE_INTERVAL:-20}" setsid .venv/bin/vmgitops run \
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

step "kubectl get vmgitops -n $NS"
kubectl -n "$NS" get vmgitops
cat >&2 <<MSG

Look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $NS get vmt -o yaml          # conditions, facts, host key fingerprint
  kubectl -n $NS describe vmt vm1         # Events on transitions
  tail -f .dev/logs/operator.log
  make down                               # stop everything
MSG
