#!/usr/bin/env bash
# Indexes the messages a deployment stored before search was deployed, or rebuilds a lost
# search index: invokes the stack's indexer with backfill steps (one page of a parallel Scan
# of the Messages table each) until every part is done. Safe to run beside live traffic and
# to run again: for each message the newest version wins. Needs the AWS CLI and the stack's
# credentials. Not yet run against AWS from this repository (tests/e2e/search.rs runs the
# same steps against the local stack).
#
#   scripts/backfill-search.sh STACK_NAME [PARTS]     # PARTS parallel scans, 4 by default
set -euo pipefail
stack="${1:?usage: scripts/backfill-search.sh STACK_NAME [PARTS]}"
parts="${2:-4}"
function=$(aws cloudformation describe-stack-resource --stack-name "$stack" \
    --logical-resource-id SearchIndexerFunction \
    --query StackResourceDetail.PhysicalResourceId --output text)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run_part() {
    local part="$1" cursor="null" scanned=0 out="$work/part-$1.json"
    while :; do
        local payload="{\"backfill\": {\"segment\": $part, \"segments\": $parts, \"cursor\": $cursor}}"
        aws lambda invoke --function-name "$function" --cli-binary-format raw-in-base64-out \
            --payload "$payload" "$out" > "$work/part-$part.meta"
        if grep -q FunctionError "$work/part-$part.meta"; then
            echo "part $part: the indexer failed: $(cat "$out")" >&2
            return 1
        fi
        scanned=$((scanned + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scanned"])' "$out")))
        cursor=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["cursor"]))' "$out")
        echo "part $part: $scanned messages read"
        [ "$cursor" = "null" ] && return 0
    done
}

pids=()
for part in $(seq 0 $((parts - 1))); do
    run_part "$part" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
[ $status -eq 0 ] && echo "backfill done: every message of $stack is in the search index"
exit $status
