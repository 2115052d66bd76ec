"""The Lambda code asset, built without Docker: `functions/` plus its dependencies installed
for the Lambda platform (Python 3.14 on arm64, manylinux aarch64 wheels) by local bundling.

Modes (context key `bundle`):
  pip   pip install the dependencies; fail synth when pip fails (use this to deploy).
  auto  like pip, but when pip fails (offline) fall back to `copy` with a warning.
  copy  `functions/` only, no dependencies: synth checks and tests, not deployable.
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

from .config import FUNCTIONS_DIR, ROOT

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
        "--target",
        target,
        *deps,
    ]


def copy_functions(output_dir: str) -> None:
    shutil.copytree(FUNCTIONS_DIR, output_dir, ignore=_ignore, dirs_exist_ok=True)


@jsii.implements(ILocalBundling)
class LocalBundling:
    """Runs on the synth machine; CDK never falls back to Docker because this never returns False."""

    def __init__(self, mode: str, deps: list[str], warn=None):
        self.mode, self.deps, self.warn = mode, deps, warn or (lambda message: None)

    @jsii.member(jsii_name="tryBundle")
    def try_bundle(self, output_dir: str, *args, **kwargs) -> bool:
        if self.mode != "copy":
            result = subprocess.run(pip_command(output_dir, self.deps), capture_output=True, text=True)
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
                message = f"pip install for the Lambda asset failed: {' | '.join(detail)}"
                if self.mode == "pip":
                    raise BundlingError(message)
                self.warn(
                    f"{message}. Bundled functions/ WITHOUT dependencies: do not deploy this "
                    "(re-run online, or pass -c bundle=pip to make this an error)."
                )
                shutil.rmtree(output_dir, ignore_errors=True)
                Path(output_dir).mkdir(parents=True, exist_ok=True)
            shutil.rmtree(Path(output_dir) / "bin", ignore_errors=True)  # console scripts, unused
        copy_functions(output_dir)
        return True


def lambda_code(mode: str, powertools_from_layer: bool, warn=None) -> lambda_.Code:
    deps = requirements(powertools_from_layer)
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Only used if local bundling declines, which LocalBundling never does.
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{PYTHON_VERSION}"),
            local=LocalBundling(mode, deps, warn),
        ),
    )
