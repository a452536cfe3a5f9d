#!/usr/bin/env bash
# make demo: a busy hour in a minute. A server on SQLite in a temporary folder with a fresh
# signing key and the simulator's fake Telnyx REST API (so offers are pushed), three
# simulated agents and twelve callers arriving together: the trace shows each caller's
# place in line as the hold loop announces it, one agent rung per call at a time
# (longest-idle), wrap-up, then the summary and the consistency check, and a clean stop.
# Exit status: the simulator's (0 when consistent). Time runs 10x faster for the callers;
# the server's own timers are set to the simulated ones divided by ten.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build -q -p callcenter -p telnyx-sim
bin=${CARGO_TARGET_DIR:-$root/target}/debug  # where cargo put it
work=$(mktemp -d)
server_pid=

cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

eval "$("$bin/telnyx-sim" keygen | sed 's/^/export /')"
port=${DEMO_PORT:-18180}
base=http://127.0.0.1:$port
export CALL_CENTER_ADMIN_TOKEN="demo-admin-$(date +%s)-0123456789abcdef"

echo "== Starting the server on $base (SQLite in $work, fresh signing key)"
rest_port=${DEMO_REST_PORT:-18181}
rest_key="KEYdemo$(date +%s)"
env DATABASE_URL="sqlite://$work/demo.db" BIND_ADDR="127.0.0.1:$port" WEBHOOK_BASE_URL="$base" \
    TELNYX_PUBLIC_KEY="$TELNYX_PUBLIC_KEY" TELNYX_API_KEY="$rest_key" \
    TELNYX_API_BASE_URL="http://127.0.0.1:$rest_port" CALL_CENTER_QUEUE_STRATEGY=longest-idle \
    CALL_CENTER_WRAP_UP_SECONDS=1 CALL_CENTER_NO_ANSWER_DELAY_SECONDS=1 \
    CALL_CENTER_POSITION_INTERVAL_SECONDS=2 CALL_CENTER_MAX_WAIT_SECONDS=60 \
    CALL_CENTER_MATCHER_INTERVAL_MS=25 RUST_LOG=warn \
    "$bin/callcenter" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    if "$bin/telnyx-sim" ready --server "$base" 2>/dev/null; then break; fi
    sleep 0.1
done
"$bin/telnyx-sim" ready --server "$base" || {
    echo "The server did not become ready; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
}

echo "== A busy hour: 3 agents, 12 callers at once (1 simulated second = 100 ms)"
status=0
"$bin/telnyx-sim" run --server "$base" --agents 3 --calls 12 --concurrency 12 --ramp-up 2 \
    --time-compression 10 --talk-min 20 --talk-max 40 --answer-delay 3 \
    --answer-probability 0.85 --decline-probability 0.1 --hangup-probability 0.0 \
    --abandon-probability 0.1 --patience-max 120 \
    --server-wrap-up 1 --server-no-answer-delay 1 --server-misses-to-pause 3 --server-max-wait 60 \
    --rest-listen "127.0.0.1:$rest_port" --rest-key "$rest_key" --heartbeat-every 1 --settle-seconds 10 --verbose || status=$?
echo
if [[ $status -eq 0 ]]; then
    echo "== Demo finished: every call, agent metric and the audit chain are consistent."
else
    echo "== Demo FAILED (simulator exit $status); server log: " >&2
    cat "$work/server.log" >&2
fi
exit "$status"
