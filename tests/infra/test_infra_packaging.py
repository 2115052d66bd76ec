"""The Lambda asset: functions/ (only what Lambda runs) plus its dependencies for Python 3.14
on arm64, pinned by lambda-constraints.txt and byte-compiled, built by local bundling (no
Docker). Real pip runs only with BUCKETZIP_TEST_BUNDLE=1 (needs PyPI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from infra import lock, packaging
from infra.config import FUNCTION_NAMES, FUNCTIONS_DIR


def offline(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")


def assert_functions_copied(out: Path, compiled: bool = False):
    for name in FUNCTION_NAMES:
        assert (out / "handlers" / f"{name}.py").is_file()
    assert (out / "bucketzip" / "__init__.py").is_file()
    # what Lambda does not run stays out: the command line, the emulator harness, the reading tools
    for left_out in ("cli", "local", "reading"):
        assert not (out / "bucketzip" / left_out).exists(), left_out
    assert not list(out.rglob("moto*")) and not list(out.rglob("*.egg-info"))
    assert bool(list(out.rglob("*.pyc"))) == compiled


def test_requirements_come_from_pyproject():
    deps = packaging.requirements(powertools_from_layer=False)
    names = [d.split("[")[0].split(">")[0].split("=")[0].lower() for d in deps]
    assert {"zipstream-ng", "isal", "aws-lambda-powertools"} <= set(names)
    without = packaging.requirements(powertools_from_layer=True)
    assert not any(d.lower().startswith("aws-lambda-powertools") for d in without)
    assert len(without) == len(deps) - 1


def test_pip_targets_lambda_arm64_python():
    command = packaging.pip_command("/out", ["isal"])
    assert command[-3:] == ["--target", "/out", "isal"] or command[-1] == "isal"
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.14" == packaging.RUNTIME.name[len("python") :]
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms and all(p.endswith("_aarch64") for p in platforms)
    assert "manylinux2014_aarch64" in platforms


def test_synthesized_asset_is_the_functions_tree(main):
    (asset,) = [p for p in main.outdir.glob("asset.*") if p.is_dir()]
    assert_functions_copied(asset)


def test_copy_mode(tmp_path):
    assert packaging.LocalBundling("copy", ["never-installed"]).try_bundle(str(tmp_path)) is True
    assert_functions_copied(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in FUNCTIONS_DIR.iterdir() if p.name != "__pycache__" and not p.name.endswith(".egg-info")
    )


def test_pip_is_the_default_and_auto_is_gone():
    from infra.config import cdk_json_context, load_config

    assert cdk_json_context()["bundle"] == "pip" and load_config({}).bundle == "pip"
    with pytest.raises(packaging.BundlingError, match="not one of pip, copy"):
        packaging.LocalBundling("auto", [])


def test_code_only_template_refuses_every_deployment(any_synth):
    (assertion,) = any_synth.template["Rules"]["CodeOnlyAssetIsNotDeployable"]["Assertions"]
    left, right = assertion["Assert"]["Fn::Equals"]
    assert left != right  # always false: CloudFormation refuses the create or update
    assert "checks only" in assertion["AssertDescription"]


def test_pip_installs_with_the_constraints_file():
    command = packaging.pip_command("/out", ["isal"])
    assert command[command.index("--constraint") + 1] == str(packaging.CONSTRAINTS)
    assert packaging.CONSTRAINTS.name == "lambda-constraints.txt"


def test_constraints_pin_the_versions_the_tests_run_with():
    """lambda-constraints.txt is what `python -m infra.lock` writes from this environment:
    every runtime dependency (transitively, for Lambda's platform), at the installed version."""
    text = lock.CONSTRAINTS_PATH.read_text()
    assert text == lock.render(), "stale lambda-constraints.txt: run `python -m infra.lock`"
    pins = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    assert {"boto3", "botocore", "zipstream-ng", "isal", "aws-lambda-powertools", "pydantic", "pydantic-core"} <= set(
        pins
    )
    assert "moto" not in pins and "pytest" not in pins  # test-only packages stay out


def test_byte_compile_writes_unchecked_hash_pycs_with_the_given_python(tmp_path):
    packaging.copy_functions(str(tmp_path))
    packaging.byte_compile(str(tmp_path), sys.executable)  # deploying compiles with python3.14
    tag = sys.implementation.cache_tag
    pycs = list((tmp_path / "handlers" / "__pycache__").glob(f"step.{tag}.pyc"))
    assert len(pycs) == 1
    flags = int.from_bytes(pycs[0].read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source: used as is from /var/task
    assert packaging.compile_command("/out")[0] == "python3.14"  # the runtime's Python by default


def test_byte_compile_without_the_runtime_python_fails_synth(tmp_path):
    with pytest.raises(packaging.BundlingError, match="needs python9.99"):
        packaging.byte_compile(str(tmp_path), "python9.99")


def test_pip_mode_fails_synth_when_pip_fails(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(packaging.BundlingError, match="pip install for the Lambda asset failed"):
        packaging.LocalBundling("pip", ["bucketzip-no-such-package"]).try_bundle(str(tmp_path))
    assert not (tmp_path / "handlers").exists()  # nothing half-built to deploy


@pytest.mark.skipif(os.environ.get("BUCKETZIP_TEST_BUNDLE") != "1", reason="set BUCKETZIP_TEST_BUNDLE=1 (uses PyPI)")
def test_real_pip_bundle_installs_aarch64_wheels(tmp_path):
    deps = packaging.requirements(powertools_from_layer=False)
    compiler = os.environ.get("BUCKETZIP_TEST_COMPILER", packaging.COMPILER)
    assert packaging.LocalBundling("pip", deps, compiler).try_bundle(str(tmp_path)) is True
    assert_functions_copied(tmp_path, compiled=True)
    pins = dict(line.split("==") for line in lock.render().splitlines() if line and not line.startswith("#"))
    stems = [p.name.removesuffix(".dist-info").split("-", 1) for p in tmp_path.glob("*.dist-info")]
    installed = {name.lower().replace("_", "-"): version for name, version in stems}
    assert {name: installed.get(name) for name in pins} == pins  # exactly the locked versions
    for package in ("zipstream", "isal", "aws_lambda_powertools", "pydantic_core"):
        assert (tmp_path / package).is_dir(), package
    assert list((tmp_path / "isal").glob("*cpython-314-aarch64-linux-gnu.so"))
    assert not (tmp_path / "bin").exists()
