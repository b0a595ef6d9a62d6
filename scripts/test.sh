#!/usr/bin/env bash
# Runs every check and test. Installs what it needs (scripts/bootstrap.sh); starts its own
# moto on a free 127.0.0.1 port (the e2e harness does); needs no AWS account or Docker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

./scripts/bootstrap.sh

echo "== template: cfn-lint, SAM's validation, and cfn-lint after the SAM transform"
.venv/bin/cfn-lint template.yaml
# SAM reads AWS_DEFAULT_REGION; fake credentials are enough offline.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=validation AWS_SECRET_ACCESS_KEY=validation \
    .venv/bin/sam validate --region us-east-1 --template template.yaml
.venv/bin/python scripts/validate_template.py template.yaml

echo "== format and lints"
cargo fmt --all -- --check
# One workspace build shared by clippy and the tests (same features everywhere).
cargo clippy --workspace --all-targets --locked -- -D warnings

# Every AWS request a function makes is checked against its policy in template.yaml; the
# grants the runs exercised are recorded here for the report at the end.
export AWS_RULES_USAGE_DIR="$PWD/target/aws-rules-usage"
rm -rf "$AWS_RULES_USAGE_DIR"

echo "== tests"
cargo test --workspace --locked

echo "== web client in a real browser"
./scripts/web-test.sh

echo "== localstack/: its init script against moto, and a round trip through the gateway on what it made"
./scripts/check_localstack.sh

echo "== IAM: permissions template.yaml grants that no test exercised"
target/debug/local-gateway iam-report --template template.yaml
