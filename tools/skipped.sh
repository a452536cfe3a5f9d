#!/usr/bin/env bash
# Says how many tests `cargo test` ignored (the PostgreSQL ones without TEST_DATABASE_URL, the
# browser ones without chromium-driver): they are skipped, never counted as passed. Reads the
# log `make test` wrote.
#   tools/skipped.sh [--require-none] LOG   (--require-none: exit 1 when any was ignored; CI)
set -euo pipefail
strict=0
if [[ ${1:-} == --require-none ]]; then strict=1; shift; fi
log=${1:-target/test.log}
ignored=$(grep -Eo '[0-9]+ ignored' "$log" | awk '{s += $1} END {print s + 0}')
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
if [[ $ignored -gt 0 ]]; then
    echo ""
    echo "************************************************************************"
    echo "*  $passed tests passed; $ignored PostgreSQL or browser tests were SKIPPED (ignored)."
    echo "*  PostgreSQL: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test"
    echo "*  Browser: apt-get install chromium chromium-driver"
    echo "************************************************************************"
    if [[ $strict == 1 ]]; then exit 1; fi
else
    echo "$passed tests passed; none skipped."
fi
