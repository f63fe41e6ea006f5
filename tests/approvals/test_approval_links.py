"""Signed links, expiry, single use, forged and replayed links, GET never acting."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from migrator.approvals.core import LinkRefused, link, sign, verify
from migrator.wiring import approvals
from tests.conftest import eventually, running

SECRET = b"k" * 32


def test_a_signature_covers_the_id_the_decision_and_the_expiry():
    good = sign(SECRET, "abc", "approve", 2_000_000_000)
    assert verify(SECRET, "abc", "approve", "2000000000", good) == 2_000_000_000
    for approval_id, decision, expires in (("abd", "approve", "2000000000"), ("abc", "reject", "2000000000"),
                                           ("abc", "approve", "2000000001")):
        with pytest.raises(LinkRefused) as forged:
            verify(SECRET, approval_id, decision, expires, good)
        assert forged.value.reason == "forged"
    with pytest.raises(LinkRefused):
        verify(b"another secret", "abc", "approve", "2000000000", good)


def test_an_expired_link_is_refused():
    expired = 1_000
    with pytest.raises(LinkRefused) as late:
        verify(SECRET, "abc", "approve", str(expired), sign(SECRET, "abc", "approve", expired))
    assert late.value.reason == "expired"


def test_links_never_carry_the_token():
    url = link("https://api.example.com/prod", SECRET, "abc", "approve", 2_000_000_000)
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/prod/approvals/abc" and set(query) == {"d", "e", "s"}


def _request(rt, token="TOKEN-THAT-MUST-NOT-LEAK"):
    """A real gate waiting: start a rollout that stops at its approval, then read the email."""
    from migrator.workstation.local.demo import rollout_input
    from migrator.workflows import ASG_ROLLOUT

    rt.fidelity.people_answer = True  # a person answers, in real time: no jumping over the gate
    spec = rt.scenario.auto_scaling_groups[0]
    run = rt.start_execution(ASG_ROLLOUT, spec.target, rollout_input(spec, rt.scenario))

    def email():
        rt.bot.poll()
        return [m for m in rt.bot.messages if m["kind"] == "approval-request"]

    return run, eventually(email, "the approval email")[0]


def _open(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as page:
            return page.status, page.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _submit(url, page, **fields):
    hidden = dict(re.findall(r"name='(d|e|s)' value='([^']*)'", page))
    return _open(url.split("?")[0], urlencode({**hidden, **fields}).encode())


GATED = {"approvals": {"default": "ignore", "timeout": 86400}}


def test_get_shows_the_page_and_changes_nothing_then_post_decides_once():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        assert "TOKEN" not in email["text"] and "task_token" not in email["text"]
        for _ in range(3):  # a mail scanner fetching every link, several times
            for url in email["links"].values():
                status, page = _open(url)
                assert status == 200 and "<form method='post'>" in page
        assert rt.status(run)["status"] == "RUNNING"
        pending = approvals().pending()
        assert [p["status"] for p in pending] == ["pending"]

        status, page = _submit(email["links"]["approve"], _open(email["links"]["approve"])[1],
                               approver="alice@example.com", comment="canary looks good")
        assert status == 200 and "approved by <b>alice@example.com</b>" in page
        status, again = _submit(email["links"]["reject"], _open(email["links"]["approve"])[1].replace(
            "value='approve'", "value='reject'"), approver="mallory")
        assert status in (403, 409)  # forged (decision swapped) or already used: nothing changes
        status, replay = _submit(email["links"]["approve"], page.replace("", ""), approver="bob")
        assert status in (403, 409)
        status, used = _open(email["links"]["approve"])
        assert status == 409 and "already answered" in used
        result = rt.wait([run])[run.execution_arn]
        assert result["status"] == "SUCCEEDED"
        record = approvals().get(email["links"]["approve"].split("/approvals/")[1].split("?")[0])
        assert (record["decision"], record["decided_by"]) == ("approve", "alice@example.com")


def test_a_forged_or_unknown_link_shows_a_clear_page():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        url = email["links"]["approve"]
        tampered = re.sub(r"s=([0-9a-f])", lambda m: "s=" + ("0" if m.group(1) != "0" else "1"), url)
        assert _open(tampered)[0] == 403 and "Invalid link" in _open(tampered)[1]
        unknown = re.sub(r"/approvals/[^?]+", "/approvals/nope", url)
        assert _open(unknown)[0] in (403, 404)
        assert rt.status(run)["status"] == "RUNNING"


def test_two_simultaneous_submits_send_one_callback():
    with running([{"name": "web", "size": 2}], **GATED) as rt:
        run, email = _request(rt)
        approval_id = email["links"]["approve"].split("/approvals/")[1].split("?")[0]
        store = approvals()
        first = store.decide(approval_id, "approve", "alice")
        with pytest.raises(LinkRefused) as second:
            store.decide(approval_id, "reject", "bob")
        assert second.value.reason == "used" and first["by"] == "alice"
        assert rt.wait([run])[run.execution_arn]["status"] == "SUCCEEDED"


def test_a_reminder_goes_out_once_before_a_gate_expires():
    # the clock barely drifts (speed 0.001): at the gate only `advance` moves it
    with running([{"name": "web", "size": 2}], approvals={"default": "ignore", "timeout": 3000},
                 clock={"speed": 0.001}) as rt:
        run, email = _request(rt)
        store = approvals()
        assert store.remind(before_seconds=60) == []  # not yet close to its expiry
        rt.clock.advance(2500)
        store.remind(before_seconds=600)  # the runtime's own sweep may have sent it already
        assert store.remind(before_seconds=600) == []  # never twice
        def reminders():  # the sweep may hold the write and publish a moment later
            rt.bot.poll()
            return [m for m in rt.bot.messages if m.get("kind") == "text" and "expires in" in m["text"]]

        eventually(reminders, "the reminder")
        assert store.remind(before_seconds=600) == []  # still never twice
        assert len(reminders()) == 1 and "asg/web" in reminders()[0]["text"]


def test_the_terminal_lists_and_answers_with_the_same_single_use_rule(capsys):
    import socket

    from migrator.workstation.cli import main
    from migrator.workstation.local.scenario import parse_scenario
    from migrator.workstation.local.server import LocalServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = LocalServer(parse_scenario({"version": 1, "name": "t", "clock": {"speed": 1000},
                                         "auto_scaling_groups": [{"name": "web", "size": 2}], **GATED}), port)
    server.start()
    try:
        run, email = _request(server.runtime)
        approval_id = email["links"]["approve"].split("/approvals/")[1].split("?")[0]
        assert main(["approvals", "list", "--endpoint-url", server.endpoint]) == 0
        assert approval_id in capsys.readouterr().out
        assert main(["approvals", "reject", approval_id, "--comment", "not today", "--endpoint-url", server.endpoint]) == 0
        assert "rejected by arn:aws:" in capsys.readouterr().out
        assert main(["approvals", "approve", approval_id, "--endpoint-url", server.endpoint]) == 2
        assert "already answered" in capsys.readouterr().err
        result = server.runtime.wait([run])[run.execution_arn]
        assert result["error"] == "Rejected" and "not today" in result["cause"]
    finally:
        server.stop()


def test_a_gate_answered_with_its_raw_token_is_not_pending_and_the_terminal_says_so(capsys, aws_cli):
    """The console and `aws stepfunctions send-task-success` answer a gate without us:
    `approvals list` must not offer it, and `approvals approve` must fail in one line
    instead of reporting a decision the execution never heard."""
    import socket
    import subprocess

    from migrator.workstation.cli import main
    from migrator.workstation.local.scenario import parse_scenario
    from migrator.workstation.local.server import LocalServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = LocalServer(parse_scenario({"version": 1, "name": "t", "auto_scaling_groups": [{"name": "web", "size": 2}],
                                         **GATED}), port)
    server.start()
    try:
        run, email = _request(server.runtime)
        approval_id = email["links"]["approve"].split("/approvals/")[1].split("?")[0]
        token = approvals().get(approval_id)["token"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        subprocess.run([aws_cli, "--endpoint-url", server.endpoint, "stepfunctions", "send-task-failure",
                        "--task-token", token, "--error", "Rejected", "--cause", "no, from the console"],
                       env=env, check=True, capture_output=True)
        assert main(["approvals", "list", "--endpoint-url", server.endpoint]) == 0
        assert approval_id not in capsys.readouterr().out
        assert main(["approvals", "approve", approval_id, "--endpoint-url", server.endpoint]) == 2
        err = capsys.readouterr().err
        # the rollback after that rejection may already have ended the execution: either is the truth
        assert err.count("\n") == 1 and "Nothing was changed" in err
        assert "answered through the Step Functions API" in err or "execution ended (FAILED)" in err
        result = server.runtime.wait([run])[run.execution_arn]
        assert result["status"] == "FAILED" or "RolledBack" in str(result)
        assert approvals().get(approval_id)["status"] == "closed"
    finally:
        server.stop()


def test_every_approval_id_is_one_the_terminal_takes_as_an_argument():
    """An id is typed into `approvals approve ID`: one starting with "-" was read as an option (1 in 32 did)."""
    from migrator.approvals.core import new_approval_id
    from migrator.workstation.cli import _parser

    ids = {new_approval_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)
    for approval_id in sorted(ids)[:50]:
        assert _parser().parse_args(["approvals", "approve", approval_id]).approval_id == approval_id
