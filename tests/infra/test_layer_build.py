"""layers/build.py: what goes into the Lambda layer, and what must stay out."""

from __future__ import annotations

import ast
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
    for left_out in ("workstation", "local", "cli.py", "bench.py", "__pycache__"):
        assert not (target / "migrator" / left_out).exists(), left_out


def test_every_migrator_module_the_handlers_import_ships_in_the_layer(tmp_path, monkeypatch):
    """lambdas/ is the functions' code, migrator comes from the layer: no handler may need a workstation part."""
    monkeypatch.setattr(layer_build, "pip_install", lambda target: None)
    target = layer_build.build(tmp_path)

    def module_in(root, dotted: str) -> bool:
        path = root / dotted.replace(".", "/")
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    imports = {(node.module, alias.name) for path in (PROJECT_ROOT / "lambdas").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
               for alias in node.names if node.module.split(".")[0] == "migrator"}
    assert imports
    for module, name in imports:  # `from migrator import clock` imports the module migrator.clock
        needed = f"{module}.{name}" if module_in(PROJECT_ROOT, f"{module}.{name}") else module
        assert module_in(target, needed), needed
