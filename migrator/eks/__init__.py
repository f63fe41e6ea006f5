"""EKS managed node groups: a new AL2023 group, taints, PDB-aware drain, old group removed."""
