#!/usr/bin/env bash
# Runs the web client's browser tests: Debian's Chromium (installed with apt-get when
# missing; never a downloaded browser) driven by playwright-core, against moto and the
# local gateway, both started here on free 127.0.0.1 ports and stopped on the way out,
# whatever happens. Screenshots of failed tests and the servers' logs go to
# web/test-results/ (ignored by git).
#
#   scripts/web-test.sh                 run the tests
#   scripts/web-test.sh --screenshot    also retake docs/web-client.png
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
started=$(date +%s)
screenshot=false
for arg in "$@"; do
    case "$arg" in
        --screenshot) screenshot=true ;;
        *) echo "web-test: unknown argument $arg" >&2; exit 2 ;;
    esac
done

./scripts/bootstrap.sh

if [ ! -x /usr/bin/chromium ]; then
    echo "== web: installing Debian's chromium"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
    echo "web-test: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
    exit 1
fi

echo "== web: npm packages"
(cd web && npm ci --no-audit --no-fund --loglevel=error)

echo "== web: build"
nice -n 10 cargo build --workspace --locked

results="$root/web/test-results"
rm -rf "$results"
mkdir -p "$results"
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # url, what
    for _ in $(seq 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "web-test: $2 did not start; its log:" >&2
    cat "$3" >&2
    exit 1
}

moto_port=$(free_port)
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" > "$results/moto.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$moto_port" moto "$results/moto.log"

export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export TOKEN_SECRET="web-tests-only-signing-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TABLE_PREFIX="web-"
# Every browser in the tests signs up and in from 127.0.0.1: the per-address limits
# (20 sign-ups an hour by default) would stop the suite, not an attacker.
export RATE_LIMIT_SIGN_UPS="1000/1m" RATE_LIMIT_SIGN_INS="1000/1m"
# Calls ring 8 s instead of 30: the test of an unanswered call waits that out (the others
# answer well within it).
export CALL_RING_SECONDS=8
gateway_port=$(free_port)
target/debug/local-gateway serve --listen "127.0.0.1:$gateway_port" --create-tables --web-dir web/public \
    > "$results/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$gateway_port/app/" "the local gateway" "$results/gateway.log"

echo "== web: browser tests (chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'))"
export GATEWAY_URL="http://127.0.0.1:$gateway_port"
status=0
(cd web && node --test --test-concurrency=1 test/*.test.mjs) || status=$?
# A call AWS would refuse fails the run even where the code swallowed the error.
if grep -a "AccessDenied" "$results/gateway.log" >&2; then
    echo "web-test: the functions made calls template.yaml does not allow (above)" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "web-test: failed; screenshots and server logs are in web/test-results/" >&2
fi

if [ "$status" -eq 0 ] && $screenshot; then
    (cd web && node tools/screenshot.mjs "$root/docs/web-client.png")
fi
echo "web-test: took $(( $(date +%s) - started )) s"
exit "$status"
