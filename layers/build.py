"""Build the Lambda layer: OUT_DIR/python/ = requirements.txt wheels + the migrator package.

Usage: python layers/build.py OUT_DIR   (the Makefile runs it as `make layer`)

Wheels are resolved for the Lambda runtime (CPython 3.12, manylinux2014 x86_64),
not for this machine, so the layer works whatever Python builds it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "layers" / "requirements.txt"
PACKAGE = ROOT / "migrator"

# What never runs in Lambda lives in one package (the CLI and the local runtime import moto).
WORKSTATION_ONLY = {"workstation"}
# The Lambda runtime ships boto3 and its dependencies; aws-xray-sdk pulls them in,
# and a bundled copy would shadow the runtime's with another version.
# distribution name -> what it installs at the top level
RUNTIME_PROVIDED = {
    "boto3": ["boto3"],
    "botocore": ["botocore"],
    "s3transfer": ["s3transfer"],
    "urllib3": ["urllib3"],
    "python_dateutil": ["dateutil"],
    "six": ["six.py"],
}


def pip_install(target: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(target),
            "--platform", "manylinux2014_x86_64",
            "--implementation", "cp",
            "--python-version", "3.12",
            "--only-binary=:all:",
            "--no-compile",  # .pyc files would be for this Python, not 3.12
            "-r", str(REQUIREMENTS),
        ],
        check=True,
    )


def strip_runtime_provided(target: Path) -> None:
    for dist, top_level in RUNTIME_PROVIDED.items():
        for path in [*(target / name for name in top_level), *target.glob(f"{dist}-*.dist-info")]:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts are useless in a layer


def copy_package(target: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {"__pycache__"} | {n for n in names if n.endswith(".pyc")}
        if Path(directory) == PACKAGE:
            skipped |= WORKSTATION_ONLY & set(names)
        return skipped

    shutil.copytree(PACKAGE, target / PACKAGE.name, ignore=ignore)


def build(out_dir: Path) -> Path:
    shutil.rmtree(out_dir, ignore_errors=True)
    target = out_dir / "python"  # Lambda puts /opt/python on sys.path
    target.mkdir(parents=True)
    pip_install(target)
    strip_runtime_provided(target)
    copy_package(target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python layers/build.py OUT_DIR")
    print(f"layer built in {build(Path(sys.argv[1]).resolve())}")
