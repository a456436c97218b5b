"""`critic deploy` and `critic destroy`, step by step.

deploy: who am I (STS) -> is the stack in a state to update -> the artifact,
checked and hashed -> sam build -> the artifact bucket (created private if
missing) -> the artifact, uploaded under its SHA-256 -> sam deploy -> the
stack's outputs -> web/config.js -> what was deployed and how to try it.
Nothing is written to AWS before the checks and the build have passed.

destroy: the stack's retained resources are listed, one confirmation, the
stack is deleted and waited for, then buckets are deleted only if named with
--delete-bucket; the rest is printed with the exact command that removes it.
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from botocore.exceptions import WaiterError

from critic import REPO_ROOT, SHIPPED_ARTIFACT
from critic.errors import UsageError
from critic.deploy import artifact as artifacts
from critic.deploy import sam
from critic.deploy.aws import (
    DRY_RUN_ACCOUNT,
    Answer,
    AwsError,
    DryRun,
    Live,
    Runner,
    aws_errors,
    caller_account,
    missing,
    region_of,
    run_command,
    say,
)
from critic.deploy.buckets import (
    artifact_bucket_name,
    bucket_exists,
    empty_and_delete,
    ensure_bucket,
    sha256_of,
    split_s3_uri,
    upload,
)
from critic.deploy.models import MODEL_PARAMETERS, NONE, PREVIOUS, metrics_tag, now, stack_parameters
from critic.deploy.stack import (
    DEPLOYABLE,
    TEMPLATE,
    Kept,
    Template,
    check_deployable,
    check_region,
    delete,
    describe,
    outputs,
    read_template,
    retained_resources,
)

DEFAULT_STACK = "critic"
WEB_CONFIG = REPO_ROOT / "web" / "config.js"
COMPUTED = {"ModelDataUrl": "--artifact", "InferenceImageUri": "--image-uri", "ModelSha256": "--artifact",
            "ModelMetrics": "--artifact", "DeployedAt": "--artifact", "PreviousModelDataUrl": "--artifact"}
EXAMPLE_REVIEW = "A moving, beautifully acted film with a clever script."


@dataclass
class DeployOptions:
    artifact: str | None = None  # path, model dir or s3:// URI; None: the shipped artifact
    stack: str | None = None
    region: str | None = None
    image_uri: str | None = None
    parameters: list[str] = field(default_factory=list)  # NAME=VALUE
    bucket: str | None = None  # the artifact bucket; None: critic-artifacts-<account>-<region>
    use_container: bool = False
    yes: bool = False
    dry_run: bool = False
    force: bool = False  # deploy even if the new model is worse than the deployed one
    check_data: str | None = None  # labelled reviews to compare on; None: the check set, from IMDB's tarball
    max_drop: float = 0.5  # model/compare.py's DEFAULT_MAX_DROP (not imported: it loads numpy)


@dataclass
class DestroyOptions:
    stack: str | None = None
    region: str | None = None
    delete_buckets: list[str] = field(default_factory=list)
    yes: bool = False
    dry_run: bool = False


@dataclass
class Paths:
    """Where the flows read and write; tests point these elsewhere."""

    template: Path = TEMPLATE
    samconfig: Path = sam.SAMCONFIG
    web_config: Path = WEB_CONFIG
    workdir: Path = REPO_ROOT  # where sam runs


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# --------------------------------------------------------------------------- #
# deploy
# --------------------------------------------------------------------------- #

def parameter_overrides(template: Template, pairs: list[str], image_uri: str | None) -> dict[str, str]:
    """--parameter NAME=VALUE pairs (and --image-uri), checked against template.yaml."""
    chosen: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--parameter {pair}: expected NAME=VALUE")
        if name in COMPUTED:
            raise UsageError(f"--parameter {name}: set it with {COMPUTED[name]}")
        chosen[name] = value
    if image_uri:
        chosen["InferenceImageUri"] = image_uri
    for name, value in chosen.items():
        spec = template.parameters.get(name)
        if spec is None:
            raise UsageError(f"template.yaml has no parameter {name}; it has "
                             f"{', '.join(p for p in template.parameters if p not in COMPUTED)}")
        if re.search(r"\s", value):
            raise UsageError(f"{name}: values cannot contain white space")
        allowed = [str(v) for v in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            raise UsageError(f"{name}={value}: allowed values are {', '.join(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise UsageError(f"{name}={value}: {spec.get('ConstraintDescription') or 'must match ' + pattern}")
    return chosen


def _deploy_assumptions(stack: str, template: Template, configured: bool) -> dict:
    deployed = [{"ParameterKey": "ModelDataUrl", "ParameterValue": "s3://critic-artifacts-deployed/models/deployed/model.tar.gz"}]
    exists = {"Stacks": [{"StackName": stack, "StackStatus": "UPDATE_COMPLETE", "CreationTime": "2025-01-01",
                          "Parameters": deployed,
                          "Outputs": [{"OutputKey": k, "OutputValue": f"<{k}>"} for k in template.outputs]}]}
    absent = missing("ValidationError", 400, f"Stack with id {stack} does not exist",
                     note="the stack does not exist yet (a first deployment)")
    return {
        "GetCallerIdentity": Answer({"Account": DRY_RUN_ACCOUNT, "Arn": "arn", "UserId": "user"},
                                    note=f"your account id is shown as {DRY_RUN_ACCOUNT}"),
        "DescribeStacks": [
            Answer(exists, note="the stack exists and can be updated (samconfig.toml is there); its model is "
                                "shown as the shipped one, which the comparison below stands in for it")
            if configured else absent,
            Answer(exists, note="sam deploy has deployed the stack; its outputs are shown as <Name>"),
        ],
        "GetObject": Answer({}, note="the artifact is downloaded and checked; its SHA-256 names its key"),
        "HeadBucket": missing(note="the artifact bucket does not exist yet"),
        "HeadObject": missing(note="this artifact has not been uploaded yet"),
    }


def training_metrics(source: str) -> dict[str, float]:
    """The validation figures `critic train` wrote beside the artifact (metrics.json), if they are there."""
    if source.startswith("s3://"):
        return {}
    here = Path(source)  # runs/<time>/model.tar.gz or runs/<time>/model/: runs/<time>/metrics.json
    for candidate in (here.parent / "metrics.json", here.parent / "training-metrics.json"):
        if candidate.is_file():
            try:
                validation = json.loads(candidate.read_text()).get("validation", {})
            except (OSError, ValueError, AttributeError):
                return {}
            return {f"validation_{k}": validation[k] for k in ("accuracy", "roc_auc") if isinstance(validation.get(k), float)}
    return {}


def _check_reviews(options: DeployOptions):
    from model import checkset
    from model.compare import LabelledDataError, read_labelled
    from model.data import DataError, download

    try:
        if options.check_data:
            return read_labelled(options.check_data)
        say("reading the check set from IMDB's aclImdb_v1.tar.gz (downloaded once into the cache if absent; "
            "--check-data names other labelled reviews)")
        return checkset.load(download())
    except (LabelledDataError, DataError, checkset.CheckSetError, OSError) as error:
        raise UsageError(f"the check set: {error} (critic deploy: pass --check-data)") from None


def _model_parameters(options: DeployOptions, ctx, s3, deployed: dict[str, str], path: Path | None, digest: str,
                      work: Path, out) -> dict[str, str]:
    """Compares the new model with the deployed one (refusing a worse one unless --force), and returns the
    parameters that tag the new Model: its SHA-256, its metrics, when it goes live."""
    from critic.judge import judge
    from model.compare import report

    metrics: dict = training_metrics(options.artifact or str(SHIPPED_ARTIFACT))
    current = deployed.get("ModelDataUrl")
    if not current:
        say("nothing is deployed yet: no model to compare with")
    elif path is not None and current.endswith(f"/{digest}/model.tar.gz"):
        say("the deployed model is this one (same SHA-256): nothing to compare")
    elif path is not None:
        say(f"comparing the new model with the deployed one ({current}) before changing anything")
        if ctx.dry_run:  # nothing is downloaded: the shipped model stands in for the deployed one
            s3.get_object(Bucket=split_s3_uri(current)[0], Key=split_s3_uri(current)[1])
            baseline = SHIPPED_ARTIFACT
        else:
            (work / "deployed").mkdir()
            baseline = artifacts.download(s3, current, work / "deployed")
        comparison = judge(baseline, path, _check_reviews(options), options.max_drop)
        shown = report(comparison, "deployed" + (" (the shipped model stands in)" if ctx.dry_run else ""), "new")
        (ctx.print if ctx.dry_run else lambda text: print(text, file=out))(shown)
        metrics.update({"check_accuracy": comparison.candidate["accuracy"], "check_roc_auc": comparison.candidate["roc_auc"],
                        "check_ece": comparison.candidate["ece"]})
        if comparison.worse:
            if not options.force:
                raise UsageError("refused: the new model is worse than the deployed one ("
                                 + "; ".join(comparison.worse) + "). Nothing was changed. Deploy it anyway with "
                                 "--force, or compare on other reviews with --check-data")
            say("--force: deploying a model worse than the deployed one")
    return {"ModelSha256": digest if path is not None else NONE, "ModelMetrics": metrics_tag(metrics),
            "DeployedAt": now()}


def web_config_text(api_url: str, stack: str, region: str) -> str:
    """Same shape as the committed web/config.js."""
    return (f"// Written by `critic deploy` (stack {stack}, {region}): the page talks to this API.\n"
            "// `git checkout web/config.js` restores the local default; ?api=URL overrides either.\n"
            f"window.CRITIC_CONFIG = {{ apiUrl: {json.dumps(api_url)} }};\n")


def deploy(options: DeployOptions, *, runner: Runner = run_command, paths: Paths | None = None,
           interactive: bool | None = None, out=None) -> int:
    paths = paths or Paths()
    out = out or sys.stdout
    config = sam.read_config(paths.samconfig)
    stack_name = options.stack or config.get("stack_name") or DEFAULT_STACK
    region = region_of(options.region, config.get("region"))
    template = read_template(paths.template)
    check_region(template, region, options.image_uri)
    chosen = parameter_overrides(template, options.parameters, options.image_uri)
    configured = paths.samconfig.exists()
    interactive = _interactive() if interactive is None else interactive
    if not (interactive or options.yes or options.dry_run):
        raise UsageError("not a terminal: pass --yes to deploy without reviewing the change set")
    mode = "configured" if configured else ("explicit" if options.yes else "guided")
    sam_cli = sam.executable(options.dry_run)
    if options.dry_run:
        ctx = DryRun(region, _deploy_assumptions(stack_name, template, configured), out=out)
        ctx.print(f"# critic deploy --dry-run: stack {stack_name} in {region}; nothing is called, run or written")
    else:
        ctx = Live(region, runner)

    with tempfile.TemporaryDirectory(prefix="critic-deploy-") as work, aws_errors(), ctx.narrating():
        source = options.artifact or str(SHIPPED_ARTIFACT)
        path, digest = None, "SHA256"
        if not source.startswith("s3://"):  # local checks first
            if options.artifact is None and not SHIPPED_ARTIFACT.exists():
                raise UsageError(f"no shipped model at {SHIPPED_ARTIFACT}: train one (`critic train`) and pass "
                                 "--artifact runs/<time>/model.tar.gz, or pass an s3:// URI")
            path = artifacts.local(Path(source), Path(work))
            digest = sha256_of(path)

        account = caller_account(ctx)
        cfn, s3 = ctx.client("cloudformation"), ctx.client("s3")
        stack_now = describe(cfn, stack_name)
        check_deployable(stack_now, stack_name, region)

        if source.startswith("s3://"):
            say(f"downloading {source} to check it")
            if ctx.dry_run:
                s3_bucket, s3_key = split_s3_uri(source)
                s3.get_object(Bucket=s3_bucket, Key=s3_key)
            else:
                path = artifacts.download(s3, source, Path(work))
                digest = sha256_of(path)

        deployed = stack_parameters(stack_now)
        model_parameters = _model_parameters(options, ctx, s3, deployed, path, digest, Path(work), out)

        if ctx.run(sam.build_command(sam_cli, options.use_container), paths.workdir) != 0:
            raise UsageError("sam build failed (see its output above); nothing was deployed")

        bucket = options.bucket or artifact_bucket_name(account, region)
        ensure_bucket(s3, bucket, account, region)
        key = f"models/{digest}/model.tar.gz"
        if path:
            model_uri = upload(s3, path, bucket, key, account, digest)
        else:  # a dry run does not download
            model_uri = f"s3://{bucket}/{key}"
            say(f"s3.HeadObject, then s3.PutObject of the downloaded artifact to {model_uri}, "
                "with ChecksumSHA256 = its SHA-256")

        if deployed.get("ModelDataUrl") == model_uri:  # the same model: its tags and its Model stay as they are
            model_parameters.update({k: deployed.get(k) or NONE for k in (*MODEL_PARAMETERS, PREVIOUS)})
        else:
            model_parameters[PREVIOUS] = deployed.get("ModelDataUrl") or NONE
        overrides = {"ModelDataUrl": model_uri, **model_parameters, **chosen}
        code = ctx.run(sam.deploy_command(sam_cli, stack=stack_name, region=region, overrides=overrides,
                                          mode=mode, yes=options.yes), paths.workdir)
        if mode == "guided" and not ctx.dry_run:  # the answers may name another stack or region
            saved = sam.read_config(paths.samconfig)
            if saved.get("region", region) != region:
                raise AwsError(f"the guided deploy chose region {saved['region']}, but the model was uploaded "
                               f"in {region}, and SageMaker reads it only from its own region: run "
                               f"critic deploy --region {saved['region']}")
            stack_name = saved.get("stack_name", stack_name)
        stack = describe(cfn, stack_name)
        if code != 0:
            check_deployable(stack, stack_name, region)
            raise AwsError(f"sam deploy failed (exit {code}); see its output above")
        found = outputs(stack) if stack else {}
        if not stack or stack["StackStatus"] not in DEPLOYABLE or "ApiUrl" not in found:
            state = stack["StackStatus"] if stack else "absent"
            raise AwsError(f"stack {stack_name} in {region} is {state} with no ApiUrl output: the change set "
                           "was not executed? Run critic deploy again.")
        ctx.write(paths.web_config, web_config_text(found["ApiUrl"], stack_name, region))

    if ctx.dry_run:
        ctx.print("# dry run: nothing was called, created, run or written")
        return 0
    _report(stack_name, region, found, model_uri, paths.web_config, out)
    return 0


def _report(stack: str, region: str, found: dict[str, str], model_uri: str, web_config: Path, out) -> None:
    api = found["ApiUrl"].rstrip("/")
    lines = [f"Critic is deployed: stack {stack} in {region}.",
             f"  API            {api}/score  (POST a review)"]
    if "InputBucketName" in found:
        lines.append(f"  input bucket   s3://{found['InputBucketName']}  (put .txt, .jsonl or .csv files of reviews)")
    if "OutputBucketName" in found:
        lines.append(f"  output bucket  s3://{found['OutputBucketName']}  (<key>.out results, <key>.status.json)")
    if "EndpointName" in found:
        lines.append(f"  endpoint       {found['EndpointName']}  (SageMaker)")
    lines.append(f"  model          {model_uri}")
    for key, value in found.items():
        if key not in ("ApiUrl", "InputBucketName", "OutputBucketName", "EndpointName"):
            lines.append(f"  {key}  {value}")
    lines += [f"  web page       {web_config} points at this API: open web/index.html in a browser",
              "Try it (a serverless endpoint starts cold: the first request after a quiet while can be slow or "
              "answer 503/504; try again):",
              f"  curl -sS -X POST {api}/score -H 'content-type: application/json' "
              f"-d '{json.dumps({'review': EXAMPLE_REVIEW})}'"]
    if "InputBucketName" in found and "OutputBucketName" in found:
        lines.append(f"  aws s3 cp reviews.txt s3://{found['InputBucketName']}/reviews.txt && "
                     f"aws s3 ls s3://{found['OutputBucketName']}/")
    lines.append(f"Remove it all with: critic destroy --stack-name {stack} --region {region}")
    print("\n".join(lines), file=out)


# --------------------------------------------------------------------------- #
# destroy
# --------------------------------------------------------------------------- #

def _destroy_assumptions(stack: str, template: Template) -> dict:
    return {
        "GetCallerIdentity": Answer({"Account": DRY_RUN_ACCOUNT, "Arn": "arn", "UserId": "user"},
                                    note=f"your account id is shown as {DRY_RUN_ACCOUNT}"),
        "DescribeStacks": [
            Answer({"Stacks": [{"StackName": stack, "StackStatus": "UPDATE_COMPLETE", "CreationTime": "2025-01-01"}]},
                   note="the stack exists"),
            missing("ValidationError", 400, f"Stack with id {stack} does not exist",
                    note="polled every 15 s until the stack is gone"),
        ],
        "DescribeStackResources": Answer(
            {"StackResources": [{"LogicalResourceId": name, "ResourceType": kind, "PhysicalResourceId": f"<{name}>",
                                 "StackName": stack, "ResourceStatus": "CREATE_COMPLETE", "Timestamp": "2025-01-01"}
                                for name, kind in template.retained.items()]},
            note="its retained resources are shown as <LogicalId>"),
        "HeadBucket": Answer(note="the bucket exists"),
        "ListObjectVersions": Answer(note="repeated, 1,000 versions a page, with DeleteObjects for each page"),
    }


def destroy(options: DestroyOptions, *, paths: Paths | None = None, interactive: bool | None = None,
            ask: Callable[[str], bool] = _ask, out=None, delay: int = 15) -> int:
    paths = paths or Paths()
    out = out or sys.stdout
    config = sam.read_config(paths.samconfig)
    stack_name = options.stack or config.get("stack_name") or DEFAULT_STACK
    region = region_of(options.region, config.get("region"))
    template = read_template(paths.template)
    interactive = _interactive() if interactive is None else interactive
    if not (interactive or options.yes or options.dry_run):
        raise UsageError("not a terminal: pass --yes to delete without being asked")
    if options.dry_run:
        ctx = DryRun(region, _destroy_assumptions(stack_name, template), out=out)
        ctx.print(f"# critic destroy --dry-run: stack {stack_name} in {region}; nothing is called or deleted")
    else:
        ctx = Live(region)

    with aws_errors(), ctx.narrating():
        account = caller_account(ctx)
        cfn, s3 = ctx.client("cloudformation"), ctx.client("s3")
        stack = describe(cfn, stack_name)
        kept: list[Kept] = []
        if stack is not None:
            status = stack["StackStatus"]
            if status.endswith("_IN_PROGRESS") and status not in ("DELETE_IN_PROGRESS", "REVIEW_IN_PROGRESS"):
                raise AwsError(f"stack {stack_name} in {region} is {status}: wait until that operation ends, "
                               "then run critic destroy again")
            kept = retained_resources(cfn, stack_name, template)
            if kept:
                say("deleting the stack keeps (DeletionPolicy: Retain): "
                    + ", ".join(f"{k.physical_id} ({k.logical_id})" for k in kept))
        doomed = list(dict.fromkeys(options.delete_buckets))
        if stack is None and not doomed:
            say(f"there is no stack {stack_name} in {region}: nothing to delete")
        elif not (options.yes or options.dry_run):
            what = [f"stack {stack_name} in {region}"] if stack is not None else []
            what += [f"bucket {b} with every object version in it" for b in doomed]
            if not ask(f"Delete {' and '.join(what)}? This cannot be undone."):
                say("nothing deleted")
                return 1
        if stack is not None:
            say(f"deleting stack {stack_name} in {region} (the SageMaker endpoint takes a few minutes)")
            delete(cfn, stack_name, region, already_deleting=stack["StackStatus"] == "DELETE_IN_PROGRESS",
                   delay=delay)
        for bucket in doomed:
            if not empty_and_delete(s3, bucket, account):
                say(f"there is no bucket {bucket}: nothing to delete")
        artifact_bucket = artifact_bucket_name(account, region)
        artifact_left = artifact_bucket not in doomed and bucket_exists(s3, artifact_bucket, account)

    if ctx.dry_run:
        ctx.print("# dry run: nothing was called or deleted")
        return 0
    _report_kept(stack_name if stack is not None else None, region,
                 [k for k in kept if k.physical_id not in doomed], artifact_bucket if artifact_left else None, out)
    return 0


def _report_kept(stack: str | None, region: str, kept: list[Kept], artifact_bucket: str | None, out) -> None:
    lines = [f"Deleted stack {stack} in {region}." if stack else f"No stack deleted in {region}."]
    buckets = [k.physical_id for k in kept if k.type == "AWS::S3::Bucket"]
    if kept or artifact_bucket:
        lines.append("Kept, because they hold data (DeletionPolicy: Retain):")
        for k in kept:
            lines.append(f"  {k.physical_id}  ({k.logical_id}, {k.type})")
        if artifact_bucket:
            lines.append(f"  {artifact_bucket}  (the model artifacts critic deploy uploads; shared by every "
                         f"Critic stack of this account in {region})")
            buckets.append(artifact_bucket)
    if buckets:
        lines.append("To delete them and every object version in them (cannot be undone):")
        lines.append(f"  critic destroy --region {region} --yes "
                     + " ".join(f"--delete-bucket {b}" for b in buckets))
        if artifact_bucket:
            lines.append(f"  (the artifact bucket is not versioned: `aws s3 rb s3://{artifact_bucket} --force` "
                         "removes it too)")
    lines.append("Also kept: the SAM CLI's packaging bucket (stack aws-sam-cli-managed-default, shared by every "
                 "SAM project in the region) and, if you trained on SageMaker, the training bucket.")
    print("\n".join(lines), file=out)


# --------------------------------------------------------------------------- #
# rollback
# --------------------------------------------------------------------------- #

@dataclass
class RollbackOptions:
    stack: str | None = None
    region: str | None = None
    to: str | None = None  # a prefix of the model's SHA-256; None: the latest other model
    dry_run: bool = False


def rollback(options: RollbackOptions, *, paths: Paths | None = None, session=None, out=None, delay: int = 15) -> int:
    """An UpdateStack with the deployed template, every parameter as deployed but the model's. Its dry run
    reads (the stack, its models) and prints the update it would make."""
    from critic.deploy.models import CAPABILITIES, choose, deployed_models, rollback_parameters

    paths = paths or Paths()
    out = out or sys.stdout
    config = sam.read_config(paths.samconfig)
    stack_name = options.stack or config.get("stack_name") or DEFAULT_STACK
    region = region_of(options.region, config.get("region"))
    ctx = Live(region, session=session)
    with aws_errors():
        cfn, sagemaker = ctx.client("cloudformation"), ctx.client("sagemaker")
        stack = describe(cfn, stack_name)
        if stack is None:
            raise UsageError(f"there is no stack {stack_name} in {region}: nothing to roll back")
        check_deployable(stack, stack_name, region)
        current = stack_parameters(stack).get("ModelDataUrl", "")
        target = choose(deployed_models(sagemaker, stack_name), current, options.to)
        request = {"StackName": stack_name, "UsePreviousTemplate": True, "Capabilities": CAPABILITIES,
                   "Parameters": rollback_parameters(stack, target)}
        print(f"rolling stack {stack_name} in {region} back to model {target.sha256[:12]} "
              f"(went live {target.deployed_at}; {target.metrics})\n  from {current}\n  to   {target.model_data_url}",
              file=out)
        if options.dry_run:
            print(f"dry run: would call cloudformation.UpdateStack({request!r}) and wait for it; nothing changed",
                  file=out)
            return 0
        cfn.update_stack(**request)
        say(f"waiting for stack {stack_name} to update (the endpoint's blue/green switch takes minutes)")
        try:
            cfn.get_waiter("stack_update_complete").wait(
                StackName=stack_name, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, 3600 // max(delay, 1))})
        except WaiterError:
            after = describe(cfn, stack_name) or {}
            raise AwsError(f"the rollback did not complete: stack {stack_name} is {after.get('StackStatus')} "
                           f"({after.get('StackStatusReason', 'see its events')})") from None
    print(f"stack {stack_name} serves model {target.sha256[:12]} again", file=out)
    return 0
