"""`critic deploy --local --artifact NEW`: switch the running local stack
(`critic serve`) to another model the way a deployment's stack update does
on AWS, through the same API calls CloudFormation makes, on the local AWS
endpoint:

1. the artifact goes to the artifact bucket (critic-artifacts-<account>-<region>,
   models/<sha256>/model.tar.gz), as `critic deploy` uploads it;
2. CreateModel with a new name and that ModelDataUrl (CloudFormation replaces
   the Model: a new physical name; the old Model is kept, UpdateReplacePolicy
   Retain);
3. CreateEndpointConfig naming the new model, then UpdateEndpoint, and wait
   for InService (the old model serves until the new one has loaded);
4. UpdateFunctionConfiguration of every function whose environment names the
   old model (BatchFunction's MODEL_NAME is `!GetAtt Model.ModelName`): uploads
   from then on create transform jobs on the new model. Jobs already created
   name the old one and finish on it.

No comparison is made (the local stack is for trying models: `critic compare`
first), and nothing is tagged but the Model. The switch lasts as long as the
stack: `critic serve` starts on its --artifact again.
"""
from __future__ import annotations

import json
import re
import tempfile
import urllib.request
from pathlib import Path

from critic.deploy import artifact as artifacts
from critic.deploy.aws import say
from critic.deploy.buckets import artifact_bucket_name, sha256_of, upload
from critic.deploy.models import now
from critic.errors import UsageError

_SUFFIX = re.compile(r"-[0-9a-f]{12}$")  # what a switch appends to the template's names


def stack_info(aws_url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{aws_url}/_critic/stack", timeout=10) as answer:
            return json.loads(answer.read())
    except OSError as error:
        raise UsageError(f"no local stack answers at {aws_url} ({error}): start it with `critic serve` "
                         "(or set CRITIC_AWS_PORT to its AWS port)") from None


def switch(artifact: Path, aws_url: str, wait_seconds: int = 600, out=None) -> dict:
    """Switch the local stack at `aws_url` to `artifact`; returns what changed."""
    from botocore.exceptions import ClientError

    from critic.local.clients import local_client
    from critic.local.ids import ACCOUNT_ID

    info = stack_info(aws_url)
    region = info["region"]
    if not info.get("endpoints") or not info.get("models"):
        raise UsageError("the local stack has no SageMaker endpoint and model to switch")
    s3, sagemaker, functions = (local_client(service, aws_url, region) for service in ("s3", "sagemaker", "lambda"))
    endpoint_name = info["endpoints"][0]
    with tempfile.TemporaryDirectory(prefix="critic-switch-") as work:
        path = artifacts.local(Path(artifact), Path(work))
        digest = sha256_of(path)
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
            config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
            variant = config["ProductionVariants"][0]
            old_model = variant["ModelName"]
            old = sagemaker.describe_model(ModelName=old_model)
            new_model = f"{_SUFFIX.sub('', old_model)}-{digest[:12]}"
            if new_model == old_model:
                say(f"the endpoint already serves this model ({old_model}): nothing to do")
                return {"model": old_model, "previous": old_model, "changed": False}
            bucket = artifact_bucket_name(ACCOUNT_ID, region)
            if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
                s3.create_bucket(Bucket=bucket)
            uri = upload(s3, path, bucket, f"models/{digest}/model.tar.gz", ACCOUNT_ID, digest)
        except ClientError as error:
            raise UsageError(f"the local stack refused: {error}") from None
    try:
        if not _exists(sagemaker.describe_model, ModelName=new_model):
            say(f"CreateModel {new_model} ({uri})")
            sagemaker.create_model(ModelName=new_model, ExecutionRoleArn=old["ExecutionRoleArn"],
                                   PrimaryContainer={**old["PrimaryContainer"], "ModelDataUrl": uri},
                                   Tags=[{"Key": "critic:sha256", "Value": digest},
                                         {"Key": "critic:deployed-at", "Value": now()}])
        new_config = f"{_SUFFIX.sub('', endpoint['EndpointConfigName'])}-{digest[:12]}"
        if not _exists(sagemaker.describe_endpoint_config, EndpointConfigName=new_config):
            say(f"CreateEndpointConfig {new_config}")
            sagemaker.create_endpoint_config(EndpointConfigName=new_config,
                                             ProductionVariants=[{**variant, "ModelName": new_model}])
        say(f"UpdateEndpoint {endpoint_name} -> {new_config} (the old model serves until the new one has loaded)")
        sagemaker.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=new_config)
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": wait_seconds})
        now_serving = sagemaker.describe_endpoint(EndpointName=endpoint_name)
        if now_serving["EndpointConfigName"] != new_config:
            raise UsageError(f"the endpoint stayed on {now_serving['EndpointConfigName']}: "
                             f"{now_serving.get('FailureReason', 'the update failed')}")
        updated = []
        for function in info["functions"].values():
            variables = functions.get_function_configuration(FunctionName=function["name"]).get(
                "Environment", {}).get("Variables", {})
            if old_model in variables.values():
                say(f"UpdateFunctionConfiguration {function['name']}: {old_model} -> {new_model}")
                functions.update_function_configuration(FunctionName=function["name"], Environment={
                    "Variables": {k: new_model if v == old_model else v for k, v in variables.items()}})
                updated.append(function["name"])
    except ClientError as error:
        raise UsageError(f"the local stack refused: {error}") from None
    print(f"The local stack serves {new_model} ({uri}); it served {old_model}.\n"
          f"Transform jobs already created finish on {old_model}; uploads from now on use {new_model}.",
          file=out)
    return {"model": new_model, "previous": old_model, "changed": True, "functions": updated, "artifact": uri}


def _exists(describe, **name) -> bool:
    from botocore.exceptions import ClientError

    try:
        describe(**name)
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            return False
        raise
