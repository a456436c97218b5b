"""Read template.yaml the way CloudFormation and SAM would, for one machine.

Resources get local physical names (their Name property, resolved, or
`<stack>-<logicalid>` in lower case), intrinsic functions are resolved
against them (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, ...), and the parts
the local stack runs are collected: the Lambda functions (handler, code
folder, the folders their layers stand for, environment with Globals,
timeout, memory, event sources), the buckets, the SageMaker endpoint and model
names, and the HTTP API routes and CORS configuration.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.cfn_yaml import TemplateError, load_yaml
from critic.local.ids import ACCOUNT_ID, DEFAULT_REGION

DEFAULT_STACK = "critic"


# --------------------------------------------------------------------------- #
# What the local stack runs
# --------------------------------------------------------------------------- #

@dataclass
class EventSource:
    name: str
    type: str  # S3 | EventBridgeRule | HttpApi
    properties: dict


@dataclass
class Function:
    logical_id: str
    name: str
    handler: str
    code_dir: Path
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: list[EventSource] = field(default_factory=list)
    reserved_concurrency: int | None = None
    maximum_retry_attempts: int = 2
    layers: list[Path] = field(default_factory=list)
    on_failure: str | None = None  # ARN of the on-failure destination of async invocations

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:function:{self.name}"


@dataclass
class Bucket:
    logical_id: str
    name: str
    versioned: bool
    eventbridge: bool  # NotificationConfiguration.EventBridgeConfiguration
    cors_rules: list[dict] = field(default_factory=list)  # CorsConfiguration.CorsRules, resolved


@dataclass
class Route:
    method: str  # ANY or an HTTP method
    path: str  # /score, /items/{id}, /{proxy+}, or $default
    function: str  # logical id
    payload_version: str = "2.0"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass
class HttpApi:
    logical_id: str
    api_id: str
    cors: dict | None
    routes: list[Route] = field(default_factory=list)


@dataclass
class Rule:
    """An EventBridge rule with a Lambda target (SAM EventBridgeRule event or
    AWS::Events::Rule)."""
    name: str
    pattern: dict
    function: str  # logical id
    input: Any = None
    input_path: str | None = None


@dataclass
class S3Notification:
    bucket: str  # bucket name
    function: str | None  # logical id: the function invoked, or the one reading `queue`
    events: list[str]
    prefix: str = ""
    suffix: str = ""
    configuration_id: str = ""
    queue: str | None = None  # queue name, when S3 sends the event to SQS


@dataclass
class Queue:
    """An SQS queue (AWS::SQS::Queue) and the settings the local stack honours."""
    logical_id: str
    name: str
    visibility_timeout: int = 30
    retention_seconds: int = 345_600
    delay_seconds: int = 0
    dead_letter_queue: str | None = None  # name, from RedrivePolicy.deadLetterTargetArn
    max_receive_count: int | None = None


@dataclass
class QueueSource:
    """An SQS event source mapping: a function reading a queue in batches."""
    function: str  # logical id
    queue: str  # queue name
    batch_size: int = 10
    batching_window: float = 0.0
    report_batch_item_failures: bool = False
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency


@dataclass
class LocalStack:
    path: Path
    root: Path
    stack_name: str
    region: str
    parameters: dict[str, str]
    functions: dict[str, Function]
    buckets: dict[str, Bucket]
    endpoints: list[str]
    models: list[str]
    apis: list[HttpApi]
    rules: list[Rule]
    s3_notifications: list[S3Notification]
    queues: list[Queue] = field(default_factory=list)  # the template's SQS queues
    queue_sources: list[QueueSource] = field(default_factory=list)

    def function(self, name: str) -> Function:
        """A function by logical id or function name."""
        for function in self.functions.values():
            if name in (function.logical_id, function.name):
                return function
        known = ", ".join(sorted(self.functions)) or "none"
        raise TemplateError(f"no function {name!r} in {self.path.name} (functions: {known})")

    def bucket_named(self, name: str) -> Bucket | None:
        return next((b for b in self.buckets.values() if b.name == name), None)


# --------------------------------------------------------------------------- #
# Intrinsic functions
# --------------------------------------------------------------------------- #

_NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Serverless::HttpApi": None,
}
_ARN_SERVICE = {
    "AWS::SageMaker::Endpoint": ("sagemaker", "endpoint/"),
    "AWS::SageMaker::EndpointConfig": ("sagemaker", "endpoint-config/"),
    "AWS::SageMaker::Model": ("sagemaker", "model/"),
    "AWS::Serverless::Function": ("lambda", "function:"),
    "AWS::Lambda::Function": ("lambda", "function:"),
    "AWS::SQS::Queue": ("sqs", ""),
    "AWS::SNS::Topic": ("sns", ""),
    "AWS::Events::Rule": ("events", "rule/"),
    "AWS::Logs::LogGroup": ("logs", "log-group:"),
}
# Resources whose Ref is their ARN rather than their name.
_REF_IS_ARN = {"AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model",
               "AWS::SNS::Topic"}


class _Resolver:
    def __init__(self, document: dict, stack_name: str, region: str, overrides: dict[str, str]):
        self.document = document
        self.stack = stack_name
        self.region = region
        self.resources: dict = document.get("Resources") or {}
        self.parameters: dict[str, Any] = {}
        for name, spec in (document.get("Parameters") or {}).items():
            if name in overrides:
                self.parameters[name] = overrides[name]
            elif "Default" in spec:
                self.parameters[name] = spec["Default"]
        self.conditions = document.get("Conditions") or {}
        self._names: dict[str, str] = {}
        # SAM's implicit resources.
        self.implicit = {"ServerlessHttpApi": "AWS::Serverless::HttpApi", "ServerlessRestApi": "AWS::Serverless::Api"}

    # -- physical names --------------------------------------------------- #

    def name(self, logical_id: str) -> str:
        if logical_id in self._names:
            return self._names[logical_id]
        resource = self.resources.get(logical_id)
        if resource is None and logical_id not in self.implicit:
            if logical_id.endswith("Role") and logical_id[:-4] in self.resources:
                return f"{self.stack}-{logical_id}".lower()[:64]
            raise TemplateError(f"Ref to {logical_id!r}: no such resource or parameter")
        rtype = resource["Type"] if resource else self.implicit[logical_id]
        prop = _NAME_PROPERTIES.get(rtype)
        properties = (resource or {}).get("Properties") or {}
        if rtype in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
            value = re.sub(r"[^a-z0-9]", "", logical_id.lower())[:10] or "api"
        elif prop and prop in properties:
            self._names[logical_id] = "…"  # guards against a name that refers to itself
            value = str(self.resolve(properties[prop], f"{logical_id}.{prop}"))
        else:
            value = f"{self.stack}-{logical_id}".lower()[:63].rstrip("-")
        self._names[logical_id] = value
        return value

    def arn(self, logical_id: str) -> str:
        rtype = self.resources.get(logical_id, {}).get("Type", "")
        name = self.name(logical_id)
        if rtype == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if rtype == "AWS::IAM::Role" or (logical_id.endswith("Role") and logical_id not in self.resources):
            return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        service, prefix = _ARN_SERVICE.get(rtype, (rtype.split("::")[1].lower() if "::" in rtype else "x", ""))
        if rtype.startswith("AWS::SageMaker::"):
            name = name.lower()
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{prefix}{name}"

    # -- functions -------------------------------------------------------- #

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }.get(name)

    def ref(self, name: str, where: str) -> Any:
        pseudo = self.pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in (self.document.get("Parameters") or {}):
            raise TemplateError(f"{where}: parameter {name} has no Default; pass it with --parameter {name}=VALUE")
        rtype = self.resources.get(name, {}).get("Type")
        if rtype in _REF_IS_ARN:
            return self.arn(name)
        if rtype == "AWS::SQS::Queue":  # as AWS gives it; clients send it to their (local) endpoint
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{self.name(name)}"
        return self.name(name)

    def get_att(self, logical_id: str, attribute: str, where: str) -> Any:
        rtype = self.resources.get(logical_id, {}).get("Type") or self.implicit.get(logical_id)
        if rtype is None and not logical_id.endswith("Role"):
            raise TemplateError(f"{where}: Fn::GetAtt of unknown resource {logical_id}")
        if attribute == "Arn" or attribute.endswith("Arn"):
            return self.arn(logical_id)
        if attribute in ("EndpointName", "ModelName", "EndpointConfigName", "QueueName", "TopicName"):
            return self.name(logical_id)
        if attribute in ("DomainName", "RegionalDomainName"):
            return f"{self.name(logical_id)}.s3.amazonaws.com"
        if attribute == "ApiEndpoint":
            return "http://127.0.0.1"  # replaced by the local API's URL where it matters
        return self.name(logical_id)

    def condition(self, name: str, where: str) -> bool:
        if name not in self.conditions:
            raise TemplateError(f"{where}: unknown condition {name}")
        return bool(self.resolve(self.conditions[name], f"Conditions.{name}"))

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg, where)
            if key.startswith("Fn::"):
                return self._function(key, arg, where)
        out = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def _function(self, key: str, arg: Any, where: str) -> Any:
        if key == "Fn::GetAtt":
            target, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(target, attribute, where)
        if key == "Fn::Sub":
            template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            variables = {k: self.resolve(v, where) for k, v in variables.items()}

            def substitute(match: re.Match) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token in variables:
                    return str(variables[token])
                if "." in token and self.pseudo(token) is None:
                    return str(self.get_att(*token.split(".", 1), where))
                return str(self.ref(token, where))

            return re.sub(r"\$\{([^}]+)\}", substitute, template)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(i) for i in self.resolve(items, where))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items, where)[int(self.resolve(index, where))]
        if key == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text, where)).split(separator)
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name, where) else no, where)
        if key == "Fn::Equals":
            left, right = (self.resolve(a, where) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0], where)
        if key == "Fn::And":
            return all(self.resolve(a, where) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a, where) for a in arg)
        if key == "Fn::FindInMap":
            mapping, top, second = (self.resolve(a, where) for a in arg[:3])
            return self.document["Mappings"][mapping][top][second]
        if key == "Fn::Base64":
            import base64

            return base64.b64encode(str(self.resolve(arg, where)).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{self.region}a", f"{self.region}b"]
        if key == "Fn::ToJsonString":
            import json

            return json.dumps(self.resolve(arg, where))
        raise TemplateError(f"{where}: {key} cannot be resolved on one machine")


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()


# --------------------------------------------------------------------------- #
# Reading the template
# --------------------------------------------------------------------------- #

def _string_env(values: dict, where: str) -> dict[str, str]:
    env = {}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise TemplateError(f"{where}.{key}: resolves to {value!r}, not a string")
        env[key] = "true" if value is True else "false" if value is False else str(value)
    return env


def _events_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def read_template(
    path: Path,
    stack_name: str = DEFAULT_STACK,
    region: str = DEFAULT_REGION,
    parameters: dict[str, str] | None = None,
) -> LocalStack:
    path = Path(path).resolve()
    document = load_yaml(path)
    resolver = _Resolver(document, stack_name, region, parameters or {})
    resources = resolver.resources
    globals_function = (document.get("Globals") or {}).get("Function") or {}
    globals_api = (document.get("Globals") or {}).get("HttpApi") or {}
    root = path.parent

    def included(logical_id: str, resource: dict) -> bool:
        condition = resource.get("Condition")
        return not condition or resolver.condition(condition, f"Resources.{logical_id}.Condition")

    functions: dict[str, Function] = {}
    buckets: dict[str, Bucket] = {}
    endpoints, models, rules, notifications, queues, queue_sources = [], [], [], [], [], []
    apis: dict[str, HttpApi] = {}

    def _queue_by_arn(arn: Any) -> str | None:
        """The name of the template's queue an ARN (resolved or not) names."""
        if isinstance(arn, dict) and "Fn::GetAtt" in arn:
            target = arn["Fn::GetAtt"]
            logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
            return resolver.name(logical_id) if resources.get(logical_id, {}).get("Type") == "AWS::SQS::Queue" else None
        if isinstance(arn, str) and arn.startswith("arn:aws:sqs:"):
            return arn.rsplit(":", 1)[-1]
        return None

    for logical_id, resource in resources.items():
        if not included(logical_id, resource):
            continue
        rtype = resource.get("Type")
        props = resource.get("Properties") or {}
        where = f"Resources.{logical_id}"
        if rtype == "AWS::S3::Bucket":
            versioning = resolver.resolve(props.get("VersioningConfiguration") or {}, where)
            notification = resolver.resolve(props.get("NotificationConfiguration") or {}, where)
            bucket = Bucket(logical_id, resolver.name(logical_id), versioning.get("Status") == "Enabled",
                            bool((notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")),
                            (resolver.resolve(props.get("CorsConfiguration") or {}, where)).get("CorsRules") or [])
            buckets[logical_id] = bucket
            for config in notification.get("LambdaConfigurations") or []:
                target = _function_by_arn(resolver, config.get("Function"))
                rules_ = {r["Name"].lower(): r["Value"] for r in
                          ((config.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []}
                notifications.append(S3Notification(bucket.name, target, _events_list(config.get("Event")),
                                                    rules_.get("prefix", ""), rules_.get("suffix", ""),
                                                    f"{logical_id}-{target}"))
            for index, config in enumerate(notification.get("QueueConfigurations") or []):
                queue = _queue_by_arn(config.get("Queue"))
                if queue is None:
                    raise TemplateError(f"{where}.NotificationConfiguration.QueueConfigurations: the queue must be "
                                        "!GetAtt of a queue in this template")
                rules_ = {r["Name"].lower(): r["Value"] for r in
                          ((config.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []}
                notifications.append(S3Notification(bucket.name, None, _events_list(config.get("Event")),
                                                     rules_.get("prefix", ""), rules_.get("suffix", ""),
                                                     config.get("Id") or f"{logical_id}-queue-{index}", queue))
        elif rtype == "AWS::SageMaker::Endpoint":
            endpoints.append(resolver.name(logical_id))
        elif rtype == "AWS::SageMaker::Model":
            models.append(resolver.name(logical_id))
        elif rtype == "AWS::SQS::Queue":
            resolved = resolver.resolve(props, where)
            redrive = resolved.get("RedrivePolicy") or {}
            if isinstance(redrive, str):
                redrive = json.loads(redrive)
            queues.append(Queue(
                logical_id, resolver.name(logical_id),
                visibility_timeout=int(resolved.get("VisibilityTimeout", 30)),
                retention_seconds=int(resolved.get("MessageRetentionPeriod", 345_600)),
                delay_seconds=int(resolved.get("DelaySeconds", 0)),
                dead_letter_queue=_queue_by_arn(redrive.get("deadLetterTargetArn")),
                max_receive_count=_int_or_none(redrive.get("maxReceiveCount"))))
        elif rtype == "AWS::Serverless::HttpApi":
            cors = props.get("CorsConfiguration", globals_api.get("CorsConfiguration"))
            apis[logical_id] = HttpApi(logical_id, resolver.name(logical_id), _cors(resolver.resolve(cors, where)))
        elif rtype == "AWS::Events::Rule":
            resolved = resolver.resolve(props, where)
            for target in resolved.get("Targets") or []:
                function = _function_by_arn(resolver, target.get("Arn"))
                if function:
                    rules.append(Rule(resolver.name(logical_id), resolved.get("EventPattern") or {}, function,
                                      target.get("Input"), target.get("InputPath")))

    for logical_id, resource in resources.items():
        if resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        if not included(logical_id, resource):
            continue
        merged = _merge(globals_function, resource.get("Properties") or {})
        where = f"Resources.{logical_id}.Properties"
        code_uri = merged.get("CodeUri", ".")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{where}.CodeUri: the local stack runs code from a folder in the repository")
        code_dir = (root / code_uri).resolve()
        if not code_dir.is_dir():
            raise TemplateError(f"{where}.CodeUri: {code_dir} is not a folder")
        env = resolver.resolve(((merged.get("Environment") or {}).get("Variables")) or {}, f"{where}.Environment")
        invoke_config = resolver.resolve(merged.get("EventInvokeConfig") or {}, where)
        function = Function(
            logical_id=logical_id,
            name=resolver.name(logical_id),
            handler=resolver.resolve(merged.get("Handler", ""), where),
            code_dir=code_dir,
            runtime=resolver.resolve(merged.get("Runtime", "python3.12"), where),
            timeout=int(resolver.resolve(merged.get("Timeout", 3), where)),
            memory=int(resolver.resolve(merged.get("MemorySize", 128), where)),
            environment=_string_env(env, f"{where}.Environment.Variables"),
            reserved_concurrency=_int_or_none(resolver.resolve(merged.get("ReservedConcurrentExecutions"), where)),
            maximum_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
            layers=_layers(resolver, resources, root, merged.get("Layers") or []),
            on_failure=((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
        )
        if not function.handler or "." not in function.handler:
            raise TemplateError(f"{where}.Handler: expected module.function, got {function.handler!r}")
        if not function.runtime.startswith("python"):
            raise TemplateError(f"{where}.Runtime: the local stack runs Python functions, not {function.runtime}")
        functions[logical_id] = function
        for event_name, event in (merged.get("Events") or {}).items():
            etype = event.get("Type")
            eprops = event.get("Properties") or {}
            ewhere = f"{where}.Events.{event_name}"
            if etype == "S3":
                bucket_ref = eprops.get("Bucket")
                bucket_id = bucket_ref.get("Ref") if isinstance(bucket_ref, dict) else None
                if bucket_id not in resources:
                    raise TemplateError(f"{ewhere}.Bucket: must be !Ref of a bucket in this template")
                rules_ = {r["Name"].lower(): resolver.resolve(r["Value"], ewhere) for r in
                          ((eprops.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []}
                notifications.append(S3Notification(resolver.name(bucket_id), logical_id,
                                                    _events_list(eprops.get("Events")), rules_.get("prefix", ""),
                                                    rules_.get("suffix", ""), f"{logical_id}{event_name}"))
            elif etype in ("EventBridgeRule", "CloudWatchEvent"):
                resolved = resolver.resolve(eprops, ewhere)
                rules.append(Rule(resolved.get("RuleName") or f"{stack_name}-{logical_id}{event_name}",
                                  resolved.get("Pattern") or {}, logical_id, resolved.get("Input"),
                                  resolved.get("InputPath")))
            elif etype == "HttpApi":
                resolved = resolver.resolve({k: v for k, v in eprops.items() if k != "ApiId"}, ewhere)
                api_id = (eprops.get("ApiId") or {}).get("Ref", "ServerlessHttpApi") \
                    if isinstance(eprops.get("ApiId"), dict) or eprops.get("ApiId") is None else None
                if api_id is None:
                    raise TemplateError(f"{ewhere}.ApiId: must be !Ref of an HTTP API in this template")
                if api_id not in apis:
                    apis[api_id] = HttpApi(api_id, resolver.name(api_id), _cors(resolver.resolve(
                        globals_api.get("CorsConfiguration"), ewhere)))
                method = str(resolved.get("Method", "ANY")).upper()
                path_ = resolved.get("Path", "$default")
                method = "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method
                apis[api_id].routes.append(Route(method, path_, logical_id,
                                                 str(resolved.get("PayloadFormatVersion", "2.0"))))
            elif etype == "SQS":
                queue = _queue_by_arn(eprops.get("Queue"))
                if queue is None:
                    raise TemplateError(f"{ewhere}.Queue: must be !GetAtt of a queue in this template")
                resolved = resolver.resolve({k: v for k, v in eprops.items() if k != "Queue"}, ewhere)
                if resolved.get("Enabled", True) in (False, "false"):
                    continue
                queue_sources.append(QueueSource(
                    logical_id, queue, batch_size=int(resolved.get("BatchSize", 10)),
                    batching_window=float(resolved.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures" in (resolved.get("FunctionResponseTypes") or []),
                    max_concurrency=_int_or_none((resolved.get("ScalingConfig") or {}).get("MaximumConcurrency"))))
            # Other event types (Schedule, ...) are not run locally.

    # An upload sent to a queue is handled by the function reading that queue.
    readers = {source.queue: source.function for source in queue_sources}
    for notification in notifications:
        if notification.queue is not None:
            notification.function = readers.get(notification.queue)
    return LocalStack(path, root, stack_name, region, {k: str(v) for k, v in resolver.parameters.items()},
                      functions, buckets, endpoints, models, list(apis.values()), rules, notifications, queues,
                      queue_sources)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key in ("Environment",):
            merged = dict(out[key])
            merged["Variables"] = {**(out[key].get("Variables") or {}), **(value.get("Variables") or {})}
            out[key] = merged
        else:
            out[key] = value
    return out


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _cors(value: Any) -> dict | None:
    if value in (None, False):
        return None
    if value is True:
        return {"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]}
    if isinstance(value, str):
        return {"AllowOrigins": [value.strip("'")], "AllowMethods": ["*"], "AllowHeaders": ["*"]}
    return value


def _function_by_arn(resolver: _Resolver, arn: Any) -> str | None:
    if not isinstance(arn, str):
        return None
    for logical_id, resource in resolver.resources.items():
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            if arn in (resolver.arn(logical_id), resolver.name(logical_id)):
                return logical_id
    return None


def _layers(resolver: _Resolver, resources: dict, root: Path, layers: list) -> list[Path]:
    """The folders a function's layers put on its path, in their order.

    A layer `sam build` makes by pip-installing its requirements.txt
    (BuildMethod python3.x) is the site-packages where this environment
    installed the same pins (`make setup`); any other layer is its content
    from this checkout: the ContentUri's python/ folder (what a build copies
    to /opt/python), a one-package layer that package alone, or else the
    ContentUri folder itself: for DomainLayer, layers/domain/ with its links
    to the batch and contract packages."""
    paths: list[Path] = []
    for layer in layers:
        logical_id = layer.get("Ref") if isinstance(layer, dict) else None
        resource = resources.get(logical_id or "", {})
        if resource.get("Type") != "AWS::Serverless::LayerVersion":
            continue  # a published layer (an ARN) is not available locally
        content = (resource.get("Properties") or {}).get("ContentUri")
        build_method = str((resource.get("Metadata") or {}).get("BuildMethod", ""))
        if isinstance(content, str):
            folder = (root / content).resolve()
            if build_method.startswith("python") and (folder / "requirements.txt").is_file():
                found = _installed_requirements(folder / "requirements.txt", f"Resources.{logical_id}")
            elif (folder / "python").is_dir():
                found = [folder / "python"]
            elif (folder / "__init__.py").is_file():
                found = [_package_layer(folder)]
            else:
                found = [folder]
            paths.extend(path for path in found if path not in paths)
    return paths


def _installed_requirements(requirements: Path, where: str) -> list[Path]:
    """Where this environment installed a requirements.txt's packages (the
    project's .venv/lib/python3.x/site-packages, normally), each at the
    version the file pins: the local stand-in for a layer of dependencies."""
    from importlib import metadata

    folders: list[Path] = []
    problems = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        name = re.sub(r"\[.*\]", "", name).strip()
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if version and distribution.version != version.strip():
            problems.append(f"{name} {distribution.version} is installed, not {version.strip()}")
        folder = Path(distribution.locate_file("")).resolve()
        if folder not in folders:
            folders.append(folder)
    if problems:
        raise TemplateError(f"{where}: the layer's {requirements.name} needs what this environment lacks: "
                            f"{'; '.join(problems)} (run `make setup`)")
    return folders


def _package_layer(package: Path) -> Path:
    """A layer whose content is one Python package (its build puts it in
    /opt/python/<name>): a folder holding only that package, so the function
    imports it from the layer and sees nothing else of the repository."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    shim = Path(tempfile.gettempdir()) / "critic-layers" / digest / "python"
    link = shim / package.name
    if not (link.is_symlink() and link.resolve() == package):
        shim.mkdir(parents=True, exist_ok=True)
        spare = shim / f".{package.name}.{uuid.uuid4().hex}"
        spare.symlink_to(package, target_is_directory=True)
        spare.replace(link)  # atomic: stacks starting at once agree
    return shim
