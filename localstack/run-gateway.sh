#!/usr/bin/env bash
# Runs the local gateway (the WebSocket + HTTP APIs and the functions) against LocalStack
# on 127.0.0.1:4566, creating the template's tables, bucket and topic there first.
# Start LocalStack with: docker compose -f localstack/docker-compose.yml up -d
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
mkdir -p .local
if [ ! -s .local/token-secret ]; then
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > .local/token-secret
fi
export TOKEN_SECRET="$(cat .local/token-secret)"
for _ in $(seq 60); do
    curl -s -o /dev/null "$AWS_ENDPOINT_URL/_localstack/health" && break
    sleep 1
done
cargo build --workspace
exec target/debug/local-gateway serve --create-tables --listen "127.0.0.1:${GATEWAY_PORT:-8080}"
