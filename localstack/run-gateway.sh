#!/usr/bin/env bash
# Runs the local gateway (the WebSocket + HTTP APIs and the functions) against LocalStack
# on 127.0.0.1:4566 (AWS_ENDPOINT_URL to change it; GATEWAY_PORT, default 8080).
# Start LocalStack first: docker compose -f localstack/docker-compose.yml up -d
#
# LocalStack's init script (init/ready.d/10-chat-resources.sh, mounted by
# docker-compose.yml) makes the template's tables, bucket and topic when LocalStack is
# ready; the gateway then uses them as they are. When that script did not run or failed
# (a LocalStack started some other way, or TABLE_PREFIX is not the prefix of
# localstack/resources/), the gateway creates them itself with --create-tables.
# CREATE_TABLES=1 forces that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
# LocalStack's account for the access key `test` is 000000000000.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
mkdir -p .local
if [ ! -s .local/token-secret ]; then
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > .local/token-secret
fi
export TOKEN_SECRET="$(cat .local/token-secret)"

# Built while LocalStack boots.
cargo build --workspace

echo "run-gateway: waiting for LocalStack at $AWS_ENDPOINT_URL"
for _ in $(seq 60); do
    curl -s -o /dev/null "$AWS_ENDPOINT_URL/_localstack/health" && break
    sleep 1
done
# LocalStack answers which ready.d scripts ran, and how, once they all have:
# {"completed": true, "scripts": [{"stage": "READY", "name": "10-chat-resources.sh", "state": "SUCCESSFUL"}]}
init=""
for _ in $(seq 120); do
    # Not LocalStack (or too old to say): no init scripts to wait for.
    init="$(curl -sf "$AWS_ENDPOINT_URL/_localstack/init/ready" | tr -d ' \n')" || { init=""; break; }
    [[ "$init" == *'"completed":true'* ]] && break
    sleep 1
done

# The prefix the init script's resources were generated with (scripts/localstack_resources.py).
topic_request=(localstack/resources/sns/*PushTopic.create-topic.json)
made_prefix="$(basename "${topic_request[0]}" PushTopic.create-topic.json)"
prefix="${TABLE_PREFIX:-$made_prefix}"

flags=()
if [ "${CREATE_TABLES:-0}" = 1 ]; then
    flags+=(--create-tables)
elif [ -z "$init" ]; then
    echo "run-gateway: $AWS_ENDPOINT_URL tells no LocalStack init status: the gateway creates the resources."
    flags+=(--create-tables)
elif [[ "$init" != *'"name":"10-chat-resources.sh","state":"SUCCESSFUL"'* ]]; then
    echo "run-gateway: LocalStack's init script did not make the resources ($init);" \
        "see 'docker compose -f localstack/docker-compose.yml logs'. The gateway creates them instead."
    flags+=(--create-tables)
elif [ "$prefix" != "$made_prefix" ]; then
    echo "run-gateway: TABLE_PREFIX=$prefix, but LocalStack's init script made $made_prefix*: the gateway creates $prefix*."
    flags+=(--create-tables)
else
    echo "run-gateway: using the tables, bucket and topic LocalStack's init script made ($prefix*)"
    # Without --create-tables the gateway learns the push topic from here.
    export PUSH_TOPIC_ARN="${PUSH_TOPIC_ARN:-arn:aws:sns:$AWS_REGION:000000000000:${prefix}PushTopic}"
fi
exec target/debug/local-gateway serve ${flags[@]+"${flags[@]}"} --listen "127.0.0.1:${GATEWAY_PORT:-8080}"
