#!/usr/bin/env bash
# The report summary over one million calls: seeds DATABASE (a scratch PostgreSQL
# database URL) with `callcenter seed-demo-data`, starts a server on it, asks
# GET /reports/summary for the whole range six times and prints one JSON line.
set -euo pipefail
db=$1
calls=${2:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release  # where cargo put it
export DATABASE_URL=$db CALL_CENTER_ADMIN_TOKEN="report-bench-$(date +%s)-0123456789" \
    TELNYX_VERIFY_SIGNATURES=false RUST_LOG=error BIND_ADDR=127.0.0.1:18190
"$bin/callcenter" migrate >/dev/null
"$bin/callcenter" seed-demo-data --calls "$calls" --agents 50 --days 90 >&2
psql -qAt "$db" -c "VACUUM ANALYZE" >/dev/null
"$bin/callcenter" serve >/dev/null 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    "$bin/telnyx-sim" ready --server http://127.0.0.1:18190 && break
    sleep 0.1
done
python3 - <<'PY'
import json, os, statistics, time, urllib.request
from datetime import datetime, timedelta, timezone
now = datetime.now(timezone.utc)
frm = (now - timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%SZ")
to = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
url = f"http://127.0.0.1:18190/api/call-center/reports/summary?from={frm}&to={to}"
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["CALL_CENTER_ADMIN_TOKEN"]})
took, offered = [], None
for _ in range(6):
    t = time.perf_counter()
    body = json.load(urllib.request.urlopen(req))
    took.append(time.perf_counter() - t)
    offered = body["offered"]
print(json.dumps({"label": "report-summary", "calls": offered,
                  "median_s": round(statistics.median(took), 3), "max_s": round(max(took), 3),
                  "runs_s": [round(x, 3) for x in took]}))
PY
