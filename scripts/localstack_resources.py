"""Generates localstack/resources/ from template.yaml, or checks that it is up to date.

LocalStack runs localstack/init/ready.d/10-chat-resources.sh when it is ready; that script
makes the template's DynamoDB tables, S3 bucket and SNS topic with `awslocal`, reading
the API requests from the JSON files written here (the `--cli-input-json` shapes of
CreateTable, UpdateTimeToLive, CreateBucket, PutBucketCors, CreateTopic, ...). They carry
the names the local gateway uses by default, so `local-gateway serve` finds them without
`--create-tables`: tables `{prefix}{LogicalId}`, the bucket `{prefix}{LogicalId}` in lower
case and the topic `{prefix}{LogicalId}` (gateway/src/template.rs, gateway/src/local.rs),
with the prefix the default of `--table-prefix` (gateway/src/main.rs).

Every property of those resources in the template is either translated or deliberately
left out (see IGNORED); any other property stops the generator, so that a change to the
template cannot silently leave LocalStack behind.

Usage:
  .venv/bin/python scripts/localstack_resources.py --write   # regenerate localstack/resources/
  .venv/bin/python scripts/localstack_resources.py --check   # fail if it differs from template.yaml
  options: --template PATH (default template.yaml), --out DIR (default localstack/resources)
"""

import argparse
import difflib
import json
import os
import re
import sys

from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TEMPLATE = os.path.join(ROOT, "template.yaml")
DEFAULT_OUT = os.path.join(ROOT, "localstack", "resources")
GATEWAY_MAIN = os.path.join(ROOT, "gateway", "src", "main.rs")
GATEWAY_LOCAL = os.path.join(ROOT, "gateway", "src", "local.rs")

TABLE = "AWS::DynamoDB::Table"
BUCKET = "AWS::S3::Bucket"
TOPIC = "AWS::SNS::Topic"

# Properties the local resources leave out on purpose, and why.
IGNORED = {
    TABLE: {
        "PointInTimeRecoverySpecification": "backups: there is nothing to restore locally",
        "SSESpecification": "encryption at rest with KMS, which the compose file does not run",
    },
    BUCKET: {},
    TOPIC: {
        "KmsMasterKeyId": "encryption at rest with KMS, which the compose file does not run",
    },
}


class TemplateProblem(Exception):
    pass


def load_template(path):
    with open(path) as f:
        return yaml_parse(f.read())


def resources_of(template, kind):
    """(logical id, properties) of every resource of this type, sorted by logical id."""
    found = []
    for logical_id, resource in sorted(template.get("Resources", {}).items()):
        if resource.get("Type") == kind:
            found.append((logical_id, resource.get("Properties") or {}))
    return found


def gateway_prefix():
    """The default of local-gateway's --table-prefix, read from gateway/src/main.rs."""
    with open(GATEWAY_MAIN) as f:
        source = f.read()
    match = re.search(r'env\s*=\s*"TABLE_PREFIX"\s*,\s*default_value\s*=\s*"([^"]*)"', source)
    if not match:
        raise TemplateProblem(
            f"cannot find the default of --table-prefix (env TABLE_PREFIX) in {os.path.relpath(GATEWAY_MAIN, ROOT)}; "
            "update gateway_prefix() in scripts/localstack_resources.py"
        )
    return match.group(1)


def gateway_logical_ids():
    """The logical ids gateway/src/local.rs names (`pub const X: &str = "LogicalId";`)."""
    with open(GATEWAY_LOCAL) as f:
        return sorted(set(re.findall(r'pub const [A-Z_]+: &str = "([A-Za-z0-9]+)";', f.read())))


def plain(value, where):
    """The value itself; refuses intrinsic functions (`!Ref`, `!Sub`, ...), which have no local value."""
    if isinstance(value, dict):
        for key in value:
            if key == "Ref" or key.startswith("Fn::"):
                raise TemplateProblem(f"{where}: {key} cannot be resolved locally")
        return {k: plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def pick(source, where, mapping):
    """Copies `source`'s keys renamed by `mapping` (template name -> API name); any other key is an error."""
    unknown = sorted(set(source) - set(mapping))
    if unknown:
        raise TemplateProblem(
            f"{where}: {', '.join(unknown)} not supported by scripts/localstack_resources.py; teach it to make them"
        )
    return {mapping[k]: plain(v, f"{where}.{k}") for k, v in source.items()}


def check_properties(kind, logical_id, props, handled):
    unknown = sorted(set(props) - set(handled) - set(IGNORED[kind]))
    if unknown:
        raise TemplateProblem(
            f"{logical_id}: {', '.join(unknown)} not supported by scripts/localstack_resources.py; "
            "translate them (or add them to IGNORED with the reason)"
        )


def table_requests(logical_id, props, prefix):
    handled = [
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "StreamSpecification",
        "TimeToLiveSpecification",
    ]
    check_properties(TABLE, logical_id, props, handled)
    name = f"{prefix}{logical_id}"
    create = {"TableName": name}
    for key in ("AttributeDefinitions", "KeySchema"):
        if key not in props:
            raise TemplateProblem(f"{logical_id}: no {key}")
        create[key] = plain(props[key], f"{logical_id}.{key}")
    # CloudFormation's default billing mode is PROVISIONED.
    create["BillingMode"] = props.get("BillingMode", "PROVISIONED")
    if "ProvisionedThroughput" in props:
        create["ProvisionedThroughput"] = plain(props["ProvisionedThroughput"], f"{logical_id}.ProvisionedThroughput")
    for key, allowed in (
        ("GlobalSecondaryIndexes", ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")),
        ("LocalSecondaryIndexes", ("IndexName", "KeySchema", "Projection")),
    ):
        if key in props:
            indexes = []
            for i, index in enumerate(props[key]):
                where = f"{logical_id}.{key}[{i}]"
                index = pick(index, where, {k: k for k in allowed})
                index.setdefault("Projection", {"ProjectionType": "ALL"})
                indexes.append(index)
            create[key] = indexes
    if "StreamSpecification" in props:
        stream = pick(props["StreamSpecification"], f"{logical_id}.StreamSpecification", {"StreamViewType": "StreamViewType"})
        create["StreamSpecification"] = {"StreamEnabled": True, **stream}
    requests = [(f"dynamodb/{name}.create-table.json", create)]
    ttl = props.get("TimeToLiveSpecification")
    if ttl is not None:
        ttl = pick(ttl, f"{logical_id}.TimeToLiveSpecification", {"AttributeName": "AttributeName", "Enabled": "Enabled"})
        if ttl.get("Enabled"):
            requests.append(
                (
                    f"dynamodb/{name}.update-time-to-live.json",
                    {"TableName": name, "TimeToLiveSpecification": {"AttributeName": ttl["AttributeName"], "Enabled": True}},
                )
            )
    return requests


def bucket_requests(logical_id, props, prefix):
    handled = [
        "PublicAccessBlockConfiguration",
        "BucketEncryption",
        "OwnershipControls",
        "CorsConfiguration",
        "LifecycleConfiguration",
    ]
    check_properties(BUCKET, logical_id, props, handled)
    name = f"{prefix}{logical_id}".lower()
    # us-east-1, the region of the compose file and of the local gateway, takes no LocationConstraint.
    requests = [(f"s3/{name}.create-bucket.json", {"Bucket": name})]
    if "PublicAccessBlockConfiguration" in props:
        block = plain(props["PublicAccessBlockConfiguration"], f"{logical_id}.PublicAccessBlockConfiguration")
        requests.append(
            (f"s3/{name}.put-public-access-block.json", {"Bucket": name, "PublicAccessBlockConfiguration": block})
        )
    if "OwnershipControls" in props:
        ownership = pick(props["OwnershipControls"], f"{logical_id}.OwnershipControls", {"Rules": "Rules"})
        requests.append((f"s3/{name}.put-bucket-ownership-controls.json", {"Bucket": name, "OwnershipControls": ownership}))
    if "BucketEncryption" in props:
        encryption = props["BucketEncryption"]
        where = f"{logical_id}.BucketEncryption"
        pick(encryption, where, {"ServerSideEncryptionConfiguration": "ServerSideEncryptionConfiguration"})
        rules = []
        for i, rule in enumerate(encryption.get("ServerSideEncryptionConfiguration", [])):
            rules.append(
                pick(
                    rule,
                    f"{where}.ServerSideEncryptionConfiguration[{i}]",
                    {
                        "ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault",
                        "BucketKeyEnabled": "BucketKeyEnabled",
                    },
                )
            )
        requests.append(
            (
                f"s3/{name}.put-bucket-encryption.json",
                {"Bucket": name, "ServerSideEncryptionConfiguration": {"Rules": rules}},
            )
        )
    if "CorsConfiguration" in props:
        where = f"{logical_id}.CorsConfiguration"
        pick(props["CorsConfiguration"], where, {"CorsRules": "CORSRules"})
        rules = [
            pick(
                rule,
                f"{where}.CorsRules[{i}]",
                {
                    "Id": "ID",
                    "AllowedHeaders": "AllowedHeaders",
                    "AllowedMethods": "AllowedMethods",
                    "AllowedOrigins": "AllowedOrigins",
                    "ExposedHeaders": "ExposeHeaders",
                    "MaxAge": "MaxAgeSeconds",
                },
            )
            for i, rule in enumerate(props["CorsConfiguration"].get("CorsRules", []))
        ]
        requests.append((f"s3/{name}.put-bucket-cors.json", {"Bucket": name, "CORSConfiguration": {"CORSRules": rules}}))
    if "LifecycleConfiguration" in props:
        where = f"{logical_id}.LifecycleConfiguration"
        pick(props["LifecycleConfiguration"], where, {"Rules": "Rules"})
        rules = []
        for i, rule in enumerate(props["LifecycleConfiguration"].get("Rules", [])):
            template_rule = pick(
                rule,
                f"{where}.Rules[{i}]",
                {
                    "Id": "ID",
                    "Status": "Status",
                    "Prefix": "Prefix",
                    "AbortIncompleteMultipartUpload": "AbortIncompleteMultipartUpload",
                    "ExpirationInDays": "ExpirationInDays",
                    "TagFilters": "TagFilters",
                },
            )
            api_rule = {"ID": template_rule["ID"]} if "ID" in template_rule else {}
            tags = [{"Key": t["Key"], "Value": t["Value"]} for t in template_rule.get("TagFilters", [])]
            if tags:
                # The API's form of "this prefix and these tags".
                api_rule["Filter"] = {"And": {"Prefix": template_rule.get("Prefix", ""), "Tags": tags}}
            else:
                api_rule["Filter"] = {"Prefix": template_rule.get("Prefix", "")}
            api_rule["Status"] = template_rule["Status"]
            if "AbortIncompleteMultipartUpload" in template_rule:
                api_rule["AbortIncompleteMultipartUpload"] = template_rule["AbortIncompleteMultipartUpload"]
            if "ExpirationInDays" in template_rule:
                api_rule["Expiration"] = {"Days": template_rule["ExpirationInDays"]}
            rules.append(api_rule)
        requests.append(
            (
                f"s3/{name}.put-bucket-lifecycle-configuration.json",
                {"Bucket": name, "LifecycleConfiguration": {"Rules": rules}},
            )
        )
    return requests


def topic_requests(logical_id, props, prefix):
    check_properties(TOPIC, logical_id, props, [])
    name = f"{prefix}{logical_id}"
    return [(f"sns/{name}.create-topic.json", {"Name": name})]


README = """# Generated: do not edit

The AWS API requests that `../init/ready.d/10-chat-resources.sh` sends to LocalStack (with
`awslocal ... --cli-input-json file://...`) to make the tables, bucket and topic of
`template.yaml`, named as `local-gateway serve` expects them by default (prefix `{prefix}`).

Regenerate after changing the template:

    .venv/bin/python scripts/localstack_resources.py --write

`scripts/check_localstack.sh` fails while these files differ from what `template.yaml` gives.

File names are `<service>/<resource name>.<CLI operation>.json`:

{files}

Left out on purpose:

{ignored}
"""


def generate(template, prefix):
    """Relative path -> file text, for the whole of localstack/resources/."""
    expected = gateway_logical_ids()
    declared = set(template.get("Resources", {}))
    missing = [logical_id for logical_id in expected if logical_id not in declared]
    if missing:
        raise TemplateProblem(
            f"gateway/src/local.rs names {', '.join(missing)}, which template.yaml does not declare"
        )
    files = {}
    for kind, make in ((TABLE, table_requests), (BUCKET, bucket_requests), (TOPIC, topic_requests)):
        for logical_id, props in resources_of(template, kind):
            for path, request in make(logical_id, props, prefix):
                files[path] = json.dumps(request, indent=2) + "\n"
    listing = "\n".join(f"- `{path}`" for path in sorted(files))
    ignored = "\n".join(
        f"- {kind} `{prop}`: {why}" for kind, props in IGNORED.items() for prop, why in sorted(props.items())
    )
    files["README.md"] = README.format(prefix=prefix, files=listing, ignored=ignored)
    return files


def on_disk(out):
    found = {}
    if not os.path.isdir(out):
        return found
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            with open(path) as f:
                found[os.path.relpath(path, out).replace(os.sep, "/")] = f.read()
    return found


def shown(path):
    """The path relative to the working directory when it is under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the resource files")
    mode.add_argument("--check", action="store_true", help="fail when the files differ from the template")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    try:
        wanted = generate(load_template(args.template), gateway_prefix())
    except TemplateProblem as problem:
        print(f"localstack_resources: {args.template}: {problem}", file=sys.stderr)
        return 2
    present = on_disk(args.out)
    shown_out, shown_template = (shown(p) for p in (args.out, args.template))

    if args.write:
        for path in sorted(set(present) - set(wanted)):
            os.remove(os.path.join(args.out, path))
            print(f"removed {shown_out}/{path}")
        for path, text in sorted(wanted.items()):
            if present.get(path) != text:
                target = os.path.join(args.out, path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    f.write(text)
                print(f"wrote {shown_out}/{path}")
        print(f"{shown_out}: {len(wanted)} files, up to date with {shown_template}")
        return 0

    problems = []
    for path in sorted(set(present) | set(wanted)):
        if path not in present:
            problems.append(f"missing: {shown_out}/{path}")
        elif path not in wanted:
            problems.append(f"not made from the template (stale): {shown_out}/{path}")
        elif present[path] != wanted[path]:
            diff = difflib.unified_diff(
                present[path].splitlines(),
                wanted[path].splitlines(),
                f"{shown_out}/{path} (committed)",
                f"{shown_out}/{path} (from {shown_template})",
                lineterm="",
            )
            problems.append(f"differs: {shown_out}/{path}\n" + "\n".join(diff))
    if problems:
        print(
            f"localstack_resources: {shown_out} does not match {shown_template}:",
            file=sys.stderr,
        )
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            "Regenerate with: .venv/bin/python scripts/localstack_resources.py --write (and commit the result)",
            file=sys.stderr,
        )
        return 1
    print(f"{shown_out}: {len(wanted)} files, up to date with {shown_template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
