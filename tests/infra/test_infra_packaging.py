"""The Lambda asset: functions/ plus its dependencies for Python 3.14 on arm64, built by
local bundling (no Docker). Real pip runs only with BUCKETZIP_TEST_BUNDLE=1 (needs PyPI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra import packaging
from infra.config import FUNCTIONS_DIR


def offline(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")


def assert_functions_copied(out: Path):
    for name in ("start", "step", "finish", "abort"):
        assert (out / "handlers" / f"{name}.py").is_file()
    assert (out / "bucketzip" / "__init__.py").is_file()
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))


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


def test_auto_mode_falls_back_with_a_warning_when_pip_fails(tmp_path, monkeypatch):
    offline(monkeypatch)
    warnings = []
    bundler = packaging.LocalBundling("auto", ["bucketzip-no-such-package"], warnings.append)
    assert bundler.try_bundle(str(tmp_path)) is True
    assert_functions_copied(tmp_path)
    (warning,) = warnings
    assert "pip install for the Lambda asset failed" in warning and "WITHOUT dependencies" in warning


def test_pip_mode_fails_synth_when_pip_fails(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(packaging.BundlingError, match="pip install for the Lambda asset failed"):
        packaging.LocalBundling("pip", ["bucketzip-no-such-package"]).try_bundle(str(tmp_path))


@pytest.mark.skipif(os.environ.get("BUCKETZIP_TEST_BUNDLE") != "1", reason="set BUCKETZIP_TEST_BUNDLE=1 (uses PyPI)")
def test_real_pip_bundle_installs_aarch64_wheels(tmp_path):
    deps = packaging.requirements(powertools_from_layer=False)
    assert packaging.LocalBundling("pip", deps).try_bundle(str(tmp_path)) is True
    assert_functions_copied(tmp_path)
    for package in ("zipstream", "isal", "aws_lambda_powertools", "pydantic_core"):
        assert (tmp_path / package).is_dir(), package
    assert list((tmp_path / "isal").glob("*cpython-314-aarch64-linux-gnu.so"))
    assert not (tmp_path / "bin").exists()
