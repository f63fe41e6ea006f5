"""Which way a managed node group migrates: in place (its launch template names a custom AMI, which
eks_in_place.asl.json swaps) or blue/green (a new node group, eks_nodegroup.asl.json). The pre-flights of
both workflows and `plan` decide with this one rule."""

from migrator.aws import launch_template_data

IN_PLACE, BLUE_GREEN = "in-place", "blue-green"


def update_path(ec2, group: dict) -> tuple[str, str, dict | None]:
    """Which path a managed node group takes, why, and its launch-template version's data when it names an AMI:
    a launch template naming a custom AMI can swap it in place; anything else (EKS's AMI types, a template
    without an AMI) cannot change the AMI family in place: a new node group (blue/green)."""
    template = group.get("launchTemplate")
    if not template:
        return BLUE_GREEN, f"no launch template (AMI type {group.get('amiType', '?')}): blue/green", None
    data = launch_template_data(ec2, template["id"], template["version"])
    if not data.get("ImageId"):
        return BLUE_GREEN, (f"launch template {template.get('name') or template['id']} version {template['version']} "
                            f"names no AMI (AMI type {group.get('amiType', '?')}): blue/green"), None
    return IN_PLACE, (f"launch template {template.get('name') or template['id']} version {template['version']} names "
                      f"the custom AMI {data['ImageId']}: the AMI is swapped in place"), data
