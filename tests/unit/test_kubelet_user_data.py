"""The AL2 node's bootstrap.sh kubelet flags carried into the AL2023 node's nodeadm NodeConfig."""

import pytest

from migrator.eks.userdata import (carried_scripts, kubelet_settings, nodeadm_user_data, parse_node_config,
                                   shell_scripts)

CLUSTER = {"name": "prod", "endpoint": "https://prod.eks.example", "certificateAuthority": {"data": "Q0E="},
           "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}


def test_kubelet_extra_args_become_flags_and_max_pods_a_config_setting():
    user_data = ("#!/bin/bash\n/etc/eks/bootstrap.sh prod --use-max-pods false "
                 "--kubelet-extra-args '--max-pods=58 --node-labels=team=web --register-with-taints=gpu=true:NoSchedule'\n")
    assert kubelet_settings(user_data) == {
        "config": {"maxPods": 58},
        "flags": ["--node-labels=team=web", "--register-with-taints=gpu=true:NoSchedule"],
    }


def test_lines_other_than_the_bootstrap_call_are_ignored():
    user_data = "#!/bin/bash\necho --kubelet-extra-args '--v=4'\n/etc/eks/bootstrap.sh prod\n"
    assert kubelet_settings(user_data) == {}


@pytest.mark.parametrize("user_data", [None, ""])
def test_no_user_data_means_no_kubelet_settings(user_data):
    assert kubelet_settings(user_data) == {}


def test_the_node_config_names_the_cluster_so_nodeadm_needs_no_describe_cluster_at_boot():
    config = parse_node_config(nodeadm_user_data(CLUSTER, {}))
    assert config["kind"] == "NodeConfig"
    assert config["spec"] == {"cluster": {"name": "prod", "apiServerEndpoint": "https://prod.eks.example",
                                          "certificateAuthority": "Q0E=", "cidr": "172.20.0.0/16"}}


def test_the_old_kubelet_settings_reach_the_node_config():
    kubelet = {"config": {"maxPods": 58}, "flags": ["--node-labels=team=web"]}
    assert parse_node_config(nodeadm_user_data(CLUSTER, kubelet))["spec"]["kubelet"] == kubelet


def test_user_data_without_a_node_config_part_is_refused():
    with pytest.raises(ValueError, match="node.eks.aws"):
        parse_node_config("Content-Type: text/x-shellscript\n\n#!/bin/bash\n")


MIME_AL2 = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==BOUNDARY=="

--==BOUNDARY==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
set -ex
/etc/eks/bootstrap.sh prod \\
  --kubelet-extra-args '--max-pods=58'
echo 'vm.max_map_count=262144' > /etc/sysctl.d/90-es.conf
mount -t nfs fs-1.efs.example:/ /mnt/shared

--==BOUNDARY==--
"""


def test_what_the_old_user_data_does_besides_bootstrap_is_carried_as_a_shell_script_part():
    [script] = carried_scripts(MIME_AL2)
    assert "bootstrap.sh" not in script and "--kubelet-extra-args" not in script
    assert "vm.max_map_count" in script and "mount -t nfs" in script
    document = nodeadm_user_data(CLUSTER, {}, [script])
    assert parse_node_config(document)["spec"]["cluster"]["name"] == "prod"
    assert shell_scripts(document) == [script]


def test_a_user_data_that_only_bootstraps_carries_nothing():
    assert carried_scripts("#!/bin/bash\nset -e\n/etc/eks/bootstrap.sh prod --kubelet-extra-args '--max-pods=58'\n") == []
    assert carried_scripts(None) == [] and shell_scripts(nodeadm_user_data(CLUSTER, {})) == []
