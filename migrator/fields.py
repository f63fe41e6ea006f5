"""Fields several models share, each default and bound in one place.

The execution inputs, the fleet's wave input, the handlers' settings, the deployment
settings (stacks/settings.py) and the rehearsal scenario annotate their fields with
these; the README's input tables are generated from the descriptions (migrator/workstation/docs.py).
"""

from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo

# A Step Functions task token lives at most a year.
MAX_TASK_TOKEN_SECONDS = 365 * 86_400

ApprovalTimeout = Annotated[int, Field(
    default=86_400, ge=60, le=MAX_TASK_TOKEN_SECONDS,
    description="each approval gate's timeout; a gate not answered in time counts as rejected")]

ApprovalReminder = Annotated[int, Field(
    default=3_600, ge=1, le=MAX_TASK_TOKEN_SECONDS,
    description="a pending approval gets one reminder when it expires within this many seconds")]

AlarmNames = Annotated[list[str], Field(
    default_factory=list, max_length=10,
    description="CloudWatch alarms that must not be in ALARM")]

# An inline Map runs at most 40 iterations at once.
MaxConcurrency = Annotated[int, Field(
    default=10, ge=1, le=40, description="targets of the wave migrated at once")]

ToleratedFailurePercentage = Annotated[float, Field(
    default=0, ge=0, le=100, description="the wave fails when more of its targets fail than this")]


# What a drain of a node may destroy only with the operator's consent, as kubectl drain's flags say it
# (node group drains and Karpenter's drift alike).
DeleteBarePods = Annotated[bool, Field(
    default=False, description="evict pods no controller recreates: they are gone for good (kubectl drain `--force`)")]

DeleteEmptyDirData = Annotated[bool, Field(
    default=False, description="evict pods with `emptyDir` volumes: their data is lost (kubectl drain "
                               "`--delete-emptydir-data`)")]

PdbBlocks = Annotated[bool, Field(
    default=True, description="a PodDisruptionBudget that allows no disruption at pre-flight fails the run before "
                              "any change")]


def default_of(annotated: Any) -> Any:
    """The default an annotated type above gives, for code that reads it outside a model."""
    info = FieldInfo.merge_field_infos(*(m for m in annotated.__metadata__ if isinstance(m, FieldInfo)))
    return info.get_default(call_default_factory=True)

CompatibilityMode = Annotated[Literal["block", "warn"], Field(
    default="block",
    description="`block`: a host with an AL2023 compatibility blocker fails the pre-flight, nothing changed; "
                "`warn`: its blockers go into the approval evidence and the run goes on")]

ParityAccept = Annotated[list[Annotated[str, Field(pattern=r"^(service|port|cron|mount) \S.*$", max_length=512)]],
                         Field(default_factory=list, max_length=100,
                               description="differences the replacement may have from the old host: "
                                           "`service NAME`, `port N`, `cron LINE`, `mount PATH`")]
