"""Construct ids: the registry derives task names, so it owns the one pascal_case."""

from migrator.workflows import pascal_case

__all__ = ["pascal_case"]
