"""template.yaml as data: YAML with CloudFormation's short-form tags (!Ref,
!GetAtt, !Sub, ...) read as their long forms ({"Ref": ...}, {"Fn::GetAtt":
[...]}). Read by the local stack (critic/local/template.py) and the deployer
(critic/deploy/stack.py).

Hand-written because the maintained decoder (cfn-lint's) would add cfn-lint
and its dependencies to the serve and deploy groups for these few lines; the
template tests compare the two on template.yaml."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    """template.yaml cannot be read or run locally; the message says where and why."""


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such template") from None
    except yaml.YAMLError as error:
        raise TemplateError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document
