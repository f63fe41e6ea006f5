"""What the self-managed node group migration's tasks receive: the execution ARN and the state so far."""

from pydantic import BaseModel

from migrator.aws import client
from migrator.eks.kube import connect
from migrator.eks.self_managed import Clients
from migrator.eks.self_managed_models import SelfManagedState


class SelfManagedTask(BaseModel):
    execution: str
    state: SelfManagedState

    @property
    def target(self) -> str:
        return self.state.target


def clients(cluster: str) -> Clients:
    eks = client("eks")
    return Clients(autoscaling=client("autoscaling"), ec2=client("ec2"), eks=eks, ssm=client("ssm"),
                   kube=connect(eks, client("sts"), cluster))
