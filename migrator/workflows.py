"""The registry of workflows: which ASL file, which Lambda tasks, what each task may do.

The CDK stack and the local runtime both read this, so a workflow is wired the
same way in AWS and in rehearsal. The ASL files refer to each task as
``${<substitution>}`` and to the topic as ``${NotificationTopicArn}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from migrator.approvals import gates
from migrator.config import LAMBDAS_DIR, STATE_MACHINES_DIR


class Access(str, Enum):
    """Permission bundles. stacks/permissions.py turns each into its least-privilege IAM statements (the
    actions, resources and conditions, and why any wildcard); read them there, not in a copy here."""

    AUDIT_WRITE = "audit-write"
    IDEMPOTENCY = "idempotency"
    NOTIFY = "notify"
    AMI_READ = "ami-read"
    ASG_READ = "asg-read"
    HEALTH_READ = "health-read"
    LAUNCH_TEMPLATE_WRITE = "launch-template-write"
    ASG_WRITE = "asg-write"
    REFRESH_WRITE = "refresh-write"
    INSTANCE_READ = "instance-read"
    SNAPSHOT_WRITE = "snapshot-write"
    INSTANCE_LAUNCH = "instance-launch"
    INSTANCE_WRITE = "instance-write"
    ADDRESS_WRITE = "address-write"
    DNS_READ = "dns-read"
    HEALTH_SCRIPT = "health-script"
    HEALTH_SCRIPT_READ = "health-script-read"
    EKS_READ = "eks-read"
    NODEGROUP_WRITE = "nodegroup-write"
    PLAN_READ = "plan-read"
    EXECUTION_READ = "execution-read"
    APPROVALS = "approvals"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True)
class LambdaTask:
    folder: str  # lambdas/<folder>/handler.py, function `handler`
    substitution: str  # the ${...} name in the ASL file
    description: str
    access: frozenset[Access]

    @property
    def handler_file(self):
        return LAMBDAS_DIR / self.folder / "handler.py"

    @property
    def local_function_name(self) -> str:
        return "al2023-" + self.folder.replace("_", "-")


@dataclass(frozen=True)
class Workflow:
    name: str  # also the state machine's name in the local runtime
    asl_file: str
    tasks: tuple[LambdaTask, ...]
    gates: tuple[str, ...] = ()  # approval gates, named as in the ASL's approval messages
    children: tuple["Workflow", ...] = ()  # state machines it starts, as ${<Name>StateMachineArn}

    @property
    def arn_substitution(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-")) + "StateMachineArn"

    @property
    def asl_path(self):
        return STATE_MACHINES_DIR / self.asl_file


_BASE = frozenset({Access.AUDIT_WRITE})

# Every approval gate is this task (lambda:invoke.waitForTaskToken): one mechanism for all.
REQUEST_APPROVAL = LambdaTask("approvals_request", "RequestApprovalFunctionArn",
                              "Store a gate's task token under an id and email signed links",
                              _BASE | {Access.APPROVALS})

ASG_ROLLOUT = Workflow(
    name="asg-rollout",
    asl_file="asg_rollout.asl.json",
    gates=(gates.BEFORE_REFRESH,),
    tasks=(
        LambdaTask("asg_validate_input", "ValidateInputFunctionArn",
                   "Validate the rollout input; no AWS change", frozenset()),
        LambdaTask("asg_preflight", "PreflightFunctionArn",
                   "Check the group and record what a rollback restores",
                   _BASE | {Access.ASG_READ, Access.AMI_READ}),
        LambdaTask("asg_create_version", "CreateVersionFunctionArn",
                   "New launch-template version: AL2023 AMI, IMDSv2 required",
                   _BASE | {Access.ASG_READ, Access.AMI_READ, Access.LAUNCH_TEMPLATE_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg_start_canary", "StartCanaryFunctionArn",
                   "Point the group at the new version, one more instance",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg_check_canary", "CheckCanaryFunctionArn",
                   "Canary InService, healthy in its target groups, alarms OK",
                   _BASE | {Access.ASG_READ, Access.HEALTH_READ}),
        LambdaTask("asg_start_refresh", "StartRefreshFunctionArn",
                   "Instance refresh pinned to the new version",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.REFRESH_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg_check_refresh", "CheckRefreshFunctionArn",
                   "Poll the instance refresh",
                   _BASE | {Access.ASG_READ}),
        LambdaTask("asg_finalize", "FinalizeFunctionArn",
                   "Remove the canary capacity, restore sizes, make the version default",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.LAUNCH_TEMPLATE_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg_rollback", "RollbackFunctionArn",
                   "Stop the refresh, put the group back on the old version and sizes",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.REFRESH_WRITE}),
        LambdaTask("asg_check_rollback", "CheckRollbackFunctionArn",
                   "Wait until every instance runs the old version again",
                   _BASE | {Access.ASG_READ}),
        REQUEST_APPROVAL,
    ),
)

STANDALONE_EC2 = Workflow(
    name="standalone-ec2",
    asl_file="standalone_ec2.asl.json",
    gates=(gates.CUTOVER, gates.DECOMMISSION),
    tasks=(
        LambdaTask("ec2_validate_input", "ValidateInputFunctionArn",
                   "Validate the migration input; no AWS change", frozenset()),
        LambdaTask("ec2_preflight", "PreflightFunctionArn",
                   "Check the instance and record what a rebuild and a rollback need",
                   _BASE | {Access.INSTANCE_READ, Access.AMI_READ, Access.DNS_READ}),
        LambdaTask("ec2_snapshot", "SnapshotFunctionArn",
                   "Crash-consistent snapshots of every EBS volume",
                   _BASE | {Access.INSTANCE_READ, Access.SNAPSHOT_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("ec2_check_snapshots", "CheckSnapshotsFunctionArn",
                   "Poll the snapshots until completed", _BASE | {Access.INSTANCE_READ}),
        LambdaTask("ec2_launch", "LaunchFunctionArn",
                   "Launch the AL2023 replacement beside the old instance",
                   _BASE | {Access.INSTANCE_READ, Access.AMI_READ, Access.INSTANCE_LAUNCH, Access.INSTANCE_WRITE,
                            Access.IDEMPOTENCY}),
        LambdaTask("ec2_start_health_script", "StartHealthScriptFunctionArn",
                   "Run the health script on the replacement through SSM",
                   _BASE | {Access.HEALTH_SCRIPT, Access.IDEMPOTENCY}),
        LambdaTask("ec2_check_health", "CheckHealthFunctionArn",
                   "Status checks, health script and alarms of the replacement",
                   _BASE | {Access.INSTANCE_READ, Access.HEALTH_SCRIPT_READ, Access.HEALTH_READ}),
        LambdaTask("ec2_cutover", "CutoverFunctionArn",
                   "Move the Elastic IP or DNS record; stop the old instance",
                   _BASE | {Access.INSTANCE_READ, Access.DNS_READ, Access.ADDRESS_WRITE, Access.INSTANCE_WRITE,
                            Access.IDEMPOTENCY}),
        LambdaTask("ec2_rollback", "RollbackFunctionArn",
                   "Old instance back in service, replacement terminated",
                   _BASE | {Access.INSTANCE_READ, Access.DNS_READ, Access.ADDRESS_WRITE, Access.INSTANCE_WRITE}),
        LambdaTask("ec2_decommission", "DecommissionFunctionArn",
                   "Terminate the old instance; snapshots get an expiry date",
                   _BASE | {Access.INSTANCE_READ, Access.INSTANCE_WRITE, Access.SNAPSHOT_WRITE, Access.IDEMPOTENCY}),
        REQUEST_APPROVAL,
    ),
)

_KUBE = _BASE | {Access.EKS_READ, Access.KUBERNETES}

EKS_NODEGROUP = Workflow(
    name="eks-nodegroup",
    asl_file="eks_nodegroup.asl.json",
    gates=(gates.BEFORE_DRAIN, gates.BEFORE_DELETE),
    tasks=(
        LambdaTask("eks_validate_input", "ValidateInputFunctionArn",
                   "Validate the node group migration input; no AWS change", frozenset()),
        LambdaTask("eks_preflight", "PreflightFunctionArn",
                   "Version, AL2 group, VPC CNI, container runtime, disruption budgets", _KUBE),
        LambdaTask("eks_create_nodegroup", "CreateNodegroupFunctionArn",
                   "Create the AL2023 node group and its launch template",
                   _KUBE | {Access.NODEGROUP_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("eks_wait_nodegroup", "WaitNodegroupFunctionArn", "Wait for ACTIVE and Ready nodes", _KUBE),
        LambdaTask("eks_taint_old", "TaintOldFunctionArn", "Taint and cordon the AL2 nodes", _KUBE),
        LambdaTask("eks_validate_new", "ValidateNewFunctionArn", "DaemonSets and scheduling on the new nodes", _KUBE),
        LambdaTask("eks_drain", "DrainFunctionArn", "PDB-aware drain of the AL2 nodes", _KUBE),
        LambdaTask("eks_delete_old", "DeleteOldFunctionArn", "Delete the AL2 node group",
                   _KUBE | {Access.NODEGROUP_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("eks_wait_deleted", "WaitDeletedFunctionArn", "Wait until the old group is gone", _KUBE),
        LambdaTask("eks_rollback", "RollbackFunctionArn", "Untaint the AL2 nodes, remove the new group",
                   _KUBE | {Access.NODEGROUP_WRITE}),
        REQUEST_APPROVAL,
    ),
)

FLEET = Workflow(
    name="fleet",
    asl_file="fleet.asl.json",
    gates=(gates.START,),
    children=(ASG_ROLLOUT, STANDALONE_EC2, EKS_NODEGROUP),
    tasks=(
        LambdaTask("fleet_load_wave", "LoadWaveFunctionArn",
                   "Validate a wave's input and read its targets from the plan",
                   frozenset({Access.PLAN_READ, Access.EXECUTION_READ})),
        LambdaTask("fleet_summarize_wave", "SummarizeWaveFunctionArn",
                   "Count a wave's outcomes against its tolerated failure percentage", _BASE),
        REQUEST_APPROVAL,
    ),
)

# Children before the workflows that start them: the stack creates them in this order.
WORKFLOWS: tuple[Workflow, ...] = (ASG_ROLLOUT, STANDALONE_EC2, EKS_NODEGROUP, FLEET)


_SUBSTITUTION = re.compile(r"\$\{(\w+)\}")


def render_definition(workflow: Workflow, values: dict[str, str]) -> str:
    """The ASL with `${Name}` replaced, as CDK's definition_substitutions does."""

    def replace(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{workflow.asl_file}: no value for ${{{match.group(1)}}}")
        return values[match.group(1)]

    return _SUBSTITUTION.sub(replace, workflow.asl_path.read_text())
