#!/usr/bin/env bash
# The whole local environment: control plane, fleet of FLEET VMs, Git server. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FLEET="${FLEET:-3}"
bash "$ROOT/hack/controlplane/up.sh"
python3 "$ROOT/hack/fleet/fleet.py" up "$FLEET"
bash "$ROOT/hack/git/serve.sh" up
