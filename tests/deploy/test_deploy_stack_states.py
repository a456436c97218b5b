"""The stack's states before deploy and during destroy, template.yaml facts,
and AWS failures as messages (botocore Stubber on CloudFormation)."""
from __future__ import annotations

import datetime

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from critic.errors import UsageError
from critic.deploy.aws import NO_CREDENTIALS, AwsError, Live, aws_errors
from critic.deploy.stack import (
    check_deployable,
    check_region,
    delete,
    describe,
    outputs,
    read_template,
    retained_resources,
)

NOW = datetime.datetime(2025, 1, 1)


@pytest.fixture
def cfn():
    client = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(client) as stub:
        client.stub = stub
        yield client
        stub.assert_no_pending_responses()


def stack(status: str, **extra) -> dict:
    return {"Stacks": [{"StackName": "critic", "StackStatus": status, "CreationTime": NOW, **extra}]}


def test_a_missing_stack_is_none(cfn):
    cfn.stub.add_client_error("describe_stacks", "ValidationError", "Stack with id critic does not exist",
                              400, expected_params={"StackName": "critic"})
    assert describe(cfn, "critic") is None
    check_deployable(None, "critic", "eu-west-1")  # a first deployment


def test_other_describe_errors_are_not_mistaken_for_absence(cfn):
    cfn.stub.add_client_error("describe_stacks", "ValidationError", "1 validation error detected", 400)
    with pytest.raises(ClientError):
        describe(cfn, "critic")


@pytest.mark.parametrize("status", ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE",
                                    "REVIEW_IN_PROGRESS", "IMPORT_COMPLETE"])
def test_settled_stacks_can_be_deployed(cfn, status):
    cfn.stub.add_response("describe_stacks", stack(status), {"StackName": "critic"})
    check_deployable(describe(cfn, "critic"), "critic", "eu-west-1")


@pytest.mark.parametrize("status, expected", [
    ("ROLLBACK_COMPLETE", r"ROLLBACK_COMPLETE \(The following resource\(s\) failed to create: \[Endpoint\]\): "
                          r"its first deployment failed.*critic destroy --stack-name critic --region eu-west-1"),
    ("ROLLBACK_FAILED", r"first deployment failed.*critic destroy"),
    ("DELETE_FAILED", r"a deletion failed.*critic destroy"),
    ("UPDATE_IN_PROGRESS", r"another operation is running.*describe-stacks --stack-name critic"),
    ("UPDATE_ROLLBACK_IN_PROGRESS", r"another operation is running"),
    ("DELETE_IN_PROGRESS", r"another operation is running"),
    ("UPDATE_ROLLBACK_FAILED", r"continue-update-rollback --stack-name critic --region eu-west-1"),
    ("IMPORT_ROLLBACK_FAILED", r"cannot update; see `aws cloudformation describe-stack-events"),
])
def test_unsettled_or_failed_stacks_are_explained(cfn, status, expected):
    reason = {"StackStatusReason": "The following resource(s) failed to create: [Endpoint]"}
    cfn.stub.add_response("describe_stacks", stack(status, **(reason if status == "ROLLBACK_COMPLETE" else {})))
    with pytest.raises(AwsError, match=expected):
        check_deployable(describe(cfn, "critic"), "critic", "eu-west-1")


def test_outputs_by_key(cfn):
    cfn.stub.add_response("describe_stacks", stack("CREATE_COMPLETE", Outputs=[
        {"OutputKey": "ApiUrl", "OutputValue": "https://x.execute-api.eu-west-1.amazonaws.com"}]))
    assert outputs(describe(cfn, "critic")) == {"ApiUrl": "https://x.execute-api.eu-west-1.amazonaws.com"}


def test_the_template_keeps_its_data_buckets_and_outputs_the_api(repo_root):
    template = read_template(repo_root / "template.yaml")
    assert template.retained == {"InputBucket": "AWS::S3::Bucket", "OutputBucket": "AWS::S3::Bucket"}
    assert {"ApiUrl", "InputBucketName", "OutputBucketName"} <= set(template.outputs)
    assert {"ModelDataUrl", "InferenceImageUri"} <= set(template.parameters)
    assert "us-east-1" in template.image_regions and "eu-west-1" in template.image_regions


def test_a_region_without_the_inference_image_needs_image_uri(repo_root):
    template = read_template(repo_root / "template.yaml")
    region = "ap-east-2"
    assert region not in template.image_regions
    with pytest.raises(UsageError) as raised:
        check_region(template, region, None)
    message = str(raised.value)
    assert "no PyTorch inference image in ap-east-2" in message and "us-east-1" in message
    # the SageMaker SDK's own table names the image there
    assert "--image-uri 975050140332.dkr.ecr.ap-east-2.amazonaws.com/pytorch-inference:2.6.0-cpu-py312" in message
    check_region(template, region, "975050140332.dkr.ecr.ap-east-2.amazonaws.com/pytorch-inference:2.6.0-cpu-py312")
    check_region(template, "eu-west-1", None)


def test_retained_resources_are_read_before_deletion(cfn, repo_root):
    template = read_template(repo_root / "template.yaml")
    cfn.stub.add_response("describe_stack_resources", {"StackResources": [
        {"LogicalResourceId": logical, "PhysicalResourceId": physical, "ResourceType": kind,
         "StackName": "critic", "ResourceStatus": "CREATE_COMPLETE", "Timestamp": NOW}
        for logical, physical, kind in [("InputBucket", "critic-input-1", "AWS::S3::Bucket"),
                                        ("OutputBucket", "critic-output-1", "AWS::S3::Bucket"),
                                        ("Endpoint", "arn:endpoint", "AWS::SageMaker::Endpoint")]]},
        {"StackName": "critic"})
    kept = retained_resources(cfn, "critic", template)
    assert [(k.logical_id, k.physical_id) for k in kept] == [("InputBucket", "critic-input-1"),
                                                             ("OutputBucket", "critic-output-1")]


def test_delete_waits_until_the_stack_is_gone(cfn):
    cfn.stub.add_response("delete_stack", {}, {"StackName": "critic"})
    cfn.stub.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"), {"StackName": "critic"})
    cfn.stub.add_client_error("describe_stacks", "ValidationError", "Stack with id critic does not exist", 400)
    delete(cfn, "critic", "eu-west-1", delay=0)


def test_a_failed_deletion_says_why(cfn):
    cfn.stub.add_response("delete_stack", {}, {"StackName": "critic"})
    cfn.stub.add_response("describe_stacks", stack("DELETE_FAILED"))
    cfn.stub.add_response("describe_stacks", stack("DELETE_FAILED", StackStatusReason="bucket not empty"))
    with pytest.raises(AwsError, match=r"did not finish \(DELETE_FAILED: bucket not empty.*describe-stack-events"):
        delete(cfn, "critic", "eu-west-1", delay=0)


def test_a_stack_already_being_deleted_is_only_waited_for(cfn):
    cfn.stub.add_client_error("describe_stacks", "ValidationError", "Stack with id critic does not exist", 400)
    delete(cfn, "critic", "eu-west-1", already_deleting=True, delay=0)  # no DeleteStack


@pytest.mark.parametrize("error, expected", [
    (NoCredentialsError(), "no AWS credentials found.*aws configure"),
    (ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "GetCallerIdentity"),
     "credentials have expired"),
    (ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": "bad"}}, "GetCallerIdentity"),
     "rejected your credentials"),
    (ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "CreateBucket"),
     "AWS denied CreateBucket: not allowed"),
    (ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "DescribeStacks"),
     "DescribeStacks failed: Throttling: slow down"),
    (EndpointConnectionError(endpoint_url="https://s3.eu-west-1.amazonaws.com"), "cannot reach AWS"),
])
def test_aws_failures_become_messages(error, expected):
    with pytest.raises(AwsError, match=expected):
        with aws_errors():
            raise error


def test_no_credentials_is_said_before_any_call(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsError) as raised:
        Live("eu-west-1")
    assert str(raised.value) == NO_CREDENTIALS
