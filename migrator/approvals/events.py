"""What the approval gates' task (lambdas/approvals.py `request`) receives from every workflow."""

from pydantic import BaseModel, Field


class ApprovalRequest(BaseModel):
    task_token: str = Field(min_length=1)
    gate: str
    target: str
    execution: str
    timeout_seconds: int = Field(ge=60)
    evidence: dict = {}
