"""critic deploy and critic destroy end to end against moto, with the SAM CLI
replaced by a recorder (FakeSam) that creates the stack in moto."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import boto3
import pytest

from critic.errors import UsageError
from critic.deploy.aws import AwsError
from critic.deploy.buckets import sha256_of
from critic.deploy.flows import DeployOptions, DestroyOptions, deploy, destroy
from deploy_support import ARTIFACT_BUCKET, API_URL, REGION, FakeSam


def test_deploy_uploads_the_artifact_runs_sam_and_wires_the_page(aws, paths, tiny_artifact, capsys):
    sam = FakeSam()
    options = DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True,
                            parameters=["EndpointKind=provisioned"])
    assert deploy(options, runner=sam, paths=paths, interactive=False) == 0

    digest = sha256_of(tiny_artifact)
    key = f"models/{digest}/model.tar.gz"
    assert aws.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read() == tiny_artifact.read_bytes()
    build, sam_deploy = sam.commands
    assert build[1:] == ["build", "--template-file", "template.yaml"]
    assert sam_deploy[1:] == [
        "deploy", "--stack-name", "critic", "--region", REGION, "--capabilities", "CAPABILITY_IAM",
        "--resolve-s3", "--parameter-overrides", f"ModelDataUrl=s3://{ARTIFACT_BUCKET}/{key}",
        f"ModelSha256={digest}", f"ModelMetrics={sam.overrides()['ModelMetrics']}", f"DeployedAt={sam.overrides()['DeployedAt']}",
        "PreviousModelDataUrl=none", "EndpointKind=provisioned", "--no-fail-on-empty-changeset", "--no-confirm-changeset"]
    assert set(sam.cwds) == {paths.workdir}
    assert sam.overrides()["ModelMetrics"].startswith("validation_accuracy:")  # runs/<time>/metrics.json, beside it

    config = paths.web_config.read_text()
    assert f"window.CRITIC_CONFIG = {{ apiUrl: {json.dumps(API_URL)} }};" in config
    out = capsys.readouterr().out
    assert f"{API_URL}/score" in out and f"curl -sS -X POST {API_URL}/score" in out
    assert "s3://critic-inputbucket-" in out.lower() and f"s3://{ARTIFACT_BUCKET}/{key}" in out


def test_redeploying_the_same_artifact_uploads_nothing_and_keeps_its_uri(aws, paths, tiny_artifact, capsys):
    sam = FakeSam()
    options = DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True)
    deploy(options, runner=sam, paths=paths, interactive=False)
    deploy(options, runner=sam, paths=paths, interactive=False)
    assert "is already there (same SHA-256): not uploading again" in capsys.readouterr().err
    assert sam.overrides(1)["ModelDataUrl"] == sam.overrides(3)["ModelDataUrl"]
    assert len(aws.list_objects_v2(Bucket=ARTIFACT_BUCKET)["Contents"]) == 1


def test_a_model_dir_is_packaged_and_a_new_model_gets_a_new_uri(aws, paths, tiny_training, tiny_artifact):
    sam = FakeSam()
    deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True), runner=sam, paths=paths,
           interactive=False)
    model_dir = paths.workdir / "model-dir"
    shutil.copytree(tiny_training / "model", model_dir)
    (model_dir / "config.json").write_text((model_dir / "config.json").read_text() + "\n")  # a different model
    check = paths.workdir / "check.jsonl"  # deploy compares it with the deployed one first, on labelled reviews
    check.write_text('{"review": "A wonderful film.", "label": "positive"}\n{"review": "An awful mess.", "label": "negative"}\n')
    deploy(DeployOptions(artifact=str(model_dir), region=REGION, yes=True, check_data=str(check)), runner=sam,
           paths=paths, interactive=False)
    assert sam.overrides(1)["ModelDataUrl"] != sam.overrides(3)["ModelDataUrl"]


def test_an_s3_artifact_is_checked_and_copied_under_its_sha256(aws, paths, tiny_artifact):
    aws.create_bucket(Bucket="sagemaker-training-out", CreateBucketConfiguration={"LocationConstraint": REGION})
    aws.upload_file(str(tiny_artifact), "sagemaker-training-out", "critic/training/job-1/output/model.tar.gz")
    sam = FakeSam()
    deploy(DeployOptions(artifact="s3://sagemaker-training-out/critic/training/job-1/output/model.tar.gz",
                         region=REGION, yes=True), runner=sam, paths=paths, interactive=False)
    assert sam.overrides()["ModelDataUrl"] == f"s3://{ARTIFACT_BUCKET}/models/{sha256_of(tiny_artifact)}/model.tar.gz"


def test_a_training_jobs_output_tarball_is_refused(aws, paths):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("metrics.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    aws.create_bucket(Bucket="sagemaker-training-out", CreateBucketConfiguration={"LocationConstraint": REGION})
    aws.put_object(Bucket="sagemaker-training-out", Key="job/output/output.tar.gz", Body=data.getvalue())
    sam = FakeSam()
    with pytest.raises(UsageError, match="is not a Critic model artifact: it lacks model.pt.*deploy model.tar.gz"):
        deploy(DeployOptions(artifact="s3://sagemaker-training-out/job/output/output.tar.gz", region=REGION,
                             yes=True), runner=sam, paths=paths, interactive=False)
    assert sam.commands == []


def test_a_failed_build_stops_before_anything_is_written_to_aws(aws, paths, tiny_artifact):
    sam = FakeSam(exit_codes={"build": 1})
    with pytest.raises(UsageError, match="sam build failed"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True), runner=sam, paths=paths,
               interactive=False)
    assert aws.list_objects_v2(Bucket=ARTIFACT_BUCKET)["KeyCount"] == 0
    assert "127.0.0.1" in paths.web_config.read_text()  # untouched


def test_a_failed_sam_deploy_leaves_the_page_alone(aws, paths, tiny_artifact):
    sam = FakeSam(exit_codes={"deploy": 1})
    with pytest.raises(AwsError, match=r"sam deploy failed \(exit 1\)"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True), runner=sam, paths=paths,
               interactive=False)
    assert "127.0.0.1" in paths.web_config.read_text()


def test_first_deploy_from_a_terminal_is_guided_then_samconfig_is_used(aws, paths, tiny_artifact):
    sam = FakeSam()
    deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION), runner=sam, paths=paths, interactive=True)
    guided = sam.commands[1]
    assert guided[1:8] == ["deploy", "--stack-name", "critic", "--region", REGION, "--guided", "--capabilities"]
    assert "--no-confirm-changeset" not in guided and "--resolve-s3" not in guided

    # what `sam deploy --guided` saves; a later deploy takes stack and region from it
    paths.samconfig.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "critic"\n'
                               f'region = "{REGION}"\ncapabilities = "CAPABILITY_IAM"\nresolve_s3 = true\n'
                               'confirm_changeset = true\n')
    deploy(DeployOptions(artifact=str(tiny_artifact)), runner=sam, paths=paths, interactive=True)
    configured = sam.commands[3]
    assert configured[1:6] == ["deploy", "--stack-name", "critic", "--region", REGION]
    assert "--capabilities" not in configured and "--resolve-s3" not in configured
    assert "--no-confirm-changeset" not in configured  # samconfig.toml says confirm


def test_without_a_terminal_deploy_needs_yes(aws, paths, tiny_artifact):
    with pytest.raises(UsageError, match="pass --yes"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION), runner=FakeSam(), paths=paths,
               interactive=False)


@pytest.mark.parametrize("parameter, expected", [
    ("EndpointKind=big", "allowed values are serverless, provisioned"),
    ("Colour=blue", "template.yaml has no parameter Colour"),
    ("ModelDataUrl=s3://b/k.tar.gz", "set it with --artifact"),
    ("EndpointKind", "expected NAME=VALUE"),
    ("AllowedOrigin=https://a.example https://b.example", "white space"),
])
def test_parameters_are_checked_against_the_template(aws, paths, tiny_artifact, parameter, expected):
    sam = FakeSam()
    with pytest.raises(UsageError, match=expected):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True, parameters=[parameter]),
               runner=sam, paths=paths, interactive=False)
    assert sam.commands == []


def test_a_region_without_the_image_is_refused_before_any_call(paths, tiny_artifact):
    sam = FakeSam()
    with pytest.raises(UsageError, match="no PyTorch inference image in ap-east-2.*--image-uri"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region="ap-east-2", yes=True), runner=sam,
               paths=paths, interactive=False)
    assert sam.commands == []


def test_image_uri_is_checked_and_passed(aws, paths, tiny_artifact):
    image = "975050140332.dkr.ecr.ap-east-2.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    with pytest.raises(UsageError, match="InferenceImageUri=docker.io/pytorch: must be empty or an ECR image URI"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True, image_uri="docker.io/pytorch"),
               runner=FakeSam(), paths=paths, interactive=False)
    sam = FakeSam()
    deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True, image_uri=image), runner=sam,
           paths=paths, interactive=False)
    assert sam.overrides()["InferenceImageUri"] == image


def test_destroy_deletes_the_stack_and_names_what_it_keeps(aws, paths, tiny_artifact, capsys):
    deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True), runner=FakeSam(), paths=paths,
           interactive=False)
    cfn = boto3.client("cloudformation", region_name=REGION)
    input_bucket = next(o["OutputValue"] for o in cfn.describe_stacks(StackName="critic")["Stacks"][0]["Outputs"]
                        if o["OutputKey"] == "InputBucketName")
    capsys.readouterr()

    assert destroy(DestroyOptions(region=REGION, yes=True), paths=paths, interactive=False, delay=0) == 0
    assert not [s for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    buckets = [b["Name"] for b in aws.list_buckets()["Buckets"]]
    assert input_bucket in buckets and ARTIFACT_BUCKET in buckets  # kept, never deleted silently
    out = capsys.readouterr().out
    assert "Deleted stack critic in eu-west-1." in out
    assert f"{input_bucket}  (InputBucket, AWS::S3::Bucket)" in out
    assert f"--delete-bucket {input_bucket}" in out and f"--delete-bucket {ARTIFACT_BUCKET}" in out
    assert f"aws s3 rb s3://{ARTIFACT_BUCKET} --force" in out

    # the printed command removes them
    aws.put_object(Bucket=input_bucket, Key="reviews.txt", Body=b"great film\n")
    assert destroy(DestroyOptions(region=REGION, yes=True, delete_buckets=[input_bucket, ARTIFACT_BUCKET]),
                   paths=paths, interactive=False, delay=0) == 0
    buckets = [b["Name"] for b in aws.list_buckets()["Buckets"]]
    assert input_bucket not in buckets and ARTIFACT_BUCKET not in buckets


def test_destroy_asks_first_and_a_no_deletes_nothing(aws, paths, tiny_artifact):
    deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION, yes=True), runner=FakeSam(), paths=paths,
           interactive=False)
    questions = []
    assert destroy(DestroyOptions(region=REGION), paths=paths, interactive=True, delay=0,
                   ask=lambda q: questions.append(q) or False) == 1
    assert questions == ["Delete stack critic in eu-west-1? This cannot be undone."]
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks(StackName="critic")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    with pytest.raises(UsageError, match="pass --yes"):
        destroy(DestroyOptions(region=REGION), paths=paths, interactive=False)


def test_destroy_without_a_stack_says_so(aws, paths, capsys):
    assert destroy(DestroyOptions(region=REGION, yes=True), paths=paths, interactive=False, delay=0) == 0
    captured = capsys.readouterr()
    assert "there is no stack critic in eu-west-1: nothing to delete" in captured.err
    assert ARTIFACT_BUCKET in captured.out


def test_a_guided_deploy_to_another_region_is_explained(aws, paths, tiny_artifact):
    class GuidedElsewhere(FakeSam):
        def __call__(self, command, cwd):  # the person answered eu-central-1 to "AWS Region"
            if "--guided" in command:
                paths.samconfig.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "critic"\n'
                                           'region = "eu-central-1"\n')
                return 0
            return super().__call__(command, cwd)

    with pytest.raises(AwsError, match="chose region eu-central-1, but the model was uploaded in eu-west-1.*"
                                       "critic deploy --region eu-central-1"):
        deploy(DeployOptions(artifact=str(tiny_artifact), region=REGION), runner=GuidedElsewhere(), paths=paths,
               interactive=True)
