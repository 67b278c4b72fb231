"""The template as CloudFormation receives it, resolved for the local runtime.

The local runtime does not read SAM itself: template.yaml goes through the same stand-in
`sam package` and the SAM translator as the deploy gate (sam_package.py), and everything the
runtime creates comes from that transformed template: functions with their execution roles,
layers and environments (Globals already merged by the translator), IAM roles with SAM's policy
templates expanded, the REST API from its generated OpenAPI body, EventBridge rules, state
machines with their DefinitionS3Location and DefinitionSubstitutions. What stays ours is
CloudFormation's part: parameters, conditions and intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`,
`Fn::If`, ...), resolved against the physical names the local runtime gives each resource.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dataexport_local.cfn_yaml import TemplateError, read_uploaded_document
from dataexport_local.sam_package import PackagedTemplate, transform_template
from dataexport_local.state_machine_definition import DefinitionError, check_state_names

ACCOUNT_ID: Final = "123456789012"
REGION: Final = "us-east-1"
PARTITION: Final = "aws"
DEFAULT_STACK_NAME: Final = "dataexport"
REPOSITORY_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE_PATH: Final = REPOSITORY_ROOT / "template.yaml"

FUNCTION_TYPE: Final = "AWS::Lambda::Function"
LAYER_TYPE: Final = "AWS::Lambda::LayerVersion"
STATE_MACHINE_TYPE: Final = "AWS::StepFunctions::StateMachine"
REST_API_TYPE: Final = "AWS::ApiGateway::RestApi"
STAGE_TYPE: Final = "AWS::ApiGateway::Stage"
TABLE_TYPE: Final = "AWS::DynamoDB::Table"
BUCKET_TYPE: Final = "AWS::S3::Bucket"
BUCKET_POLICY_TYPE: Final = "AWS::S3::BucketPolicy"
SECRETS_MANAGER_TYPE: Final = "AWS::SecretsManager::Secret"
SES_EMAIL_IDENTITY_TYPE: Final = "AWS::SES::EmailIdentity"
SCHEDULE_GROUP_TYPE: Final = "AWS::Scheduler::ScheduleGroup"
SCHEDULE_TYPE: Final = "AWS::Scheduler::Schedule"
RULE_TYPE: Final = "AWS::Events::Rule"
ROLE_TYPE: Final = "AWS::IAM::Role"
ECS_CLUSTER_TYPE: Final = "AWS::ECS::Cluster"
ECS_TASK_DEFINITION_TYPE: Final = "AWS::ECS::TaskDefinition"
LOG_GROUP_TYPE: Final = "AWS::Logs::LogGroup"

# Lambda's defaults when the function does not say otherwise.
DEFAULT_TIMEOUT_SECONDS: Final = 3
DEFAULT_MEMORY_MB: Final = 128
# IAM refuses longer role names; CloudFormation shortens the ones it generates to fit.
_ROLE_NAME_LIMIT: Final = 64
# API Gateway's Lambda integration URI: the function's ARN between these.
_INTEGRATION_URI: Final = re.compile(
    r"^arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(.+)/invocations$"
)
_ANY_METHOD: Final = "x-amazon-apigateway-any-method"


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

    if kind == FUNCTION_TYPE:
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
    if kind == STATE_MACHINE_TYPE:
        name = declared("StateMachineName") or default_name
        arn = _arn("states", f"stateMachine:{name}")
        return PhysicalResource(arn, {"Arn": arn, "Name": name}, name)
    if kind == REST_API_TYPE:
        api_id = rest_api_id(stack_name, logical_id)
        return PhysicalResource(api_id, {"RootResourceId": api_id[:6]}, api_id)
    if kind == LAYER_TYPE:
        name = declared("LayerName") or default_name
        return PhysicalResource(_arn("lambda", f"layer:{name}:1"), {}, name)
    if kind == SCHEDULE_GROUP_TYPE:
        name = declared("Name") or default_name
        return PhysicalResource(name, {"Arn": _arn("scheduler", f"schedule-group/{name}")}, name)
    if kind == SCHEDULE_TYPE:
        name = declared("Name") or default_name
        group = declared("GroupName") or "default"
        return PhysicalResource(name, {"Arn": _arn("scheduler", f"schedule/{group}/{name}")}, name)
    if kind == RULE_TYPE:
        name = declared("Name") or default_name
        return PhysicalResource(name, {"Arn": _arn("events", f"rule/{name}")}, name)
    if kind == ROLE_TYPE:
        name = declared("RoleName") or default_name[:_ROLE_NAME_LIMIT]
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

    def check_rules(self) -> None:
        """Refuse the parameters as CloudFormation does: every assertion of each rule whose
        RuleCondition holds (or that has none) must hold, else the rule's description."""
        for name, rule in (self._document.get("Rules") or {}).items():
            condition = rule.get("RuleCondition")
            if condition is not None and not self._truth(condition):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self._truth(assertion["Assert"]):
                    reason = assertion.get("AssertDescription", "its assertion does not hold")
                    raise TemplateError(f"Rule {name}: {reason}")

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
            # The functions of a template's Rules.
            "Fn::Contains": lambda arg: _text(self.resolve(arg[1])) in _texts(self.resolve(arg[0])),
            "Fn::EachMemberEquals": lambda arg: all(
                item == _text(self.resolve(arg[1])) for item in _texts(self.resolve(arg[0]))
            ),
            "Fn::EachMemberIn": lambda arg: (
                set(_texts(self.resolve(arg[0]))) <= set(_texts(self.resolve(arg[1])))
            ),
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


def _text(value: Any) -> str:
    if isinstance(value, list | dict):
        raise TemplateError(f"{value!r} is not a single value")
    return _scalar_text(value)


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TemplateError(f"{value!r} is not a list")
    return [_text(item) for item in value]


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
class RoleSpec:
    """An IAM role as the transformed template declares it, SAM's policy templates expanded."""

    logical_id: str
    name: str
    arn: str
    trust_policy: Mapping[str, Any]
    inline_policies: Mapping[str, Mapping[str, Any]]
    """Policy name to policy document."""
    managed_policy_arns: tuple[str, ...]
    max_session_seconds: int


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
    layer_dirs: tuple[Path, ...]
    role_arn: str
    # ReservedConcurrentExecutions: at most this many execution environments at once.
    reserved_concurrency: int | None = None

    @property
    def handler_file(self) -> Path:
        """The source file of the handler (`app.lambda_handler` -> `<code>/app.py`)."""
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

    @property
    def task_role_arn(self) -> str | None:
        role = self.properties.get("TaskRoleArn")
        return str(role) if role else None


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    arn: str
    type: str
    role_arn: str
    definition_path: Path | None
    inline_definition: Mapping[str, Any] | None
    substitutions: Mapping[str, str]

    def definition(self) -> dict[str, Any]:
        """The ASL definition with every `${Placeholder}` of DefinitionSubstitutions filled."""
        if self.definition_path is not None:
            raw = read_uploaded_document(self.definition_path)
        elif self.inline_definition is not None:
            raw = dict(self.inline_definition)
        else:
            raise TemplateError(
                f"{self.logical_id} has neither DefinitionS3Location nor a definition"
            )
        try:
            check_state_names(raw, self.logical_id)
        except DefinitionError as exc:
            raise TemplateError(str(exc)) from exc
        substituted = _substitute_placeholders(raw, self.substitutions, self.logical_id)
        if not isinstance(substituted, dict):
            raise TemplateError(f"The definition of {self.logical_id} is not a mapping")
        return substituted


@dataclass(frozen=True)
class RuleTarget:
    id: str
    arn: str
    role_arn: str | None
    input: str | None


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule: on a clock (ScheduleExpression) or matching events (EventPattern)."""

    logical_id: str
    name: str
    schedule_expression: str | None
    event_pattern: Mapping[str, Any] | None
    enabled: bool
    description: str
    targets: tuple[RuleTarget, ...]


@dataclass(frozen=True)
class ScheduleSpec:
    """An EventBridge Scheduler schedule."""

    logical_id: str
    name: str
    group: str
    expression: str
    timezone: str
    enabled: bool
    target: Mapping[str, Any]


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
class ApiRoute:
    """One method of one path of the REST API's body, and the function it proxies to."""

    path: str
    method: str
    function_arn: str
    authorizer: str | None
    """Name of the route's authorizer, None when the route is open."""


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    rest_api_id: str
    stage: str
    authorizers: Mapping[str, AuthorizerSpec]
    gateway_responses: Mapping[str, GatewayResponseSpec]
    routes: tuple[ApiRoute, ...]


@dataclass(frozen=True)
class StackTemplate:
    """The resolved transformed template: what the local runtime creates and how."""

    path: Path
    stack_name: str
    parameters: Mapping[str, str | list[str]]
    functions: tuple[FunctionSpec, ...]
    roles: tuple[RoleSpec, ...]
    tables: tuple[TableSpec, ...]
    buckets: tuple[BucketSpec, ...]
    bucket_policies: tuple[BucketPolicySpec, ...]
    secrets: tuple[SecretSpec, ...]
    state_machines: tuple[StateMachineSpec, ...]
    apis: tuple[ApiSpec, ...]
    outputs: Mapping[str, Any]
    rules: tuple[RuleSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
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

    def role(self, logical_id_or_arn: str) -> RoleSpec:
        for role in self.roles:
            if logical_id_or_arn in (role.logical_id, role.arn, role.name):
                return role
        raise TemplateError(f"The template has no role {logical_id_or_arn}")

    def rule(self, logical_id: str) -> RuleSpec:
        for rule in self.rules:
            if logical_id in (rule.logical_id, rule.name):
                return rule
        raise TemplateError(f"The template has no rule {logical_id}")

    def routes(self, api: ApiSpec) -> list[tuple[ApiRoute, FunctionSpec]]:
        """Every route of `api` with the function it proxies to."""
        return [(route, self.function(route.function_arn)) for route in api.routes]


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


def _enabled(properties: Mapping[str, Any]) -> bool:
    return str(properties.get("State", "ENABLED")) == "ENABLED"


def _policy_document(value: Any) -> dict[str, Any]:
    """A policy document given as a mapping or as JSON text."""
    document = json.loads(value) if isinstance(value, str) else value
    if not isinstance(document, dict):
        raise TemplateError(f"Not a policy document: {value!r}")
    return document


class _TemplateBuilder:
    """Turns the transformed template into the typed `StackTemplate`."""

    def __init__(
        self,
        *,
        packaged: PackagedTemplate,
        path: Path,
        resolver: IntrinsicResolver,
        physical: Mapping[str, PhysicalResource],
        parameters: Mapping[str, str | list[str]],
        stack_name: str,
    ) -> None:
        self.packaged = packaged
        self.document = packaged.transformed
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

    def resolved(self, *kinds: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources(*kinds):
            yield logical_id, self.properties(resource, logical_id)

    def artifact(self, logical_id: str, location: Any) -> Path:
        """The local file or directory `sam package` would have uploaded to `location`."""
        path = self.packaged.artifact(location)
        if path is None:
            raise TemplateError(f"{logical_id}: {location!r} is not an artifact of this template")
        return (self.root / path).resolve() if not path.is_absolute() else path

    def build(self) -> StackTemplate:
        return StackTemplate(
            path=self.path,
            stack_name=self.stack_name,
            parameters=self.parameters,
            functions=tuple(self.functions()),
            roles=tuple(self.roles()),
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
            rules=tuple(self.rules()),
            schedules=tuple(self.schedules()),
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

    def functions(self) -> Iterator[FunctionSpec]:
        for logical_id, props in self.resolved(FUNCTION_TYPE):
            code = props.get("Code") or {}
            if "ZipFile" in code or "ImageUri" in code:
                raise TemplateError(f"{logical_id}: only code from a local directory runs locally")
            variables = (props.get("Environment") or {}).get("Variables") or {}
            physical = self.physical[logical_id]
            yield FunctionSpec(
                logical_id=logical_id,
                name=physical.ref,
                arn=physical.attributes["Arn"],
                code_dir=self.artifact(logical_id, code),
                handler=str(props["Handler"]),
                runtime=str(props["Runtime"]),
                timeout_seconds=int(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
                memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
                environment={str(k): _scalar_text(v) for k, v in variables.items()},
                layer_dirs=tuple(self.layer_dirs(logical_id, props.get("Layers") or [])),
                role_arn=str(props["Role"]),
                reserved_concurrency=_optional_int(props.get("ReservedConcurrentExecutions")),
            )

    def layer_dirs(self, owner: str, layer_arns: list[Any]) -> Iterator[Path]:
        """The content of each layer of this template the function names (by its ARN)."""
        layers = {self.physical[lid].ref: (lid, props) for lid, props in self.resolved(LAYER_TYPE)}
        for arn in layer_arns:
            if str(arn) not in layers:
                raise TemplateError(f"{owner}: layer {arn} is not one of this template's")
            logical_id, props = layers[str(arn)]
            yield self.artifact(logical_id, props.get("Content"))

    def roles(self) -> Iterator[RoleSpec]:
        for logical_id, props in self.resolved(ROLE_TYPE):
            physical = self.physical[logical_id]
            yield RoleSpec(
                logical_id=logical_id,
                name=physical.name,
                arn=physical.attributes["Arn"],
                trust_policy=_policy_document(props["AssumeRolePolicyDocument"]),
                inline_policies={
                    str(policy["PolicyName"]): _policy_document(policy["PolicyDocument"])
                    for policy in props.get("Policies") or []
                },
                managed_policy_arns=tuple(str(arn) for arn in props.get("ManagedPolicyArns") or []),
                max_session_seconds=int(props.get("MaxSessionDuration", 3600)),
            )

    def state_machines(self) -> Iterator[StateMachineSpec]:
        for logical_id, props in self.resolved(STATE_MACHINE_TYPE):
            physical = self.physical[logical_id]
            location = props.get("DefinitionS3Location")
            inline = props.get("Definition")
            if inline is None and "DefinitionString" in props:
                inline = json.loads(str(props["DefinitionString"]))
            yield StateMachineSpec(
                logical_id=logical_id,
                name=physical.attributes["Name"],
                arn=physical.attributes["Arn"],
                type=str(props.get("StateMachineType", "STANDARD")),
                role_arn=str(props["RoleArn"]),
                definition_path=self.artifact(logical_id, location) if location else None,
                inline_definition=inline if isinstance(inline, dict) else None,
                substitutions={
                    str(key): _scalar_text(value)
                    for key, value in (props.get("DefinitionSubstitutions") or {}).items()
                },
            )

    def rules(self) -> Iterator[RuleSpec]:
        for logical_id, props in self.resolved(RULE_TYPE):
            yield RuleSpec(
                logical_id=logical_id,
                name=self.physical[logical_id].name,
                schedule_expression=(
                    str(props["ScheduleExpression"]) if "ScheduleExpression" in props else None
                ),
                event_pattern=props.get("EventPattern"),
                enabled=_enabled(props),
                description=str(props.get("Description", logical_id)),
                targets=tuple(
                    RuleTarget(
                        id=str(target["Id"]),
                        arn=str(target["Arn"]),
                        role_arn=str(target["RoleArn"]) if "RoleArn" in target else None,
                        input=str(target["Input"]) if "Input" in target else None,
                    )
                    for target in props.get("Targets") or []
                ),
            )

    def schedules(self) -> Iterator[ScheduleSpec]:
        for logical_id, props in self.resolved(SCHEDULE_TYPE):
            yield ScheduleSpec(
                logical_id=logical_id,
                name=self.physical[logical_id].name,
                group=str(props.get("GroupName", "default")),
                expression=str(props["ScheduleExpression"]),
                timezone=str(props.get("ScheduleExpressionTimezone", "UTC")),
                enabled=_enabled(props),
                target=dict(props["Target"]),
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

    def apis(self) -> Iterator[ApiSpec]:
        stages = {
            str(props["RestApiId"]): str(props["StageName"])
            for _, props in self.resolved(STAGE_TYPE)
        }
        for logical_id, props in self.resolved(REST_API_TYPE):
            body = props.get("Body")
            if not isinstance(body, dict):
                raise TemplateError(
                    f"{logical_id}: only a REST API with an inline Body runs locally"
                )
            api_id = self.physical[logical_id].ref
            yield ApiSpec(
                logical_id=logical_id,
                rest_api_id=api_id,
                stage=stages.get(api_id, "Prod"),
                authorizers=_authorizers(logical_id, body),
                gateway_responses=_gateway_responses(body),
                routes=tuple(_routes(logical_id, body)),
            )


def _integrated_function(owner: str, uri: Any) -> str:
    match = _INTEGRATION_URI.match(str(uri))
    if match is None:
        raise TemplateError(f"{owner}: {uri!r} is not a Lambda proxy integration")
    return match.group(1)


def _routes(owner: str, body: Mapping[str, Any]) -> Iterator[ApiRoute]:
    for path, operations in (body.get("paths") or {}).items():
        for method, operation in operations.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            if integration.get("type") != "aws_proxy":
                raise TemplateError(f"{owner} {method.upper()} {path}: only aws_proxy runs locally")
            schemes = [name for entry in operation.get("security") or [] for name in entry]
            authorizer = next((name for name in schemes if name != "NONE"), None)
            yield ApiRoute(
                path=str(path),
                method="ANY" if method == _ANY_METHOD else str(method).upper(),
                function_arn=_integrated_function(f"{owner} {path}", integration.get("uri")),
                authorizer=authorizer,
            )


def _authorizers(owner: str, body: Mapping[str, Any]) -> dict[str, AuthorizerSpec]:
    authorizers = {}
    for name, scheme in (body.get("securityDefinitions") or {}).items():
        declared = scheme.get("x-amazon-apigateway-authorizer")
        if declared is None:
            continue
        if declared.get("type") != "token":
            raise TemplateError(f"{owner}: authorizer {name} is not a TOKEN authorizer")
        expression = declared.get("identityValidationExpression")
        authorizers[str(name)] = AuthorizerSpec(
            name=str(name),
            function_arn=_integrated_function(f"{owner} {name}", declared.get("authorizerUri")),
            identity_header=str(scheme.get("name", "Authorization")),
            reauthorize_every_seconds=int(declared.get("authorizerResultTtlInSeconds", 300)),
            validation_expression=str(expression) if expression is not None else None,
        )
    return authorizers


_RESPONSE_HEADER: Final = "gatewayresponse.header."


def _gateway_responses(body: Mapping[str, Any]) -> dict[str, GatewayResponseSpec]:
    responses = {}
    for kind, declared in (body.get("x-amazon-apigateway-gateway-responses") or {}).items():
        parameters = declared.get("responseParameters") or {}
        status = declared.get("statusCode")
        responses[str(kind)] = GatewayResponseSpec(
            status_code=int(status) if status is not None else None,
            templates={
                str(k): str(v) for k, v in (declared.get("responseTemplates") or {}).items()
            },
            headers={
                str(key).removeprefix(_RESPONSE_HEADER): str(value).strip("'")
                for key, value in parameters.items()
                if str(key).startswith(_RESPONSE_HEADER)
            },
        )
    return responses


def resolve_template(
    path: Path = DEFAULT_TEMPLATE_PATH,
    parameters: Mapping[str, str] | None = None,
    *,
    physical: Mapping[str, PhysicalResource] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
) -> StackTemplate:
    """Transform `path` as CloudFormation would and resolve it with these parameter overrides and
    physical resources.

    Without `physical`, the names planned by `plan_physical_resources` are used, which is what
    the local runtime creates (except secrets' random ARN suffixes, which it fills in).
    """
    path = path.resolve()
    packaged = transform_template(path)
    document = packaged.transformed
    physical = physical if physical is not None else plan_physical_resources(document, stack_name)
    values = resolve_parameters(document, parameters)
    resolver = IntrinsicResolver(document, values, physical, stack_name=stack_name)
    resolver.check_rules()
    return _TemplateBuilder(
        packaged=packaged,
        path=path,
        resolver=resolver,
        physical=physical,
        parameters=values,
        stack_name=stack_name,
    ).build()


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
