"""The run-state table's schema, defined once: the store (store_dynamodb), the CDK table
(infra/table.py), the local demo (local/demo.py) and the tests' tables all use it.
One partition per run (`run_id`), items by sort key `sk`, every item expiring by TTL."""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "run_id"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"


def create_table_params(name: str) -> dict[str, Any]:
    """CreateTable arguments (boto3) for a state table named `name`, billed on demand.
    Its TTL is switched on separately: `ttl_params(name)` for UpdateTimeToLive."""
    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def ttl_params(name: str) -> dict[str, Any]:
    """UpdateTimeToLive arguments (boto3) that make the items expire by `TTL_ATTRIBUTE`."""
    return {"TableName": name, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": TTL_ATTRIBUTE}}
