"""Helpers for the deploy tests: a fake SAM CLI that, on `sam deploy`, creates
a stack in moto the way CloudFormation would (outputs, a retained bucket)."""
from __future__ import annotations

import json
from pathlib import Path

import boto3

ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-1"
ARTIFACT_BUCKET = f"critic-artifacts-{ACCOUNT}-{REGION}"
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"

# What the real stack outputs, minus what moto cannot run (SAM, SageMaker).
MODEL_PARAMETERS = ("ModelDataUrl", "ModelSha256", "ModelMetrics", "DeployedAt", "PreviousModelDataUrl")
STAND_IN_TEMPLATE = {
    "Parameters": {name: {"Type": "String", "Default": "none"} for name in MODEL_PARAMETERS},
    "Resources": {
        "InputBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
        "OutputBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
        "FailedEventsQueue": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {
        "ApiUrl": {"Value": API_URL},
        "InputBucketName": {"Value": {"Ref": "InputBucket"}},
        "OutputBucketName": {"Value": {"Ref": "OutputBucket"}},
        "EndpointName": {"Value": "critic-endpoint"},
    },
}


class FakeSam:
    """Records each command; `sam deploy` creates (or keeps) the stack in moto.
    exit_codes: {"build": 1} makes that subcommand fail."""

    def __init__(self, region: str = REGION, exit_codes: dict | None = None):
        self.region = region
        self.exit_codes = exit_codes or {}
        self.commands: list[list[str]] = []
        self.cwds: list[Path] = []

    def __call__(self, command, cwd) -> int:
        command = list(command)
        self.commands.append(command)
        self.cwds.append(Path(cwd))
        verb = command[1]
        if self.exit_codes.get(verb):
            return self.exit_codes[verb]
        if verb == "deploy":
            stack = command[command.index("--stack-name") + 1]
            cfn = boto3.client("cloudformation", region_name=self.region)
            parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in self.overrides().items()
                          if k in MODEL_PARAMETERS]
            if not any(s["StackName"] == stack for s in cfn.list_stacks()["StackSummaries"]
                       if s["StackStatus"] != "DELETE_COMPLETE"):
                cfn.create_stack(StackName=stack, TemplateBody=json.dumps(STAND_IN_TEMPLATE), Parameters=parameters)
            else:  # sam deploy --no-fail-on-empty-changeset: no change is no error
                try:
                    cfn.update_stack(StackName=stack, TemplateBody=json.dumps(STAND_IN_TEMPLATE), Parameters=parameters)
                except cfn.exceptions.ClientError as error:
                    if "No updates are to be performed" not in str(error):
                        raise
        return 0

    def overrides(self, index: int = -1) -> dict[str, str]:
        command = self.commands[index]
        start = command.index("--parameter-overrides") + 1
        values = []
        for token in command[start:]:
            if token.startswith("--"):
                break
            values.append(token)
        return dict(v.split("=", 1) for v in values)
