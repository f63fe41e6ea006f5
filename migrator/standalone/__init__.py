"""Standalone EC2: snapshot, parallel AL2023 instance, validated cutover, rollback, decommission."""
