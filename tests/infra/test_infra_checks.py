"""cfn-lint and cdk-nag (AwsSolutions) on the synthesized templates, and `python app.py`
synthesizing offline with the default cdk.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from cfnlint.api import lint_all
from infra_support import ROOT


def test_cfn_lint_reports_no_errors(any_synth):
    matches = lint_all(json.dumps(any_synth.template))
    errors = [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches if m.rule.id.startswith("E")]
    assert not errors, "cfn-lint errors:\n" + "\n".join(errors)


def checkov_command() -> str | None:
    """checkov from $BUCKETZIP_CHECKOV, the repository's .venv-checkov (requirements-checkov.txt), or PATH."""
    for candidate in (os.environ.get("BUCKETZIP_CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def test_checkov_reports_no_failed_check(any_synth, tmp_path):
    checkov = checkov_command()
    if checkov is None:
        # CI installs it (scripts/dev.sh test): there a missing checkov is a failure, not a skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "checkov is not installed: python3 -m venv .venv-checkov && "
            ".venv-checkov/bin/pip install -r requirements-checkov.txt"
        )
    template = tmp_path / "template.json"
    template.write_text(json.dumps(any_synth.template))
    result = subprocess.run(
        [checkov, "-f", str(template), "--framework", "cloudformation", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    failed = [f"{f['check_id']} {f['check_name']} at {f['resource']}" for f in report["results"]["failed_checks"]]
    assert not failed, "checkov findings (fix, or skip in infra/checkov.py with a reason):\n" + "\n".join(failed)
    assert report["summary"]["passed"] > 100 and report["summary"]["parsing_errors"] == 0


def test_every_checkov_skip_carries_a_reason(any_synth):
    from infra.checkov import NO_RESERVATION, SKIPS

    known = {check for checks in SKIPS.values() for check in checks} | set(NO_RESERVATION)
    for logical_id, resource in any_synth.template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"] in known and len(skip["comment"].split()) >= 8, (logical_id, skip)
    functions = any_synth.resources("AWS::Lambda::Function").values()
    assert all(f["Properties"]["ReservedConcurrentExecutions"] >= 5 for f in functions)  # fixed, not skipped


def test_cdk_nag_reports_nothing_unacknowledged(any_synth):
    violations = [
        f"{v['ruleName']} at {[c['constructPath'] for c in v['violatingConstructs']]}"
        for report in any_synth.report["pluginReports"]
        for v in report["violations"]
    ]
    assert not violations, "cdk-nag AwsSolutions findings:\n" + "\n".join(violations)


def test_every_acknowledgment_carries_a_reason(any_synth):
    acknowledged = []
    for logical_id, resource in any_synth.template["Resources"].items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert rule["id"].startswith("AwsSolutions-"), (logical_id, rule)
            assert len(rule.get("reason", "").split()) >= 8, (logical_id, rule)
            acknowledged.append(rule["id"].split("[")[0])
    # the checks ran (the acknowledgments were written by the AwsSolutions pack) and only these rules
    allowed = {"AwsSolutions-IAM5", "AwsSolutions-S1", "AwsSolutions-SNS2", "AwsSolutions-DDB3", "AwsSolutions-SQS3"}
    assert set(acknowledged) <= allowed
    assert "AwsSolutions-IAM5" in acknowledged


def test_iam5_acknowledgments_are_per_finding(main):
    """Wildcards are acknowledged one by one (prefix-scoped S3 objects, X-Ray/log delivery '*'),
    never the whole rule."""
    findings = {
        r["id"]
        for res in main.template["Resources"].values()
        for r in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        if r["id"].startswith("AwsSolutions-IAM5")
    }
    assert "AwsSolutions-IAM5" not in findings
    assert "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::acme-photos/*]" in findings
    # objects by prefix; continuations; the Distributed Map's child executions
    allowed = ("s3:::", "DestinationBucket", ":execution:Bucketzip-archive:*]", ":execution:Bucketzip-archive/*]")
    assert all(any(a in f for a in allowed) or f.endswith("[Resource::*]") for f in findings), findings


def test_cdk_nag_catches_a_violation(tmp_path):
    """Control: the same plugin setup does report an unacknowledged finding."""
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path), context={"@aws-cdk/core:failSynthOnValidationErrors": False})
    sns.Topic(cdk.Stack(app, "Control"), "Topic")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert "AwsSolutions-SNS3" in rules


def offline_env(tmp_path, **context) -> dict:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "",
    }
    env.pop("CDK_CONTEXT_JSON", None)
    if context:
        env["CDK_CONTEXT_JSON"] = json.dumps(context)  # as `cdk synth -c key=value` passes it
    return env


def test_default_synth_without_dependencies_fails_loudly(tmp_path):
    """`python app.py` with cdk.json as is (bundle=pip, strict) and no package index: no
    template, a one-line reason, no traceback."""
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "bucketzip: cannot build the Lambda asset: pip install for the Lambda asset failed" in result.stderr
    assert "-c bundle=copy" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "Bucketzip.template.json").exists()


def test_python_app_py_synthesizes_offline_for_checks_with_bundle_copy(tmp_path):
    env = offline_env(tmp_path, bundle="copy")
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "Bucketzip.template.json").read_text())
    assert {"StateMachineArn", "TableName", "StartCommand"} <= set(template["Outputs"])
    assert "CodeOnlyAssetIsNotDeployable" in template["Rules"]  # CloudFormation refuses to deploy it


def test_invalid_context_fails_synth_naming_schedule_and_field(tmp_path):
    """As `cdk synth -c schedules='[...]'` runs it: the CLI passes its context in CDK_CONTEXT_JSON."""
    bad = {
        "dest_bucket": "acme-archives",
        "bundle": "copy",
        "schedules": [
            {
                "name": "nightly",
                "schedule": "cron(0 3 * * ? *)",
                "source_bucket": "acme-photos",
                "dest_key": "backups/x.zip",
            }
        ],
    }
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps(bad)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert (
        "bucketzip: invalid cdk.json context: schedule schedules[0] ('nightly'): dest_bucket: is required"
    ) in result.stderr
    assert "Traceback" not in result.stderr
