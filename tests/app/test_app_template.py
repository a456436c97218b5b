"""template.yaml: what the handlers rely on is what the template sets, least
privilege and bucket hardening as written; then (marked `sam`) sam validate,
sam validate --lint, checkov, and sam build with its artifacts listed and run
under Python 3.12 with nothing but their own contents."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from app_support import ENV, REPO
from batch import buffer, jobs, shards

TEMPLATE = REPO / "template.yaml"
SAM = REPO / ".tools" / "sam" / "bin" / "sam"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
FUNCTIONS = {"RealtimeFunction": "realtime", "BatchFunction": "batch", "CompletionFunction": "completion",
             "UploadsFunction": "uploads"}
STACK_UID = {"Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]}
# Set by Lambda itself, not by the template.
RUNTIME_VARIABLES = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME"}


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


def resources(template: dict, kind: str) -> dict:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(function: dict) -> list[dict]:
    return [s for policy in function["Properties"]["Policies"] for s in policy["Statement"]]


def environment_reads(source: Path) -> set[str]:
    """Names a module reads with os.environ[...] / os.environ.get(...) / os.getenv(...)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(ast.literal_eval(node.slice))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            names.add(ast.literal_eval(node.args[0]))
    return names


# ------------------------------------------------------------ the contract


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_functions_get_every_variable_their_handler_reads(template, logical_id):
    function = template["Resources"][logical_id]["Properties"]
    code = REPO / function["CodeUri"]
    assert function["Handler"] == "app.lambda_handler" and (code / "app.py").is_file()
    variables = set(function["Environment"]["Variables"])
    assert environment_reads(code / "app.py") - RUNTIME_VARIABLES <= variables
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= variables
    assert variables <= set(ENV) | {"POWERTOOLS_SERVICE_NAME"}  # the tests run the handlers with all of them


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file's `name[extras]==version` lines."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[normalized(re.sub(r"\[.*\]", "", name).strip())] = version.strip()
    return found


def test_the_dependencies_layer_pins_the_tested_versions(template):
    constraints = pins(REPO / "requirements" / "constraints.txt")
    layer = template["Resources"]["DependenciesLayer"]
    requirements = REPO / layer["Properties"]["ContentUri"] / "requirements.txt"
    lines = [line for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+(\[[a-z,]+\])?==[0-9][0-9a-z.]*", line) for line in lines), lines
    required = pins(requirements)
    assert {"aws-lambda-powertools", "boto3", "botocore"} <= set(required)
    assert required == {name: constraints[name] for name in required}
    assert "aws-lambda-powertools[tracer]==" in requirements.read_text()


def test_the_functions_ship_their_code_and_share_the_layers(template):
    """Each function's package is its handler; boto3 and Powertools come from
    DependenciesLayer, batch and contract from DomainLayer, built for the
    functions' runtime and architecture."""
    globals_ = template["Globals"]["Function"]
    for logical_id in FUNCTIONS:
        function = template["Resources"][logical_id]["Properties"]
        assert function["Layers"] == [{"Ref": "DependenciesLayer"}, {"Ref": "DomainLayer"}]
        assert not (REPO / function["CodeUri"] / "requirements.txt").exists()
    for name in ("DependenciesLayer", "DomainLayer"):
        layer = template["Resources"][name]
        assert layer["Properties"]["CompatibleRuntimes"] == [globals_["Runtime"]]
        assert layer["Properties"]["CompatibleArchitectures"] == globals_["Architectures"]
        assert [layer["Metadata"]["BuildArchitecture"]] == globals_["Architectures"]
        assert (REPO / layer["Properties"]["ContentUri"]).resolve() != REPO  # never the repository (.venv)
    assert template["Resources"]["DependenciesLayer"]["Metadata"]["BuildMethod"] == globals_["Runtime"]


DOMAIN = REPO / "layers" / "domain"


def test_the_domain_layer_is_batchs_domain_modules_and_contract():
    """DomainLayer's ContentUri holds its Makefile and links to this
    checkout's batch/ and contract/ (never the repository: .venv); no handler
    and no domain module imports `critic` (the CLI and the local emulator,
    which never ship to Lambda)."""
    assert sorted(p.name for p in DOMAIN.iterdir()) == ["Makefile", "batch", "contract"]
    assert (DOMAIN / "batch").resolve() == REPO / "batch" and (DOMAIN / "contract").resolve() == REPO / "contract"
    sources = [*(REPO / "functions").glob("*/app.py"), *(REPO / "contract").rglob("*.py"),
               *(REPO / "batch").glob("*.py")]
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = ".".join(filter(None, [source.parent.name if node.level else "", node.module]))
                names = [module, *(f"{module}.{a.name}" for a in node.names)]
            else:
                continue
            assert not any(n == "critic" or n.startswith("critic.") for n in names), (source, names)


def test_a_container_build_mounts_the_domain_layers_links():
    """sam mounts only ContentUri in a build container; the links at its top
    are mounted too with --mount-symlinks, which `critic deploy
    --use-container` passes."""
    from critic.deploy.sam import build_command

    assert build_command("sam", use_container=True)[-2:] == ["--use-container", "--mount-symlinks"]
    assert "--mount-symlinks" not in build_command("sam")
    assert all(p.is_symlink() for p in DOMAIN.iterdir() if p.name != "Makefile")


def test_upload_notifications_match_the_input_suffixes(template):
    bucket = template["Resources"]["InputBucket"]
    notifications = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    suffixes = sorted(n["Filter"]["S3Key"]["Rules"][0]["Value"] for n in notifications)
    assert suffixes == sorted(jobs.INPUT_SUFFIXES)
    assert all(n["Queue"] == {"Fn::GetAtt": ["UploadsQueue", "Arn"]} for n in notifications)
    assert all(n["Event"] == "s3:ObjectCreated:*" for n in notifications)
    assert bucket["DependsOn"] == "UploadsQueuePolicy"  # S3 checks it may send when the notification is set


def test_the_batch_function_reads_the_uploads_queue_with_partial_batch_responses(template):
    [source] = template["Resources"]["BatchFunction"]["Properties"]["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["UploadsQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] >= 2  # SQS's minimum


def test_only_the_input_bucket_may_send_uploads_and_only_over_tls(template):
    [allow, deny] = template["Resources"]["UploadsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    source = allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"][0]
    assert source.startswith("arn:${AWS::Partition}:s3:::critic-input-")
    assert template["Resources"]["InputBucket"]["Properties"]["BucketName"]["Fn::Sub"][0] in source
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    for policy in ("UploadsQueuePolicy", "FailedEventsQueuePolicy", "AlarmTopicPolicy"):
        statements_ = template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": False}}
                   for s in statements_), policy


def test_every_alarm_reaches_the_alarm_topic(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {"FailedEventsAlarm", "UploadsWaitingAlarm", "TransformJobsFailedAlarm", "ApiErrorRateAlarm",
                           "RealtimeFunctionErrorsAlarm", "BatchFunctionErrorsAlarm", "CompletionFunctionErrorsAlarm",
                           "UploadsFunctionErrorsAlarm", "EndpointErrorsAlarm", "EndpointLatencyAlarm"}
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", logical_id
    functions = {a["Properties"]["Dimensions"][0]["Value"]["Ref"] for a in alarms.values()
                 if a["Properties"].get("MetricName") == "Errors"}
    assert functions == set(FUNCTIONS)
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_the_failed_job_alarm_reads_the_metric_the_completion_function_writes(template):
    alarm = template["Resources"]["TransformJobsFailedAlarm"]["Properties"]
    completion = template["Resources"]["CompletionFunction"]["Properties"]["Environment"]["Variables"]
    assert alarm["Namespace"] == completion["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": completion["POWERTOOLS_SERVICE_NAME"]}]
    source = (REPO / "functions" / "completion" / "app.py").read_text()
    assert 'f"TransformJobs{document[\'status\']}"' in source and alarm["MetricName"] == "TransformJobsFailed"


def test_the_completion_rule_matches_this_stacks_jobs(template):
    batch = template["Resources"]["BatchFunction"]["Properties"]
    completion = template["Resources"]["CompletionFunction"]["Properties"]
    prefix = {"Fn::Sub": ["critic-${StackUid}", {"StackUid": STACK_UID}]}
    assert batch["Environment"]["Variables"]["JOB_NAME_PREFIX"] == prefix
    assert completion["Environment"]["Variables"]["JOB_NAME_PREFIX"] == prefix
    pattern = completion["Events"]["JobFinished"]["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Transform Job State Change"]
    assert pattern["detail"]["TransformJobStatus"] == ["Completed", "Failed", "Stopped"]
    assert pattern["detail"]["TransformJobName"] == [{"prefix": {"Fn::Sub": ["critic-${StackUid}-", {"StackUid": STACK_UID}]}}]


def test_output_bucket_is_not_the_input_bucket(template):
    assert template["Resources"]["BatchFunction"]["Properties"]["Environment"]["Variables"]["OUTPUT_BUCKET"] == {"Ref": "OutputBucket"}
    assert "NotificationConfiguration" not in template["Resources"]["OutputBucket"]["Properties"]


# ------------------------------------------------------------- privileges


def test_no_wildcard_actions_and_scoped_resources(template):
    for logical_id in FUNCTIONS:
        for statement in statements(template["Resources"][logical_id]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions), (logical_id, statement)
            if statement["Resource"] == "*":  # only where the action has no resource-level permissions
                assert actions == ["sagemaker:ListTransformJobs"], (logical_id, statement)
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
        assert all("*" not in a for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]))
        if statement["Resource"] == "*":
            assert statement["Action"] == "ecr:GetAuthorizationToken"  # has no resource-level permissions


def test_realtime_may_only_invoke_its_endpoint(template):
    assert statements(template["Resources"]["RealtimeFunction"]) == [
        {"Sid": "InvokeTheEndpoint", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": {"Ref": "Endpoint"}}]


def test_batch_may_only_start_this_models_jobs(template):
    by_sid = {s["Sid"]: s for s in statements(template["Resources"]["BatchFunction"])}
    job_arn = {"Fn::Sub": ["arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:transform-job/critic-${StackUid}-*",
                           {"StackUid": STACK_UID}]}
    assert by_sid["CreateJobsOfThisModel"]["Action"] == "sagemaker:CreateTransformJob"
    assert by_sid["CreateJobsOfThisModel"]["Resource"] == job_arn
    assert by_sid["CreateJobsOfThisModel"]["Condition"] == {"ArnEquals": {"sagemaker:ModelArn": {"Ref": "Model"}}}
    assert by_sid["DescribeThisStacksJobs"]["Resource"] == job_arn
    assert by_sid["PassTheSageMakerRole"]["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert by_sid["PassTheSageMakerRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    # It writes nothing but the status record of an upload it cannot submit.
    assert by_sid["RecordSkippedUploads"]["Action"] == "s3:PutObject"
    assert by_sid["RecordSkippedUploads"]["Resource"] == {"Fn::Sub": "${OutputBucket.Arn}/*.status.json"}
    # It sends to its own queue (waiting uploads) and the failed-events queue only.
    assert by_sid["WaitAndRecordFailures"]["Action"] == "sqs:SendMessage"
    assert by_sid["WaitAndRecordFailures"]["Resource"] == [{"Fn::GetAtt": ["UploadsQueue", "Arn"]},
                                                           {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}]
    # Big uploads: it reads uploads and writes shards and plans under the staging prefix only.
    staging = shards.STAGING_PREFIX
    assert by_sid["ReadUploadsToSplit"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert by_sid["WriteShards"]["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert by_sid["WriteShards"]["Resource"]["Fn::Sub"][0].endswith(f"/{staging}*")
    assert by_sid["WriteShardPlans"] == {"Sid": "WriteShardPlans", "Effect": "Allow", "Action": "s3:PutObject",
                                         "Resource": {"Fn::Sub": f"${{OutputBucket.Arn}}/{staging}*"}}
    assert set(by_sid) == {"CreateJobsOfThisModel", "DescribeThisStacksJobs", "PassTheSageMakerRole", "ListInputKeys",
                           "RecordSkippedUploads", "CountJobsInFlight", "WaitAndRecordFailures",
                           "ReadUploadsToSplit", "WriteShards", "WriteShardPlans"}


def test_shard_staging_expires_in_both_buckets(template):
    for bucket in ("InputBucket", "OutputBucket"):
        rules = {rule["Id"]: rule for rule in
                 template["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]}
        rule = rules["expire-shard-staging"]
        assert rule["Prefix"] == shards.STAGING_PREFIX and rule["Status"] == "Enabled"
        assert rule["ExpirationInDays"] >= 1 and rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1


def test_uploads_may_only_sign_puts_under_uploads_and_read_their_results(template):
    function = template["Resources"]["UploadsFunction"]["Properties"]
    by_sid = {s["Sid"]: s for s in statements(template["Resources"]["UploadsFunction"])}
    batch = {s["Sid"]: s for s in statements(template["Resources"]["BatchFunction"])}
    uploads_only = {"StringLike": {"s3:prefix": "uploads/*"}}
    assert by_sid == {
        "SignUploads": {"Sid": "SignUploads", "Effect": "Allow", "Action": "s3:PutObject",
                        "Resource": {"Fn::Sub": "${InputBucket.Arn}/uploads/*"}},
        "FindUploads": {"Sid": "FindUploads", "Effect": "Allow", "Action": "s3:ListBucketVersions",
                        "Resource": {"Fn::GetAtt": ["InputBucket", "Arn"]}, "Condition": uploads_only},
        "FindStatusRecords": {"Sid": "FindStatusRecords", "Effect": "Allow", "Action": "s3:ListBucket",
                              "Resource": {"Fn::GetAtt": ["OutputBucket", "Arn"]}, "Condition": uploads_only},
        "ReadStatusRecordsAndResults": {
            "Sid": "ReadStatusRecordsAndResults", "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": [{"Fn::Sub": "${OutputBucket.Arn}/uploads/*.status.json"},
                         {"Fn::Sub": "${OutputBucket.Arn}/uploads/*.out"}]},
        "DescribeThisStacksJobs": batch["DescribeThisStacksJobs"],  # the same jobs, described only
    }
    assert by_sid["DescribeThisStacksJobs"]["Action"] == "sagemaker:DescribeTransformJob"
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in function["Events"].values()}
    assert routes == {("POST", "/uploads"), ("GET", "/uploads/{id}")}
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in function["Events"].values())
    assert function["Environment"]["Variables"]["MAX_UPLOAD_MB"] == {"Ref": "MaxUploadMB"}
    assert template["Parameters"]["MaxUploadMB"]["Default"] == 100


def test_the_input_bucket_takes_browser_posts_from_the_allowed_origin_only(template):
    [rule] = template["Resources"]["InputBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [{"Ref": "AllowedOrigin"}] and rule["AllowedMethods"] == ["POST"]
    assert "AllowedHeaders" not in rule  # a multipart form POST sends none that need allowing
    assert "CorsConfiguration" not in template["Resources"]["OutputBucket"]["Properties"]  # downloads are navigations
    api = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert api["AllowOrigins"] == [{"Ref": "AllowedOrigin"}] and api["AllowMethods"] == ["GET", "POST", "OPTIONS"]


def test_failed_events_are_kept(template):
    config = template["Resources"]["CompletionFunction"]["Properties"]["EventInvokeConfig"]
    assert 0 < config["MaximumRetryAttempts"] <= 2
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}
    # Uploads: the function records what it gives up on after MAX_RECEIVES; the
    # queue's redrive policy is the backstop for a message that crashed it.
    uploads = template["Resources"]["UploadsQueue"]["Properties"]
    assert uploads["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    assert uploads["RedrivePolicy"]["maxReceiveCount"] > buffer.MAX_RECEIVES
    assert uploads["MessageRetentionPeriod"] >= buffer.MAX_WAIT_SECONDS
    # AWS: a queue's visibility timeout at least six times the function's timeout.
    assert uploads["VisibilityTimeout"] >= 6 * template["Resources"]["BatchFunction"]["Properties"]["Timeout"]
    assert "EventInvokeConfig" not in template["Resources"]["BatchFunction"]["Properties"]


@pytest.mark.parametrize("bucket", ["InputBucket", "OutputBucket"])
def test_buckets_are_private_encrypted_versioned_and_tls_only(template, bucket):
    props = template["Resources"][bucket]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert any("AbortIncompleteMultipartUpload" in rule for rule in props["LifecycleConfiguration"]["Rules"])
    policies = [r for r in resources(template, "AWS::S3::BucketPolicy").values() if r["Properties"]["Bucket"] == {"Ref": bucket}]
    deny = policies[0]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}


def test_outputs(template):
    assert {"ApiUrl", "InputBucketName", "OutputBucketName", "EndpointName"} <= set(template["Outputs"])


def rule_holds(node, parameters: dict[str, str]) -> bool | str | list:
    """A Rules expression of the template, evaluated as CloudFormation does
    with the parameters given as strings."""
    if isinstance(node, dict):
        (key, value), = node.items()
        if key == "Ref":
            return parameters[value]
        args = [rule_holds(v, parameters) for v in value]
        return {"Fn::Equals": lambda a, b: str(a) == str(b), "Fn::Not": lambda a: not a,
                "Fn::Or": lambda *a: any(a), "Fn::And": lambda *a: all(a),
                "Fn::Contains": lambda values, v: str(v) in [str(x) for x in values]}[key](*args)
    if isinstance(node, list):
        return [rule_holds(v, parameters) for v in node]
    return node


def deployable(template: dict, **parameters) -> bool:
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()} | parameters
    for rule in template["Rules"].values():
        if "RuleCondition" in rule and not rule_holds(rule["RuleCondition"], values):
            continue
        if not all(rule_holds(a["Assert"], values) for a in rule["Assertions"]):
            return False
    return True


def test_provisioned_concurrency_is_at_most_max_concurrency_and_only_serverless(template):
    allowed = template["Parameters"]["ServerlessProvisionedConcurrency"]["AllowedValues"]
    assert template["Parameters"]["ServerlessProvisionedConcurrency"]["Default"] == 0  # nothing billed while idle
    maximum = template["Parameters"]["ServerlessMaxConcurrency"]
    for provisioned in allowed:
        for concurrency in range(maximum["MinValue"], maximum["MaxValue"] + 1):
            assert deployable(template, ServerlessProvisionedConcurrency=str(provisioned),
                              ServerlessMaxConcurrency=str(concurrency)) == (provisioned <= concurrency)
        assert deployable(template, EndpointKind="provisioned", ServerlessProvisionedConcurrency=str(provisioned)) \
            == (provisioned == 0)
    config = template["Resources"]["EndpointConfig"]["Properties"]["ProductionVariants"][0]["ServerlessConfig"]
    # 0 leaves the property out (SageMaker's minimum is 1); more sets it.
    assert config["Fn::If"][1]["ProvisionedConcurrency"] == {
        "Fn::If": ["KeepsEndpointWarm", {"Ref": "ServerlessProvisionedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert template["Conditions"]["KeepsEndpointWarm"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ServerlessProvisionedConcurrency"}, 0]}]}


def test_every_checkov_skip_says_why(template):
    skips = [(name, skip) for name, r in template["Resources"].items()
             for skip in (r.get("Metadata", {}).get("checkov", {}).get("skip", []))]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert len(skip["comment"]) > 20 and "\n" not in skip["comment"], name


# -------------------------------------------------------------- the tools


def tool(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} is missing: run `make tools`")
    return path


def run(*args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0", "BC_SKIP_MAPPING": "TRUE", **(env or {})}
    return subprocess.run([str(a) for a in args], cwd=REPO, env=full, capture_output=True, text=True, timeout=timeout)


@pytest.mark.sam
def test_sam_validate():
    result = run(tool(SAM), "validate", "--template-file", TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


@pytest.mark.sam
def test_sam_validate_lint():
    result = run(tool(SAM), "validate", "--lint", "--template-file", TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.sam
def test_checkov_finds_nothing():
    result = run(tool(CHECKOV), "--file", TEMPLATE, "--framework", "cloudformation", "--output", "json",
                 "--skip-download", "--compact")
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])]
    assert summary["failed"] == 0, failed
    assert summary["passed"] >= 30 and summary["parsing_errors"] == 0
    skipped = report["results"]["skipped_checks"]
    assert len(skipped) == summary["skipped"] and all(c["check_result"]["suppress_comment"] for c in skipped)


def python312() -> str:
    """Python 3.12 (the functions' runtime): on PATH, or a pyenv version."""
    for candidate in (shutil.which("python3.12"), *sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
                                                        .glob("versions/3.12*/bin/python3.12"))):
        if candidate and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return str(candidate)
    pytest.fail("sam build needs python3.12 (the functions' runtime): install it, e.g. `pyenv install 3.12`")


SMOKE = r"""
import importlib.util, json, sys
sys.path[:0] = sys.argv[1:4]
import app
event = json.loads(sys.argv[4])
result = app.lambda_handler(event, type("Context", (), {
    "function_name": "f", "function_version": "$LATEST", "memory_limit_in_mb": 256,
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
    "aws_request_id": "r", "get_remaining_time_in_millis": lambda self: 1000})())
import batch.jobs, contract
print(json.dumps({"result": result, "boto3": sys.modules["boto3"].__file__, "batch": batch.jobs.__file__,
                  "contract": contract.__file__, "critic": importlib.util.find_spec("critic") is not None}))
"""


# sam build keeps its record of cached builds (build.toml) beside the build
# dir: a fixed place (ignored by git) lets later runs reuse the dependencies.
BUILD_ROOT = REPO / ".aws-sam" / "app-tests"


@pytest.mark.sam
def test_sam_build_packages_each_function_with_only_what_it_needs():
    python = python312()
    build = BUILD_ROOT / "build"
    shutil.rmtree(build, ignore_errors=True)
    env = {"PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}"}
    result = run(tool(SAM), "build", "--template-file", TEMPLATE, "--build-dir", build,
                 "--cache-dir", BUILD_ROOT / "cache", "--cached", env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # DomainLayer: batch's domain modules and contract, copies of this
    # checkout's files; no bytecode.
    domain = build / "DomainLayer" / "python"
    assert sorted(str(p.relative_to(domain)) for p in domain.rglob("*") if p.is_file()) == sorted(
        [f"batch/{p.name}" for p in (REPO / "batch").glob("*.py")]
        + [f"contract/{p.relative_to(REPO / 'contract')}" for p in (REPO / "contract").rglob("*.py")])
    assert (domain / "batch" / "jobs.py").read_text() == (REPO / "batch" / "jobs.py").read_text()
    assert not (domain / "batch" / "jobs.py").is_symlink()

    # DependenciesLayer: exactly the pinned distributions, at the tested
    # versions (an unpinned botocore would have been a newer one).
    dependencies = build / "DependenciesLayer" / "python"
    installed = {normalized(p.name[:-len(".dist-info")].rsplit("-", 1)[0]): p.name[:-len(".dist-info")].rsplit("-", 1)[1]
                 for p in dependencies.glob("*.dist-info")}
    assert installed == pins(REPO / "layers" / "dependencies" / "requirements.txt")
    assert list((dependencies / "wrapt").glob("_wrappers.cpython-312-aarch64-linux-gnu.so"))  # arm64 wheel, not the fallback
    size = sum(f.stat().st_size for f in dependencies.rglob("*") if f.is_file())
    assert size < 100 * 2**20  # far from Lambda's 250 MB unzipped limit (function and layers together)

    # The functions: their own code only.
    for logical_id, folder in FUNCTIONS.items():
        artifact = build / logical_id
        assert sorted(p.name for p in artifact.iterdir()) == ["__init__.py", "app.py"]
        assert (artifact / "app.py").read_text() == (REPO / "functions" / folder / "app.py").read_text()
    built = cfn_yaml.load(str(build / "template.yaml"))
    for logical_id in FUNCTIONS:
        assert built["Resources"][logical_id]["Properties"]["Layers"] == [{"Ref": "DependenciesLayer"}, {"Ref": "DomainLayer"}]
    assert built["Resources"]["DomainLayer"]["Properties"]["ContentUri"] == "DomainLayer"

    # Each artifact runs under Python 3.12 without site-packages: only its own
    # contents and the two layers on the path, in Lambda's order.
    cases = {
        "RealtimeFunction": ("api-malformed-json", lambda r: r["statusCode"] == 400),
        "BatchFunction": ("s3-put-non-input", lambda r: r == {"batchItemFailures": []}),
        "CompletionFunction": ("sagemaker-transform-completed", lambda r: r is None),
        "UploadsFunction": ("api-malformed-json", lambda r: r["statusCode"] == 404),  # POST /score is not its route
    }
    for logical_id, (event_name, ok) in cases.items():
        event = json.loads((REPO / "events" / f"{event_name}.json").read_text())
        if logical_id == "CompletionFunction":
            event["detail"]["TransformJobName"] = "another-stacks-job-0123456789abcdef"  # ignored: no AWS call
        if logical_id == "BatchFunction":  # as the uploads queue delivers it
            event = {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": json.dumps(event),
                                  "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                                  "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:u",
                                  "awsRegion": "us-east-1"}]}
        child = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}, **ENV,
                 "POWERTOOLS_SERVICE_NAME": "smoke", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
        done = subprocess.run([python, "-S", "-B", "-c", SMOKE, str(build / logical_id), str(dependencies), str(domain),
                               json.dumps(event)], capture_output=True, text=True, env=child, timeout=120,
                              cwd=build)  # not the checkout: -c puts the working directory on the path
        assert done.returncode == 0, done.stderr[-3000:]
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert ok(answer["result"]), answer
        assert answer["boto3"].startswith(str(dependencies))
        assert answer["batch"].startswith(str(domain)) and answer["contract"].startswith(str(domain))
        assert answer["critic"] is False  # neither the CLI nor the local emulator ships


def test_a_new_model_is_switched_blue_green_and_rolled_back_on_the_endpoint_error_alarm(template):
    resources = template["Resources"]
    config = resources["Endpoint"]["Properties"]["DeploymentConfig"]
    alarm_name = resources["EndpointErrorsAlarm"]["Properties"]["AlarmName"]
    # the endpoint names the alarm (the alarm watches the endpoint: a !Ref would be circular)
    assert config["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": alarm_name}]
    assert "EndpointErrorsAlarm" not in json.dumps(resources["Endpoint"])
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    canary, all_at_once = routing["Fn::If"][1:]
    assert routing["Fn::If"][0] == "CanaryFits" and canary["Type"] == "CANARY" and all_at_once["Type"] == "ALL_AT_ONCE"
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] >= 300  # two of the alarm's 5-minute periods


def test_a_replaced_model_is_kept_tagged_and_its_artifact_readable_during_the_switch(template):
    model = template["Resources"]["Model"]
    assert model["UpdateReplacePolicy"] == "Retain"
    tags = {t["Key"]: t["Value"] for t in model["Properties"]["Tags"]}
    assert tags == {"critic:stack": {"Ref": "AWS::StackName"}, "critic:sha256": {"Ref": "ModelSha256"},
                    "critic:metrics": {"Ref": "ModelMetrics"}, "critic:deployed-at": {"Ref": "DeployedAt"}}
    policy = template["Resources"]["SageMakerExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    read = next(s for s in policy["Statement"] if s["Sid"] == "ReadModelArtifact")
    assert "PreviousModelDataUrl" in json.dumps(read["Resource"])
