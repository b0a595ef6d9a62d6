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
    transformed = transform(template, {}, NoManagedPolicies(), Parser())
    resources = transformed.get("Resources", {})
    print(f"SAM transform: {len(resources)} CloudFormation resources")
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
