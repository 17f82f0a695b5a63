#!/usr/bin/env bash
# Run the gateway in demo mode: etc/demo/gateway.toml, state and control socket in ./var/demo,
# console logs. Creates .venv on first run.
#
#   ./scripts/demo.sh               run until Ctrl-C
#   ./scripts/demo.sh --for 10      stop by itself (SIGTERM, graceful drain) after 10 seconds
#   DEMO_SECONDS=10 ./scripts/demo.sh
#
# While it runs, in another terminal:
#   .venv/bin/gatewayctl --socket var/demo/control.sock status
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${DEMO_SECONDS:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --for) seconds="${2:?--for needs a number of seconds}"; shift 2 ;;
        --for=*) seconds="${1#--for=}"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ ! -x .venv/bin/gatewayd ]]; then
    echo "demo.sh: creating .venv (first run)" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
fi

mkdir -p var/demo
if [[ -z "$seconds" ]]; then
    exec .venv/bin/gatewayd --demo
fi

.venv/bin/gatewayd --demo &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
sleep "$seconds" &
sleeper=$!
# Stop after the delay, unless gatewayd ended first.
while kill -0 "$pid" 2>/dev/null && kill -0 "$sleeper" 2>/dev/null; do
    sleep 0.2
done
kill "$sleeper" 2>/dev/null || true
kill -TERM "$pid" 2>/dev/null || true
wait "$pid"
