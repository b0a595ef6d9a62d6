#!/usr/bin/env bash
# Checks, without Docker, that localstack/ brings up what the code expects:
#   1. localstack/resources/ is what template.yaml gives (scripts/localstack_resources.py --check);
#   2. the real init script, localstack/init/ready.d/10-chat-resources.sh, runs against moto
#      with `awslocal` standing for the AWS CLI pointed at moto; twice, as LocalStack with
#      PERSISTENCE=1 runs it again on every start;
#   3. scripts/localstack/verify_stack.py compares the tables, bucket and topic with
#      template.yaml, then makes a round trip (sign-up, channel, upload, WebSocket messages,
#      push, history, presence) through `local-gateway serve` started WITHOUT
#      --create-tables, so that it has only what the init script made.
# moto and the gateway listen on free 127.0.0.1 ports and are stopped on the way out,
# whatever happens; their logs are printed when something fails.
#
#   scripts/check_localstack.sh              build the workspace (a no-op when fresh), then check
#   scripts/check_localstack.sh --no-build   use target/debug/local-gateway as it is
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
started=$(date +%s)
build=true
for arg in "$@"; do
    case "$arg" in
        --no-build) build=false ;;
        *) echo "check_localstack: unknown argument $arg" >&2; exit 2 ;;
    esac
done

./scripts/bootstrap.sh
# The AWS CLI stands for LocalStack's `awslocal`. Version 1 from PyPI bundles its own
# botocore, so it leaves the venv's boto3 and moto as they are.
if ! .venv/bin/aws --version > /dev/null 2>&1; then
    echo "check_localstack: installing the AWS CLI into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check "awscli==1.*"
fi

echo "== localstack: resource files against template.yaml"
.venv/bin/python scripts/localstack_resources.py --check

gateway="$root/target/debug/local-gateway"
if $build; then
    # The workspace build web-test.sh and run-local.sh use: the same features, no rebuild.
    echo "== localstack: build the workspace (a no-op after the tests)"
    nice -n 10 cargo build --workspace --locked --quiet
fi
if [ ! -x "$gateway" ]; then
    echo "check_localstack: $gateway is missing (run without --no-build)" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/check-localstack.XXXXXX")"
pids=()
show_logs() {
    for log in "$work"/*.log; do
        [ -s "$log" ] || continue
        echo "---- $(basename "$log") (last 40 lines)" >&2
        tail -n 40 "$log" | sed -e 's/\x1b\[[0-9;]*m//g' >&2
    done
}
cleanup() {
    status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
    if [ "$status" -ne 0 ]; then
        echo "check_localstack: FAILED" >&2
        show_logs
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # url, what
    for _ in $(seq 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "check_localstack: $2 did not start" >&2
    exit 1
}

moto_port=$(free_port)
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" > "$work/moto.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$moto_port" moto

# Only moto, with fake credentials; nothing from this machine's AWS configuration.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_SNS
unset TABLE_PREFIX PUSH_TOPIC_ARN
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

# `awslocal` as in the LocalStack container: the AWS CLI with the endpoint set.
mkdir -p "$work/bin"
cat > "$work/bin/awslocal" << SHIM
#!/bin/sh
exec "$root/.venv/bin/aws" --endpoint-url "\$AWS_ENDPOINT_URL" "\$@"
SHIM
chmod +x "$work/bin/awslocal"

echo "== localstack: the init script against moto (LocalStack runs it the same way: no arguments)"
init=localstack/init/ready.d/10-chat-resources.sh
PATH="$work/bin:$PATH" "$init" > "$work/init-first-run.log" 2>&1 || { echo "check_localstack: $init failed" >&2; exit 1; }
sed -e 's/^/  /' "$work/init-first-run.log"
echo "== localstack: the init script again (what exists is kept)"
PATH="$work/bin:$PATH" "$init" > "$work/init-second-run.log" 2>&1 || { echo "check_localstack: $init failed on its second run" >&2; exit 1; }
if grep -q "created" "$work/init-second-run.log"; then
    echo "check_localstack: the second run of $init created resources again" >&2
    exit 1
fi
echo "  $(grep -c 'exists, kept' "$work/init-second-run.log") resources kept, settings applied again"

# The push topic's ARN, as the init script reported it (LocalStack's account is 000000000000,
# moto's 123456789012).
PUSH_TOPIC_ARN="$(sed -n 's/^chat-resources: topic \(arn:.*PushTopic\)$/\1/p' "$work/init-first-run.log")"
if [ -z "$PUSH_TOPIC_ARN" ]; then
    echo "check_localstack: the init script reported no push topic" >&2
    exit 1
fi
export PUSH_TOPIC_ARN
export TOKEN_SECRET="check-localstack-only-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
gateway_port=$(free_port)
# No --create-tables: the gateway must find everything the init script made.
"$gateway" serve --listen "127.0.0.1:$gateway_port" --schedule-every-seconds 1 --web-dir "$work/no-web-client" \
    > "$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$gateway_port/" "the local gateway"

.venv/bin/python scripts/localstack/verify_stack.py --moto \
    --gateway "http://127.0.0.1:$gateway_port" --gateway-log "$work/gateway.log"
echo "check_localstack: took $(( $(date +%s) - started )) s"
