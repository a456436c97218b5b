"""Reading template.yaml for the local stack: short-form tags, intrinsic
functions, Globals, event sources, local names."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from critic.local.stack import StackError, check_port
from critic.local.template import TemplateError, read_template

TEMPLATE = """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Stage: {Type: String, Default: dev}
      Kind: {Type: String, Default: small, AllowedValues: [small, big]}
      NoDefault: {Type: String}
    Conditions:
      IsBig: !Equals [!Ref Kind, big]
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 9
        Environment:
          Variables: {SHARED: shared, OVERRIDDEN: from-globals}
      HttpApi:
        CorsConfiguration: {AllowOrigins: ["https://site.example"], AllowMethods: [POST]}
    Resources:
      Data:
        Type: AWS::S3::Bucket
        Properties:
          BucketName: !Sub
            - data-${AWS::AccountId}-${Uid}
            - Uid: !Select [0, !Split ["-", !Select [2, !Split ["/", !Ref AWS::StackId]]]]
          VersioningConfiguration: {Status: Enabled}
      Plain:
        Type: AWS::S3::Bucket
      Model:
        Type: AWS::SageMaker::Model
        Properties: {ExecutionRoleArn: x}
      Endpoint:
        Type: AWS::SageMaker::Endpoint
        Properties: {EndpointName: !Sub "scoring-${Stage}"}
      Queue:
        Type: AWS::SQS::Queue
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: fn/
          Handler: app.handler
          MemorySize: !If [IsBig, 2048, 512]
          Environment:
            Variables:
              OVERRIDDEN: mine
              BUCKET: !Ref Data
              BUCKET_ARN: !GetAtt Data.Arn
              MODEL: !GetAtt Model.ModelName
              ENDPOINT: !GetAtt Endpoint.EndpointName
              ENDPOINT_REF: !Ref Endpoint
              JOINED: !Join ["/", [!Ref Stage, !Ref AWS::Region]]
              SUBBED: !Sub "${Plain}:${!Literal}"
              MAYBE: !If [IsBig, big, !Ref AWS::NoValue]
          EventInvokeConfig:
            MaximumRetryAttempts: 1
            DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Queue.Arn}}
          Events:
            Upload:
              Type: S3
              Properties:
                Bucket: !Ref Data
                Events: s3:ObjectCreated:*
                Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}, {Name: suffix, Value: .txt}]}}
            Done:
              Type: EventBridgeRule
              Properties:
                Pattern: {source: [aws.sagemaker], detail: {TransformJobName: [{prefix: !Sub "${Stage}-"}]}}
            Api:
              Type: HttpApi
              Properties: {Path: "/items/{id}", Method: get}
"""


@pytest.fixture
def template(tmp_path):
    (tmp_path / "fn").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(TEMPLATE))
    return path


def test_intrinsics_resolve_to_local_names(template):
    stack = read_template(template)
    fn = stack.function("Fn")
    env = fn.environment
    assert env["SHARED"] == "shared" and env["OVERRIDDEN"] == "mine"
    assert env["BUCKET"] == "data-123456789012-local"
    assert env["BUCKET_ARN"] == "arn:aws:s3:::data-123456789012-local"
    assert env["MODEL"] == "critic-model"
    assert env["ENDPOINT"] == "scoring-dev"
    assert env["ENDPOINT_REF"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/scoring-dev"
    assert env["JOINED"] == "dev/us-east-1"
    assert env["SUBBED"] == "critic-plain:${Literal}"
    assert "MAYBE" not in env
    assert (fn.timeout, fn.memory, fn.maximum_retry_attempts) == (9, 512, 1)
    assert fn.on_failure == "arn:aws:sqs:us-east-1:123456789012:critic-queue"
    assert [q.name for q in stack.queues] == ["critic-queue"]
    assert stack.function("critic-fn") is fn  # by name too
    assert stack.buckets["Data"].versioned and not stack.buckets["Plain"].versioned
    assert stack.models == ["critic-model"] and stack.endpoints == ["scoring-dev"]


def test_event_sources(template):
    stack = read_template(template, parameters={"Kind": "big", "Stage": "prod"})
    [notification] = stack.s3_notifications
    assert (notification.bucket, notification.function, notification.prefix, notification.suffix) == (
        "data-123456789012-local", "Fn", "in/", ".txt")
    [rule] = stack.rules
    assert rule.pattern == {"source": ["aws.sagemaker"], "detail": {"TransformJobName": [{"prefix": "prod-"}]}}
    [api] = stack.apis
    assert [r.route_key for r in api.routes] == ["GET /items/{id}"]
    assert api.cors["AllowOrigins"] == ["https://site.example"]
    fn = stack.function("Fn")
    assert fn.memory == 2048 and fn.environment["MAYBE"] == "big"


def test_a_parameter_without_default_must_be_given(tmp_path, template):
    text = template.read_text()
    indent = text.split("JOINED:")[0].rsplit("\n", 1)[1]
    template.write_text(text.replace("JOINED: !Join", f"NEEDS: !Ref NoDefault\n{indent}JOINED: !Join"))
    with pytest.raises(TemplateError, match="NoDefault has no Default; pass it with --parameter NoDefault=VALUE"):
        read_template(template)
    assert read_template(template, parameters={"NoDefault": "x"}).function("Fn").environment["NEEDS"] == "x"


def test_the_projects_template_runs_locally(repo_root):
    stack = read_template(repo_root / "template.yaml")
    assert set(stack.functions) >= {"RealtimeFunction", "BatchFunction", "CompletionFunction"}
    for function in stack.functions.values():
        assert function.runtime.startswith("python") and function.code_dir.is_dir()
        assert all(isinstance(v, str) for v in function.environment.values())
    assert [r.route_key for api in stack.apis for r in api.routes] == [
        "POST /score", "POST /uploads", "GET /uploads/{id}"]
    [rule] = stack.buckets["InputBucket"].cors_rules  # the web page posts files there
    assert rule["AllowedOrigins"] == ["*"] and rule["AllowedMethods"] == ["POST"]
    suffixes = sorted(n.suffix for n in stack.s3_notifications if n.function == "BatchFunction")
    assert suffixes == [".csv", ".jsonl", ".txt"]
    queues = {q.logical_id: q for q in stack.queues}
    assert {n.queue for n in stack.s3_notifications} == {queues["UploadsQueue"].name}  # S3 -> SQS -> BatchFunction
    [source] = stack.queue_sources
    assert (source.function, source.queue, source.report_batch_item_failures) == (
        "BatchFunction", queues["UploadsQueue"].name, True)
    assert queues["UploadsQueue"].dead_letter_queue == queues["FailedEventsQueue"].name
    assert queues["UploadsQueue"].visibility_timeout == 360 and queues["UploadsQueue"].max_receive_count == 6
    environment = stack.functions["BatchFunction"].environment
    assert environment["UPLOADS_QUEUE_URL"].endswith("/123456789012/" + queues["UploadsQueue"].name)
    assert [r.function for r in stack.rules] == ["CompletionFunction"]
    assert stack.endpoints and stack.models


def test_the_layers_are_the_venvs_dependencies_and_this_checkouts_domain_packages(repo_root):
    """DependenciesLayer is the site-packages where `make setup` installed its
    pins; DomainLayer is layers/domain/, whose links are this checkout's batch
    and contract packages."""
    stack = read_template(repo_root / "template.yaml")
    site_packages = Path(metadata.distribution("boto3").locate_file("")).resolve()
    domain = repo_root / "layers" / "domain"
    for logical_id in ("RealtimeFunction", "BatchFunction", "CompletionFunction"):
        assert stack.functions[logical_id].layers == [site_packages, domain]
    assert (site_packages / "boto3").is_dir() and (site_packages / "aws_lambda_powertools").is_dir()
    packages = sorted(p.name for p in domain.iterdir() if (p / "__init__.py").is_file())
    assert packages == ["batch", "contract"]
    assert all((domain / name).resolve() == (repo_root / name).resolve() for name in packages)


LAYERED = """
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Deps:
        Type: AWS::Serverless::LayerVersion
        Metadata: {BuildMethod: python3.12}
        Properties: {ContentUri: deps/}
      Fn:
        Type: AWS::Serverless::Function
        Properties: {CodeUri: fn/, Handler: app.handler, Runtime: python3.12, Layers: [!Ref Deps]}
"""


def test_a_dependencies_layer_needs_its_pins_installed_here(tmp_path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "deps").mkdir()
    (tmp_path / "template.yaml").write_text(textwrap.dedent(LAYERED))
    requirements = tmp_path / "deps" / "requirements.txt"
    boto3 = metadata.version("boto3")
    requirements.write_text(f"# a comment\nboto3=={boto3}\naws-lambda-powertools[tracer]  # any version\n")
    [layer] = read_template(tmp_path / "template.yaml").function("Fn").layers
    assert layer == Path(metadata.distribution("boto3").locate_file("")).resolve()
    requirements.write_text("boto3==0.0.1\nno-such-distribution-here==1.0\n")
    with pytest.raises(TemplateError) as caught:
        read_template(tmp_path / "template.yaml")
    message = str(caught.value)
    assert message.startswith("Resources.Deps: ") and "make setup" in message
    assert f"boto3 {boto3} is installed, not 0.0.1" in message and "no-such-distribution-here is not installed" in message


def test_a_port_in_use_names_the_port_and_the_variable():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError) as caught:
            check_port("127.0.0.1", port, "CRITIC_API_PORT", "--api-port")
    message = str(caught.value)
    assert f"port {port}" in message and f"CRITIC_API_PORT={port + 1}" in message and "--api-port" in message


def test_env_vars_file_for_sam_local_invoke(repo_root, tmp_path):
    target = tmp_path / "env.json"
    done = subprocess.run([sys.executable, "-m", "critic", "invoke", "--write-env-vars", str(target),
                           "--docker-host", "host.docker.internal"], cwd=repo_root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    content = json.loads(target.read_text())
    assert set(content) >= {"RealtimeFunction", "BatchFunction", "CompletionFunction"}
    assert content["RealtimeFunction"]["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://host.docker.internal:4566"
    assert content["BatchFunction"]["AWS_ENDPOINT_URL_S3"] == "http://host.docker.internal:4566"
    assert content["BatchFunction"]["OUTPUT_BUCKET"] == read_template(
        repo_root / "template.yaml").function("BatchFunction").environment["OUTPUT_BUCKET"]


def test_s3_objects_survive_a_restart_with_their_identity(tmp_path):
    import uuid

    from critic.local import s3 as local_s3

    backend = local_s3.backend()
    name = f"keep-{uuid.uuid4().hex[:10]}"
    backend.create_bucket(name, "us-east-1")
    backend.put_bucket_versioning(name, "Enabled")
    store = local_s3.S3Store(tmp_path / "s3", "us-east-1")
    with local_s3.ObjectEvents(store.on_object_event) as hook, hook.scope():
        key = backend.put_object(name, "dir/a b.txt", b"hello")
        key.set_metadata({"Content-Type": "text/plain"})
        backend.put_object(name, "dir/a b.txt", b"hello again")  # a second version: the latest is kept
        backend.put_object(name, "gone.txt", b"x")
        backend.delete_object(name, "gone.txt")  # a delete marker: moto sends no event
        store.sync_deletions()  # what the endpoint does after a DELETE
    latest = backend.buckets[name].keys.get("dir/a b.txt")
    identity = (latest.version_id, latest.etag, latest.size)
    # A new process: moto starts empty, the store loads what it kept.
    backend.buckets.pop(name)
    local_s3.s3_backends.bucket_accounts.pop(name, None)
    assert local_s3.S3Store(tmp_path / "s3", "us-east-1").restore() == 1
    restored = backend.buckets[name].keys.get("dir/a b.txt")
    assert (restored.version_id, restored.etag, restored.size) == identity
    assert restored.value == b"hello again"
    assert backend.buckets[name].keys.get("gone.txt") is None or not hasattr(
        backend.buckets[name].keys.get("gone.txt"), "value")


def test_each_stack_hears_the_s3_events_of_its_own_requests_only():
    """Two stacks in one process share moto's S3; each stack's hook hears the
    object events its own endpoint's requests raise, and none once removed,
    whatever the order of removal."""
    import uuid

    from critic.local import s3 as local_s3

    backend = local_s3.backend()
    name = f"two-{uuid.uuid4().hex[:10]}"
    backend.create_bucket(name, "us-east-1")
    heard: dict[str, list[str]] = {"first": [], "second": []}
    first = local_s3.ObjectEvents(lambda event, bucket, key: heard["first"].append(key.name))
    second = local_s3.ObjectEvents(lambda event, bucket, key: heard["second"].append(key.name))
    first.install()
    second.install()
    with first.scope():
        backend.put_object(name, "first.txt", b"1")
    with second.scope():
        backend.put_object(name, "second.txt", b"2")
    backend.put_object(name, "neither.txt", b"0")  # no stack's request
    first.remove()  # before the hook installed after it
    with first.scope(), second.scope():
        backend.put_object(name, "after-first.txt", b"3")
    second.remove()
    with first.scope(), second.scope():
        backend.put_object(name, "after-both.txt", b"4")
    assert heard == {"first": ["first.txt"], "second": ["second.txt", "after-first.txt"]}


def test_the_yaml_reader_reads_template_yaml_as_cfn_lints_decoder_does():
    """critic/cfn_yaml.py is hand-written (cfn-lint would weigh on the serve
    and deploy groups); on the real template it must agree with cfn-lint."""
    from cfnlint.decode import cfn_yaml

    from critic.cfn_yaml import load_yaml

    template = Path(__file__).resolve().parents[2] / "template.yaml"
    assert json.loads(json.dumps(load_yaml(template))) == json.loads(json.dumps(cfn_yaml.load(str(template)), default=str))
