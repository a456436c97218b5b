"""The models a stack has served: their tags, the deployed one, and going back.

Every deployment's SageMaker Model carries tags (template.yaml, from the
parameters `critic deploy` computes): the stack, the artifact's SHA-256, its
metrics, and when it went live. The template retains a replaced Model
(UpdateReplacePolicy: Retain), so the models of earlier deployments stay
listed, and transform jobs started on one keep a model to finish on.

`critic rollback` updates the stack with an earlier artifact: the same
CloudFormation update a deployment makes (a new Model, the endpoint's
blue/green update, the batch function's MODEL_NAME), from the template
already deployed (no build, nothing new).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from critic.errors import UsageError

# Parameters critic deploy computes (never --parameter), and the tag each becomes on the Model.
MODEL_PARAMETERS = {"ModelSha256": "critic:sha256", "ModelMetrics": "critic:metrics", "DeployedAt": "critic:deployed-at"}
STACK_TAG = "critic:stack"
PREVIOUS = "PreviousModelDataUrl"
NONE = "none"  # a value for "unknown": sam's --parameter-overrides cannot pass an empty one
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # the deployed template is SAM's, before its transform


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics_tag(metrics: dict[str, float | None]) -> str:
    """accuracy:0.9233/roc_auc:0.9749: tag values allow letters, digits, spaces and _.:/=+-@ only."""
    shown = "/".join(f"{name}:{value:.4f}" if isinstance(value, float) else f"{name}:{value}"
                     for name, value in metrics.items() if value is not None)
    return shown[:256] or NONE


def stack_parameters(stack: dict | None) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters") or []}


@dataclass(frozen=True)
class DeployedModel:
    name: str
    sha256: str
    metrics: str
    deployed_at: str
    model_data_url: str


def deployed_models(sagemaker, stack: str) -> list[DeployedModel]:
    """This stack's models, the latest deployment first."""
    found = []
    for page in sagemaker.get_paginator("list_models").paginate(SortBy="CreationTime", SortOrder="Descending"):
        for model in page["Models"]:
            tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])}
            if tags.get(STACK_TAG) != stack:
                continue
            container = sagemaker.describe_model(ModelName=model["ModelName"]).get("PrimaryContainer", {})
            found.append(DeployedModel(model["ModelName"], tags.get("critic:sha256", NONE),
                                       tags.get("critic:metrics", NONE), tags.get("critic:deployed-at", NONE),
                                       container.get("ModelDataUrl", "")))
    return sorted(found, key=lambda m: m.deployed_at, reverse=True)


def choose(models: list[DeployedModel], current_url: str, to: str | None) -> DeployedModel:
    """The model --to names (a prefix of its SHA-256), else the latest one that is not the current artifact."""
    if to:
        named = [m for m in models if m.sha256.startswith(to.lower())]
        if not named:
            raise UsageError(f"no model of this stack has a SHA-256 starting {to}: see `critic models`")
        return named[0]
    earlier = [m for m in models if m.model_data_url != current_url and m.model_data_url]
    if not earlier:
        raise UsageError("this stack has served no other model: nothing to roll back to")
    return earlier[0]


def rollback_parameters(stack: dict, target: DeployedModel) -> list[dict]:
    """UpdateStack's parameters: the target's artifact and tags; every other parameter as deployed."""
    current = stack_parameters(stack)
    changed = {"ModelDataUrl": target.model_data_url, "ModelSha256": target.sha256, "ModelMetrics": target.metrics,
               "DeployedAt": now(), PREVIOUS: current.get("ModelDataUrl", "")}
    return [{"ParameterKey": key, "ParameterValue": changed[key]} if key in changed
            else {"ParameterKey": key, "UsePreviousValue": True}
            for key in current] + [{"ParameterKey": k, "ParameterValue": v} for k, v in changed.items()
                                   if k not in current]


def table(models: list[DeployedModel], current_url: str) -> str:
    if not models:
        return "no models tagged for this stack yet (they are tagged from the first deployment with this version)"
    lines = [f"  {'':2}{'sha256':<14}{'went live':<22}{'metrics':<48}model"]
    for m in models:
        mark = "* " if m.model_data_url == current_url else "  "
        lines.append(f"  {mark}{m.sha256[:12]:<14}{m.deployed_at:<22}{m.metrics:<48}{m.name}")
    lines.append("  (* serving now; `critic rollback --to <sha256>` returns to one)")
    return "\n".join(lines)
