"""Helpers of the infra tests: the test contexts, synthesis, and readable CloudFormation values.
(A uniquely named module, not conftest, so that `from infra_support import ...` is unambiguous.)"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

DEST_BUCKET = "acme-archives"
KMS_DEST = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KMS_SOURCE = "arn:aws:kms:eu-west-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab"
LAYER = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:1"

# Two schedules, a destination bucket created by the stack, one extra source for hand-started runs.
MAIN_CONTEXT = {
    "bundle": "copy",
    "dest_bucket": DEST_BUCKET,
    "create_dest_bucket": True,
    "sources": ["s3://acme-misc/reports/"],
    "alarm_email": "ops@example.com",
    "schedules": [
        {
            "name": "photos-nightly",
            "schedule": "cron(0 3 * * ? *)",
            "timezone": "Europe/Paris",
            "source_bucket": "acme-photos",
            "dest_bucket": DEST_BUCKET,
            "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}.zip",
            "options": {"exclude": ["*.tmp", "cache/*"], "compression": "auto", "concurrency": 16},
        },
        {
            "name": "logs-weekly",
            "schedule": "cron(30 1 ? * SUN *)",
            "source_bucket": "acme-logs",
            "source_prefix": "app/",
            "dest_bucket": DEST_BUCKET,
            "dest_key": "backups/logs/{date:%G-W%V}.zip",
            "description": "Weekly application logs",
            "enabled": False,
            "options": {"compression": "deflate", "level": 9, "part_size": "64MiB", "overwrite": True},
        },
    ],
}

# An existing bucket encrypted with a KMS key, zero schedules, values given as `-c` strings.
EXISTING_CONTEXT = {
    "bundle": "copy",
    "stack_name": "Archiver",
    "dest_bucket": "team-archive",
    "create_dest_bucket": "false",
    "dest_prefix": "bucketzip/",
    "dest_kms_key_arn": KMS_DEST,
    "source_kms_key_arns": f'["{KMS_SOURCE}"]',
    "sources": "s3://data-lake/raw/,s3://data-lake/curated/2026/",
    "point_in_time_recovery": "true",
    "powertools_layer_arn": LAYER,
    "step_memory_mb": "4096",
    "log_retention_days": "90",
    "schedules": "[]",
}


@dataclass
class Synth:
    stack: cdk.Stack
    template: dict
    assertions: Template
    report: dict
    outdir: Path

    def resources(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_}

    def one(self, type_: str) -> tuple[str, dict]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.items()))


def synthesize(overrides: dict, outdir: Path) -> Synth:
    from app import build
    from infra.config import cdk_json_context

    context = {
        **cdk_json_context(),
        **overrides,
        # collect cdk-nag findings in validation-report.json instead of raising
        "@aws-cdk/core:failSynthOnValidationErrors": False,
    }
    app = cdk.App(context=context, outdir=str(outdir))
    stack = build(app)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synth(stack, template, Template.from_json(template), report, outdir)


def render(value) -> str:
    """A CloudFormation value as readable text: `${AWS::Partition}`, `${DestinationBucket.Arn}`
    (logical ids without their hash suffix)."""
    if isinstance(value, str):
        return value
    ((fn, arg),) = value.items()
    if fn == "Ref":
        return "${" + strip_hash(arg) + "}"
    if fn == "Fn::GetAtt":
        return "${" + strip_hash(arg[0]) + "." + arg[1] + "}"
    if fn == "Fn::Join":
        return arg[0].join(render(v) for v in arg[1])
    raise AssertionError(f"unexpected intrinsic {value!r}")


def strip_hash(logical_id: str) -> str:
    return logical_id if logical_id.startswith("AWS::") else re.sub(r"[0-9A-F]{8}$", "", logical_id)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]
