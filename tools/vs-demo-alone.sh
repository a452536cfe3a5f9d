#!/usr/bin/env bash
# One server alone under the bench-vs-demo generator (../shared/bench-vs-demo/load/flow.lua,
# never copied here), started as that harness starts it (SQLite, signatures off, 2c + 2
# agents, two per round, no no-answer delay, no pauses): for comparing two builds round by
# round, and for seeing where the time goes. Prints the generator's result, the server's CPU
# per call, its per-route latency histogram (share of requests under each bound, from
# /metrics) and the audit chain's verification after the run.
#
#   tools/vs-demo-alone.sh                                     # target/release/callcenter, no answer
#   BIN=/tmp/old FLOW=cc-answered C=20 D=10 tools/vs-demo-alone.sh
#   RUST_LOG=warn,call_center::flow=debug tools/vs-demo-alone.sh   # log lines kept in $dir/server.log
#   PG=postgres://postgres@127.0.0.1:5432 tools/vs-demo-alone.sh  # PostgreSQL: a fresh database
#                                                                 # vs_demo_alone each run
#   STATS=1 PG=... tools/vs-demo-alone.sh                      # and the rows written per table
#
# Needs wrk (and psql with PG). Binds 127.0.0.1:$PORT (18400).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_VS_DEMO:-$root/../shared/bench-vs-demo}
BIN=${BIN:-$root/target/release/callcenter}
FLOW=${FLOW:-cc-noanswer} C=${C:-20} D=${D:-10} PORT=${PORT:-18400}
dir=${TMPDIR:-/tmp}/vs-demo-alone-$PORT
token=vs-demo-alone-admin-token
command -v wrk >/dev/null || { echo "vs-demo-alone: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
[[ -x $BIN ]] || { echo "vs-demo-alone: no binary at $BIN (cargo build --release -p callcenter)" >&2; exit 2; }
rm -rf "$dir" && mkdir -p "$dir"
db_url="sqlite://$dir/cc.db"
if [[ -n ${PG:-} ]]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS vs_demo_alone" -c "CREATE DATABASE vs_demo_alone"
    db_url="$PG/vs_demo_alone"
fi
(cd "$dir" && exec env -i PATH="$PATH" HOME="$dir" DATABASE_URL="$db_url" \
    BIND_ADDR="127.0.0.1:$PORT" WEBHOOK_BASE_URL="http://127.0.0.1:$PORT" \
    CALL_CENTER_ADMIN_TOKEN=$token TELNYX_VERIFY_SIGNATURES=false \
    CALL_CENTER_AGENT_HEARTBEAT_TTL=86400 CALL_CENTER_MAX_AGENTS_PER_ROUND=2 \
    CALL_CENTER_NO_ANSWER_DELAY_SECONDS=0 CALL_CENTER_MISSES_TO_PAUSE=0 \
    RUST_LOG="${RUST_LOG:-warn}" LOG_FORMAT=human "$BIN" serve >"$dir/server.log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$token" $((2 * C + 2)) <<'PY'
import http.client, json, sys
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
for i in range(1, n + 1):
    body = {"name": f"Agent {i}", "sip_uri": f"sip:agent{i}@alone.sip.telnyx.com", "status": "available"}
    c.request("POST", "/api/call-center/agents/register", json.dumps(body), h)
    r = c.getresponse(); r.read()
    if r.status != 201:
        sys.exit(f"vs-demo-alone: registering agent {i}: HTTP {r.status}")
PY
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
# PostgreSQL's backends and background processes: every postgres process's CPU ticks.
pg_ticks() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 ~ /^\(postgres/ {t += $14 + $15} END {print t + 0}'; }
t0=$(ticks) p0=$(pg_ticks)
wrk -t "$C" -c "$C" -d "${D}s" --timeout 30s -s "$harness/load/flow.lua" "http://127.0.0.1:$PORT" \
    -- flow="$FLOW" mode=brief run="r$RANDOM" >"$dir/wrk.txt" 2>&1
t1=$(ticks) p1=$(pg_ticks)
grep RESULT_JSON "$dir/wrk.txt"
curl -s -H "Authorization: Bearer $token" "127.0.0.1:$PORT/metrics" >"$dir/metrics.txt"
python3 - "$dir/wrk.txt" "$dir/metrics.txt" "$t0" "$t1" "$(getconf CLK_TCK)" "$p0" "$p1" "${PG:+pg}" <<'PY'
import collections, json, re, sys
wrk, metrics, t0, t1, hz = sys.argv[1], sys.argv[2], int(float(sys.argv[3])), int(float(sys.argv[4])), int(sys.argv[5])
p0, p1, pg = int(float(sys.argv[6])), int(float(sys.argv[7])), sys.argv[8] == "pg"
result = json.loads(next(l for l in open(wrk) if l.startswith("RESULT_JSON")).split(" ", 1)[1])
calls = max(result["calls"], 1)
pg_cpu = f"  PostgreSQL CPU {1000 * (p1 - p0) / hz / calls:.3f} ms/call" if pg else ""
print(f"calls/s {result['calls_per_s']:.1f}  p99 {result['p99_ms']:.1f} ms  server CPU {1000 * (t1 - t0) / hz / calls:.3f} ms/call{pg_cpu}")
buckets = collections.defaultdict(dict)
for line in open(metrics):
    m = re.match(r'callcenter_http_request_duration_seconds_bucket\{(.*)\} (\d+)', line)
    if m:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        buckets[labels["route"]][labels["le"]] = int(m.group(2))
for route, b in sorted(buckets.items()):
    total = b.get("+Inf", 0)
    if total < 100:
        continue
    shares = " ".join(f"<{float(le) * 1000:g}ms {100 * n / total:.1f}%" for le, n in sorted(
        ((le, n) for le, n in b.items() if le != "+Inf" and float(le) <= 0.05), key=lambda x: float(x[0])))
    print(f"{route:40s} n={total:7d} {shares}")
PY
echo "audit chain: $(curl -s -H "Authorization: Bearer $token" "127.0.0.1:$PORT/api/call-center/audit/verify")"
if [[ -n ${PG:-} ]]; then
    if [[ -n ${STATS:-} ]]; then
        # Rows written per table over the run (the stats collector lags a little).
        sleep 1
        psql "$db_url" -c "SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot,
            n_tup_del AS del, pg_size_pretty(pg_total_relation_size(relid)) AS size
            FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname" \
            -c "SELECT action, count(*) FROM audit_log GROUP BY action ORDER BY 2 DESC"
    fi
    # Its autovacuum would otherwise run on into the next measurement.
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS vs_demo_alone WITH (FORCE)"
fi
