"""Markdown tables from target/bench/results.jsonl (make bench)."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
by = {r["label"]: r for r in rows}

print("| run | calls | calls/s | webhooks/s | stored webhooks/s | p50 ms | p90 ms | p99 ms | max ms | errors | mismatches | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "requests_per_second" not in r:
        continue
    print(f"| {r['label']} | {r['calls']} | {r['calls_per_second']:.1f} | {r['requests_per_second']:.0f} | "
          f"{r['stored_requests_per_second']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
          f"{r['max_ms']:.0f} | {r['errors']} | {r['mismatches']} | {r['peak_rss_mb']} |")

print()
def series(prefix, key):
    return [r[key] for k, r in by.items() if k.startswith(prefix)]


def compare(name, base_label, base, test_label, test):
    """Prints the rounds of two alternating series and the ratio of their medians."""
    if not base or not test:
        return
    ratio = statistics.median(test) / statistics.median(base)
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    print(f"{name}: {test_label} {fmt(test)} versus {base_label} {fmt(base)} stored webhooks/s; "
          f"medians {statistics.median(test):.0f} / {statistics.median(base):.0f} = {ratio:.0%}.")


compare("Server versus direct SQL (same PostgreSQL, same pool size)",
        "direct SQL", series("direct-sql", "stored_webhooks_per_second"),
        "server", series("server-", "stored_requests_per_second"))
compare("Audit chain on versus null sink",
        "null sink", series("audit-null", "stored_requests_per_second"),
        "chain", series("audit-chain", "stored_requests_per_second"))
if "available-now" in by:
    a = by["available-now"]
    print(f"Available now among {a['agents']} agents ({a['available']} available): "
          f"p50 {a['p50_ms']:.3f} ms, p99 {a['p99_ms']:.3f} ms over {a['queries']} queries.")
for label in ("matcher-longest-idle", "matcher-ring-all"):
    if label in by:
        m = by[label]
        print(f"Matcher ({label[8:]}), {m['callers_waiting']} callers waiting, {m['agents']} agents: "
              f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, max {m['max_ms']:.1f} ms per match "
              f"over {m['matches']} matches ({m['reserved']} reservations, {m['matches_per_second']:.0f} matches/s).")
if "report-summary" in by:
    r = by["report-summary"]
    print(f"Report summary over {r['calls']} calls: median {r['median_s']} s, max {r['max_s']} s.")
if "postgres-paced" in by:
    p = by["postgres-paced"]
    print(f"Paced, {p['concurrency']} concurrent calls on PostgreSQL: p99 {p['p99_ms']:.1f} ms "
          f"(stored webhooks p99 {p['stored_p99_ms']:.1f} ms).")
