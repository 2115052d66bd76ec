#!/usr/bin/env bash
# One entry point for a fresh machine: installs what bucketzip needs (apt + pip, idempotent),
# then runs what was asked:
#   bash scripts/dev.sh demo     the serverless workflow end to end on an embedded S3 emulator
#   bash scripts/dev.sh test     the test suite (not the `big` tests: add -m big for those)
#   bash scripts/dev.sh bench    the benchmarks (see README)
#   bash scripts/dev.sh lint     ruff check, ruff format --check and mypy (config: pyproject.toml)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
# Debian's own python3 is "externally managed" (PEP 668); these machines are disposable.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_system() {
    local packages=()
    command -v unzip >/dev/null || packages+=(unzip)
    command -v zip >/dev/null || packages+=(zip)
    command -v 7z >/dev/null || packages+=(p7zip-full)
    command -v bsdtar >/dev/null || packages+=(libarchive-tools)
    command -v java >/dev/null || packages+=(default-jdk-headless)
    command -v node >/dev/null || packages+=(nodejs)
    command -v python3 >/dev/null || packages+=(python3 python3-pip python3-venv)
    python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
    if [ ${#packages[@]} -gt 0 ]; then
        sudo_if_needed apt-get update
        sudo_if_needed apt-get install -y --no-install-recommends "${packages[@]}"
    fi
}

install_python() {
    python3 -m pip install -q -r requirements.txt
    python3 -m pip install -q -e '.[local]'
}

install_checkov() {  # the IaC scanner the infra tests run: its own venv (it pins an older boto3)
    [ -x .venv-checkov/bin/checkov ] && return 0
    python3 -m venv .venv-checkov
    .venv-checkov/bin/python -m pip install -q -r requirements-checkov.txt
}

print_versions() {  # in CI logs: which readers and packages the results speak for
    python3 --version; java -version 2>&1 | sed -n 1p; unzip -v | sed -n 1p
    { 7z 2>&1 || true; } | sed -n 2,3p; bsdtar --version
    python3 -m pip list 2>/dev/null | grep -iE '^(boto3|moto|pytest|hypothesis|zipstream-ng|isal|aws-cdk-lib) ' || true
}

case "${1:-}" in
    demo)  install_system; install_python; shift; exec bucketzip demo "$@" ;;
    test)  install_system; install_python; install_checkov; shift
           if [ -z "${CI:-}" ]; then exec python3 -m pytest -q "$@"; fi
           # In CI: versions, the 10 slowest tests, and wall time, CPU and peak RSS of the
           # whole process tree (readers, Java, workers), so a regression shows in the log.
           print_versions
           exec python3 scripts/peak_rss.py -- python3 -m pytest -q --durations=10 "$@" ;;
    bench) install_system; install_python; shift; exec python3 -m bench "$@" ;;
    lint)  install_python
           python3 -m ruff check . && python3 -m ruff format --check . && python3 -m mypy ;;
    *) echo "usage: bash scripts/dev.sh demo|test|bench|lint [args]" >&2; exit 2 ;;
esac
