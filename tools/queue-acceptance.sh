#!/usr/bin/env bash
# make queue-acceptance: the queue's acceptance runs (docs/queue.md). Release servers with
# the simulator playing Telnyx (webhooks and the REST update-call), 2,000 calls, 5 agents,
# more callers than the agents can take, duplicated and reordered callbacks:
#   sqlite          one server on SQLite, pushes on
#   postgres        one server on PostgreSQL, pushes on
#   two-instances   two servers on one PostgreSQL, requests spread over both, pushes on
#   push-failures   one server on PostgreSQL, the fake REST API failing 30% of pushes
# Each run fails unless every call, agent metric and the audit chain are consistent, no
# agent had two open offers or two ringing legs, callers were offered in (priority,
# enqueued_at) order, wrap-up and no-answer delays were kept, pauses match, and no caller
# waited longer than the limit while an agent idled (2 s simulated with pushes; one hold
# segment plus 2 s when pushes fail). Results: target/queue-acceptance/.
#
# Time is compressed 10×; the server's own timers are real seconds, so its settings here
# are the simulated ones divided by ten where they can be (wrap-up and no-answer delay are
# whole seconds: 1 s real = 10 s simulated; the matcher's sweep 25 ms = its 250 ms default
# scaled).
#
# Needs PostgreSQL on QUEUE_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# where it creates and drops its own databases. QUEUE_CALLS overrides the call count;
# arguments pick runs (default: all four).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
calls=${QUEUE_CALLS:-2000}
pg_admin=${QUEUE_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
runs=("$@")
((${#runs[@]})) || runs=(sqlite postgres two-instances push-failures)

cargo build --release -q -p callcenter -p telnyx-sim
bin=${CARGO_TARGET_DIR:-$root/target}/release
out=$root/target/queue-acceptance
mkdir -p "$out"
: >"$out/results.jsonl"
work=$(mktemp -d)
pids=()
dbs=()

cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for db in "${dbs[@]}"; do psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
    if [[ -n ${QUEUE_KEEP:-} ]]; then echo "queue-acceptance: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
eval "$("$bin/telnyx-sim" keygen | sed 's/^/export /')"
export CALL_CENTER_ADMIN_TOKEN="queue-admin-token-$(date +%s)-0123456789"
rest_key="KEYqueue$(date +%s)"

# start_server NAME INDEX PORT DB_URL REST_PORT
start_server() {
    local name=$1 i=$2 port=$3 db=$4 rest=$5
    env DATABASE_URL="$db" BIND_ADDR="127.0.0.1:$port" WEBHOOK_BASE_URL="http://127.0.0.1:$port" \
        TELNYX_PUBLIC_KEY="$TELNYX_PUBLIC_KEY" TELNYX_API_KEY="$rest_key" \
        TELNYX_API_BASE_URL="http://127.0.0.1:$rest" \
        CALL_CENTER_WRAP_UP_SECONDS=1 CALL_CENTER_NO_ANSWER_DELAY_SECONDS=1 \
        CALL_CENTER_MISSES_TO_PAUSE=3 CALL_CENTER_MAX_WAIT_SECONDS=3 \
        CALL_CENTER_MATCHER_INTERVAL_MS=25 CALL_CENTER_SPOOL_DIR="$work/$name/spool-$i" \
        RUST_LOG="${QUEUE_RUST_LOG:-warn}" \
        "$bin/callcenter" serve >>"$work/$name/server-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 150); do
        "$bin/telnyx-sim" ready --server "http://127.0.0.1:$port" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "queue-acceptance: server $i of $name did not become ready:" >&2
    tail -20 "$work/$name/server-$i.log" >&2
    return 1
}

status=0
for name in "${runs[@]}"; do
    mkdir -p "$work/$name"
    instances=1 failures=0 limit=2 backend=postgres
    case $name in
    sqlite) backend=sqlite ;;
    postgres) ;;
    two-instances) instances=2 ;;
    push-failures) failures=0.3 limit=12 ;;
    *) echo "queue-acceptance: unknown run $name" >&2; exit 2 ;;
    esac
    if [[ $backend == sqlite ]]; then
        db="sqlite://$work/$name/queue.db"
    else
        dbname="queue_acceptance_${name//-/_}_$$"
        psql -q "$pg_admin" -c "CREATE DATABASE $dbname" >/dev/null
        dbs+=("$dbname")
        db="${pg_admin%/*}/$dbname"
    fi
    rest_port=$(free_port)
    servers=()
    for i in $(seq 1 "$instances"); do
        port=$(free_port)
        start_server "$name" "$i" "$port" "$db" "$rest_port"
        servers+=(--server "http://127.0.0.1:$port")
    done
    echo "== $name: $calls calls, 5 agents, $instances instance(s) on $backend, pushes failing ${failures}"
    run_status=0
    "$bin/telnyx-sim" run "${servers[@]}" --agents 5 --calls "$calls" --concurrency 30 \
        --time-compression 10 --ramp-up 20 --talk-min 2 --talk-max 8 --answer-delay 3 \
        --answer-probability 0.75 --decline-probability 0.15 --hangup-probability 0.02 \
        --abandon-probability 0.1 --patience-max 25 --duplicates 0.2 --reorder \
        --server-wrap-up 1 --server-no-answer-delay 1 --server-misses-to-pause 3 --server-max-wait 3 \
        --idle-wait-limit "$limit" --rest-listen "127.0.0.1:$rest_port" --rest-key "$rest_key" \
        --rest-5xx "$failures" --heartbeat-every 1 --settle-seconds 30 \
        --summary-json "$out/$name.json" | tee "$out/$name.txt" || run_status=$?
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["run"]=sys.argv[2]; d["exit"]=int(sys.argv[3]); print(json.dumps(d))' \
        "$out/$name.json" "$name" "$run_status" >>"$out/results.jsonl" || true
    if ((run_status != 0)); then
        status=1
        echo "queue-acceptance: $name FAILED; server log tail:" >&2
        tail -20 "$work/$name/server-1.log" >&2
    fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
done
echo "results: $out/results.jsonl"
exit "$status"
