"""Turning an execution input into a typed model, or one clear error naming the field."""

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from migrator.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)


# A model validator's message that names the field it is about ("nodegroups: a cluster needs ..."): the field is
# joined to where the model sits, so the line names eks_clusters.0.nodegroups, not eks_clusters.0.
_NAMED_FIELD = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.S)


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        message = item["msg"]
        if item["type"] == "value_error":  # our own ValueError: its text is the message, without pydantic's prefix
            message = message.removeprefix("Value error, ")
        named = _NAMED_FIELD.match(message) if item["type"] == "value_error" else None
        if named:
            loc.append(named.group(1))
            message = named.group(2)
        problems.append(f"{'.'.join(loc) or '(input)'}: {message}")
    return "; ".join(problems)


def parse_input(model: type[Model], data: object) -> Model:
    """Strict, as the JSON was written: "off" is not a boolean and "0" not an integer (a typo must not become a
    setting). Through JSON, so strict still reads enum values and ISO dates as JSON gives them."""
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as error:
        raise InvalidInput(f"invalid input: {describe_validation_error(error)}") from None
