"""The Karpenter pool migration (state_machines/eks_karpenter.asl.json): its execution input, what each
state returns, the state they add up to, and what each task receives."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from migrator.eks.results import Check
from migrator.failures import Caught
from migrator.fields import ApprovalTimeout, DeleteBarePods, DeleteEmptyDirData, PdbBlocks

NAME = r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$"  # a Kubernetes object name (RFC 1123 label)


class KarpenterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster_name: str = Field(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$", description="the EKS cluster")
    nodepool_name: str = Field(pattern=NAME, description="the Karpenter NodePool whose nodes run AL2")
    drift_deadline_seconds: int = Field(default=3_600, ge=300, le=28_800,
                                        description="how long Karpenter's drift may take to replace every AL2 "
                                                    "node of the pool, from the EC2NodeClass change")
    delete_bare_pods: DeleteBarePods  # Karpenter's drain evicts them: consent is asked here
    delete_empty_dir_data: DeleteEmptyDirData
    pdb_blocks: PdbBlocks
    approval_timeout_seconds: ApprovalTimeout

    @property
    def target(self) -> str:
        return f"eks/{self.cluster_name}/{self.nodepool_name}"


class AmiSelection(BaseModel):
    """The EC2NodeClass fields this migration changes and restores, as the API spells them; None: absent."""

    amiFamily: str | None = None
    amiSelectorTerms: list[dict] | None = None
    userData: str | None = None

    def as_patch(self) -> dict:
        """A JSON merge patch of `spec` setting exactly these fields (null deletes an absent one)."""
        return self.model_dump(mode="json")

    @classmethod
    def of(cls, spec: dict) -> "AmiSelection":
        return cls(**{name: spec.get(name) for name in cls.model_fields})


class KarpenterPreflight(BaseModel):
    """A pool whose EC2NodeClass already selects AL2023 ends the run here."""

    api_version: str  # the Karpenter API the cluster serves (karpenter.k8s.aws)
    nodeclass: str
    already_migrated: bool
    checks: dict[str, Check]
    current: AmiSelection
    wanted: AmiSelection | None = None
    resource_version: str = ""  # of the EC2NodeClass as read: the change must apply to exactly this
    al2_nodes: list[str] = []
    disruptions_allowed: int = 0  # nodes Karpenter may replace at once under the pool's budgets


class Changed(BaseModel):
    nodeclass: str
    previous: AmiSelection
    applied: AmiSelection
    resource_version: str  # of the EC2NodeClass after our change
    at: float


class Drifted(BaseModel):
    nodes: list[str]  # the pool's nodes, all on AL2023 and Ready
    at: float


class KarpenterRollback(BaseModel):
    error: str
    cause: str


class KarpenterState(Caught):
    """One field per ResultPath of eks_karpenter.asl.json."""

    input: KarpenterInput
    target: str
    preflight: KarpenterPreflight | None = None
    change_approval: dict | None = None  # the approver's record
    changed: Changed | None = None
    drifted: Drifted | None = None
    rollback: KarpenterRollback | None = None


class KarpenterTask(BaseModel):
    execution: str
    state: KarpenterState

    @property
    def target(self) -> str:
        return self.state.target
