#!/usr/bin/env bash
# Stops kube-apiserver and etcd and drops etcd's data (the dev control plane is disposable).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEV="${VMGITOPS_DEV:-$ROOT/.dev}"
RUN="$DEV/run"
for p in kube-apiserver etcd; do
  if [[ -f "$RUN/$p.pid" ]]; then
    pid="$(cat "$RUN/$p.pid")"
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$RUN/$p.pid"
  fi
done
if [[ -f "$DEV/controlplane/etcd-data-dir" ]]; then rm -rf "$(cat "$DEV/controlplane/etcd-data-dir")"; fi
rm -rf "$DEV/etcd" "$DEV/kubeconfig"
echo "[controlplane] down" >&2
