#!/usr/bin/env bash
# Runs the whole backend on this machine: moto (DynamoDB, SNS, S3) on 127.0.0.1:4566 and
# the local API Gateway (WebSocket + HTTP + Management API) on 127.0.0.1:8080, then
# creates a demo channel for alice and bob and prints how to connect. Ctrl-C stops both.
#
# Ports: MOTO_PORT (4566), GATEWAY_PORT (8080).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/bootstrap.sh

moto_port="${MOTO_PORT:-4566}"
gateway_port="${GATEWAY_PORT:-8080}"
mkdir -p .local
# A signing key for this machine, kept between runs so tokens stay valid.
if [ ! -s .local/token-secret ]; then
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > .local/token-secret
fi
export TOKEN_SECRET="$(cat .local/token-secret)"
export AWS_ENDPOINT_URL="http://127.0.0.1:${moto_port}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export TABLE_PREFIX="${TABLE_PREFIX:-chat-}"

cargo build --workspace
gateway=target/debug/local-gateway

.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" > .local/moto.log 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" ${gateway_pid:-} 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
    curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break
    sleep 0.1
done

"$gateway" create-tables
"$gateway" create-channel demo --members alice,bob 2>/dev/null || true
"$gateway" serve --create-tables --listen "127.0.0.1:${gateway_port}" --web-dir web/public &
gateway_pid=$!
sleep 1

cat <<TXT

The chat backend is running.
  AWS endpoint (moto): $AWS_ENDPOINT_URL
  WebSocket API:       ws://127.0.0.1:${gateway_port}/local?token=...
  HTTP API:            http://127.0.0.1:${gateway_port}
  Web client:          http://127.0.0.1:${gateway_port}/app/   (sign up two users in two browser windows)
  CLI:                 target/debug/chat --api http://127.0.0.1:${gateway_port} signup <name>

Channel "demo" has members alice and bob. Tokens (valid 24 h):
  alice: $("$gateway" token alice)
  bob:   $("$gateway" token bob)

Try it (two terminals, any WebSocket client, e.g. websocat):
  websocat "ws://127.0.0.1:${gateway_port}/local?token=<bob's token>"
  websocat "ws://127.0.0.1:${gateway_port}/local?token=<alice's token>"
  then, as alice:  {"action":"sendMessage","channelId":"demo","clientMsgId":"m1","text":"hi Bob"}
History:
  curl -H "Authorization: Bearer <token>" http://127.0.0.1:${gateway_port}/channels/demo/messages

Ctrl-C stops everything.
TXT
wait $gateway_pid
