"""Auto Scaling group rollout: canary, approval, instance refresh, revert."""
