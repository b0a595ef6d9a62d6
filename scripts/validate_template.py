"""Validates template.yaml the ways AWS would, offline.

cfn-lint alone does not run the SAM transform, so a wrong policy, a misspelt authorizer
or a bad event passes it. This script runs the transform (samtranslator, as CloudFormation
does), then lints the transformed template with cfn-lint, which also checks IAM actions.

Usage: .venv/bin/python scripts/validate_template.py [template.yaml]
"""

import json
import os
import subprocess
import sys
import tempfile

from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies(ManagedPolicyLoader):
    """The template uses inline statements only; no IAM call is needed (or possible)."""

    def __init__(self):
        pass

    def load(self):
        return {}


# The managed policy SAM adds to a function's role for `Tracing` (X-Ray segments only): its
# older name in the aws partition, the newer one elsewhere (samtranslator's xray_utils).
XRAY_WRITE_POLICIES = ("policy/AWSXrayWriteOnlyAccess", "policy/AWSXRayDaemonWriteAccess")


def roles_match(declared, resources):
    """The local IAM (gateway/src/iam.rs) evaluates each function's `Policies` statements
    as template.yaml writes them. Check that the transform gives each function's role those
    statements and nothing else but the basic execution role (CloudWatch Logs) and, for a
    function with tracing on, the X-Ray write policy SAM adds for it (X-Ray's own actions,
    used by the X-Ray daemon Lambda runs beside the function, never by the functions' AWS
    clients), so that what the tests enforce is what AWS will."""
    problems = []
    for function, policies in declared.items():
        role = resources.get(f"{function}Role", {}).get("Properties", {})
        inline = [p["PolicyDocument"]["Statement"] for p in role.get("Policies", [])]
        expected = [p["Statement"] for p in json.loads(policies)]
        if json.dumps(inline, sort_keys=True) != json.dumps(expected, sort_keys=True):
            problems.append(f"{function}Role's inline statements differ from the function's Policies")
        managed = [json.dumps(m, sort_keys=True) for m in role.get("ManagedPolicyArns", [])]
        basic = [m for m in managed if "service-role/AWSLambdaBasicExecutionRole" in m]
        xray = [m for m in managed if any(name in m for name in XRAY_WRITE_POLICIES)]
        traced = "TracingConfig" in resources.get(function, {}).get("Properties", {})
        if len(basic) != 1 or len(xray) != (1 if traced else 0) or len(managed) != len(basic) + len(xray):
            problems.append(f"{function}Role has managed policies the local IAM does not evaluate: {managed}")
    return problems


def main() -> int:
    # The transform fills in pseudo parameters; any region will do offline.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path) as f:
        template = yaml_parse(f.read())
    # `sam package` replaces local code paths with S3 locations before the transform runs.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and not str(props.get("CodeUri", "")).startswith("s3://"):
            props["CodeUri"] = f"s3://validation-only/{props.get('CodeUri', 'code')}.zip"
    declared = {
        logical_id: json.dumps(resource.get("Properties", {}).get("Policies", []), sort_keys=True)
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    transformed = transform(template, {}, NoManagedPolicies(), Parser())
    resources = transformed.get("Resources", {})
    print(f"SAM transform: {len(resources)} CloudFormation resources")
    problems = roles_match(declared, resources)
    if problems:
        for problem in problems:
            print(f"validate_template: {problem}", file=sys.stderr)
        return 1
    print(
        f"roles: the {len(declared)} functions' roles hold exactly the statements the local IAM evaluates"
        " (and X-Ray's write policy where tracing is on)"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(transformed, out, indent=1)
    # W3005 (obsolete DependsOn) fires on what the transform itself generates.
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    lint = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", out.name])
    if lint.returncode != 0:
        print("cfn-lint found problems in the transformed template", file=sys.stderr)
        return lint.returncode
    print("cfn-lint: transformed template is clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
