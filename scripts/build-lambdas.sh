#!/usr/bin/env bash
# Builds every Lambda function in ONE `cargo lambda build` and lays the binaries out as
# `sam build` would (.aws-sam/build/), so `sam deploy` ships them. Faster than `sam build`,
# which runs one cargo invocation per function, one after the other (README, Deploying).
#
#   ./scripts/build-lambdas.sh             # arm64, the deployed default
#   ARCH=x86_64 ./scripts/build-lambdas.sh
#   sam deploy --guided
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/bootstrap.sh
# cargo-lambda and zig ship as PyPI wheels; never `cargo install` them (17 minutes).
if [ ! -x .venv/bin/cargo-lambda ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check cargo-lambda ziglang
fi
export PATH="$PWD/.venv/bin:$PATH"
arch="${ARCH:-arm64}"
case "$arch" in
    arm64) target_flag=--arm64 ;;
    x86_64) target_flag=--x86-64 ;;
    *) echo "ARCH must be arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac
bins=()
for binary in $(.venv/bin/python scripts/built_template.py --binaries); do
    bins+=(--bin "$binary")
done
start=$(date +%s)
cargo lambda build --release "$target_flag" --locked "${bins[@]}"
echo "cargo lambda build ($(( ${#bins[@]} / 2 )) binaries, $arch): $(( $(date +%s) - start )) s"
.venv/bin/python scripts/built_template.py "$arch" target/lambda
for artifact in .aws-sam/build/*/bootstrap; do
    size=$(stat -c %s "$artifact")
    zipped=$(python3 -c "import io,sys,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$artifact")
    echo "$(basename "$(dirname "$artifact")"): ${size} bytes, ${zipped} zipped"
done
echo "built: .aws-sam/build/template.yaml; next: sam deploy --guided"
