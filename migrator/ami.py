"""Which Amazon Linux an image is, and resolving the AL2023 AMI to use."""

from enum import Enum

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from migrator.aws import error_code
from migrator.config import AL2023_AMI_PARAMETER, AMI_PARAMETER_PATHS
from migrator.errors import AmiNotAl2023, PreflightFailed


class AmiChoice(BaseModel):
    """The AMI source of an execution input: an explicit id, or an SSM parameter
    (default: AWS's public AL2023 one)."""

    model_config = ConfigDict(extra="forbid")

    ami_id: str | None = Field(default=None, pattern=r"^ami-[0-9a-f]{8,17}$",
                               description="an explicit AL2023 AMI id")
    ami_ssm_parameter: str = Field(default=AL2023_AMI_PARAMETER["x86_64"], min_length=1, max_length=2048,
                                   description="the SSM parameter to read the AMI id from (not with `ami_id`)")

    @field_validator("ami_ssm_parameter")
    @classmethod
    def _on_an_ami_path(cls, value: str) -> str:
        # The functions may read only these paths (stacks/permissions.py): refused here, in the first state.
        if not value.startswith(AMI_PARAMETER_PATHS):
            raise ValueError(f"must be under {' or '.join(AMI_PARAMETER_PATHS)}, the AMI parameter paths")
        return value

    @model_validator(mode="after")
    def _one_ami_source(self):
        if self.ami_id and self.ami_ssm_parameter != AL2023_AMI_PARAMETER["x86_64"]:
            raise ValueError("give ami_id or ami_ssm_parameter, not both")
        return self


class OsFamily(str, Enum):
    AL2 = "al2"
    AL2023 = "al2023"
    OTHER = "other"


def os_family(image: dict) -> OsFamily:
    """Decide from the image's name, description and platform details, as AWS
    names its Amazon Linux images (`amzn2-ami-…`, `al2023-ami-…`)."""
    text = " ".join(
        str(image.get(key, "")) for key in ("Name", "Description", "PlatformDetails", "ImageLocation")
    ).lower()
    if "al2023" in text or "amazon linux 2023" in text:
        return OsFamily.AL2023
    if "amzn2" in text or "amazon linux 2 " in text + " ":
        return OsFamily.AL2
    return OsFamily.OTHER


def describe_images(ec2, image_ids: list[str]) -> dict[str, dict]:
    """Images by id, one call per 100 ids. A filter, not ImageIds, so a deregistered
    image is simply absent instead of failing the whole batch."""
    images: dict[str, dict] = {}
    unique = sorted(set(image_ids))
    for start in range(0, len(unique), 100):
        batch = unique[start : start + 100]
        for image in ec2.describe_images(Filters=[{"Name": "image-id", "Values": batch}])["Images"]:
            images[image["ImageId"]] = image
    return images


def resolve_al2023_ami(ssm, ec2, *, ami_id: str | None, ssm_parameter: str) -> dict:
    """The AMI the new version will use: the explicit id, else the SSM parameter's
    value. Either way it must be an AL2023 image that exists."""
    if ami_id is None:
        try:
            ami_id = ssm.get_parameter(Name=ssm_parameter)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise PreflightFailed(f"SSM parameter {ssm_parameter} does not exist") from None
        source = f"ssm:{ssm_parameter}"
    else:
        source = "input"
    try:
        image = describe_images(ec2, [ami_id]).get(ami_id)
    except ClientError as error:
        if not error_code(error).startswith("InvalidAMIID"):
            raise
        image = None
    if image is None:
        raise AmiNotAl2023(f"AMI {ami_id} ({source}) does not exist or is not visible to this account")
    if image.get("State", "available") != "available":  # pending, failed, deregistered, disabled
        raise AmiNotAl2023(f"AMI {ami_id} ({source}) is {image['State']}, not available")
    if os_family(image) is not OsFamily.AL2023:
        raise AmiNotAl2023(f"AMI {ami_id} ({image.get('Name')}) from {source} is not Amazon Linux 2023")
    return {"image_id": ami_id, "name": image.get("Name", ""), "source": source}
