#!/usr/bin/env bash
# Builds every function for Lambda with SAM (cargo-lambda under the hood) and validates
# the result, offline. arm64 is the deployed default; this machine builds x86_64 (the
# aarch64 Rust target is a download, not a package), so pass ARCH=arm64 where it exists.
#
#   ./scripts/sam-build.sh            # x86_64
#   ARCH=arm64 ./scripts/sam-build.sh
#
# SAM runs `cargo lambda build --release --bin <name>` once per function in the shared
# target/ directory: dependencies compile once, each binary links (with LTO) on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/bootstrap.sh
# cargo-lambda and zig ship as PyPI wheels; never `cargo install` them (17 minutes).
if [ ! -x .venv/bin/cargo-lambda ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check cargo-lambda ziglang
fi
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
arch="${ARCH:-x86_64}"
start=$(date +%s)
sam build --parameter-overrides "Architecture=${arch}"
echo "sam build: $(( $(date +%s) - start )) s"
for artifact in .aws-sam/build/*/bootstrap; do
    size=$(stat -c %s "$artifact")
    zipped=$(python3 -c "import io,sys,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$artifact")
    echo "$(basename "$(dirname "$artifact")"): ${size} bytes, ${zipped} zipped"
done
