#!/usr/bin/env bash
# Schemathesis against a live server, driven by the server's own OpenAPI document:
# every check (no 5xx, responses match the schema, schema-valid requests accepted,
# invalid ones rejected, 405 with Allow for undeclared methods, ...).
# Usage: tools/fuzz-api.sh [max-examples per operation, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${1:-100}"
VENV=.venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
cargo build -q -p callcenter

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
(
  cd "$WORK"
  TELNYX_VERIFY_SIGNATURES=false CALL_CENTER_ADMIN_TOKEN="$TOKEN" BIND_ADDR="127.0.0.1:$PORT" \
    AUTH_FAILURE_LIMIT=100000 RUST_LOG=warn exec "${CARGO_TARGET_DIR:-$OLDPWD/target}/debug/callcenter" serve
) > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "fuzz-api: the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

set +e
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/call-center/openapi.json" \
  --url "http://127.0.0.1:$PORT" -H "Authorization: Bearer $TOKEN" \
  --checks all --max-examples "$EXAMPLES" --phases examples,coverage,fuzzing,stateful \
  --seed 20261124 2>&1 | tee "$WORK/schemathesis.log"
STATUS=${PIPESTATUS[0]}
set -e

CASES="$(grep -Eo '[0-9]+ generated' "$WORK/schemathesis.log" | tail -1 | cut -d' ' -f1)"
echo
echo "fuzz-api: ${CASES:-0} cases tried against the server's OpenAPI document (schemathesis exit code $STATUS)"
if grep -qi "panicked" "$WORK/server.log"; then
  echo "fuzz-api: the server panicked:" >&2
  grep -i -A5 "panicked" "$WORK/server.log" >&2
  exit 1
fi
exit "$STATUS"
