"""The audit trail: one DynamoDB item per action a workflow takes, keyed by execution."""

import itertools
import json
import uuid
from datetime import UTC, datetime

from migrator import clock

_sequence = itertools.count()


class AuditLog:
    def __init__(self, dynamodb, table: str, execution: str, target: str):
        self._dynamodb = dynamodb
        self._table = table
        self.execution = execution
        self.target = target

    def record(self, action: str, **detail) -> None:
        moment = datetime.fromtimestamp(clock.now(), UTC)
        at = moment.isoformat(timespec="milliseconds")
        sort_time = moment.isoformat(timespec="microseconds")
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": self.execution},
                # time first so a query returns the trail in order; the counter
                # orders one container's records within a microsecond and the
                # uuid keeps two containers' records apart
                "sk": {"S": f"{sort_time}#{next(_sequence):09d}#{uuid.uuid4().hex[:8]}"},
                "at": {"S": at},
                "target": {"S": self.target},
                "action": {"S": action},
                "detail": {"S": json.dumps(detail, default=str, sort_keys=True)},
            },
        )


def read_trail(dynamodb, table: str, execution: str) -> list[dict]:
    """Every record of one execution, oldest first."""
    paginator = dynamodb.get_paginator("query")
    records = []
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": execution}},
    ):
        for item in page["Items"]:
            records.append(
                {
                    "at": item["at"]["S"],
                    "target": item["target"]["S"],
                    "action": item["action"]["S"],
                    "detail": json.loads(item["detail"]["S"]),
                }
            )
    return records
