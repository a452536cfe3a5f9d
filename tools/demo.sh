#!/usr/bin/env bash
# make demo: a server on SQLite in a temporary folder with a fresh signing key, five
# simulated agents and twenty simulated calls with a readable trace, the summary and the
# consistency check, then a clean stop. Exit status: the simulator's (0 when consistent).
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
env DATABASE_URL="sqlite://$work/demo.db" BIND_ADDR="127.0.0.1:$port" WEBHOOK_BASE_URL="$base" \
    TELNYX_PUBLIC_KEY="$TELNYX_PUBLIC_KEY" RUST_LOG=warn \
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

echo "== 5 agents, 20 calls (1 simulated second = 10 ms)"
status=0
"$bin/telnyx-sim" run --server "$base" --agents 5 --calls 20 --concurrency 6 --answer-probability 0.45 --hangup-probability 0.1 \
    --time-compression 100 --verbose || status=$?
echo
if [[ $status -eq 0 ]]; then
    echo "== Demo finished: every call, agent metric and the audit chain are consistent."
else
    echo "== Demo FAILED (simulator exit $status); server log: " >&2
    cat "$work/server.log" >&2
fi
exit "$status"
