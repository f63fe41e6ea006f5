"""`make deploy`, the README's deploy command, works from a fresh clone without an active virtualenv: the CDK CLI
runs cdk.json's app command with the project's virtualenv first on PATH, as `make synth` does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from migrator.config import PROJECT_ROOT


def _recipe(target: str, **variables) -> str:
    """The last command `make -n target` would run, with a PATH that has no virtualenv on it."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    result = subprocess.run(["make", "--no-print-directory", "-n", target, *(f"{k}={v}" for k, v in variables.items())], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, env={**os.environ, "PATH": path}, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_make_deploy_runs_cdk_deploy_with_the_project_python_first_on_path():
    command = _recipe("deploy", CDK_ARGS="-c approval_auth=iam")
    match = re.fullmatch(r'PATH="([^"]+):\$PATH" npx cdk deploy -c approval_auth=iam', command)
    assert match, command
    app = json.loads((PROJECT_ROOT / "cdk.json").read_text())["app"]
    interpreter = app.split()[0]
    found = shutil.which(interpreter, path=match.group(1))
    assert found and os.path.dirname(found) == str(PROJECT_ROOT / ".venv" / "bin"), (app, found)


def test_make_synth_and_deploy_share_the_path():
    prefix = lambda command: command.split(" npx ")[0]  # noqa: E731
    assert prefix(_recipe("synth")) == prefix(_recipe("deploy"))
