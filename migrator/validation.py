"""Turning an execution input into a typed model, or one clear error naming the field."""

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from migrator.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(input)"
        problems.append(f"{field}: {item['msg']}")
    return "; ".join(problems)


def parse_input(model: type[Model], data: object) -> Model:
    """Strict, as the JSON was written: "off" is not a boolean and "0" not an integer (a typo must not become a
    setting). Through JSON, so strict still reads enum values and ISO dates as JSON gives them."""
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as error:
        raise InvalidInput(f"invalid input: {describe_validation_error(error)}") from None
