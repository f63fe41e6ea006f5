"""A person in a real (headless) browser: the link from the email of a running local
execution, the confirmation page, submit, the execution continues; a second submit
says the link was used. Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.approvals.test_approval_links import GATED, _request
from tests.conftest import running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What the machine's closed network needs (no background connections, no sandbox as root).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(tmp_path):
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


def test_a_person_approves_from_the_email_link_once(browser, tmp_path):
    with running([{"name": "web", "size": 2, "target_group": True}], **GATED) as rt:
        run, email = _request(rt)
        page = browser.new_page()
        page.goto(email["links"]["approve"])
        assert page.title() == "Approve before-refresh"
        assert page.locator("h1").inner_text() == "Approve before-refresh of asg/web?"
        assert "canary_instance" in page.locator("pre").inner_text()
        assert rt.status(run)["status"] == "RUNNING"  # opening the page changed nothing
        page.fill("#approver", "alice@example.com")
        page.fill("#comment", "canary is healthy")
        page.screenshot(path=str(tmp_path / "approval-page.png"), full_page=True)  # docs/ keeps a copy
        page.click("button[type=submit]")
        assert "before-refresh approved" in page.locator("h1").inner_text()
        assert "alice@example.com" in page.content()
        assert rt.wait([run])[run.execution_arn]["status"] == "SUCCEEDED"

        again = browser.new_page()
        again.goto(email["links"]["approve"])
        assert again.locator("h1").inner_text() == "Already used"
        assert "approve by alice@example.com" in again.content()
