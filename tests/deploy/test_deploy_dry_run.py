"""--dry-run through the `critic` command: every AWS call and command printed
with its parameters, in order, and none made (no credentials, an endpoint
that refuses connections, nothing written)."""
from __future__ import annotations

import io
import re
import tarfile

import pytest

from critic.cli import main

ROLE = "arn:aws:iam::123456789012:role/critic-training"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No credentials anywhere, and any request that did leave would hit a closed port."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.fixture
def artifact(tmp_path):
    """A tarball with the artifact layout (the dry run only checks and hashes it)."""
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in ("model.pt", "vocab.json", "config.json", "code/inference.py"):
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    return path


def plan(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if not line.startswith("    ")]


def test_deploy_dry_run_prints_the_whole_plan_and_makes_nothing(offline, artifact, capsys, repo_root):
    config_before = (repo_root / "web" / "config.js").read_bytes()
    assert main(["deploy", "--dry-run", "--region", "eu-west-1", "--artifact", str(artifact),
                 "--parameter", "EndpointKind=provisioned"]) == 0
    lines = plan(capsys)
    steps = [re.sub(r"\(.*", "", line) if not line.startswith(("$", "#", "write")) else line.split(" ")[0:3]
             for line in lines]
    calls = [s for s in steps if isinstance(s, str)]
    assert calls == ["sts.GetCallerIdentity", "cloudformation.DescribeStacks", "s3.HeadBucket", "s3.CreateBucket",
                     "s3.PutPublicAccessBlock", "s3.PutBucketEncryption", "s3.PutBucketPolicy", "s3.HeadObject",
                     "s3.PutObject", "cloudformation.DescribeStacks"]
    commands = [line for line in lines if line.startswith("$ ")]
    assert commands[0].endswith("sam build --template-file template.yaml")
    assert re.search(r"sam deploy --stack-name critic --region eu-west-1 --guided --capabilities CAPABILITY_IAM "
                     r"--parameter-overrides ModelDataUrl=s3://critic-artifacts-ACCOUNT-eu-west-1/models/"
                     r"([0-9a-f]{64})/model.tar.gz ModelSha256=\1 ModelMetrics=none DeployedAt=\S+Z "
                     r"PreviousModelDataUrl=none EndpointKind=provisioned$", commands[1])
    # order: checks, build, then the first writes to AWS, then sam deploy
    build = lines.index(commands[0])
    assert build < next(i for i, line in enumerate(lines) if line.startswith("s3.CreateBucket"))
    assert any(line.startswith("s3.PutObject(") and "ChecksumSHA256=" in line and "ExpectedBucketOwner='ACCOUNT'"
               in line for line in lines)
    assert any(line.startswith("write ") and line.endswith("web/config.js:") for line in lines)
    assert lines[-1] == "# dry run: nothing was called, created, run or written"
    assert (repo_root / "web" / "config.js").read_bytes() == config_before
    assert not (repo_root / "samconfig.toml").exists()


def test_deploy_dry_run_of_an_s3_artifact_shows_the_download(offline, capsys):
    assert main(["deploy", "--dry-run", "--region", "us-east-1", "--yes",
                 "--artifact", "s3://sagemaker-us-east-1-1/critic/training/job/output/model.tar.gz"]) == 0
    lines = plan(capsys)
    assert "s3.GetObject(Bucket='sagemaker-us-east-1-1', Key='critic/training/job/output/model.tar.gz')" in lines
    create = next(line for line in lines if line.startswith("s3.CreateBucket("))
    assert "LocationConstraint" not in create  # us-east-1
    deploy = next(line for line in lines if line.startswith("$ ") and " deploy " in line)
    assert "--resolve-s3" in deploy and deploy.endswith("--no-fail-on-empty-changeset --no-confirm-changeset")


def test_deploy_dry_run_still_refuses_what_a_real_run_would(offline, artifact, capsys):
    assert main(["deploy", "--dry-run", "--region", "ap-east-2", "--artifact", str(artifact)]) == 2
    assert "no PyTorch inference image in ap-east-2" in capsys.readouterr().err


def test_destroy_dry_run(offline, capsys):
    assert main(["destroy", "--dry-run", "--region", "eu-west-1", "--delete-bucket", "critic-input-x"]) == 0
    lines = plan(capsys)
    assert [line for line in lines if not line.startswith("#")] == [
        "sts.GetCallerIdentity()",
        "cloudformation.DescribeStacks(StackName='critic')",
        "cloudformation.DescribeStackResources(StackName='critic')",
        "cloudformation.DeleteStack(StackName='critic')",
        "cloudformation.DescribeStacks(StackName='critic')",
        "s3.HeadBucket(Bucket='critic-input-x', ExpectedBucketOwner='ACCOUNT')",
        "s3.ListObjectVersions(Bucket='critic-input-x', ExpectedBucketOwner='ACCOUNT')",
        "s3.DeleteBucket(Bucket='critic-input-x', ExpectedBucketOwner='ACCOUNT')",
        "s3.HeadBucket(Bucket='critic-artifacts-ACCOUNT-eu-west-1', ExpectedBucketOwner='ACCOUNT')",
    ]
    assert "# deleting the stack keeps (DeletionPolicy: Retain): <InputBucket> (InputBucket), " \
           "<OutputBucket> (OutputBucket)" in lines


def test_train_sagemaker_dry_run_prints_the_training_job_request(offline, tiny_imdb_tarball, capsys):
    assert main(["train", "--sagemaker", "--dry-run", "--role", ROLE, "--region", "eu-west-1",
                 "--instance-type", "ml.c5.2xlarge", "--data", str(tiny_imdb_tarball), "--epochs", "3"]) == 0
    lines = plan(capsys)
    calls = [re.sub(r"\(.*", "", line) for line in lines if not line.startswith(("#", "$"))]
    assert calls == ["sts.GetCallerIdentity", "s3.HeadBucket", "s3.CreateBucket", "s3.PutPublicAccessBlock",
                     "s3.PutBucketEncryption", "s3.PutBucketPolicy", "s3.HeadObject", "s3.PutObject",
                     "s3.HeadObject", "s3.PutObject", "sagemaker.CreateTrainingJob"]
    request = lines[[i for i, line in enumerate(lines) if line.startswith("sagemaker.")][0]]
    assert "'TrainingImage': '763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.6-cpu-py312'" in request
    assert "'InstanceType': 'ml.c5.2xlarge'" in request and f"RoleArn='{ROLE}'" in request
    assert "'epochs': '3'" in request and "'sagemaker_program': '\"model/train.py\"'" in request
    assert "'ChannelName': 'training'" in request and "'Name': 'validation:accuracy'" in request
    assert lines[-1] == "# dry run: nothing was called, uploaded or started"


def test_sagemaker_options_without_sagemaker_are_refused(capsys):
    assert main(["train", "--role", ROLE, "--no-wait"]) == 2
    assert "--role, --wait: only with --sagemaker" in capsys.readouterr().err
