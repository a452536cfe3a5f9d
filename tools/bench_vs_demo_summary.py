"""The server against its ceilings, from a tools/bench-vs-demo.sh run: stored webhooks per
second through HTTP (the harness's B rows: calls/s times the webhooks each call stores)
against the same flows' statements run in-process (hot_path_sql), medians over runs; and
pgbench's simple-update transactions per second on the same PostgreSQL.

    python3 tools/bench_vs_demo_summary.py RESULTS.jsonl CEILINGS.jsonl PGBENCH.txt
"""

import json
import re
import statistics
import sys

# Webhooks each flow stores (the leg's `initiated` never reaches the store): no answer:
# inbound, two <Dial action>s, the <Record action>, the hang-up; answered: inbound,
# in-progress, canceled, completed, the <Dial action>, the hang-up.
STORED = {"cc-noanswer": 5, "cc-answered": 6}


def main(results, ceilings, pgbench):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    direct = [json.loads(line) for line in open(ceilings) if line.strip()]
    tps = None
    for line in open(pgbench):
        m = re.match(r"tps = ([0-9.]+)", line)
        if m:
            tps = float(m.group(1))
    print("| backend | flow | server stored webhooks/s | in-process ceiling | server / ceiling |")
    print("|---|---|---|---|---|")
    for backend in ("sqlite", "postgres"):
        for flow, short in (("cc-noanswer", "noanswer"), ("cc-answered", "answered")):
            server = [r["calls_per_s"] * STORED[flow] for r in rows
                      if r.get("config", "").startswith(f"B-{backend}") and r.get("flow") == flow
                      and "signed" not in r.get("config", "") and r.get("calls_per_s")]
            ceil = [d["stored_webhooks_per_second"] for d in direct
                    if d.get("backend") == backend and d.get("flow") == short]
            if not server or not ceil:
                continue
            s, c = statistics.median(server), statistics.median(ceil)
            print(f"| {backend} | {short} | {s:,.0f} | {c:,.0f} | {s / c:.0%} |")
    if tps:
        print(f"\npgbench -N (simple updates, one transaction each) on the same PostgreSQL: {tps:,.0f} transactions/s")


if __name__ == "__main__":
    main(*sys.argv[1:4])
