"""The official Kubernetes client, authenticated to an EKS cluster as EKS does it."""

from __future__ import annotations

import base64
import tempfile

from botocore.signers import RequestSigner
from kubernetes import client as k8s

TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_SECONDS = 60  # presigned URL lifetime; EKS accepts the token for 15 minutes


def eks_token(sts, cluster: str) -> str:
    """`k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL signing the
    `x-k8s-aws-id` header with the cluster name), without padding."""
    region = sts.meta.region_name
    signer = RequestSigner(sts.meta.service_model.service_id, region, "sts", "v4",
                           sts._request_signer._credentials, sts.meta.events)
    url = signer.generate_presigned_url(
        {"method": "GET", "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
         "body": {}, "headers": {"x-k8s-aws-id": cluster}, "context": {}},
        region_name=region, expires_in=TOKEN_SECONDS, operation_name="",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class Kube:
    """The API groups the workflow uses, on one authenticated ApiClient."""

    def __init__(self, api_client: k8s.ApiClient):
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.policy = k8s.PolicyV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)  # Karpenter's NodePools and EC2NodeClasses
        self.extensions = k8s.ApiextensionsV1Api(api_client)  # their CRDs: which versions are served


def connect(eks, sts, cluster: str) -> Kube:
    """Endpoint and CA from DescribeCluster, a fresh EKS token: no kubeconfig."""
    described = eks.describe_cluster(name=cluster)["cluster"]
    configuration = k8s.Configuration()
    configuration.host = described["endpoint"]
    configuration.api_key = {"authorization": "Bearer " + eks_token(sts, cluster)}
    authority = (described.get("certificateAuthority") or {}).get("data")
    if authority:
        with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as handle:
            handle.write(base64.b64decode(authority))
        configuration.ssl_ca_cert = handle.name
    return Kube(k8s.ApiClient(configuration))
