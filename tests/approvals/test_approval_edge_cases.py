"""Approvals without edge cases (issue 13): malformed links get a 4xx page, the approver is length-limited on the
server, a decision too late says so, the API's responses stay out of traces, names with spaces reach the bot."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import quote

from migrator.approvals.core import APPROVER_MAX, email_text
from migrator.wiring import approvals
from migrator.workstation.local.approvals import parse_message
from tests.approvals.test_approval_links import GATED, _open, _request, _submit
from tests.conftest import running


def _with(url: str, name: str, value: str) -> str:
    return re.sub(rf"([?&]{name}=)[^&]*", lambda m: m.group(1) + quote(value), url)


def test_malformed_expiry_signature_or_decision_get_a_4xx_page_and_change_nothing():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        url = email["links"]["approve"]
        malformed = [_with(url, "e", "²"), _with(url, "e", "9" * 5000), _with(url, "s", "é" * 64),
                     _with(url, "s", "ä"), _with(url, "d", "maybe"), _with(url, "d", "")]
        for bad in malformed:
            status, page = _open(bad)
            assert 400 <= status < 500 and "Invalid link" in page, (bad[:120], status)
            status, page = _open(bad.split("?")[0], bad.split("?")[1].encode())  # the same as the form's POST
            assert 400 <= status < 500, (bad[:120], status)
        assert rt.status(run)["status"] == "RUNNING"


def test_an_approver_longer_than_the_limit_is_refused_by_the_server():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        url = email["links"]["approve"]
        status, page = _submit(url, _open(url)[1], approver="a" * (APPROVER_MAX + 1))
        assert status == 400 and f"at most {APPROVER_MAX} characters" in page
        assert rt.status(run)["status"] == "RUNNING"
        status, page = _submit(url, _open(url)[1], approver="a" * APPROVER_MAX)
        assert status == 200 and "approved by" in page


def test_a_decision_after_the_execution_ended_says_it_changed_nothing():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        url = email["links"]["approve"]
        page = _open(url)[1]
        # The execution ends while the page is open (here: its task answered from elsewhere, so it rolls back).
        token = approvals().get(url.split("/approvals/")[1].split("?")[0])["token"]
        rt.client("stepfunctions").send_task_failure(taskToken=token, error="Rejected", cause="from the console")
        assert rt.wait([run])[run.execution_arn]["status"] != "RUNNING"
        status, outcome = _submit(url, page, approver="alice@example.com")
        # refused before anything is recorded: Step Functions says the gate no longer waits
        assert status == 409
        assert "execution ended (FAILED)" in outcome and "Nothing was changed" in outcome
        assert "continues" not in outcome


class _Subsegment:
    """Records what the tracer would send to X-Ray."""

    def __init__(self):
        self.metadata: list = []

    def put_metadata(self, key, value, namespace="default"):
        self.metadata.append((key, value))

    def put_annotation(self, key, value):
        pass

    def add_exception(self, exception, stack, remote=False):
        pass


def test_the_approval_api_never_records_its_responses_in_traces(monkeypatch):
    from migrator.observability import tracer
    from migrator.workflows import APPROVALS_API
    from migrator.workstation.local.fidelity.awslambda import LambdaContext

    with running([{"name": "web", "size": 2}], **GATED) as rt:
        _, email = _request(rt)
        url = email["links"]["approve"]
        path, query = "/approvals/" + url.split("/approvals/", 1)[1].split("?")[0], url.split("?")[1]
        recorded = _Subsegment()

        @contextlib.contextmanager
        def in_subsegment(name=None, **kwargs):
            yield recorded

        monkeypatch.setattr(tracer.provider, "in_subsegment", in_subsegment)
        event = {"resource": "/approvals/{approval_id}", "path": path, "httpMethod": "GET", "headers": {},
                 "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")),
                 "pathParameters": {"approval_id": path.rsplit("/", 1)[1]}, "body": None, "isBase64Encoded": False,
                 "requestContext": {"identity": {"sourceIp": "192.0.2.1"}, "stage": "prod", "httpMethod": "GET",
                                    "path": path, "resourcePath": "/approvals/{approval_id}"}}
        response = APPROVALS_API.load()(event, LambdaContext("al2023-approvals-api"))
        assert response["statusCode"] == 200 and "name='s'" in response["body"]  # the signed form
        signature = re.search(r"s=([0-9a-f]+)", query).group(1)
        assert signature not in repr(recorded.metadata)


def test_the_bot_reads_an_approval_email_whose_target_has_spaces():
    links = {"approve": "https://x/approvals/a?d=approve", "reject": "https://x/approvals/a?d=reject"}
    text = email_text("before-cutover", "standalone/db server 1", "arn:exec", {"ok": True}, links, 2_000_000_000)
    parsed = parse_message(text)
    assert (parsed["target"], parsed["gate"]) == ("standalone/db server 1", "before-cutover")
    assert parsed["links"] == links
