#!/usr/bin/env python3
"""CDK app: `cdk synth` / `cdk deploy` build the bucketzip stack from the cdk.json context
(override any key with `-c key=value`). Environment-agnostic: `python app.py` synthesizes
offline, with no account or region; cdk-nag's AwsSolutions checks run on every synth."""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, cdk_json_context, load_config
from infra.stack import BucketzipStack


def build(app: cdk.App) -> BucketzipStack:
    """Validate the context, add the stack and (unless `-c nag=false`) the cdk-nag checks."""
    config = load_config(app.node.try_get_context)
    stack = BucketzipStack(app, config.stack_name, config=config)
    if str(app.node.try_get_context("nag")).lower() not in ("false", "0", "no"):
        cdk.Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
        )
    return stack


def main() -> None:
    # cdk.json's context is the default: run by hand (`python app.py`), the app sees the same
    # settings and feature flags as under the CDK CLI, whose context (-c) takes precedence.
    app = cdk.App(context=cdk_json_context())
    try:
        build(app)
    except ConfigError as exc:
        raise SystemExit(f"bucketzip: invalid cdk.json context: {exc}") from None
    except RuntimeError as exc:  # a BundlingError, as it comes back through jsii
        if "Failed to bundle asset" not in str(exc):
            raise
        raise SystemExit(
            f"bucketzip: cannot build the Lambda asset: {str(exc).rpartition('RuntimeError: ')[2]}"
        ) from None
    app.synth()


if __name__ == "__main__":
    main()
