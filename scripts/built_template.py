"""Lays out functions built by one `cargo lambda build` the way `sam build` does, so that
`sam deploy` takes them as they are: .aws-sam/build/{LogicalId}/bootstrap and
.aws-sam/build/template.yaml with each function's CodeUri pointing at its directory.

Usage: .venv/bin/python scripts/built_template.py ARCH LAMBDA_DIR
  ARCH        x86_64 or arm64 (becomes the Architecture parameter's default)
  LAMBDA_DIR  where cargo lambda put {binary}/bootstrap (target/lambda)

With `--binaries` it only prints the binaries the template's functions need, one per line.
"""

import json
import os
import shutil
import sys

from samtranslator.yaml_helper import yaml_parse

BUILD_DIR = ".aws-sam/build"


def functions(template):
    """(logical id, resource, binary) of every function SAM would build with cargo-lambda."""
    for logical_id, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        if resource["Type"] == "AWS::Serverless::Function" and metadata.get("BuildMethod") == "rust-cargolambda":
            yield logical_id, resource, metadata["BuildProperties"]["Binary"]


def main() -> int:
    with open("template.yaml") as f:
        template = yaml_parse(f.read())
    if sys.argv[1:] == ["--binaries"]:
        print("\n".join(sorted({binary for _, _, binary in functions(template)})))
        return 0
    arch, lambda_dir = sys.argv[1], sys.argv[2]
    if os.path.isdir(BUILD_DIR):
        shutil.rmtree(BUILD_DIR)
    for logical_id, resource, binary in functions(template):
        source = os.path.join(lambda_dir, binary, "bootstrap")
        if not os.path.isfile(source):
            print(f"{logical_id}: {source} was not built", file=sys.stderr)
            return 1
        os.makedirs(os.path.join(BUILD_DIR, logical_id))
        shutil.copy2(source, os.path.join(BUILD_DIR, logical_id, "bootstrap"))
        resource["Properties"]["CodeUri"] = logical_id
        del resource["Metadata"]
    # The binaries are built for one architecture: deploy them as that by default.
    template["Parameters"]["Architecture"]["Default"] = arch
    # JSON is YAML: CloudFormation and SAM read it, and no intrinsic-function tags are lost.
    with open(os.path.join(BUILD_DIR, "template.yaml"), "w") as f:
        json.dump(template, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
