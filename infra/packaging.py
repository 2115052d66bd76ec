"""The Lambda code asset, built without Docker: `functions/` (what Lambda runs: handlers and
the engine, without cli/, local/ and reading/) plus its dependencies installed for the
Lambda platform (Python 3.14 on arm64, manylinux aarch64 wheels) by local bundling, pinned
by lambda-constraints.txt (`python -m infra.lock`), byte-compiled by the runtime's Python.

Modes (context key `bundle`):
  pip   the default and the only deployable asset: pip install the dependencies with the
        constraints, byte-compile; any failure fails synth.
  copy  `functions/` only, no dependencies, for synth checks and tests. Never deployable:
        the stack then carries a CloudFormation rule that refuses every deployment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from .config import BUNDLE_MODES, FUNCTIONS_DIR, ROOT

PYTHON_VERSION = "3.14"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# Newest first; pip also accepts older manylinux tags for these. Lambda's Amazon Linux 2023 has glibc 2.34.
PLATFORMS = ("manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
# What Lambda does not run stays out of the asset: the command line, the reading tools
# (ls/extract/restore/verify) and the emulator harness.
NOT_IN_ASSET = ("bucketzip/cli", "bucketzip/local", "bucketzip/reading")


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(IGNORE(directory, names))
    relative = Path(directory).resolve().relative_to(FUNCTIONS_DIR.resolve()).as_posix()
    return ignored | {name for name in names if f"{relative}/{name}".lstrip("./") in NOT_IN_ASSET}


POWERTOOLS = "aws-lambda-powertools"
CONSTRAINTS = ROOT / "lambda-constraints.txt"  # written by `python -m infra.lock`
# The pyc files must come from the runtime's own Python (the magic number is per version).
# unchecked-hash: used as is, whatever the mtimes in the asset zip (/var/task is read-only,
# so a pyc that fails its check would be recompiled in memory on every cold start).
COMPILER = f"python{PYTHON_VERSION}"


class BundlingError(RuntimeError):
    pass


def requirements(powertools_from_layer: bool) -> list[str]:
    """The runtime dependencies declared in pyproject.toml (one source of truth)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project.get("dependencies", []))
    if powertools_from_layer:
        deps = [d for d in deps if not d.lower().replace("_", "-").startswith(POWERTOOLS)]
    return deps


def pip_command(target: str, deps: list[str]) -> list[str]:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--retries",
        "1",
        "--timeout",
        "20",
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--upgrade",
        "--constraint",
        str(CONSTRAINTS),
        "--target",
        target,
        *deps,
    ]


def compile_command(target: str, python: str = COMPILER) -> list[str]:
    return [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", target]


def byte_compile(target: str, python: str = COMPILER) -> None:
    """Compile every module of the asset with the runtime's Python; fail synth otherwise."""
    if shutil.which(python) is None:
        raise BundlingError(
            f"byte-compiling the Lambda asset needs {python} (the runtime's Python) on PATH; "
            "synth checks without a deployable asset: -c bundle=copy"
        )
    result = subprocess.run(compile_command(target, python), capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise BundlingError(f"byte-compiling the Lambda asset failed: {' | '.join(detail)}")


def copy_functions(output_dir: str) -> None:
    shutil.copytree(FUNCTIONS_DIR, output_dir, ignore=_ignore, dirs_exist_ok=True)


@jsii.implements(ILocalBundling)
class LocalBundling:
    """Runs on the synth machine; CDK never falls back to Docker because this never returns
    False: it builds the asset or raises."""

    def __init__(self, mode: str, deps: list[str], compiler: str = COMPILER):
        if mode not in BUNDLE_MODES:
            raise BundlingError(f"bundle mode {mode!r} is not one of {', '.join(BUNDLE_MODES)}")
        self.mode, self.deps, self.compiler = mode, deps, compiler

    @jsii.member(jsii_name="tryBundle")
    def try_bundle(self, output_dir: str, *args, **kwargs) -> bool:
        if self.mode == "copy":
            copy_functions(output_dir)
            return True
        if not CONSTRAINTS.is_file():
            raise BundlingError(f"{CONSTRAINTS.name} is missing: generate it with `python -m infra.lock`")
        result = subprocess.run(pip_command(output_dir, self.deps), capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise BundlingError(
                f"pip install for the Lambda asset failed: {' | '.join(detail)} "
                "(synth checks without a deployable asset: -c bundle=copy)"
            )
        shutil.rmtree(Path(output_dir) / "bin", ignore_errors=True)  # console scripts, unused
        copy_functions(output_dir)
        byte_compile(output_dir, self.compiler)
        return True


def lambda_code(mode: str, powertools_from_layer: bool) -> lambda_.Code:
    deps = requirements(powertools_from_layer)
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Only used if local bundling declines, which LocalBundling never does.
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{PYTHON_VERSION}"),
            local=LocalBundling(mode, deps),
        ),
    )


def refuse_deployment(scope) -> None:
    """A code-only asset is for checks: the template gets a rule CloudFormation evaluates
    before any change, always false, so every create or update is refused with this reason."""
    from aws_cdk import CfnRule, CfnRuleAssertion, Fn, Stack

    CfnRule(
        Stack.of(scope),
        "CodeOnlyAssetIsNotDeployable",
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_equals("bundle=copy", "bundle=pip"),
                assert_description=NOT_DEPLOYABLE,
            )
        ],
    )


NOT_DEPLOYABLE = (
    "bundle=copy: the Lambda asset has no dependencies and cannot run; this template is for "
    "checks only. Deploy with the default bundle=pip."
)
