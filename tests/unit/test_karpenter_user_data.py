"""AL2 user data of a Karpenter EC2NodeClass in the form Karpenter merges for AL2023 (migrator/eks/karpenter.py)."""

import email

from migrator.eks.karpenter import al2023_user_data
from migrator.eks.userdata import parse_node_config

SCRIPT = ("#!/bin/bash\nsysctl -w vm.max_map_count=262144\n"
          "/etc/eks/bootstrap.sh prod --kubelet-extra-args '--max-pods=30 --node-labels=team=data'\n")


def parts(document: str) -> dict[str, str]:
    return {p.get_content_type(): p.get_payload() for p in email.message_from_string(document).walk()}


def test_kubelet_settings_go_to_a_node_config_and_the_rest_of_the_script_stays():
    converted = al2023_user_data(SCRIPT)
    config = parse_node_config(converted)
    assert config["spec"] == {"kubelet": {"config": {"maxPods": 30}, "flags": ["--node-labels=team=data"]}}
    assert "cluster" not in config["spec"]  # Karpenter adds the endpoint, CA and CIDR itself
    shell = parts(converted)["text/x-shellscript"]
    assert "sysctl -w vm.max_map_count=262144" in shell and "bootstrap.sh" not in shell


def test_a_mime_document_is_read_part_by_part():
    mime = ('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n--B\n'
            'Content-Type: text/x-shellscript; charset="us-ascii"\n\n' + SCRIPT + "\n--B--\n")
    converted = al2023_user_data(mime)
    assert parse_node_config(converted)["spec"]["kubelet"]["config"] == {"maxPods": 30}
    assert "MIME-Version" not in parts(converted)["text/x-shellscript"]


def test_no_user_data_stays_none_and_a_bare_shebang_leaves_nothing():
    assert al2023_user_data(None) is None
    assert al2023_user_data("#!/bin/bash\n") is None
