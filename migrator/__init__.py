"""Domain core of the AL2 -> AL2023 migration: workflows' logic, local runtime and CLI."""
