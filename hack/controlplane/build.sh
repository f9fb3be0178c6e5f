#!/usr/bin/env bash
# Builds kube-apiserver, etcd and helm from the published Go modules and caches them
# outside the repository, keyed by version, so that a second run builds nothing.
# Why a wrapper module: k8s.io/kubernetes replaces its staging modules with local
# paths, which `go install pkg@version` refuses; the wrapper pins them to the
# published k8s.io/<name> v0.X.Y modules instead.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${VMGITOPS_CACHE:-$HOME/.cache/vmgitops}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "[controlplane] $*" >&2; }

build_apiserver() {
  local out="$BIN/kube-apiserver-$K8S_VERSION"
  [[ -x "$out" ]] && { log "kube-apiserver $K8S_VERSION cached"; return; }
  local work="$CACHE/build/apiserver-$K8S_VERSION"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  local staging_ver="v0.${K8S_VERSION#v1.}"
  log "building kube-apiserver $K8S_VERSION (staging $staging_ver); 10-15 min on 2 cores"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module vmgitops.io/controlplane"
    echo
    echo "go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" \
      | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  go mod tidy
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  go build -trimpath -pgo=off -ldflags "$ld" -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$BIN/etcd-$ETCD_VERSION"
  [[ -x "$out" ]] && { log "etcd $ETCD_VERSION cached"; return; }
  local work="$CACHE/build/etcd-$ETCD_VERSION"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  log "building etcd $ETCD_VERSION"
  cat > go.mod <<MOD
module vmgitops.io/etcdbuild

go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
  mv "$out.tmp" "$out"
}

build_helm() {
  local out="$BIN/helm-$HELM_VERSION"
  [[ -x "$out" ]] && { log "helm $HELM_VERSION cached"; return; }
  log "building helm $HELM_VERSION"
  GOBIN="$CACHE/build/helm-$HELM_VERSION" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$CACHE/build/helm-$HELM_VERSION/helm" "$out"
}

what="${1:-all}"
case "$what" in
  apiserver) build_apiserver ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  all) build_etcd; build_apiserver; build_helm ;;
  *) echo "usage: $0 [all|apiserver|etcd|helm]" >&2; exit 2 ;;
esac
