"""template.yaml facts and the CloudFormation stack's life: can it be
deployed now, what did it output, what survives its deletion."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError, WaiterError

from critic import REPO_ROOT
from critic.errors import UsageError
from critic.deploy.aws import AwsError, error_code

TEMPLATE = REPO_ROOT / "template.yaml"
# The template's table of AWS Deep Learning Containers registries per region,
# from which it builds the default PyTorch inference image URI.
IMAGE_MAPPING = "DeepLearningContainers"
INFERENCE_IMAGE = "pytorch-inference:2.6.0-cpu-py312"

# States CloudFormation accepts a change set in. REVIEW_IN_PROGRESS: a change
# set was created and never run; SAM treats the stack as new.
DEPLOYABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_FAILED",
              "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"}
# States only deletion gets out of.
MUST_DELETE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}


@dataclass(frozen=True)
class Template:
    path: Path
    parameters: dict[str, dict]
    outputs: tuple[str, ...]
    image_regions: tuple[str, ...] | None  # None: the template has no such table
    retained: dict[str, str]  # logical id -> type of resources with DeletionPolicy: Retain


def read_template(path: Path = TEMPLATE) -> Template:
    from critic.cfn_yaml import TemplateError, load_yaml

    try:
        document = load_yaml(path)
    except TemplateError as error:
        raise UsageError(str(error)) from None
    mapping = document.get("Mappings", {}).get(IMAGE_MAPPING)
    return Template(
        path=path,
        parameters=dict(document.get("Parameters") or {}),
        outputs=tuple(document.get("Outputs") or {}),
        image_regions=tuple(sorted(mapping)) if isinstance(mapping, dict) else None,
        retained={name: resource.get("Type", "") for name, resource in document["Resources"].items()
                  if resource.get("DeletionPolicy") == "Retain"},
    )


def suggested_image(region: str) -> str | None:
    """The PyTorch 2.6 CPU inference image of a region, from the SageMaker SDK's
    own table (read as a file: importing the SDK takes seconds)."""
    spec = importlib.util.find_spec("sagemaker")
    if not spec or not spec.submodule_search_locations:
        return None
    config = Path(list(spec.submodule_search_locations)[0]) / "image_uri_config" / "pytorch.json"
    try:
        registries = json.loads(config.read_text())["inference"]["versions"]["2.6.0"]["registries"]
    except (OSError, KeyError, ValueError):
        return None
    if region not in registries:
        return None
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{registries[region]}.dkr.ecr.{region}.{suffix}/{INFERENCE_IMAGE}"


def check_region(template: Template, region: str, image_uri: str | None) -> None:
    """The template picks the inference image by region; elsewhere one must be named."""
    if image_uri or template.image_regions is None or region in template.image_regions:
        return
    suggestion = suggested_image(region)
    example = suggestion or f"<account>.dkr.ecr.{region}.amazonaws.com/<repository>:<tag>"
    raise UsageError(
        f"template.yaml knows no PyTorch inference image in {region}. Deploy to one of "
        f"{', '.join(template.image_regions)} (--region), or name an image in {region} with "
        f"--image-uri, e.g. --image-uri {example}")


def describe(cfn, name: str) -> dict | None:
    """The stack, or None if there is none of that name."""
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if error_code(error) == "ValidationError" and "does not exist" in str(error):
            return None
        raise


def _watch(name: str, region: str) -> str:
    return (f"aws cloudformation describe-stacks --stack-name {name} --region {region} "
            "--query 'Stacks[0].StackStatus'")


def _events(name: str, region: str) -> str:
    return f"aws cloudformation describe-stack-events --stack-name {name} --region {region}"


def check_deployable(stack: dict | None, name: str, region: str) -> None:
    """Raises with what to do when CloudFormation would refuse to update the stack."""
    if stack is None or stack["StackStatus"] in DEPLOYABLE:
        return
    status = stack["StackStatus"]
    reason = f" ({stack['StackStatusReason']})" if stack.get("StackStatusReason") else ""
    if status in MUST_DELETE:
        what = "a deletion failed" if status == "DELETE_FAILED" else "its first deployment failed"
        raise AwsError(
            f"stack {name} in {region} is {status}{reason}: {what}, and CloudFormation cannot update it. "
            f"See why with `{_events(name, region)}`, delete it with `critic destroy --stack-name {name} "
            f"--region {region}` (its buckets are kept), then deploy again.")
    if status.endswith("_IN_PROGRESS"):
        raise AwsError(
            f"stack {name} in {region} is {status}: another operation is running. Wait until it ends "
            f"(watch it with `{_watch(name, region)}`), then run this again.")
    if status == "UPDATE_ROLLBACK_FAILED":
        raise AwsError(
            f"stack {name} in {region} is UPDATE_ROLLBACK_FAILED{reason}: an update failed and so did its "
            f"rollback. Finish the rollback with `aws cloudformation continue-update-rollback --stack-name "
            f"{name} --region {region}` (add --resources-to-skip for resources that cannot roll back; see "
            f"`{_events(name, region)}`), then deploy again.")
    raise AwsError(f"stack {name} in {region} is {status}{reason}, which CloudFormation cannot update; "
                   f"see `{_events(name, region)}`, or delete it with `critic destroy`.")


def outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


@dataclass(frozen=True)
class Kept:
    logical_id: str
    type: str
    physical_id: str


def retained_resources(cfn, name: str, template: Template) -> list[Kept]:
    """The stack's resources that its deletion keeps (DeletionPolicy: Retain)."""
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    return [Kept(r["LogicalResourceId"], r["ResourceType"], r["PhysicalResourceId"])
            for r in resources if r["LogicalResourceId"] in template.retained and r.get("PhysicalResourceId")]


def delete(cfn, name: str, region: str, already_deleting: bool = False, delay: int = 15) -> None:
    """DeleteStack, then wait (up to an hour) until it is gone."""
    if not already_deleting:
        cfn.delete_stack(StackName=name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, 3600 // max(delay, 1))})
    except WaiterError as error:
        stack = describe(cfn, name)
        status = stack["StackStatus"] if stack else "gone"
        reason = f": {stack['StackStatusReason']}" if stack and stack.get("StackStatusReason") else ""
        raise AwsError(f"deleting stack {name} in {region} did not finish ({status}{reason}; {error}). "
                       f"See `{_events(name, region)}`, fix the cause and run `critic destroy` again.") from None
