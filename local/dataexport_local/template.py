"""template.yaml read the way CloudFormation and SAM read it, resolved for the local runtime.

The template is the single source of truth: the local runtime creates its tables, bucket, secrets,
functions and state machines from what this module returns, and sets the functions' environment
from their resolved `Environment`. Intrinsics (`!Ref`, `!GetAtt`, `!Sub`, `!If`, `!Join`, ...)
resolve against the physical names the local runtime gives our own resources; `Globals.Function`
is merged into every function with SAM's rules (maps merge, lists add up, scalars override).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from dataexport_local.state_machine_definition import (
    DefinitionError,
    check_state_names,
    refuse_anchors,
)

ACCOUNT_ID: Final = "123456789012"
REGION: Final = "us-east-1"
PARTITION: Final = "aws"
DEFAULT_STACK_NAME: Final = "dataexport"
REPOSITORY_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE_PATH: Final = REPOSITORY_ROOT / "template.yaml"

FUNCTION_TYPES: Final = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
STATE_MACHINE_TYPES: Final = frozenset(
    {"AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"}
)
TABLE_TYPE: Final = "AWS::DynamoDB::Table"
BUCKET_TYPE: Final = "AWS::S3::Bucket"
BUCKET_POLICY_TYPE: Final = "AWS::S3::BucketPolicy"
SECRETS_MANAGER_TYPE: Final = "AWS::SecretsManager::Secret"
SES_EMAIL_IDENTITY_TYPE: Final = "AWS::SES::EmailIdentity"
API_TYPE: Final = "AWS::Serverless::Api"
LAYER_TYPE: Final = "AWS::Serverless::LayerVersion"
SCHEDULE_GROUP_TYPE: Final = "AWS::Scheduler::ScheduleGroup"
ROLE_TYPE: Final = "AWS::IAM::Role"
ECS_CLUSTER_TYPE: Final = "AWS::ECS::Cluster"
ECS_TASK_DEFINITION_TYPE: Final = "AWS::ECS::TaskDefinition"
LOG_GROUP_TYPE: Final = "AWS::Logs::LogGroup"
# A function's event that EventBridge runs on a clock: a rule (Schedule) or a Scheduler
# schedule (ScheduleV2).
RULE_EVENT_TYPE: Final = "Schedule"
SCHEDULER_EVENT_TYPE: Final = "ScheduleV2"

# Lambda's defaults when neither the function nor Globals say otherwise.
DEFAULT_TIMEOUT_SECONDS: Final = 3
DEFAULT_MEMORY_MB: Final = 128


class TemplateError(Exception):
    """The template cannot be read or resolved locally; the message names the culprit."""


# ---------------------------------------------------------------------------- reading YAML

_SHORT_FORM_FUNCTIONS: Final = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
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


# ---------------------------------------------------------------------------- physical names


@dataclass(frozen=True)
class PhysicalResource:
    """What `Ref` and `Fn::GetAtt` answer for one resource, and its physical name."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    name: str = ""


def _arn(service: str, resource: str, region: str = REGION, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account_id}:{resource}"


def rest_api_id(stack_name: str, logical_id: str) -> str:
    """A stable 10-character id shaped like API Gateway's (lowercase letters and digits)."""
    return hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:10]


def _declared_name(resource: Mapping[str, Any], key: str, stack_name: str) -> str | None:
    """A name the template gives a resource: plain, or `!Sub` over pseudo parameters only.

    Names are planned before anything else resolves, so only `${AWS::StackName}`,
    `${AWS::Region}` and `${AWS::AccountId}` are known here (enough for `${AWS::StackName}-x`).
    """
    value = (resource.get("Properties") or {}).get(key)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = str(value["Fn::Sub"])
        for pseudo, known in (
            ("AWS::StackName", stack_name),
            ("AWS::Region", REGION),
            ("AWS::AccountId", ACCOUNT_ID),
        ):
            text = text.replace("${" + pseudo + "}", known)
        return None if "${" in text else text
    return value if isinstance(value, str) else None


def _planned_resource(
    kind: str, logical_id: str, resource: Mapping[str, Any], stack_name: str
) -> PhysicalResource:
    default_name = f"{stack_name}-{logical_id}"

    def declared(key: str) -> str | None:
        return _declared_name(resource, key, stack_name)

    if kind in FUNCTION_TYPES:
        name = declared("FunctionName") or default_name
        return PhysicalResource(name, {"Arn": _arn("lambda", f"function:{name}")}, name)
    if kind == TABLE_TYPE:
        name = declared("TableName") or default_name
        arn = _arn("dynamodb", f"table/{name}")
        return PhysicalResource(name, {"Arn": arn, "StreamArn": f"{arn}/stream/local"}, name)
    if kind == BUCKET_TYPE:
        name = declared("BucketName") or default_name.lower()
        attributes = {
            "Arn": f"arn:{PARTITION}:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        }
        return PhysicalResource(name, attributes, name)
    if kind == SECRETS_MANAGER_TYPE:
        name = declared("Name") or default_name
        arn = _arn("secretsmanager", f"secret:{name}")
        return PhysicalResource(arn, {"Id": arn}, name)
    if kind in STATE_MACHINE_TYPES:
        name = declared("Name") or declared("StateMachineName") or default_name
        arn = _arn("states", f"stateMachine:{name}")
        return PhysicalResource(arn, {"Arn": arn, "Name": name}, name)
    if kind == API_TYPE:
        api_id = rest_api_id(stack_name, logical_id)
        return PhysicalResource(api_id, {"RootResourceId": api_id[:6]}, api_id)
    if kind == LAYER_TYPE:
        name = declared("LayerName") or default_name
        return PhysicalResource(_arn("lambda", f"layer:{name}:1"), {}, name)
    if kind == SCHEDULE_GROUP_TYPE:
        name = declared("Name") or default_name
        return PhysicalResource(name, {"Arn": _arn("scheduler", f"schedule-group/{name}")}, name)
    if kind == ROLE_TYPE:
        name = declared("RoleName") or default_name
        arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}"
        return PhysicalResource(name, {"Arn": arn, "RoleId": name}, name)
    if kind == ECS_CLUSTER_TYPE:
        name = declared("ClusterName") or default_name
        return PhysicalResource(name, {"Arn": _arn("ecs", f"cluster/{name}")}, name)
    if kind == ECS_TASK_DEFINITION_TYPE:
        # Registered once into a fresh moto: its first revision.
        family = declared("Family") or default_name
        arn = _arn("ecs", f"task-definition/{family}:1")
        return PhysicalResource(arn, {"TaskDefinitionArn": arn}, family)
    if kind == LOG_GROUP_TYPE:
        name = declared("LogGroupName") or default_name
        return PhysicalResource(name, {"Arn": _arn("logs", f"log-group:{name}:*")}, name)
    return PhysicalResource(default_name, {}, default_name)


def plan_physical_resources(
    document: Mapping[str, Any], stack_name: str = DEFAULT_STACK_NAME
) -> dict[str, PhysicalResource]:
    """The physical names and ARNs the local runtime gives each resource of the template.

    Names are `<stack>-<LogicalId>` (buckets lowercased) unless the template names the resource.
    A secret's ARN carries a random suffix only known once it exists; until then its partial ARN
    (without the suffix), which Secrets Manager also accepts, stands in for it.
    """
    return {
        logical_id: _planned_resource(
            str(resource.get("Type", "")), logical_id, resource, stack_name
        )
        for logical_id, resource in _resources(document).items()
    }


def _resources(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources = document.get("Resources") or {}
    return {str(key): value for key, value in resources.items() if isinstance(value, dict)}


# ---------------------------------------------------------------------------- intrinsics


class _NoValue:
    """`AWS::NoValue`: the property it stands in is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
_SUB_PLACEHOLDER: Final = re.compile(r"\$\{([^}]*)\}")


def _parameter_value(name: str, declaration: Mapping[str, Any], raw: str) -> str | list[str]:
    """Validate a parameter value as CloudFormation would, and give what `Ref` answers."""
    kind = str(declaration.get("Type", "String"))
    allowed = declaration.get("AllowedValues")
    if allowed is not None and raw not in [str(item) for item in allowed]:
        raise TemplateError(f"Parameter {name}={raw!r} is not one of {allowed}")
    pattern = declaration.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), raw) is None:
        raise TemplateError(f"Parameter {name}={raw!r} does not match {pattern!r}")
    if "MinLength" in declaration and len(raw) < int(declaration["MinLength"]):
        raise TemplateError(f"Parameter {name}={raw!r} is shorter than {declaration['MinLength']}")
    if "MaxLength" in declaration and len(raw) > int(declaration["MaxLength"]):
        raise TemplateError(f"Parameter {name}={raw!r} is longer than {declaration['MaxLength']}")
    if kind == "Number":
        try:
            number = float(raw)
        except ValueError:
            raise TemplateError(f"Parameter {name}={raw!r} is not a number") from None
        if "MinValue" in declaration and number < float(declaration["MinValue"]):
            raise TemplateError(f"Parameter {name}={raw} is below {declaration['MinValue']}")
        if "MaxValue" in declaration and number > float(declaration["MaxValue"]):
            raise TemplateError(f"Parameter {name}={raw} is above {declaration['MaxValue']}")
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in raw.split(",")]
    return raw


def resolve_parameters(
    document: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str | list[str]]:
    """Every parameter's value: the override, else the default; unknown or missing ones fail."""
    declared: dict[str, Any] = dict(document.get("Parameters") or {})
    given = dict(overrides or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"The template has no parameter(s) {', '.join(unknown)}")
    values: dict[str, str | list[str]] = {}
    for name, declaration in declared.items():
        if name in given:
            raw = str(given[name])
        elif "Default" in declaration:
            raw = str(declaration["Default"])
        else:
            raise TemplateError(f"Parameter {name} has no default and no value was given")
        values[name] = _parameter_value(name, declaration, raw)
    return values


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key == "Ref" or (isinstance(key, str) and key.startswith("Fn::"))


class IntrinsicResolver:
    """Evaluates intrinsic functions against parameters, conditions and physical resources."""

    def __init__(
        self,
        document: Mapping[str, Any],
        parameters: Mapping[str, str | list[str]],
        physical: Mapping[str, PhysicalResource],
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self._document = document
        self._parameters = parameters
        self._physical = physical
        self._pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": _arn("cloudformation", f"stack/{stack_name}/local", region, account_id),
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic evaluated; `AWS::NoValue` entries are dropped."""
        if _is_intrinsic(value):
            ((function, argument),) = value.items()
            return self._call(function, argument)
        if isinstance(value, dict):
            resolved_map = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved_map.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [
                item for item in (self.resolve(entry) for entry in value) if item is not NO_VALUE
            ]
        return value

    def condition(self, name: str) -> bool:
        """The value of a named condition of the template."""
        if name not in self._conditions:
            declared = (self._document.get("Conditions") or {}).get(name)
            if declared is None:
                raise TemplateError(f"Unknown condition {name}")
            self._conditions[name] = self._truth(declared)
        return self._conditions[name]

    def resource_enabled(self, resource: Mapping[str, Any]) -> bool:
        """False for a resource whose `Condition` is false."""
        name = resource.get("Condition")
        return name is None or self.condition(str(name))

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and set(expression) == {"Condition"}:
            return self.condition(str(expression["Condition"]))
        result = self.resolve(expression)
        if not isinstance(result, bool):
            raise TemplateError(f"Condition {expression!r} is not true or false")
        return result

    def _call(self, function: str, argument: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda arg: not self._truth(_only(arg, "Fn::Not")),
            "Fn::And": lambda arg: all(self._truth(item) for item in arg),
            "Fn::Or": lambda arg: any(self._truth(item) for item in arg),
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda arg: base64.b64encode(str(self.resolve(arg)).encode()).decode(),
            "Fn::GetAZs": lambda arg: [f"{self._pseudo['AWS::Region']}{z}" for z in "abc"],
            "Fn::ToJsonString": lambda arg: json.dumps(self.resolve(arg), separators=(",", ":")),
            "Fn::Length": lambda arg: len(self.resolve(arg)),
        }
        handler = handlers.get(function)
        if handler is None:
            raise TemplateError(f"{function} is not supported by the local runtime")
        return handler(argument)

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref needs a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._physical:
            return self._physical[name].ref
        raise TemplateError(f"Ref to unknown parameter or resource {name}")

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = (str(part) for part in self.resolve(argument))
        resource = self._physical.get(logical_id)
        if resource is None:
            raise TemplateError(f"GetAtt on unknown resource {logical_id}")
        if attribute not in resource.attributes:
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not known locally")
        return resource.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub needs a string, got {text!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self._physical:
                value = self._get_att(name)
            else:
                value = self._ref(name)
            if isinstance(value, list | dict) or value is NO_VALUE:
                raise TemplateError(f"Fn::Sub placeholder ${{{name}}} is not a string")
            return _scalar_text(value)

        return _SUB_PLACEHOLDER.sub(replace, text)

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        values = self.resolve(items)
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Join needs a list, got {values!r}")
        return str(delimiter).join(_scalar_text(item) for item in values)

    def _select(self, argument: Any) -> Any:
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        return items[int(index)]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(str(delimiter))

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _equals(self, argument: Any) -> bool:
        left, right = (self.resolve(item) for item in argument)
        return bool(_scalar_text(left) == _scalar_text(right))

    def _find_in_map(self, argument: Any) -> Any:
        map_name, top, second = (self.resolve(item) for item in argument)
        try:
            return self._document["Mappings"][map_name][top][second]
        except KeyError:
            raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} is missing") from None


def _only(argument: Any, function: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 1:
        raise TemplateError(f"{function} takes a list of one item, got {argument!r}")
    return argument[0]


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------- typed result


@dataclass(frozen=True)
class FunctionEvent:
    """One entry of a function's `Events`, properties resolved."""

    name: str
    type: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class ApiRoute:
    """An `Api` event: the route API Gateway sends to the function."""

    event_name: str
    path: str
    method: str
    rest_api: str | None
    authorizer: str | None
    """Logical name of the authorizer, None when the route is open (`Auth.Authorizer: NONE`)."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]
    events: tuple[FunctionEvent, ...]
    layer_dirs: tuple[Path, ...]
    # ReservedConcurrentExecutions: at most this many execution environments at once.
    reserved_concurrency: int | None = None

    @property
    def handler_file(self) -> Path:
        """The source file of the handler (`app.lambda_handler` -> `<CodeUri>/app.py`)."""
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_function(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    arn: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str
    arn: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class BucketPolicySpec:
    logical_id: str
    bucket: str
    policy_document: Mapping[str, Any]


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    name: str
    arn: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class TaskDefinitionSpec:
    """An ECS task definition, and the file the local runtime runs for it (its `Metadata`
    `EntryPoint`: the script the image's entry point runs)."""

    logical_id: str
    family: str
    arn: str
    properties: Mapping[str, Any]
    entry_point: Path | None

    def container(self) -> Mapping[str, Any]:
        """The essential container (the first one: these tasks have one)."""
        containers = list(self.properties.get("ContainerDefinitions") or [])
        if not containers:
            raise TemplateError(f"{self.logical_id} has no ContainerDefinitions")
        return dict(containers[0])

    def environment(self) -> dict[str, str]:
        return {
            str(entry["Name"]): _scalar_text(entry["Value"])
            for entry in self.container().get("Environment") or []
        }


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    arn: str
    type: str
    definition_path: Path | None
    inline_definition: Mapping[str, Any] | None
    substitutions: Mapping[str, str]
    events: tuple[FunctionEvent, ...] = ()

    def definition(self) -> dict[str, Any]:
        """The ASL definition with every `${Placeholder}` of DefinitionSubstitutions filled."""
        if self.definition_path is not None:
            raw = read_template_document_like(self.definition_path)
        elif self.inline_definition is not None:
            raw = dict(self.inline_definition)
        else:
            raise TemplateError(f"{self.logical_id} has neither DefinitionUri nor Definition")
        try:
            check_state_names(raw, self.logical_id)
        except DefinitionError as exc:
            raise TemplateError(str(exc)) from exc
        substituted = _substitute_placeholders(raw, self.substitutions, self.logical_id)
        if not isinstance(substituted, dict):
            raise TemplateError(f"The definition of {self.logical_id} is not a mapping")
        return substituted


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    function_arn: str
    identity_header: str
    reauthorize_every_seconds: int
    validation_expression: str | None = None
    """A header value not matching it is refused (401) without calling the authorizer."""


@dataclass(frozen=True)
class GatewayResponseSpec:
    status_code: int | None
    templates: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    rest_api_id: str
    stage: str
    default_authorizer: str | None
    authorizers: Mapping[str, AuthorizerSpec]
    gateway_responses: Mapping[str, GatewayResponseSpec]


@dataclass(frozen=True)
class SamTemplate:
    """The resolved template: what the local runtime creates and how it configures it."""

    path: Path
    stack_name: str
    parameters: Mapping[str, str | list[str]]
    functions: tuple[FunctionSpec, ...]
    tables: tuple[TableSpec, ...]
    buckets: tuple[BucketSpec, ...]
    bucket_policies: tuple[BucketPolicySpec, ...]
    secrets: tuple[SecretSpec, ...]
    state_machines: tuple[StateMachineSpec, ...]
    apis: tuple[ApiSpec, ...]
    outputs: Mapping[str, Any]
    schedule_groups: tuple[str, ...] = ()
    # SES identities (email addresses or domains) the template declares.
    email_identities: tuple[str, ...] = ()
    ecs_clusters: tuple[str, ...] = ()
    task_definitions: tuple[TaskDefinitionSpec, ...] = ()
    log_groups: tuple[str, ...] = ()

    def function(self, name_or_arn: str) -> FunctionSpec:
        """The function with this logical id, name or ARN (an ARN may carry a qualifier)."""
        for function in self.functions:
            if name_or_arn in (function.logical_id, function.name, function.arn) or (
                name_or_arn.startswith(function.arn + ":")
            ):
                return function
        raise TemplateError(f"The template has no function {name_or_arn}")

    def routes(self, api: ApiSpec) -> list[tuple[ApiRoute, FunctionSpec]]:
        """Every `Api` event of every function that targets `api`."""
        routes = []
        for function in self.functions:
            for event in function.events:
                route = _api_route(event, api)
                if route is not None and route.rest_api in (None, api.rest_api_id):
                    routes.append((route, function))
        return routes


def _events(props: Mapping[str, Any]) -> tuple[FunctionEvent, ...]:
    """The `Events` of a function or state machine, properties resolved."""
    return tuple(
        FunctionEvent(str(name), str(event.get("Type")), dict(event.get("Properties") or {}))
        for name, event in (props.get("Events") or {}).items()
    )


def _api_route(event: FunctionEvent, api: ApiSpec) -> ApiRoute | None:
    if event.type != "Api":
        return None
    properties = event.properties
    auth = properties.get("Auth") or {}
    authorizer = auth.get("Authorizer", api.default_authorizer)
    return ApiRoute(
        event_name=event.name,
        path=str(properties["Path"]),
        method=str(properties["Method"]).upper(),
        rest_api=str(properties["RestApiId"]) if "RestApiId" in properties else None,
        authorizer=None if authorizer in (None, "NONE") else str(authorizer),
    )


def read_template_document_like(path: Path) -> dict[str, Any]:
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


def _substitute_placeholders(value: Any, substitutions: Mapping[str, str], owner: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in substitutions:
                raise TemplateError(f"{owner}: no DefinitionSubstitutions entry for ${{{name}}}")
            return substitutions[name]

        return _SUB_PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {
            key: _substitute_placeholders(item, substitutions, owner) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_substitute_placeholders(item, substitutions, owner) for item in value]
    return value


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rule: maps merge key by key, lists add up, anything else is overridden."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if _is_intrinsic(global_value) or _is_intrinsic(local_value):
            return local_value
        merged = dict(global_value)
        for key, item in local_value.items():
            merged[key] = merge_globals(global_value[key], item) if key in global_value else item
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


class _TemplateBuilder:
    """Turns the template document into the typed `SamTemplate`."""

    def __init__(
        self,
        *,
        document: Mapping[str, Any],
        path: Path,
        resolver: IntrinsicResolver,
        physical: Mapping[str, PhysicalResource],
        parameters: Mapping[str, str | list[str]],
        stack_name: str,
    ) -> None:
        self.document = document
        self.path = path
        self.root = path.parent
        self.resolver = resolver
        self.physical = physical
        self.parameters = parameters
        self.stack_name = stack_name

    def resources(self, *kinds: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in _resources(self.document).items():
            if resource.get("Type") in kinds and self.resolver.resource_enabled(resource):
                yield logical_id, resource

    def properties(self, resource: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
        try:
            resolved = self.resolver.resolve(resource.get("Properties") or {})
        except TemplateError as exc:
            raise TemplateError(f"{logical_id}: {exc}") from exc
        return dict(resolved)

    def build(self) -> SamTemplate:
        return SamTemplate(
            path=self.path,
            stack_name=self.stack_name,
            parameters=self.parameters,
            functions=tuple(self.functions()),
            tables=tuple(
                TableSpec(lid, self.physical[lid].ref, self.physical[lid].attributes["Arn"], props)
                for lid, props in self.resolved(TABLE_TYPE)
            ),
            buckets=tuple(
                BucketSpec(lid, self.physical[lid].ref, self.physical[lid].attributes["Arn"], props)
                for lid, props in self.resolved(BUCKET_TYPE)
            ),
            bucket_policies=tuple(
                BucketPolicySpec(lid, str(props["Bucket"]), dict(props["PolicyDocument"]))
                for lid, props in self.resolved(BUCKET_POLICY_TYPE)
            ),
            secrets=tuple(
                SecretSpec(lid, self.physical[lid].name, self.physical[lid].ref, props)
                for lid, props in self.resolved(SECRETS_MANAGER_TYPE)
            ),
            state_machines=tuple(self.state_machines()),
            apis=tuple(self.apis()),
            outputs=self.resolver.resolve(self.document.get("Outputs") or {}),
            schedule_groups=tuple(
                self.physical[lid].name for lid, _ in self.resources(SCHEDULE_GROUP_TYPE)
            ),
            email_identities=tuple(
                str(props["EmailIdentity"]) for _, props in self.resolved(SES_EMAIL_IDENTITY_TYPE)
            ),
            ecs_clusters=tuple(
                self.physical[lid].name for lid, _ in self.resources(ECS_CLUSTER_TYPE)
            ),
            task_definitions=tuple(self.task_definitions()),
            log_groups=tuple(self.physical[lid].name for lid, _ in self.resources(LOG_GROUP_TYPE)),
        )

    def task_definitions(self) -> Iterator[TaskDefinitionSpec]:
        for logical_id, resource in self.resources(ECS_TASK_DEFINITION_TYPE):
            entry = (resource.get("Metadata") or {}).get("EntryPoint")
            physical = self.physical[logical_id]
            yield TaskDefinitionSpec(
                logical_id=logical_id,
                family=physical.name,
                arn=physical.ref,
                properties=self.properties(resource, logical_id),
                entry_point=(self.root / str(entry)).resolve() if entry else None,
            )

    def resolved(self, *kinds: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources(*kinds):
            yield logical_id, self.properties(resource, logical_id)

    def functions(self) -> Iterator[FunctionSpec]:
        globals_function = (self.document.get("Globals") or {}).get("Function") or {}
        for logical_id, resource in self.resources(*FUNCTION_TYPES):
            raw = merge_globals(globals_function, resource.get("Properties") or {})
            props = self.properties({"Properties": raw}, logical_id)
            code_uri = props.get("CodeUri")
            if not isinstance(code_uri, str):
                raise TemplateError(f"{logical_id}: CodeUri must be a local directory")
            variables = (props.get("Environment") or {}).get("Variables") or {}
            physical = self.physical[logical_id]
            yield FunctionSpec(
                logical_id=logical_id,
                name=physical.ref,
                arn=physical.attributes["Arn"],
                code_dir=(self.root / code_uri).resolve(),
                handler=str(props.get("Handler", "app.lambda_handler")),
                runtime=str(props.get("Runtime", "python3.11")),
                timeout_seconds=int(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
                memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
                environment={str(k): _scalar_text(v) for k, v in variables.items()},
                events=_events(props),
                layer_dirs=tuple(self.layer_dirs(raw.get("Layers") or [])),
                reserved_concurrency=_optional_int(props.get("ReservedConcurrentExecutions")),
            )

    def layer_dirs(self, layers: Sequence[Any]) -> Iterator[Path]:
        """The ContentUri of every layer of this template (layers from elsewhere are skipped)."""
        resources = _resources(self.document)
        for layer in layers:
            if isinstance(layer, dict) and set(layer) == {"Ref"}:
                resource = resources.get(str(layer["Ref"]), {})
                content = (resource.get("Properties") or {}).get("ContentUri")
                if resource.get("Type") == LAYER_TYPE and isinstance(content, str):
                    yield (self.root / content).resolve()

    def state_machines(self) -> Iterator[StateMachineSpec]:
        for logical_id, props in self.resolved(*STATE_MACHINE_TYPES):
            physical = self.physical[logical_id]
            uri = props.get("DefinitionUri")
            if uri is not None and not isinstance(uri, str):
                raise TemplateError(f"{logical_id}: DefinitionUri must be a local file")
            definition = props.get("Definition")
            yield StateMachineSpec(
                logical_id=logical_id,
                name=physical.attributes["Name"],
                arn=physical.attributes["Arn"],
                type=str(props.get("Type", "STANDARD")),
                definition_path=(self.root / uri).resolve() if uri else None,
                inline_definition=definition if isinstance(definition, dict) else None,
                substitutions={
                    str(key): _scalar_text(value)
                    for key, value in (props.get("DefinitionSubstitutions") or {}).items()
                },
                events=_events(props),
            )

    def apis(self) -> Iterator[ApiSpec]:
        for logical_id, props in self.resolved(API_TYPE):
            auth = props.get("Auth") or {}
            authorizers = {}
            for name, declared in (auth.get("Authorizers") or {}).items():
                identity = declared.get("Identity") or {}
                authorizers[str(name)] = AuthorizerSpec(
                    name=str(name),
                    function_arn=str(declared["FunctionArn"]),
                    identity_header=str(identity.get("Header", "Authorization")),
                    reauthorize_every_seconds=int(identity.get("ReauthorizeEvery", 300)),
                    validation_expression=(
                        str(identity["ValidationExpression"])
                        if "ValidationExpression" in identity
                        else None
                    ),
                )
            responses = {}
            for kind, declared in (props.get("GatewayResponses") or {}).items():
                headers = ((declared.get("ResponseParameters") or {}).get("Headers")) or {}
                status = declared.get("StatusCode")
                responses[str(kind)] = GatewayResponseSpec(
                    status_code=int(status) if status is not None else None,
                    templates={
                        str(k): str(v) for k, v in (declared.get("ResponseTemplates") or {}).items()
                    },
                    headers={str(k): str(v).strip("'") for k, v in headers.items()},
                )
            default = auth.get("DefaultAuthorizer")
            yield ApiSpec(
                logical_id=logical_id,
                rest_api_id=self.physical[logical_id].ref,
                stage=str(props.get("StageName", "Prod")),
                default_authorizer=str(default) if default not in (None, "NONE") else None,
                authorizers=authorizers,
                gateway_responses=responses,
            )


def resolve_template(
    path: Path = DEFAULT_TEMPLATE_PATH,
    parameters: Mapping[str, str] | None = None,
    *,
    physical: Mapping[str, PhysicalResource] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
    document: Mapping[str, Any] | None = None,
) -> SamTemplate:
    """Read `path` and resolve it with these parameter overrides and physical resources.

    Without `physical`, the names planned by `plan_physical_resources` are used, which is what
    the local runtime creates (except secrets' random ARN suffixes, which it fills in).
    """
    path = path.resolve()
    document = document if document is not None else read_template_document(path)
    physical = physical if physical is not None else plan_physical_resources(document, stack_name)
    values = resolve_parameters(document, parameters)
    resolver = IntrinsicResolver(document, values, physical, stack_name=stack_name)
    return _TemplateBuilder(
        document=document,
        path=path,
        resolver=resolver,
        physical=physical,
        parameters=values,
        stack_name=stack_name,
    ).build()


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
