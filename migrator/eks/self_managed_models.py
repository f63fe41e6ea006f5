"""The self-managed node group migration's input, what each state of eks_self_managed.asl.json returns, and the
state they add up to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from migrator.eks.models import NodegroupInput
from migrator.eks.results import Check, Drained
from migrator.failures import Caught

# The drain and IMDS options mean what they mean for a managed node group: one definition each (default, bounds,
# description), the managed group's.
_SHARED = NodegroupInput.model_fields


class SelfManagedInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster_name: str = _SHARED["cluster_name"]
    group_name: str = Field(min_length=1, max_length=255, pattern=r"^[^:]+$",
                            description="the Auto Scaling group whose AL2 instances join the cluster")
    imds_hop_limit: Literal[1, 2] = _SHARED["imds_hop_limit"]
    canary_deadline_seconds: int = Field(default=1_800, ge=60, le=86_400,
                                         description="how long the canary node may take to join the cluster, turn "
                                                     "Ready and run every DaemonSet")
    replace_deadline_seconds: int = Field(default=1_800, ge=300, le=86_400,
                                          description="per old node: how long its replacement may take to join "
                                                      "and turn Ready")
    drain_deadline_seconds: int = _SHARED["drain_deadline_seconds"]
    delete_bare_pods: bool = _SHARED["delete_bare_pods"]
    delete_empty_dir_data: bool = _SHARED["delete_empty_dir_data"]
    pdb_blocks: bool = _SHARED["pdb_blocks"]
    approval_timeout_seconds: int = _SHARED["approval_timeout_seconds"]

    @property
    def target(self) -> str:
        return f"eks/{self.cluster_name}/{self.group_name}"


class CanaryCapacity(BaseModel):
    """What the canary added to the group, kept on the group itself (tag CANARY_TAG) so any later step,
    and the rollback, undo exactly that while it stands."""

    execution: str  # digest of the execution ARN
    desired: int  # the desired capacity the canary set
    raised_max_to: int | None = None  # MaxSize we raised for it


class Preflight(BaseModel):
    cluster_name: str
    cluster_version: str
    already_migrated: bool
    checks: dict[str, Check | str]
    template_id: str = ""
    original_version: str = ""  # the version number the group's instances run
    restore_version: str = ""  # how the group named it (`$Default`, `$Latest` or the number)
    original_image_id: str = ""
    old_nodes: list[str] = []
    kubelet: dict = {}  # NodeConfig kubelet settings from bootstrap.sh's flags
    desired: int = 0
    max_size: int = 0


class LaunchVersion(BaseModel):
    version: str
    image_id: str
    created: bool


class Canary(BaseModel):
    capacity: CanaryCapacity
    started_at: float
    changed: bool


class CanaryNode(BaseModel):
    """The evidence of the before-drain gate."""

    instance_id: str
    node: str
    ready: bool
    daemonsets: list[str]
    seconds_since_start: int


class Replaced(BaseModel):
    """One old node drained and its instance terminated (the group launches an AL2023 one), or none left."""

    node: str | None
    instance_id: str | None
    drained: Drained | None = None
    started_at: float
    remaining_al2: int


class Settled(BaseModel):
    nodes: list[str]
    remaining_al2: int


class Finalized(BaseModel):
    version: str
    desired: int


class Rollback(BaseModel):
    error: str
    cause: str


class SelfManagedState(Caught):
    """One field per ResultPath of eks_self_managed.asl.json."""

    input: SelfManagedInput
    target: str
    preflight: Preflight | None = None
    version: LaunchVersion | None = None
    canary: Canary | None = None
    canary_node: CanaryNode | None = None
    drain_approval: dict | None = None  # the approver's record
    replaced: Replaced | None = None
    settled: Settled | None = None
    result: Finalized | None = None
    rollback: Rollback | None = None
