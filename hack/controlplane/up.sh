#!/usr/bin/env bash
# Starts etcd and kube-apiserver on loopback with TLS, an admin client certificate and
# .dev/kubeconfig, the way envtest runs a bare control plane (no kubelet, no controllers).
# Running it again while the control plane is up does nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEV="${VMGITOPS_DEV:-$ROOT/.dev}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
BIN="${VMGITOPS_CACHE:-$HOME/.cache/vmgitops}/bin"
APISERVER_PORT="${APISERVER_PORT:-16443}"
ETCD_PORT="${ETCD_PORT:-12379}"
CP="$DEV/controlplane"
RUN="$DEV/run"
mkdir -p "$CP" "$RUN"
log() { echo "[controlplane] $*" >&2; }

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
ready() { curl -sf --cacert "$CP/ca.crt" --cert "$CP/admin.crt" --key "$CP/admin.key" \
  "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; }

if alive kube-apiserver && alive etcd && ready; then log "already up"; exit 0; fi

bash "$ROOT/hack/controlplane/build.sh" etcd
bash "$ROOT/hack/controlplane/build.sh" apiserver

# Certificates: one CA signs the serving certificate, the admin client and nothing else.
if [[ ! -f "$CP/admin.crt" ]]; then
  log "generating certificates"
  (
    cd "$CP"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=vmgitops-dev-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' > san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile san.ext -out apiserver.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
fi

stop_one() { if [[ -f "$RUN/$1.pid" ]]; then kill "$(cat "$RUN/$1.pid")" 2>/dev/null || true; rm -f "$RUN/$1.pid"; fi; }
stop_one kube-apiserver

if ! alive etcd; then
  stop_one etcd
  # Data on tmpfs when there is one: the control plane is disposable and fsync is slow.
  ETCD_DATA="$DEV/etcd"
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    ETCD_DATA="/dev/shm/vmgitops-etcd-$(echo -n "$DEV" | sha1sum | cut -c1-8)"
    echo "$ETCD_DATA" > "$CP/etcd-data-dir"
  fi
  mkdir -p "$ETCD_DATA"
  log "starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT"
  setsid "$BIN/etcd-$ETCD_VERSION" --name vmgitops --data-dir "$ETCD_DATA" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "vmgitops=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync --quota-backend-bytes=8589934592 --log-level=warn \
    >"$CP/etcd.log" 2>&1 < /dev/null &
  echo $! > "$RUN/etcd.pid"
fi

log "starting kube-apiserver $K8S_VERSION on https://127.0.0.1:$APISERVER_PORT"
setsid "$BIN/kube-apiserver-$K8S_VERSION" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --cert-dir "$CP" --tls-cert-file "$CP/apiserver.crt" --tls-private-key-file "$CP/apiserver.key" \
  --client-ca-file "$CP/ca.crt" \
  --secure-port "$APISERVER_PORT" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
  --disable-admission-plugins ServiceAccount --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$CP/sa.pub" --service-account-signing-key-file "$CP/sa.key" \
  --enable-priority-and-fairness=false --max-requests-inflight=2000 --max-mutating-requests-inflight=1000 \
  --v=0 >"$CP/kube-apiserver.log" 2>&1 < /dev/null &
echo $! > "$RUN/kube-apiserver.pid"

cat > "$DEV/kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: vmgitops-dev
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $CP/ca.crt
users:
- name: admin
  user:
    client-certificate: $CP/admin.crt
    client-key: $CP/admin.key
contexts:
- name: vmgitops-dev
  context: {cluster: vmgitops-dev, user: admin, namespace: default}
current-context: vmgitops-dev
KC
mv "$DEV/kubeconfig.tmp" "$DEV/kubeconfig"

for _ in $(seq 1 240); do
  if ready; then
    # The default namespace exists only once the bootstrap controllers ran; wait for it.
    if KUBECONFIG="$DEV/kubeconfig" kubectl get namespace default >/dev/null 2>&1; then
      log "ready"; exit 0
    fi
  fi
  if ! alive kube-apiserver; then log "kube-apiserver exited:"; tail -20 "$CP/kube-apiserver.log" >&2; exit 1; fi
  sleep 0.5
done
log "kube-apiserver not ready after 120s:"; tail -20 "$CP/kube-apiserver.log" >&2; exit 1
