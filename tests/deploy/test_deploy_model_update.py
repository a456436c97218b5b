"""critic deploy compares the new model with the deployed one before changing anything (a worse one is
refused unless --force), tags it (SHA-256, metrics, when live); critic models lists the tagged models and
critic rollback returns the stack to one through a CloudFormation update (Stubber)."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from critic.deploy import models
from critic.deploy.buckets import sha256_of
from critic.deploy.flows import DeployOptions, RollbackOptions, deploy, rollback
from critic.errors import UsageError
from deploy_support import ACCOUNT, ARTIFACT_BUCKET, REGION, FakeSam


@pytest.fixture
def check_data(tmp_path):
    path = tmp_path / "check.jsonl"
    rows = [("A wonderful, moving film, brilliant and beautiful.", "positive"),
            ("An awful, boring mess, a waste of time.", "negative")] * 10
    path.write_text("".join(json.dumps({"review": r, "label": label}) + "\n" for r, label in rows))
    return path


def _deploy(artifact, sam, paths, **options):
    return deploy(DeployOptions(artifact=str(artifact), region=REGION, yes=True, **options), runner=sam, paths=paths,
                  interactive=False)


def test_a_worse_model_is_refused_before_anything_changes_and_force_deploys_it(
        aws, paths, tiny_artifact, broken_artifact, check_data, capsys):
    sam = FakeSam()
    assert _deploy(tiny_artifact, sam, paths, check_data=str(check_data)) == 0
    first = sam.overrides()
    assert first["ModelSha256"] == sha256_of(tiny_artifact) and first["PreviousModelDataUrl"] == "none"
    assert "nothing is deployed yet" in capsys.readouterr().err

    with pytest.raises(UsageError, match=r"refused: the new model is worse than the deployed one \(accuracy 100.00 ->"):
        _deploy(broken_artifact, sam, paths, check_data=str(check_data))
    assert len(sam.commands) == 2  # no build, no sam deploy
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket=ARTIFACT_BUCKET)["Contents"]]
    assert keys == [f"models/{sha256_of(tiny_artifact)}/model.tar.gz"]  # the worse model was not uploaded
    out = capsys.readouterr().out
    assert "WORSE: accuracy" in out and "verdicts flipped" in out

    assert _deploy(broken_artifact, sam, paths, check_data=str(check_data), force=True) == 0
    forced = sam.overrides()
    assert forced["ModelSha256"] == sha256_of(broken_artifact)
    assert forced["PreviousModelDataUrl"] == first["ModelDataUrl"]
    assert "check_accuracy:" in forced["ModelMetrics"] and "check_roc_auc:" in forced["ModelMetrics"]
    assert forced["DeployedAt"] >= first["DeployedAt"]


def test_redeploying_the_deployed_model_compares_nothing_and_keeps_its_tags(aws, paths, tiny_artifact, check_data,
                                                                              capsys):
    sam = FakeSam()
    _deploy(tiny_artifact, sam, paths, check_data=str(check_data))
    first = sam.overrides()
    _deploy(tiny_artifact, sam, paths, check_data=str(check_data))
    again = sam.overrides()
    assert "the deployed model is this one (same SHA-256)" in capsys.readouterr().err
    # same parameters: CloudFormation keeps the Model (no replacement, no endpoint update)
    assert {k: again[k] for k in models.MODEL_PARAMETERS} == {k: first[k] for k in models.MODEL_PARAMETERS}


def test_training_metrics_beside_the_artifact_are_tagged(aws, paths, tiny_training, check_data):
    sam = FakeSam()
    _deploy(tiny_training / "model", sam, paths, check_data=str(check_data))  # runs/<time>/model, metrics.json beside
    assert sam.overrides()["ModelMetrics"].startswith("validation_accuracy:")


# ------------------------------------------------------------------ models and rollback (Stubber)

STACK = "critic"
OLD, NEW = "a" * 64, "b" * 64
OLD_URL, NEW_URL = f"s3://{ARTIFACT_BUCKET}/models/{OLD}/model.tar.gz", f"s3://{ARTIFACT_BUCKET}/models/{NEW}/model.tar.gz"


def _stack(url: str) -> dict:
    return {"Stacks": [{"StackName": STACK, "StackStatus": "UPDATE_COMPLETE", "CreationTime": "2025-01-01",
                        "Parameters": [{"ParameterKey": "ModelDataUrl", "ParameterValue": url},
                                       {"ParameterKey": "ModelSha256", "ParameterValue": NEW},
                                       {"ParameterKey": "EndpointKind", "ParameterValue": "provisioned"}]}]}


def _stub_models(stubber: Stubber) -> None:
    listed = [("Model-new", "2025-03-02T10:00:00Z", NEW, NEW_URL, STACK),
              ("Model-other-stack", "2025-03-01T12:00:00Z", "c" * 64, "s3://x/y.tar.gz", "other"),
              ("Model-old", "2025-03-01T10:00:00Z", OLD, OLD_URL, STACK)]
    stubber.add_response("list_models", {"Models": [
        {"ModelName": name, "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name.lower()}",
         "CreationTime": "2025-01-01"} for name, *_ in listed]}, {"SortBy": "CreationTime", "SortOrder": "Descending"})
    for name, live, sha, url, stack in listed:
        stubber.add_response("list_tags", {"Tags": [{"Key": "critic:stack", "Value": stack},
                                                    {"Key": "critic:sha256", "Value": sha},
                                                    {"Key": "critic:metrics", "Value": "check_accuracy:0.9200"},
                                                    {"Key": "critic:deployed-at", "Value": live}]},
                             {"ResourceArn": ANY})
        if stack == STACK:
            stubber.add_response("describe_model", {
                "ModelName": name, "ModelArn": "arn:aws:sagemaker:eu-west-1:123456789012:model/x",
                "CreationTime": "2025-01-01", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
                "PrimaryContainer": {"Image": "i", "ModelDataUrl": url}}, {"ModelName": name})


def test_the_tagged_models_are_listed_latest_first_with_the_serving_one_marked():
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stubber:
        _stub_models(stubber)
        found = models.deployed_models(sagemaker, STACK)
    assert [m.sha256 for m in found] == [NEW, OLD]  # the other stack's model is not listed
    shown = models.table(found, NEW_URL)
    assert f"* {NEW[:12]}" in shown and f"  {OLD[:12]}" in shown and "check_accuracy:0.9200" in shown


class FakeSession:
    """Live's session: clients with Stubbers, and credentials."""

    def __init__(self):
        self.clients = {name: boto3.client(name, region_name=REGION) for name in ("cloudformation", "sagemaker")}
        self.stubbers = {name: Stubber(client) for name, client in self.clients.items()}

    def get_credentials(self):
        return object()

    def client(self, name, region_name=None):
        return self.clients[name]


@pytest.mark.parametrize("dry_run", [False, True])
def test_rollback_updates_the_stack_to_the_previous_model_with_the_deployed_template(paths, dry_run, capsys):
    session = FakeSession()
    cfn, sm = session.stubbers["cloudformation"], session.stubbers["sagemaker"]
    cfn.add_response("describe_stacks", _stack(NEW_URL), {"StackName": STACK})
    _stub_models(sm)
    if not dry_run:
        expected = {"StackName": STACK, "UsePreviousTemplate": True,
                    "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                    "Parameters": [{"ParameterKey": "ModelDataUrl", "ParameterValue": OLD_URL},
                                   {"ParameterKey": "ModelSha256", "ParameterValue": OLD},
                                   {"ParameterKey": "EndpointKind", "UsePreviousValue": True},
                                   {"ParameterKey": "ModelMetrics", "ParameterValue": "check_accuracy:0.9200"},
                                   {"ParameterKey": "DeployedAt", "ParameterValue": ANY},
                                   {"ParameterKey": "PreviousModelDataUrl", "ParameterValue": NEW_URL}]}
        cfn.add_response("update_stack", {"StackId": "id"}, expected)
        cfn.add_response("describe_stacks", _stack(OLD_URL), {"StackName": STACK})  # the waiter
    with cfn, sm:
        assert rollback(RollbackOptions(region=REGION, dry_run=dry_run), paths=paths, session=session, delay=0) == 0
        cfn.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert f"back to model {OLD[:12]}" in out and f"to   {OLD_URL}" in out
    assert ("dry run: would call cloudformation.UpdateStack" in out) == dry_run


def test_rollback_to_a_named_model_and_to_an_unknown_one(paths):
    for to, expected in ((OLD[:8], None), ("ffff", "no model of this stack has a SHA-256 starting ffff")):
        session = FakeSession()
        cfn, sm = session.stubbers["cloudformation"], session.stubbers["sagemaker"]
        cfn.add_response("describe_stacks", _stack(NEW_URL), {"StackName": STACK})
        _stub_models(sm)
        with cfn, sm:
            if expected:
                with pytest.raises(UsageError, match=expected):
                    rollback(RollbackOptions(region=REGION, to=to, dry_run=True), paths=paths, session=session)
            else:
                assert rollback(RollbackOptions(region=REGION, to=to, dry_run=True), paths=paths, session=session) == 0
