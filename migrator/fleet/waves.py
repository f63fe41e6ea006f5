"""A wave on the fleet state machine: loading it, and judging its outcome."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from migrator.errors import InvalidInput, MigrationError
from migrator.fields import ApprovalTimeout, MaxConcurrency, ToleratedFailurePercentage
from migrator.failures import CaughtError
from migrator.fleet.plan import KIND_WORKFLOW


class WaveFailed(MigrationError):
    """More targets failed than the wave tolerates."""


class WaveTarget(BaseModel):
    model_config = ConfigDict(extra="allow")

    target: str
    kind: str = Field(pattern="^(" + "|".join(KIND_WORKFLOW) + ")$")
    instances: int = Field(ge=1)
    execution_name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    input: dict


class WaveInput(BaseModel):
    """The fleet state machine's input; the cdk.json schedules are validated with it too (stacks/settings.py)."""

    model_config = ConfigDict(extra="forbid")

    plan_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="the plan, as `start` stored it")
    wave: int = Field(ge=0, le=999, description="the wave's number in the plan (0 is the canary wave)")
    targets: list[WaveTarget] | None = Field(default=None,
                                             description="the wave's targets inline; default: read from the plan")
    max_concurrency: MaxConcurrency
    tolerated_failure_percentage: ToleratedFailurePercentage
    approval_timeout_seconds: ApprovalTimeout


# The audit table's partition key of a plan's waves; IAM limits LoadWave to these items (stacks/permissions.py).
PLAN_KEY_PREFIX = "plan#"


class WaveState(WaveInput):
    """One field per ResultPath of fleet.asl.json; LoadWave's result is the whole state."""

    model_config = ConfigDict(extra="ignore")

    targets: list[WaveTarget]  # those still to run
    already_done: list[dict]  # those whose execution already succeeded, as RunTargets reports them
    instances: int
    approval: dict | None = None  # the approver's record
    results: list[dict] | None = None  # RunTargets' report of each target
    summary: dict | None = None
    error: CaughtError | None = None


class ChildExecution(BaseModel):
    status: str
    execution_arn: str


class TargetRun(BaseModel):
    """The state of one iteration of RunTargets: one field per ResultPath inside it."""

    target: WaveTarget
    result: ChildExecution | None = None
    failure: CaughtError | None = None


class WaveResults(BaseModel):
    """What the wave's last state receives: each child execution's outcome."""

    execution: str
    wave: int
    tolerated_failure_percentage: float
    results: list[dict]
    already_done: list[dict] = []


def wave_key(plan_id: str, wave: int) -> dict:
    return {"pk": {"S": f"{PLAN_KEY_PREFIX}{plan_id}"}, "sk": {"S": f"wave#{wave:03d}"}}


def store_plan(dynamodb, table: str, plan: dict) -> None:
    """Each wave as one item of the audit table, so a schedule can start a wave by number."""
    for wave in plan["waves"]:
        dynamodb.put_item(TableName=table, Item={
            **wave_key(plan["plan_id"], wave["wave"]),
            "target": {"S": f"wave-{wave['wave']}"},
            "action": {"S": "wave-planned"},
            "at": {"S": plan["created_at"]},
            "detail": {"S": json.dumps(wave["targets"])},
        })


def load_wave(dynamodb, sfn, table: str, request: WaveInput, state_machines: dict[str, str]) -> WaveState:
    """The wave's targets, less those whose execution (named by the plan) already
    succeeded: a retried wave resumes, it never starts a target twice."""
    targets = request.targets
    if targets is None:
        item = dynamodb.get_item(TableName=table, Key=wave_key(request.plan_id, request.wave)).get("Item")
        if item is None:
            raise InvalidInput(f"invalid input: wave: plan {request.plan_id} has no wave {request.wave}")
        targets = [WaveTarget.model_validate(t) for t in json.loads(item["detail"]["S"])]
    if not targets:
        raise InvalidInput(f"invalid input: targets: wave {request.wave} has no targets")
    to_run, done = [], []
    for target in targets:
        arn = state_machines[target.kind].replace(":stateMachine:", ":execution:") + f":{target.execution_name}"
        try:
            status = sfn.describe_execution(executionArn=arn)["status"]
        except sfn.exceptions.ExecutionDoesNotExist:
            status = None
        if status == "SUCCEEDED":
            done.append({"target": target.target, "kind": target.kind, "instances": target.instances,
                         "status": "SUCCEEDED", "execution_arn": arn})
        else:
            to_run.append(target)
    return WaveState(**request.model_dump(exclude={"targets"}), targets=to_run, already_done=done,
                     instances=sum(t.instances for t in targets))


def summarize(results: list[dict], tolerated_percentage: float) -> dict:
    """Counts over every target of the wave (run now or before)."""
    counts = {"targets": len(results), "succeeded": 0, "failed": 0, "instances": 0, "failed_instances": 0}
    failed = []
    for result in results:
        counts["instances"] += result["instances"]
        if result["status"] == "SUCCEEDED":
            counts["succeeded"] += 1
        else:
            counts["failed"] += 1
            counts["failed_instances"] += result["instances"]
            failed.append(result["target"])
    percentage = 100 * counts["failed"] / max(1, counts["targets"])
    summary = {**counts, "failed_percentage": round(percentage, 1), "failed_targets": failed}
    if percentage > tolerated_percentage:
        raise WaveFailed(f"{counts['failed']} of {counts['targets']} targets failed ({percentage:.0f} % > "
                         f"{tolerated_percentage:g} % tolerated): {', '.join(failed[:10])}")
    return summary
