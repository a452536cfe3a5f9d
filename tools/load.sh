#!/usr/bin/env bash
# One load run: starts release server(s) on a fresh database, drives them with telnyx-sim,
# records the servers' peak RSS, stops them, and prints one JSON line with the figures.
#
#   tools/load.sh LABEL BACKEND INSTANCES CALLS CONCURRENCY AGENTS [extra telnyx-sim args]
#
# BACKEND: `sqlite` (a file in a temporary folder) or a postgres:// URL of a server where
# the database `callcenter_bench` may be dropped and created. Everything binds to loopback.
# Expects `cargo build --release -p callcenter -p telnyx-sim` to have run (make bench does).
set -euo pipefail

label=$1 backend=$2 instances=$3 calls=$4 concurrency=$5 agents=$6
shift 6
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release  # where cargo put it
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # Leave PostgreSQL quiet for the next run (no autovacuum of this run's tables under it).
    if [[ -n ${admin_url:-} && -z ${BENCH_KEEP:-} ]]; then
        psql -q "$admin_url" -c "DROP DATABASE IF EXISTS callcenter_bench WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [[ -n ${BENCH_KEEP:-} ]]; then echo "load.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

case $backend in
sqlite) db_url="sqlite://$work/bench.db" ;;
postgres://*)
    db_url="${backend%/*}/callcenter_bench"
    admin_url=$backend
    if ! command -v psql >/dev/null; then
        echo "load.sh: psql is needed to create the bench database" >&2
        exit 2
    fi
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS callcenter_bench WITH (FORCE)" >/dev/null
    psql -q "$admin_url" -c "CREATE DATABASE callcenter_bench" >/dev/null
    psql -q "$admin_url" -c "CHECKPOINT" >/dev/null # each run starts from the same WAL state
    ;;
*)
    echo "load.sh: BACKEND must be sqlite or a postgres:// URL" >&2
    exit 2
    ;;
esac

eval "$("$bin/telnyx-sim" keygen | sed 's/^/export /')"
token="bench-admin-token-$(date +%s)-0123456789"
servers=()
for i in $(seq 1 "$instances"); do
    port=$((18080 + i))
    env DATABASE_URL="$db_url" BIND_ADDR="127.0.0.1:$port" WEBHOOK_BASE_URL="http://127.0.0.1:$port" \
        CALL_CENTER_ADMIN_TOKEN="$token" TELNYX_PUBLIC_KEY="$TELNYX_PUBLIC_KEY" \
        ${BENCH_DB_CONNECTIONS:+DATABASE_MAX_CONNECTIONS=$BENCH_DB_CONNECTIONS} RUST_LOG="${BENCH_RUST_LOG:-warn}" \
        "$bin/callcenter" >"$work/server-$i.log" 2>&1 &
    pids+=($!)
    servers+=(--server "http://127.0.0.1:$port")
    for _ in $(seq 1 100); do
        "$bin/telnyx-sim" ready --server "http://127.0.0.1:$port" && break
        sleep 0.1
    done
    if ! "$bin/telnyx-sim" ready --server "http://127.0.0.1:$port"; then
        echo "load.sh: server $i did not become ready:" >&2
        cat "$work/server-$i.log" >&2
        exit 1
    fi
done

status=0
"$bin/telnyx-sim" run "${servers[@]}" --admin-token "$token" \
    --calls "$calls" --concurrency "$concurrency" --agents "$agents" \
    --summary-json "$work/summary.json" "$@" >"$work/sim.out" 2>&1 || status=$?
rss_kb=0
for pid in "${pids[@]}"; do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ((hwm > rss_kb)) && rss_kb=$hwm
done
offers_per_call=null
if [[ $backend == postgres://* ]]; then
    offers_per_call=$(psql -qAt "$db_url" -c \
        "SELECT round(count(*)::numeric / greatest((SELECT count(*) FROM calls), 1), 2) FROM offers")
fi
cat "$work/sim.out" >&2
if [[ ! -s $work/summary.json ]]; then
    echo "load.sh: the simulator wrote no summary (exit $status)" >&2
    exit 1
fi
python3 - "$label" "$instances" "$concurrency" "$rss_kb" "$status" "$work/summary.json" "$offers_per_call" <<'EOF'
import json, sys
label, instances, concurrency, rss_kb, status, path, offers = sys.argv[1:]
s = json.load(open(path))
s.update(label=label, instances=int(instances), concurrency=int(concurrency),
         peak_rss_mb=round(int(rss_kb) / 1024, 1), sim_exit=int(status),
         offers_per_call=json.loads(offers))
print(json.dumps(s))
EOF
exit "$status"
