"""One name per concept, kept so: each S3/DynamoDB limit, the manifest format, the state
table schema, the AWS error classification and the uses of dependencies' private APIs
are each defined in one module (see the
comments there); this test fails when a second definition appears in code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = [p for d in ("functions", "infra") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]

HOMES = {
    # what (a regex over source lines) -> the one file allowed to hold it
    r"^\s*(MIN_PART_SIZE|MAX_PART_SIZE|MAX_PARTS|MAX_KEY_BYTES|MAX_LIST_KEYS|MAX_ITEM_BYTES)\s*=": "limits.py",
    r"^\s*(MAX_BATCH_WRITE_ITEMS|MAX_STATE_PAYLOAD_BYTES)\s*=|\b(5 \* 1024 \* MIB|5 \* MiB|5 \* MIB)\b": "limits.py",
    r"\.manifest\.jsonl|bucketzip-manifest/": "bucketzip/manifest.py",
    r"AttributeName[\"']?\s*[:=]\s*[\"'](run_id|sk|expires_at)[\"']|KeyType": "state_table.py",
    r"[\"']Error[\"']\]?\)?\.get\([\"']Code|\[[\"']Error[\"']\]\[[\"']Code": "s3errors.py",
    r"^\s*class DestinationExists\b|^\s*class RetryableError\b": "bucketzip/errors.py",
    r"_central_directory_header_data|_decode_filter_properties|structEndArchive|\.FileHeader\(": "private_apis.py",
}


@pytest.mark.parametrize("pattern,home", HOMES.items(), ids=list(HOMES.values()))
def test_each_definition_has_one_home(pattern, home):
    regex = re.compile(pattern)
    found = []
    for path in CODE:
        if str(path).endswith(home):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith(('"', "'")) else ""
            if regex.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, f"defined outside {home}:\n" + "\n".join(found)
