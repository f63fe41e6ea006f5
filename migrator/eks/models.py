"""The node group migration's execution input."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from migrator.fields import ApprovalTimeout, CompatibilityMode, DeleteBarePods, DeleteEmptyDirData, PdbBlocks

AmiType = Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NVIDIA",
                  "AL2023_x86_64_NEURON", "AL2023_ARM_64_NVIDIA"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
CLUSTER_NAME = r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$"


# Fields both node group workflows take (blue/green and in place), each defined once.
ImdsHopLimit = Annotated[Literal[1, 2], Field(
    default=1, description="1 keeps pods off the node's credentials; 2 only for pods that need IMDS "
                           "(prefer EKS Pod Identity or IRSA)")]
DeleteBarePods = Annotated[bool, Field(default=False, description="evict pods no controller recreates: they are "
                                                                  "gone for good (kubectl drain `--force`)")]
DeleteEmptyDirData = Annotated[bool, Field(default=False, description="evict pods with `emptyDir` volumes: their "
                                                                      "data is lost (kubectl drain "
                                                                      "`--delete-emptydir-data`)")]
PdbBlocks = Annotated[bool, Field(default=True, description="a PodDisruptionBudget that allows no disruption at "
                                                            "pre-flight fails the run before any change")]


class NodegroupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster_name: str = Field(pattern=CLUSTER_NAME, description="the EKS cluster")
    nodegroup_name: str = Field(pattern=NAME, description="the AL2 managed node group")
    ami_type: AmiType = Field(default="AL2023_x86_64_STANDARD", description="the new node group's AMI type")
    new_nodegroup_name: str | None = Field(default=None, pattern=NAME,
                                           description="the new node group's name; default `<old>-al2023`")
    launch_template: Literal["custom", "none"] = Field(
        default="custom", description="`custom`: a launch template of ours (IMDSv2, hop limit, nodeadm `NodeConfig` "
                                      "with the kubelet settings the old template set); `none`: EKS's default "
                                      "template (no IMDS hop limit control)")
    compatibility: CompatibilityMode
    imds_hop_limit: ImdsHopLimit
    drain_batch_size: int = Field(default=1, ge=1, le=100, description="nodes drained at a time")
    drain_deadline_seconds: int = Field(default=900, ge=60, le=86_400,
                                        description="per node, from its first eviction, like EKS's own "
                                                    "managed drain")
    delete_bare_pods: DeleteBarePods
    delete_empty_dir_data: DeleteEmptyDirData
    pdb_blocks: PdbBlocks
    nodegroup_deadline_seconds: int = Field(default=3_600, ge=300, le=86_400,
                                            description="how long the new group may take to be ACTIVE with every "
                                                        "node Ready")
    approval_timeout_seconds: ApprovalTimeout

    @field_validator("new_nodegroup_name")
    @classmethod
    def _not_the_old_group(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value == info.data.get("nodegroup_name"):
            raise ValueError("must differ from nodegroup_name: the new group is created beside the old one")
        return value

    @property
    def new_name(self) -> str:
        return self.new_nodegroup_name or f"{self.nodegroup_name[:56]}-al2023"  # EKS names are at most 63

    @property
    def target(self) -> str:
        return f"eks/{self.cluster_name}/{self.nodegroup_name}"
