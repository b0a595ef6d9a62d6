#!/usr/bin/env bash
# Installs the local tools this repository needs into .venv (ignored by git):
# moto (the local AWS endpoint), cfn-lint and aws-sam-cli (template checks, sam build and
# deploy). Idempotent and quiet when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
# Pinned so a fresh machine gets exactly what the tests were written against.
python_tools=("moto[server]==5.2.5" "cfn-lint==1.*" "aws-sam-cli==1.*")

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.tools-installed"
wanted="${python_tools[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "bootstrap: installing ${python_tools[*]}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}"
    echo "$wanted" > "$stamp"
fi
