"""Answers approval requests in the local runtime the way the scenario says.

It reads the notification topic through an SQS subscription, as any consumer
of the topic would, and answers with SendTaskSuccess / SendTaskFailure after
the scenario's simulated delay. Gates set to `ignore` are never answered and
time out.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

from botocore.exceptions import ClientError

from migrator.local.clock import SimClock
from migrator.local.scenario import Approvals


class ApprovalBot:
    def __init__(self, clock: SimClock, approvals: Approvals, sqs, sfn, queue_url: str):
        self.clock = clock
        self.approvals = approvals
        self.sqs = sqs
        self.sfn = sfn
        self.queue_url = queue_url
        self.messages: list[dict] = []  # everything published to the topic, in order
        self.decisions: list[dict] = []
        self._lock = threading.Lock()

    def poll(self) -> None:
        """Drain the queue; schedule an answer for every approval request."""
        with self._lock:
            while True:
                batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not batch:
                    return
                self.clock.touch()
                for message in batch:
                    body = json.loads(json.loads(message["Body"])["Message"])
                    self.messages.append(body)
                    if body.get("kind") == "approval-request":
                        self._schedule(body)
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
                )

    def _schedule(self, request: dict) -> None:
        gate = f"{request['target']}/{request['gate']}"
        decision = self.approvals.decision(gate)
        if decision == "ignore":
            return
        self.clock.call_later(self.approvals.after, lambda: self._answer(request, gate, decision))

    def _answer(self, request: dict, gate: str, decision: str) -> None:
        at = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).isoformat()
        record = {"gate": gate, "decision": decision, "by": "scenario", "at": at, "execution": request["execution"]}
        self.decisions.append(record)
        try:
            if decision == "approve":
                self.sfn.send_task_success(taskToken=request["task_token"], output=json.dumps(record))
            else:
                self.sfn.send_task_failure(taskToken=request["task_token"], error="Rejected",
                                           cause=f"{gate} rejected by the scenario's approvals")
        except ClientError as error:  # the gate timed out or the run was stopped first
            record["error"] = str(error)
