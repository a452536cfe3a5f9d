#!/usr/bin/env bash
# The side-by-side load benchmark against Telnyx's own Python demo (call-center-texml),
# with the harness in ../shared/bench-vs-demo (never copied here): the same wrk generator
# follows each server's TeXML on the same machine, configurations alternating round by
# round, the table built from medians with B/A ratios. Called by `make bench`; alone:
#
#   tools/bench-vs-demo.sh                       # c = 20, 3 rounds of 10 s, six configurations (about 8 min)
#   ROUNDS=1 DURATION=5 tools/bench-vs-demo.sh   # a trial
#
# Needs: wrk (apt-get install wrk), python3, openssl, PostgreSQL on 127.0.0.1:5432, and the
# demo's source: PYDEMO_MIRROR, a git directory of github.com/team-telnyx/demo-python-telnyx
# (cloned here from GitHub when unset and reachable). Results: target/bench/vs-demo/.
#
# Our server runs as `target/bench/callcenter-vs-demo`, a wrapper that sets what the
# generator's no-answer flow needs of a server with a queue: agents that never answer are
# offered again at once (CALL_CENTER_NO_ANSWER_DELAY_SECONDS=0) and never paused for it
# (CALL_CENTER_MISSES_TO_PAUSE=0); the demo has neither rule. Everything else is the
# default (recording, audit chain, durable writes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
harness=${BENCH_VS_DEMO:-$root/../shared/bench-vs-demo}
out=${OUT:-$root/target/bench/vs-demo}
mkdir -p "$out" target/bench

[[ -x $harness/run.sh ]] || { echo "bench-vs-demo: no harness at $harness (set BENCH_VS_DEMO)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench-vs-demo: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }

pydemo_root=${PYDEMO_ROOT:-${TMPDIR:-/tmp}/pydemo}
if [[ ! -x $pydemo_root/venv/bin/python ]]; then
    mirror=${PYDEMO_MIRROR:-}
    if [[ -z $mirror ]]; then
        for m in /work/.mirror/team-telnyx+demo-python-telnyx/repo "$root/target/bench/demo-python-telnyx.git"; do
            [[ -d $m ]] && mirror=$m && break
        done
    fi
    if [[ -z $mirror ]]; then
        mirror=$root/target/bench/demo-python-telnyx.git
        git clone -q --bare https://github.com/team-telnyx/demo-python-telnyx "$mirror" || {
            echo "bench-vs-demo: the demo's source is not reachable; set PYDEMO_MIRROR to a git directory of team-telnyx/demo-python-telnyx" >&2
            exit 2
        }
    fi
    PYDEMO_MIRROR=$mirror "$harness/pydemo/setup.sh"
fi

cargo build --release -p callcenter
cargo build --release -p store --examples
wrapper=$root/target/bench/callcenter-vs-demo
cat >"$wrapper" <<EOF
#!/usr/bin/env bash
# Written by tools/bench-vs-demo.sh: the server with the benchmark's two settings.
export CALL_CENTER_NO_ANSWER_DELAY_SECONDS=0 CALL_CENTER_MISSES_TO_PAUSE=0
exec -a "\$0" "$root/target/release/callcenter" "\$@"
EOF
chmod +x "$wrapper"

c=${CONCURRENCY:-20}

# The ceilings on the same machine: the same flows' statements in-process (hot_path_sql:
# no HTTP, no form parsing, no TeXML rendering), and pgbench's simple update transactions
# against the same PostgreSQL. Two runs of each before the load rounds and two after, so a
# host that speeds up or slows down during the run (this one does, by a third) weighs on
# the ceiling as on the rounds; the summary takes the median of the four.
pg_admin=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
ceilings=$out/ceilings.jsonl
ceiling_runs() {
    for _ in 1 2; do
        for flow in noanswer answered; do
            rm -f "$out/ceiling.db"*
            target/release/examples/hot_path_sql "sqlite://$out/ceiling.db" "${CEILING_CALLS:-3000}" "$c" 0 4 "$flow" |
                tee -a "$ceilings"
            psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS bench_ceiling WITH (FORCE)" -c "CREATE DATABASE bench_ceiling" >/dev/null
            target/release/examples/hot_path_sql "${pg_admin%/*}/bench_ceiling" "${CEILING_CALLS:-3000}" "$c" 0 10 "$flow" |
                tee -a "$ceilings"
        done
    done
    rm -f "$out/ceiling.db"*
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS bench_ceiling WITH (FORCE)" >/dev/null
}
mkdir -p "$out"
: >"$ceilings"
ceiling_runs

CC_BIN=$wrapper OUT=$out NOANSWER_AGENTS=own \
    CONCURRENCY=$c ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} \
    CONFIGS=${CONFIGS:-"A B-sqlite B-postgres A-answered B-sqlite-answered B-postgres-answered"} \
    "$harness/run.sh"

ceiling_runs
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS bench_ceiling WITH (FORCE)" -c "CREATE DATABASE bench_ceiling" >/dev/null
pgbench -q -i -s 10 "${pg_admin%/*}/bench_ceiling" >/dev/null 2>&1
pgbench -N -c "$c" -j 2 -T 10 "${pg_admin%/*}/bench_ceiling" 2>/dev/null | tee "$out/pgbench.txt" | grep -E "^tps|latency average"
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS bench_ceiling WITH (FORCE)" >/dev/null
python3 tools/bench_vs_demo_summary.py "$out/results.jsonl" "$ceilings" "$out/pgbench.txt" | tee "$out/ceilings.md"
echo "bench-vs-demo: tables in $out/summary.md and $out/ceilings.md"
