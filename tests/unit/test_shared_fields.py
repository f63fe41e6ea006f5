"""A field several models share is declared once (migrator/fields.py)."""

from migrator.asg.models import RolloutInput
from migrator.eks.models import NodegroupInput
from migrator.fields import ApprovalTimeout
from migrator.fleet.waves import WaveInput
from migrator.workstation.local.scenario import Approvals
from migrator.standalone.models import MigrationInput


def test_every_gate_timeout_is_the_shared_field():
    (shared,) = ApprovalTimeout.__metadata__
    for model in (RolloutInput, MigrationInput, NodegroupInput, WaveInput):
        field = model.model_fields["approval_timeout_seconds"]
        assert (field.default, field.metadata, field.description) == (shared.default, shared.metadata,
                                                                      shared.description), model.__name__
    assert Approvals().timeout == shared.default  # what a rehearsal's gates get without approvals.timeout
