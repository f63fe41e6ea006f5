def pascal_case(name: str) -> str:
    """asg_rollout / asg-rollout -> AsgRollout, for construct ids."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
