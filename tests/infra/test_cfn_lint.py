"""The synthesized template passes cfn-lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

# W3005 (redundant DependsOn): CDK's Function and StateMachine constructs add DependsOn on
# their role next to a GetAtt of it; harmless, and not something the app controls.
IGNORED = ["W3005"]


def test_cfn_lint_passes(synthesized):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = str(cfn_lint) if cfn_lint.exists() else shutil.which("cfn-lint")
    assert command, "cfn-lint not installed: pip install -e .[dev]"
    result = subprocess.run([command, "--ignore-checks", *IGNORED, "--", str(synthesized.template_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
