"""What each state of eks_nodegroup.asl.json returns, and the state they add up to."""

from pydantic import BaseModel

from migrator.compat.checks import Compatibility

from migrator.eks.models import NodegroupInput
from migrator.failures import Caught, CaughtError


class Check(BaseModel):
    ok: bool
    detail: str


class SourceConfig(BaseModel):
    """What the new group copies from the old one (EKS's own shapes inside)."""

    subnets: list[str]
    scaling_config: dict[str, int]
    instance_types: list[str]
    capacity_type: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    node_role: str
    tags: dict[str, str]


class Preflight(BaseModel):
    """A group already on AL2023 ends the run here: `checks` then holds only its AMI type."""

    cluster_version: str
    old: str
    new: str
    already_migrated: bool
    checks: dict[str, Check | str]
    old_nodes: list[str] = []
    config: SourceConfig | None = None
    kubelet: dict = {}  # NodeConfig kubelet settings from the old user data
    old_launch_template: dict | None = None
    carried_scripts: list[str] = []  # the old user data's own commands, text/x-shellscript parts of the new one
    compatibility: Compatibility | None = None  # the carried scripts against the AL2023 rules (if any)


class Created(BaseModel):
    nodegroup: str
    created: bool
    started_at: float
    launch_template: dict | None  # EKS's {id, name, version} of the new group, or ours {id, version}


class Ready(BaseModel):
    nodes: list[str]


class Tainted(BaseModel):
    tainted: list[str]  # nodes changed by this call
    taint: str


class Validated(BaseModel):
    nodes: list[str]
    daemonsets_everywhere: bool


class Drained(BaseModel):
    drained: list[str]
    at: float


class Deleting(BaseModel):
    deleting: str
    started_at: float


class Deleted(BaseModel):
    deleted: str


class Rollback(BaseModel):
    error: str
    cause: str


class NodegroupState(Caught):
    """One field per ResultPath of eks_nodegroup.asl.json."""

    input: NodegroupInput
    target: str  # ValidateInput names the target once, for the messages and the audit log
    preflight: Preflight | None = None
    created: Created | None = None
    ready: Ready | None = None
    tainted: Tainted | None = None
    validated: Validated | None = None
    drain_approval: dict | None = None  # the approver's record
    drained: Drained | None = None
    delete_approval: dict | None = None  # the approver's record
    deleting: Deleting | None = None
    result: Deleted | None = None
    rollback: Rollback | None = None
    delete_error: CaughtError | None = None  # past the point of no return: no rollback
