"""Named errors. Their class names reach Step Functions as the error name, so the
ASL decides with Retry/Catch on them (never a sleep loop in a Lambda)."""


class MigrationError(Exception):
    """Base class; the message is what an operator reads in the execution."""


class InvalidInput(MigrationError):
    """The execution input is invalid; raised before any AWS change."""


class NotReadyYet(MigrationError):
    """A polled condition is not met yet; the state's Retry backs off and asks again."""


class Throttled(MigrationError):
    """AWS throttled a call after the SDK's own retries; the state's Retry backs off."""


class PreflightFailed(MigrationError):
    """The target cannot be migrated as it is; nothing was changed."""


class AmiNotAl2023(MigrationError):
    """The AMI resolved for the new version is not Amazon Linux 2023."""


class CanaryUnhealthy(MigrationError):
    """The canary instance failed a health check or an alarm fired."""


class DeadlineExceeded(MigrationError):
    """A polled condition did not come true before its deadline."""


class RefreshFailed(MigrationError):
    """The instance refresh ended in a state other than Successful."""


class RollbackFailed(MigrationError):
    """The rollback could not restore the group; an operator must look."""


class SnapshotFailed(MigrationError):
    """A snapshot of the instance's volumes ended in state `error`."""


class InstanceUnhealthy(MigrationError):
    """The replacement instance failed a status check, its health script or an alarm."""


class CutoverFailed(MigrationError):
    """Moving the Elastic IP or the DNS record failed."""


class EvictionBlocked(MigrationError):
    """A PodDisruptionBudget answered 429; the state's Retry backs off and tries again."""


class NodegroupFailed(MigrationError):
    """The new node group ended CREATE_FAILED or DEGRADED, or a deletion failed."""


class NotOurs(MigrationError):
    """A resource the run would change is not the migration's: no opt-in tag, or a node group
    another execution (or team) created. Nothing of it is touched."""


class DrainRefused(MigrationError):
    """Pods a drain may not evict without the operator's consent (as kubectl drain refuses them):
    no controller, emptyDir data, more than one disruption budget."""


class EvictionFailed(MigrationError):
    """The Eviction API answered an error no retry can fix (a 500: e.g. a pod covered by two budgets)."""


class QuiesceFailed(MigrationError):
    """The quiesce commands failed on the old server: its writes were not stopped, so nothing moves."""


class SyncFailed(MigrationError):
    """The data volumes could not be moved to the replacement, or are not what the old server had."""


class CompatibilityBlocked(MigrationError):
    """The host runs what AL2023 cannot (a blocker of migrator/compat/rules.yaml); nothing was changed.
    The input's `compatibility: warn` lets the run go on."""


class ParityMissing(MigrationError):
    """The replacement lacks what the old host had (a service, a listening port, a cron entry, a mount)
    and the input does not accept the difference; the ordinary rollback follows."""


class UpdateFailed(MigrationError):
    """EKS's update of a managed node group ended Failed or Cancelled (e.g. PodEvictionFailure,
    NodeCreationFailure): the error names EKS's own error codes and messages."""


class ConcurrentChange(MigrationError):
    """Someone else changed an object the run changes (or changed back) since the run read it: nothing of
    theirs is overwritten; an operator decides."""
