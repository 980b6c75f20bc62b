#!/usr/bin/env bash
# Schemathesis against a live gateway (issue #11): every endpoint of /api/openapi.json,
# generated valid and invalid input, with and without an admin key. Passes only with
# 0 server errors and 0 answers that break the document. Run by `make fuzz` (and .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
WORK="$(mktemp -d var/fuzz.XXXXXX 2>/dev/null || (mkdir -p var && mktemp -d var/fuzz.XXXXXX))"
PORT="${FUZZ_PORT:-18777}"
ADMIN="fuzz-admin-token-0123456789abcdef0123"
export EMIL_DATABASE_URL="sqlite://$WORK/fuzz.db" EMIL_HTTP_PORT="$PORT" EMIL_SMTP_PORT=0
export EMIL_SENT_MAIL_DIR="$WORK/sent" EMIL_ADMIN_TOKEN="$ADMIN"
export EMIL_HOOK_SECRET_REGISTER="whsec_$(printf 'fuzz-register-secret-0123456789' | base64)"
export EMIL_HOOK_SECRET_LIBRARY="whsec_$(printf 'fuzz-library-secret-0123456789a' | base64)"
export EMIL_RATE_CASES_PER_CLIENT=100000 EMIL_RATE_CASES_PER_RECIPIENT=100000
export EMIL_RATE_CODE_FAILURES_PER_CLIENT=100000 EMIL_RATE_CODE_FAILURES_PER_CASE=100000
# the SMS channel on, so that its provider callbacks (/hooks/sms/…) are fuzzed too; its
# API is a closed port: an SMS that gets queued only retries
export EMIL_SMS_TOKEN="fuzz-sms-token" EMIL_SMS_API_URL="http://127.0.0.1:9" \
       EMIL_SMS_CALLBACK_SECRET="fuzz-sms-callback-secret-0123456789"
"$BIN/emilanowek" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
"$BIN/python" - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(150):  # until /healthz answers 200 (30 s at most)
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1).status == 200:
            break
    except OSError:
        time.sleep(0.2)
PY
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES="${FUZZ_EXAMPLES:-60}"
status=0
echo "schemathesis: $EXAMPLES examples per operation, anonymous then with an admin key"
for auth in "" "Authorization: Bearer $ADMIN"; do
  "$BIN/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
      --checks "$CHECKS" --max-examples "$EXAMPLES" --request-timeout 20 \
      --suppress-health-check all --seed "${FUZZ_SEED:-20261126}" ${auth:+-H "$auth"} || status=1
done
# our middleware logs "unhandled error" for every 500 (aiohttp's own 400s for NUL bytes in
# headers log a traceback too, and are fine)
if grep -q "unhandled error\|background task .* died" "$WORK/serve.log"; then
  echo "the gateway logged an unhandled error during fuzzing:"
  grep -A20 "unhandled error\|background task .* died" "$WORK/serve.log" | head -60
  status=1
fi
exit $status
