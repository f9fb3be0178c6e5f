#!/usr/bin/env bash
# Stops everything `make up`, the tests or the demo started; safe after a crash and when
# nothing is running.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEV="${VMGITOPS_DEV:-$ROOT/.dev}"
if [[ -f "$DEV/run/operator.pid" ]]; then kill "$(cat "$DEV/run/operator.pid")" 2>/dev/null; rm -f "$DEV/run/operator.pid"; fi
bash "$ROOT/hack/git/serve.sh" down
python3 "$ROOT/hack/fleet/fleet.py" down
bash "$ROOT/hack/controlplane/down.sh"
