"""The registry of workflows: which ASL file, which Lambda tasks, what each task may do.

The CDK stack and the local runtime both read this, so a workflow is wired the
same way in AWS and in rehearsal. The ASL files refer to each task as
``${<substitution>}`` and to the topic as ``${NotificationTopicArn}``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache

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
    VOLUME_WRITE = "volume-write"
    INSTANCE_LAUNCH = "instance-launch"
    INSTANCE_WRITE = "instance-write"
    ADDRESS_WRITE = "address-write"
    DNS_READ = "dns-read"
    HEALTH_SCRIPT = "health-script"
    HEALTH_SCRIPT_READ = "health-script-read"
    HOST_SCAN_READ = "host-scan-read"  # the scan's static side: user data, the MetadataNoToken metric
    EKS_READ = "eks-read"
    NODEGROUP_WRITE = "nodegroup-write"
    NODEGROUP_UPDATE = "nodegroup-update"  # UpdateNodegroupVersion and the new launch-template version it names
    PLAN_READ = "plan-read"
    EXECUTION_READ = "execution-read"
    APPROVALS = "approvals"
    KUBERNETES = "kubernetes"  # read-only Kubernetes RBAC: nodes, pods, budgets, DaemonSets
    KUBERNETES_NODE_PATCH = "kubernetes-node-patch"  # + patch nodes: taint, cordon, the drain's start annotation
    KUBERNETES_EVICT = "kubernetes-evict"  # + create pod evictions: the drain
    KUBERNETES_KARPENTER_READ = "kubernetes-karpenter-read"  # + read NodePools, EC2NodeClasses and their CRD
    KUBERNETES_NODECLASS_PATCH = "kubernetes-nodeclass-patch"  # + patch EC2NodeClasses: the change and its rollback
    CANARY_LAUNCH = "canary-launch"
    CANARY_RELEASE = "canary-release"
    CAPACITY_MARK = "capacity-mark"  # the canary's capacity mark, a tag on a self-managed node group's ASG


def pascal_case(name: str) -> str:
    """asg_rollout / asg-rollout -> AsgRollout, for construct ids and substitution names."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


# The standalone handlers' functions were ec2_* before the handlers were grouped per workflow; their names
# (construct ids, so CloudFormation logical ids, and local function names) keep that prefix, so a deployed
# stack updates its functions and roles in place instead of replacing them.
_NAME_PREFIX = {"standalone": "ec2"}


@dataclass(frozen=True)
class LambdaTask:
    """One Lambda function: `handler` ("<module>.<function>" in lambdas/) is its only name; everything
    else that names it (construct id, local function name, ASL substitution) is derived from it."""

    handler: str  # the Lambda handler string; the code asset is the lambdas/ folder
    description: str
    access: frozenset[Access]
    substitution: str = ""  # the ${...} name in the ASL file; by default <Function>FunctionArn

    def __post_init__(self):
        if not self.substitution:
            object.__setattr__(self, "substitution", pascal_case(self.function) + "FunctionArn")

    @property
    def module(self) -> str:
        return self.handler.partition(".")[0]

    @property
    def function(self) -> str:
        return self.handler.partition(".")[2]

    @property
    def name(self) -> str:
        """asg_start_refresh: the construct id (pascal-cased) and the local function name derive from it."""
        return f"{_NAME_PREFIX.get(self.module, self.module)}_{self.function}"

    @property
    def local_function_name(self) -> str:
        return "al2023-" + self.name.replace("_", "-")

    def load(self) -> Callable:
        """The handler function itself, for the local runtime (Lambda imports it by the handler string)."""
        return getattr(_lambdas_module(self.module), self.function)


@cache
def _lambdas_module(module: str):
    # By file path: lambdas/ is the functions' code asset, not a package of the installed project.
    spec = importlib.util.spec_from_file_location(f"lambdas.{module}", LAMBDAS_DIR / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@dataclass(frozen=True)
class Workflow:
    name: str  # also the state machine's name in the local runtime
    asl_file: str
    tasks: tuple[LambdaTask, ...]
    gates: tuple[str, ...] = ()  # approval gates, named as in the ASL's approval messages
    children: tuple["Workflow", ...] = ()  # state machines it starts, as ${<Name>StateMachineArn}
    kind: str = ""  # the plan's and the summary's `kind` of its targets (a fleet wave has none)

    @property
    def arn_substitution(self) -> str:
        return pascal_case(self.name) + "StateMachineArn"

    @property
    def asl_path(self):
        return STATE_MACHINES_DIR / self.asl_file


_BASE = frozenset({Access.AUDIT_WRITE})


def _validate_input(module: str, what: str) -> LambdaTask:
    """Every workflow's first task: it reads only its event."""
    return LambdaTask(f"{module}.validate_input", f"Validate the {what} input; no AWS change", frozenset())


# Every approval gate is this task (lambda:invoke.waitForTaskToken): one mechanism for all.
REQUEST_APPROVAL = LambdaTask("approvals.request", "Store a gate's task token under an id and email signed links",
                              _BASE | {Access.APPROVALS}, substitution="RequestApprovalFunctionArn")
# The two approval functions no workflow invokes (stacks/approvals.py): the API behind the links, the reminder.
APPROVALS_API = LambdaTask("approvals.api",
                           "Approval links: GET shows a confirmation page, only the form's POST decides",
                           _BASE | {Access.APPROVALS})  # decide, then record the decision
APPROVALS_REMINDER = LambdaTask("approvals.reminder", "Remind once of each pending approval that expires soon",
                                frozenset({Access.APPROVALS}))

# The compatibility scan and the parity check: the same three functions in the standalone and group workflows.
START_SCAN = LambdaTask("compat.start_scan", "Send the read-only host scan through SSM Run Command",
                        _BASE | {Access.ASG_READ, Access.HEALTH_SCRIPT, Access.IDEMPOTENCY})  # a group's oldest
CHECK_COMPATIBILITY = LambdaTask(
    "compat.check_compatibility", "The old host's AL2023 findings; blockers refuse the run before any change",
    _BASE | {Access.ASG_READ, Access.HEALTH_SCRIPT_READ, Access.HOST_SCAN_READ})  # the template's user data
CHECK_PARITY = LambdaTask("compat.check_parity", "The new host against the old: services, ports, cron, mounts",
                          _BASE | {Access.HEALTH_SCRIPT_READ})
COMPATIBILITY_TASKS = (START_SCAN, CHECK_COMPATIBILITY, CHECK_PARITY)

ASG_ROLLOUT = Workflow(
    name="asg-rollout",
    asl_file="asg_rollout.asl.json",
    gates=(gates.BEFORE_REFRESH,),
    kind="asg",
    tasks=(
        _validate_input("asg", "rollout"),
        LambdaTask("asg.preflight", "Check the group and record what a rollback restores",
                   _BASE | {Access.ASG_READ, Access.AMI_READ, Access.HEALTH_READ}),  # alarms exist
        LambdaTask("asg.create_version", "New launch-template version: AL2023 AMI, IMDSv2 required",
                   _BASE | {Access.ASG_READ, Access.AMI_READ, Access.LAUNCH_TEMPLATE_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg.start_canary", "Launch one instance on the new version, attach it to the group",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.CANARY_LAUNCH, Access.IDEMPOTENCY}),
        LambdaTask("asg.check_canary", "Canary InService, healthy in its target groups, alarms OK",
                   _BASE | {Access.ASG_READ, Access.HEALTH_READ}),
        LambdaTask("asg.start_refresh", "Instance refresh pinned to the new version",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.REFRESH_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("asg.check_refresh", "Poll the instance refresh", _BASE | {Access.ASG_READ}),
        LambdaTask("asg.finalize", "Remove the canary capacity if still ours, make the version default",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.CANARY_RELEASE, Access.LAUNCH_TEMPLATE_WRITE,
                            Access.IDEMPOTENCY}),
        LambdaTask("asg.rollback", "Stop the refresh, put the group back on the old version, remove the canary",
                   _BASE | {Access.ASG_READ, Access.ASG_WRITE, Access.CANARY_RELEASE, Access.REFRESH_WRITE}),
        LambdaTask("asg.check_rollback", "Wait until every instance runs the old version again",
                   _BASE | {Access.ASG_READ}),
        *COMPATIBILITY_TASKS,
        REQUEST_APPROVAL,
    ),
)

STANDALONE_EC2 = Workflow(
    name="standalone-ec2",
    asl_file="standalone_ec2.asl.json",
    gates=(gates.CUTOVER, gates.DECOMMISSION),
    kind="standalone",
    tasks=(
        _validate_input("standalone", "migration"),
        LambdaTask("standalone.preflight", "Check the instance and record what a rebuild and a rollback need",
                   _BASE | {Access.INSTANCE_READ, Access.AMI_READ, Access.DNS_READ, Access.HEALTH_READ}),
        LambdaTask("standalone.snapshot", "Crash-consistent snapshots of every EBS volume",
                   _BASE | {Access.INSTANCE_READ, Access.SNAPSHOT_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("standalone.check_snapshots", "Poll the snapshots until completed", _BASE | {Access.INSTANCE_READ}),
        LambdaTask("standalone.launch", "Launch the AL2023 replacement beside the old instance",
                   _BASE | {Access.INSTANCE_READ, Access.AMI_READ, Access.INSTANCE_LAUNCH, Access.INSTANCE_WRITE,
                            Access.IDEMPOTENCY}),
        LambdaTask("standalone.start_health_script", "Run the health script on the replacement through SSM",
                   _BASE | {Access.HEALTH_SCRIPT, Access.IDEMPOTENCY}),
        LambdaTask("standalone.check_health", "Status checks, health script and alarms of the replacement",
                   _BASE | {Access.INSTANCE_READ, Access.HEALTH_SCRIPT_READ, Access.HEALTH_READ}),
        LambdaTask("standalone.quiesce", "Stop the old server's writes with the input's quiesce commands",
                   _BASE | {Access.HEALTH_SCRIPT, Access.IDEMPOTENCY}),
        LambdaTask("standalone.final_sync", "Stop the old instance, final snapshot, move its data volumes over",
                   _BASE | {Access.INSTANCE_READ, Access.INSTANCE_WRITE, Access.SNAPSHOT_WRITE, Access.VOLUME_WRITE,
                            Access.HEALTH_SCRIPT_READ}),
        LambdaTask("standalone.cutover", "Move the Elastic IP or DNS record; stop the old instance",
                   _BASE | {Access.INSTANCE_READ, Access.DNS_READ, Access.ADDRESS_WRITE, Access.INSTANCE_WRITE,
                            Access.IDEMPOTENCY}),
        LambdaTask("standalone.rollback", "Data volumes and address back on the old instance, replacement terminated",
                   _BASE | {Access.INSTANCE_READ, Access.DNS_READ, Access.ADDRESS_WRITE, Access.INSTANCE_WRITE,
                            Access.VOLUME_WRITE}),
        LambdaTask("standalone.decommission", "Terminate the old instance; snapshots get an expiry date",
                   _BASE | {Access.INSTANCE_READ, Access.INSTANCE_WRITE, Access.SNAPSHOT_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("standalone.keep_old_instance", "Decommission unanswered: keep the old instance stopped, ask",
                   _BASE | {Access.INSTANCE_READ, Access.INSTANCE_WRITE, Access.IDEMPOTENCY}),
        *COMPATIBILITY_TASKS,
        REQUEST_APPROVAL,
    ),
)

_KUBE = _BASE | {Access.EKS_READ, Access.KUBERNETES}

EKS_NODEGROUP = Workflow(
    name="eks-nodegroup",
    asl_file="eks_nodegroup.asl.json",
    gates=(gates.BEFORE_DRAIN, gates.BEFORE_DELETE),
    kind="eks",
    tasks=(
        _validate_input("eks", "node group migration"),
        LambdaTask("eks.preflight", "Version, AL2 group, VPC CNI, container runtime, disruption budgets", _KUBE),
        LambdaTask("eks.create_nodegroup", "Create the AL2023 node group and its launch template",
                   _KUBE | {Access.NODEGROUP_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("eks.wait_nodegroup", "Wait for ACTIVE and Ready nodes", _KUBE),
        LambdaTask("eks.taint_old", "Taint and cordon the AL2 nodes", _KUBE | {Access.KUBERNETES_NODE_PATCH}),
        LambdaTask("eks.validate_new", "DaemonSets and scheduling on the new nodes", _KUBE),
        LambdaTask("eks.drain", "PDB-aware drain of the AL2 nodes",
                   _KUBE | {Access.KUBERNETES_NODE_PATCH, Access.KUBERNETES_EVICT}),
        LambdaTask("eks.delete_old", "Delete the AL2 node group", _KUBE | {Access.NODEGROUP_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("eks.wait_deleted", "Wait until the old group is gone", _KUBE),
        LambdaTask("eks.rollback", "Untaint the AL2 nodes, remove the new group",
                   _KUBE | {Access.NODEGROUP_WRITE, Access.KUBERNETES_NODE_PATCH}),
        REQUEST_APPROVAL,
    ),
)

EKS_IN_PLACE = Workflow(
    name="eks-in-place",
    asl_file="eks_in_place.asl.json",
    gates=(gates.BEFORE_UPDATE,),
    kind="eks-in-place",
    tasks=(
        _validate_input("eks_in_place", "in-place node group update"),
        LambdaTask("eks_in_place.preflight", "The path a node group takes and why; AMI, VPC CNI, runtime, budgets",
                   _KUBE),
        LambdaTask("eks_in_place.create_version", "New launch-template version: AL2023 AMI, nodeadm, IMDSv2",
                   _KUBE | {Access.NODEGROUP_UPDATE, Access.IDEMPOTENCY}),
        LambdaTask("eks_in_place.start_update", "UpdateNodegroupVersion to the new launch-template version",
                   _KUBE | {Access.NODEGROUP_UPDATE, Access.IDEMPOTENCY}),
        LambdaTask("eks_in_place.follow_update", "Poll EKS's update until it ends", _KUBE),
        LambdaTask("eks_in_place.validate", "Nodes Ready on AL2023, DaemonSets, budgets met", _KUBE),
        LambdaTask("eks_in_place.rollback", "Update back to the previous version, uncordon what EKS cordoned",
                   _KUBE | {Access.NODEGROUP_UPDATE, Access.KUBERNETES_NODE_PATCH}),
        REQUEST_APPROVAL,
    ),
)

_KARPENTER = _KUBE | {Access.KUBERNETES_KARPENTER_READ}

EKS_KARPENTER = Workflow(
    name="eks-karpenter",
    asl_file="eks_karpenter.asl.json",
    gates=(gates.BEFORE_CHANGE,),
    kind="eks-karpenter",
    tasks=(
        _validate_input("eks_karpenter", "Karpenter pool migration"),
        LambdaTask("eks_karpenter.preflight", "Karpenter version, the pool's budgets, PDBs and pods its drift meets",
                   _KARPENTER),
        LambdaTask("eks_karpenter.change_nodeclass", "EC2NodeClass to AL2023, previous values recorded on it",
                   _KARPENTER | {Access.KUBERNETES_NODECLASS_PATCH, Access.IDEMPOTENCY}),
        LambdaTask("eks_karpenter.check_drift", "Follow Karpenter's drift: AL2 nodes left, PDB-blocked nodes",
                   _KARPENTER),
        LambdaTask("eks_karpenter.rollback", "Restore the EC2NodeClass (fields still ours), follow the drift back",
                   _KARPENTER | {Access.KUBERNETES_NODECLASS_PATCH}),
        REQUEST_APPROVAL,
    ),
)

_SELF_MANAGED_WRITE = _KUBE | {Access.ASG_READ, Access.ASG_WRITE, Access.CAPACITY_MARK}

EKS_SELF_MANAGED = Workflow(
    name="eks-self-managed",
    asl_file="eks_self_managed.asl.json",
    gates=(gates.BEFORE_DRAIN,),
    kind="eks-self-managed",
    tasks=(
        _validate_input("eks_self_managed", "self-managed node group migration"),
        LambdaTask("eks_self_managed.preflight",
                   "Opt-in tag, bootstrap.sh, version, VPC CNI, container runtime, disruption budgets",
                   _KUBE | {Access.ASG_READ, Access.INSTANCE_READ}),  # INSTANCE_READ: the template's image
        LambdaTask("eks_self_managed.create_version",
                   "New launch-template version: EKS AL2023 AMI, nodeadm NodeConfig user data, IMDSv2",
                   _KUBE | {Access.ASG_READ, Access.LAUNCH_TEMPLATE_WRITE, Access.IDEMPOTENCY}),
        LambdaTask("eks_self_managed.start_canary", "The group on the new version, +1 desired capacity",
                   _SELF_MANAGED_WRITE | {Access.IDEMPOTENCY}),
        LambdaTask("eks_self_managed.check_canary", "Canary node joined, Ready, DaemonSets running",
                   _KUBE | {Access.ASG_READ}),
        LambdaTask("eks_self_managed.replace_next", "Cordon and drain an AL2 node, then terminate its instance",
                   _SELF_MANAGED_WRITE | {Access.KUBERNETES_NODE_PATCH, Access.KUBERNETES_EVICT}),
        LambdaTask("eks_self_managed.wait_settled", "Wait until the replacement node joined and is Ready",
                   _KUBE | {Access.ASG_READ}),
        LambdaTask("eks_self_managed.release_capacity",
                   "Drain and remove the canary's extra instance; the new version becomes the default",
                   _SELF_MANAGED_WRITE | {Access.LAUNCH_TEMPLATE_WRITE, Access.KUBERNETES_NODE_PATCH,
                                          Access.KUBERNETES_EVICT}),
        LambdaTask("eks_self_managed.rollback",
                   "Previous version and capacity back, AL2023 nodes drained and replaced, cordons lifted",
                   _SELF_MANAGED_WRITE | {Access.KUBERNETES_NODE_PATCH, Access.KUBERNETES_EVICT}),
        REQUEST_APPROVAL,
    ),
)

FLEET = Workflow(
    name="fleet",
    asl_file="fleet.asl.json",
    gates=(gates.START,),
    children=(ASG_ROLLOUT, STANDALONE_EC2, EKS_NODEGROUP, EKS_IN_PLACE, EKS_KARPENTER, EKS_SELF_MANAGED),
    tasks=(
        LambdaTask("fleet.load_wave", "Validate a wave's input and read its targets from the plan",
                   frozenset({Access.PLAN_READ, Access.EXECUTION_READ})),
        LambdaTask("fleet.summarize_wave", "Count a wave's outcomes against its tolerated failure percentage", _BASE),
        REQUEST_APPROVAL,
    ),
)

# Children before the workflows that start them: the stack creates them in this order.
WORKFLOWS: tuple[Workflow, ...] = (ASG_ROLLOUT, STANDALONE_EC2, EKS_NODEGROUP, EKS_IN_PLACE, EKS_KARPENTER,
                                   EKS_SELF_MANAGED, FLEET)


_SUBSTITUTION = re.compile(r"\$\{(\w+)\}")


def render_definition(workflow: Workflow, values: dict[str, str]) -> str:
    """The ASL with `${Name}` replaced, as CDK's definition_substitutions does."""

    def replace(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{workflow.asl_file}: no value for ${{{match.group(1)}}}")
        return values[match.group(1)]

    return _SUBSTITUTION.sub(replace, workflow.asl_path.read_text())
