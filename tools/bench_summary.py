"""Markdown tables from target/bench/results.jsonl (make bench)."""
import json
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
if "direct-sql" in by and "postgres" in by:
    d, s = by["direct-sql"], by["postgres"]
    ratio = s["stored_requests_per_second"] / d["stored_webhooks_per_second"]
    print(f"Direct SQL (in-process, {d['offers_per_call']} offers per call): "
          f"{d['stored_webhooks_per_second']:.0f} stored webhooks/s; the server on PostgreSQL: "
          f"{s['stored_requests_per_second']:.0f} ({ratio:.0%} of direct).")
nulls = [r["stored_requests_per_second"] for k, r in by.items() if k.startswith("audit-null")]
chains = [r["stored_requests_per_second"] for k, r in by.items() if k.startswith("audit-chain")]
if nulls and chains:
    ratio = sum(chains) / sum(nulls)
    print(f"Audit chain on versus null sink: {sum(chains)/len(chains):.0f} versus "
          f"{sum(nulls)/len(nulls):.0f} stored webhooks/s ({ratio:.0%}).")
if "available-now" in by:
    a = by["available-now"]
    print(f"Available now among {a['agents']} agents ({a['available']} available): "
          f"p50 {a['p50_ms']:.3f} ms, p99 {a['p99_ms']:.3f} ms over {a['queries']} queries.")
if "report-summary" in by:
    r = by["report-summary"]
    print(f"Report summary over {r['calls']} calls: median {r['median_s']} s, max {r['max_s']} s.")
if "postgres-paced" in by:
    p = by["postgres-paced"]
    print(f"Paced, {p['concurrency']} concurrent calls on PostgreSQL: p99 {p['p99_ms']:.1f} ms "
          f"(stored webhooks p99 {p['stored_p99_ms']:.1f} ms).")
