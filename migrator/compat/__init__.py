"""AL2 -> AL2023 compatibility: what a host runs, the rules it is checked against, and
the parity of a replacement with the host it replaces."""
