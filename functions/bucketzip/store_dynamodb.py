"""State in DynamoDB (schema: state_table): one partition per run (`run_id`), items by sort key `sk`:
  state                      the RunState blob + `version` (every write conditional on it)
                             + `suspended` (BOOL: kept for a resume; cleanup leaves it)
  commit#000000000012        which attempt's fragment commit 12 made visible
  frag#<attempt>#0003        fragment pieces (< 400 KB items), invisible until committed
  name#<sha256 of name>      entry-name claims (collision guard)
  result                     a finished run's result, all that is left of it (retried Finish)
Every item carries `expires_at` (TTL) so abandoned runs disappear on their own."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3

from .errors import RetryableError, RunExists, RunNotFound, StaleState
from .limits import MAX_BATCH_WRITE_ITEMS
from .s3errors import AWS_ERRORS, cancellation_reasons, error_code, translate_dynamodb
from .state import RunState
from .state_table import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
from .store import StateStore, split_pieces

# BatchWriteItem calls per batch while DynamoDB leaves items unprocessed (throttling).
UNPROCESSED_ATTEMPTS = 8


class DynamoStateStore(StateStore):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None, ttl_days: float = 14):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")
        self.ttl_seconds = int(ttl_days * 86400)

    def _expires(self) -> dict:
        return {"N": str(int(time.time()) + self.ttl_seconds)}

    def _call(self, method: str, run_id: str, *, table: bool = True, condition_ok: bool = False, **kwargs):
        """One DynamoDB call; failures become bucketzip errors naming the run. With
        `condition_ok`, a failed condition is re-raised as is, for the caller to answer."""
        try:
            if table:
                kwargs["TableName"] = self.table
            return getattr(self.client, method)(**kwargs)
        except AWS_ERRORS as exc:
            if condition_ok and _condition_failed(exc):
                raise
            raise translate_dynamodb(exc, table=self.table, action=method, run_id=run_id) from None

    def create(self, state: RunState) -> None:
        try:
            self._call(
                "put_item",
                state.run_id,
                condition_ok=True,
                Item={
                    **self._key(state.run_id, "state"),
                    "version": {"N": str(state.version)},
                    "suspended": {"BOOL": bool(state.suspended)},
                    "data": {"B": state.to_bytes()},
                    TTL_ATTRIBUTE: self._expires(),
                },
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
            )
        except AWS_ERRORS:  # only a failed condition gets here
            raise RunExists(f"run {state.run_id}: state exists already") from None

    def load(self, run_id: str) -> RunState:
        item = self._call("get_item", run_id, Key=self._key(run_id, "state"), ConsistentRead=True).get("Item")
        if not item:
            raise RunNotFound(f"run {run_id}: no state (finished, aborted or never started)")
        return RunState.from_bytes(item["data"]["B"])

    def current_version(self, run_id: str) -> int | None:
        item = self._call(
            "get_item", run_id, Key=self._key(run_id, "state"), ConsistentRead=True, ProjectionExpression="version"
        ).get("Item")
        return int(item["version"]["N"]) if item else None

    def put_fragment(self, run_id: str, attempt: str, blob: bytes) -> int:
        pieces = split_pieces(blob)
        for index, piece in enumerate(pieces):
            self._call(
                "put_item",
                run_id,
                Item={
                    **self._key(run_id, f"frag#{attempt}#{index:04d}"),
                    "data": {"B": piece},
                    TTL_ATTRIBUTE: self._expires(),
                },
            )
        return len(pieces)

    def commit(self, state: RunState, expected_version: int, attempt: str | None, pieces: int) -> None:
        new_version = expected_version + 1
        state.version = new_version
        update = {
            "Update": {
                "TableName": self.table,
                "Key": self._key(state.run_id, "state"),
                "UpdateExpression": f"SET #d = :d, version = :new, {TTL_ATTRIBUTE} = :exp, suspended = :s",
                "ConditionExpression": "version = :old",
                "ExpressionAttributeNames": {"#d": "data"},
                "ExpressionAttributeValues": {
                    ":d": {"B": state.to_bytes()},
                    ":new": {"N": str(new_version)},
                    ":old": {"N": str(expected_version)},
                    ":exp": self._expires(),
                    ":s": {"BOOL": bool(state.suspended)},
                },
            }
        }
        items = [update]
        if attempt is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **self._key(state.run_id, f"commit#{new_version:012d}"),
                            "attempt": {"S": attempt},
                            "pieces": {"N": str(pieces)},
                            TTL_ATTRIBUTE: self._expires(),
                        },
                    }
                }
            )
        try:
            self._call("transact_write_items", state.run_id, table=False, condition_ok=True, TransactItems=items)
        except AWS_ERRORS:  # only a failed condition gets here: the fencing check
            state.version = expected_version
            raise StaleState(
                f"run {state.run_id}: another step committed first (this step started from version {expected_version})"
            ) from None
        except BaseException:
            state.version = expected_version
            raise

    def _query(self, run_id: str, prefix: str, **extra) -> Iterator[dict]:
        values = {":r": {"S": run_id}}
        condition = f"{PARTITION_KEY} = :r"
        if prefix:
            condition += f" AND begins_with({SORT_KEY}, :p)"
            values[":p"] = {"S": prefix}
        kwargs = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
            **extra,
        }
        while True:
            page = self._call("query", run_id, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def iter_fragments(self, run_id: str, start: int = 0) -> Iterator[tuple[int, bytes]]:
        for index, commit in enumerate(self._query(run_id, "commit#")):
            if index < start:
                continue
            attempt, count = commit["attempt"]["S"], int(commit["pieces"]["N"])
            pieces = [item["data"]["B"] for item in self._query(run_id, f"frag#{attempt}#")]
            if len(pieces) != count:
                raise RunNotFound(f"run {run_id}: fragment {attempt} has {len(pieces)} of {count} pieces")
            yield index, b"".join(pieces)

    def claim_name(self, run_id: str, name: str, key: str) -> bool:
        item_key = self._key(run_id, "name#" + hashlib.sha256(name.encode()).hexdigest())
        try:
            self._call(
                "put_item",
                run_id,
                condition_ok=True,
                Item={**item_key, "key": {"S": key}, TTL_ATTRIBUTE: self._expires()},
                ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
            )
            return True
        except AWS_ERRORS:  # only a failed condition gets here: the name is claimed
            pass
        item = self._call("get_item", run_id, Key=item_key, ConsistentRead=True).get("Item", {})
        return item.get("key", {}).get("S") == key

    def delete_run(self, run_id: str) -> None:
        """Every item but a finished run's `result` (a retried Finish answers from it; the
        TTL removes it). The `state` item goes last: a call that dies half-way leaves the
        run loadable, and its retry deletes the rest."""
        keys = [
            {PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]}
            for item in self._query(run_id, "", ProjectionExpression=f"{PARTITION_KEY}, {SORT_KEY}")
            if item[SORT_KEY]["S"] != "result"
        ]
        keys.sort(key=lambda k: k[SORT_KEY]["S"] == "state")  # stable: the state item last
        for i in range(0, len(keys), MAX_BATCH_WRITE_ITEMS):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[i : i + MAX_BATCH_WRITE_ITEMS]]
            for attempt in range(UNPROCESSED_ATTEMPTS):
                response = self._call("batch_write_item", run_id, table=False, RequestItems={self.table: requests})
                requests = response.get("UnprocessedItems", {}).get(self.table, [])
                if not requests:
                    break
                # Unprocessed items are DynamoDB throttling the batch: back off, don't spin.
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise RetryableError(
                    f"DynamoDB batch_write_item on table {self.table!r} for run {run_id}: {len(requests)} deletes "
                    f"still unprocessed after {UNPROCESSED_ATTEMPTS} attempts (throttled)"
                )

    def record_result(self, run_id: str, result: dict) -> None:
        """Written as soon as the archive is complete, before the manifest and the deletes:
        after delete_run it is the run's one remaining item, gone with the TTL."""
        self._call(
            "put_item",
            run_id,
            Item={**self._key(run_id, "result"), "data": {"S": json.dumps(result)}, TTL_ATTRIBUTE: self._expires()},
        )

    def load_result(self, run_id: str) -> dict | None:
        item = self._call("get_item", run_id, Key=self._key(run_id, "result"), ConsistentRead=True).get("Item")
        return json.loads(item["data"]["S"]) if item else None

    @staticmethod
    def _key(run_id: str, sk: str) -> dict:
        return {PARTITION_KEY: {"S": run_id}, SORT_KEY: {"S": sk}}


def _condition_failed(exc: BaseException) -> bool:
    """A ConditionExpression was false (a transaction: one of its items' was)."""
    code = error_code(exc)
    return code == "ConditionalCheckFailedException" or (
        code == "TransactionCanceledException" and "ConditionalCheckFailed" in cancellation_reasons(exc)
    )
