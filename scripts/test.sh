#!/usr/bin/env bash
# Runs every check and test. Installs what it needs (scripts/bootstrap.sh); starts its own
# moto on a free 127.0.0.1 port (the e2e harness does); needs no AWS account or Docker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

./scripts/bootstrap.sh

echo "== template: cfn-lint"
.venv/bin/cfn-lint template.yaml

echo "== format and lints"
cargo fmt --all -- --check
# One workspace build shared by clippy and the tests (same features everywhere).
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked
