#!/usr/bin/env bash
# The domain crates depend on neither sqlx nor actix-web (house rule 3).
# `cargo tree -i X` exits non-zero both when X is absent and when a name is misspelt, so
# every check has a positive control: the same query must succeed where X belongs.
set -euo pipefail

fail() { echo "dependency guard: $*" >&2; exit 1; }

DOMAIN=(texml audit agents call-center)
FORBIDDEN=(sqlx actix-web)

# Positive controls: the names are spelt right and the queries work.
cargo tree -p store -e normal -i sqlx --depth 0 >/dev/null 2>&1 || fail "control failed: store should depend on sqlx"
cargo tree -p callcenter -e normal -i actix-web --depth 0 >/dev/null 2>&1 || fail "control failed: callcenter should depend on actix-web"

for crate in "${DOMAIN[@]}"; do
  cargo tree -p "$crate" --depth 0 >/dev/null 2>&1 || fail "unknown crate $crate"
  for dep in "${FORBIDDEN[@]}"; do
    if cargo tree -p "$crate" -e normal --all-features -i "$dep" >/dev/null 2>&1; then
      cargo tree -p "$crate" -e normal --all-features -i "$dep" >&2 || true
      fail "$crate depends on $dep"
    fi
  done
done
echo "dependency guard: ${DOMAIN[*]} depend on neither ${FORBIDDEN[*]} (controls passed)"
