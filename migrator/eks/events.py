"""What the node group migration's tasks receive: the execution ARN and the state so far."""

from pydantic import BaseModel

from migrator.aws import client
from migrator.eks.kube import connect
from migrator.eks.nodegroup import Clients
from migrator.eks.results import NodegroupState


class NodegroupTask(BaseModel):
    execution: str
    state: NodegroupState

    @property
    def target(self) -> str:
        return self.state.target


def clients(cluster: str) -> Clients:
    eks = client("eks")
    return Clients(eks=eks, ec2=client("ec2"), ssm=client("ssm"), kube=connect(eks, client("sts"), cluster))
