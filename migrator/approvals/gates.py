"""The approval gates' names, for the registry (migrator/workflows.py), the rollbacks that explain a
timed-out gate and the handlers that record a granted one. Each ASL file names its gates the same in
its approval messages (tests/workflows/test_asl_files.py checks)."""

BEFORE_REFRESH = "before-refresh"  # asg-rollout
CUTOVER = "cutover"  # standalone-ec2
DECOMMISSION = "decommission"  # standalone-ec2
BEFORE_DRAIN = "before-drain"  # eks-nodegroup
BEFORE_DELETE = "before-delete"  # eks-nodegroup
BEFORE_UPDATE = "before-update"  # eks-in-place
BEFORE_CHANGE = "before-change"  # eks-karpenter
START = "start"  # fleet, as wave-N/start
