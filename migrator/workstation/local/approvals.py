"""Answers approval requests in the local runtime the way the scenario says.

It reads the notification topic through an SQS subscription, as a mailbox
would, and after the scenario's simulated delay does what a person does: opens
the approve or reject link from the email (the confirmation page) and submits
its form. Gates set to `ignore` are never answered and time out.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser

from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.scenario import Approvals


class ApprovalBot:
    def __init__(self, clock: SimClock, approvals: Approvals, sqs, sfn, queue_url: str):
        self.clock = clock
        self.approvals = approvals
        self.sqs = sqs
        self.sfn = sfn
        self.queue_url = queue_url
        self.messages: list[dict] = []  # everything published to the topic, in order
        self.decisions: list[dict] = []
        # Set by `--approvals manual`: every request goes to a person (here, this callback
        # shows its links) and the bot answers none.
        self.announce: Callable[[dict], None] | None = None
        self.on_request = None  # (target, gate) -> None: what else happens while a gate waits
        self._lock = threading.Lock()

    def poll(self) -> None:
        """Drain the queue; schedule an answer for every approval request."""
        with self._lock:
            while True:
                batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not batch:
                    return
                for message in batch:
                    text = json.loads(message["Body"])["Message"]
                    body = parse_message(text)
                    self.messages.append(body)
                    if body.get("kind") == "approval-request":
                        self._schedule(body)
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
                )

    def _schedule(self, request: dict) -> None:
        gate = f"{request['target']}/{request['gate']}"
        if self.on_request is not None:
            self.on_request(request["target"], request["gate"])
        if self.announce:
            self.announce(request)
            return
        decision = self.approvals.decision(gate)
        if decision == "ignore":
            return
        self.clock.call_later(self.approvals.after, lambda: self._answer(request, gate, decision))

    def _answer(self, request: dict, gate: str, decision: str) -> None:
        record = {"gate": gate, "decision": decision, "by": "scenario", "page": None}
        link = request["links"]["approve" if decision == "approve" else "reject"]
        try:
            with urllib.request.urlopen(link, timeout=30) as page:  # GET: the confirmation page
                form = _Form()
                form.feed(page.read().decode())
            fields = {**form.hidden, "approver": "scenario", "comment": "scenario approvals"}
            data = urllib.parse.urlencode(fields).encode()
            with urllib.request.urlopen(urllib.request.Request(link.split("?")[0], data=data), timeout=30) as done:
                record["page"] = done.status
        except OSError as error:  # expired or already answered: the page says so
            record["error"] = str(error)
        self.decisions.append(record)


class _Form(HTMLParser):
    """The hidden fields of the confirmation form."""

    def __init__(self):
        super().__init__()
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden":
            self.hidden[attributes["name"]] = attributes.get("value", "")


# A target's name may hold spaces (an instance's Name tag): everything up to " waits for".
REQUEST = re.compile(r"The AL2023 migration of (?P<target>.+?) waits for your decision at the gate '(?P<gate>[^']+)'")


def parse_message(text: str) -> dict:
    """An approval email (links) or a JSON notification."""
    found = REQUEST.search(text)
    if found:
        links = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", text, re.MULTILINE))
        return {"kind": "approval-request", "target": found["target"], "gate": found["gate"], "text": text,
                "links": {"approve": links.get("Approve"), "reject": links.get("Reject")}}
    try:
        return json.loads(text)
    except ValueError:
        return {"kind": "text", "text": text}


def approval_notice(request: dict, endpoint: str | None = None) -> str:
    """What `--approvals manual` prints for an approval email: the gate and its links."""
    approval_id = urllib.parse.urlparse(request["links"]["approve"]).path.rsplit("/", 1)[-1]
    lines = [f"approval needed: {request['gate']} of {request['target']}",
             f"  approve: {request['links']['approve']}", f"  reject:  {request['links']['reject']}"]
    if endpoint:
        lines.append(f"  or: al2023-migrate approvals approve {approval_id} --endpoint-url {endpoint}")
    return "\n".join(lines)
