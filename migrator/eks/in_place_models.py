"""The in-place update of a managed node group whose launch template names a custom AMI
(state_machines/eks_in_place.asl.json): its execution input, what each state returns, the state."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from migrator.eks.models import CLUSTER_NAME, NAME, DeleteBarePods, DeleteEmptyDirData, ImdsHopLimit, PdbBlocks
from migrator.eks.results import Check, Rollback
from migrator.failures import Caught
from migrator.fields import ApprovalTimeout


class InPlaceInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster_name: str = Field(pattern=CLUSTER_NAME, description="the EKS cluster")
    nodegroup_name: str = Field(pattern=NAME, description="the managed node group whose launch template names a "
                                                          "custom AL2 AMI")
    imds_hop_limit: ImdsHopLimit
    force: bool = Field(default=False, description="EKS's `force`: pods a disruption budget keeps are deleted "
                                                   "after EKS's 15 minutes instead of failing the update "
                                                   "(the budget is then not respected)")
    delete_bare_pods: DeleteBarePods  # EKS's update evicts them as a drain would
    delete_empty_dir_data: DeleteEmptyDirData
    pdb_blocks: PdbBlocks
    update_deadline_seconds: int = Field(default=7_200, ge=600, le=86_400,
                                         description="how long EKS's update (and a rollback's) may take")
    validate_deadline_seconds: int = Field(default=900, ge=60, le=86_400,
                                           description="how long, after the update, every node may take to be "
                                                       "Ready on AL2023 and every budget to be met")
    approval_timeout_seconds: ApprovalTimeout

    @property
    def target(self) -> str:
        return f"eks/{self.cluster_name}/{self.nodegroup_name}"


class LaunchTemplateRef(BaseModel):
    id: str
    name: str = ""
    version: str


class InPlacePreflight(BaseModel):
    """`path` says how the group migrates and `reason` why; a group already on AL2023 ends the run here."""

    cluster_version: str
    path: Literal["in-place", "blue-green"]
    reason: str
    already_migrated: bool
    checks: dict[str, Check]
    launch_template: LaunchTemplateRef | None = None  # the group's, as it is before any change
    image_id: str = ""  # the AL2023 EKS-optimized AMI of the cluster's version
    image_source: str = ""
    kubelet: dict = {}  # NodeConfig kubelet settings from the old user data
    nodes: list[str] = []
    cordoned_before: list[str] = []  # unschedulable before the run: not ours to uncordon


class Versioned(BaseModel):
    """The launch-template version the update moves to."""

    launch_template_id: str
    version: str
    previous_version: str
    image_id: str
    created: bool


class UpdateStarted(BaseModel):
    update_id: str
    started: bool  # False: an update of this version was already there (a retry)
    started_at: float


class Followed(BaseModel):
    update_id: str
    status: str


class InPlaceValidated(BaseModel):
    nodes: list[str]
    daemonsets_everywhere: bool
    budgets: list[str]  # each budget with its healthy / desired pods


class InPlaceState(Caught):
    """One field per ResultPath of eks_in_place.asl.json."""

    input: InPlaceInput
    target: str
    preflight: InPlacePreflight | None = None
    version: Versioned | None = None
    approval: dict | None = None  # the approver's record
    update: UpdateStarted | None = None
    followed: Followed | None = None
    result: InPlaceValidated | None = None
    rollback: Rollback | None = None


class InPlaceTask(BaseModel):
    execution: str
    state: InPlaceState

    @property
    def target(self) -> str:
        return self.state.target
