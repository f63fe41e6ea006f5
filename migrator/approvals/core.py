"""Approvals people can trust.

A gate's task stores its task token under a short random id and emails two links
(approve, reject) that carry the id, the decision, an expiry and an HMAC signature,
never the token. GET shows a confirmation page and changes nothing (mail scanners
fetch every link); only the form's POST decides, once: a conditional write makes
the first decision the only one. The decision reaches the execution as
SendTaskSuccess (who, when, from where) or SendTaskFailure (`Rejected`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from migrator import clock
from migrator.aws import error_code

DECISIONS = ("approve", "reject")
APPROVER_MAX = 200  # characters of the approver's name or email, as the page's field allows
EXPIRY_DIGITS = 12  # a Unix time in seconds has 10 digits until the year 2286
SIGNATURE = re.compile(r"[0-9a-f]{64}")  # HMAC-SHA256, hex
PAST = {"approve": "approved", "reject": "rejected"}


def new_approval_id() -> str:
    """96 random bits in hex: an id a person types into `approvals approve ID` never starts with "-" (token_urlsafe's
    did, one in 32, and argparse took it for an option)."""
    return secrets.token_hex(12)


class LinkRefused(Exception):
    """A link that is forged, expired, used, closed or unknown. `reason` names which."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def sign(secret: bytes, approval_id: str, decision: str, expires: int) -> str:
    return hmac.new(secret, f"{approval_id}|{decision}|{expires}".encode(), hashlib.sha256).hexdigest()


def link(base_url: str, secret: bytes, approval_id: str, decision: str, expires: int) -> str:
    query = urlencode({"d": decision, "e": expires, "s": sign(secret, approval_id, decision, expires)})
    return f"{base_url.rstrip('/')}/approvals/{approval_id}?{query}"


def verify(secret: bytes, approval_id: str, decision: str, expires: str, signature: str) -> int:
    """The link's expiry if its signature is ours and it has not expired."""
    # Only ASCII digits (int() also reads "²" and fails on thousands of digits) and a hex signature
    # (compare_digest rejects non-ASCII text with a TypeError): anything else is a forged link, never an error.
    if (decision not in DECISIONS or not (expires.isascii() and expires.isdigit()) or len(expires) > EXPIRY_DIGITS
            or not SIGNATURE.fullmatch(signature or "")):
        raise LinkRefused("forged", "This link is not valid.")
    if not hmac.compare_digest(sign(secret, approval_id, decision, int(expires)), signature):
        raise LinkRefused("forged", "This link is not valid: its signature does not match.")
    if clock.now() > int(expires):
        raise LinkRefused("expired", "This link has expired; the gate counts as not approved.")
    return int(expires)


# The audit table's partition key of approval requests; IAM limits the approval functions to these items
# (stacks/permissions.py).
APPROVAL_KEY_PREFIX = "approval#"


@dataclass
class Approvals:
    """Approval requests in the audit table (pk `approval#<id>`), with the clients they need."""

    dynamodb: object
    sfn: object
    sns: object
    table: str
    topic: str
    secret: bytes
    base_url: str

    # (link_expires_at, not expires_at: the audit table's TTL must keep the record)
    def _key(self, approval_id: str) -> dict:
        return {"pk": {"S": f"{APPROVAL_KEY_PREFIX}{approval_id}"}, "sk": {"S": "request"}}

    def email_subscribers(self) -> list[str]:
        """Who else receives the email, for the confirmation page."""
        found = []
        for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.topic):
            found += [s["Endpoint"] for s in page["Subscriptions"] if s["Protocol"] == "email"]
        return sorted(found)

    def request(self, token: str, gate: str, target: str, execution: str, evidence: dict, timeout: int,
                notified: list[str]) -> dict:
        """Store the token under a new id and send the email with the two links."""
        approval_id = new_approval_id()
        expires = int(clock.now()) + timeout
        self.dynamodb.put_item(TableName=self.table, Item={
            **self._key(approval_id),
            "token": {"S": token}, "gate": {"S": gate}, "target": {"S": target}, "execution": {"S": execution},
            "evidence": {"S": json.dumps(evidence, default=str)}, "link_expires_at": {"N": str(expires)},
            "requested_at": {"N": str(int(clock.now()))}, "status": {"S": "pending"},
            "notified": {"SS": notified} if notified else {"NULL": True},
            "at": {"S": _iso(clock.now())}, "action": {"S": "approval-requested"},
            "detail": {"S": json.dumps({"gate": gate, "id": approval_id})},
        })
        links = {d: link(self.base_url, self.secret, approval_id, d, expires) for d in DECISIONS}
        self.sns.publish(TopicArn=self.topic, Subject=f"AL2023 migration: approve {gate} of {target}"[:100],
                         Message=email_text(gate, target, execution, evidence, links, expires),
                         MessageAttributes={"kind": {"DataType": "String", "StringValue": "approval-request"}})
        return {"approval_id": approval_id, "expires_at": expires}

    def get(self, approval_id: str) -> dict:
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(approval_id)).get("Item")
        if item is None:
            raise LinkRefused("unknown", "There is no such approval request.")
        return {
            "id": approval_id, "gate": item["gate"]["S"], "target": item["target"]["S"],
            "execution": item["execution"]["S"], "evidence": json.loads(item["evidence"]["S"]),
            "expires_at": int(item["link_expires_at"]["N"]), "status": item["status"]["S"],
            "notified": item.get("notified", {}).get("SS", []), "token": item["token"]["S"],
            "decided_by": item.get("decided_by", {}).get("S"), "decision": item.get("decision", {}).get("S"),
            "closed_reason": item.get("closed_reason", {}).get("S"),
        }

    def check_link(self, approval_id: str, decision: str, expires: str, signature: str) -> dict:
        verify(self.secret, approval_id, decision, expires, signature)
        request = self.get(approval_id)
        self._refuse_if_closed(request)
        if request["status"] != "pending":
            raise LinkRefused("used", f"This request was already answered: {request['decision']} by "
                                      f"{request['decided_by']}. Nothing was changed.")
        return request

    def decide(self, approval_id: str, decision: str, approver: str, source_ip: str = "", user_agent: str = "",
               comment: str = "") -> dict:
        """The one and only decision: the conditional write wins once, then the callback."""
        if decision not in DECISIONS:
            raise LinkRefused("forged", "Unknown decision.")
        if len(approver) > APPROVER_MAX:
            raise LinkRefused("forged", f"The approver's name is longer than {APPROVER_MAX} characters.")
        request = self.get(approval_id)
        self._refuse_if_closed(request)
        now = clock.now()
        record = {"decision": decision, "by": approver, "at": _iso(now), "source_ip": source_ip,
                  "user_agent": user_agent[:300], "comment": comment[:1000], "approval_id": approval_id}
        try:
            item = self.dynamodb.update_item(
                TableName=self.table, Key=self._key(approval_id),
                UpdateExpression="SET #s = :used, decision = :d, decided_by = :by, decided_at = :at, #detail = :detail",
                ConditionExpression="#s = :pending AND link_expires_at > :now",
                ExpressionAttributeNames={"#s": "status", "#detail": "detail"},
                ExpressionAttributeValues={":used": {"S": "used"}, ":pending": {"S": "pending"},
                                           ":d": {"S": decision}, ":by": {"S": approver}, ":at": {"S": record["at"]},
                                           ":now": {"N": str(int(now))}, ":detail": {"S": json.dumps(record)}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            current = self.get(approval_id)
            if current["status"] != "pending":
                raise LinkRefused("used", "This request was already answered. Nothing was changed.") from None
            raise LinkRefused("expired", "This request has expired. Nothing was changed.") from None
        token = item["token"]["S"]
        try:
            if decision == "approve":
                self.sfn.send_task_success(taskToken=token, output=json.dumps(record))
            else:
                reason = f"rejected by {approver}" + (f": {comment}" if comment else "")
                self.sfn.send_task_failure(taskToken=token, error="Rejected", cause=reason)
        except ClientError as error:  # the execution timed out or stopped meanwhile
            record["callback_error"] = error_code(error)
        return record

    def _refuse_if_closed(self, request: dict) -> None:
        closed = request["closed_reason"] or self.gate_closed(request)
        if closed:
            raise LinkRefused("closed", f"{closed}. Nothing was changed.")

    def gate_closed(self, request: dict) -> str | None:
        """Why the gate no longer waits for this request, or None while it does.

        The gate's task can be answered without us (SendTaskSuccess/Failure with the raw
        token, as the console and CLI do), time out, or end with its execution. A
        heartbeat asks Step Functions without answering: AWS answers TaskTimedOut once
        the task is closed (moto: InvalidToken when no running execution holds it)."""
        if request["status"] != "pending":
            return None
        try:
            self.sfn.send_task_heartbeat(taskToken=request["token"])
            return None
        except ClientError as error:
            if error_code(error) not in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                raise
        try:
            status = self.sfn.describe_execution(executionArn=request["execution"])["status"]
        except ClientError:  # the approval functions may not look (IAM): say what is certain
            status = None
        if status == "RUNNING":
            reason = "The gate was already answered through the Step Functions API (with its task token)"
        elif status:
            reason = f"The execution ended ({status}) before this answer"
        else:
            reason = "The gate no longer waits: answered through the Step Functions API, or its execution ended"
        try:  # the request leaves the pending list, saying why
            self.dynamodb.update_item(
                TableName=self.table, Key=self._key(request["id"]),
                UpdateExpression="SET #s = :closed, closed_reason = :why", ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":closed": {"S": "closed"}, ":pending": {"S": "pending"},
                                           ":why": {"S": reason}})
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":  # someone decided meanwhile
                raise
        return reason

    def pending(self) -> list[dict]:
        """Requests whose gate still waits: reconciled with Step Functions, so a gate
        answered or ended elsewhere is not listed."""
        found = []
        for page in self.dynamodb.get_paginator("scan").paginate(
                TableName=self.table, FilterExpression="begins_with(pk, :p) AND #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":p": {"S": APPROVAL_KEY_PREFIX}, ":pending": {"S": "pending"}}):
            for item in page["Items"]:
                request = self.get(item["pk"]["S"].removeprefix(APPROVAL_KEY_PREFIX))
                if not self.gate_closed(request):
                    found.append(request)
        return sorted(found, key=lambda r: r["expires_at"])

    def remind(self, before_seconds: int) -> list[str]:
        """One reminder for each pending request that expires within `before_seconds`."""
        now = clock.now()
        reminded = []
        for request in self.pending():
            if request["expires_at"] - now > before_seconds:
                continue
            try:
                self.dynamodb.update_item(
                    TableName=self.table, Key=self._key(request["id"]), UpdateExpression="SET reminded = :t",
                    ConditionExpression="attribute_not_exists(reminded)", ExpressionAttributeValues={":t": {"BOOL": True}})
            except ClientError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    continue
                raise
            left = max(0, int(request["expires_at"] - now)) // 60
            self.sns.publish(TopicArn=self.topic, Subject=f"Reminder: {request['gate']} of {request['target']}"[:100],
                             Message=f"The approval {request['gate']} of {request['target']} expires in {left} minutes. "
                                     "Unanswered, it counts as rejected and the change is rolled back.",
                             MessageAttributes={"kind": {"DataType": "String", "StringValue": "approval-reminder"}})
            reminded.append(request["id"])
        return reminded


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def email_text(gate: str, target: str, execution: str, evidence: dict, links: dict, expires: int) -> str:
    lines = [
        f"The AL2023 migration of {target} waits for your decision at the gate '{gate}'.",
        "",
        "Evidence:",
        *[f"  {key}: {json.dumps(value, default=str)}" for key, value in evidence.items()],
        "",
        f"Approve: {links['approve']}",
        f"Reject:  {links['reject']}",
        "",
        f"Each link opens a confirmation page; nothing happens until you confirm there. The links expire at "
        f"{_iso(expires)}; unanswered, the gate counts as rejected and the change is rolled back.",
        f"Execution: {execution}",
    ]
    return "\n".join(lines)
