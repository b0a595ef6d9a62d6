#!/bin/bash
# LocalStack runs this when it is ready (docker-compose.yml mounts this directory at
# /etc/localstack/init/ready.d and localstack/resources at /etc/localstack/resources). It makes
# the DynamoDB tables, the S3 bucket and the SNS topic of template.yaml, named as
# `local-gateway serve` expects them by default, so the gateway needs no --create-tables.
#
# The requests are the JSON files in localstack/resources/, generated from template.yaml by
# scripts/localstack_resources.py: <service>/<name>.<CLI operation>.json.
#
# Safe to run again (LocalStack with PERSISTENCE=1 does, on every start): what exists is
# kept, settings are applied again. scripts/check_localstack.sh runs this very script
# against moto, with `awslocal` standing for the AWS CLI pointed at it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
resources="${CHAT_RESOURCES_DIR:-$here/../../resources}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# LocalStack's default account (000000000000) is that of the access key `test`.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_PAGER=""
log() { echo "chat-resources: $*"; }

if [ ! -d "$resources/dynamodb" ]; then
    log "no resource files in $resources: mount localstack/resources at /etc/localstack/resources" >&2
    exit 1
fi
shopt -s nullglob

# DynamoDB: the table (keys, indexes, billing), then its TTL.
for request in "$resources"/dynamodb/*.create-table.json; do
    table="$(basename "$request" .create-table.json)"
    if error="$(awslocal dynamodb create-table --cli-input-json "file://$request" 2>&1 > /dev/null)"; then
        awslocal dynamodb wait table-exists --table-name "$table"
        log "created table $table"
        ttl_status=DISABLED
    elif [[ "$error" == *ResourceInUseException* ]]; then
        log "table $table exists, kept"
        ttl_status="$(awslocal dynamodb describe-time-to-live --table-name "$table" \
            --query TimeToLiveDescription.TimeToLiveStatus --output text)"
    else
        echo "$error" >&2
        exit 1
    fi
    ttl="$resources/dynamodb/$table.update-time-to-live.json"
    if [ -f "$ttl" ] && [ "$ttl_status" != ENABLED ]; then
        awslocal dynamodb update-time-to-live --cli-input-json "file://$ttl" > /dev/null
        log "enabled TTL on $table"
    fi
done

# S3: the bucket, then each of its settings (put-bucket-cors, put-public-access-block, ...).
for request in "$resources"/s3/*.create-bucket.json; do
    bucket="$(basename "$request" .create-bucket.json)"
    if awslocal s3api head-bucket --bucket "$bucket" > /dev/null 2>&1; then
        log "bucket $bucket exists, kept"
    else
        awslocal s3api create-bucket --cli-input-json "file://$request" > /dev/null
        log "created bucket $bucket"
    fi
    for setting in "$resources/s3/$bucket".put-*.json; do
        operation="${setting#"$resources/s3/$bucket."}"
        operation="${operation%.json}"
        awslocal s3api "$operation" --cli-input-json "file://$setting" > /dev/null
        log "$operation on $bucket"
    done
done

# SNS: creating a topic that exists answers its ARN.
for request in "$resources"/sns/*.create-topic.json; do
    arn="$(awslocal sns create-topic --cli-input-json "file://$request" --query TopicArn --output text)"
    log "topic $arn"
done
log "done"
