"""Shared fixtures: a local runtime built from a scenario written inline."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from migrator.workstation.local.runtime import LocalRuntime
from migrator.workstation.local.scenario import parse_scenario


def scenario(groups: list[dict], **extra):
    """A scenario with fast defaults; `extra` overrides top-level fields."""
    data = {"version": 1, "name": "test", "clock": {"speed": 1000}, "auto_scaling_groups": groups}
    data.update(extra)
    return parse_scenario(data)


@contextmanager
def running(groups: list[dict], **extra):
    with LocalRuntime(scenario(groups, **extra)) as runtime:
        yield runtime


@pytest.fixture
def runtime_with():
    """`with runtime_with([{"name": "web", "size": 2}]) as rt:` inside a test."""
    return running


@pytest.fixture(scope="session")
def aws_cli() -> str:
    """The real AWS CLI: `make test` installs it (AWS_CLI); elsewhere the one on PATH."""
    found = os.environ.get("AWS_CLI") or shutil.which("aws")
    local = Path(__file__).parent.parent / "build/tools/awscli/bin/aws"
    if not found and local.exists():
        found = str(local)
    if not found:
        pytest.fail("no AWS CLI: run the tests with `make test`, which installs it")
    return found


# Only a guard against a hang, never a measure of speed: a test waits for what it expects however slow the
# machine is (a suite beside a CPU burner once missed a reminder that came after a 5-second poll).
HANG_SECONDS = 600


def eventually(condition, what: str, poll: float = 0.05):
    """Poll `condition()` until it returns something truthy, and return that; fail only after HANG_SECONDS."""
    import time

    deadline = time.monotonic() + HANG_SECONDS
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(poll)
