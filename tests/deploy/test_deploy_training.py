"""critic train --sagemaker: the source dir, the hyperparameters, the
estimator's CreateTrainingJob request (Stubber), the whole start against moto,
and the entry point run the way the SageMaker training container runs it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tiny_imdb import TINY_TRAINING_ARGS
from critic.errors import UsageError
from critic.deploy import artifact as artifacts
from critic.deploy import training
from critic.deploy.buckets import sha256_of

ROLE = "arn:aws:iam::123456789012:role/critic-training"
REGION = "eu-west-1"


def test_data_is_taken_out_of_the_training_options():
    assert training.split_data(["--epochs", "3", "--data", "x.tar.gz", "--lr", "0.1"]) == (
        "x.tar.gz", ["--epochs", "3", "--lr", "0.1"])
    assert training.split_data(["--data=s3://b/k"]) == ("s3://b/k", [])


def test_options_that_differ_from_the_defaults_become_hyperparameters():
    assert training.hyperparameters(["--epochs", "3", "--no-lstm", "--lr=0.01", "--seed", "1337"]) == {
        "epochs": 3, "no-lstm": True, "lr": 0.01}  # --seed 1337 is the default: not sent
    assert training.hyperparameters(["--weight-decay", "-0.001"]) == {"weight-decay": -0.001}


@pytest.mark.parametrize("argv, expected", [
    (["--epoch", "3"], "unknown training option --epoch"),
    (["-e", "3"], "unknown training option -e"),
    (["--resume"], "--resume does not apply with --sagemaker"),
    (["--model-dir", "x"], "SageMaker sets the model dir"),
])
def test_options_that_cannot_go_to_sagemaker_are_refused(argv, expected):
    with pytest.raises(UsageError, match=expected):
        training.hyperparameters(argv)


def test_source_dir_is_the_model_package_and_requirements_byte_for_byte_stable(tmp_path, repo_root):
    first = training.source_tarball(tmp_path / "a.tar.gz")
    second = training.source_tarball(tmp_path / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = tar.getnames()
        requirements = tar.extractfile("requirements.txt").read().decode()
        train_py = tar.extractfile(training.ENTRY_POINT).read()
    expected = [f"{package}/{p.name}" for package in ("contract", "model")
                for p in sorted((repo_root / package).iterdir()) if p.is_file() and p.suffix != ".pyc"]
    assert names == ["requirements.txt", *expected]
    assert train_py == (repo_root / "model" / "train.py").read_bytes()
    assert not [n for n in names if "artifact" in n or "__pycache__" in n]
    assert {re.split(r"[<>=]", line)[0] for line in requirements.split()} == {
        "tqdm", "matplotlib", "scikit-learn", "gensim"}


def test_training_image_is_resolved_offline_per_region_and_instance():
    assert training.training_image(REGION, "ml.m5.xlarge") == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.6-cpu-py312")
    assert training.training_image(REGION, "ml.g5.xlarge").endswith("pytorch-training:2.6-gpu-py312")
    with pytest.raises(UsageError, match="no PyTorch 2.6 training image .* in xx-east-9.*us-east-1"):
        training.training_image("xx-east-9", "ml.m5.xlarge")


def sagemaker_session(client):
    sagemaker = training._sdk()
    boto_session = boto3.Session(region_name=REGION)
    return sagemaker.Session(boto_session=boto_session, sagemaker_client=client,
                             sagemaker_config=training.SDK_CONFIG, default_bucket="critic-training")


def test_the_estimator_sends_one_create_training_job_with_script_mode_and_metrics():
    client = boto3.client("sagemaker", region_name=REGION)
    sent = []
    client.meta.events.register("provide-client-params.sagemaker.*", lambda params, model, **_: sent.append(
        (model.name, params)))
    image = training.training_image(REGION, "ml.m5.xlarge")
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:1:training-job/x"})
        job = training.estimator(
            sagemaker_session(client), role=ROLE, instance_type="ml.m5.xlarge", image_uri=image,
            source_uri="s3://critic-training/critic/code/abc/sourcedir.tar.gz",
            hyperparameters={"epochs": 3, "no-lstm": True}, output_path="s3://critic-training/critic/training",
            max_run=3600)
        job.fit({"training": "s3://critic-training/critic/data/def/"}, wait=False, logs="None")
        stub.assert_no_pending_responses()

    [(operation, request)] = sent
    assert operation == "CreateTrainingJob"
    name = request["TrainingJobName"]
    assert name.startswith("critic-") and job.latest_training_job.name == name
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == training.METRIC_DEFINITIONS
    assert request["RoleArn"] == ROLE
    assert request["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://critic-training/critic/training"}
    assert request["InputDataConfig"] == [{"ChannelName": "training", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": "s3://critic-training/critic/data/def/",
        "S3DataDistributionType": "FullyReplicated"}}}]
    hyper = {k: json.loads(v) for k, v in request["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == "model/train.py"
    assert hyper["sagemaker_submit_directory"] == "s3://critic-training/critic/code/abc/sourcedir.tar.gz"
    assert hyper["epochs"] == 3 and hyper["no-lstm"] is True
    assert "DebugHookConfig" not in request and request["ProfilerConfig"] == {"DisableProfiler": True}


def test_metric_definitions_read_the_lines_train_py_prints():
    line = "epoch=3 train_loss=0.2810 train_acc=0.8871 valid_loss=3.1e-05 valid_acc=1.0000"
    found = {d["Name"]: re.search(d["Regex"], line).group(1) for d in training.METRIC_DEFINITIONS}
    assert found == {"epoch": "3", "train:loss": "0.2810", "train:accuracy": "0.8871",
                     "validation:loss": "3.1e-05", "validation:accuracy": "1.0000"}
    bar = "epoch 3/8: 100%|##########| 40/40 [00:01<00:00, loss=0.2810, acc=0.8871]"  # tqdm's line
    assert not any(re.search(d["Regex"], bar) for d in training.METRIC_DEFINITIONS)


def container_args(hyperparameters: dict) -> list[str]:
    """What the SageMaker training toolkit passes the entry point: each
    hyperparameter JSON-decoded (the SDK JSON-encodes them) as `--key value`,
    keys sorted (sagemaker_training.mapping.to_cmd_args)."""
    args = []
    for key in sorted(hyperparameters):
        value = json.loads(json.dumps(hyperparameters[key]))
        args += [f"--{key}", str(value)]
    return args


@pytest.mark.slow
def test_the_entry_point_trains_from_the_source_dir_as_the_container_runs_it(tmp_path, tiny_imdb_tarball):
    code, data, model_dir, output = (tmp_path / name for name in ("code", "data", "model", "output"))
    data.mkdir()
    (data / "aclImdb_v1.tar.gz").write_bytes(tiny_imdb_tarball.read_bytes())
    with tarfile.open(training.source_tarball(tmp_path / "sourcedir.tar.gz")) as tar:
        tar.extractall(code, filter="data")
    # a marker only the extracted copy has: the artifact's code/ must come from it, not from this repo
    with open(code / "model" / "__init__.py", "a") as handle:
        handle.write("# extracted source dir\n")

    tiny = dict(zip(TINY_TRAINING_ARGS[::2], TINY_TRAINING_ARGS[1::2]))
    tiny["--epochs"] = "2"
    hyperparameters = training.hyperparameters([*(x for kv in tiny.items() for x in kv)])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SM_MODEL_DIR": str(model_dir),
           "SM_CHANNEL_TRAINING": str(data), "SM_OUTPUT_DATA_DIR": str(output), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, training.ENTRY_POINT, *container_args(hyperparameters)], cwd=code,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch=")]
    assert [line.split()[0] for line in lines] == ["epoch=0", "epoch=1", "epoch=2"]  # the bag fit, two LSTM epochs
    for definition in training.METRIC_DEFINITIONS:
        values = [m.group(1) for line in lines if (m := re.search(definition["Regex"], line))]
        # validation figures on every line; training figures once the LSTM trains
        assert len(values) == (3 if definition["Name"].startswith("validation") else 2)
        assert all(float(v) >= 0 for v in values)
    assert "# extracted source dir" in (model_dir / "code" / "model" / "__init__.py").read_text()
    assert json.loads((model_dir / "config.json").read_text())["use_lstm"] is True
    assert (output / "metrics.json").exists()
    # SageMaker tars the model dir as it is: that is a deployable artifact
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    artifacts.check(tmp_path / "model.tar.gz")


@mock_aws
def test_train_uploads_data_and_code_and_starts_the_job(tiny_imdb_tarball, capsys, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"sagemaker-{REGION}-123456789012"
    # made ahead without the TLS-only policy, whose conditions moto ignores
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    options = training.TrainingOptions(data=str(tiny_imdb_tarball), role=ROLE, region=REGION, wait=False,
                                       hyperparameters={"epochs": 2})
    assert training.train(options) == 0

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    data_key = f"critic/data/{sha256_of(tiny_imdb_tarball)}/aclImdb_v1.tar.gz"
    assert data_key in keys
    [code_key] = [k for k in keys if k.startswith("critic/code/")]
    assert code_key.endswith("/sourcedir.tar.gz")

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    [summary] = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{bucket}/critic/data/{sha256_of(tiny_imdb_tarball)}/")
    assert json.loads(job["HyperParameters"]["sagemaker_submit_directory"]) == f"s3://{bucket}/{code_key}"
    out = capsys.readouterr().out
    model_uri = f"s3://{bucket}/critic/training/{summary['TrainingJobName']}/output/model.tar.gz"
    assert f"its model will be: {model_uri}" in out and f"critic deploy --artifact {model_uri}" in out

    # the same data and code again: nothing uploaded twice
    assert training.train(options) == 0
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == len(keys)


@pytest.mark.parametrize("changes, expected", [
    ({"role": None}, "--role ARN is required"),
    ({"role": "critic-training"}, "expected an IAM role ARN"),
    ({"data": None}, "--data is required with --sagemaker"),
    ({"data": "s3://bucket-only"}, "not an s3://bucket/key URI"),
    ({"max_run": 10}, "at least 60 seconds"),
])
def test_missing_or_wrong_training_options_are_clear(tmp_path, changes, expected):
    tarball = tmp_path / "aclImdb_v1.tar.gz"
    tarball.write_bytes(b"x")
    options = training.TrainingOptions(data=str(tarball), role=ROLE, region=REGION)
    for name, value in changes.items():
        setattr(options, name, value)
    with pytest.raises(UsageError, match=expected):
        training.train(options)


def test_a_data_folder_is_refused_with_the_reason(tmp_path):
    with pytest.raises(UsageError, match="expected the aclImdb_v1.tar.gz file"):
        training.train(training.TrainingOptions(data=str(tmp_path), role=ROLE, region=REGION))
