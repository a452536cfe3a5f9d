#!/usr/bin/env bash
# make bench: every benchmark of the project, with results in target/bench/.
#
#  1. criterion benchmarks of the crates (TeXML rendering, audit chain, the domain flow);
#  2. load runs with telnyx-sim (20,000 calls, 200 at once, 20 agents) on SQLite, on
#     PostgreSQL, and on two server instances sharing PostgreSQL;
#  3. the latency at 200 concurrent calls paced at twice real time, on PostgreSQL;
#  4. the direct-SQL ceiling of the webhook hot path on the same PostgreSQL versus the server
#     (alternating rounds, ratio of medians);
#  5. audit on versus the no-op audit sink (alternating rounds, ratio of medians);
#  6. "available now" among 10,000 agents; the queue's matcher with 10,000 callers waiting
#     and 1,000 agents; the report summary over one million calls;
#  7. side by side with Telnyx's Python demo on the same generator (tools/bench-vs-demo.sh,
#     which needs wrk and the demo's source), and the ceilings of those flows.
#
# Needs PostgreSQL at BENCH_PG_URL (default: the local test server) and psql. Knobs:
# BENCH_CALLS (20000), BENCH_CONCURRENCY (200), BENCH_AGENTS (20), BENCH_PACED_CALLS (600),
# BENCH_RATIO_CALLS (4000), BENCH_ROUNDS (3), BENCH_REPORT_CALLS (1000000), BENCH_SKIP_CRITERION=1.
# Everything talks to loopback only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
calls=${BENCH_CALLS:-20000}
concurrency=${BENCH_CONCURRENCY:-200}
agents=${BENCH_AGENTS:-20}
paced_calls=${BENCH_PACED_CALLS:-600}
ratio_calls=${BENCH_RATIO_CALLS:-4000}
rounds=${BENCH_ROUNDS:-3}
report_calls=${BENCH_REPORT_CALLS:-1000000}
out=$root/target/bench
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"

for tool in psql python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done
psql -qAt "$pg" -c "SELECT 1" >/dev/null || { echo "bench: PostgreSQL not reachable at $pg" >&2; exit 2; }

step() { echo; echo "=== $*"; }
scratch_db() { # name -> URL of a fresh database on the bench server
    psql -q "$pg" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
    echo "${pg%/*}/$1"
}
load() { # label backend instances calls concurrency agents [sim args]
    local label=$1
    echo "--- $label" >&2
    tools/load.sh "$@" 2>"$out/$label.log" | tee -a "$results"
    tail -n 14 "$out/$label.log" >&2
}

step "build (release)"
cargo build --release -p callcenter -p telnyx-sim
cargo build --release -p store --examples

if [[ -z ${BENCH_SKIP_CRITERION:-} ]]; then
    step "criterion benchmarks"
    cargo bench -p texml -p audit -p call-center 2>&1 | tee "$out/criterion.txt" |
        grep -E '^[A-Za-z_][^ ]*(/[^ ]*)+( |$)|time:|thrpt:' || true
fi

step "load: $calls calls, $concurrency at once, $agents agents, 1 simulated second = 1 ms"
load sqlite sqlite 1 "$calls" "$concurrency" "$agents" --seed 1
load postgres "$pg" 1 "$calls" "$concurrency" "$agents" --seed 1
load postgres-2-instances "$pg" 2 "$calls" "$concurrency" "$agents" --seed 1

step "latency: $concurrency concurrent calls at twice real time, PostgreSQL"
load postgres-paced "$pg" 1 "$paced_calls" "$concurrency" 200 --seed 2 --time-compression 2 --ramp-up 120

# The two comparisons below alternate short runs, three rounds each, and compare medians:
# on this kind of VM a whole run now and then goes at half speed (WAL fsync latency of the
# host), whichever side it hits; the median of three is robust to one such run.
step "direct SQL versus the server: the hot path's statements in-process, same PostgreSQL, same pool size ($rounds rounds)"
offers=$(python3 -c "import json;r=[json.loads(l) for l in open('$results')];print(max(1,round([x for x in r if x['label']=='postgres'][0]['offers_per_call'])))")
for round in $(seq 1 "$rounds"); do
    "${CARGO_TARGET_DIR:-target}"/release/examples/hot_path_sql "$(scratch_db callcenter_direct)" "$ratio_calls" "$concurrency" "$offers" |
        python3 -c "import json,sys;r=json.loads(sys.stdin.read());r['label']='direct-sql-$round';print(json.dumps(r))" |
        tee -a "$results"
    psql -q "$pg" -c "DROP DATABASE callcenter_direct WITH (FORCE)" >/dev/null # quiet for the next run
    load "server-$round" "$pg" 1 "$ratio_calls" "$concurrency" "$agents" --seed 3
done

step "audit on versus CALL_CENTER_AUDIT_SINK=null (PostgreSQL, $ratio_calls calls each, $rounds rounds)"
for round in $(seq 1 "$rounds"); do
    CALL_CENTER_AUDIT_SINK=null load "audit-null-$round" "$pg" 1 "$ratio_calls" "$concurrency" "$agents" --seed 3
    load "audit-chain-$round" "$pg" 1 "$ratio_calls" "$concurrency" "$agents" --seed 3
done

step "available now among 10,000 agents"
"${CARGO_TARGET_DIR:-target}"/release/examples/available_now "$(scratch_db callcenter_agents)" 5000 2>"$out/available-now-plan.txt" |
    tee -a "$results"
cat "$out/available-now-plan.txt"

step "the matcher: 10,000 callers waiting, 1,000 agents free (PostgreSQL)"
for strategy in longest-idle ring-all; do
    "${CARGO_TARGET_DIR:-target}"/release/examples/matcher "$(scratch_db callcenter_matcher)" "$strategy" 10000 1000 3 |
        tee -a "$results"
done

step "report summary over $report_calls calls (PostgreSQL)"
tools/report-bench.sh "$(scratch_db callcenter_report)" "$report_calls" | tee -a "$results"

step "summary"
python3 tools/bench_summary.py "$results" | tee "$out/summary.md"

step "side by side with Telnyx's Python demo (../shared/bench-vs-demo), and the ceilings"
if ! tools/bench-vs-demo.sh; then
    echo "bench: the side-by-side comparison did not run (the reason is above)" >&2
    exit 1
fi
