"""CloudFormation's YAML: templates with short-form tags, and files uploaded as written.

A template's `!Ref`, `!GetAtt`, `!Sub`, ... are read as their long form (`{"Ref": ...}`). A file
that `sam package` uploads unchanged (a state machine definition) is read as the service that
receives it would: tags allowed, YAML anchors and aliases refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import yaml

from dataexport_local.state_machine_definition import DefinitionError, refuse_anchors


class TemplateError(Exception):
    """The template cannot be read or resolved locally; the message names the culprit."""


_SHORT_FORM_FUNCTIONS: Final = (
    "And",
    "Base64",
    "Cidr",
    "Contains",
    "EachMemberEquals",
    "EachMemberIn",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "RefAll",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
    "ValueOf",
    "ValueOfAll",
)


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form tags."""


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"Unsupported YAML node for a CloudFormation tag: {node!r}")


def _long_form(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _node_value(loader, node)}

    return construct


def _construct_get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if isinstance(value, str):
        # Short form "Resource.Attribute" (the attribute itself may contain dots).
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": value}


_CloudFormationLoader.add_constructor("!Ref", _long_form("Ref"))
_CloudFormationLoader.add_constructor("!Condition", _long_form("Condition"))
_CloudFormationLoader.add_constructor("!GetAtt", _construct_get_att)
for _name in _SHORT_FORM_FUNCTIONS:
    _CloudFormationLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))


def read_template_document(path: Path) -> dict[str, Any]:
    """The template as plain data, short-form tags turned into their long form."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"Cannot read the template {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


def read_uploaded_document(path: Path) -> dict[str, Any]:
    """A YAML or JSON data file uploaded as written (an ASL definition): CloudFormation tags
    allowed, anchors and aliases refused, as the service that receives it would."""
    try:
        text = path.read_text(encoding="utf-8")
        refuse_anchors(_CloudFormationLoader(text), str(path))
        data = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError, DefinitionError) as exc:
        raise TemplateError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path} does not hold a mapping")
    return data
