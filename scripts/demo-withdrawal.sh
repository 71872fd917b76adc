#!/bin/sh
# A whole withdrawal with curl against `make run`: the bank's app issues a
# code, a teller logs in, scans it and confirms the payout, and the bank's
# app sees it completed. Usage: scripts/demo-withdrawal.sh [BASE_URL]
set -eu
BASE=${1:-http://127.0.0.1:8080}
JAR=$(mktemp)
trap 'rm -f "$JAR"' EXIT
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

echo "1. the bank's app asks for 500,000 dong"
W=$(curl -sf -u mb-app:mb-demo-secret-0001 -H "Idempotency-Key: demo-$$-1" \
  -d '{"account":"9704000000000011","amount":500000,"currency":"VND","holder_name":"Nguyen Van An","phone_last4":"5611"}' \
  "$BASE/v1/withdrawals")
ID=$(echo "$W" | field id); QR=$(echo "$W" | field qr_payload)
echo "   withdrawal $ID, state $(echo "$W" | field state), numeric code $(echo "$W" | field numeric_code)"

echo "2. teller1 logs in at the kiosk"
CSRF=$(curl -sf -c "$JAR" -d '{"username":"teller1","password":"teller1-demo"}' "$BASE/v1/teller/login" | field csrf_token)

echo "3. the teller scans the QR"
curl -sf -b "$JAR" -H "X-CSRF-Token: $CSRF" -H "Idempotency-Key: demo-$$-2" \
  -d "{\"qr\":\"$QR\"}" "$BASE/v1/teller/scan"; echo

echo "4. the teller checks the ID, hands over the cash and confirms"
curl -sf -b "$JAR" -H "X-CSRF-Token: $CSRF" -H "Idempotency-Key: demo-$$-3" \
  -d "{\"withdrawal_id\":\"$ID\",\"id_checked\":true}" "$BASE/v1/teller/confirm"; echo

echo "5. a second confirm is refused"
curl -s -b "$JAR" -H "X-CSRF-Token: $CSRF" -H "Idempotency-Key: demo-$$-4" \
  -d "{\"withdrawal_id\":\"$ID\",\"id_checked\":true}" "$BASE/v1/teller/confirm"; echo

sleep 1
echo "6. the bank's app sees the withdrawal: $(curl -sf -u mb-app:mb-demo-secret-0001 "$BASE/v1/withdrawals/$ID" | field state)"
