"""CloudTrail: who answered a gate with its raw task token.

AWS: CloudTrail records Step Functions' API calls with the caller's identity, source
IP, user agent and time; the execution history says only that a task succeeded or
failed, never who called SendTaskSuccess or SendTaskFailure. moto records no events
and has no LookupEvents. Here those two calls are recorded as CloudTrail events on the
simulated clock, the caller being the identity moto's STS gives the request's access
key (an IAM user's key names that user), and LookupEvents answers them: lookup
attributes, a time window, newest first, in pages. Nothing else is recorded: these
are the events the audit (migrator/fleet/report.py) asks for.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

from moto.cloudtrail.responses import CloudTrailResponse
from moto.sts.models import sts_backends
from moto.stepfunctions.responses import StepFunctionResponse
from moto.utilities.utils import get_partition

from migrator.workstation.local.fidelity.context import Context

RECORDED = {"send_task_success": "SendTaskSuccess", "send_task_failure": "SendTaskFailure"}
LOOKUP_PAGE, LOOKUP_PAGE_MAX = 50, 50
# LookupEvents' attribute keys, and where each is in an event
ATTRIBUTES = {"EventName": "eventName", "EventSource": "eventSource", "EventId": "eventID", "ReadOnly": "readOnly",
              "AccessKeyId": "userIdentity.accessKeyId", "Username": "userIdentity.userName"}


@dataclass
class CloudTrail:
    ctx: Context
    events: list[dict] = field(default_factory=list)

    def install(self) -> None:
        patch = self.ctx.patches.patch
        for action, name in RECORDED.items():
            patch(StepFunctionResponse, action, self._recording(getattr(StepFunctionResponse, action), name))
        patch(CloudTrailResponse, "lookup_events", lambda response: self._lookup(response))

    def _recording(self, original, name: str):
        def recorded(response):
            error = None
            try:
                return original(response)
            except Exception as failure:  # AWS records a refused call too, with its error code
                error = getattr(failure, "code", None) or type(failure).__name__
                raise
            finally:
                self._record(response, name, error)

        return recorded

    def _record(self, response, name: str, error: str | None) -> None:
        key = response.get_access_key()
        region = response.region
        user_id, arn, account = sts_backends[response.current_account][get_partition(region)].get_caller_identity(
            key, region)
        identity = {"type": "IAMUser" if ":user/" in arn else "AssumedRole", "principalId": user_id, "arn": arn,
                    "accountId": account, "accessKeyId": key}
        if ":user/" in arn:
            identity["userName"] = arn.rsplit("/", 1)[-1]
        parameters = {"taskToken": response._get_param("taskToken")}
        if name == "SendTaskFailure":
            parameters["error"] = response._get_param("error")
        request = getattr(response, "request", None)
        with self.ctx.lock:
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudtrail/{len(self.events)}/{parameters['taskToken']}"))
            event = {
                "eventVersion": "1.09", "userIdentity": identity,
                "eventTime": dt.datetime.fromtimestamp(int(self.ctx.clock.now()), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventSource": "states.amazonaws.com", "eventName": name, "awsRegion": region,
                "sourceIPAddress": getattr(request, "remote_addr", None) or "127.0.0.1",
                "userAgent": response.headers.get("User-Agent", ""), "requestParameters": parameters,
                "responseElements": None, "requestID": event_id, "eventID": event_id, "readOnly": False,
                "eventType": "AwsApiCall", "recipientAccountId": account,
            }
            if error:
                event["errorCode"] = error
            self.events.append(event)

    def _lookup(self, response) -> str:
        attributes = response._get_param("LookupAttributes") or []
        start, end = response._get_param("StartTime"), response._get_param("EndTime")
        with self.ctx.lock:
            found = [e for e in reversed(self.events) if _matches(e, attributes, start, end)]
        offset = int(response._get_param("NextToken") or 0)
        size = min(int(response._get_param("MaxResults") or LOOKUP_PAGE), LOOKUP_PAGE_MAX)
        page = found[offset:offset + size]
        answer = {"Events": [{
            "EventId": e["eventID"], "EventName": e["eventName"], "ReadOnly": "false",
            "AccessKeyId": e["userIdentity"]["accessKeyId"], "EventTime": _epoch(e["eventTime"]),
            "EventSource": e["eventSource"], "Username": e["userIdentity"].get("userName", ""), "Resources": [],
            "CloudTrailEvent": json.dumps(e)} for e in page]}
        if offset + size < len(found):
            answer["NextToken"] = str(offset + size)
        return json.dumps(answer)


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _field(event: dict, path: str):
    value = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return str(value).lower() if isinstance(value, bool) else value


def _matches(event: dict, attributes: list[dict], start, end) -> bool:
    moment = _epoch(event["eventTime"])
    if start is not None and moment < float(start) or end is not None and moment > float(end):
        return False
    return all(_field(event, ATTRIBUTES.get(a.get("AttributeKey"), "-")) == a.get("AttributeValue")
               for a in attributes)
