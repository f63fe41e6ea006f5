"""The node group migration's execution input."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AmiType = Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NVIDIA",
                  "AL2023_x86_64_NEURON", "AL2023_ARM_64_NVIDIA"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"


class NodegroupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster_name: str = Field(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
    nodegroup_name: str = Field(pattern=NAME)
    ami_type: AmiType = "AL2023_x86_64_STANDARD"
    new_nodegroup_name: str | None = Field(default=None, pattern=NAME)  # default: <old>-al2023
    # custom: a launch template of ours (IMDSv2, hop limit, nodeadm NodeConfig with
    # the kubelet settings the old template set); none: EKS's default template.
    launch_template: Literal["custom", "none"] = "custom"
    # 1 keeps pods off the node's credentials; 2 only for pods that need IMDS
    # (prefer EKS Pod Identity or IRSA).
    imds_hop_limit: Literal[1, 2] = 1
    drain_batch_size: int = Field(default=1, ge=1, le=100)
    drain_deadline_seconds: int = Field(default=900, ge=60, le=86_400)  # per node, like EKS's own drain
    # A PDB that allows no disruption at pre-flight fails the run before any change.
    pdb_blocks: bool = True
    nodegroup_deadline_seconds: int = Field(default=3_600, ge=300, le=86_400)
    approval_timeout_seconds: int = Field(default=86_400, ge=60, le=31_536_000)

    @property
    def new_name(self) -> str:
        return self.new_nodegroup_name or f"{self.nodegroup_name}-al2023"[:63]

    @property
    def target(self) -> str:
        return f"eks/{self.cluster_name}/{self.nodegroup_name}"
