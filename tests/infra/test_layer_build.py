"""layers/build.py: what goes into the Lambda layer, and what must stay out."""

from __future__ import annotations

import importlib.util

import pytest

from migrator.config import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("layer_build", PROJECT_ROOT / "layers" / "build.py")
layer_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layer_build)

BUILT_LAYER = PROJECT_ROOT / "build" / "layer" / "python"


def test_build_replaces_old_output_and_copies_migrator_without_workstation_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(layer_build, "pip_install", lambda target: None)  # the wheels are checked below
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "stale.py").write_text("")

    target = layer_build.build(tmp_path)

    assert not (target / "stale.py").exists()
    assert (target / "migrator" / "workflows.py").is_file()
    for left_out in ("local", "cli.py", "bench.py", "__pycache__"):
        assert not (target / "migrator" / left_out).exists(), left_out


@pytest.fixture(scope="module")
def built_layer():
    assert BUILT_LAYER.is_dir(), "run `make layer` first (make test does)"
    return BUILT_LAYER


def test_layer_has_lambda_wheels_for_python_312(built_layer):
    assert (built_layer / "aws_lambda_powertools").is_dir()
    assert (built_layer / "aws_xray_sdk").is_dir()  # the [tracer] extra
    assert (built_layer / "pydantic").is_dir()
    binaries = [p.name for p in (built_layer / "pydantic_core").glob("*.so")]
    assert binaries and all("cpython-312-x86_64-linux-gnu" in name for name in binaries), binaries


def test_layer_leaves_out_what_the_runtime_or_the_workstation_has(built_layer):
    for name in ("boto3", "botocore", "s3transfer"):
        assert not (built_layer / name).exists(), name
    assert not (built_layer / "migrator" / "local").exists()
    assert not (built_layer / "migrator" / "cli.py").exists()
