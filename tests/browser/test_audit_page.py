"""The HTML audit of a wave as a person sees it in Chromium at 1400 px: a time axis,
duration labels, waits drawn apart from work, a 168 h retention on a broken scale that
leaves the minutes of work readable, every label whole, the resources as a table with
ISO times, and a gate answered with the raw task token shown as such, with its caller.
The screenshot is kept under build/ for a person to look at."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

from migrator.fleet.report import build_report, render_html
from migrator.wiring import approvals
from migrator.workflows import FLEET
from migrator.workstation.local.demo import plan_fleet, run_waves
from migrator.workstation.local.runtime import AUDIT_TABLE
from tests.browser.test_approval_in_a_browser import browser  # noqa: F401 (the fixture)
from tests.conftest import running

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "audit-page-1400.png"
WEEK = 7 * 86_400
RAW_GATE = ("asg/web", "before-refresh")  # answered by alice with the raw task token


def _answer_as_people_do(rt):
    """Each gate five minutes after its email: alice answers the web group's with the raw
    task token and her own keys (as `aws stepfunctions send-task-success` would), every
    other one through its emailed link."""
    iam = rt.client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    alice = boto3.client("stepfunctions", region_name=rt.region, aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"])

    def raw(request):
        approval_id = request["links"]["approve"].split("/approvals/")[1].split("?")[0]
        alice.send_task_success(taskToken=approvals().get(approval_id)["token"],
                                output='{"by": "alice (raw token)"}')

    def announce(request):
        gate = (request["target"], request["gate"])
        answer = (lambda: raw(request)) if gate == RAW_GATE else (
            lambda: rt.bot._answer(request, "/".join(gate), "approve"))
        rt.clock.call_later(300, answer)

    rt.leave_gates_to_people(announce)


@pytest.fixture(scope="module")
def audit_page() -> Path:
    scenario = {"waves": {"max_instances": 50}, "timings": {"retention": WEEK},
                "approvals": {"default": "ignore", "timeout": 86_400},
                "standalone": [{"name": "db-1", "volumes_gib": [8, 100], "elastic_ip": True}]}
    with running([{"name": "web", "size": 2, "target_group": True}], **scenario) as rt:
        _answer_as_people_do(rt)
        plan = plan_fleet(rt)
        run_waves(rt, plan)
        wave = next(r for r in rt.runs if r.workflow is FLEET)
        report = build_report(rt.client("stepfunctions"), rt.client("dynamodb"), AUDIT_TABLE, wave.execution_arn,
                              cloudtrail=rt.client("cloudtrail"))
    assert report["status"] == "SUCCEEDED" and len(report["children"]) == 2
    page = SCREENSHOT.with_suffix(".html")  # kept beside the screenshot
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(report))
    return page


def test_the_audit_page_reads_well_at_1400_px(browser, audit_page):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(audit_page.as_uri())
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # nothing is cut off: no label, cell or heading wider than its box, no sideways scrolling
    clipped = page.evaluate("""() => [...document.querySelectorAll('.label, .track, td, th, dt, dd, h1, h2, li')]
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => e.parentElement.textContent.slice(0, 80) + ' ' + e.scrollWidth + '>' + e.clientWidth)""")
    assert clipped == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    labels = page.locator(".row.group .label").all_inner_texts()
    assert any("standalone/db-1" in label and "plan-" in label for label in labels)  # the whole execution name

    # a time axis with round times, and every step that took time says how long
    ticks = page.locator(".row.axis .tick").all_inner_texts()
    assert len(ticks) >= 4 and all(re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d(:\d\d)?", t) for t in ticks)
    retention = page.locator(".row.step", has=page.locator(".label", has_text=re.compile("^Retention$")))
    assert retention.locator(".dur").inner_text() == "168 h"

    # the week of retention is drawn shortened, so minutes of work stay wide enough to see
    assert "≈ 16" in page.locator(".row.axis .gap").first.inner_text()
    refresh = page.locator(".row.step", has=page.locator(".label", has_text="WaitForRefresh")).locator(".bar")
    assert refresh.bounding_box()["width"] > 40

    # waits (a Wait state, an approval) look unlike work
    styles = page.evaluate("""() => Object.fromEntries(['work', 'wait', 'approval'].map(kind => {
        const s = getComputedStyle(document.querySelector('.bar.' + kind));
        return [kind, s.backgroundColor + ' ' + s.backgroundImage + ' ' + s.borderStyle];
    }))""")
    assert len(set(styles.values())) == 3 and "gradient" in styles["wait"] and "gradient" in styles["approval"]
    assert "gradient" not in styles["work"]

    # resources as a table with ISO 8601 times, no raw JSON, no epoch seconds
    records = page.locator("section", has=page.locator("h2", has_text="asg/web")).locator("table.records")
    assert records.locator("tr").count() > 5
    text = records.inner_text()
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    assert not re.search(r"\b1[6-9]\d{8}(\.\d+)?\b", text) and '{"' not in text

    # alice's raw-token answer: said to be one, with the caller CloudTrail names
    raw = page.locator("li.raw").inner_text()
    assert "asg/web/before-refresh" in raw and "raw task token" in raw and "user/alice" in raw
    assert "at -" not in page.content()
