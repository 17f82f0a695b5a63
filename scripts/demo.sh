#!/usr/bin/env bash
# Run the gateway in demo mode: etc/demo/gateway.toml, state and control socket in ./var/demo
# (or --state-dir DIR), console logs. Creates .venv on first run.
#
#   ./scripts/demo.sh                       run until Ctrl-C
#   ./scripts/demo.sh --for 10              stop by itself (SIGTERM, graceful drain) after 10 s
#   ./scripts/demo.sh --state-dir /tmp/d    state, spool and control socket in /tmp/d (wiped)
#   DEMO_SECONDS=10 ./scripts/demo.sh
#
# While it runs, in another terminal:
#   .venv/bin/gatewayctl --socket var/demo/control.sock status
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${DEMO_SECONDS:-}"
state=var/demo
while [[ $# -gt 0 ]]; do
    case "$1" in
        --for) seconds="${2:?--for needs a number of seconds}"; shift 2 ;;
        --for=*) seconds="${1#--for=}"; shift ;;
        --state-dir) state="${2:?--state-dir needs a directory}"; shift 2 ;;
        --state-dir=*) state="${1#--state-dir=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ ! -x .venv/bin/gatewayd ]]; then
    echo "demo.sh: creating .venv (first run)" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
fi

# Each demo starts fresh: a new state directory and the bundled capture in the spool
# directory that the pcap source watches (etc/demo/gateway.toml).
# The demo configuration is written into the state directory with its paths pointing there
# (state, spool, control socket) and into this checkout (campaigns, areas, profiles).
root="$(pwd)"
rm -rf "$state"
mkdir -p "$state/pcap"
state="$(cd "$state" && pwd)"
cp etc/demo/sample.pcap "$state/pcap/"
sed -e "s|\"\.\./\.\./var/demo|\"$state|" \
    -e "s|\"\.\./|\"$root/etc/|" \
    -e "s|^file = \"profiles.csv\"|file = \"$root/etc/demo/profiles.csv\"|" \
    etc/demo/gateway.toml >"$state/gateway.toml"
.venv/bin/gatewayd --config "$state/gateway.toml" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
started=$SECONDS

# Once the daemon answers, show what it did with the capture: per campaign, the events
# matched, the contacts allowed by contact control, and the SMS sent to and delivered by the
# bundled SMSC simulator (receipts arrive about a second after submission).
ctl=(.venv/bin/gatewayctl --socket "$state/control.sock" --timeout 5)
summary() { .venv/bin/python scripts/demo_summary.py "$state/control.sock"; }
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    "${ctl[@]}" status >/dev/null 2>&1 && break
    sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
    summary || true
    echo "demo: try  .venv/bin/gatewayctl --socket $state/control.sock status | campaigns list | why 8613800000001 | smpp"
fi

if [[ -z "$seconds" ]]; then
    wait "$pid"
    exit $?
fi
# Stop after the delay (counted from the start), unless gatewayd ended first.
while kill -0 "$pid" 2>/dev/null && (( SECONDS - started < seconds )); do
    sleep 0.2
done
kill -TERM "$pid" 2>/dev/null || true
wait "$pid"
