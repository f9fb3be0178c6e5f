#!/usr/bin/env bash
# `make test`: the whole suite against real parts. The pytest session fixtures start the
# control plane, the fleet and the Git server themselves (idempotently), so a bare
# `.venv/bin/pytest` works too.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export FLEET="$(( ${FLEET:-4} > 4 ? ${FLEET:-4} : 4 ))"
# Build the control plane before pytest starts, so a cold machine's 15-minute Go build is
# visible in CI's log instead of looking like a hung fixture.
bash hack/controlplane/build.sh etcd
bash hack/controlplane/build.sh apiserver
bash hack/controlplane/build.sh helm
if (($#)); then args=("$@"); else args=(tests); fi
set +e
.venv/bin/pytest -q -p no:cacheprovider "${args[@]}"
rc=$?
set -e
# pytest exits 5 when nothing was collected: that is a failure here, never a pass.
exit $rc
