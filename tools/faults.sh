#!/usr/bin/env bash
# make faults: the fault suite. telnyx-sim drives calls at release servers on PostgreSQL while
#   pg-restart     PostgreSQL is restarted (fast shutdown: every connection dropped);
#   db-stall       a TCP proxy holds every byte to and from the database for 10 s;
#   server-kill    the server is killed with SIGKILL while the database is stalled (so its
#                  spool holds callbacks already acknowledged), then restarted on its spool;
#   instance-kill  one of two instances behind the simulator is killed with SIGKILL;
#   sqlite-kill    the server on SQLite (its group commit: several webhooks per transaction)
#                  is killed with SIGKILL mid-run, then restarted on the same file.
# After each: instruction requests answered 200 (and the slowest answer against the
# deadline), fallback documents, webhooks sent again (Telnyx's failover), callbacks lost
# (the simulator's consistency check: every call's status, outcome, talk time and voicemail,
# every agent's counters; plus the spool's dead letters), agents left busy, the audit chain.
#
#   tools/faults.sh [--short] [SCENARIO...]
#
# --short (CI): fewer calls. Results: target/faults/results.jsonl and a table. Needs the
# release build (this script builds it) and PostgreSQL's server binaries (initdb, pg_ctl:
# the postgresql package); it runs its own throwaway cluster on a free loopback port, so the
# restart touches nothing else. Everything binds to 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# The `fault-suite` profile: release's optimizations without its whole-program LTO, which
# makes a clean build minutes longer (CI) and changes nothing the faults test.
bin=${CARGO_TARGET_DIR:-$root/target}/fault-suite  # where cargo put it
out=$root/target/faults
calls=${FAULT_CALLS:-400}
concurrency=${FAULT_CONCURRENCY:-40}
agents=${FAULT_AGENTS:-20}
compression=${FAULT_TIME_COMPRESSION:-40}
deadline_ms=${WEBHOOK_DEADLINE_MS:-3000}
scenarios=()
for arg in "$@"; do
    case $arg in
    --short) calls=${FAULT_CALLS:-160} concurrency=${FAULT_CONCURRENCY:-24} ;;
    pg-restart | db-stall | server-kill | instance-kill | sqlite-kill) scenarios+=("$arg") ;;
    *)
        echo "usage: tools/faults.sh [--short] [pg-restart|db-stall|server-kill|instance-kill|sqlite-kill ...]" >&2
        exit 2
        ;;
    esac
done
((${#scenarios[@]})) || scenarios=(pg-restart db-stall server-kill instance-kill sqlite-kill)

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $pgbin || ! -x $pgbin/initdb ]]; then
    pgbin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
[[ -x $pgbin/initdb ]] || {
    echo "faults: PostgreSQL's initdb and pg_ctl are needed (apt-get install postgresql)" >&2
    exit 2
}
command -v psql >/dev/null || {
    echo "faults: psql is needed (apt-get install postgresql-client)" >&2
    exit 2
}

(cd "$root" && cargo build --profile fault-suite -q -p callcenter -p telnyx-sim)
mkdir -p "$out"
: >"$out/results.jsonl"

work=$(mktemp -d)
chmod 755 "$work"
pids=()
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    if [[ -n ${FAULTS_KEEP:-} ]]; then echo "faults: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A throwaway cluster: trust, loopback only, fsync on (durability is what is tested).
pg_port=$(free_port)
mkdir -p "$work/pg" "$work/pg-socket"
[[ $(id -u) == 0 ]] && chown postgres "$work/pg" "$work/pg-socket"
as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
pg_start() {
    as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg-socket/log" -w \
        -o "-p $pg_port -k $work/pg-socket -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}
pg_start
admin_url="postgres://postgres@127.0.0.1:$pg_port/postgres"

eval "$("$bin/telnyx-sim" keygen | sed 's/^/export /')"
token="faults-admin-token-$(date +%s)-0123456789"

# start_server SCENARIO INDEX PORT DB_URL: a release server with its own spool folder.
start_server() {
    local name=$1 i=$2 port=$3 db=$4
    env DATABASE_URL="$db" BIND_ADDR="127.0.0.1:$port" WEBHOOK_BASE_URL="http://127.0.0.1:$port" \
        CALL_CENTER_ADMIN_TOKEN="$token" TELNYX_PUBLIC_KEY="$TELNYX_PUBLIC_KEY" \
        CALL_CENTER_SPOOL_DIR="$work/$name/spool-$i" CALL_CENTER_AGENT_HEARTBEAT_TTL=600 \
        WEBHOOK_DEADLINE_MS="$deadline_ms" RUST_LOG="${FAULT_RUST_LOG:-warn}" \
        "$bin/callcenter" >>"$work/$name/server-$i.log" 2>&1 &
    server_pid[$i]=$!
    pids+=("${server_pid[$i]}")
    for _ in $(seq 1 150); do
        "$bin/telnyx-sim" ready --server "http://127.0.0.1:$port" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "faults: server $i of $name did not become ready:" >&2
    tail -20 "$work/$name/server-$i.log" >&2
    return 1
}

metric_sum() { # metric_sum NAME PORT...: the metric summed over the instances that answer
    local name=$1 total=0 v
    shift
    for port in "$@"; do
        v=$(curl -s "http://127.0.0.1:$port/metrics" | awk -v n="$name" '$1 ~ "^"n"({|$)" {s+=$2} END {print s+0}' || echo 0)
        total=$(python3 -c "print(int($total + ${v:-0}))")
    done
    echo "$total"
}

# The faults, run while the simulator's calls are in progress.
fault_pg-restart() { as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast -w restart -o "-p $pg_port -k $work/pg-socket -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null; }
fault_db-stall() { kill -USR1 "$proxy_pid"; sleep 10; kill -USR1 "$proxy_pid"; }
fault_server-kill() {
    kill -USR1 "$proxy_pid" # the database stalls: callbacks go to the spool
    sleep 4
    kill -KILL "${server_pid[1]}"
    wait "${server_pid[1]}" 2>/dev/null || true
    sleep 1
    kill -USR1 "$proxy_pid"
    start_server "$name" 1 "${ports[0]}" "$db_url"
}
fault_sqlite-kill() {
    kill -KILL "${server_pid[1]}"
    wait "${server_pid[1]}" 2>/dev/null || true
    sleep 1
    start_server "$name" 1 "${ports[0]}" "$db_url"
}
fault_instance-kill() {
    kill -KILL "${server_pid[2]}"
    wait "${server_pid[2]}" 2>/dev/null || true
}

declare -A server_pid
for name in "${scenarios[@]}"; do
    mkdir -p "$work/$name"
    instances=1
    [[ $name == instance-kill ]] && instances=2
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS faults WITH (FORCE)" >/dev/null
    psql -q "$admin_url" -c "CREATE DATABASE faults" >/dev/null
    proxy_port=$(free_port)
    "$bin/telnyx-sim" proxy --listen "127.0.0.1:$proxy_port" --target "127.0.0.1:$pg_port" 2>>"$work/$name/proxy.log" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    db_url="postgres://postgres@127.0.0.1:$proxy_port/faults"
    [[ $name == sqlite-kill ]] && db_url="sqlite://$work/$name/cc.db"
    ports=()
    servers=()
    for i in $(seq 1 "$instances"); do
        ports+=("$(free_port)")
        start_server "$name" "$i" "${ports[$((i - 1))]}" "$db_url"
        servers+=(--server "http://127.0.0.1:${ports[$((i - 1))]}")
    done
    echo "== $name: $calls calls, $concurrency at once, $agents agents, $instances instance(s)"
    "$bin/telnyx-sim" run "${servers[@]}" --admin-token "$token" --signing-key "$TELNYX_SIM_SIGNING_KEY" \
        --calls "$calls" --concurrency "$concurrency" --agents "$agents" --time-compression "$compression" \
        --ramp-up 200 --failover-seconds 60 --settle-seconds 90 --seed 7 \
        --summary-json "$work/$name/summary.json" >"$work/$name/sim.out" 2>&1 &
    sim_pid=$!
    sleep 8
    echo "   fault: $name at $(date +%T)"
    "fault_$name"
    sim_status=0
    wait "$sim_pid" || sim_status=$?
    alive=()
    for i in $(seq 1 "$instances"); do
        kill -0 "${server_pid[$i]}" 2>/dev/null && alive+=("${ports[$((i - 1))]}")
    done
    dead=$(metric_sum callcenter_spool_dead_letters_total "${alive[@]}")
    refused=$(metric_sum callcenter_spool_refused_total "${alive[@]}")
    replayed=$(metric_sum callcenter_spool_replayed_total "${alive[@]}")
    reconciled=$(metric_sum callcenter_reconciler_repairs_total "${alive[@]}")
    deadlocks=$(grep -c "deadlock detected" "$work/pg-socket/log" || true)
    python3 - "$work/$name/summary.json" "$name" "$sim_status" "$dead" "$refused" "$replayed" "$reconciled" "$deadline_ms" "$deadlocks" >>"$out/results.jsonl" <<'EOF'
import json, sys
path, name, status, dead, refused, replayed, reconciled, deadline, deadlocks = sys.argv[1:]
try:
    s = json.load(open(path))
except Exception:
    s = {}
row = {
    "scenario": name,
    "sim_exit": int(status),
    "calls": s.get("calls", 0),
    "failed_calls": s.get("failed_calls"),
    "errors": s.get("errors"),
    "fallbacks": s.get("fallbacks"),
    "failovers": s.get("failovers"),
    "slowest_answer_ms": round(s.get("slowest_answer_ms", 0), 1),
    "deadline_ms": int(deadline),
    "mismatches": s.get("mismatches"),
    "mismatch_lines": s.get("mismatch_lines", []),
    "failures": s.get("failures", []),
    "dead_letters": int(dead),
    "spool_refused": int(refused),
    "spool_replayed": int(replayed),
    "reconciler_repairs": int(reconciled),
    "deadlocks": int(deadlocks),
}
print(json.dumps(row))
EOF
    tail -1 "$out/results.jsonl" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   " + ", ".join(f"{k} {r[k]}" for k in ("calls","failed_calls","fallbacks","failovers","slowest_answer_ms","mismatches","dead_letters","spool_replayed","reconciler_repairs")))'
    for i in $(seq 1 "$instances"); do kill -TERM "${server_pid[$i]}" 2>/dev/null || true; done
    kill -TERM "$proxy_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    cp "$work/$name/sim.out" "$out/$name.sim.out"
done

python3 - "$out/results.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = ["scenario", "calls", "failed_calls", "fallbacks", "failovers", "slowest_answer_ms",
        "mismatches", "dead_letters", "spool_replayed", "reconciler_repairs", "deadlocks"]
print()
print(" | ".join(cols))
print(" | ".join("---" for _ in cols))
ok = True
for r in rows:
    print(" | ".join(str(r.get(c)) for c in cols))
    problems = []
    if r["sim_exit"] != 0: problems.append(f"simulator exit {r['sim_exit']}")
    if r["failed_calls"]: problems.append(f"{r['failed_calls']} calls failed: {r['failures'][:3]}")
    if r["mismatches"]: problems.append(f"{r['mismatches']} mismatches: {r['mismatch_lines'][:5]}")
    if r["dead_letters"]: problems.append(f"{r['dead_letters']} dead letters")
    if r["deadlocks"]: problems.append(f"{r['deadlocks']} deadlocks")
    if r["slowest_answer_ms"] > r["deadline_ms"] + 1000:
        problems.append(f"an answer took {r['slowest_answer_ms']} ms (deadline {r['deadline_ms']} ms)")
    for p in problems:
        ok = False
        print(f"  FAIL {r['scenario']}: {p}")
print()
print("faults: all scenarios held" if ok else "faults: FAILED")
sys.exit(0 if ok else 1)
EOF
