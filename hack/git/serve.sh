#!/usr/bin/env bash
# git daemon on 127.0.0.1:9418 serving the bare repositories in .dev/git/ (read-only git://).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEV="${VMGITOPS_DEV:-$ROOT/.dev}"
PORT="${GIT_PORT:-9418}"
mkdir -p "$DEV/git" "$DEV/run"
case "${1:-up}" in
  up)
    if [[ -f "$DEV/run/git-daemon.pid" ]] && kill -0 "$(cat "$DEV/run/git-daemon.pid")" 2>/dev/null; then
      echo "[git] already serving" >&2; exit 0
    fi
    setsid git daemon --reuseaddr --listen=127.0.0.1 --port="$PORT" --base-path="$DEV/git" \
      --export-all --informative-errors "$DEV/git" >"$DEV/run/git-daemon.log" 2>&1 < /dev/null &
    echo $! > "$DEV/run/git-daemon.pid"
    for _ in $(seq 1 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "[git] serving git://127.0.0.1:$PORT/" >&2; exit 0; }
      sleep 0.1
    done
    echo "[git] git daemon did not start:" >&2; cat "$DEV/run/git-daemon.log" >&2; exit 1 ;;
  down)
    if [[ -f "$DEV/run/git-daemon.pid" ]]; then kill "$(cat "$DEV/run/git-daemon.pid")" 2>/dev/null || true; rm -f "$DEV/run/git-daemon.pid"; fi
    # git daemon forks a child per connection; the session leader's group goes too.
    pkill -f "git daemon --reuseaddr --listen=127.0.0.1 --port=$PORT" 2>/dev/null || true
    echo "[git] down" >&2 ;;
esac
